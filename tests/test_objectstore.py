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
