"""The default `dcr finetune` recipe on test sets it never saw: held-out splits of Banking77 and SST-2 train.

The test files of these sets are not in ../shared/data on purpose, so this carves a stratified test split out of each
training file (seed 123, 1,000 rows), trains with the default recipe on the rest (`dcr finetune` with no schedule
option: `adaptive_recipe` chooses), and prints test accuracy, macro-F1, the recipe and the wall time. Each run is a
separate `dcr finetune` process, as a user would start it; `--set NAME=VALUE` changes an option for an experiment.

    .venv/bin/python benchmarks/finetune_recipe.py                   # both sets, about 45 minutes on 2 cores
    .venv/bin/python benchmarks/finetune_recipe.py --set ensemble=1  # one run instead of the default's averaged members
    .venv/bin/python benchmarks/finetune_recipe.py --sets banking77 --set layer_lr_decay=0.9
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent/'shared'/'data'
OUT = ROOT/'benchmarks'/'out'/'finetune_recipe'
SETS = dict(
    banking77=dict(file=DATA/'en_intent'/'banking77_train.csv', read=dict(sep=','), label='category', flags=['--label-field', 'category']),
    sst2=dict(file=DATA/'en_sentiment'/'sst2_train.tsv', read=dict(sep='\t', header=None), label=0, flags=['--sst2']),
)


def split(name: str, n_test: int=1000, seed: int=123) -> tuple[Path, Path]:
    "TRAIN and TEST files for `name`: a stratified `n_test`-row test split of its training file, written once."
    s = SETS[name]
    d = OUT/'data'; d.mkdir(parents=True, exist_ok=True)
    ext = s['file'].suffix
    train, test = d/f'{name}_train{ext}', d/f'{name}_test{ext}'
    if not (train.exists() and test.exists()):
        df = pd.read_csv(s['file'], **s['read'])
        tr, te = train_test_split(df, test_size=n_test, stratify=df[s['label']], random_state=seed)
        header = s['read'].get('header', 'infer') is not None
        tr.to_csv(train, sep=s['read']['sep'], index=False, header=header)
        te.to_csv(test, sep=s['read']['sep'], index=False, header=header)
    return train, test


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sets', nargs='+', default=list(SETS), choices=list(SETS), help='datasets to run')
    ap.add_argument('--set', action='append', default=[], metavar='NAME=VALUE', help='a `dcr finetune` option to change (repeatable)')
    ap.add_argument('--tag', default='default', help='name of this configuration in the output folder')
    a = ap.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE='1', OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', str(os.cpu_count())))
    extra = [x for kv in a.set for x in (f"--{kv.split('=', 1)[0].replace('_', '-')}", kv.split('=', 1)[1])]
    results = []
    for name in a.sets:
        train, test = split(name)
        out = OUT/f'{name}-{a.tag}'
        cmd = [str(ROOT/'.venv'/'bin'/'dcr'), 'finetune', '--train', str(train), '--eval', str(test), '--out', str(out), '--quiet',
               *SETS[name]['flags'], *extra]
        t0 = time.time()
        subprocess.run(cmd, check=True, env=env, cwd=ROOT)
        wall = time.time() - t0
        m = json.loads((out/'metrics.json').read_text())
        cfg = json.loads((out/'run_config.json').read_text())
        curve = [round(r['eval_accuracy'], 4) for r in json.loads((out/'log_history.json').read_text()) if 'eval_accuracy' in r]
        row = dict(set=name, tag=a.tag, accuracy=round(m['accuracy'], 4), macro_f1=round(m['macro_f1'], 4), n_eval=m['n_eval'],
                   wall_seconds=round(wall), train_steps=m['train_steps'], recipe=cfg['recipe']['chosen'], changed=a.set,
                   validation_curve=curve)
        if 'ensemble' in m:   # the default trains several members and averages them (`dcresearch.ensemble`); the curve is member 0's
            e = m['ensemble']
            row['ensemble'] = dict(members=e['members'], kept=e['kept'], member_accuracy=[round(x, 4) for x in e['member_accuracy']],
                                   prediction_average_accuracy=e['prediction_average_accuracy'], validation=e['validation'],
                                   member_validation=e['member_validation'])
        results.append(row)
        print(json.dumps(row), flush=True)
    with open(OUT/'results.jsonl', 'a') as f:
        for r in results: f.write(json.dumps(r) + '\n')


if __name__ == '__main__':
    sys.exit(main())
