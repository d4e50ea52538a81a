"""Lake management on a lake built from the sample corpus: history, restore, backup, verify, verified
restore, and right-to-erasure proven by scanning every byte of every file under the lake."""
import base64, hashlib, json, shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dcresearch.core import Step, split_by_mask
from dcresearch.io import RecordReader
from dcresearch.lake import read_delta_table, sql, write_delta
from dcresearch.lakeops import (ERASURE_LOG, ErasureIncomplete, LakeOpsError, backup, erase, erasure_plan, files_containing, lake,
                                read_erasure_log, restore_backup, restore_version, table_history, verify_backup)
from dcresearch.pipeline import Pipeline, load_ledger, verify_stage
from dcresearch.sample import write_sample


class RejectRepliesAndEvenLines(Step):
    "Reject replies (text starting `Re: `) and records from even input lines, so `rejected` holds real documents."
    stage = 'test'
    def __call__(self, t):
        keep = np.array([int(s.rsplit(':', 1)[1]) % 2 == 1 and not x.startswith('Re: ')
                         for s, x in zip(t['source'].to_pylist(), t['text'].to_pylist())], dtype=bool)
        return split_by_mask(t, keep, self.stage, 'test:reply_or_even_line')


def _pick_email(files) -> str:
    "A sample e-mail address (from the ground-truth `pii` lists) in the text of a document on an odd line (kept)."
    for f in files:
        for n, line in enumerate(Path(f).read_bytes().decode('utf-8', 'replace').splitlines(), 1):  # broken lines: bad UTF-8
            try: d = json.loads(line)
            except ValueError: continue
            if not isinstance(d, dict) or n % 2 == 0: continue
            for e in sorted({p['value'] for p in d.get('pii') or [] if p.get('type') == 'email'}):
                if e in (d.get('text') or ''): return e
    raise AssertionError('the sample has no e-mail address in a kept document: change its size or seed')


@pytest.fixture(scope='module')
def pristine(tmp_path_factory):
    "A lake built once: lake/ingest (records, rejected, quarantine, ledger) and lake/review (PII findings)."
    root = tmp_path_factory.mktemp('lakeops')
    files = write_sample(root/'sample', n_docs=300, n_files=2, n_broken=4)
    email = _pick_email(files)
    with open(files[0], 'ab') as f:
        reply = dict(text=f'Re: your ticket. Please write to {email} again.', pii=[dict(type='email', value=email)])
        f.write((json.dumps(reply) + '\n').encode())  # a second document: rejected, with the value in text and meta
        f.write(('{"text": "please write to ' + email + ' about the\n').encode())  # malformed: its raw preview is quarantined
    stage = root/'lake'/'ingest'
    Pipeline([RejectRepliesAndEvenLines()], stage='ingest', shard_size=100, progress=False).run(RecordReader([str(f) for f in files]), stage)
    # PII findings written by write_delta: delta-rs puts each string column's min/max (first 32 characters) in the log
    recs = read_delta_table(stage/'records')
    found = [dict(id=i, type=p['type'], value=p['value']) for i, m in zip(recs['id'].to_pylist(), recs['meta'].to_pylist())
             for p in json.loads(m).get('pii') or [] if p['value'] == email]
    write_delta(root/'lake'/'review', pa.Table.from_pylist(found))
    return root/'lake', email


@pytest.fixture
def lake_copy(pristine, tmp_path):
    src, email = pristine
    shutil.copytree(src, tmp_path/'lake')
    return tmp_path/'lake', email


def _scan(root: Path, needle: str) -> list[str]:
    "Independent of the module's search: raw bytes of every file, and every Parquet file decoded to Python values."
    hits = []
    for f in sorted(p for p in root.rglob('*') if p.is_file()):
        data = f.read_bytes()
        if needle.encode() in data or (data[:4] == b'PAR1' and
                                        needle in json.dumps(pq.read_table(f).to_pylist(), ensure_ascii=False, default=str)):
            hits.append(f.relative_to(root).as_posix())
    return hits


def _sorted(t: pa.Table, keys=('id',)) -> list[dict]:
    return t.sort_by([(k, 'ascending') for k in keys]).to_pylist()


def test_sample_lake_has_the_value_everywhere(pristine):
    lake_dir, email = pristine
    hits = _scan(lake_dir, email)
    for table in ('ingest/records/', 'ingest/rejected/', 'ingest/quarantine/', 'review/'):
        assert any(h.startswith(table) and h.endswith('.parquet') for h in hits), (table, hits)
    assert any(h.startswith('review/_delta_log/') for h in hits), hits  # the log's statistics hold it too
    assert sorted(p.relative_to(lake_dir).as_posix() for p in files_containing(lake_dir, email)) == hits


