"The tuning report (nbs/reports/tuning.ipynb) through `run_report`: its own small search on SST-2, and a directory that is not a search."
import json, re

from dcresearch.reports.runner import run_report

SECTIONS = ('Search', 'Trials', 'What mattered', 'Best configuration', 'Learning curves', 'Final evaluation')


def test_report_runs_a_small_search_itself_and_reads_its_numbers(shared, tmp_path):
    "No tune_dir: the report searches 3 configurations (4 steps each on 96 SST-2 rows) and reports on them."
    out = tmp_path/'search'
    r = run_report('tuning', dict(out=str(out), trials=3, max_train_rows=96, max_eval_rows=64, max_steps=4),
                   out_dir=tmp_path/'reports', progress=False)
    assert r.ok, r.error
    page = r.html.read_text()
    assert re.findall(r'<h2 id="[^"]*">([^<]*)', page) == list(SECTIONS)
    best = json.loads((out/'best_config.json').read_text())
    assert f"reached <strong>{best['validation']:.4f}</strong>" in page
    assert f"accuracy <strong>{best['eval']['accuracy']:.4f}</strong>" in page and best['eval']['n_eval'] == 64
    assert page.count('<img') >= 2          # score per trial, loss (+ importance and parallel coordinates when the scores differ)
    assert 'fANOVA importance' in page or 'scored the same' in page
    assert 'tn.tune(' not in page           # no code in the HTML


def test_missing_tune_dir_fails_with_what_to_do(tmp_path):
    r = run_report('tuning', dict(tune_dir=str(tmp_path/'nothing-here')), out_dir=tmp_path/'reports', progress=False)
    assert not r.ok and 'not a finished `dcr tune` directory' in r.error
