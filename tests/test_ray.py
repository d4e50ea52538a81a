"""Scale-out on a real Ray cluster on this machine: a head and two worker nodes with one CPU each and a small object
store (`ray.cluster_utils.Cluster`). The promise under test: `--engine ray` gives the local engine's tables, ledger,
decisions and removed set on real data; a worker node lost mid-run leaves a run that completes (Ray retries) or
resumes to identical output, with nothing committed twice; and no Ray process outlives a killed `dcr`."""
import json, os, signal, subprocess, sys, threading, time
from pathlib import Path

import pyarrow as pa
import pytest

ray = pytest.importorskip('ray')
from ray.cluster_utils import Cluster

from conftest import DCR, ROOT
from dcresearch import cli
from dcresearch.core import Step, StepResult, make_records
from dcresearch.dedup import dedup_stage
from dcresearch.engines import _descendants, _proc_start, start_reaper
from dcresearch.lake import delta_version, read_run_manifest, read_stage_table
from dcresearch.pipeline import Pipeline, load_ledger, open_source, verify_stage
from dcresearch.sample import write_sample

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
STORE = 100 << 20  # object store per node: small, as on CI


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    "The embedded sample corpus (duplicates and malformed lines included)."
    d = tmp_path_factory.mktemp('ray_corpus')
    write_sample(d, n_docs=1500, seed=7, n_files=3, n_broken=4)
    return d


# ---- the contract commands and process hygiene first, before the module's cluster exists

