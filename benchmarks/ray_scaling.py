"""The local engine against Ray: docs/s of the cleaning chain and of MinHash dedup, and peak driver memory.

    .venv/bin/python benchmarks/ray_scaling.py [--docs 50000] [--configs local:1 local:2 ray:1 ray:2 cluster:2]

Each configuration runs in a fresh process on the same ingested sample corpus: `local:N` is the process pool with N
workers, `ray:N` a local Ray with N CPUs, `cluster:N` a local multi-node Ray cluster (`ray.cluster_utils.Cluster`) of
N nodes with one CPU each. Ray's start-up is timed apart from the work (it is paid once per session, not per stage).
`clean` is the whole `dcr clean` command (language id, the quality filters, decisions.jsonl); `dedup` is `dcr dedup`
with exact + MinHash (the plan, as a shuffle on Ray, and the apply pass). Peak RSS is the driver's own (ru_maxrss of
the process that runs the command; Ray's workers are other processes). The last lines give the shuffle volume per
document and the candidate pairs the driver held, for the worked estimate in the README.
"""
import argparse, json, subprocess, sys, tempfile, time
from pathlib import Path

CHILD = '''
import json, os, resource, sys, time
os.environ.setdefault('RAY_USAGE_STATS_ENABLED', '0')
stage, config = sys.argv[1], sys.argv[2]
kind, n = config.split(':'); n = int(n)
t0 = time.time(); cluster = None
if kind == 'ray':
    import ray; ray.init(num_cpus=n, object_store_memory=512 << 20, include_dashboard=False, log_to_driver=False)
elif kind == 'cluster':
    import ray
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, connect=True, head_node_args=dict(num_cpus=1, object_store_memory=256 << 20, include_dashboard=False))
    for _ in range(n - 1): cluster.add_node(num_cpus=1, object_store_memory=256 << 20)
    cluster.wait_for_nodes()
start = time.time() - t0
engine = dict(engine='local', workers=n) if kind == 'local' else dict(engine='ray')
from dcresearch.cli import clean, dedup
out = {}
for cmd in ('clean', 'dedup'):
    t = time.time()
    res = (clean if cmd == 'clean' else dedup)([stage], os.path.join(sys.argv[3], cmd), quiet=True, **engine)
    out[cmd] = dict(seconds=time.time() - t, n=res.ledger.summary()['n_in'])
    if cmd == 'dedup': out['pairs'] = int(res.plan.clusters['size'].to_numpy().sum() - len(res.plan.clusters)) if len(res.plan.clusters) else 0
print(json.dumps(dict(out, start=start, rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      nodes=len(set(w['node'] for w in json.load(open(os.path.join(sys.argv[3], 'clean', 'run.json')))['work'])))))
if cluster is not None: ray.shutdown(); cluster.shutdown()
'''


def shuffle_bytes_per_doc(stage: str) -> tuple[float, int]:
    "Bytes of bucket rows the MinHash + exact shuffle moves per document, on the first shard of the corpus."
    import numpy as np
    from dcresearch.dedup import _bucket_rows, _col, make_deduplicators
    from dcresearch.pipeline import StageSource
    t = next(iter(StageSource(stage)))
    rows = _bucket_rows(make_deduplicators(('exact', 'minhash')), _col(t, 'text'), 0, 1)
    return rows.nbytes / t.num_rows, t.num_rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--docs', type=int, default=50_000, help='sample documents to generate')
    ap.add_argument('--configs', nargs='+', default=['local:1', 'local:2', 'ray:1', 'ray:2', 'cluster:2'],
                    help='engine:CPUs to measure (local, ray, cluster)')
    a = ap.parse_args()
    from dcresearch.cli import ingest
    from dcresearch.sample import write_sample
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        write_sample(d/'in', n_docs=a.docs, seed=0, n_files=8, n_broken=0)
        ingest([str(d/'in')], str(d/'stage'), workers=2, quiet=True)
        print(f"{a.docs:,} sample documents; clean = `dcr clean`, dedup = `dcr dedup` (exact + MinHash)\n")
        print(f"{'config':>10} {'nodes':>5} {'start s':>8} {'clean s':>8} {'clean docs/s':>13} {'dedup s':>8} "
              f"{'dedup docs/s':>13} {'driver RSS MB':>14}")
        results = {}
        for c in a.configs:
            r = subprocess.run([sys.executable, '-c', CHILD, str(d/'stage'), c, str(d/c.replace(':', '_'))],
                               capture_output=True, text=True)
            if r.returncode: print(f'{c:>10} failed: {r.stderr[-1500:]}'); continue
            res = results[c] = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"{c:>10} {res['nodes']:>5} {res['start']:>8.1f} {res['clean']['seconds']:>8.1f} "
                  f"{res['clean']['n'] / res['clean']['seconds']:>13,.0f} {res['dedup']['seconds']:>8.1f} "
                  f"{res['dedup']['n'] / res['dedup']['seconds']:>13,.0f} {res['rss_mb']:>14.0f}")
        rate = lambda c, s: results[c][s]['n'] / results[c][s]['seconds'] if c in results else float('nan')
        print()
        for s in ('clean', 'dedup'):
            print(f'{s}: ray:1 / local:1 = {rate("ray:1", s) / rate("local:1", s):.2f}, ray:2 / local:2 = '
                  f'{rate("ray:2", s) / rate("local:2", s):.2f}, cluster:2 / ray:1 = {rate("cluster:2", s) / rate("ray:1", s):.2f}')
        per_doc, n = shuffle_bytes_per_doc(str(d/'stage'))
        pairs = next((r['pairs'] for r in results.values()), 0)
        print(f'shuffle volume: {per_doc:.0f} bytes per document (bucket rows of exact + 14 MinHash bands, measured on {n:,} documents)')
        print(f'driver state for the plan: {pairs:,} duplicate pairs kept in clusters (edges: at most bands x pairs)')


if __name__ == '__main__': main()
