"""Serving speed of a fine-tuned MiniLM on SST-2 dev: in process and over HTTP.

    .venv/bin/python benchmarks/serve_speed.py [--parts inprocess http] [--threads 2] [--requests 2000]

- The model: all-MiniLM-L6-v2 fine-tuned with `dcr finetune` (plain Trainer, one epoch over the first --train-rows
  rows of SST-2 train, all 6,920 by default), exported with `dcr export --quantize int8`; both cached in data/cache/serve_bench/ (the
  first run trains and exports, a few CPU-minutes; later runs reuse them).
- inprocess: for PyTorch fp32, PyTorch dynamic INT8 (`torch.ao.quantization.quantize_dynamic` on the Linear layers),
  ONNX Runtime fp32 and INT8 (`dcresearch.deploy.OnnxClassifier`): accuracy on SST-2 dev (872 sentences), latency
  p50/p95 of one sentence at a time (tokenisation included) and sentences/s at batch 32 (length-bucketed).
- http: `dcr serve` (ONNX Runtime INT8) with micro-batching on (--max-batch 32: a batch is what queued while the
  model was busy; its texts run one at a time, or 8 at a time with --model-batch 8) and off
  (--max-batch 1), and the hand-rolled baseline (a FastAPI endpoint calling PyTorch fp32 once per request in
  FastAPI's thread pool), each on 127.0.0.1 with --threads threads; a client (httpx, asyncio) sends --requests
  one-sentence requests at concurrency 1 and 16: p50/p99 latency and requests/s.
Figures print as JSON lines and go to benchmarks/out/serve_speed.json (the deployment report shows them).
"""
import argparse, asyncio, json, os, socket, subprocess, sys, time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent/'shared'/'data'
CACHE = ROOT/'data'/'cache'/'serve_bench'
DCR = str(ROOT/'.venv'/'bin'/'dcr')
sys.path.insert(0, str(ROOT))


def sst2(split: str, n: int|None=None) -> pd.DataFrame:
    df = pd.read_csv(DATA/'en_sentiment'/f'sst2_{split}.tsv', sep='\t', header=None, names=['label', 'sentence'], quoting=3)
    return df.iloc[:n] if n else df


def prepare(train_rows: int) -> tuple[Path, Path]:
    "The fine-tuned run and its export (made once, then cached); paths relative to the project, as the cards keep them."
    os.chdir(ROOT)
    run, model = CACHE.relative_to(ROOT)/'run', CACHE.relative_to(ROOT)/'model'
    if not (run/'model'/'config.json').is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        for name, df in (('train', sst2('train', train_rows)), ('dev', sst2('dev'))):
            (CACHE/f'{name}.jsonl').write_text(''.join(json.dumps(dict(id=f'{name}-{i}', sentence=s, label=int(l))) + '\n'
                                                      for i, (l, s) in enumerate(zip(df['label'], df['sentence']))))
        print(f'fine-tuning MiniLM on {train_rows} SST-2 sentences (once; cached in {run})', file=sys.stderr, flush=True)
        subprocess.run([DCR, 'finetune', '--train', run.parent/'train.jsonl', '--eval', run.parent/'dev.jsonl', '--text-field', 'sentence',
                        '--label-field', 'label', '--deepspeed', 'none', '--epochs', '1', '--batch-size', '32', '--lr', '5e-5',
                        '--max-length', '64', '--quiet', '--out', run], check=True)
    if not (model/'export.json').is_file():
        subprocess.run([DCR, 'export', run, '--out', model, '--quantize', 'int8', '--parity-rows', '872'], check=True)
    return run, model


