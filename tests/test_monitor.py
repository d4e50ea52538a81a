"""The `finance_monitoring` recipe through `dcr pipeline` at a tiny size (papermill report included)."""
import json, subprocess

import pandas as pd

from conftest import DCR, ROOT


def dcr(*args, cwd=ROOT, timeout=900):
    return subprocess.run([str(DCR), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_finance_monitoring_recipe_small(shared, tmp_path):
    "Small slices of the three sources (the PhraseBank slice keeps its BOM and CRLF) and a short stream with planted shifts."
    fpb = (shared/'finance'/'fpb_sentences_50agree.txt').read_bytes().split(b'\r\n')
    (tmp_path/'fpb.txt').write_bytes(b'\r\n'.join(fpb[:4800:48] + [b'a line without a label']) + b'\r\n')
    pd.read_csv(shared/'finance'/'fin_tweets_train.csv').iloc[:2400:16].to_csv(tmp_path/'tweets.csv', index=False)
    pd.read_csv(shared/'tweets'/'airline_tweets.csv').iloc[::96].to_csv(tmp_path/'air.csv', index=False)   # about 150 tweets, every airline
    out = tmp_path/'run'
    r = dcr('pipeline', 'finance_monitoring', '-p', 'phrasebank', tmp_path/'fpb.txt', '-p', 'tweets', tmp_path/'tweets.csv',
            '-p', 'airline', tmp_path/'air.csv', '-p', 'stream_docs', 600, '-p', 'out', out, '--quiet', cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    m = json.loads((out/'metrics.json').read_text())
    assert m['n_news'] == 100 and m['n_quarantined'] == 1 and m['shifts'] == 3 and 0 <= m['detected'] <= 3
    assert 0.3 < m['accuracy_news'] <= 1 and m['airline_alerts'] >= 0 and 0 <= m['detected_on_true_labels'] <= 3
    truth = json.loads((out/'stream'/'shifts.json').read_text())
    assert [s['entity'] for s in truth['shifts']] == ['$BOLT', '$CRUX', '$DYNA']
    page = (tmp_path/'reports'/'finance_monitoring.html').read_text()
    assert 'hl-ipython3' not in page and page.count('data:image/png;base64') >= 3
    assert 'domain gap' in page and 'false alarm' in page and 'airline' in page
