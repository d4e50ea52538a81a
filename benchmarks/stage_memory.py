"""Peak memory of a stage as the corpus grows: `ingest`, `clean` or `pii` of the sample corpus at several sizes, each in a fresh process.

    .venv/bin/python benchmarks/stage_memory.py [--stage ingest] [--sizes 5000 20000 80000] [--workers 1]
    .venv/bin/python benchmarks/stage_memory.py --stage clean --sizes 5000 50000
    .venv/bin/python benchmarks/stage_memory.py --stage pii --sizes 1000 10000   # NER on, shards of 1,000, spans/redacted.jsonl included

Prints documents, input MB, wall seconds, docs/s and peak RSS per size, then the change in peak RSS from the
smallest to the largest size. Flat RSS means the stage streams: shards are processed one at a time, committed to
Delta by linking their files (no rewrite), and `clean`'s decisions.jsonl is sorted and written by DuckDB in batches.
"""
import argparse, json, resource, subprocess, sys, tempfile, time
from pathlib import Path

CHILD = '''
import json, resource, sys, time
inp, out, workers, stage = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t = time.time()
if stage == 'ingest':
    from dcresearch.io import RecordReader
    from dcresearch.pipeline import Pipeline
    res = Pipeline(workers=workers, shard_size=5000, progress=False).run(RecordReader(inp), out)
elif stage == 'pii':  # the whole command, spans.jsonl and redacted.jsonl included
    from dcresearch.privacy.pii import pii
    res = pii([inp], out, workers=workers, shard_size=1000, quiet=True)  # shards of 1,000: memory is per shard
else:  # the whole command, decisions.jsonl included
    from dcresearch.cli import clean
    res = clean([inp], out, workers=workers, quiet=True)
print(json.dumps(dict(seconds=time.time() - t, n=res.ledger.summary()['n_in'],
                      rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
'''

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--stage', choices=['ingest', 'clean', 'pii'], default='ingest', help='the stage to measure')
    ap.add_argument('--sizes', type=int, nargs='+', default=[5000, 20000, 80000], help='corpus sizes (documents)')
    ap.add_argument('--workers', type=int, default=1, help='worker processes')
    a = ap.parse_args()
    from dcresearch.sample import write_sample
    print(f"{a.stage}\n{'docs':>8} {'input MB':>9} {'seconds':>8} {'docs/s':>8} {'peak RSS MB':>12}")
    peaks = []
    for n in a.sizes:
        with tempfile.TemporaryDirectory() as d:
            paths = write_sample(Path(d)/'in', n_docs=n, seed=0, n_files=4, n_broken=0)
            mb = sum(p.stat().st_size for p in paths) / 1e6
            r = json.loads(subprocess.run([sys.executable, '-c', CHILD, str(Path(d)/'in'), str(Path(d)/'out'), str(a.workers), a.stage],
                                          check=True, capture_output=True, text=True).stdout)
            peaks.append(r['rss_mb'])
            print(f"{r['n']:>8,} {mb:>9.1f} {r['seconds']:>8.1f} {r['n']/r['seconds']:>8,.0f} {r['rss_mb']:>12.0f}")
    print(f'peak RSS from {a.sizes[0]:,} to {a.sizes[-1]:,} documents: {100 * (peaks[-1] / peaks[0] - 1):+.1f}%')

if __name__ == '__main__': main()
