"""`dcr upload-server` started for real (uvicorn on a free loopback port) and used over HTTP: uploads stored once by
hash, 401 without the key, 413 over the limits, 415 for content that is not data whatever its name, unsafe archives
refused, archives unpacked, concurrent uploads, a large upload streamed (the server's peak memory stays flat), then
`dcr ingest` of the raw zone."""
import hashlib, io, json, os, subprocess, zipfile
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import DCR, ROOT, free_port, wait_until_up


def _peak_rss_kb(pid: int) -> int:
    return int(next(l for l in open(f'/proc/{pid}/status') if l.startswith('VmHWM')).split()[1])


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp('upload')
    key = 'up-' + os.urandom(16).hex()
    (d/'key').write_text(key); os.chmod(d/'key', 0o600)
    port, log = free_port(), open(d/'server.log', 'w')
    proc = subprocess.Popen([DCR, 'upload-server', '--root', d/'root', '--host', '127.0.0.1', '--port', str(port), '--api-key-file', d/'key',
                             '--max-file-mb', '80', '--max-request-mb', '100', '--max-unpacked-mb', '1'], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    wait_until_up(url, proc, d/'server.log')
    yield url, {'Authorization': f'Bearer {key}'}, d, proc, key
    proc.terminate(); proc.wait(30)


def test_contract_uploads_401_413_415(server):
    url, auth, d, proc, key = server
    rows = b'{"id": "a", "text": "the first uploaded row"}\n{"id": "b", "text": "the second uploaded row"}\n'
    table = b'id,text\nc,a row from a csv upload\nd,another row from a csv upload\n'
    r = httpx.post(url + '/v1/upload', files=[('file', ('rows.jsonl', rows)), ('file', ('table.csv', table))], headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    assert [f['type'] for f in r.json()['files']] == ['jsonl', 'csv'] and not any(f['duplicate'] for f in r.json()['files'])
    again = httpx.post(url + '/v1/upload', files={'file': ('renamed.jsonl', rows)}, headers=auth, timeout=30)
    assert again.json()['files'][0]['duplicate'] is True  # the same bytes are stored once
    sha = hashlib.sha256(rows).hexdigest()
    assert sorted(p.name for p in (d/'root'/'raw').iterdir()) == sorted([f'{sha}.jsonl', f'{hashlib.sha256(table).hexdigest()}.csv'])
    status = httpx.get(url + f'/v1/uploads/{sha}', headers=auth, timeout=10).json()
    assert [u['original_name'] for u in status['uploads']] == ['rows.jsonl', 'renamed.jsonl']
    assert all(u['who'] != key and key not in json.dumps(u) for u in status['uploads'])

    assert httpx.post(url + '/v1/upload', files={'file': ('rows.jsonl', rows)}, timeout=10).status_code == 401
    wrong = {'Authorization': 'Bearer ' + 'x' * 35}
    assert httpx.post(url + '/v1/upload', files={'file': ('rows.jsonl', rows)}, headers=wrong, timeout=10).status_code == 401
    big = httpx.post(url + '/v1/upload', files={'file': ('big.txt', b'word ' * (17 << 20))}, headers=auth, timeout=60)  # 85 MB
    assert big.status_code == 413 and 'limit' in big.json()['error']
    elf = httpx.post(url + '/v1/upload', files={'file': ('data.jsonl', b'\x7fELF\x02\x01\x01\x00' + os.urandom(200))}, headers=auth, timeout=10)
    assert elf.status_code == 415 and 'data.jsonl' in elf.json()['error']
    assert not list((d/'root'/'incoming').iterdir())  # refused uploads leave nothing behind
    log = (d/'server.log').read_text()
    assert key not in log and 'the first uploaded row' not in log


def _zip(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items(): z.writestr(name, data)
    return buf.getvalue()


def test_archives_unpacked_safely(server):
    url, auth, d, _, _ = server
    good = _zip({'day1/rows.jsonl': '{"text": "row inside an archive"}\n', 'notes.txt': 'plain notes inside the archive'})
    r = httpx.post(url + '/v1/upload', files={'file': ('batch.zip', good)}, headers=auth, timeout=30)
    assert r.status_code == 200 and r.json()['files'][0]['members'] == 2, r.text
    sha = hashlib.sha256(good).hexdigest()
    assert (d/'root'/'raw'/sha/'day1'/'rows.jsonl').is_file() and (d/'root'/'archives'/f'{sha}.zip').is_file()
    evil = httpx.post(url + '/v1/upload', files={'file': ('evil.zip', _zip({'../../escape.txt': 'x'}))}, headers=auth, timeout=30)
    assert evil.status_code == 422 and 'outside the folder' in evil.json()['error']
    bomb = httpx.post(url + '/v1/upload', files={'file': ('bomb.zip', _zip({'zeros.txt': b'\0' * (3 << 20)}))}, headers=auth, timeout=30)
    assert bomb.status_code == 422 and 'zip bomb' in bomb.json()['error']
    assert not (d/'root'/'escape.txt').exists() and not list((d/'root'/'raw').glob('.unpack-*'))


def test_concurrent_and_streamed_uploads(server):
    url, auth, d, proc, _ = server
    def up(i):
        return httpx.post(url + '/v1/upload', files={'file': (f'f{i}.jsonl', f'{{"text": "concurrent upload number {i}"}}\n'.encode())},
                          headers=auth, timeout=60).status_code
    with ThreadPoolExecutor(8) as pool: assert list(pool.map(up, range(16))) == [200] * 16
    entries = [json.loads(l) for l in (d/'root'/'manifest.jsonl').read_text().splitlines()]
    assert {e['original_name'] for e in entries} >= {f'f{i}.jsonl' for i in range(16)}
    before = _peak_rss_kb(proc.pid)
    blob = b''.join(b'{"text": "streamed row %d of a large upload with some padding text"}\n' % i for i in range(800_000))  # ~55 MB
    r = httpx.post(url + '/v1/upload', files={'file': ('large.jsonl', blob)}, headers=auth, timeout=120)
    assert r.status_code == 200 and r.json()['files'][0]['bytes'] == len(blob)
    grew_mb = (_peak_rss_kb(proc.pid) - before) / 1024
    assert grew_mb < 25, f'the server peaked {grew_mb:.0f} MB higher while receiving {len(blob) >> 20} MB'  # streamed, not held


def test_raw_zone_ingests_into_a_stage(server):
    "POST /v1/ingest reads the raw zone into ROOT/stage; the broken line is quarantined, the rest are records."
    url, auth, d, _, _ = server
    httpx.post(url + '/v1/upload', files={'file': ('broken.jsonl', b'{"text": "fine row"}\n{"text": broken\n')}, headers=auth, timeout=30)
    assert httpx.post(url + '/v1/ingest', timeout=10).status_code == 401
    r = httpx.post(url + '/v1/ingest', headers=auth, timeout=300)
    assert r.status_code == 200, r.text
    from dcresearch.pipeline import load_ledger
    s = load_ledger(d/'root'/'stage').check().summary()
    assert s['n_quarantined'] >= 1 and s['n_in'] >= 5 and r.json()['n_in'] == s['n_in']
