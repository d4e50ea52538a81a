"""MinHash dedup: dcresearch vs datatrove's 4-stage MinHash, on the same corpus, in one run.

What it measures (and prints):
  * throughput, documents per second on one core (both sides run in one process, best of --repeats):
      - datatrove: MinhashDedupSignature -> MinhashDedupBuckets -> MinhashDedupCluster -> MinhashDedupFilter,
        LocalPipelineExecutor with workers=1 (tasks=1; the buckets stage needs tasks=num_bands), JSONL in,
        JSONL out, its intermediate files in a temporary directory: its real end-to-end cost;
      - dcresearch: `dedup_stage(RecordReader(jsonl), out, methods=('minhash',))`: reads the JSONL twice
        (plan, apply), writes a Delta stage directory (records, rejected with kept ids, ledger, clusters);
        also the plan pass alone;
    and the ratio (target >= 10x);
  * quality on injected near duplicates: every C4 demo document gets one edited copy (adjacent-word swaps,
    word deletions up to --max-edit-rate of the words, one line of boilerplate appended with probability 1/2);
    recall = share of (original, copy) pairs that end in one cluster, precision = share of clustered pairs
    that are true pairs. The corpus is padded to --scale x 600 documents with word-shuffled C4 documents
    (distinct texts with the same length and vocabulary). A single hash seed moves recall by about +-0.02
    on 300 pairs, so both systems are also compared over --quality-seeds edited sets, each with its own
    hash seed on both sides;
  * sanity on real paraphrases: MRPC sentence pairs labelled paraphrase (recall; MinHash is not built for
    paraphrases, so low values are expected) and how many non-paraphrase pairs were clustered;
  * memory: peak RSS (VmHWM) of dcresearch at 1x, 4x and 16x the corpus, each in a fresh process: after the
    plan pass (the MinHash part: it should grow only with the band keys and ids, O(signatures)), then after
    the whole stage (plus the apply pass and the Delta commit of dcresearch.pipeline / deltalake).

Run from the project root (about 4-6 minutes on one free core with the defaults):
    .venv/bin/python benchmarks/minhash_vs_datatrove.py
    .venv/bin/python benchmarks/minhash_vs_datatrove.py --scale 2 --repeats 1 --rss-scales 1   # quick look
"""
from __future__ import annotations
import argparse, contextlib, glob, json, os, random, resource, shutil, subprocess, sys, tempfile, time
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('DCR_LOG_LEVEL', 'WARNING')
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / 'shared' / 'data'


# ------------------------------------------------------------------ corpus
def build_corpus(path: Path, scale: int, max_edit_rate: float, seed: int) -> list[tuple[str, str]]:
    "Write the JSONL corpus (`id`, `text`) and return the true (original, copy) pairs."
    from dcresearch.dedup import near_duplicate
    texts = [json.loads(l)['text'] for l in (SHARED / 'web' / 'c4_demo.jsonl').open()]
    rng = random.Random(seed)
    docs, pairs = [], []
    for i, t in enumerate(texts):
        copy, _ = near_duplicate(t, rng, max_edit_rate)
        docs += [(f'o{i}', t), (f'c{i}', copy)]
        pairs.append((f'o{i}', f'c{i}'))
    base, seen, k = [t for _, t in docs], set(), 0
    while len(docs) < scale * len(base):  # filler: word-shuffled documents, distinct from everything else
        words = base[k % len(base)].split()
        rng.shuffle(words)
        text, k = ' '.join(words), k + 1
        if text not in seen: seen.add(text); docs.append((f'f{k}', text))  # two shuffles of a 4-word text may agree
    order = list(range(len(docs)))
    rng.shuffle(order)  # originals and copies spread over the file, as in a real crawl
    with path.open('w') as f:
        for i in order: f.write(json.dumps(dict(id=docs[i][0], text=docs[i][1])) + '\n')
    return pairs


def mrpc_corpus(path: Path) -> tuple[list, list]:
    "Write MRPC's sentences (one per sentence id) as JSONL; return (paraphrase pairs, non-paraphrase pairs)."
    import csv
    sentences, pos, neg = {}, [], []
    with (SHARED / 'paraphrase' / 'mrpc_train.txt').open(encoding='utf-8-sig') as f:
        for row in csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE):
            if len(row) != 5 or row[0] not in ('0', '1'): continue
            a, b = f'm{row[1]}', f'm{row[2]}'
            sentences[a], sentences[b] = row[3], row[4]
            (pos if row[0] == '1' else neg).append((a, b))
    with path.open('w') as f:
        for i, t in sentences.items(): f.write(json.dumps(dict(id=i, text=t)) + '\n')
    return pos, neg


