"""Inputs on object storage: an S3-compatible server (moto's server mode) started on 127.0.0.1 by the test, credentials
and endpoint from the environment (never the command line or the repository), `dcr ingest s3://...` through fsspec."""
import os, socket, subprocess, sys, time
from pathlib import Path

import pytest

boto3 = pytest.importorskip('boto3')
pytest.importorskip('s3fs')

from conftest import DCR, ROOT
from dcresearch.lake import read_stage_table


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture(scope='module')
def s3(tmp_path_factory):
    "A moto S3 server on loopback with a bucket `lake`; yields the environment that points clients at it."
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent/'moto_server'), '-H', '127.0.0.1', '-p', str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(AWS_ACCESS_KEY_ID='test-key-id', AWS_SECRET_ACCESS_KEY='test-secret', AWS_DEFAULT_REGION='us-east-1',
               AWS_ENDPOINT_URL=f'http://127.0.0.1:{port}')
    client = boto3.client('s3', endpoint_url=env['AWS_ENDPOINT_URL'], aws_access_key_id=env['AWS_ACCESS_KEY_ID'],
                          aws_secret_access_key=env['AWS_SECRET_ACCESS_KEY'], region_name='us-east-1')
    for _ in range(100):
        try: client.create_bucket(Bucket='lake'); break
        except Exception: time.sleep(0.1)
    yield client, env
    server.terminate(); server.wait(10)


def dcr(*args, env):
    return subprocess.run([DCR, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **env})


