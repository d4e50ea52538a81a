"Real-data tests of dcresearch.clean: C4 web text, SST-2, ChnSentiCorp and tweets, the embedded sample, a pipeline run."
import json
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dcresearch.clean import (LanguageFilter, LanguageIdentifier, NormalizeText, RemoveBoilerplateLines, default_clean_steps,
                              identify_languages, normalize_text)
from dcresearch.core import make_records
from dcresearch.pipeline import Pipeline, run_steps


def records(texts, name='t'):
    return make_records(list(texts), [f'{name}:{i}' for i in range(1, len(texts) + 1)])


@pytest.fixture(scope='module')
def c4(shared):
    return [json.loads(l)['text'] for l in open(shared/'web'/'c4_demo.jsonl', encoding='utf-8')]

@pytest.fixture(scope='module')
def sst2(shared):
    return pd.read_csv(shared/'en_sentiment'/'sst2_dev.tsv', sep='\t', header=None, quoting=3)[1].tolist()

@pytest.fixture(scope='module')
def chnsenticorp(shared):
    return pd.read_csv(shared/'zh_sentiment'/'chnsenticorp_htl_all.csv')['review'].dropna().astype(str).tolist()

@pytest.fixture(scope='module')
def tweets(shared):
    return pd.read_csv(shared/'tweets'/'airline_tweets.csv')['text'].tolist()


# --- normalisation ---------------------------------------------------------------------------------

def test_normalize_c4_keeps_every_document_and_little_changes(c4):
    res = NormalizeText()(records(c4))
    assert res.n_rejected == 0 and res.kept.num_rows == 300
    removed = np.array(res.kept['clean__chars_removed'].to_pylist())
    total = sum(len(t) for t in c4)
    assert (removed >= 0).all() and 0 < removed.sum() < 0.002 * total   # a few hundred characters out of 737k
    assert np.abs(removed).max() < 100                  # no document is gutted
    # what changed is what should change: no zero-width spaces, soft hyphens, tabs or double spaces left
    out = '\n'.join(res.kept['text'].to_pylist())
    for bad in ('\u200b', '\u00ad', '\t', '  ', '\r', ' \n'):
        assert bad not in out, repr(bad)


@pytest.mark.parametrize('corpus', ['c4', 'tweets', 'chnsenticorp'])
def test_normalize_is_idempotent(corpus, request):
    texts = request.getfixturevalue(corpus)
    once = normalize_text(pa.array(texts))
    assert normalize_text(once).equals(once)


def test_normalize_tweets_entities_and_chinese_punctuation(tweets, chnsenticorp):
    # the tweets carry HTML entities (&amp; &lt; &gt;); they are decoded, nothing else in the tweet is lost
    with_amp = [t for t in tweets if '&amp;' in t][:50]
    assert len(with_amp) == 50
    out = normalize_text(pa.array(with_amp)).to_pylist()
    assert all('&amp;' not in o and '&' in o for o in out)
    # Chinese: full-width punctuation becomes ASCII (NFKC), the characters themselves are untouched
    zh = normalize_text(pa.array(chnsenticorp[:500])).to_pylist()
    strip = lambda s: ''.join(c for c in s if '\u4e00' <= c <= '\u9fff')
    assert [strip(a) for a in chnsenticorp[:500]] == [strip(b) for b in zh]
    assert not any('，' in z for z in zh) and any('，' in a for a in chnsenticorp[:500])


# --- boilerplate lines -----------------------------------------------------------------------------

def test_boilerplate_c4_removes_footers_not_paragraphs(c4):
    step = RemoveBoilerplateLines()
    found = step.matches(c4)
    n_lines = sum(t.count('\n') + 1 for t in c4)
    # C4 was already cleaned of most boilerplate: a handful of footer/prompt lines remain, under 1% of lines
    assert 5 <= len(found) <= 25 and len(found) < 0.01 * n_lines
    assert (found.text.str.len() <= 200).all()
    removed = set(found.text)
    for line in ['© 2018 Allergan. All rights reserved.', 'Coosa Creek, LLC. All rights reserved; 2010.',
                 'Click here for the City of Corpus Christi Website.', 'Subscribe on iTunes, Spotify, Google Play, Tune In, and Stitcher.']:
        assert line in removed, line
    # real paragraphs that contain trigger words stay
    kept_lines = {l for t in RemoveBoilerplateLines()(records(c4)).kept['text'].to_pylist() for l in t.split('\n')}
    for para in ['Author of several articles concerning the Minnesota Common Interest Ownership Act that were published in professional journals and client newsletters.',
                 'Rescued Tails’s motto is to “Warm hearts, save lives” ©.']:
        assert para in kept_lines, para
    assert sum(para.startswith('Every year, I like to host a little ‘thank you’ event') for para in kept_lines) == 1
    assert sum(para.startswith('Thank you. Since is how I make my living, my images are copyrighted') for para in kept_lines) == 1


