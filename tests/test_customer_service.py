"""The `customer_service` recipe through `dcr pipeline` at a tiny size (papermill report and served endpoint included)."""
import json, subprocess

import pandas as pd

from conftest import DCR, ROOT


def dcr(*args, cwd=ROOT, timeout=900):
    return subprocess.run([str(DCR), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_customer_service_recipe_small_with_a_test_file(shared, tmp_path):
    """Twelve intents, a given test file, PII, a one-word message, a duplicate and a row without a label in the training file;
    the ablation fine-tunes every variant (the proxy's figures beside them)."""
    b77 = pd.read_csv(shared/'en_intent'/'banking77_train.csv')
    keep = sorted(b77.category.unique())[:12]
    part = b77[b77.category.isin(keep)].groupby('category').head(45)
    train, test = part.groupby('category').head(40), part.groupby('category').tail(5)
    test = pd.concat([test, pd.DataFrame(dict(text=['My card was declined, call me back on +1 415 555 0199'], category=[keep[0]]))])
    extra = pd.DataFrame(dict(text=['Please call John Smith on +1 415 555 0134 about my card', 'card', train.text.iloc[0], 'no label here'],
                              category=[keep[0], keep[0], train.category.iloc[0], '']))
    pd.concat([train, extra]).to_csv(tmp_path/'intents.csv', index=False)
    test.to_csv(tmp_path/'test.csv', index=False)
    pd.read_csv(shared/'tweets'/'airline_tweets.csv').iloc[::60].to_csv(tmp_path/'air.csv', index=False)
    out = tmp_path/'run'
    r = dcr('pipeline', 'customer_service', '-p', 'intents', tmp_path/'intents.csv', '-p', 'test', tmp_path/'test.csv',
            '-p', 'complaints', tmp_path/'air.csv', '-p', 'max_steps', 3, '-p', 'ablation', 'finetune', '-p', 'out', out, '--quiet', cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    m = json.loads((out/'metrics.json').read_text())
    assert m['n_eval'] == len(test) and 0 <= m['accuracy'] <= 1 and m['n_quarantined'] == 1
    assert m['removed'].get('clean:too_short') == 1 and m['removed'].get('dedup:exact') == 1
    res = json.loads((out/'results.json').read_text())
    assert res['pii'].get('PHONE_NUMBER', 0) >= 1 and 'no PII redaction' in res['ablation'] and res['ablation_model'].startswith('fine-tuned')
    assert res['ablation'].keys() == res['ablation_proxy'].keys() and res['ablation']['no cleaning']['n_train'] == m['n_train'] + 1
    assert not list((out/'ablation').glob('*/model'))   # the variants' weights are not kept
    train_rows = pd.read_csv(out/'data'/'train.csv')
    assert not train_rows.text.str.contains('555 0134').any()   # what was trained on was redacted
    scored = pd.read_csv(out/'data'/'test.csv')   # and the test messages, as `dcr serve --redact-pii` sees them
    assert not scored.text.str.contains('555 0199').any() and pd.read_csv(out/'data'/'test_original.csv').text.str.contains('555 0199').any()
    page = (tmp_path/'reports'/'customer_service.html').read_text()
    assert 'hl-ipython3' not in page and page.count('data:image/png;base64') >= 2 and 'answered with status 200' in page and 'proxy accuracy' in page
