"""Label quality control on the shared sets: aggregation accuracy and speed, agreement against the reference
implementations, label-issue detection with seeded flips, and active-learning curves.

    .venv/bin/python benchmarks/label_quality.py [--parts aggregate agree issues active] [--slow] [--rounds 15]

- aggregate: every method of `dcresearch.label.AGGREGATORS` on the product and dog crowd sets against their truth
  (accuracy, seconds); the emotion ratings by mean/median/robust (mean absolute error against the truth). GLAD and
  MACE (crowd-kit) take minutes on the product set: only with --slow.
- agree: Krippendorff's alpha from value counts vs the `krippendorff` package on the annotator x item matrix, Fleiss'
  kappa vs statsmodels, one Cohen's kappa vs scikit-learn (absolute differences).
- crowdlab: a simulated crowd over SST-2 train (its labels the truth): majority vote, Dawid-Skene and CROWDLAB.
- issues: SST-2 train and Banking77 with 10% of labels flipped (seeded, class-conditional): precision and recall at
  k = the number of flips for cleanlab's defaults on MiniLM + logistic-regression out-of-fold probabilities (the
  baseline) and for the project's default (MiniLM and TF-IDF probabilities averaged, ranked by label quality).
- active: from 2% labelled, batches of 100, each strategy against random; labels each needs to reach random's final
  accuracy. Curves go to benchmarks/out/active_learning_<set>.png.
MiniLM embeddings are cached in data/cache/label_bench/ (the first run embeds; later runs take seconds).
"""
import argparse, json, os, sys, time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent/'shared'/'data'
CACHE = ROOT/'data'/'cache'/'label_bench'
sys.path.insert(0, str(ROOT))
from dcresearch import label as L


def part_aggregate(slow: bool):
    for name in ('product', 'dog'):
        ann = L.read_annotations(DATA/'labels'/f'{name}_answers.csv', 'question', 'worker', 'answer')
        truth = L.read_truth(DATA/'labels'/f'{name}_truth.csv')
        for m in ['mv', 'ds', 'one_coin', 'ds_crowdkit'] + (['glad', 'mace'] if slow else []):
            c = L.aggregate(ann, m)
            print(json.dumps(dict(part='aggregate', set=name, answers=len(ann), method=m,
                                  accuracy=round(L.accuracy_against(c, truth), 4), seconds=round(c.seconds, 2))), flush=True)
    ann = L.read_annotations(DATA/'labels'/'emotion_answers.csv', 'question', 'worker', 'answer')
    truth = L.read_truth(DATA/'labels'/'emotion_truth.csv').astype(float)
    for m in ('mean', 'median', 'robust'):
        c = L.aggregate(ann, m)
        got = c.items.set_index('item')['label'].reindex(truth.index)
        print(json.dumps(dict(part='aggregate', set='emotion', method=m, mae=round(float((got - truth).abs().mean()), 3),
                              seconds=round(c.seconds, 2))), flush=True)


def part_agree():
    import krippendorff
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa
    for name, level in (('product', 'nominal'), ('dog', 'nominal'), ('emotion', 'interval')):
        ann = L.read_annotations(DATA/'labels'/f'{name}_answers.csv', 'question', 'worker', 'answer')
        t0 = time.time(); res = L.agreement(ann, level, n_boot=200); secs = time.time() - t0
        wide = ann.table.pivot(index='annotator', columns='item', values='value').to_numpy(dtype=float)
        ref = krippendorff.alpha(reliability_data=wide, level_of_measurement=level)
        out = dict(part='agree', set=name, level=level, alpha=round(res['krippendorff_alpha'], 6), alpha_ci95=res['krippendorff_alpha_ci95'],
                   alpha_diff=abs(res['krippendorff_alpha'] - ref), seconds_with_bootstrap=round(secs, 2))
        if level == 'nominal':
            by_item = ann.table.groupby('item')['label'].apply(list)
            n = by_item.map(len); m = n.mode()[0]
            rows = np.array(by_item[n == m].tolist())
            codes = pd.Index(ann.labels).get_indexer(rows.ravel()).reshape(rows.shape)
            out['fleiss_diff'] = abs(res['fleiss_kappa'] - fleiss_kappa(aggregate_raters(codes, n_cat=len(ann.labels))[0]))
            p = max(res['cohen_pairs'], key=lambda r: r['shared'])
            t = ann.table
            a = t[t['annotator'] == p['a']].set_index('item')['label']; b = t[t['annotator'] == p['b']].set_index('item')['label']
            both = a.index.intersection(b.index)
            out['cohen_diff'] = abs(p['kappa'] - cohen_kappa_score(a[both], b[both]))
        print(json.dumps(out), flush=True)


def _embed(name: str, texts: list[str]) -> np.ndarray:
    CACHE.mkdir(parents=True, exist_ok=True)
    f = CACHE/f'{name}.npy'
    if f.is_file():
        X = np.load(f)
        if len(X) == len(texts): return X
    from dcresearch.augment.effect import MiniLMEmbedder
    X = MiniLMEmbedder()(texts); np.save(f, X)
    return X


