"""Labeling functions for YouTube spam comments (../shared/data/weak_supervision): 1 = spam, 0 = ham.

Keyword and regex rules in the spirit of snorkel's spam tutorial on the same data; `dcr label weak` and
`dcresearch.label.load_lfs` read the `LFS` list. Each returns a label or abstains.
"""
from dcresearch.label import keyword_lf, regex_lf, function_lf

SPAM, HAM = 1, 0

def short_comment(text: str):
    "Ham comments are often short: 'love this song', 'wow'."
    return HAM if len(text.split()) < 5 else None

def many_exclamations_and_caps(text: str):
    "Shouting self-promotion."
    letters = [c for c in text if c.isalpha()]
    return SPAM if len(letters) > 20 and sum(c.isupper() for c in letters) / len(letters) > 0.5 else None

LFS = [
    keyword_lf('keyword_my', ['my'], SPAM),
    keyword_lf('keyword_subscribe', ['subscribe', 'subscribers'], SPAM),
    regex_lf('link', r'https?://|www\.|\.com\b', SPAM),
    keyword_lf('keyword_please', ['please', 'plz', 'pls'], SPAM),
    regex_lf('check_out', r'check\W+(?:\w+\W+){0,2}out', SPAM),
    keyword_lf('keyword_channel', ['channel', 'my video', 'my videos'], SPAM),
    keyword_lf('keyword_song', ['song', 'songs'], HAM),
    keyword_lf('keyword_love', ['love', 'best', 'awesome', 'amazing'], HAM),
    regex_lf('views_count', r'\b\d+\s*(?:billion|million|b|m)?\s*views\b', HAM),
    function_lf(short_comment),
    function_lf(many_exclamations_and_caps),
]
