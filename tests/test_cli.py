"""The `dcr` command as a user runs it (subprocesses), including the acceptance contract."""
import gzip, json, re, subprocess
from pathlib import Path

import pytest

from conftest import DCR, ROOT


def dcr(*args, cwd=ROOT, timeout=600):
    return subprocess.run([DCR, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_help_lists_subcommands():
    r = dcr('--help')
    assert r.returncode == 0
    for c in ('ingest', 'report', 'pipeline', 'sample', 'ledger', 'sql'): assert c in r.stdout
    r = dcr('ingest', '--help')
    assert '--text-field' in r.stdout and 'quarantined' in r.stdout


def test_ingest_warc_extracts_text_and_prints_ledger(shared, tmp_path):
    r = dcr('ingest', shared/'web'/'dolma_sample-0000.warc.gz', '--out', tmp_path/'ingest')
    assert r.returncode == 0, r.stderr
    for word in ('in', 'kept', 'rejected', 'quarantined', 'HtmlToText'): assert word in r.stdout
    from dcresearch.lake import read_delta_table
    recs = read_delta_table(tmp_path/'ingest'/'records')
    assert recs.num_rows > 10
    texts = recs['text'].to_pylist()
    assert all('<html' not in t.lower() for t in texts)  # extracted text, not HTML
    assert sum(len(t) for t in texts) / len(texts) > 200


def test_ingest_jsonl_with_broken_lines_quarantines_them(tmp_path):
    good = [json.dumps({'text': f'document number {i}'}) for i in range(20)]
    lines = good[:5] + ['{"text": "unterminated'] + good[5:12] + ['not json at all', '[1, 2]', '{"title": "no text"}'] + good[12:]
    (tmp_path/'in.jsonl.gz').write_bytes(gzip.compress(('\n'.join(lines) + '\n').encode()))
    r = dcr('ingest', tmp_path/'in.jsonl.gz', '--out', tmp_path/'out')
    assert r.returncode == 0, r.stderr
    assert 'quarantined' in r.stdout
    total = [l for l in r.stdout.splitlines() if l.startswith('total')][0]
    assert re.findall(r'[\d,]+', total)[:4] == ['24', '20', '0', '4']  # in, kept, rejected, quarantined
    r = dcr('sql', 'select reason, line from quarantine order by line', '--stage-dir', tmp_path/'out')
    assert r.returncode == 0 and 'io:invalid_json' in r.stdout and 'io:missing_text_field' in r.stdout
    r = dcr('ledger', tmp_path/'out')
    assert r.returncode == 0 and 'in = kept + rejected + quarantined: ok' in r.stdout


@pytest.mark.parametrize('arg, says', [('nowhere/missing.jsonl', 'nowhere/missing.jsonl'), ('{tmp}/data.xyz', 'data.xyz')])
def test_bad_inputs_fail_before_work_with_the_path(tmp_path, arg, says):
    (tmp_path/'data.xyz').write_text('x')
    r = dcr('ingest', arg.format(tmp=tmp_path), '--out', tmp_path/'out')
    assert r.returncode == 2 and says in r.stderr
    assert not (tmp_path/'out'/'records').exists()


def test_report_eda_on_tweets_writes_html_without_code(shared, tmp_path):
    r = dcr('report', 'eda', '-p', 'input', shared/'tweets'/'airline_tweets.csv', '--out', tmp_path/'reports', '--quiet')
    assert r.returncode == 0, r.stdout + r.stderr
    page = (tmp_path/'reports'/'eda.html').read_text()
    assert 'hl-ipython3' not in page and 'import dcresearch' not in page  # no code cells
    assert page.count('data:image/png;base64') >= 5  # the plots are there
    assert 'airline_sentiment' in page  # label balance found the label column
    index = json.loads((tmp_path/'reports'/'index.json').read_text())
    assert index['eda']['status'] == 'ok' and 'input' in index['eda']['params']


def test_failing_report_exits_nonzero_and_is_listed_as_failed(tmp_path):
    r = dcr('report', 'eda', '-p', 'input', tmp_path/'missing.csv', '--out', tmp_path/'reports', '--quiet')
    assert r.returncode == 1
    page = (tmp_path/'reports'/'eda.html').read_text()
    assert 'missing.csv' in page and 'hl-ipython3' in page  # the failing cell is shown
    assert json.loads((tmp_path/'reports'/'index.json').read_text())['eda']['status'] == 'failed'
    assert 'failed' in (tmp_path/'reports'/'index.html').read_text()


def test_pipeline_small_end_to_end(tmp_path):
    "What `make pipeline` does, at a small size, in a scratch directory, with the recipe's `out` parameter moved."
    # DeepSpeed training itself: test_finetune; the augmentation report: test_augmentation_report
    r = dcr('pipeline', '-p', 'out', 'work', '--docs', 300, '--max-steps', 8, '--skip', 'report:augmentation', '--quiet', cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path/'reports'/'eda.html').exists() and (tmp_path/'reports'/'index.html').exists() and not (tmp_path/'data').exists()
    run = json.loads((tmp_path/'work'/'lake'/'ingest'/'run.json').read_text())
    assert run['counts']['n_in'] == 306 and run['counts']['n_quarantined'] == 6
    assert json.loads((tmp_path/'work'/'models'/'sample'/'export.json').read_text())['parity']['rows'] > 0
    assert 'ingest' in (tmp_path/'work'/'models'/'sample'/'README.md').read_text()  # the model card, lineage and all, came along
    page = (tmp_path/'reports'/'cleaning.html').read_text()  # sample -> ingest -> clean -> dedup -> cleaning report
    assert 'hl-ipython3' not in page and page.count('data:image/png;base64') >= 6
    for section in ('Documents and tokens through the steps', 'Removals by reason', 'Duplicates side by side', 'Language mix'):
        assert section in page
    page = (tmp_path/'reports'/'deployment.html').read_text()  # the last stage: the exported model's report
    assert 'every file matches the SHA-256' in page and 'INT8 accuracy drop' in page and page.count('<img') >= 2
    assert 'lake stage' in page and 'records v' in page  # lineage: the model back to the ingest table's version
    assert str(tmp_path) not in page and 'deploy.OnnxClassifier(' not in page  # no machine paths, no code


def test_clean_annotate_writes_one_decision_per_input_line(shared, tmp_path):
    lines = (shared/'web'/'c4_demo.jsonl').read_text().splitlines()[:60]
    lines[3] = json.dumps({'id': 'doc-with-own-id', 'text': json.loads(lines[3])['text']})
    lines.insert(10, '{"text": broken')
    (tmp_path/'in.jsonl').write_text('\n'.join(lines) + '\n')
    r = dcr('clean', tmp_path/'in.jsonl', '--out', tmp_path/'out', '--annotate', '--quiet')
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in (tmp_path/'out'/'decisions.jsonl').read_text().splitlines()]
    assert len(rows) == 61  # every input line, the broken one included
    assert [r['id'] for r in rows][:5] == [0, 1, 2, 'doc-with-own-id', 4]
    assert rows[10] == {'id': 10, 'keep': False, 'reasons': ['io:invalid_json']}
    assert all(set(r) == {'id', 'keep', 'reasons'} and isinstance(r['keep'], bool) for r in rows)
    assert all(r['keep'] == (r['reasons'] == []) for r in rows)
    assert any(not r['keep'] for r in rows[:10] + rows[11:]) and any(r['keep'] for r in rows)
    assert all(reason.split(':')[0] in {'gopher_quality', 'gopher_repetition', 'c4_quality', 'fineweb_quality'}
               for r in rows if r['id'] != 10 for reason in r['reasons'])
    from dcresearch.lake import read_delta_table
    assert read_delta_table(tmp_path/'out'/'records').num_rows == 60  # annotate drops nothing


def test_dedup_writes_removed_with_kept_ids(shared, tmp_path):
    lines = (shared/'web'/'c4_demo.jsonl').read_text().splitlines()[:50]
    doc = json.loads(lines[7])['text']
    lines += [lines[2], json.dumps({'text': doc.replace('. ', '.  ', 3) + ' Share this page.'})]
    (tmp_path/'in.jsonl').write_text('\n'.join(lines) + '\n')
    r = dcr('dedup', tmp_path/'in.jsonl', '--out', tmp_path/'out', '--quiet')
    assert r.returncode == 0, r.stderr
    removed = [json.loads(l) for l in (tmp_path/'out'/'removed.jsonl').read_text().splitlines()]
    assert {(x['id'], x['kept_id']) for x in removed} == {(50, 2), (51, 7)}
    assert all(x['reason'].startswith('dedup:') for x in removed)
