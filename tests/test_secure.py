"Tests of dcresearch.privacy on whole flows: encrypted stages, tampering, access control and audit, DP noise on real data."
import base64, json, multiprocessing as mp, os, shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from types import SimpleNamespace

from dcresearch.privacy import access, crypto, dp, keys

S = SimpleNamespace(**{k: v for m in (keys, crypto, access, dp) for k, v in vars(m).items() if not k.startswith('__')})  # the privacy package, flat
from dcresearch.io import RecordReader
from dcresearch.lake import delta_dataset
from dcresearch.pipeline import Pipeline
from dcresearch.sample import write_sample

from conftest import SHARED as DATA
TWEETS = DATA/'tweets'/'airline_tweets.csv'
C4 = DATA/'web'/'c4_demo.jsonl'
needs_data = pytest.mark.skipif(not TWEETS.exists(), reason=f'shared data not found at {DATA}')


@pytest.fixture(autouse=True)
def scratch_env(tmp_path, monkeypatch):
    "Every test gets its own lake (so its own audit log) and no key, roles or policy from the environment."
    monkeypatch.setenv('DCR_DATA', str(tmp_path/'data'))
    for v in ('DCR_KEY', 'DCR_KEY_FILE', 'DCR_ROLES', 'DCR_USER', 'DCR_POLICY', 'DCR_AUDIT_LOG'): monkeypatch.delenv(v, raising=False)


@pytest.fixture(scope='module')
def stage(tmp_path_factory):
    "A stage directory ingested from the embedded sample corpus (with PII, Chinese, emoji), several shards."
    d = tmp_path_factory.mktemp('stage')
    write_sample(d/'sample', n_docs=600, seed=3, n_files=2, n_broken=3)
    Pipeline(shard_size=150, progress=False).run(RecordReader(str(d/'sample')), d/'ingest')
    return d/'ingest'


def sorted_records(tables):
    return pa.concat_tables(list(tables)).sort_by('id')


def test_encrypt_stage_round_trip_via_cli(stage, tmp_path, monkeypatch, capsys):
    key_file = tmp_path/'keys'/'dcr.key'
    kid = S.keygen(str(key_file))
    assert oct(key_file.stat().st_mode & 0o777) == '0o600'
    out = tmp_path/'lake'/'ingest_enc'
    m = S.encrypt(str(stage), str(out), key_file=str(key_file))
    assert 'key id ' + kid in capsys.readouterr().out
    plain = delta_dataset(stage/'records').to_table().sort_by('id')
    assert m['n_rows'] == plain.num_rows == 600 and m['key_id'] == kid and m['classification'] == 'restricted'
    # through the environment variable, as a reader would
    monkeypatch.setenv('DCR_KEY_FILE', str(key_file))
    back = sorted_records(S.read_encrypted(out))
    assert back.equals(plain)
    # the key, in any encoding, and the documents' text never reach the encrypted dataset's files
    key = S.read_key_file(key_file)
    secrets = [key, key.hex().encode(), base64.b64encode(key), base64.urlsafe_b64encode(key)]
    texts = [t.encode() for t in plain['text'].to_pylist() if t and len(t) > 40][:50]
    for f in out.iterdir():
        data = f.read_bytes()
        assert not any(s in data for s in secrets), f
        assert not any(t[:40] in data for t in texts), f
    assert S.verify_encrypted(out, key) == []


