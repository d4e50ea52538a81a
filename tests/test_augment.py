"Tests of dcresearch.augment.text on real data: EDA, noise, embedding and model operators; determinism, ids/labels, rates, guards, ledger, CLI contract."
import csv, json, os, socket, subprocess, sys
from pathlib import Path

import pytest

import dcresearch.augment.text as A
from dcresearch.augment.text import (EDAAugmenter, OPS, NOISE_OPS, TextAugmenter, Paraphraser, BackTranslator, augment, eda, noise,
                                embed_replace, stand_in_model, tokenize)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data'
TOKENIZER = DATA / 'tokenizers' / 'gpt_neo_tokenizer.json'


def sst2(n=300):
    with open(DATA / 'en_sentiment' / 'sst2_train.tsv', encoding='utf-8') as f:
        return [dict(label=lab, text=txt) for lab, txt in (l.rstrip('\n').split('\t', 1) for l in list(f)[:n])]


def waimai(n=300):
    with open(DATA / 'zh_sentiment' / 'waimai_10k.csv', encoding='utf-8') as f:
        return [dict(label=r['label'], text=r['review']) for r in list(csv.DictReader(f))[:n]]


def write_jsonl(path, rows):
    path.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in rows), encoding='utf-8')
    return str(path)


def test_synonym_sources_load_offline(monkeypatch):
    "WordNet, Cilin and jieba's dictionary load with every network connection refused."
    def no_network(*a, **k): raise OSError('network disabled in test')
    monkeypatch.setattr(socket.socket, 'connect', no_network)
    monkeypatch.setattr(socket, 'create_connection', no_network)
    A.wordnet_synonyms.cache_clear(); A.cilin_synonyms.cache_clear()
    wn, cl = A.wordnet_synonyms(), A.cilin_synonyms()
    assert 'glad' in wn['happy'] and len(wn) > 50_000
    assert '人类' in cl['全人类'] and len(cl) > 30_000
    assert ''.join(tokenize('这家店的菜很好吃')[0]) == '这家店的菜很好吃'


@pytest.mark.parametrize('rows', [sst2, waimai], ids=['en', 'zh'])
def test_deterministic_and_independent_of_batching(rows):
    "The same seed gives the same rows, whether rows come in one batch or one by one; another seed differs."
    data = [(i, r['text']) for i, r in enumerate(rows(200))]
    aug = EDAAugmenter(seed=7)
    whole = aug(data).rows
    one_by_one = [r for row in data for r in aug([row]).rows]
    assert whole == one_by_one
    assert sorted(map(str, aug(list(reversed(data))).rows)) == sorted(map(str, whole))
    other = EDAAugmenter(seed=8)(data).rows
    assert sum(a['text'] != b['text'] for a, b in zip(whole, other)) > len(whole) // 4


@pytest.mark.parametrize('rows', [sst2, waimai], ids=['en', 'zh'])
def test_labels_and_source_ids_preserved(rows):
    "Every augmented row carries its source's id and label, and its id is unique."
    data = rows(300)
    res = EDAAugmenter(seed=1, n_per_op=2)([(f'r{i}', r['text'], {'label': r['label']}) for i, r in enumerate(data)])
    by_id = {f'r{i}': r for i, r in enumerate(data)}
    assert len(res.rows) > 0.9 * len(data) * len(OPS) * 2
    assert len({r['id'] for r in res.rows}) == len(res.rows)
    for r in res.rows:
        assert r['label'] == by_id[r['source_id']]['label']
        assert r['text'] != by_id[r['source_id']]['text']
        assert r['id'] == f"{r['source_id']}:{r['op']}:{r['id'].rsplit(':', 1)[1]}"
    # every source row is accounted for: augmented for an op, or skipped with a reason
    done = {(r['source_id'], r['op']) for r in res.rows} | {(s['source_id'], s['op']) for s in res.skipped}
    assert all((sid, op) in done or (sid, None) in done for sid in by_id for op in OPS)


@pytest.mark.parametrize('alpha', [0.1, 0.2, 0.3])
def test_rate_respected(alpha):
    "Each operator changes n = max(1, int(alpha * words)) words."
    text = ' '.join(['good happy big small fast slow bright dark strong weak'] * 6)   # 60 words, all with synonyms
    toks, _ = tokenize(text)
    n = max(1, int(alpha * len(toks)))
    for seed in range(5):
        rng = lambda op: A.random.Random(f'{seed}:{op}')
        syn = eda(toks, 'synonym', rng('s'), alpha)
        assert sum(a != b for a, b in zip(toks, syn)) == n
        assert len(eda(toks, 'insert', rng('i'), alpha)) == len(toks) + n
        assert len(eda(toks, 'delete', rng('d'), alpha)) == len(toks) - n
        swapped = eda(toks, 'swap', rng('w'), alpha)
        assert sorted(swapped) == sorted(toks) and sum(a != b for a, b in zip(toks, swapped)) <= 2 * n


