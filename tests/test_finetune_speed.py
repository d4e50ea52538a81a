"Smoke test of benchmarks/finetune_speed.py on CPU (--tiny), and its FLOPs convention and packed data."
import importlib.util, json, subprocess, sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT/'benchmarks'/'finetune_speed.py'
spec = importlib.util.spec_from_file_location('finetune_speed', SCRIPT)
fs = importlib.util.module_from_spec(spec); spec.loader.exec_module(fs)


def test_mfu_convention_matches_the_issue_reference_figures():
    "6N (N without the input embedding) + 12*L*h*s: 45,500 tokens/s on the 1.1B shape is 34% of 989 TFLOP/s, 62,400 is 46%."
    from transformers import LlamaConfig, LlamaForCausalLM
    f = fs.FULL
    cfg = LlamaConfig(**{k: f[k] for k in ('hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
                                           'intermediate_size', 'vocab_size')}, tie_word_embeddings=False)
    with torch.device('meta'): model = LlamaForCausalLM(cfg)
    assert 1.09e9 < sum(p.numel() for p in model.parameters()) < 1.11e9
    fpt = fs.flops_per_token(fs.matmul_params(model), 22, 2048, 2048)
    mfu = lambda tps: tps * fpt / 989e12
    assert round(mfu(45_500), 2) == 0.34 and round(mfu(62_400), 2) == 0.46 and mfu(68_000) >= 0.50


def test_packed_data_fills_every_row_and_restarts_positions_at_every_document():
    "Packing gives the same tokens per step as the plain path (full rows, no padding), with documents kept apart."
    data = fs.packed_dataset(n_rows=6, seq=64, vocab=300, doc_median=12)
    assert len(data) == 6 and all(len(r) == 64 for r in data['input_ids'])
    starts = [[i for i, p in enumerate(pos) if p == 0] for pos in data['position_ids']]
    assert all(s[0] == 0 for s in starts) and sum(map(len, starts)) > 2 * len(data)   # several documents per row
    for ids, labels, s in zip(data['input_ids'], data['labels'], starts):
        assert all(ids[k - 1] == 2 for k in s[1:])           # EOS closes the document before each start
        assert all(labels[k] == -100 for k in s)             # no loss for predicting across a boundary


def test_unknown_configuration_is_refused():
    r = subprocess.run([sys.executable, str(SCRIPT), '--tiny', '--configs', 'plain,turbo'], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "unknown configuration(s) ['turbo']" in r.stderr


def test_tiny_cpu_run_prints_one_json_line_per_configuration_and_a_summary(tmp_path):
    "Plain and project paths really train (ZeRO-2, one process, CPU); Liger is reported as skipped, not crashed."
    r = subprocess.run([sys.executable, str(SCRIPT), '--tiny', '--device', 'cpu', '--configs', 'plain,project,liger,no_packing,no_liger',
                        '--work-dir', str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith('{')]
    by = {l['config']: l for l in lines if 'config' in l}
    assert list(by) == ['plain', 'project', 'liger', 'no_packing', 'no_liger']
    for name in ('plain', 'project'):
        res = by[name]
        assert res['status'] == 'ok', res
        assert res['tokens_per_s'] > 0 and res['mfu'] > 0 and res['precision'] == 'fp32' and res['deepspeed_zero_stage'] == 2
        assert res['tokens_per_step'] == 4 * 128 and res['timed_steps'] == 3
    assert by['plain']['options']['optim'] == 'adamw_torch' and not by['plain']['options']['packing']
    assert by['liger']['status'] == 'skipped' and 'liger' in by['liger']['reason'].lower()
    # each choice off again: the project's path without packing trains; without Liger it is the project's path itself on CPU
    assert by['no_packing']['status'] == 'ok' and not by['no_packing']['options']['packing'] and by['project']['options']['packing']
    assert by['no_liger']['status'] == 'skipped' and 'same as `project`' in by['no_liger']['reason']
    summary = lines[-1]
    assert summary['summary'] and summary['plain']['tokens_per_s'] == by['plain']['tokens_per_s']
    assert summary['speedup'] == round(by['project']['tokens_per_s'] / by['plain']['tokens_per_s'], 3)
    assert 'liger' in summary['speedup_vs_plain'] and 'CPU smoke run' in summary['note']