class TorchClassifier:
    "PyTorch inference with the same length bucketing as the ONNX path (`int8`: dynamic quantisation of Linear layers)."
    def __init__(self, model_dir: Path, int8: bool=False, max_length: int=64):
        import torch, transformers
        self.model = transformers.AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
        if int8: self.model = torch.ao.quantization.quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)
        self.tok = transformers.AutoTokenizer.from_pretrained(str(model_dir))
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        self.max_length, self.name = max_length, 'pytorch-int8' if int8 else 'pytorch-fp32'

    def predict(self, texts, batch_size: int=32):
        import torch
        probs, order = np.zeros((len(texts), len(self.labels)), np.float32), np.argsort([len(t) for t in texts], kind='stable')
        with torch.inference_mode():
            for s in range(0, len(texts), batch_size):
                idx = order[s:s + batch_size]
                enc = self.tok([texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length, return_tensors='pt')
                probs[idx] = torch.softmax(self.model(**enc).logits, -1).numpy()
        return [self.labels[i] for i in probs.argmax(1)], probs.max(1)


def emit(rows: list, **row):
    rows.append(row); print(json.dumps(row), flush=True)


def part_inprocess(run: Path, model: Path, threads: int, rows: list):
    import torch
    from dcresearch.deploy import OnnxClassifier
    torch.set_num_threads(threads)
    dev = sst2('dev')
    texts, truth = dev['sentence'].tolist(), dev['label'].astype(str).tolist()
    max_length = json.loads((model/'export.json').read_text())['max_length']
    for clf in (TorchClassifier(run/'model', False, max_length), TorchClassifier(run/'model', True, max_length),
                OnnxClassifier(model, 'fp32', threads), OnnxClassifier(model, 'int8', threads)):
        name = getattr(clf, 'variant', None) and f'onnxruntime-{clf.variant}' or clf.name
        clf.predict(texts[:64])  # warm-up
        t0 = time.perf_counter(); labels, _ = clf.predict(texts, 32); batch_secs = time.perf_counter() - t0
        lat = []
        for t in texts[:300]:
            t1 = time.perf_counter(); clf.predict([t], 1); lat.append((time.perf_counter() - t1) * 1000)
        emit(rows, part='inprocess', engine=name, threads=threads, accuracy=round(float(np.mean(np.array(labels) == np.array(truth))), 4),
             p50_ms=round(float(np.percentile(lat, 50)), 2), p95_ms=round(float(np.percentile(lat, 95)), 2),
             sentences_per_s_batch32=round(len(texts) / batch_secs, 1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def baseline_server(run: Path, port: int, threads: int):
    "The hand-rolled baseline: PyTorch fp32, one forward per request, in FastAPI's thread pool."
    import torch, uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel
    torch.set_num_threads(threads)
    clf = TorchClassifier(run/'model')
    app = FastAPI()
    class Body(BaseModel):
        texts: list[str]
    @app.post('/v1/classify')
    def classify(body: Body):
        labels, conf = clf.predict(body.texts)
        return {'predictions': [{'label': l, 'confidence': float(c)} for l, c in zip(labels, conf)]}
    @app.get('/readyz')
    def ready(): return {'status': 'ready'}
    uvicorn.run(app, host='127.0.0.1', port=port, log_level='warning')


async def load(url: str, texts: list[str], concurrency: int, n: int) -> dict:
    import httpx
    lat, queue = [], list(range(n))
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency), timeout=60) as client:
        async def worker():
            while queue:
                i = queue.pop()
                t0 = time.perf_counter()
                r = await client.post(url + '/v1/classify', json={'texts': [texts[i % len(texts)]]})
                r.raise_for_status(); lat.append((time.perf_counter() - t0) * 1000)
        for _ in range(min(50, n)):  # warm-up, one at a time
            (await client.post(url + '/v1/classify', json={'texts': [texts[0]]})).raise_for_status()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        secs = time.perf_counter() - t0
    return dict(p50_ms=round(float(np.percentile(lat, 50)), 2), p99_ms=round(float(np.percentile(lat, 99)), 2),
                requests_per_s=round(n / secs, 1))


def part_http(run: Path, model: Path, threads: int, n: int, rows: list):
    import httpx
    texts = sst2('dev')['sentence'].tolist()
    servers = {'dcr serve int8, micro-batching': ['serve', model, '--variant', 'int8', '--max-batch', '32'],
               'dcr serve int8, micro-batching, model batch 8': ['serve', model, '--variant', 'int8', '--max-batch', '32', '--model-batch', '8'],
               'dcr serve int8, no batching': ['serve', model, '--variant', 'int8', '--max-batch', '1'],
               'baseline: PyTorch fp32 per request': None}
    for name, args in servers.items():
        port = free_port()
        cmd = ([DCR, *map(str, args), '--port', str(port), '--threads', str(threads)] if args else
               [sys.executable, __file__, '--baseline-server', str(port), '--threads', str(threads)])
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f'http://127.0.0.1:{port}'
            for _ in range(600):
                try:
                    if httpx.get(url + '/readyz', timeout=1).status_code == 200: break
                except httpx.HTTPError: time.sleep(0.2)
            for c in (1, 16):
                emit(rows, part='http', server=name, concurrency=c, threads=threads, requests=n, **asyncio.run(load(url, texts, c, n)))
        finally:
            proc.terminate(); proc.wait(30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--parts', nargs='+', default=['inprocess', 'http'], choices=['inprocess', 'http'])
    ap.add_argument('--threads', type=int, default=2, help='inference threads (PyTorch and ONNX Runtime)')
    ap.add_argument('--requests', type=int, default=2000, help='requests per HTTP measurement')
    ap.add_argument('--train-rows', type=int, default=8000, help='SST-2 train rows to fine-tune on (first run only; the file has 6,920)')
    ap.add_argument('--baseline-server', type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    if a.baseline_server: return baseline_server(CACHE/'run', a.baseline_server, a.threads)
    run, model = prepare(a.train_rows)
    rows = []
    if 'inprocess' in a.parts: part_inprocess(run, model, a.threads, rows)
    if 'http' in a.parts: part_http(run, model, a.threads, a.requests, rows)
    out = ROOT/'benchmarks'/'out'/'serve_speed.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = [r for r in json.loads(out.read_text())['rows'] if r['part'] not in a.parts] if out.is_file() else []  # parts not re-run
    out.write_text(json.dumps(dict(machine=f'{os.cpu_count()} CPUs', rows=kept + rows), indent=1))


if __name__ == '__main__':
    main()