def test_chinese_stays_chinese():
    "Chinese rows are segmented with jieba and joined back without spaces; synonyms come from Cilin."
    res = EDAAugmenter(ops=['synonym'], seed=3)([(i, r['text']) for i, r in enumerate(waimai(200))])
    assert len(res.rows) > 150
    assert not any(' ' in r['text'] for r in res.rows)


def test_contract_command(tmp_path):
    "`augment` writes DIR/augmented.jsonl with id/source_id/op/text; both ops spellings, twice, identical."
    rows = [dict(id=f'en{i}', **r) for i, r in enumerate(sst2(50))] + [dict(text=r['text']) for r in waimai(50)] \
           + [dict(text=''), dict(text='one'), dict(other='no text field')]
    src = write_jsonl(tmp_path / 'in.jsonl', rows)
    augment([src], str(tmp_path / 'a'), text_field='text', ops=['synonym,insert,swap,delete'], seed=7, quiet=True)
    augment([src], str(tmp_path / 'b'), text_field='text', ops=['synonym', 'insert', 'swap', 'delete'], seed=7, quiet=True)
    a, b = (tmp_path / 'a' / 'augmented.jsonl').read_bytes(), (tmp_path / 'b' / 'augmented.jsonl').read_bytes()
    assert a == b
    out = [json.loads(l) for l in a.decode('utf-8').splitlines()]
    assert all({'id', 'source_id', 'op', 'text'} <= set(r) for r in out)
    ids = {r['source_id'] for r in out}
    assert len({f'en{i}' for i in range(50)} & ids) > 45   # the input's own `id` field
    assert {i for i in ids if isinstance(i, int)} <= set(range(50, 100))   # no id field: 0-based line
    assert any(A.is_chinese(r['text']) for r in out)
    skipped = [json.loads(l) for l in (tmp_path / 'a' / 'skipped.jsonl').read_text(encoding='utf-8').splitlines()]
    reasons = {s['source_id']: s['reason'] for s in skipped if s['op'] is None}
    assert reasons[100] == reasons[101] == 'augment:too_short' and reasons[102] == 'io:missing_text_field'   # the reader's reason


@pytest.fixture(scope='module')
def stand_ins(tmp_path_factory):
    "Tiny random causal (GPT-2) and seq2seq (BART) models with the GPT-Neo tokenizer: gibberish, but real plumbing."
    d = tmp_path_factory.mktemp('models')
    return stand_in_model(d / 'causal', 'causal', TOKENIZER), stand_in_model(d / 'seq2seq', 'seq2seq', TOKENIZER, seed=1)


ALL_LOCAL = 'synonym,insert,swap,delete,typo,ocr,embed'


def test_same_file_in_another_process(tmp_path, stand_ins):
    "Another process with another PYTHONHASHSEED writes identical files for every operator, guards on (seeding does not use hash())."
    causal, s2s = stand_ins
    src = write_jsonl(tmp_path / 'in.jsonl', sst2(20) + waimai(20))
    code = ('import sys; from dcresearch.augment.text import augment; '
            f'augment([sys.argv[1]], sys.argv[2], ops=["{ALL_LOCAL},paraphrase,backtranslate"], seed=7, quiet=True, '
            'paraphrase_model=sys.argv[3], paraphrase_kind="causal", backtranslate_models=[sys.argv[4], sys.argv[4]])')
    hs = '1' if os.environ.get('PYTHONHASHSEED') != '1' else '2'   # another string-hash seed than this process's
    subprocess.run([sys.executable, '-c', code, src, str(tmp_path / 'p1'), causal, s2s], check=True,
                   env={**os.environ, 'PYTHONHASHSEED': hs, 'HF_HUB_OFFLINE': '1'})
    here = tmp_path / 'here'
    res = augment([src], str(here), ops=f'{ALL_LOCAL},paraphrase,backtranslate', seed=7, quiet=True, paraphrase_model=causal,
                  paraphrase_kind='causal', backtranslate_models=[s2s, s2s])
    for f in ('augmented.jsonl', 'skipped.jsonl', 'ledger.json'):
        assert (tmp_path / 'p1' / f).read_bytes() == (here / f).read_bytes(), f
    led = json.loads((here / 'ledger.json').read_text())
    ops = {o['op']: o for o in led['ops']}
    assert led['balanced'] and led['n_in'] == 40 and set(ops) == set(ALL_LOCAL.split(',')) | {'paraphrase', 'backtranslate'}
    for o in ops.values():   # the ledger's invariants, recomputed
        assert o['n_in'] == led['n_augmentable'] == o['n_kept'] + sum(o['skipped'].values())
        assert o['n_generated'] == o['n_kept'] + o['guard:drift'] + o['guard:duplicate']
    # the stand-in models' gibberish is caught by the drift guard, with its similarity
    for op in ('paraphrase', 'backtranslate'):
        assert ops[op]['n_kept'] == 0 and ops[op]['guard:drift'] + ops[op]['guard:duplicate'] == ops[op]['n_generated'] > 0
    drift = [s for s in res.skipped if s['reason'] == 'guard:drift']
    assert all(s['similarity'] < 0.7 and 'cosine' in s['detail'] and s['id'].startswith(f"{s['source_id']}:") for s in drift)
    assert {r['op'] for r in res.rows} >= {'typo', 'ocr', 'embed', 'synonym'}


