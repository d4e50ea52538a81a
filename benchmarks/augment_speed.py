"""Speed of the augmentation operators (dcresearch.augment.text, dcresearch.augment.image) on real data; prints rows/s per core.

    .venv/bin/python benchmarks/augment_speed.py [--repeat 3] [--n 5000] [--guard-n 1000]

5,000 short real texts per language from ../shared/data: SST-2 sentences (English) and waimai_10k
food-delivery reviews (Chinese). Each text operator runs alone (one augmented row per source row, alpha 0.1,
no guards) and is timed with `augment.augment_speed`, best of `--repeat`, in one process with one thread
(OMP_NUM_THREADS=1), so the figures are per core. "rows/s" counts augmented rows produced, "texts/s" source
texts processed (operators that cannot change a text, or do not apply to the language, produce fewer rows).
The guards (MiniLM drift + duplicate) are timed on `--guard-n` texts with the `swap` operator, since sentence
embeddings dominate their cost. Images: `augment.image.image_speed` on ../shared/data/images (decoded once;
also with decoding). The last line is the same figures as JSON.
"""
import os
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import argparse, json, platform, time
from pathlib import Path

import pandas as pd

import dcresearch.augment.text as A

DATA = Path(__file__).resolve().parents[1].parent/'shared'/'data'


def corpora(n: int) -> dict:
    sst2 = [l.split('\t', 1)[1].strip() for l in open(DATA/'en_sentiment'/'sst2_train.tsv', encoding='utf-8') if '\t' in l]
    waimai = pd.read_csv(DATA/'zh_sentiment'/'waimai_10k.csv')['review'].dropna().astype(str).tolist()
    return {'sst2 (en)': sst2[:n], 'waimai (zh)': waimai[:n]}


def rows_per_text(texts: list[str], op: str, **kw) -> float:
    "Augmented rows produced per source text by `op` (one run, untimed)."
    res = A.TextAugmenter(ops=[op], min_similarity=None, drop_duplicates=False, **kw)(list(enumerate(texts)))
    return len(res.rows) / max(len(texts), 1)


def main(repeat: int=3, n: int=5000, guard_n: int=1000):
    import torch
    torch.set_num_threads(1)
    ops = [o for o in ('synonym', 'insert', 'swap', 'delete', 'typo', 'ocr', 'embed') if o in A.ALL_OPS]
    results = {}
    print(f'one process, 1 thread, best of {repeat}; {platform.processor() or platform.machine()}')
    print(f"{'corpus':<13}{'operator':<24}{'texts':>7}{'texts/s':>12}{'rows/s':>12}")
    for name, texts in corpora(n).items():
        skip = set(getattr(A, 'ENGLISH_ONLY_OPS', ())) if name.endswith('(zh)') else set()
        for op in sorted(skip & set(ops)): print(f"{name:<13}{op:<24}{'n/a (English only)':>31}")
        speeds = A.augment_speed(texts, ops=[o for o in ops if o not in skip], repeats=repeat)
        for op in speeds:
            rate = speeds[op] * rows_per_text(texts, op)
            results[f'{name}:{op}'] = dict(texts_per_s=round(speeds[op]), rows_per_s=round(rate), texts=len(texts))
            print(f'{name:<13}{op:<24}{len(texts):>7,}{speeds[op]:>12,.0f}{rate:>12,.0f}')
        sub = texts[:guard_n]
        g = A.augment_speed(sub, ops=['swap'], repeats=repeat, guards=True)['swap']
        rate = g * rows_per_text(sub, 'swap')
        results[f'{name}:swap+guards'] = dict(texts_per_s=round(g, 1), rows_per_s=round(rate, 1), texts=len(sub))
        print(f"{name:<13}{'swap + guards (MiniLM)':<24}{len(sub):>7,}{g:>12,.1f}{rate:>12,.1f}")
    try:
        from dcresearch.augment import image as AI
    except ImportError:
        AI = None
    if AI is not None and (DATA/'images').is_dir():
        imgs = str(DATA/'images')
        for label, kw in (('images (decoded)', {}), ('images (with decoding)', dict(include_read=True))):
            rate = AI.image_speed(imgs, repeats=repeat, n_per_image=8, **kw)
            results[label] = dict(images_per_s=round(rate, 1))
            print(f"{'images':<13}{label:<24}{len(AI.list_images(imgs)):>7,}{'':>12}{rate:>12,.1f}")
    print(json.dumps(dict(benchmark='augment_speed', repeat=repeat, threads=1, results=results)))


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeat', type=int, default=3, help='runs per measurement; the best counts')
    p.add_argument('--n', type=int, default=5000, help='texts per corpus')
    p.add_argument('--guard-n', type=int, default=1000, help='texts for the guard timing (MiniLM embeddings are slow on CPU)')
    main(**vars(p.parse_args()))