# ------------------------------------------------------------------ the two systems
def cpu_seconds() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


@contextlib.contextmanager
def stderr_to(path: Path):
    "Send this process's stderr (datatrove's loguru INFO lines, tqdm bars) to `path` while the block runs."
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, 'a') as f:
        os.dup2(f.fileno(), 2)
        try: yield
        finally:
            sys.stderr.flush(); os.dup2(saved, 2); os.close(saved)


def run_datatrove(corpus: Path, work: Path, bands: int, rows: int, n_grams: int, seed: int=1) -> dict:
    "datatrove's four MinHash stages, one worker; returns timings and `{id: cluster}` for clustered documents."
    with stderr_to(work.with_name(work.name + '.log')):
        return _run_datatrove(corpus, work, bands, rows, n_grams, seed)


def _run_datatrove(corpus: Path, work: Path, bands: int, rows: int, n_grams: int, seed: int) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    if work.exists(): shutil.rmtree(work)
    (work / 'in').mkdir(parents=True)
    shutil.copy(corpus, work / 'in' / 'corpus.jsonl')
    cfg = MinhashConfig(num_buckets=bands, hashes_per_bucket=rows, n_grams=n_grams, seed=seed)
    stages = [
        (lambda: [JsonlReader(str(work / 'in')), MinhashDedupSignature(output_folder=str(work / 'sigs'), config=cfg)], 1),
        (lambda: [MinhashDedupBuckets(input_folder=str(work / 'sigs'), output_folder=str(work / 'buckets'), config=cfg)], bands),
        (lambda: [MinhashDedupCluster(input_folder=str(work / 'buckets'), output_folder=str(work / 'remove'), config=cfg,
                                      save_cluster_id=True)], 1),
        (lambda: [JsonlReader(str(work / 'in')),
                  MinhashDedupFilter(input_folder=str(work / 'remove'), load_cluster_ids=True,
                                     exclusion_writer=JsonlWriter(str(work / 'removed'), compression=None)),
                  JsonlWriter(str(work / 'out'), compression=None)], 1)]
    t0, c0, times = time.perf_counter(), cpu_seconds(), []
    for k, (make, tasks) in enumerate(stages):
        s = time.perf_counter()
        LocalPipelineExecutor(make(), tasks=tasks, workers=1, logging_dir=str(work / f'logs{k}')).run()
        times.append(time.perf_counter() - s)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    clusters = {}
    for f in glob.glob(str(work / 'out' / '*')) + glob.glob(str(work / 'removed' / '*')):
        for line in open(f):
            d = json.loads(line)
            c = d['metadata'].get('minhash_cluster_id', -1)
            if c != -1: clusters[d['id']] = c
    n_removed = sum(1 for f in glob.glob(str(work / 'removed' / '*')) for _ in open(f))
    return dict(wall=wall, cpu=cpu, stages=times, clusters=clusters, n_removed=n_removed)


def run_ours(corpus: Path, out: Path, bands: int, rows: int, n_grams: int, plan_only: bool=False, seed: int=1) -> dict:
    "dcresearch's MinHash dedup stage (or only its plan pass) on the JSONL corpus."
    from dcresearch.dedup import MinHashDeduplicator, dedup_stage, plan_clusters
    from dcresearch.io import RecordReader
    if out.exists(): shutil.rmtree(out)
    reader = RecordReader(str(corpus), id_field='id', batch_size=5000)
    t0, c0 = time.perf_counter(), cpu_seconds()
    if plan_only:
        plan = MinHashDeduplicator(n_grams=n_grams, num_bands=bands, rows_per_band=rows, seed=seed).plan(reader)
    else:
        plan = dedup_stage(reader, out, methods=('minhash',), n_grams=n_grams, num_bands=bands, rows_per_band=rows, seed=seed).plan
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return dict(wall=wall, cpu=cpu, clusters=plan_clusters(plan), n_removed=plan.n_removed)