def test_missing_input_and_bad_op(tmp_path):
    "A missing file or an unknown operator is a clear error before anything is written."
    with pytest.raises(FileNotFoundError, match='does not exist'):
        augment([str(tmp_path / 'nope.jsonl')], str(tmp_path / 'o'), quiet=True)
    src = write_jsonl(tmp_path / 'in.jsonl', [dict(text='a good day')])
    with pytest.raises(ValueError, match='unknown augmentation operator'):
        augment([src], str(tmp_path / 'o'), ops=['synonym,shuffle'], quiet=True)
    assert not (tmp_path / 'o').exists()


def test_unsupported_language_is_skipped_with_reason(tmp_path):
    "Russian text has no synonym source: it is skipped as augment:unsupported_language, not augmented by halves."
    src = write_jsonl(tmp_path / 'in.jsonl', [dict(text='Это очень хороший фильм'), dict(text='a fine and good film')])
    res = augment([src], str(tmp_path / 'o'), quiet=True)
    assert {r['source_id'] for r in res.rows} == {1}
    assert res.counts()['augment:unsupported_language'] == 1


@pytest.mark.parametrize('op', ['typo', 'ocr', 'embed'])
@pytest.mark.parametrize('rows', [sst2, waimai], ids=['en', 'zh'])
def test_new_ops_deterministic_ids_labels(op, rows):
    "typo/ocr/embed: same seed same rows whatever the batching, another seed differs; ids and labels kept; Chinese typo/embed skipped."
    data = [(f'r{i}', r['text'], {'label': r['label']}) for i, r in enumerate(rows(150))]
    aug = TextAugmenter([op], seed=7, min_similarity=None, drop_duplicates=False)
    whole = aug(data)
    assert whole.rows == [r for row in data for r in aug([row]).rows]
    assert sorted(map(str, aug(list(reversed(data))).rows)) == sorted(map(str, whole.rows))
    by_id = {sid: (t, x['label']) for sid, t, x in data}
    for r in whole.rows:
        assert r['id'] == f"{r['source_id']}:{op}:0" and r['label'] == by_id[r['source_id']][1] and r['text'] != by_id[r['source_id']][0]
    if rows is waimai and op in ('typo', 'embed'):
        assert not whole.rows and whole.counts() == {'augment:unsupported_language': 150}
        return
    assert len(whole.rows) > 0.7 * len(data)
    other = TextAugmenter([op], seed=8, min_similarity=None, drop_duplicates=False)(data).rows
    assert sum(a['text'] != b['text'] for a, b in zip(whole.rows, other)) > len(whole.rows) // 4
    assert whole.check().ledger()['balanced']


@pytest.mark.parametrize('alpha', [0.1, 0.2, 0.3])
def test_new_ops_rate_respected(alpha):
    "typo/ocr/embed change exactly n = max(1, int(alpha * words)) words (one character edit each for the noise ops)."
    toks, _ = tokenize(' '.join(['good happy big small fast slow bright dark strong weak'] * 6))
    n = max(1, int(alpha * len(toks)))
    for seed in range(5):
        for op in NOISE_OPS:
            out = noise(toks, op, A.random.Random(f'{seed}:{op}'), alpha)
            assert len(out) == len(toks) and sum(a != b for a, b in zip(toks, out)) == n
        out = embed_replace(toks, A.random.Random(seed), alpha)
        assert len(out) == len(toks) and sum(a != b for a, b in zip(toks, out)) == n
    zh, _ = tokenize('我们未来的生活很好，土地也很大，天气很好')
    out = noise(zh, 'ocr', A.random.Random(0), 0.1, chinese=True)
    assert sum(a != b for a, b in zip(zh, out)) == 1 and ''.join(out) != ''.join(zh)