def test_history_and_restore_on_a_stage(lake_copy, capsys):
    lake_dir, _ = lake_copy
    stage = lake_dir/'ingest'
    original = read_delta_table(stage/'records')
    v0 = table_history(stage/'records')[0]['version']
    write_delta(stage/'records', original.slice(0, 10), mode='append')
    write_delta(stage/'records', original.slice(0, 5), mode='overwrite')
    h = table_history(stage/'records')
    assert [r['version'] for r in h[:3]] == [v0 + 2, v0 + 1, v0]
    assert [r['rows'] for r in h[:3]] == [5, original.num_rows + 10, original.num_rows]
    assert [r['rows_added'] for r in h[:3]] == [5, 10, original.num_rows]
    assert all(r['readable'] for r in h)
    out = lake('history', str(stage))
    assert set(out) == {'records', 'rejected', 'quarantine', 'ledger'}
    printed = capsys.readouterr().out
    assert 'operation' in printed and 'WRITE' in printed
    rows = lake('restore', str(stage/'records'), version=v0)
    assert (rows[0]['rows_before'], rows[0]['rows_after'], rows[0]['version_after']) == (5, original.num_rows, v0 + 3)
    assert _sorted(read_delta_table(stage/'records')) == _sorted(original)
    assert 'rows_before' in capsys.readouterr().out
    with pytest.raises(LakeOpsError, match='no version'): restore_version(stage, 99)


def test_backup_verify_detects_corruption(lake_copy, tmp_path, capsys):
    lake_dir, _ = lake_copy
    stage = lake_dir/'ingest'
    res = lake('backup', str(stage), dest=str(tmp_path/'bk'))
    assert res.verify.ok and res.files > 8 and set(res.tables) == {'records', 'rejected', 'quarantine', 'ledger'}
    man = json.loads((tmp_path/'bk'/'_backup_manifest.json').read_text())
    f = next(iter(man['files']))
    assert man['files'][f]['sha256'] == hashlib.sha256((stage/f).read_bytes()).hexdigest()
    assert lake('verify', str(stage), dest=str(tmp_path/'bk')).ok  # the live stage is unchanged since the backup
    assert backup(lake_dir, f'memory://{tmp_path.name}/whole').verify.ok  # a whole lake, to an fsspec URL
    part = next((tmp_path/'bk'/'records').glob('*.parquet'))
    data = bytearray(part.read_bytes()); data[100] ^= 1; part.write_bytes(bytes(data))
    rep = verify_backup(tmp_path/'bk')
    assert not rep.ok and rep.changed == [f'records/{part.name}'] and not rep.missing and not rep.extra
    with pytest.raises(LakeOpsError, match='verification failed'): lake('verify', str(tmp_path/'bk'))
    assert 'MISMATCH' in capsys.readouterr().out
    with pytest.raises(LakeOpsError, match='damaged'): restore_backup(tmp_path/'bk', tmp_path/'restored')
    assert not (tmp_path/'restored').exists()  # nothing half-restored
    write_delta(stage/'records', read_delta_table(stage/'records').slice(0, 1), mode='append')
    rep = verify_backup(stage, tmp_path/'bk')  # live vs backup: the new commit shows as extra files
    assert not rep.ok and any('_delta_log/' in e for e in rep.extra) and not rep.missing


def test_verified_restore_equals_the_original(lake_copy, tmp_path):
    lake_dir, _ = lake_copy
    stage = lake_dir/'ingest'
    mem = f'memory://{tmp_path.name}/restore'
    backup(stage, mem)
    res = lake('restore', str(tmp_path/'back'), dest=mem)
    assert set(res.tables) == {'records', 'rejected', 'quarantine', 'ledger'}
    for name, keys in [('records', ['id']), ('rejected', ['id']), ('quarantine', ['source', 'line'])]:
        assert _sorted(read_delta_table(tmp_path/'back'/name), keys) == _sorted(read_delta_table(stage/name), keys), name
    assert str(load_ledger(tmp_path/'back')) == str(load_ledger(stage))
    assert verify_backup(tmp_path/'back', mem).ok
    with pytest.raises(LakeOpsError, match='not empty'): restore_backup(mem, tmp_path/'back')


