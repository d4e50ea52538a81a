"""Speed of the default cleaning steps (dcresearch.clean) on real data; prints documents per second.

    .venv/bin/python benchmarks/clean_speed.py [--repeat 3] [--copies 10]

C4 (300 web documents, 2.5 kB each), airline tweets and ChnSentiCorp reviews from ../shared/data, each
copied `--copies` times into shards of 5,000 documents (the pipeline's default). Best of `--repeat` runs,
one process. Also times py3langid's own per-document `classify` on the same texts, in the same run, so
machine load affects both sides alike.
"""
import argparse, json, time
from pathlib import Path

import pandas as pd
import pyarrow as pa

from dcresearch.clean import LanguageIdentifier, NormalizeText, RemoveBoilerplateLines, identify_languages
from dcresearch.core import make_records

DATA = Path(__file__).resolve().parents[1].parent/'shared'/'data'


def corpora(copies: int) -> dict:
    c4 = [json.loads(l)['text'] for l in open(DATA/'web'/'c4_demo.jsonl', encoding='utf-8')]
    tweets = pd.read_csv(DATA/'tweets'/'airline_tweets.csv')['text'].tolist()
    zh = pd.read_csv(DATA/'zh_sentiment'/'chnsenticorp_htl_all.csv')['review'].dropna().astype(str).tolist()
    return {'c4': c4 * copies, 'tweets': tweets[:5000], 'chnsenticorp': zh[:5000]}


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return min(times)


def shards(texts: list[str], size: int=5000) -> list[pa.Table]:
    return [make_records(texts[i:i + size], [f'b:{j}' for j in range(i, min(i + size, len(texts)))]) for i in range(0, len(texts), size)]


def main(repeat: int=3, copies: int=10):
    from py3langid.langid import LanguageIdentifier as PyLangid, MODEL_FILE
    ref = PyLangid.from_model_file(MODEL_FILE, norm_probs=True)
    identify_languages(['warm up'])   # load the model outside the timings
    steps = [NormalizeText(), RemoveBoilerplateLines(), LanguageIdentifier()]
    print(f"{'corpus':<14}{'docs':>7}{'MB':>7}  " + ''.join(f'{n:>24}' for n in
          ['NormalizeText', 'RemoveBoilerplateLines', 'LanguageIdentifier', 'all three', 'py3langid.classify']))
    for name, texts in corpora(copies).items():
        tables, mb = shards(texts), sum(len(t.encode()) for t in texts) / 1e6
        def run(steps):
            for t in tables:
                for s in steps: t = s(t).kept
        def ref_langid():
            for t in texts: ref.classify(t[:1000])
        secs = [best(lambda s=s: run([s]), repeat) for s in steps] + [best(lambda: run(steps), repeat), best(ref_langid, 1)]
        print(f'{name:<14}{len(texts):>7,}{mb:>7.1f}  ' + ''.join(f'{len(texts) / s:>18,.0f} doc/s' for s in secs))


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeat', type=int, default=3, help='runs per measurement; the best counts')
    p.add_argument('--copies', type=int, default=10, help='copies of the 300 C4 documents')
    main(**vars(p.parse_args()))
