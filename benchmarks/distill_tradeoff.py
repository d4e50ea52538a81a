"""Size and latency against accuracy: fine-tuned MiniLM teachers distilled into students with fewer layers.

The teachers are `benchmarks/finetune_recipe.py` runs (held-out 1,000-row test splits of Banking77 and SST-2 train);
each student is one `dcr distill` process on the teacher's own training and validation rows, scored on the same test
rows. Prints accuracy, parameters, weights on disk, p50 latency for one text and batch-32 throughput (PyTorch fp32 on
the current threads), teacher beside student.

    .venv/bin/python benchmarks/finetune_recipe.py --sets sst2            # the teacher, if not there yet
    .venv/bin/python benchmarks/distill_tradeoff.py --sets sst2 --teacher-tag default --layers 3 2
    .venv/bin/python benchmarks/distill_tradeoff.py --sets sst2 --teacher-tag wa25 --set augment=synonym,swap --tag aug
    .venv/bin/python benchmarks/distill_tradeoff.py --sets sst2 --teacher-tag wa25 wa25-s1 wa25-s2 --layers 6   # a seed ensemble
"""
import argparse, json, os, subprocess, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEACHERS = ROOT/'benchmarks'/'out'/'finetune_recipe'
OUT = ROOT/'benchmarks'/'out'/'distill'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sets', nargs='+', default=['sst2', 'banking77'], help='teacher sets (benchmarks/out/finetune_recipe/SET-TAG)')
    ap.add_argument('--teacher-tag', nargs='+', default=['default'],
                    help='the finetune_recipe.py --tag of the teacher; several: an ensemble (runs with one --split-seed)')
    ap.add_argument('--layers', nargs='+', type=int, default=[3], help='student sizes in encoder layers')
    ap.add_argument('--set', action='append', default=[], metavar='NAME=VALUE', help='a `dcr distill` option to change (repeatable)')
    ap.add_argument('--tag', default='', help='name of this configuration in the output folder (with --set)')
    a = ap.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE='1', OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', str(os.cpu_count())))
    extra = [x for kv in a.set for x in (f"--{kv.split('=', 1)[0].replace('_', '-')}", kv.split('=', 1)[1])]
    rows = []
    for name in a.sets:
        teachers = [TEACHERS/f'{name}-{tag}' for tag in a.teacher_tag]
        for teacher, tag in zip(teachers, a.teacher_tag):
            if not (teacher/'model').is_dir():
                raise SystemExit(f'{teacher}: no teacher; run `benchmarks/finetune_recipe.py --sets {name} --tag {tag}` first')
        for layers in a.layers:
            out = OUT/(f"{name}-{'+'.join(a.teacher_tag)}-L{layers}" + (f'-{a.tag}' if a.tag else ''))
            t0 = time.time()
            subprocess.run([str(ROOT/'.venv'/'bin'/'dcr'), 'distill', *map(str, teachers), '--out', str(out), '--layers', str(layers), '--quiet', *extra],
                           check=True, env=env, cwd=ROOT)
            m = json.loads((out/'metrics.json').read_text())
            rows.append(dict(set=name, teacher='+'.join(a.teacher_tag), members=m['teacher'].get('members', 1), layers=layers, accuracy=m['accuracy'], teacher_accuracy=m['teacher']['accuracy'],
                             validation_curve=m['validation_curve'], params=m['latency']['student']['parameters'],
                             teacher_params=m['latency']['teacher']['parameters'], teacher_layers=m['teacher']['layers'], mb=round(m['bytes']['student'] / 2**20, 1),
                             teacher_mb=round(m['bytes']['teacher'] / 2**20, 1), ms_p50=m['latency']['student']['ms_p50'],
                             teacher_ms_p50=m['latency']['teacher']['ms_p50'], per_s=m['latency']['student']['per_s_batch32'],
                             teacher_per_s=m['latency']['teacher']['per_s_batch32'], wall_seconds=round(time.time() - t0), changed=a.set))
            print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT/'results.jsonl', 'a') as f:
        for r in rows: f.write(json.dumps(r) + '\n')
    print(f"\n{'set':<10} {'layers':>6} {'accuracy':>9} {'teacher':>8} {'params':>7} {'MB':>6} {'ms p50':>7} {'texts/s b32':>12} {'wall s':>7}")
    for r in rows:
        print(f"{r['set']:<10} {r['layers']:>6} {r['accuracy']:>9.4f} {r['teacher_accuracy']:>8.4f} {r['params'] / 1e6:>6.1f}M {r['mb']:>6.1f} "
              f"{r['ms_p50']:>7.2f} {r['per_s']:>12.1f} {r['wall_seconds']:>7}")
        print(f"{'  teacher':<10} {r['teacher_layers']:>6} {'':>9} {'':>8} {r['teacher_params'] / 1e6:>6.1f}M {r['teacher_mb']:>6.1f} {r['teacher_ms_p50']:>7.2f} "
              f"{r['teacher_per_s']:>12.1f}")


if __name__ == '__main__':
    main()