def test_ingest_from_s3_matches_the_local_file(s3, shared, tmp_path):
    client, env = s3
    c4 = shared/'web'/'c4_demo.jsonl'
    client.upload_file(str(c4), 'lake', 'raw/c4_demo.jsonl')
    client.put_object(Bucket='lake', Key='raw/broken.jsonl', Body=b'{"text": "fine"}\n{not json\n')
    r = dcr('ingest', 's3://lake/raw/*.jsonl', '--out', tmp_path/'from_s3', '--quiet', env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert dcr('ingest', c4, '--out', tmp_path/'local', '--quiet', env={}).returncode == 0
    remote, local = (read_stage_table(tmp_path/d) for d in ('from_s3', 'local'))
    assert sorted(t for t in remote['text'].to_pylist() if t != 'fine') == sorted(local['text'].to_pylist())
    assert any(s.startswith('s3://lake/raw/c4_demo.jsonl:') for s in remote['source'].to_pylist())
    q = read_stage_table(tmp_path/'from_s3', 'quarantine')
    assert q.num_rows == 1 and q['reason'][0].as_py() == 'io:invalid_json'
    for f in ('run.json',): assert env['AWS_SECRET_ACCESS_KEY'] not in (tmp_path/'from_s3'/f).read_text()


def test_missing_object_is_a_clear_error(s3, tmp_path):
    _, env = s3
    r = dcr('ingest', 's3://lake/raw/nothing-here.jsonl', '--out', tmp_path/'x', '--quiet', env=env)
    assert r.returncode == 2 and 'not found' in r.stderr, r.stderr
    assert env['AWS_SECRET_ACCESS_KEY'] not in r.stderr + r.stdout


# Stage directories on object storage: the runner's work folder, the commits, run.json, the lock and the readers all
# live under s3://lake/stages/...; the tables must be the same as a local run's.

def _object(client, url: str) -> bytes:
    bucket, key = url[len('s3://'):].split('/', 1)
    return client.get_object(Bucket=bucket, Key=key)['Body'].read()


def _ids(lines: bytes) -> list[str]:
    import json
    return [json.loads(l)['id'] for l in lines.decode().splitlines()]


def test_stages_on_s3_match_local_stages(s3, shared, tmp_path, monkeypatch):
    client, env = s3
    for k, v in env.items(): monkeypatch.setenv(k, v)
    c4, remote = shared/'web'/'c4_demo.jsonl', 's3://lake/stages'
    for cmd, src, out in [('ingest', c4, 'ingest'), ('clean', 'ingest', 'clean'), ('dedup', 'clean', 'dedup')]:
        for base in (remote, tmp_path):
            inp = src if cmd == 'ingest' else f'{base}/{src}'
            r = dcr(cmd, inp, '--out', f'{base}/{out}', '--quiet', env=env)
            assert r.returncode == 0, (cmd, base, r.stderr[-2000:])
    assert _object(client, f'{remote}/clean/decisions.jsonl') == (tmp_path/'clean'/'decisions.jsonl').read_bytes()
    assert _ids(_object(client, f'{remote}/dedup/removed.jsonl')) == _ids((tmp_path/'dedup'/'removed.jsonl').read_bytes())
    for stage in ('ingest', 'clean', 'dedup'):
        for table in ('records', 'rejected', 'quarantine'):
            a, b = (read_stage_table(f'{d}/{stage}', table) for d in (remote, tmp_path))
            key = 'id' if 'id' in a.column_names else 'raw'  # quarantine rows have no id
            assert a.num_rows == b.num_rows and sorted(a[key].to_pylist()) == sorted(b[key].to_pylist()), (stage, table)
    r = dcr('verify', f'{remote}/dedup', env=env)
    assert r.returncode == 0 and 'verify: ok' in r.stdout, r.stdout + r.stderr
    keys = [o['Key'] for o in client.list_objects_v2(Bucket='lake', Prefix='stages/clean/')['Contents']]
    assert not any('/_work/' in k or k.endswith('_dcr_lock') for k in keys), keys  # the work folder and the lock are gone
    assert env['AWS_SECRET_ACCESS_KEY'].encode() not in _object(client, f'{remote}/clean/run.json')


def test_killed_commit_on_s3_resumes_to_the_same_tables(s3, shared, tmp_path, monkeypatch):
    import re
    client, env = s3
    for k, v in env.items(): monkeypatch.setenv(k, v)
    c4, out = shared/'web'/'c4_demo.jsonl', 's3://lake/killed/clean'
    listed = dcr('clean', c4, '--out', 's3://lake/killed/probe', '--quiet', env={**env, 'DCR_FAULT_AT': 'list'})
    points = dict((label, int(n)) for n, label in re.findall(r'fault point (\d+): (.*)', listed.stderr))
    for label in ('records: files in place, not yet committed', 'tables committed, run.json not written'):
        target = f'{out}-{points[label]}'
        r = dcr('clean', c4, '--out', target, '--quiet', env={**env, 'DCR_FAULT_AT': str(points[label])})
        assert r.returncode == -9, (label, r.stderr[-1000:])
        r = dcr('clean', c4, '--out', target, '--quiet', env=env)  # the dead holder's lock (this host) is taken over
        assert r.returncode == 0, (label, r.stderr[-2000:])
        assert _object(client, f'{target}/decisions.jsonl') == _object(client, 's3://lake/killed/probe/decisions.jsonl'), label
        assert dcr('verify', target, env=env).returncode == 0, label


def test_a_live_writer_locks_an_s3_stage(s3, shared, monkeypatch):
    import json, socket
    client, env = s3
    holder = dict(host='another-node', pid=1, started='2026-12-06T00:00:00+00:00', command='dcr clean')
    client.put_object(Bucket='lake', Key='locked/clean/_dcr_lock', Body=json.dumps(holder).encode())
    r = dcr('clean', shared/'web'/'c4_demo.jsonl', '--out', 's3://lake/locked/clean', '--quiet', env=env)
    assert r.returncode == 2 and 'locked by another writer' in r.stderr and 'another-node' in r.stderr, r.stderr
    assert 'delete s3://lake/locked/clean/_dcr_lock' in r.stderr
    r = dcr('pii', shared/'web'/'c4_demo.jsonl', '--out', 's3://lake/pii', env=env)
    assert r.returncode == 2 and 'local folders only' in r.stderr, r.stderr
    r = dcr('clean', shared/'web'/'c4_demo.jsonl', '--out', 's3://no-such-bucket/clean', env=env)
    assert r.returncode == 2 and "bucket 'no-such-bucket' not found" in r.stderr, r.stderr