def _sets():
    sst = pd.read_csv(DATA/'en_sentiment'/'sst2_train.tsv', sep='\t', header=None, names=['label', 'text'], quoting=3)
    bank = pd.read_csv(DATA/'en_intent'/'banking77_train.csv').rename(columns={'category': 'label'})
    for name, df in (('sst2', sst), ('banking77', bank)):
        classes = sorted(df['label'].astype(str).unique())
        yield name, df['text'].astype(str).tolist(), pd.Index(classes).get_indexer(df['label'].astype(str))


def part_crowdlab():
    "A simulated crowd over SST-2 train (3 of 20 annotators per sentence, skill 0.55-0.85): MV, Dawid-Skene and CROWDLAB against SST-2's labels."
    sst = pd.read_csv(DATA/'en_sentiment'/'sst2_train.tsv', sep='\t', header=None, names=['label', 'text'], quoting=3)
    X = _embed('sst2', sst['text'].astype(str).tolist())
    rng = np.random.default_rng(0); skill = rng.uniform(0.55, 0.85, 20)
    rows = [(str(i), f'a{a}', str(y if rng.random() < skill[a] else 1 - y)) for i, y in enumerate(sst['label']) for a in rng.choice(20, 3, replace=False)]
    ann = L.annotations_from_frame(pd.DataFrame(rows, columns=['item', 'annotator', 'label']))
    gold = pd.Series(sst['label'].astype(str).values, index=[str(i) for i in range(len(sst))])
    cache = dict(zip(sst['text'].astype(str), X))
    for m in ('mv', 'ds', 'crowdlab'):
        t0 = time.time()
        c = L.crowdlab(ann, dict(zip(gold.index, sst['text'].astype(str))), embed=lambda ts: np.stack([cache[t] for t in ts])) if m == 'crowdlab' else L.aggregate(ann, m)
        print(json.dumps(dict(part='crowdlab', set='sst2 simulated crowd', answers=len(ann), method=m,
                              accuracy=round(L.accuracy_against(c, gold), 4), seconds=round(time.time() - t0, 1))), flush=True)


def part_issues():
    for name, texts, y0 in _sets():
        X = _embed(name, texts)
        y, flips = L.flip_labels(y0, 0.1, seed=0)
        t0 = time.time(); p_emb = L.out_of_fold_probs([X], y); t_emb = time.time() - t0
        t0 = time.time(); p_tfidf = L.out_of_fold_probs([L.tfidf_features(texts)], y); t_tf = time.time() - t0
        p_ens = (p_emb + p_tfidf) / 2
        for label, probs, method in (('cleanlab default, MiniLM+LR', p_emb, 'cleanlab'), ('ranked, MiniLM+LR', p_emb, 'ranked'),
                                     ('cleanlab default, ensemble', p_ens, 'cleanlab'), ('ranked, ensemble (project default)', p_ens, 'ranked')):
            pr, rc = L.precision_recall_at_k(L.rank_label_issues(y, probs, method), flips)
            print(json.dumps(dict(part='issues', set=name, n=len(y), flips=len(flips), method=label, precision_at_k=round(pr, 4),
                                  recall_at_k=round(rc, 4), seconds_probs=round(t_emb + (t_tf if 'ensemble' in label else 0), 1))), flush=True)


def part_active(rounds: int, strategies=('random', 'margin', 'entropy', 'kcenter', 'mix')):
    figs = []
    for name, texts, y in _sets():
        X = _embed(name, texts)
        curves = {s: L.active_learning_curve(X, y, s, rounds=rounds, batch=100, start=0.02, seed=0) for s in strategies}
        final_n, target = curves['random'][-1]
        for s in strategies:
            need = L.labels_to_reach(curves[s], target)
            print(json.dumps(dict(part='active', set=name, strategy=s, final_accuracy=round(curves[s][-1][1], 4),
                                  labels_to_reach_random_final=need, random_final_labels=final_n,
                                  share_of_random=None if need is None else round(need / final_n, 3))), flush=True)
        figs.append((name, L.plot_learning_curves(curves, f'{name}: accuracy against labelled items')))
    (ROOT/'benchmarks'/'out').mkdir(exist_ok=True)
    for name, f in figs: f.savefig(ROOT/'benchmarks'/'out'/f'active_learning_{name}.png', dpi=100)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--parts', nargs='+', default=['aggregate', 'agree', 'crowdlab', 'issues', 'active'])
    ap.add_argument('--slow', action='store_true', help='also GLAD and MACE (crowd-kit; minutes)')
    ap.add_argument('--rounds', type=int, default=15, help='active learning: batches of 100 after the 2%% start')
    a = ap.parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', '1'); os.environ.setdefault('HF_HUB_OFFLINE', '1')
    if 'aggregate' in a.parts: part_aggregate(a.slow)
    if 'agree' in a.parts: part_agree()
    if 'crowdlab' in a.parts: part_crowdlab()
    if 'issues' in a.parts: part_issues()
    if 'active' in a.parts: part_active(a.rounds)