def test_boilerplate_c4_no_document_lost_and_long_lines_untouched(c4):
    res = RemoveBoilerplateLines()(records(c4))
    assert res.n_rejected == 0
    before = Counter(l for t in c4 for l in t.split('\n') if len(l) > 200)
    after = Counter(l for t in res.kept['text'].to_pylist() for l in t.split('\n') if len(l) > 200)
    assert before == after


def test_boilerplate_on_the_sample_corpus():
    "The embedded sample knows which documents are pure boilerplate (`kind`), in English and Chinese."
    from dcresearch.sample import generate_documents
    docs = list(generate_documents(2000, seed=5))
    kinds = np.array([d['kind'] for d in docs])
    res = RemoveBoilerplateLines()(records([d['text'] for d in docs]))
    rejected = np.isin([f't:{i}' for i in range(1, len(docs) + 1)], res.rejected['source'].to_pylist())
    assert rejected[kinds == 'boilerplate'].all()                                       # every boilerplate-only page
    assert not rejected[np.isin(kinds, ['good', 'review', 'support', 'long', 'code'])].any()   # and no real document
    zh_pages = [d for d in docs if d['kind'] == 'boilerplate' and d['lang'] == 'zh']
    assert len(zh_pages) > 10


# --- language identification ---------------------------------------------------------------------

def test_langid_accuracy_english_and_chinese(sst2, chnsenticorp, tweets):
    for texts, lang, floor in [(sst2, 'en', 0.98), (chnsenticorp, 'zh', 0.98), (tweets, 'en', 0.97)]:
        langs, scores = identify_languages(texts)
        acc = np.mean(langs == lang)
        assert acc >= floor, f'{lang}: accuracy {acc:.3f} < {floor}'
        assert np.median(scores[langs == lang]) > 0.9


def test_langid_matches_py3langid(c4, chnsenticorp, tweets):
    from py3langid.langid import LanguageIdentifier as PyLangid, MODEL_FILE
    ref = PyLangid.from_model_file(MODEL_FILE, norm_probs=True)
    texts = c4[:100] + chnsenticorp[:300] + tweets[:300]
    langs, scores = identify_languages(texts)
    expected = [ref.classify(t[:1000]) for t in texts]
    assert langs.tolist() == [l for l, _ in expected]
    np.testing.assert_allclose(scores, [s for _, s in expected], atol=1e-4)


def test_language_filter_keeps_en_and_zh(sst2, chnsenticorp):
    table = LanguageIdentifier()(records(sst2[:300] + chnsenticorp[:300])).kept
    res = LanguageFilter(['en', 'zh'], min_score=0.5)(table)
    assert res.kept.num_rows + res.n_rejected == 600
    assert res.kept.num_rows >= 0.97 * 600
    assert set(res.rejected['reason'].to_pylist()) <= {'language:not_allowed', 'language:low_confidence'}
    only_zh = LanguageFilter(['zh'])(table)
    assert only_zh.kept.num_rows >= 0.97 * 300 and set(only_zh.kept['lang'].to_pylist()) == {'zh'}


# --- inside a pipeline -----------------------------------------------------------------------------

def test_clean_steps_in_a_pipeline_keep_the_ledger_balanced(c4, tmp_path):
    from dcresearch.io import RecordReader
    from dcresearch.lake import read_delta_table
    extra = ['<div>&nbsp;</div>', 'Home | News | Sport | Contact us\nAccept all cookies\n© 2024 X. All rights reserved.',
             'Le conseil municipal a approuvé hier soir le nouveau plan de circulation du centre-ville.', '\u200b\u200b']
    inp = tmp_path/'in.jsonl'
    with open(inp, 'w', encoding='utf-8') as f:
        for t in c4 + extra: f.write(json.dumps({'text': t}, ensure_ascii=False) + '\n')
    steps = default_clean_steps() + [LanguageFilter(['en'])]
    res = Pipeline(steps, stage='clean', workers=2, shard_size=64, progress=False).run(RecordReader(str(inp)), tmp_path/'out')
    s = res.ledger.check().summary()
    assert s == dict(n_in=304, n_kept=296, n_rejected=8, n_quarantined=0)
    reasons = Counter(read_delta_table(tmp_path/'out'/'rejected')['reason'].to_pylist())
    # four C4 pages are too junky to tell (a company name, a product sheet, a list of phone numbers): low confidence
    assert reasons == {'clean:empty_after_normalize': 2, 'clean:boilerplate_only': 1, 'language:not_allowed': 1,
                       'language:low_confidence': 4}
    recs = read_delta_table(tmp_path/'out'/'records')
    assert {'lang', 'lang_score', 'clean__chars_removed', 'clean__lines_removed'} <= set(recs.column_names)
    assert set(recs['lang'].to_pylist()) == {'en'}
