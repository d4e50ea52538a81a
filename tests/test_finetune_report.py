"The fine-tuning report (nbs/reports/finetune.ipynb) through `run_report`: its own small SST-2 run, a causal-LM run, a bad run_dir."
import json, re

from dcresearch.reports.runner import run_report

SECTIONS = ('Configuration', 'Data', 'Loss curves', 'Metrics', 'Confusion matrix', 'Worst errors', 'Model card and data lineage')


def headings(page: str) -> list[str]:
    return re.findall(r'<h2 id="[^"]*">([^<]*)', page)


def test_report_runs_a_small_finetune_itself_and_reads_its_numbers(shared, tmp_path):
    "No run_dir: the report fine-tunes MiniLM on a few SST-2 rows (ZeRO-2, CPU) and reports on that run."
    run = tmp_path/'run'
    r = run_report('finetune', dict(out=str(run), max_train_rows=128, max_eval_rows=64, max_steps=8, max_length=32),
                   out_dir=tmp_path/'reports', progress=False)
    assert r.ok, r.error
    page = r.html.read_text()
    assert headings(page) == list(SECTIONS)
    metrics = json.loads((run/'metrics.json').read_text())
    assert metrics['n_eval'] == 64
    # the prose reads the run's own numbers
    assert f"Accuracy <strong>{metrics['accuracy']:.3f}</strong>" in page and f"{metrics['macro_f1']:.3f}" in page
    assert 'ZeRO stage <strong>2</strong>' in page and 'sst2_train.tsv' in page and 'sha256' in page   # config, lineage
    assert page.count('<img') >= 4                 # token lengths, loss, eval during training, confusion matrix
    assert 'misclassified' in page or 'No misclassified rows' in page
    assert 'ft.finetune(' not in page              # no code in the HTML


def test_report_on_a_causal_lm_run_shows_loss_and_perplexity(shared, tmp_path):
    from dcresearch.finetune import finetune, init_causal_lm
    model = init_causal_lm(tmp_path/'tiny-llama', shared/'tokenizers'/'llama_tokenizer.json', hidden_size=32, num_layers=1,
                           num_heads=2, max_position_embeddings=128)
    metrics = finetune([str(shared/'web'/'c4_demo.jsonl')], str(tmp_path/'run'), task='causal_lm', model=str(model), max_train_rows=30,
                       max_steps=4, batch_size=4, max_length=64, device='cpu', eval_steps=2, logging_steps=1, quiet=True)
    r = run_report('finetune', dict(run_dir=str(tmp_path/'run')), out_dir=tmp_path/'reports', progress=False)
    assert r.ok, r.error
    page = r.html.read_text()
    assert headings(page) == list(SECTIONS)
    assert f"perplexity <strong>{metrics['perplexity']:,.2f}</strong>" in page
    assert page.count('Not applicable') == 2       # no confusion matrix, no per-row errors for a language model
    assert 'packed into rows of 64 tokens' in page and 'c4_demo.jsonl' in page


def test_missing_run_dir_fails_with_what_to_do(tmp_path):
    r = run_report('finetune', dict(run_dir=str(tmp_path/'nothing-here')), out_dir=tmp_path/'reports', progress=False)
    assert not r.ok and 'not a finished `dcr finetune` run directory' in r.error and 'dcr finetune' in r.error
