"Real-data tests of dcresearch.eda: airline tweets (CSV), C4 web documents (JSONL), real tokenizers, the report notebook."
import json, os, subprocess, sys
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from dcresearch import eda
from dcresearch.eda import load_for_eda, profile_corpus

ROOT = Path(__file__).resolve().parents[1]
from conftest import SHARED as DATA
TWEETS = DATA/'tweets'/'airline_tweets.csv'
C4 = DATA/'web'/'c4_demo.jsonl'
TOKENIZERS = DATA/'tokenizers'
needs_data = pytest.mark.skipif(not TWEETS.exists(), reason=f'shared data not found at {DATA}')

PLOTS = [eda.plot_length_hist, eda.plot_token_hist, eda.plot_languages, eda.plot_sources, eda.plot_time,
         eda.plot_labels, eda.plot_missing_fields, eda.plot_quarantine_reasons]


def profile(path, **kw):
    tables, quarantined, _ = load_for_eda(path, **{k: v for k, v in kw.items() if k in ('label_field', 'time_field', 'max_docs')})
    return profile_corpus(tables, quarantined, progress=False, **{k: v for k, v in kw.items() if k not in ('max_docs',)})


@pytest.fixture(scope='module')
def tweets(): return profile(TWEETS)

@pytest.fixture(scope='module')
def c4(): return profile(C4)


@needs_data
def test_tweets_counts_labels_time(tweets):
    assert (tweets.n_docs, tweets.n_quarantined) == (14_640, 0)
    # the label is auto-detected from meta: `airline_sentiment`, not `..._confidence` or `..._gold`
    assert (tweets.label_field, tweets.label_in_meta) == ('airline_sentiment', True)
    assert tweets.label_counts.to_dict() == {'negative': 9178, 'neutral': 3099, 'positive': 2363}
    assert (tweets.time_field, tweets.time_in_meta) == ('tweet_created', True)
    ts = tweets.docs['timestamp']
    assert ts.notna().all()
    assert ts.min() >= pd.Timestamp('2015-02-01', tz='UTC') and ts.max() < pd.Timestamp('2015-03-01', tz='UTC')
    assert tweets.time_counts().index.name == 'day' and tweets.time_counts().sum() == 14_640
    assert any('airline_sentiment' in n for n in tweets.notes) and any('tweet_created' in n for n in tweets.notes)


@needs_data
def test_tweets_missing_fields(tweets):
    mf = tweets.missing_fields().set_index('field')
    assert mf.loc['negativereason', 'missing'] == 5462          # empty CSV cells are missing values
    assert mf.loc['airline_sentiment_gold', 'missing'] == 14_600
    assert mf.loc['tweet_coord', 'missing'] == 13_621
    assert mf.loc['text', 'missing'] == 0 and mf.loc['airline_sentiment', 'missing'] == 0
    assert mf.index[0] in ('negativereason_gold', 'airline_sentiment_gold')   # worst first
    assert 'label' not in mf.index       # the record label column is unused: labels came from meta


@needs_data
def test_tweets_languages_lengths_duplicates(tweets):
    lg = tweets.languages()
    assert lg.iloc[0]['lang'] == 'en' and lg.iloc[0]['share'] > 0.9
    ls = tweets.length_stats()
    assert ls.loc['characters', 'max'] <= 200 and 10 < ls.loc['tokens', 'p50'] < 30
    d = tweets.duplicates().set_index('kind')['rate']
    assert 0.005 < d.iloc[0] <= d.iloc[1] < 0.05           # normalised duplicates include the exact ones
    assert len(tweets.examples['duplicates']) == 5
    ov = tweets.overview().set_index('metric')['value']
    assert ov['documents'] == '14,640' and ov['date range'].startswith('2015-02')


@needs_data
def test_tweets_label_given_to_reader():
    # told the label and time fields, the reader fills the record columns and the profile uses them
    p = profile(TWEETS, label_field='airline_sentiment', time_field='tweet_created', max_docs=2000)
    assert p.n_docs == 2000
    assert (p.label_field, p.label_in_meta, p.time_in_meta) == ('airline_sentiment', False, False)
    assert set(p.label_counts.index) == {'negative', 'neutral', 'positive'}
    assert p.has_time


@needs_data
def test_c4(c4):
    assert (c4.n_docs, c4.n_quarantined) == (300, 0)
    assert (c4.label_field, c4.time_field, c4.has_labels, c4.has_time) == (None, None, False, False)
    assert c4.languages().iloc[0]['lang'] == 'en'
    assert c4.docs['n_tokens'].sum() > 100_000
    assert len(c4.time_counts()) == 0 and len(c4.label_balance()) == 0 and len(c4.quarantine_examples()) == 0


@needs_data
@pytest.mark.parametrize('which', ['tweets', 'c4'])
def test_plots_titled_and_labelled(which, request):
    p = request.getfixturevalue(which)
    for plot in PLOTS:
        fig = plot(p)
        assert isinstance(fig, Figure), plot.__name__
        ax = fig.axes[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), plot.__name__
        fig.savefig(os.devnull, format='png')   # draws without errors


@needs_data
def test_tokenizer_counts(c4):
    from tokenizers import Tokenizer
    path = TOKENIZERS/'gpt_neo_tokenizer.json'
    p = profile(C4, tokenizer=path, max_docs=50)
    assert p.token_method == 'gpt_neo_tokenizer.json'
    texts = [json.loads(l)['text'] for l in C4.read_text().splitlines()[:50]]
    tok = Tokenizer.from_file(str(path))
    assert p.docs['n_tokens'].tolist() == [len(tok.encode(t, add_special_tokens=False).ids) for t in texts]
    # BPE splits punctuation and rare words: more tokens than the word-based estimate
    assert p.docs['n_tokens'].sum() > c4.docs['n_tokens'][:50].sum()
    llama = eda.TokenCounter(TOKENIZERS/'llama_tokenizer.json')
    assert llama(['今天天气很好', 'hello world', None]).tolist()[2] == 0


def test_default_input_missing(tmp_path, monkeypatch):
    monkeypatch.setenv('DCR_DATA', str(tmp_path))
    with pytest.raises(FileNotFoundError, match='make pipeline'): load_for_eda()


@needs_data
def test_report_notebook(tmp_path):
    "The papermill report runs end to end on the C4 sample and every section says something."
    out = tmp_path/'eda.ipynb'
    r = subprocess.run([sys.executable, '-m', 'papermill', 'nbs/reports/eda.ipynb', str(out), '-k', 'python3',
                        '-p', 'input', str(C4), '--log-level', 'WARNING'], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    text = out.read_text()
    for section in ['Overview', 'Lengths & tokens', 'Languages', 'Sources', 'Time', 'Labels', 'Duplicates',
                    'Missing/empty fields', 'Quarantine']:
        assert f'## {section}' in text
    assert 'No timestamps' in text and 'No labels' in text and 'image/png' in text