def test_cli_engine_ray_gives_the_same_decisions_and_removed_ids(corpus, tmp_path):
    "The contract commands: `dcr clean|dedup INPUT --out DIR --engine ray` (a local Ray started by dcr itself)."
    env = {**os.environ, 'RAY_ADDRESS': ''}
    for cmd, out_file in (('clean', 'decisions.jsonl'), ('dedup', 'removed.jsonl')):
        runs = {}
        for engine in ('local', 'ray'):
            r = subprocess.run([DCR, cmd, str(corpus), '--out', str(tmp_path/f'{cmd}_{engine}'), '--engine', engine, '--quiet'],
                               cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
            assert r.returncode == 0, r.stderr[-2000:]
            runs[engine] = [json.loads(l) for l in (tmp_path/f'{cmd}_{engine}'/out_file).read_text().splitlines()]
        assert runs['ray'] == runs['local'] and runs['local'], cmd


def test_no_ray_process_outlives_a_killed_dcr(corpus, tmp_path):
    env = {**os.environ, 'RAY_ADDRESS': ''}
    p = subprocess.Popen([DCR, 'clean', str(corpus), '--out', str(tmp_path/'killed'), '--engine', 'ray', '--workers', '2',
                          '--shard-size', '20', '--quiet'], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline, procs = time.time() + 120, set()
    while time.time() < deadline and p.poll() is None:
        procs = set(_descendants(p.pid))
        if len(procs) >= 4 and (tmp_path/'killed'/'_work'/'done').is_dir() and any((tmp_path/'killed'/'_work'/'done').iterdir()): break
        time.sleep(0.2)
    assert p.poll() is None and len(procs) >= 4, 'Ray never got going under dcr'
    procs |= set(_descendants(p.pid))
    p.send_signal(signal.SIGKILL); p.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(_proc_start(q) for q in procs): time.sleep(0.5)
    left = [q for q in procs if _proc_start(q)]
    assert not left, 'outlived dcr: ' + ', '.join(Path(f'/proc/{q}/comm').read_text().strip() for q in left if _proc_start(q))


# ---- on a three-node cluster

@pytest.fixture(scope='module')
def cluster():
    "Head + two worker nodes, one CPU each; connected for the module, shut down after it (reaped if pytest is killed)."
    reaper = start_reaper()
    c = Cluster(initialize_head=True, connect=True,
                head_node_args=dict(num_cpus=1, object_store_memory=STORE, include_dashboard=False))
    workers = [c.add_node(num_cpus=1, object_store_memory=STORE) for _ in range(2)]
    c.wait_for_nodes()
    yield c, workers
    ray.shutdown()
    c.shutdown()
    if reaper is not None: reaper.kill(); reaper.wait()


def stage_tables(stage: Path) -> dict:
    return {n: read_stage_table(stage, n).sort_by('id') for n in ('records', 'rejected')}


def same_stage(a: Path, b: Path):
    ta, tb = stage_tables(a), stage_tables(b)
    for n in ta: assert ta[n].equals(tb[n]), f'{n} differs between {a.name} and {b.name}'
    la, lb = load_ledger(a), load_ledger(b)
    assert la.summary() == lb.summary() and la.totals() == lb.totals()
    assert verify_stage(a).ok and verify_stage(b).ok


def test_clean_on_the_cluster_matches_the_local_engine(cluster, shared, tmp_path):
    c, _ = cluster
    src = [str(shared/'web'/'c4_demo.jsonl')]
    cli.clean(src, str(tmp_path/'local'), shard_size=40, quiet=True)
    cli.clean(src, str(tmp_path/'ray'), shard_size=40, quiet=True, engine='ray', ray_address=c.address)
    same_stage(tmp_path/'local', tmp_path/'ray')
    assert (tmp_path/'local'/'decisions.jsonl').read_bytes() == (tmp_path/'ray'/'decisions.jsonl').read_bytes()
    run = read_run_manifest(tmp_path/'ray')
    assert run['pipeline']['engine'] == 'ray'
    assert len({w['node'] for w in run['work']}) >= 2, f'the shards all ran on one node: {run["work"]}'
    assert sum(w['rows'] for w in run['work']) == run['counts']['n_in']


def test_dedup_on_the_cluster_removes_the_same_documents(cluster, corpus, tmp_path):
    c, _ = cluster
    kw = dict(methods=('exact', 'minhash'), shard_size=300)
    local = dedup_stage(open_source([str(corpus)]), tmp_path/'local', **kw)
    on_ray = dedup_stage(open_source([str(corpus)]), tmp_path/'ray', engine='ray', ray_address=c.address, **kw)
    assert local.plan.n_removed > 50, 'the sample corpus should hold duplicates'
    assert on_ray.plan.digest() == local.plan.digest()
    assert on_ray.plan.clusters.equals(local.plan.clusters)
    same_stage(tmp_path/'local', tmp_path/'ray')
    # against the lake: the second half deduplicated against the first, on both engines
    files = sorted(corpus.glob('*.jsonl'))
    kw['shard_size'] = 200
    dedup_stage(open_source([str(f) for f in files[:2]]), tmp_path/'first', **kw)
    a = dedup_stage(open_source([str(files[2])]), tmp_path/'second_local', reference=[tmp_path/'first'], **kw)
    b = dedup_stage(open_source([str(files[2])]), tmp_path/'second_ray', reference=[tmp_path/'first'], engine='ray',
                    ray_address=c.address, **kw)
    assert a.plan.n_reference > 0 and a.plan.digest() == b.plan.digest()
    same_stage(tmp_path/'second_local', tmp_path/'second_ray')


def test_semantic_dedup_embeds_on_the_actor_pool(cluster, shared, tmp_path):
    "Semantic dedup on Ray: blocks embedded by MiniLM on actors (loaded once per actor), the same plan as in one process."
    c, _ = cluster
    texts = [json.loads(l)['text'][:300] for l in (shared/'web'/'c4_demo.jsonl').read_text().splitlines()[:100]]
    texts += [t.replace('.', '!', 1) + ' Thanks.' for t in texts[:15]]  # near copies: same meaning, other characters
    recs = make_records(texts, [f'c4.jsonl:{i}' for i in range(len(texts))])
    blocks, kw = [recs.slice(0, 60), recs.slice(60)], dict(methods=('exact', 'semantic'), shard_size=50)
    local = dedup_stage(blocks, tmp_path/'local', **kw)
    on_ray = dedup_stage(blocks, tmp_path/'ray', engine='ray', ray_address=c.address, **kw)
    assert local.plan.n_removed >= 10 and on_ray.plan.digest() == local.plan.digest()


class SlowStep(Step):
    "Keeps every row, after a pause: long enough shards to lose a node in the middle of a run."
    stage = 'slow'
    def __init__(self, seconds: float=0.4): self.seconds = seconds
    def __call__(self, table: pa.Table) -> StepResult:
        time.sleep(self.seconds)
        return StepResult(kept=table)


class ModelStep(SlowStep):
    "As `SlowStep`, marked as loading a model: runs on the actor pool."
    uses_model = True


def test_model_steps_run_on_an_actor_pool(cluster, shared, tmp_path):
    c, _ = cluster
    src = open_source([str(shared/'web'/'c4_demo.jsonl')])
    res = Pipeline([ModelStep(0.01)], stage='model', shard_size=30, progress=False, engine='ray', ray_address=c.address).run(src, tmp_path/'m')
    assert res.ledger.summary()['n_kept'] == 300
    work = read_run_manifest(tmp_path/'m')['work']
    assert 1 <= len(work) <= 3 and sum(w['shards'] for w in work) == 10, work  # at most one actor per CPU did all shards


def test_a_worker_node_lost_mid_run_completes_or_resumes_to_identical_output(cluster, corpus, tmp_path):
    c, workers = cluster
    steps = [SlowStep(0.4)]
    Pipeline(steps, stage='slow', shard_size=100, progress=False).run(open_source([str(corpus)]), tmp_path/'local')
    removed = threading.Event()
    def kill_a_node():
        time.sleep(2.5)
        c.remove_node(workers[1], allow_graceful=False); removed.set()
    t = threading.Thread(target=kill_a_node); t.start()
    out = tmp_path/'ray'
    try:
        Pipeline(steps, stage='slow', shard_size=100, progress=False, engine='ray', ray_address=c.address).run(open_source([str(corpus)]), out)
        outcome = 'completed'
    except Exception as e:  # a clean failure: nothing committed, the next run resumes
        assert not (out/'run.json').exists(), f'failed ({e!r}) but wrote run.json'
        t.join()
        Pipeline(steps, stage='slow', shard_size=100, progress=False, engine='ray', ray_address=c.address).run(open_source([str(corpus)]), out)
        outcome = 'resumed'
    t.join()
    assert removed.is_set(), 'the node was never removed: the run was too short to test anything'
    same_stage(tmp_path/'local', out)
    for table in ('records', 'rejected', 'quarantine', 'ledger'):  # committed once: the versions of an undisturbed run
        assert delta_version(out/table) == delta_version(tmp_path/'local'/table), f'{table} committed more than once ({outcome})'
    assert len(c.list_all_nodes()) == 2


def test_tune_on_the_cluster_runs_searches_side_by_side(cluster, tmp_path):
    "`dcr tune --engine ray --workers 2`: two searches share one study; the trial budget holds and the trials ran on two nodes."
    from dcresearch.tune import tune
    c, _ = cluster
    rows = [dict(id=f'r{i}', sentence=s, label=i % 2) for i, s in enumerate(['a dull , lifeless film', 'a warm and funny story'] * 10)]
    (tmp_path/'train.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    (tmp_path/'space.json').write_text(json.dumps(dict(lr=['log', 1e-4, 1e-3])))
    res = tune([str(tmp_path/'train.jsonl')], str(tmp_path/'tune'), quiet=True, trials=3, space=str(tmp_path/'space.json'), no_pruning=True,
               engine='ray', workers=2, ray_address=c.address, text_field='sentence', deepspeed='none', max_steps=2, batch_size=8,
               device='cpu', validation_split=0.2)
    trials = [json.loads(l) for l in (tmp_path/'tune'/'trials.jsonl').read_text().splitlines()]
    assert [t['state'] for t in trials] == ['COMPLETE'] * 3 and res['n_complete'] == 3
    assert len({t['node'] for t in trials}) >= 2, f'every trial ran on one node: {trials}'
    assert (tmp_path/'tune'/'best'/'model'/'config.json').is_file() and trials[0]['params']['lr'] == 2e-4   # trial 0: the default recipe
