"""PII detection quality, measured honestly: per entity type precision / recall / F1 on data the detector was and was not tuned on.

    .venv/bin/python benchmarks/pii_quality.py [--faker 2000]
    .venv/bin/python benchmarks/pii_quality.py --ner-en FOLDER --tuning-only   # choose a candidate model on faker_dev alone

- presidio_generated_small: the 100-record presidio-research file in ../shared/data/pii (the old rules were tuned on it);
- faker_dev: generated sentences (`faker_cases`, ten Faker locales) from the templates used while tuning;
- faker_heldout: other templates and seeds, scored only here and in the privacy report (no error on it was looked at
  while tuning; its templates are in the source, read while writing the English context rules);
- faker_heldout2: templates written after those rules were tuned, scored only (a clean held-out set for them);
- faker_heldout3: narrative sentences (names as subject or object, no cue word), written later, scored only;
- cluener_dev (detector): the whole detector on CLUENER dev (the Chinese model plus CnNameRecognizer), types mapped to ours;
- conll2003_en_dev / cluener_dev: the NER models alone on their held-out files (entity F1 per type, exact spans).

Writes benchmarks/out/pii_quality.json and prints the tables.
"""
import argparse, json, os
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('OMP_NUM_THREADS', '1')

import pandas as pd

from dcresearch.privacy.ner import held_out_table, read_cluener
from dcresearch.privacy.pii import FAKER_TEMPLATES, PiiDetector, evaluate, faker_cases, load_presidio_cases

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('DCR_SHARED_DATA', ROOT.parent/'shared'/'data'))
TYPES = ['CREDIT_CARD', 'EMAIL_ADDRESS', 'IBAN_CODE', 'IP_ADDRESS', 'US_SSN', 'PHONE_NUMBER', 'PERSON', 'LOCATION', 'ORGANIZATION']


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--faker', type=int, default=2000, help='generated sentences per template set')
    ap.add_argument('--ner-en', help='an English NER model folder to try instead of the package\'s (`dcr build-ner --out`); '
                                     'scored on the generated sets only, written to pii_quality-ner-en.json')
    ap.add_argument('--tuning-only', action='store_true', help='score the tuning set (faker_dev) and nothing held out: choose '
                                                               'between candidates with this, then score the chosen one on everything')
    args = ap.parse_args(argv)
    pd.set_option('display.width', 200)
    det = PiiDetector(ner_model={'en': args.ner_en, 'zh': 'auto'}) if args.ner_en else PiiDetector()
    print(f'detector: {det!r}')
    parts = []
    small = SHARED/'pii'/'presidio_generated_small.json'
    if small.is_file() and not args.tuning_only: parts.append(evaluate(load_presidio_cases(small), det, 'presidio_generated_small'))
    for split in ('dev',) if args.tuning_only else FAKER_TEMPLATES:
        parts.append(evaluate(faker_cases(args.faker, split), det, f'faker_{split}', labels=TYPES))
    cluener = SHARED/'zh_ner'/'cluener_dev.json'
    if cluener.is_file() and not (args.ner_en or args.tuning_only):  # the detector (model + CnNameRecognizer) on CLUENER dev, CLUENER's types mapped to ours
        to_ours = {'name': 'PERSON', 'address': 'LOCATION', 'company': 'ORGANIZATION', 'organization': 'ORGANIZATION',
                   'government': 'ORGANIZATION'}
        cases = [dict(text=t, spans=[dict(entity_type=to_ours[l], start=s, end=e) for s, e, l in spans if l in to_ours])
                 for t, spans in read_cluener(cluener)]
        parts.append(evaluate(cases, det, 'cluener_dev (detector)', labels=['PERSON', 'LOCATION', 'ORGANIZATION']))
    quality = pd.concat(parts, ignore_index=True)[['dataset', 'entity_type', 'n_gold', 'n_pred', 'tp', 'precision', 'recall', 'f1']]
    print(quality.to_string(index=False))
    if args.tuning_only: return
    out = ROOT/'benchmarks'/'out'; out.mkdir(parents=True, exist_ok=True)
    if args.ner_en:   # an experiment: the package's figures stay as they are
        (out/'pii_quality-ner-en.json').write_text(json.dumps(dict(model=args.ner_en, quality=quality.to_dict('records')), indent=1, default=str) + '\n')
        return
    ner, builds = held_out_table()
    print(builds.to_string(index=False))
    if len(ner): print(ner.to_string(index=False))
    (out/'pii_quality.json').write_text(json.dumps(dict(quality=quality.to_dict('records'), ner=ner.to_dict('records'),
                                                        builds=builds.to_dict('records')), indent=1, default=str) + '\n')
    print(f'wrote {out/"pii_quality.json"}')


if __name__ == '__main__':
    main()
