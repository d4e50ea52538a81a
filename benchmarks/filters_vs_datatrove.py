"""Quality filters: dcresearch vs datatrove on the same documents, in one run: agreement and speed.

What it prints:
  * agreement: keep/drop per document for each of the four heuristic filters (Gopher repetition, Gopher
    quality, C4 quality, FineWeb quality, each on the original texts) and for the chain (the four in
    FineWeb's order, C4's line removal feeding FineWeb), both at datatrove's default parameters; the share
    of documents where both sides decide alike, whether the reasons match too, and every disagreement with
    the document index, both decisions, our scores and the word counts of both tokenizers (the usual cause);
  * speed on one core: documents per second for the four filters together, datatrove running them the
    way its executor does (each filter's `run` generator chained, one document at a time) and dcresearch
    running its four steps over Arrow tables of up to `--shard-size` rows (the pipeline's unit), over the
    corpus `--copies` times; dcresearch empties its document cache before each pass, so a text is never
    reused from an earlier pass (its word-chunk cache stays warm, as spaCy's does on the other side); the
    first run (dcresearch with all caches empty) and the best of `--runs`, both sides in the same process
    so machine load hits both alike; and the ratio (target: at least 5x);
  * per filter, documents per second on each side (the same corpus, best of `--runs`).

Run from the project root (about 6 minutes with the defaults on a free core, nearly all of it datatrove's side):
    .venv/bin/python benchmarks/filters_vs_datatrove.py
    .venv/bin/python benchmarks/filters_vs_datatrove.py --copies 2 --runs 1        # quick look, about a minute
    .venv/bin/python benchmarks/filters_vs_datatrove.py --no-speed                 # agreement only
"""
from __future__ import annotations
import argparse, json, os, sys, time
from pathlib import Path

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('HF_HUB_OFFLINE', '1')

import numpy as np
import pyarrow as pa

from dcresearch.core import make_records
from dcresearch import filters as F

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
NAMES = ['gopher_repetition', 'gopher_quality', 'c4_quality', 'fineweb_quality']


def datatrove_filters() -> list:
    "datatrove's four filters at their defaults, in FineWeb's order."
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)
    return [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter()]


def datatrove_decide(f, text: str) -> tuple[bool, str|None, str]:
    "(keep, reason, text after the filter) of one datatrove filter on one document."
    from datatrove.data import Document
    doc = Document(text=text, id='0')
    r = f.filter(doc)
    keep, reason = (r, None) if isinstance(r, bool) else r
    return bool(keep), reason, doc.text


def datatrove_decisions(texts: list[str]) -> dict:
    "Per filter (on the original texts) and for the chain: list of (keep, reason) per document."
    fs, out = datatrove_filters(), {}
    for name, f in zip(NAMES, fs):
        out[name] = [datatrove_decide(f, t)[:2] for t in texts]
    chain = []
    for t in texts:
        for name, f in zip(NAMES, fs):
            keep, reason, t = datatrove_decide(f, t)
            if not keep: chain.append((False, f'{name}:{reason}')); break
        else: chain.append((True, None))
    out['chain'] = chain
    return out


def our_decisions(texts: list[str]) -> tuple[dict, dict]:
    "Same as `datatrove_decisions` for dcresearch (reasons in datatrove's names), plus our scores per filter."
    d = F.decisions_as_datatrove(texts)
    return d['decisions'], d['scores']


def agreement(texts: list[str], verbose: bool=True) -> dict:
    "Compare both sides per filter and for the chain; print and return the agreement shares."
    from datatrove.utils.text import split_into_words
    theirs, (ours, scores) = datatrove_decisions(texts), our_decisions(texts)
    result = {}
    c4_text = [datatrove_decide(f, t)[2] for f, t in zip([datatrove_filters()[2]] * len(texts), texts)]
    table = make_records(texts, [f'doc#{i}' for i in range(len(texts))], ids=[str(i) for i in range(len(texts))])
    kept = F.C4QualityFilter()(table).kept
    ours_text = dict(zip(map(int, kept['id'].to_pylist()), kept['text'].to_pylist()))
    same_text = [ours_text[i] == c4_text[i] for i in ours_text if theirs['c4_quality'][i][0]]
    for name in NAMES + ['chain']:
        a, b = theirs[name], ours[name]
        same_keep = [x[0] == y[0] for x, y in zip(a, b)]
        same_reason = [x == y for x, y in zip(a, b)]
        result[name] = dict(agree=float(np.mean(same_keep)), same_reason=float(np.mean(same_reason)),
                            datatrove_kept=sum(x[0] for x in a), ours_kept=sum(y[0] for y in b),
                            disagreements=[i for i, s in enumerate(same_keep) if not s],
                            other_reason=[i for i, (s, r) in enumerate(zip(same_keep, same_reason)) if s and not r])
    if verbose:
        print(f'\nAgreement on {len(texts)} documents (keep/drop per document; reasons compared where both drop)')
        print(f"{'filter':<20} {'agree':>8} {'same reason':>12} {'datatrove kept':>15} {'ours kept':>10}")
        for name, r in result.items():
            print(f"{name:<20} {r['agree']:>8.2%} {r['same_reason']:>12.2%} {r['datatrove_kept']:>15} {r['ours_kept']:>10}")
        print(f'C4 text after line removal identical on {sum(same_text)} of {len(same_text)} documents both sides keep')
        for name in NAMES + ['chain']:
            r = result[name]
            for kind, idx in [('DISAGREE', r['disagreements']), ('other reason', r['other_reason'])]:
                for i in idx:
                    dt_words, our_words = len(split_into_words(texts[i])), len(F.word_tokenize(texts[i])[0])
                    sc = {k: round(float(v[i]), 4) for k, v in scores.get(name, {}).items()}
                    print(f'\n[{name}] {kind} doc {i}: datatrove={theirs[name][i]} ours={ours[name][i]}; '
                          f'tokens datatrove={dt_words} ours={our_words}\n  our scores: {sc}\n  text: {texts[i][:160]!r}')
    result['c4_same_text'] = sum(same_text) / max(1, len(same_text))
    return result