def test_paraphraser_deterministic_and_offline(stand_ins, monkeypatch):
    "Paraphraser/BackTranslator load from a local folder only; greedy is repeatable; sampling depends on each text's seed, not its batch."
    def no_network(*a, **k): raise OSError('network disabled in test')
    monkeypatch.setattr(socket.socket, 'connect', no_network)
    causal, s2s = stand_ins
    texts = ['The movie was a good and funny story', 'A dull and tedious film', '']
    greedy = Paraphraser(causal, 'causal', max_new_tokens=6)
    assert greedy(texts) == greedy(texts) and greedy(texts)[2] == '' and all(greedy(texts)[:2])
    sample = Paraphraser(causal, 'causal', max_new_tokens=6, do_sample=True, batch_size=2)
    both = sample(texts[:2], [11, 12])
    assert both == sample(texts[:2], [11, 12]) and both[1] == sample(texts[1:2], [12])[0]
    assert sample(texts[:1], [11]) != sample(texts[:1], [99])
    bt = BackTranslator(s2s, s2s, max_new_tokens=6)
    assert bt(texts[:2]) == bt(texts[:2]) and len(bt(texts[:2])) == 2
    with pytest.raises(FileNotFoundError, match='local folders only'):
        Paraphraser(str(ROOT / 'no-such-model'))


def test_model_failure_is_skipped_not_fatal():
    "A paraphraser that raises costs its batch (augment:model_error rows), not the run; the ledger still balances."
    def broken(texts, seeds): raise RuntimeError('CUDA out of memory')
    res = TextAugmenter(['swap', 'paraphrase'], paraphraser=broken, min_similarity=None)([(0, 'a good and funny film'), (1, 'a dull long film')])
    assert {r['op'] for r in res.rows} == {'swap'}
    errors = [s for s in res.skipped if s['reason'] == 'augment:model_error']
    assert len(errors) == 2 and 'CUDA out of memory' in errors[0]['detail']
    res.check()


def test_guards_in_ledger_and_skipped(tmp_path):
    "Drift and duplicate drops are skipped rows with details, counted per operator in ledger.json."
    rows = [dict(id=f's{i}', **r) for i, r in enumerate(sst2(80))] + [dict(id='d1', text='good film', label='1'),
                                                                      dict(id='d2', text='film good', label='1')]
    src = write_jsonl(tmp_path / 'in.jsonl', rows)
    res = augment([src], str(tmp_path / 'o'), ops='synonym,swap,typo,embed', seed=3, alpha=0.3, min_similarity=0.85, quiet=True)
    led = json.loads((tmp_path / 'o' / 'ledger.json').read_text())
    assert led == res.ledger() and led['balanced']
    assert sum(o['guard:drift'] for o in led['ops']) > 5 and sum(o['guard:duplicate'] for o in led['ops']) >= 1
    skipped = [json.loads(l) for l in (tmp_path / 'o' / 'skipped.jsonl').read_text().splitlines()]
    assert sum(s['reason'] == 'guard:drift' for s in skipped) == sum(o['guard:drift'] for o in led['ops'])
    dups = [s for s in skipped if s['reason'] == 'guard:duplicate']
    assert all(s['detail'].startswith('same text as') for s in dups)
    assert not {s['id'] for s in skipped if 'id' in s} & {r['id'] for r in res.rows}
    kept = [r['text'].lower() for r in res.rows]
    assert len(set(kept)) == len(kept) and not set(kept) & {r['text'].lower() for r in rows}


def test_reader_formats_and_labels(tmp_path):
    "Any RecordReader format: header-less TSV via column names, CSV with another text column, Parquet; labels carried."
    import pyarrow as pa, pyarrow.parquet as pq
    tsv = DATA / 'en_sentiment' / 'sst2_dev.tsv'
    res = augment([str(tsv)], str(tmp_path / 't'), ops='swap', no_header=True, column_names=['label', 'text'],
                  min_similarity=0, keep_duplicates=True, quiet=True)
    dev = [l.rstrip('\n').split('\t', 1) for l in open(tsv, encoding='utf-8')]
    assert len(res.rows) > 800 and all(r['label'] == dev[r['source_id']][0] for r in res.rows)   # 0-based line
    csv_path = tmp_path / 'w.csv'
    with open(csv_path, 'w', encoding='utf-8', newline='') as f:
        w = csv.writer(f); w.writerow(['label', 'review']); w.writerows([(r['label'], r['text']) for r in waimai(30)])
    res = augment([str(csv_path)], str(tmp_path / 'c'), text_field='review', ops='delete', min_similarity=0, quiet=True)
    assert len(res.rows) >= 25 and all(r['label'] in ('0', '1') and A.is_chinese(r['text']) for r in res.rows)
    pq.write_table(pa.table({'id': [f'p{i}' for i in range(30)], 'text': [r['text'] for r in sst2(30)], 'label': [1] * 30}), tmp_path / 'x.parquet')
    res = augment([str(tmp_path / 'x.parquet')], str(tmp_path / 'p'), ops='ocr', min_similarity=0, quiet=True)
    assert {r['source_id'] for r in res.rows} <= {f'p{i}' for i in range(30)} and all(r['label'] == 1 for r in res.rows)