def test_erase_by_email_leaves_no_byte_behind(lake_copy, capsys, monkeypatch):
    lake_dir, email = lake_copy
    monkeypatch.setenv('DCR_KEY', base64.b64encode(bytes(range(32))).decode())  # the lake key: the erasure log keeps an HMAC
    stage = lake_dir/'ingest'
    before = {n: read_delta_table(stage/n) for n in ('records', 'rejected', 'quarantine')}
    ledger_before = str(load_ledger(stage))
    old_version = table_history(stage/'records')[-1]['version']
    # dry run: prints the plan, deletes nothing, never prints the value
    plan = lake('erase', str(lake_dir), value=email)
    assert all(plan.matches[t] > 0 for t in ('ingest/records', 'ingest/rejected', 'ingest/quarantine', 'review'))
    assert plan.matches['ingest/ledger'] == 0
    assert email not in capsys.readouterr().out
    assert read_delta_table(stage/'records').num_rows == before['records'].num_rows
    (stage/'decisions.jsonl').write_text(json.dumps(dict(id=1, who=email)) + '\n' + json.dumps(dict(id=2)) + '\n')
    rep = lake('erase', str(lake_dir), value=email, yes=True)
    assert rep.verified and rep.deleted == plan.matches
    assert rep.side_files == {'ingest/decisions.jsonl': 1} and (stage/'decisions.jsonl').read_text() == '{"id": 2}\n'
    assert _scan(lake_dir, email) == [] and files_containing(lake_dir, email) == []
    # the rewritten tables still take filtered reads and SQL (DeltaTable.delete's string_view files would not)
    some_id = read_delta_table(stage/'records')['id'][0].as_py()
    assert sql(f"select count(*) from records where id = '{some_id}'", stage).fetchall() == [(1,)]
    # every other row is still there, unchanged
    for name, t in before.items():
        col = 'raw' if name == 'quarantine' else 'text'
        keep = t.filter(pa.array([email not in json.dumps(r, ensure_ascii=False, default=str) for r in t.to_pylist()]))
        keys = ['source', 'line'] if name == 'quarantine' else ['id']
        assert _sorted(read_delta_table(stage/name), keys) == _sorted(keep, keys), name
        assert keep.num_rows == t.num_rows - plan.matches[f'ingest/{name}'], col
    # time travel: what history still lists is readable and clean; older versions are gone
    for h in table_history(stage/'records'):
        assert h['readable'] and email not in str(read_delta_table(stage/'records', version=h['version']).to_pylist())
    with pytest.raises(Exception): read_delta_table(stage/'records', version=old_version)
    with pytest.raises(LakeOpsError): restore_version(stage/'records', old_version)
    # the ledger keeps its counts (no content); the erasure log has the count per table and a hash, not the value
    assert str(load_ledger(stage)) == ledger_before
    entry = read_erasure_log(lake_dir)[-1]
    assert entry['selector']['kind'] == 'value' and len(entry['selector']['hmac']) == 64
    assert hashlib.sha256(email.encode()).hexdigest() not in json.dumps(entry)  # no plain hash anyone could recompute
    # the stage still verifies: run.json points at the rewritten versions and counts the erased rows
    assert verify_stage(stage).ok, str(verify_stage(stage))
    assert entry['deleted']['ingest/records'] == plan.matches['ingest/records'] and entry['who']
    assert email not in (lake_dir/ERASURE_LOG).read_text()
    lake('history', str(stage))
    assert 'erasure(s) removed the history' in capsys.readouterr().out


def test_erase_by_ids_from_a_file(lake_copy, tmp_path):
    lake_dir, _ = lake_copy
    stage = lake_dir/'ingest'
    recs, rej = read_delta_table(stage/'records'), read_delta_table(stage/'rejected')
    texts = recs['text'].to_pylist() + rej['text'].to_pylist()
    def unique(t):  # a document whose text is nowhere else, so scanning for it proves its bytes are gone
        i = next(i for i, x in enumerate(t['text'].to_pylist()) if len(x) > 80 and sum(x in y for y in texts) == 1)
        return t['id'][i].as_py(), t['text'][i].as_py()
    (kept_id, kept_text), (rej_id, rej_text) = unique(recs), unique(rej)
    (tmp_path/'ids.txt').write_text(f'# erasure request 42\n{kept_id}\n\n{rej_id}  # rejected copy\nnot-an-id\n')
    rep = lake('erase', str(stage), ids_file=str(tmp_path/'ids.txt'), yes=True)
    assert rep.deleted == {'ledger': 0, 'quarantine': 0, 'records': 1, 'rejected': 1}
    assert rep.selector['kind'] == 'ids' and rep.selector['n'] == 3 and kept_id not in json.dumps(rep.selector)
    assert read_delta_table(stage/'records').num_rows == recs.num_rows - 1
    assert kept_id not in read_delta_table(stage/'records')['id'].to_pylist()
    assert _scan(stage, kept_text) == [] and _scan(stage, rej_text) == []


def test_erase_refuses_unclear_or_unsafe_requests(lake_copy):
    lake_dir, email = lake_copy
    with pytest.raises(LakeOpsError, match='either ids'): lake('erase', str(lake_dir), yes=True)
    with pytest.raises(LakeOpsError, match='too short'): erasure_plan(lake_dir, value='a')
    (lake_dir/'ingest'/'_work').mkdir()
    with pytest.raises(LakeOpsError, match='partial pipeline run'): lake('erase', str(lake_dir), value=email, yes=True)
    assert files_containing(lake_dir/'ingest'/'records', email)  # nothing was touched


def test_erase_fails_loudly_when_the_value_survives_elsewhere(lake_copy):
    lake_dir, email = lake_copy
    (lake_dir/'ingest'/'notes.txt').write_text(f'called {email} on Monday')
    with pytest.raises(ErasureIncomplete, match='notes.txt'): erase(lake_dir, value=email)
    entry = read_erasure_log(lake_dir)[-1]
    assert entry['verified'] is False and entry['leftover'] == ['ingest/notes.txt']
    assert _scan(lake_dir, email) == ['ingest/notes.txt']  # the tables themselves are clean