def best_of(fn, runs: int) -> tuple[float, float]:
    "(first run seconds, best seconds) of `fn` over `runs` runs."
    times = []
    for _ in range(runs):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return times[0], min(times)


def speed(texts: list[str], copies: int, runs: int, shard_size: int):
    "Documents per second, four filters together and each alone, both sides."
    from datatrove.data import Document
    n = len(texts) * copies
    tables = [make_records(texts[i:i + shard_size], [f'doc#{j}' for j in range(i, min(len(texts), i + shard_size))])
              for i in range(0, len(texts), shard_size)]
    dt = datatrove_filters()

    def run_datatrove(filters=None):
        for _ in range(copies):
            data = (Document(text=t, id=str(i)) for i, t in enumerate(texts))
            for f in filters or dt: data = f.run(data)
            for _ in data: pass

    def run_ours(make=F.default_quality_filters):
        steps = make()
        for _ in range(copies):
            # each pass is a new corpus for the document cache (no reuse of a text seen in an earlier pass);
            # the chunk cache stays warm, as spaCy's own cache does on the other side
            F.VOCAB.forget_documents()
            for t in tables:
                for s in steps: t = s(t).kept

    # load the libraries (spaCy, jieba, regexes) outside the timings, on one short text
    datatrove_decide(dt[1], 'warm up'); F.default_quality_filters()[0](make_records(['warm up'], ['w#0']))
    F.VOCAB.reset()  # our first run starts with empty caches
    dt_first, dt_best = best_of(run_datatrove, runs)
    our_first, our_best = best_of(run_ours, runs)
    print(f'\nSpeed, four filters chained, one process, {n:,} documents ({len(texts)} x {copies} passes), tables of <= {shard_size:,} rows')
    print(f"{'':<12} {'first run docs/s':>18} {'best of ' + str(runs) + ' docs/s':>18}")
    print(f"{'datatrove':<12} {n / dt_first:>18,.0f} {n / dt_best:>18,.0f}")
    print(f"{'dcresearch':<12} {n / our_first:>18,.0f} {n / our_best:>18,.0f}")
    print(f"{'ratio':<12} {dt_first / our_first:>17.1f}x {dt_best / our_best:>17.1f}x   (target >= 5x)")
    print(f'\nPer filter, alone on the same corpus, best of {runs} (docs/s)')
    print(f"{'filter':<20} {'datatrove':>10} {'dcresearch':>11} {'ratio':>7}")
    for k, name in enumerate(NAMES):
        _, a = best_of(lambda: run_datatrove([dt[k]]), runs)
        _, b = best_of(lambda: run_ours(lambda: [F.default_quality_filters()[k]]), runs)
        print(f'{name:<20} {n / a:>10,.0f} {n / b:>11,.0f} {a / b:>6.1f}x')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default=str(DATA / 'web' / 'c4_demo.jsonl'), help='JSONL file with a "text" field (default: ../shared/data/web/c4_demo.jsonl)')
    p.add_argument('--copies', type=int, default=10, help='passes over the corpus per timed run')
    p.add_argument('--runs', type=int, default=3, help='timed runs per side (first run and best are reported)')
    p.add_argument('--shard-size', type=int, default=5000, help='rows per Arrow table on the dcresearch side')
    p.add_argument('--no-speed', action='store_true', help='agreement only')
    a = p.parse_args(argv)
    texts = [json.loads(l)['text'] for l in open(a.data, encoding='utf-8')]
    agreement(texts)
    if not a.no_speed: speed(texts, a.copies, a.runs, a.shard_size)


if __name__ == '__main__':
    main()
