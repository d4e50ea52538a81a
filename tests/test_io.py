"""dcresearch.io on the real datasets in ../shared/data (see its README), plus bad-input cases built from them.

Run: HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/test_io.py -q
"""
import gzip, json, os, time
from collections import Counter
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from dcresearch.core import QUARANTINE_SCHEMA, RECORD_SCHEMA
from dcresearch.io import (HtmlToText, RecordReader, detect_format, ingest_steps, read_records, resolve_inputs,
                           write_jsonl, write_parquet)

from conftest import SHARED as DATA
pytestmark = pytest.mark.skipif(not DATA.exists(), reason=f'shared test data not found at {DATA}')


def read_all(inputs, **kwargs):
    "All records and all quarantine rows of a reader, each as one table."
    batches = list(RecordReader(inputs, **kwargs))
    for b in batches:
        assert b.records.schema == RECORD_SCHEMA and b.quarantined.schema == QUARANTINE_SCHEMA
    return (pa.concat_tables([b.records for b in batches]) if batches else RECORD_SCHEMA.empty_table(),
            pa.concat_tables([b.quarantined for b in batches]) if batches else QUARANTINE_SCHEMA.empty_table())


TSV_NO_HEADER = dict(csv_header=False, column_names=['label', 'text'], label_field='label')
# (file, reader parameters, records, quarantine reasons): counts from ../shared/data/README.md, except where noted
REAL = [
    ('en_sentiment/sst2_train.tsv', TSV_NO_HEADER, 6920, {}),
    ('en_sentiment/sst2_dev.tsv', TSV_NO_HEADER, 872, {}),
    ('en_intent/banking77_train.csv', dict(label_field='category'), 10_003, {}),
    # README: 7,766 rows; row on line 6376 is `0,` (an empty review): 7,765 records + 1 quarantined
    ('zh_sentiment/chnsenticorp_htl_all.csv', dict(text_field='review', label_field='label'), 7765, {'io:empty_text': 1}),
    ('zh_sentiment/waimai_10k.csv', dict(text_field='review', label_field='label'), 11_987, {}),
    ('tweets/airline_tweets.csv', dict(label_field='airline_sentiment', time_field='tweet_created'), 14_640, {}),
    ('pii/presidio_generated_small.json', dict(text_field='full_text'), 100, {}),
    ('zh_ner/cluener_dev.json', {}, 1343, {}),
    ('web/c4_demo.jsonl', {}, 300, {}),
    ('web/wiki_demo.txt', {}, 30, {}),
    ('web/ccnet_cc_en_head-0091.jsonl', dict(time_field='created'), 10, {}),
    ('web/dolma_sample-0000.warc.gz', {}, 22, {}),
    ('web/dolma_sample-0001.warc.gz', {}, 15, {}),
    ('instruct/alpaca_en_demo.json', dict(text_field='instruction'), 999, {}),
    ('instruct/alpaca_zh_demo.json', dict(text_field='instruction'), 1000, {}),
    # README: 4,076 pairs (the MRPC train size); this copy has 4 extra hand-written pairs with ids -1 at its end
    ('paraphrase/mrpc_train.txt', dict(format='tsv', text_field='#1 String', label_field='Quality'), 4080, {}),
]


@pytest.mark.parametrize('name,kwargs,n_records,reasons', REAL, ids=[r[0] for r in REAL])
def test_real_file_counts(name, kwargs, n_records, reasons):
    records, quarantined = read_all(str(DATA / name), batch_size=997, **kwargs)
    assert records.num_rows == n_records
    assert dict(Counter(quarantined['reason'].to_pylist())) == reasons
    assert len(set(records['id'].to_pylist())) == n_records  # ids unique within a file
    assert all(s.startswith(str(DATA / name)) for s in records['source'].to_pylist()[:5])


