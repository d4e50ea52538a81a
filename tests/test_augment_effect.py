"Real-data tests of dcresearch.augment.effect: SST-2 loading, diversity metrics against NLTK, the experiment at a small size."
import csv, math

import numpy as np
import pytest

import dcresearch.augment.text as A, dcresearch.augment.effect as E


@pytest.fixture(scope='module')
def sst2(shared):
    d = shared/'en_sentiment'
    tr, bad_tr = E.load_labelled(d/'sst2_train.tsv', 'sentence', 'label', ['label', 'sentence'])
    dv, bad_dv = E.load_labelled(d/'sst2_dev.tsv', 'sentence', 'label', ['label', 'sentence'])
    return tr, dv, bad_tr, bad_dv


def test_load_sst2(sst2):
    tr, dv, bad_tr, bad_dv = sst2
    assert len(tr) + len(bad_tr) == 6920 and len(dv) + len(bad_dv) == 872
    assert set(tr['label']) == {'0', '1'} and tr['id'].tolist()[:3] == [0, 1, 2]   # ids are 0-based input lines


def test_self_bleu_matches_nltk_on_real_sentences(sst2):
    nltk_bleu = pytest.importorskip('nltk.translate.bleu_score')
    texts = sst2[0]['text'].tolist()[:60]
    toks = [E.metric_tokens(t) for t in texts]
    ref = np.mean([nltk_bleu.sentence_bleu(toks[:i] + toks[i + 1:], toks[i], smoothing_function=nltk_bleu.SmoothingFunction().method1)
                   for i in range(len(toks))])
    assert math.isclose(E.self_bleu(texts, sample=None), ref, rel_tol=1e-9)


def test_eda_copies_lower_diversity(sst2):
    "Augmented rows are near-copies of their sources: distinct-2 falls and self-BLEU rises when they are added."
    texts = sst2[0]['text'].tolist()[:300]
    aug = [r['text'] for r in A.EDAAugmenter(seed=1)(list(enumerate(texts))).rows]
    both = texts + aug
    assert E.distinct_n(both, 2) < E.distinct_n(texts, 2)
    assert E.self_bleu(both, sample=400) > E.self_bleu(texts, sample=400)


def test_highlight_escapes_real_tweets(shared):
    with open(shared/'tweets'/'airline_tweets.csv', encoding='utf-8') as f:
        text = next(r['text'] for r in csv.DictReader(f) if '&' in r['text'] or '<' in r['text'])
    out = E.highlight_changes(text, text + ' <b>wow</b>')
    assert '<b>' not in out and '<mark>' in out and '&lt;b&gt;' in out


def test_embedder_embeds_each_text_once(monkeypatch):
    emb = E.MiniLMEmbedder()
    a = emb(['a fine film', 'a dull film', 'a fine film'])
    assert a.shape == (3, 384) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5) and np.allclose(a[0], a[2])
    monkeypatch.setattr(emb._st, 'encode', lambda *a, **k: pytest.fail('a cached text was embedded again'))
    assert np.allclose(emb(['a dull film']), a[1])


def test_experiment_small_real(sst2):
    "SST-2 at a small size: one row per run, guards count what they drop, baseline and augmented rows scored."
    tr, dv, *_ = sst2
    dev = dv.iloc[E.stratified_subset(dv['label'].tolist(), 120, 0)]
    res = E.augmentation_effect(tr.text.tolist(), tr.label.tolist(), dev.text.tolist(), dev.label.tolist(), sizes=(40,),
                                seeds=(0, 1), settings=E.default_settings(['none', 'eda', 'mixup']), min_similarity=0.7)
    assert len(res) == 6 and set(res.setting) == {'none', 'eda', 'mixup'}
    assert (res[res.setting == 'none'].n_train_rows == 40).all() and (res[res.setting == 'eda'].n_train_rows > 100).all()
    assert (res.accuracy > 0.55).all()
    s = E.summarize_effect(res)
    assert s.loc[s.setting == 'none', 'Δ accuracy vs none'].tolist() == ['—', ]
    assert 'too few seeds' in E.effect_verdict(s)


def test_measure_augmentation_command(tmp_path):
    pos = ['a wonderful , moving and funny film', 'the best comedy of the year', 'warm and touching , a delight']
    neg = ['a dull and lifeless mess', 'boring , long and badly acted', 'the worst film i have seen']
    rows = [(1, f'{t} {i}') for i in range(6) for t in pos] + [(0, f'{t} {i}') for i in range(6) for t in neg]
    (tmp_path/'train.tsv').write_text(''.join(f'{y}\t{t}\n' for y, t in rows), encoding='utf-8')
    (tmp_path/'dev.tsv').write_text('1\ta funny , warm film\n0\ta boring mess\n', encoding='utf-8')
    s = E.measure_augmentation(str(tmp_path/'train.tsv'), str(tmp_path/'dev.tsv'), str(tmp_path/'out'), text_field='sentence',
                               column_names='label,sentence', sizes='10', seeds='0', settings='none,eda', quiet=True)
    assert set(s.setting) == {'none', 'eda'}
    assert (tmp_path/'out'/'effect.csv').exists() and (tmp_path/'out'/'effect_summary.csv').exists()
    with pytest.raises(ValueError, match='no labelled rows'):
        E.measure_augmentation(str(tmp_path/'train.tsv'), str(tmp_path/'dev.tsv'), str(tmp_path/'o2'), text_field='nope',
                               column_names='label,sentence', quiet=True)