def peak_rss_mb() -> float:
    "This process's peak resident memory (VmHWM: unlike ru_maxrss it does not inherit the parent's peak across fork+exec)."
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(args) -> None:
    "In a fresh process: peak RSS after our plan pass alone, then after the whole stage; printed as JSON."
    corpus = Path(args.corpus)
    plan = run_ours(corpus, corpus.with_suffix('.out'), args.num_bands, args.rows_per_band, args.n_grams, plan_only=True)
    plan_rss = peak_rss_mb()
    full = run_ours(corpus, corpus.with_suffix('.out'), args.num_bands, args.rows_per_band, args.n_grams)
    n = sum(1 for _ in corpus.open())
    print(json.dumps(dict(n_docs=n, plan_seconds=plan['wall'], seconds=full['wall'], plan_rss_mb=plan_rss, peak_rss_mb=peak_rss_mb(),
                          band_keys_mb=n * args.num_bands * 8 / 2**20)))


# ------------------------------------------------------------------ report
def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--scale', type=int, default=8, help='corpus = scale x 600 documents (300 C4 + 300 edited copies, then shuffled filler)')
    p.add_argument('--repeats', type=int, default=3, help='timed runs per system; the best is reported')
    p.add_argument('--rss-scales', default='1,4,16', help='corpus multiples (of --scale) for the peak-RSS runs of dcresearch; empty: skip')
    p.add_argument('--max-edit-rate', type=float, default=0.02, help='edited copies change at most this share of words')
    p.add_argument('--num-bands', type=int, default=14, help='LSH bands (datatrove num_buckets), both systems')
    p.add_argument('--rows-per-band', type=int, default=8, help='hashes per band (datatrove hashes_per_bucket), both systems')
    p.add_argument('--n-grams', type=int, default=5, help='words per shingle, both systems')
    p.add_argument('--seed', type=int, default=0, help='seed of the edits and the filler')
    p.add_argument('--quality-seeds', type=int, default=10, help='also compare recall/precision on this many differently edited sets, '
                   'each with its own hash seed on both sides (1: skip)')
    p.add_argument('--skip-datatrove', action='store_true', help='only dcresearch (no ratio)')
    p.add_argument('--semantic', action='store_true', help='also run SemanticDeduplicator on MRPC (slow on CPU: a few minutes)')
    p.add_argument('--work', default=None, help='working directory (default: a temporary one, removed at the end)')
    p.add_argument('--rss-child', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--corpus', default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rss_child: return rss_child(args)

    from dcresearch.dedup import pair_scores
    work = Path(args.work or tempfile.mkdtemp(prefix='dedup-bench-'))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / 'corpus.jsonl'
    pairs = build_corpus(corpus, args.scale, args.max_edit_rate, args.seed)
    n = sum(1 for _ in corpus.open())
    cfg = (args.num_bands, args.rows_per_band, args.n_grams)
    print(f'corpus: {n:,} documents ({corpus.stat().st_size / 2**20:.1f} MB), {len(pairs)} injected near-duplicate pairs; '
          f'MinHash {args.num_bands} bands x {args.rows_per_band} rows, {args.n_grams}-grams; {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}')

    results = {'dcresearch': [], 'dcresearch plan only': [], 'datatrove': []}
    for rep in range(args.repeats):  # interleaved, so background load hits both sides alike
        results['dcresearch'].append(run_ours(corpus, work / 'ours', *cfg))
        results['dcresearch plan only'].append(run_ours(corpus, work / 'ours', *cfg, plan_only=True))
        if not args.skip_datatrove: results['datatrove'].append(run_datatrove(corpus, work / 'dt', *cfg))
    best = {k: min(v, key=lambda r: r['wall']) for k, v in results.items() if v}

    print('\nthroughput (one process, best of %d)' % args.repeats)
    print(f"{'system':<22} {'wall s':>8} {'cpu s':>8} {'docs/s':>9} {'docs/cpu-s':>11} {'removed':>8}")
    for k, r in best.items():
        print(f"{k:<22} {r['wall']:>8.2f} {r['cpu']:>8.2f} {n / r['wall']:>9,.0f} {n / r['cpu']:>11,.0f} {r['n_removed']:>8,}")
    if 'datatrove' in best:
        dt = best['datatrove']
        print(f"datatrove stages (s): signature {dt['stages'][0]:.2f}, buckets {dt['stages'][1]:.2f}, "
              f"cluster {dt['stages'][2]:.2f}, filter {dt['stages'][3]:.2f}")
        for k in ('dcresearch', 'dcresearch plan only'):
            print(f"ratio {k} / datatrove: {dt['wall'] / best[k]['wall']:.1f}x docs/s (wall), {dt['cpu'] / best[k]['cpu']:.1f}x docs/cpu-s")

    print('\nquality on the injected near duplicates')
    for k in ('dcresearch', 'datatrove'):
        if k in best:
            s = pair_scores(pairs, best[k]['clusters'])
            print(f"{k:<12} recall {s['recall']:.3f}  precision {s['precision']:.3f}  ({s['n_predicted_pairs']} clustered pairs)")

    if args.quality_seeds > 1:
        print(f'\nquality over {args.quality_seeds} differently edited sets (600 documents each: C4 demo + one copy of each), '
              f'hash seed 1..{args.quality_seeds} on both sides; mean [min, max]')
        sc = {'dcresearch': [], 'datatrove': []}
        for q in range(args.quality_seeds):
            qc = work / f'quality{q}.jsonl'
            qpairs = build_corpus(qc, 1, args.max_edit_rate, 1000 + q)
            sc['dcresearch'].append(pair_scores(qpairs, run_ours(qc, work / 'q_ours', *cfg, plan_only=True, seed=1 + q)['clusters']))
            if not args.skip_datatrove: sc['datatrove'].append(pair_scores(qpairs, run_datatrove(qc, work / 'q_dt', *cfg, seed=1 + q)['clusters']))
        for k, v in sc.items():
            if v:
                r, p_ = [x['recall'] for x in v], [x['precision'] for x in v]
                print(f"{k:<12} recall {sum(r) / len(r):.3f} [{min(r):.3f}, {max(r):.3f}]  precision {sum(p_) / len(p_):.3f} [{min(p_):.3f}, {max(p_):.3f}]")

    print('\nsanity: MRPC paraphrase pairs (not near duplicates by design; MinHash should find few)')
    mrpc = work / 'mrpc.jsonl'
    pos, neg = mrpc_corpus(mrpc)
    mr = {'dcresearch': run_ours(mrpc, work / 'mrpc_ours', *cfg)}
    if not args.skip_datatrove: mr['datatrove'] = run_datatrove(mrpc, work / 'mrpc_dt', *cfg)
    if args.semantic:
        from dcresearch.dedup import SemanticDeduplicator, plan_clusters
        from dcresearch.io import RecordReader
        mr['dcresearch semantic 0.95'] = dict(clusters=plan_clusters(SemanticDeduplicator().plan(RecordReader(str(mrpc), id_field='id'))))
    for k, r in mr.items():
        s, fp = pair_scores(pos, r['clusters']), pair_scores(neg, r['clusters'])
        print(f"{k:<24} paraphrase recall {s['recall']:.3f} ({round(s['recall'] * len(pos))}/{len(pos)}), "
              f"non-paraphrase pairs clustered {round(fp['recall'] * len(neg))}/{len(neg)}")

    scales = [int(s) for s in args.rss_scales.split(',') if s.strip()]
    if scales:
        print('\npeak RSS of dcresearch (fresh process per size): the plan pass (MinHash), then the whole stage (plan + apply + Delta write)')
        print(f"{'corpus':>8} {'docs':>9} {'MB on disk':>11} {'band keys MB':>13} {'plan RSS MB':>12} {'plan s':>7} {'stage RSS MB':>13} {'stage s':>8}")
        for m in scales:
            c = work / f'rss{m}.jsonl'
            build_corpus(c, args.scale * m, args.max_edit_rate, args.seed)
            out = subprocess.run([sys.executable, __file__, '--rss-child', '--corpus', str(c), '--num-bands', str(args.num_bands),
                                  '--rows-per-band', str(args.rows_per_band), '--n-grams', str(args.n_grams)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{m:>7}x {r['n_docs']:>9,} {c.stat().st_size / 2**20:>11.1f} {r['band_keys_mb']:>13.2f} {r['plan_rss_mb']:>12.0f} "
                  f"{r['plan_seconds']:>7.1f} {r['peak_rss_mb']:>13.0f} {r['seconds']:>8.1f}")
            c.unlink(); shutil.rmtree(c.with_suffix('.out'), ignore_errors=True)
    if not args.work: shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