def test_real_fields_land_in_the_right_columns():
    tweets, _ = read_all(str(DATA / 'tweets/airline_tweets.csv'), label_field='airline_sentiment', time_field='tweet_created')
    assert set(tweets['label'].to_pylist()) == {'negative', 'neutral', 'positive'}
    assert tweets['timestamp'].null_count == 0
    assert str(tweets['timestamp'][0].as_py()) == '2015-02-24 19:35:52+00:00'  # -0800 converted to UTC
    meta = json.loads(tweets['meta'][0].as_py())
    assert meta['airline'] == 'Virgin America' and meta['negativereason'] is None  # empty CSV fields kept as null
    assert any('\U0001F600' <= c <= '\U0001FAFF' for t in tweets['text'].to_pylist() for c in t)  # emoji survive
    sst, _ = read_all(str(DATA / 'en_sentiment/sst2_train.tsv'), **TSV_NO_HEADER)
    assert set(sst['label'].to_pylist()) == {'0', '1'} and sst['meta'].null_count == sst.num_rows
    banking, _ = read_all(str(DATA / 'en_intent/banking77_train.csv'), label_field='category')
    assert len(set(banking['label'].to_pylist())) == 77
    mrpc, _ = read_all(str(DATA / 'paraphrase/mrpc_train.txt'), format='tsv', text_field='#1 String', label_field='Quality')
    assert set(json.loads(mrpc['meta'][0].as_py())) == {'#1 ID', '#2 ID', '#2 String'}  # BOM stripped from the header
    pii, _ = read_all(str(DATA / 'pii/presidio_generated_small.json'), text_field='full_text')
    assert json.loads(pii['meta'][0].as_py())['spans'][0]['entity_type'] == 'PERSON'
    ccnet, _ = read_all(str(DATA / 'web/ccnet_cc_en_head-0091.jsonl'), id_field='id')
    assert ccnet['id'][0].as_py().startswith('http')  # ids from the data


def test_real_duplicate_ids_in_data_are_kept_as_given():
    # airline_tweets.csv repeats 155 tweet_ids: id_field takes ids as they are; default ids are unique
    records, _ = read_all(str(DATA / 'tweets/airline_tweets.csv'), id_field='tweet_id')
    assert len(set(records['id'].to_pylist())) == 14_485


def test_ids_stable_across_reads_and_unique_across_files():
    inputs = [str(DATA / p) for p in ('web/c4_demo.jsonl', 'web/wiki_demo.txt', 'zh_ner/cluener_dev.json',
                                      'web/dolma_sample-0000.warc.gz')]
    reader = RecordReader(inputs, batch_size=100)
    first, second = [b.records for b in reader], [b.records for b in reader]
    assert [t.num_rows for t in first] == [t.num_rows for t in second]
    ids = pa.concat_tables(first)['id'].to_pylist()
    assert ids == pa.concat_tables(second)['id'].to_pylist()
    assert len(ids) == len(set(ids)) == 300 + 30 + 1343 + 22
    assert max(t.num_rows for t in first) <= 100


def test_directory_of_mixed_formats():
    records, quarantined = read_all(str(DATA / 'web'))
    assert records.num_rows == 300 + 10 + 22 + 15 + 30 + 30  # + iana.warc.gz (the replayable site) ...
    assert set(zip(quarantined['source'].to_pylist(), quarantined['reason'].to_pylist())) == {
        (str(DATA / 'web/iana.warc.gz'), 'io:empty_text')} and quarantined.num_rows == 18  # ... whose 18 empty responses are quarantined
    assert resolve_inputs(str(DATA / 'web' / '*.warc.gz')) == [str(DATA / f'web/dolma_sample-000{i}.warc.gz') for i in (0, 1)] + [str(DATA / 'web/iana.warc.gz')]


def test_warc_html_to_text():
    records, _ = read_all([str(DATA / 'web/dolma_sample-0000.warc.gz'), str(DATA / 'web/dolma_sample-0001.warc.gz')])
    assert records.num_rows == 37
    steps = ingest_steps(detect_format('x.warc.gz'))
    assert [type(s) for s in steps] == [HtmlToText]
    result = steps[0](records)
    assert result.kept.num_rows + result.n_rejected + result.n_quarantined == 37
    assert result.kept.num_rows >= 30, Counter(result.rejected['reason'].to_pylist())  # most pages have main text
    assert result.kept.schema == RECORD_SCHEMA
    for text, meta in zip(result.kept['text'].to_pylist(), result.kept['meta'].to_pylist()):
        assert '<html' not in text.lower() and json.loads(meta)['url'].startswith('http')


def test_jsonl_gz_and_zst_round_trip(tmp_path):
    before, _ = read_all(str(DATA / 'web/ccnet_cc_en_head-0091.jsonl'), time_field='created')
    for name in ('out.jsonl.gz', 'out.jsonl.zst'):
        out = tmp_path / name
        assert write_jsonl([before.slice(0, 4), before.slice(4)], out) == 10
        assert out.read_bytes()[:2] == (b'\x1f\x8b' if name.endswith('.gz') else b'\x28\xb5')  # really compressed
        after, q = read_all(str(out), id_field='id', label_field='label', time_field='timestamp')
        assert q.num_rows == 0
        cols = ['id', 'text', 'label', 'timestamp']
        assert after.select(cols).equals(before.select(cols))
        assert [json.loads(m)['meta'] for m in after['meta'].to_pylist()] == before['meta'].to_pylist()


