"Tests of dcresearch.augment (EDA operators) on real data: determinism, ids/labels, rates, Chinese, the CLI contract."
import csv, json, os, socket, subprocess, sys
from pathlib import Path

import pytest

from dcresearch import augment as A
from dcresearch.augment import EDAAugmenter, OPS, augment, eda, tokenize

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data'


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
    assert reasons[100] == reasons[101] == 'augment:too_short' and reasons[102] == 'augment:no_text'


def test_same_file_in_another_process(tmp_path):
    "A second process with another PYTHONHASHSEED writes the identical file (seeding does not use hash())."
    src = write_jsonl(tmp_path / 'in.jsonl', sst2(30) + waimai(30))
    code = ('import sys; from dcresearch.augment import augment; '
            'augment([sys.argv[1]], sys.argv[2], ops=["synonym,insert,swap,delete"], seed=7, quiet=True)')
    for name, hs in (('p1', '1'), ('p2', '2')):
        subprocess.run([sys.executable, '-c', code, src, str(tmp_path / name)], check=True,
                       env={**os.environ, 'PYTHONHASHSEED': hs})
    assert (tmp_path / 'p1' / 'augmented.jsonl').read_bytes() == (tmp_path / 'p2' / 'augmented.jsonl').read_bytes()
    here = tmp_path / 'here'
    augment([src], str(here), ops='synonym,insert,swap,delete', seed=7, quiet=True)
    assert (here / 'augmented.jsonl').read_bytes() == (tmp_path / 'p1' / 'augmented.jsonl').read_bytes()


def test_missing_input_and_bad_op(tmp_path):
    "A missing file or an unknown operator is a clear error before anything is written."
    with pytest.raises(FileNotFoundError, match='does not exist'):
        augment([str(tmp_path / 'nope.jsonl')], str(tmp_path / 'o'), quiet=True)
    src = write_jsonl(tmp_path / 'in.jsonl', [dict(text='a good day')])
    with pytest.raises(ValueError, match='unknown augmentation operator'):
        augment([src], str(tmp_path / 'o'), ops=['synonym,typo'], quiet=True)
    assert not (tmp_path / 'o').exists()


def test_unsupported_language_is_skipped_with_reason(tmp_path):
    "Russian text has no synonym source: it is skipped as augment:unsupported_language, not augmented by halves."
    src = write_jsonl(tmp_path / 'in.jsonl', [dict(text='Это очень хороший фильм'), dict(text='a fine and good film')])
    res = augment([src], str(tmp_path / 'o'), quiet=True)
    assert {r['source_id'] for r in res.rows} == {1}
    assert res.counts()['augment:unsupported_language'] == 1
