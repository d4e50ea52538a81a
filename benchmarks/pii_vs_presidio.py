"""PII analysis + redaction speed: dcresearch.privacy.pii against plain Presidio, same recognizers, one core.

    nice .venv/bin/python benchmarks/pii_vs_presidio.py [--docs 3000] [--repeats 3] [--no-ner]

Corpora: short generated sentences (`faker_cases`, customer-service style, one to two PII values each), real
customer-service tweets (`../shared/data/tweets/airline_tweets.csv`), the
embedded sample corpus (`dcresearch.sample`, English and Chinese documents with PII) and real C4 web pages
(`../shared/data/web/c4_demo.jsonl`). By default the package's NER models are on (English and Chinese, the
language chosen per document); `--no-ner` measures the patterns alone.

- presidio: `AnalyzerEngine.analyze(text, entities=..., score_threshold=...)` then
  `AnonymizerEngine.anonymize(text, results, replace with <TAG>)`, called per document. The engine has exactly
  the recognizers `PiiDetector` uses (no_op NLP engine); overlapping findings go through the same
  `resolve_spans` before anonymising, as `RedactPII` does.
- dcresearch: `PiiDetector.analyze_batch` (vectorised pre-checks over the batch, localised phone/URL
  recognizers, no per-document work for documents that cannot contain PII) then `redact_text`.

Both run in this process, interleaved, best of `--repeats`; the script asserts that both find identical spans
(type, start, end, score) and write identical redacted text, and prints docs/s for each, the ratio and
"identical: yes/no".
"""
import argparse, csv, json, os, sys, time
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('OMP_NUM_THREADS', '1')

from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig, RecognizerResult as AnonResult

from dcresearch.privacy.pii import REDACTION_TAGS, PiiDetector, document_language, faker_cases, redact_text, resolve_spans
from dcresearch.sample import generate_documents

ROOT = Path(__file__).resolve().parents[1]
C4 = ROOT.parent/'shared'/'data'/'web'/'c4_demo.jsonl'
TWEETS = ROOT.parent/'shared'/'data'/'tweets'/'airline_tweets.csv'


def presidio_per_document(texts, detector: PiiDetector, anonymizer: AnonymizerEngine, operators: dict):
    "Plain Presidio: analyze + anonymize, one document at a time."
    spans, redacted = [], []
    for text in texts:
        found = detector.analyzer.analyze(text, document_language(text), entities=detector.entities,
                                          score_threshold=detector.score_threshold)
        s = resolve_spans([dict(entity_type=r.entity_type, start=r.start, end=r.end, score=round(float(r.score), 4)) for r in found])
        res = anonymizer.anonymize(text, [AnonResult(x['entity_type'], x['start'], x['end'], x['score']) for x in s],
                                   operators=operators, merge_entities_with_spaces=False)
        spans.append(s); redacted.append(res.text)
    return spans, redacted


def dcresearch_batch(texts, detector: PiiDetector):
    "dcresearch: one batch analysis, then redaction of the documents that have findings."
    spans = detector.analyze_batch(texts)
    return spans, [redact_text(t, s)[0] if s else t for t, s in zip(texts, spans)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--docs', type=int, default=3000, help='documents of the embedded corpus')
    ap.add_argument('--repeats', type=int, default=3, help='timed runs per side (best is reported)')
    ap.add_argument('--no-ner', action='store_true', help='patterns only (no NER model)')
    args = ap.parse_args(argv)
    corpora = {'short': [c['text'] for c in faker_cases(args.docs, 'dev')],
               'tweets': [r['text'] for _, r in zip(range(args.docs), csv.DictReader(open(TWEETS, encoding='utf-8')))],
               'sample': [d['text'] for d in generate_documents(args.docs, 0)]}
    if C4.is_file(): corpora['c4_demo'] = [json.loads(l)['text'] for l in C4.read_text(encoding='utf-8').splitlines() if l.strip()]
    else: print(f'{C4} not found: C4 skipped', file=sys.stderr)

    ner = None if args.no_ner else 'auto'
    plain, fast = PiiDetector(ner_model=ner, fast=False), PiiDetector(ner_model=ner, fast=True)
    anonymizer = AnonymizerEngine()
    operators = {e: OperatorConfig('replace', {'new_value': f'<{REDACTION_TAGS.get(e, e)}>'}) for e in plain.entities}
    print(f'entities: {", ".join(plain.entities)}; score_threshold={plain.score_threshold}; NER: {({L: m and Path(m).name for L, m in plain.ner_models.items()}) if ner else "off"}; '
          'one process (per core)')
    print(f"{'corpus':<10} {'docs':>6} {'chars/doc':>9} {'spans':>7} {'presidio docs/s':>16} {'dcresearch docs/s':>18} {'ratio':>6}  identical")
    for name, texts in corpora.items():
        presidio_per_document(texts[:50], plain, anonymizer, operators); dcresearch_batch(texts[:50], fast)  # warm up both
        best_p = best_d = float('inf')
        for _ in range(args.repeats):
            t0 = time.perf_counter(); p_spans, p_text = presidio_per_document(texts, plain, anonymizer, operators)
            best_p = min(best_p, time.perf_counter() - t0)
            t0 = time.perf_counter(); d_spans, d_text = dcresearch_batch(texts, fast)
            best_d = min(best_d, time.perf_counter() - t0)
        same = p_spans == d_spans and p_text == d_text
        print(f'{name:<10} {len(texts):>6} {sum(map(len, texts)) / len(texts):>9.0f} {sum(map(len, d_spans)):>7} '
              f'{len(texts) / best_p:>16.0f} {len(texts) / best_d:>18.0f} {best_p / best_d:>6.2f}  {"yes" if same else "NO"}')
        if not same:
            bad = next(i for i in range(len(texts)) if p_spans[i] != d_spans[i] or p_text[i] != d_text[i])
            raise SystemExit(f'{name} document {bad}: presidio {p_spans[bad]} vs dcresearch {d_spans[bad]}')


if __name__ == '__main__':
    main()