def test_parquet_round_trip_and_read(tmp_path):
    records, _ = read_all(str(DATA / 'en_intent/banking77_train.csv'), label_field='category')
    out = tmp_path / 'banking.parquet'
    assert write_parquet((records.slice(i, 3000) for i in range(0, records.num_rows, 3000)), out) == 10_003
    assert pq.read_table(out).equals(records)
    again, q = read_all(str(out), label_field='label', id_field='id', batch_size=4096)
    assert again.num_rows == 10_003 and q.num_rows == 0
    assert again['id'].to_pylist() == records['id'].to_pylist()
    assert again['text'].to_pylist() == records['text'].to_pylist()


def test_truncated_gz_keeps_what_was_read(tmp_path):
    blob = gzip.compress((DATA / 'web/c4_demo.jsonl').read_bytes())
    cut = tmp_path / 'c4_cut.jsonl.gz'
    cut.write_bytes(blob[:len(blob) // 2])
    records, q = read_all(str(cut))
    assert 50 < records.num_rows < 300
    assert q['reason'].to_pylist()[-1] == 'io:truncated_file'
    assert q['line'][q.num_rows - 1].as_py() > records.num_rows and 'EOFError' in q['detail'][q.num_rows - 1].as_py()


def test_truncated_zst_keeps_what_was_read(tmp_path):
    blob = zstandard.ZstdCompressor().compress((DATA / 'web/wiki_demo.txt').read_bytes())
    cut = tmp_path / 'wiki_cut.txt.zst'
    cut.write_bytes(blob[:len(blob) // 2])
    records, q = read_all(str(cut))
    assert 0 < records.num_rows < 30 and q['reason'].to_pylist()[-1] == 'io:truncated_file'


def test_broken_lines_mixed_in_are_all_accounted_for(tmp_path):
    good = (DATA / 'web/c4_demo.jsonl').read_bytes().splitlines()
    broken = [b'{"text": "unterminated', b'not json at all', b'[1, 2, 3]', b'{"content": "no text field"}',
              b'{"text": ""}', b'{"text": 3.14}', b'{"text": "bad \xff\xfe bytes"}']
    lines = [l for i, g in enumerate(good) for l in ([g, broken[i % len(broken)]] if i % 10 == 0 else [g])]
    p = tmp_path / 'mixed.jsonl'
    p.write_bytes(b'\n'.join(lines) + b'\n\n')  # a trailing blank line is not an input unit
    records, q = read_all(str(p), batch_size=64)
    assert records.num_rows == 300 and records.num_rows + q.num_rows == len(lines)
    assert set(q['reason'].to_pylist()) == {'io:invalid_json', 'io:not_an_object', 'io:missing_text_field',
                                            'io:empty_text', 'io:non_string_text', 'io:invalid_utf8'}
    assert sorted(q['line'].to_pylist()) == [i + 1 for i, l in enumerate(lines) if l in broken]


def test_invalid_utf8_in_csv_and_txt(tmp_path):
    rows = (DATA / 'zh_sentiment/waimai_10k.csv').read_bytes().splitlines(keepends=True)
    rows[5] = rows[5][:-6] + b'\xe4\xbd\n'  # cut a multi-byte character short
    p = tmp_path / 'waimai_bad.csv'
    p.write_bytes(b''.join(rows))
    records, q = read_all(str(p), text_field='review', label_field='label')
    assert records.num_rows == 11_986
    assert q.select(['reason', 'line']).to_pylist() == [{'reason': 'io:invalid_utf8', 'line': 6}]
    t = tmp_path / 'wiki_bad.txt'
    t.write_bytes(b'\xff\xfe' + (DATA / 'web/wiki_demo.txt').read_bytes())
    records, q = read_all(str(t))
    assert records.num_rows == 29 and q['reason'].to_pylist() == ['io:invalid_utf8'] and q['line'][0].as_py() == 1


def test_csv_wrong_field_count(tmp_path):
    rows = (DATA / 'en_intent/banking77_train.csv').read_text().splitlines(keepends=True)
    rows[10] = rows[10].rstrip('\n') + ',extra\n'
    rows[20] = 'only_one_field\n'
    p = tmp_path / 'banking_bad.csv'
    p.write_text(''.join(rows))
    records, q = read_all(str(p), label_field='category')
    assert records.num_rows == 10_001
    assert q.select(['reason', 'line', 'detail']).to_pylist() == [
        {'reason': 'io:wrong_field_count', 'line': 11, 'detail': 'expected 2 fields, got 3'},
        {'reason': 'io:wrong_field_count', 'line': 21, 'detail': 'expected 2 fields, got 1'}]


def test_too_large_documents(tmp_path):
    sizes = [len(l.encode()) for l in (DATA / 'web/wiki_demo.txt').read_text().splitlines()]
    limit = sorted(sizes)[20]
    records, q = read_all(str(DATA / 'web/wiki_demo.txt'), max_doc_bytes=limit)
    assert records.num_rows == sum(s <= limit for s in sizes) and records.num_rows + q.num_rows == 30
    assert set(q['reason'].to_pylist()) == {'io:too_large'} and f'max_doc_bytes={limit}' in q['detail'][0].as_py()
    _, q = read_all(str(DATA / 'web/dolma_sample-0000.warc.gz'), max_doc_bytes=20_000)
    assert q.num_rows > 0 and set(q['reason'].to_pylist()) == {'io:too_large'}


def test_errors_before_any_work(tmp_path):
    missing = str(DATA / 'web' / 'no_such_file.jsonl')
    with pytest.raises(FileNotFoundError, match='no_such_file.jsonl'):
        RecordReader([str(DATA / 'web/c4_demo.jsonl'), missing])
    with pytest.raises(ValueError, match=r"goldfish.JPEG.*format="):
        read_records(str(DATA / 'images'))  # JPEGs are not a supported format: the error names the file
    with pytest.raises(FileNotFoundError, match=r'no file matches the glob .*\*\.ndjson'):
        RecordReader(str(DATA / 'web' / '*.ndjson'))
    with pytest.raises(ValueError, match='column_names'):
        RecordReader(str(DATA / 'en_sentiment/sst2_dev.tsv'), csv_header=False)


def test_memory_url():
    url = 'memory://test_io/c4.jsonl.gz'
    with fsspec.open(url, 'wb', compression='gzip') as f:
        f.write((DATA / 'web/c4_demo.jsonl').read_bytes())
    records, q = read_all(url)
    assert records.num_rows == 300 and q.num_rows == 0
    assert records['source'][0].as_py() == f'{url}:1'
    assert RecordReader(url).fingerprint() == RecordReader(url).fingerprint()
    assert resolve_inputs('memory://test_io/*.gz') == ['memory:///test_io/c4.jsonl.gz']


def test_jsonl_speed(tmp_path):
    p = tmp_path / 'short.jsonl'
    n = 200_000
    p.write_text(''.join('{"text": "a short line number %d"}\n' % i for i in range(n)))
    start = time.perf_counter()
    assert sum(b.records.num_rows for b in RecordReader(str(p), batch_size=10_000)) == n
    rate = n / (time.perf_counter() - start)
    assert rate > 50_000, f'{rate:,.0f} lines/s'  # ~400k/s measured on one core; lenient for busy CI machines


def test_ingest_reads_hugging_face_layouts_offline(shared, tmp_path):
    "SST-2 dev saved with `datasets.save_to_disk` and written in the Hub's Parquet layout: `dcr ingest` reads both, splits in meta."
    import datasets, pandas as pd, subprocess
    from conftest import DCR, ROOT
    from dcresearch.lake import read_delta_table
    df = pd.read_csv(shared/'en_sentiment'/'sst2_dev.tsv', sep='\t', header=None, names=['label', 'sentence'], quoting=3)
    dd = datasets.DatasetDict({'validation': datasets.Dataset.from_pandas(df.iloc[:500], preserve_index=False),
                               'test': datasets.Dataset.from_pandas(df.iloc[500:], preserve_index=False)})
    dd.save_to_disk(str(tmp_path/'saved'))
    (tmp_path/'hub'/'data').mkdir(parents=True); (tmp_path/'hub'/'README.md').write_text('---\nlicense: other\n---\n')
    for split, part in dd.items(): part.to_parquet(str(tmp_path/'hub'/'data'/f'{split}-00000-of-00001.parquet'))
    for name in ('saved', 'hub'):
        r = subprocess.run([DCR, 'ingest', tmp_path/name, '--out', tmp_path/f'{name}_stage', '--text-field', 'sentence',
                            '--label-field', 'label', '--quiet'], cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, 'HF_DATASETS_OFFLINE': '1'})
        assert r.returncode == 0, r.stderr[-2000:]
        t = read_delta_table(tmp_path/f'{name}_stage'/'records')
        assert t.num_rows == len(df)
        splits = [json.loads(m)['split'] for m in t.column('meta').to_pylist()]
        assert splits.count('validation') == 500 and splits.count('test') == len(df) - 500
