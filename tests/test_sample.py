"Tests of the sample corpus files: byte-identical output, line counts, exactly the intended broken lines."
import json, os, subprocess, sys
from collections import Counter
from pathlib import Path

import pytest

from dcresearch.privacy.checksums import cn_id_valid, luhn_valid
from dcresearch.sample import BROKEN_KINDS, PII_TYPES, SAMPLE_FIELDS, broken_lines, generate_documents, write_sample

N_DOCS, N_BROKEN = 600, 6


def _is_broken(line: bytes) -> bool:
    "A line ingest cannot turn into a record: not UTF-8, not JSON, not an object, or no text."
    try: obj = json.loads(line.decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError): return True
    return not isinstance(obj, dict) or not obj.get('text')


@pytest.fixture(scope='module')
def two_runs(tmp_path_factory):
    a, b = tmp_path_factory.mktemp('a'), tmp_path_factory.mktemp('b')
    return (write_sample(a, n_docs=N_DOCS, seed=3, n_files=4, n_broken=N_BROKEN),
            write_sample(b, n_docs=N_DOCS, seed=3, n_files=4, n_broken=N_BROKEN))


def test_byte_identical(two_runs):
    pa, pb = two_runs
    assert [p.name for p in pa] == [f'corpus-{i:05d}.jsonl' for i in range(4)]
    assert [p.name for p in pb] == [p.name for p in pa]
    for x, y in zip(pa, pb): assert x.read_bytes() == y.read_bytes()


def test_line_counts_and_sharding(two_runs):
    paths = two_runs[0]
    per_file = [p.read_bytes().splitlines() for p in paths]
    assert sum(map(len, per_file)) == N_DOCS + N_BROKEN
    good_per_file = [sum(not _is_broken(l) for l in lines) for lines in per_file]
    assert good_per_file == [N_DOCS // 4] * 4
    assert all(any(_is_broken(l) for l in lines) for lines in per_file)   # broken lines spread over the shards


def test_good_lines_parse(two_runs):
    docs = [json.loads(l) for p in two_runs[0] for l in p.read_bytes().splitlines() if not _is_broken(l)]
    assert [d['doc_id'] for d in docs] == [f'sample-{i:06d}' for i in range(N_DOCS)]
    assert all(tuple(d) == SAMPLE_FIELDS for d in docs)
    assert docs == list(generate_documents(N_DOCS, seed=3))
    ids = {d['doc_id'] for d in docs}
    assert all(d['dup_of'] in ids for d in docs if d['dup_of'])
    assert all(p['type'] in PII_TYPES and p['value'] in d['text'] for d in docs for p in d['pii'])


def test_broken_lines_are_exactly_the_intended_ones(two_runs):
    broken = [l for p in two_runs[0] for l in p.read_bytes().splitlines() if _is_broken(l)]
    assert sorted(broken) == sorted(broken_lines(N_BROKEN))
    kinds = []
    for line in broken:
        try: obj = json.loads(line.decode('utf-8'))
        except UnicodeDecodeError: kinds.append('invalid_utf8'); continue
        except json.JSONDecodeError: kinds.append('invalid_json or truncated_object'); continue
        kinds.append('not_an_object' if not isinstance(obj, dict) else 'missing_text' if 'text' not in obj else 'empty_text')
    assert Counter(kinds) == Counter({'invalid_utf8': 1, 'invalid_json or truncated_object': 2, 'not_an_object': 1,
                                      'missing_text': 1, 'empty_text': 1})
    assert len(BROKEN_KINDS) == N_BROKEN


def test_same_bytes_in_another_process(tmp_path, two_runs):
    "Output must not depend on PYTHONHASHSEED or anything else that differs between processes."
    code = (f'from dcresearch.sample import write_sample; '
            f'write_sample({str(tmp_path)!r}, n_docs={N_DOCS}, seed=3, n_files=4, n_broken={N_BROKEN})')
    env = {**os.environ, 'PYTHONHASHSEED': '12345'}
    subprocess.run([sys.executable, '-c', code], check=True, env=env, cwd=Path(__file__).resolve().parents[1])
    for p in two_runs[0]: assert (tmp_path / p.name).read_bytes() == p.read_bytes()


def test_default_corpus_ground_truth():
    "The default 3,000-document corpus has the promised mix and valid ground truth."
    docs = list(generate_documents(3000, seed=0))
    kinds = Counter(d['kind'] for d in docs)
    assert kinds['good'] == 1350 and kinds['review'] == 600 and kinds['near_dup'] + kinds['exact_dup'] == 240
    zh = sum(d['lang'] == 'zh' for d in docs) / len(docs)
    assert 0.25 < zh < 0.35
    pii = [p for d in docs for p in d['pii']]
    assert {p['type'] for p in pii} == set(PII_TYPES)
    assert all(cn_id_valid(p['value']) for p in pii if p['type'] == 'cn_id')
    assert all(luhn_valid(p['value']) for p in pii if p['type'] == 'credit_card')
    assert 0.10 <= sum(bool(d['pii']) for d in docs) / len(docs) <= 0.16
    labels = Counter((d['lang'], d['label']) for d in docs if d['kind'] == 'review')
    for lang in ('en', 'zh'):
        pos, neg = labels[(lang, 'positive')], labels[(lang, 'negative')]
        assert 0.4 < pos / (pos + neg) < 0.6
    assert max(len(d['text'].encode()) for d in docs if d['kind'] == 'long') > 20_000
    assert all(1 <= len(d['text'].split()) <= 5 for d in docs if d['kind'] == 'short')