def test_tampering_is_a_clear_error_never_garbage(stage, tmp_path):
    key = os.urandom(32)
    out = tmp_path/'enc'
    m = S.encrypt_stage(stage, out, key, shard_rows=200)
    assert len(m['shards']) == 3
    files = [out/s['file'] for s in m['shards']]
    manifest = (out/S.MANIFEST_FILE).read_text()

    with pytest.raises(S.DecryptionError, match='wrong key'):
        S.read_encrypted(out, os.urandom(32))

    # a flipped bit deep in the ciphertext: the checksum names the shard, without the key too
    good = files[1].read_bytes(); bad = bytearray(good); bad[len(bad)//2] ^= 0x80; files[1].write_bytes(bytes(bad))
    with pytest.raises(S.DecryptionError, match=f'{files[1].name}: checksum mismatch'):
        list(S.read_encrypted(out, key))
    assert S.verify_encrypted(out) == [f'{files[1]}: checksum mismatch']
    # the same flip with the manifest's checksum forged to match: AES-GCM authentication refuses it
    forged = json.loads(manifest); forged['shards'][1]['sha256'] = __import__('hashlib').sha256(bytes(bad)).hexdigest()
    forged['mac'] = S._manifest_mac(forged, key)  # an attacker holding the key could do this; only GCM remains
    (out/S.MANIFEST_FILE).write_text(json.dumps(forged))
    with pytest.raises(S.DecryptionError, match=f'{files[1].name}: authentication failed'):
        list(S.read_encrypted(out, key))
    files[1].write_bytes(good); (out/S.MANIFEST_FILE).write_text(manifest)

    # swapped shards, manifest re-signed to match the swap: the associated data (dataset + shard id) refuses it
    b0, b2 = files[0].read_bytes(), files[2].read_bytes()
    files[0].write_bytes(b2); files[2].write_bytes(b0)
    swapped = json.loads(manifest)
    swapped['shards'][0]['sha256'], swapped['shards'][2]['sha256'] = swapped['shards'][2]['sha256'], swapped['shards'][0]['sha256']
    swapped['mac'] = S._manifest_mac(swapped, key)
    (out/S.MANIFEST_FILE).write_text(json.dumps(swapped))
    with pytest.raises(S.DecryptionError, match='moved from another dataset or position'):
        list(S.read_encrypted(out, key))
    files[0].write_bytes(b0); files[2].write_bytes(b2); (out/S.MANIFEST_FILE).write_text(manifest)

    # a shard copied in from another dataset encrypted with the same key and the same shard id
    other = S.write_encrypted(pa.table({'x': [1]}), tmp_path/'other', key, dataset='other')
    with pytest.raises(S.DecryptionError, match='authentication failed'):
        S.decrypt_shard((tmp_path/'other'/other['shards'][0]['file']).read_bytes(), key, m['dataset'], other['shards'][0]['id'])

    # a shard removed together with its manifest entry (truncating the dataset): the manifest MAC refuses it
    dropped = json.loads(manifest); dropped['shards'] = dropped['shards'][:2]; dropped['n_rows'] -= 200
    (out/S.MANIFEST_FILE).write_text(json.dumps(dropped))
    with pytest.raises(S.DecryptionError, match='manifest authentication failed'):
        S.read_encrypted(out, key)
    (out/S.MANIFEST_FILE).write_text(manifest)

    # a missing or truncated shard file
    files[2].rename(tmp_path/'gone')
    with pytest.raises(S.DecryptionError, match='missing'):
        list(S.read_encrypted(out, key))
    (tmp_path/'gone').rename(files[2])
    assert S.verify_encrypted(out, key) == []
    assert sorted_records(S.read_encrypted(out, key)).num_rows == 600


def test_access_control_and_audit_flow(stage, tmp_path):
    key = os.urandom(32)
    lake = tmp_path/'data'/'lake'
    steward = S.Catalog(user='sam', roles='steward', key=key)
    analyst = S.Catalog(user='ana', roles=['member'], key=key)
    S.encrypt_stage(stage, lake/'pii', key, catalog=steward)
    # a member can read the unclassified stage, not the restricted copy; the refusal names who, what, which role, how
    assert analyst.open(stage).to_table().num_rows == 600
    with pytest.raises(S.AccessDenied) as e:
        analyst.open(lake/'pii')
    msg = str(e.value)
    for part in ('ana may not read', "'pii'", 'restricted', 'needs role steward', "['member']", 'DCR_ROLES=steward'):
        assert part in msg, (part, msg)
    assert steward.open(lake/'pii').to_table().num_rows == 600

    # a policy file grants a named dataset to a role, as YAML or JSON
    (lake/'_policy.yaml').write_text('roles:\n  member: [public, internal]\n  pii-team: {datasets: [pii]}\n')
    assert S.Catalog(user='pat', roles='pii-team', key=key).open(lake/'pii').classification == 'restricted'
    (lake/'_policy.yaml').unlink()
    (tmp_path/'p.json').write_text(json.dumps({'roles': {'auditor': ['public', 'internal', 'restricted']}}))
    assert S.open_dataset(lake/'pii', user='al', roles='auditor', key=key, policy=tmp_path/'p.json').version == 0

    # the audit log answers who read what, and when, with DuckDB; the hash chain is intact
    log = S.audit_log()
    assert set(log['action']) == {'read', 'write'}
    denied = S.audit_log("NOT ok")
    assert denied[['user', 'dataset', 'classification']].values.tolist() == [['ana', 'pii', 'restricted']]
    reads = S.audit_log("action = 'read' AND ok AND dataset = 'pii'")
    assert reads['user'].tolist() == ['sam', 'pat', 'al'] and (reads['version'] == 0).all()
    assert S.AuditLog().verify() == []

    # the catalog lists every dataset with its classification, for the privacy report
    listing = S.Catalog().datasets(lake)
    assert listing[['name', 'kind', 'classification']].values.tolist() == [['pii', 'encrypted', 'restricted']]


def _append_many(args):
    path, who = args
    log = S.AuditLog(path)
    for i in range(40): log.append('read', f'd{i}', 'x', who, ['member'], 'internal', i, True)


def test_audit_log_parallel_appends_keep_the_chain(tmp_path):
    path = tmp_path/'audit.jsonl'
    with mp.get_context('fork').Pool(4) as pool: pool.map(_append_many, [(path, f'w{i}') for i in range(4)])
    assert len(path.read_text().splitlines()) == 160
    assert S.AuditLog(path).verify() == []
    assert S.audit_log("user = 'w2'", path=path)['version'].tolist() == list(range(40))


def test_dp_mean_and_histogram_noise_match_their_scale():
    # mean of 2,000 values of 50 in [0, 100] at epsilon=1: Laplace(200) on the sum over a count with discrete Laplace(2);
    # the bounds below are about 5 standard errors wide, so a false failure is a one-in-a-million event
    n, reps, b = 2_000, 800, S.PrivacyBudget(1e6)
    errs = np.array([S.dp_mean(np.full(n, 50.0), 0, 100, 1.0, b) - 50 for _ in range(reps)])
    rng = np.random.default_rng(0)
    expected = np.abs((50*n + rng.laplace(0, 200, 400_000)) / (n + rng.laplace(0, 2, 400_000)) - 50).mean()
    assert 0.82*expected < np.abs(errs).mean() < 1.18*expected, (np.abs(errs).mean(), expected)
    assert abs(errs.mean()) < 5*errs.std()/np.sqrt(reps)  # unbiased
    # histogram at epsilon=1: each bin gets discrete Laplace(1) noise, mean |noise| 2e^-1/(1-e^-2) = 0.851
    vals = np.repeat([5.0, 50.0, 500.0], 1000)
    noise = np.concatenate([S.dp_histogram(vals, [10, 100], 1.0, b)['count'].to_numpy() - 1000 for _ in range(400)])
    assert 0.7 < np.abs(noise).mean() < 1.0
    # a budget records every release; the ledger sums to what was spent
    assert len(b.releases) == reps*2 + 400 and abs(b.table()['epsilon'].sum() - b.spent) < 1e-6


def test_budget_exhaustion_refuses_without_releasing():
    b = S.PrivacyBudget(1.0)
    S.dp_histogram([1.0, 2.0], [1.5], 0.75, b)
    with pytest.raises(S.BudgetExhausted, match='only 0.25 of the budget 1 is left'):
        S.dp_category_counts(['en'], ['en'], 0.5, b)
    with pytest.raises(S.BudgetExhausted):
        S.dp_mean([1.0], 0, 1, 0.3, b)  # the mean's two halves are refused together
    assert b.table()['query'].tolist() == ['histogram']
    S.dp_count([1, 2, 3], 0.25, b)
    assert b.remaining == pytest.approx(0, abs=1e-9)


@needs_data
def test_dp_summary_on_real_tweets():
    reader = RecordReader(str(TWEETS))
    tables = [b.records if hasattr(b, 'records') else b for b in reader]
    docs = pa.concat_tables(tables)
    true_n, true_mean = docs.num_rows, float(np.mean([len(t or '') for t in docs['text'].to_pylist()]))
    s = S.dp_summary([docs], epsilon=1.0, length_bounds=(0, 300))
    assert true_n == 14_640 and abs(s.n_docs - true_n) < 100
    assert abs(s.mean_chars - true_mean) < 5, (s.mean_chars, true_mean)
    assert abs(s.length_hist['count'].sum() - true_n) < 200
    en = int(s.languages.set_index('category').loc['en', 'count'])
    assert en > 0.8*true_n
    assert s.spent['epsilon'].sum() == pytest.approx(1.0)
    table = s.table()
    assert table['epsilon'].sum() == pytest.approx(1.0) and table['statistic'][0] == 'documents'
