"""Faults: a run killed at every commit point (by a test hook, and from outside), two writers at once, orphaned
workers, and every kind of bad input the ledger must answer for. The promise under test: whatever instant a run
dies, the stage shows the previous finished run or the new one, and the same command again ends with the tables
of an uninterrupted run; never an "ok" ledger over missing rows."""
import json, os, signal, subprocess, time
from pathlib import Path

import pytest

from conftest import DCR, ROOT
from dcresearch.lake import read_run_manifest, read_stage_table
from dcresearch.pipeline import verify_stage
from dcresearch.sample import write_sample

INGEST = ['--workers', '2', '--shard-size', '500', '--quiet']


def dcr(*args, env=None, timeout=300):
    return subprocess.run([DCR, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def start(*args, env=None):
    return subprocess.Popen([DCR, *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def tables(stage: Path) -> dict:
    "The committed tables of a stage (as its run.json says), sorted so runs compare by id and content."
    keys = dict(records=['id'], rejected=['id'], quarantine=['source', 'line', 'reason'])
    return {n: read_stage_table(stage, n).sort_by([(k, 'ascending') for k in keys[n]]) for n in keys}


def same_as(stage: Path, ref: dict) -> bool:
    got = tables(stage)
    return all(got[n].equals(ref[n]) for n in ref)


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    "A sample corpus (4 files, broken lines mixed in), an older smaller corpus, and the uninterrupted runs of both."
    d = tmp_path_factory.mktemp('faults')
    write_sample(d/'in', n_docs=4000, seed=3, n_files=4, n_broken=8)
    write_sample(d/'old', n_docs=600, seed=5, n_files=1, n_broken=2)
    for src, out in ((d/'in', d/'ref'), (d/'old', d/'ref_old')):
        r = dcr('ingest', src, '--out', out, *INGEST)
        assert r.returncode == 0, r.stderr
    return d, tables(d/'ref'), tables(d/'ref_old')


def fault_points(corpus_dir: Path, tmp: Path) -> list[str]:
    r = dcr('ingest', corpus_dir/'in', '--out', tmp/'listing', *INGEST, env={'DCR_FAULT_AT': 'list'})
    assert r.returncode == 0, r.stderr
    return [l.split(': ', 1)[1] for l in r.stderr.splitlines() if l.startswith('fault point ')]


def test_kill_at_every_commit_point_then_rerun(corpus, tmp_path):
    d, ref, ref_old = corpus
    points = fault_points(d, tmp_path)
    assert len(points) >= 10 and 'run.json written, work directory still there' in points, points
    for n, label in enumerate(points, 1):
        out = tmp_path/f'k{n}'
        # the stage already holds a finished run of other data: a kill must leave exactly that, or the new run
        assert dcr('ingest', d/'old', '--out', out, *INGEST).returncode == 0
        r = dcr('ingest', d/'in', '--out', out, *INGEST, env={'DCR_FAULT_AT': str(n)})
        assert r.returncode == -signal.SIGKILL, (n, label, r.returncode, r.stderr[-500:])
        assert same_as(out, ref_old) or same_as(out, ref), f'killed at {label!r}: the stage shows neither run'
        assert verify_stage(out).ok, (label, str(verify_stage(out)))
        # the same command again finishes the job: the tables of an uninterrupted run, a stage that verifies
        r = dcr('ingest', d/'in', '--out', out, *INGEST)
        assert r.returncode == 0, (label, r.stderr[-2000:])
        assert same_as(out, ref), f'killed at {label!r}, re-run differs from the uninterrupted run'
        assert dcr('verify', out).returncode == 0, label
        assert not (out/'_work').exists()


def test_first_run_killed_mid_commit_is_not_a_stage_until_rerun(corpus, tmp_path):
    d, ref, _ = corpus
    out = tmp_path/'first'
    r = dcr('ingest', d/'in', '--out', out, *INGEST, env={'DCR_FAULT_AT': '3'})  # records committed, nothing else
    assert r.returncode == -signal.SIGKILL
    v = dcr('verify', out)
    assert v.returncode != 0 and 'did not finish' in v.stderr, v.stderr
    assert dcr('sql', 'select count(*) from records', '--stage-dir', out).returncode != 0  # no half stage is served
    assert dcr('ingest', d/'in', '--out', out, *INGEST).returncode == 0 and same_as(out, ref)


@pytest.mark.parametrize('watch', ['_work/done/000002.json', 'records/_delta_log/00000000000000000001.json',
                                   'quarantine/_delta_log/00000000000000000001.json', 'run.json'])
def test_outside_killer_then_rerun(corpus, tmp_path, watch):
    "SIGKILL from outside the moment a file appears (a shard marker, a Delta commit, run.json), as an operator would."
    d, ref, _ = corpus
    out = tmp_path/'ok'
    p = start('ingest', d/'in', '--out', out, *INGEST)
    deadline = time.time() + 120
    while time.time() < deadline and not (out/watch).exists() and p.poll() is None: time.sleep(0.002)
    p.send_signal(signal.SIGKILL); p.wait()
    if (out/'run.json').exists() and read_run_manifest(out):  # killed after the stage was committed: it is whole
        assert same_as(out, ref) and verify_stage(out).ok
    r = dcr('ingest', d/'in', '--out', out, *INGEST)
    assert r.returncode == 0, r.stderr[-2000:]
    assert same_as(out, ref) and dcr('verify', out).returncode == 0


def test_two_writers_one_gets_the_lock_the_other_exits_2(corpus, tmp_path):
    d, ref, _ = corpus
    out = tmp_path/'two'
    # the first writer is paused while it holds the lock, so the second one always meets it however loaded the machine is
    procs = [start('ingest', d/'in', '--out', out, *INGEST)]
    lock, deadline = out/'_dcr_lock', time.time() + 120
    while time.time() < deadline and procs[0].poll() is None and f'"pid": {procs[0].pid}' not in (lock.read_text() if lock.exists() else ''):
        time.sleep(0.01)
    procs[0].send_signal(signal.SIGSTOP)
    t0 = time.time()
    procs.append(start('ingest', d/'in', '--out', out, *INGEST))
    try: procs[1].wait(timeout=60)
    finally: procs[0].send_signal(signal.SIGCONT)
    ended = {1: time.time() - t0}
    while len(ended) < 2 and time.time() - t0 < 300:
        for i, p in enumerate(procs):
            if i not in ended and p.poll() is not None: ended[i] = time.time() - t0
        time.sleep(0.02)
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], codes
    loser, winner = (0, 1) if codes[0] == 2 else (1, 0)
    err = procs[loser].communicate()[1]
    assert ended[loser] < 10 and 'lock' in err and f'pid {procs[winner].pid}' in err, err
    assert same_as(out, ref) and verify_stage(out).ok


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try: fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError: continue
        if int(fields[1]) == pid: out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try: state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except OSError: return False
    return state != 'Z'


def test_no_worker_outlives_a_killed_runner(corpus, tmp_path):
    d, _, _ = corpus
    p = start('ingest', d/'in', '--out', tmp_path/'orphans', '--workers', '2', '--shard-size', '100', '--quiet')
    deadline, kids = time.time() + 60, []
    while time.time() < deadline and len(kids) < 2: kids = _children(p.pid); time.sleep(0.05)
    assert len(kids) >= 2, 'the pool workers never started'
    p.send_signal(signal.SIGKILL); p.wait()
    time.sleep(3)
    assert [k for k in kids if _alive(k)] == [], 'pool workers outlived their parent'


# ---- bad input: every case a clear answer (exit 2 before any work) or a quarantine row, never junk or a crash

def test_utf16_text_is_decoded_never_nul_riddled(tmp_path):
    src = tmp_path/'notepad.txt'
    src.write_bytes('first line of text\nsecond line, café\n'.encode('utf-16'))
    r = dcr('ingest', src, '--out', tmp_path/'o', '--quiet')
    assert r.returncode == 0, r.stderr
    texts = read_stage_table(tmp_path/'o')['text'].to_pylist()
    assert texts and sorted(texts) == ['first line of text', 'second line, café'] and not any('\x00' in t for t in texts)


def test_csv_without_the_text_column_is_exit_2_before_any_work(shared, tmp_path):
    out = tmp_path/'x'
    r = dcr('ingest', shared/'zh_sentiment'/'chnsenticorp_htl_all.csv', '--out', out)
    assert r.returncode == 2 and "'review'" in r.stderr and '--text-field' in r.stderr, r.stderr
    assert not out.exists()


def test_deep_json_is_quarantined_and_the_run_goes_on(tmp_path):
    src = tmp_path/'deep.jsonl'
    deep = '[' * 1010 + ']' * 1010
    src.write_text('{"text": "before"}\n{"text": "deep", "x": %s}\n{"text": "after"}\n' % deep)
    r = dcr('ingest', src, '--out', tmp_path/'o', '--quiet')
    assert r.returncode == 0, r.stderr
    assert sorted(read_stage_table(tmp_path/'o')['text'].to_pylist()) == ['after', 'before']
    assert read_stage_table(tmp_path/'o', 'quarantine')['reason'].to_pylist() == ['io:too_deep']
    assert not (tmp_path/'o'/'_work').exists()


def test_wrong_format_files_say_what_they_are(tmp_path):
    (tmp_path/'a.jsonl.zst').write_text('{"text": "plain"}\n')
    (tmp_path/'b.parquet').write_text('not parquet\n')
    r = dcr('ingest', tmp_path/'a.jsonl.zst', tmp_path/'b.parquet', '--out', tmp_path/'o', '--quiet')
    assert r.returncode == 0, r.stderr
    assert sorted(read_stage_table(tmp_path/'o', 'quarantine')['reason'].to_pylist()) == ['io:not_parquet', 'io:not_zstd']


def test_clean_decisions_one_per_line_with_the_rows_own_ids(tmp_path):
    lines = [json.dumps({'id': f'doc-{i}', 'text': f'document {i} ' + 'word ' * (5 + i)}) for i in range(6)]
    lines[2] = '{"id": "doc-2", "text": "broken'   # invalid JSON, its id still readable? no: the line is cut
    lines[4] = 'not json at all'
    src = tmp_path/'f.jsonl'; src.write_text('\n'.join(lines) + '\n')
    r = dcr('clean', src, '--out', tmp_path/'d', '--quiet')
    assert r.returncode == 0, r.stderr
    decisions = [json.loads(l) for l in (tmp_path/'d'/'decisions.jsonl').read_text().splitlines()]
    assert len(decisions) == len(lines)
    ids = [x['id'] for x in decisions]
    assert len(set(ids)) == len(ids)
    assert ids == ['doc-0', 'doc-1', 2, 'doc-3', 4, 'doc-5']  # own ids where readable, else the 0-based line


@pytest.mark.parametrize('content', ['', '\n\n\n'])
def test_every_command_takes_empty_input(tmp_path, content):
    src = tmp_path/'empty.jsonl'; src.write_text(content)
    r = dcr('pii', src, '--out', tmp_path/'p', '--quiet')
    assert r.returncode == 0, r.stderr
    assert (tmp_path/'p'/'spans.jsonl').read_text() == '' and (tmp_path/'p'/'redacted.jsonl').read_text() == ''
    for cmd in ('ingest', 'clean', 'dedup') if content == '' else ('ingest',):   # blank lines: one reader for every command
        r = dcr(cmd, src, '--out', tmp_path/cmd, '--quiet')
        assert r.returncode == 0, (cmd, r.stderr)
        check = verify_stage(tmp_path/cmd)
        assert check.ok and all(t['rows'] == 0 for t in check.tables if t['table'] != 'ledger'), (cmd, str(check))
    if content == '': assert dcr('clean', tmp_path/'ingest', '--out', tmp_path/'clean2', '--quiet').returncode == 0  # an empty stage as input


def test_unwritable_out_is_an_error_before_any_work(tmp_path):
    (tmp_path/'file').write_text('x')
    src = tmp_path/'a.jsonl'; src.write_text('{"text": "a"}\n')
    r = dcr('ingest', src, '--out', tmp_path/'file'/'sub')
    assert r.returncode == 2 and '--out' in r.stderr and 'Traceback' not in r.stderr, r.stderr


def test_encrypted_dataset_as_input_says_what_to_do(tmp_path):
    (tmp_path/'enc').mkdir(); (tmp_path/'enc'/'_dcr_manifest.json').write_text('{}')
    (tmp_path/'enc'/'part-x.dcrenc').write_bytes(b'DCRENC')
    r = dcr('clean', tmp_path/'enc', '--out', tmp_path/'o')
    assert r.returncode == 2 and 'encrypted dataset' in r.stderr and 'dcr decrypt' in r.stderr, r.stderr


def test_no_ensemble_member_outlives_a_killed_finetune(tmp_path):
    "`dcr finetune --ensemble 2` trains its members in processes of their own; SIGKILL on the command takes them down too."
    rows = [dict(sentence=s, label=i % 2) for i, s in enumerate(['a dull , lifeless film', 'a warm and funny story'] * 20)]
    (tmp_path/'train.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    out = tmp_path/'run'
    p = start('finetune', '--train', tmp_path/'train.jsonl', '--text-field', 'sentence', '--out', out, '--ensemble', '2',
              '--max-steps', '5000', '--batch-size', '8', '--deepspeed', 'none', '--device', 'cpu', '--validation-split', '0.2', '--quiet')
    deadline = time.time() + 180
    while time.time() < deadline and not all((out/'members'/k/'progress.json').is_file() for k in '01'): time.sleep(0.2)
    assert p.poll() is None, p.communicate()[1][-2000:]
    assert all((out/'members'/k/'progress.json').is_file() for k in '01'), 'the members never started training'
    members = [json.loads((out/'members'/k/'progress.json').read_text())['pid'] for k in '01']
    assert sorted(members) == sorted(_children(p.pid))
    p.send_signal(signal.SIGKILL); p.wait()
    time.sleep(3)
    assert [k for k in members if _alive(k)] == [], 'ensemble members outlived their parent'
