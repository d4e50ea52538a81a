"""Fine-tuning speed: tokens/s and MFU of the plain HF Trainer + DeepSpeed ZeRO-2 against this project's path.

    .venv/bin/python benchmarks/finetune_speed.py            # GPU: 1.1B Llama-style model, seq 2048, micro-batch 8, bf16
    .venv/bin/python benchmarks/finetune_speed.py --tiny     # CPU smoke run: tiny model, fp32, a few steps
    .venv/bin/python benchmarks/finetune_speed.py --configs plain,project --steps 50

A randomly initialised Llama-style model (default: hidden 2048, 22 layers, 32 heads, 4 KV heads, intermediate
5632, vocab 32000, the TinyLlama-1.1B shape) is trained on random tokens for `--warmup` untimed steps and then
`--steps` timed steps, one process, one device, DeepSpeed ZeRO-2, for each configuration:

- `plain`: HF Trainer + DeepSpeed ZeRO-2 as the docs show it: `optim='adamw_torch'`, the model's default
  attention (sdpa), no Liger, no packing (run_clm-style blocks of `--seq` tokens), no torch.compile;
- `project`: `dcresearch.finetune.fast_path_options(device, 'llama')` with `dcresearch.finetune.deepspeed_config(2)`;
- `fused_optim`, `attention`, `liger`, `packing`, `compile`: the plain path with one of the project's choices
  switched on, so the effect of each is measured alone;
- `no_fused_optim`, `no_attention`, `no_liger`, `no_packing`: the project's path with that one choice switched
  back to plain, so each choice is measured off as well (skipped where the project's path has it off already);
- `project_compile`: the project's path plus torch.compile (off by default: it crashed with Liger + ZeRO-2 on an H200).

On a GPU machine install a CUDA build of torch and `liger-kernel` and `flash-attn`: without them the `liger` (and,
for flash attention, `attention`) lines say `skipped`, and the project's path runs without them, because
`fast_path_options` only switches on what is installed. GPU figures: none are recorded here yet; this script was
written and smoke-tested on CPU (`--tiny`) only.

Each configuration runs in a fresh subprocess (DeepSpeed and CUDA state do not survive a run cleanly, and a crash,
such as torch.compile's illegal memory access, only fails that line). Output: one JSON line per configuration
with `tokens_per_s` and `mfu` (or `status: skipped|failed` and why), then a summary line with both paths and the
speedup of the project's path over the plain one.

MFU convention: model FLOPs per token = 6*N + 12*n_layers*hidden*seq, where N counts the parameters that do matrix
multiplies (all parameters except the input-embedding lookup; the LM head is counted) and the attention term is
the PaLM (Chowdhery et al. 2022, appendix B) term for full, not causal-halved, attention over `--seq` tokens. MFU =
tokens/s * FLOPs per token / peak, peak = `--peak-tflops` (989 TFLOP/s: H100/H200 SXM dense bf16). The same FLOPs per
token are used for every configuration, so MFU is proportional to tokens/s; packing makes attention
document-local, which does less attention work than the formula counts. With these conventions the issue's
reference figures agree: 45,500 tokens/s is 34% MFU, 62,400 is 46%, 68,000 is 50%.

Packing (the project's `dcresearch.preprocess.pack_documents` and `PackedCollator`): random-token documents with
random lengths (lognormal, median `doc_median` tokens) are concatenated with EOS between them into rows of `--seq`
tokens, position ids restarting at every document so no token attends across a document boundary; with
flash_attention_2 a micro-batch is flattened into one padding-free row with cumulative sequence lengths (varlen
kernel), with sdpa/eager the model builds a block-diagonal mask from the position ids. Every configuration trains
on exactly micro_batch * seq real tokens per step (no padding anywhere), so tokens/s compare directly.

Single-process DeepSpeed as `dcresearch.finetune` runs it: `single_process_env()` sets RANK=0, LOCAL_RANK=0,
WORLD_SIZE=1, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT; on CPU `cpu_deepspeed()` selects DeepSpeed's CPU
accelerator (gloo) and skips its shared-memory all-reduce op (a C++ extension JIT-built on first use, over a minute,
useless with one process).
"""
import argparse, importlib.util, json, os, subprocess, sys, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FULL = dict(hidden_size=2048, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4, intermediate_size=5632,
            vocab_size=32000, seq=2048, micro_batch=8, steps=30, warmup=5, doc_median=600)
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=176,
            vocab_size=512, seq=128, micro_batch=4, steps=3, warmup=1, doc_median=40)
CHOICES = {'fused_optim': 'optim', 'attention': 'attn_implementation', 'liger': 'use_liger_kernel', 'packing': 'packing',
           'compile': 'torch_compile'}   # configuration name -> the training option it switches
CONFIGS = ('plain', 'project', 'fused_optim', 'attention', 'liger', 'packing', 'compile', 'project_compile',
           'no_fused_optim', 'no_attention', 'no_liger', 'no_packing')
PLAIN = dict(optim='adamw_torch', attn_implementation=None, use_liger_kernel=False, packing=False, torch_compile=False)
# the plain path's ZeRO-2 config, as in the transformers DeepSpeed docs ("auto" values are filled in by the Trainer)
PLAIN_ZERO2 = {'bf16': {'enabled': 'auto'}, 'fp16': {'enabled': 'auto'},
               'zero_optimization': {'stage': 2, 'overlap_comm': True, 'contiguous_gradients': True,
                                     'allgather_bucket_size': 5e8, 'reduce_bucket_size': 'auto'},
               'gradient_accumulation_steps': 'auto', 'gradient_clipping': 'auto',
               'train_batch_size': 'auto', 'train_micro_batch_size_per_gpu': 'auto'}


# --- the project's choices ------------------------------------------------------------------------------------

def project_options(device: str) -> dict:
    "The project's fast-path choices for a Llama model on `device` (`dcresearch.finetune.fast_path_options`)."
    from dcresearch.finetune import fast_path_options
    return dict(fast_path_options(device, 'llama'))

def project_deepspeed_config(precision: str) -> dict:
    "The project's ZeRO-2 config (no offload) for `precision`."
    from dcresearch.finetune import deepspeed_config
    return deepspeed_config(2, offload_optimizer=False, offload_params=False, precision=precision)

def config_options(name: str, device: str) -> dict:
    "Training options of configuration `name`: the plain path, the project's path, or plain + one project choice."
    if name == 'plain': return dict(PLAIN)
    proj = project_options(device)
    if name in ('project', 'project_compile'):
        opts = {**PLAIN, **proj, 'deepspeed': 'project'}
        return {**opts, 'torch_compile': True} if name == 'project_compile' else opts
    if name.startswith('no_'):   # the project's path with one choice as the plain path has it
        one = CHOICES[name[3:]]
        return {**PLAIN, **proj, 'deepspeed': 'project', one: PLAIN[one]}
    one = CHOICES[name]
    value = proj.get(one)
    # a choice the project leaves off here (compile; Liger where it is not installed; the fused optimizer on CPU) is still measured on
    if name in ('liger', 'packing', 'compile'): value = True
    if name == 'fused_optim' and value == PLAIN['optim']: value = 'adamw_torch_fused'
    return {**PLAIN, one: value}

def unavailable(opts: dict, device: str) -> str|None:
    "Why `opts` cannot run here (a missing package or device), or None."
    if opts.get('use_liger_kernel'):
        if importlib.util.find_spec('liger_kernel') is None: return 'liger-kernel is not installed (pip install liger-kernel)'
        if device != 'cuda': return 'Liger kernels are Triton kernels and need a GPU'
    if opts.get('attn_implementation') == 'flash_attention_2':
        if device != 'cuda': return 'flash_attention_2 needs a GPU'
        if importlib.util.find_spec('flash_attn') is None: return 'flash-attn is not installed (pip install flash-attn)'
    return None


# --- FLOPs ----------------------------------------------------------------------------------------------------

def matmul_params(model) -> int:
    "Parameters that take part in matrix multiplies: all of them except the input-embedding lookup (unless tied to the LM head)."
    n = sum(p.numel() for p in model.parameters())
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    tied = head is not None and head.weight is emb.weight
    return n if tied else n - emb.weight.numel()

def flops_per_token(n_matmul_params: int, n_layers: int, hidden: int, seq: int) -> int:
    "Training FLOPs per token: 6N for the weights plus 12*L*h*s for attention scores and values (full, not causal-halved)."
    return 6 * n_matmul_params + 12 * n_layers * hidden * seq


# --- data -----------------------------------------------------------------------------------------------------

class RandomBlocks:
    "run_clm-style training rows: `seq` random token ids, labels = inputs (the model shifts them)."
    def __init__(self, n_rows, seq, vocab, seed=0): self.n, self.seq, self.vocab, self.seed = n_rows, seq, vocab, seed
    def __len__(self): return self.n
    def __getitem__(self, i):
        import torch
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        ids = torch.randint(3, self.vocab, (self.seq,), generator=g)
        return {'input_ids': ids, 'labels': ids.clone()}

def packed_dataset(n_rows: int, seq: int, vocab: int, doc_median: int, eos_id: int=2, seed: int=0):
    "Random-length random-token documents packed by the project (`dcresearch.preprocess.pack_documents`) into full rows."
    import numpy as np
    from dcresearch.preprocess import pack_documents
    rng, docs, total = np.random.default_rng(seed), [], 0
    while total < n_rows * seq + seq:   # one row spare: the partial last row is dropped, never padded
        n = int(np.clip(rng.lognormal(np.log(doc_median), 0.8), 8, 4 * seq))
        docs.append(rng.integers(3, vocab, n).tolist()); total += n + 1
    return pack_documents(docs, seq, eos_id, drop_last=True).select(range(n_rows))


# --- one configuration, in its own process --------------------------------------------------------------------

def run_one(name: str, a: dict) -> dict:
    "Train configuration `name` for warmup + steps steps and measure the timed steps."
    from dcresearch.finetune import cpu_deepspeed, single_process_env
    single_process_env()      # RANK/WORLD_SIZE/MASTER_* of a world of one, as finetune sets them
    device = a['device']
    if device == 'cpu': cpu_deepspeed()   # gloo, and no JIT-built shared-memory all-reduce op (minutes; useless for one process)
    import torch, deepspeed
    from transformers import AutoModelForCausalLM, LlamaConfig, Trainer, TrainerCallback, TrainingArguments
    opts, ds = a['options'], a['ds_config']
    precision = 'bf16' if a['bf16'] else 'fp32'
    cfg = LlamaConfig(**{k: a[k] for k in ('hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
                                           'intermediate_size', 'vocab_size')},
                      max_position_embeddings=a['seq'], bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
                      use_cache=False)  # with a KV cache, transformers ignores packed position ids: documents would see each other
    attn = {'attn_implementation': opts['attn_implementation']} if opts['attn_implementation'] else {}  # None: the model's default
    torch.manual_seed(0)
    with torch.device(device):   # initialise on the device: a 1.1B fp32 init on CPU takes a while; DeepSpeed casts to bf16
        model = AutoModelForCausalLM.from_config(cfg, **attn)
    n_mm = matmul_params(model)
    n_rows = (a['warmup'] + a['steps']) * a['micro_batch']
    if opts['packing']:
        from dcresearch.preprocess import PackedCollator
        data = packed_dataset(n_rows, a['seq'], a['vocab_size'], a['doc_median'])
        collator = PackedCollator(flatten=model.config._attn_implementation == 'flash_attention_2')
    else:
        data, collator = RandomBlocks(n_rows, a['seq'], a['vocab_size']), None

    marks = []
    class StepTimer(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if device == 'cuda': torch.cuda.synchronize()
            marks.append(time.perf_counter())

    # the project's other switches (tf32, pinned memory, gradient checkpointing) apply to its own path only
    extra = {k: opts[k] for k in ('tf32', 'dataloader_pin_memory') if k in opts and opts.get('deepspeed') == 'project'}
    if device != 'cuda': extra.pop('tf32', None)
    if opts.get('gradient_checkpointing'): extra['activation_checkpointing'] = True   # transformers 5's name for it
    targs = TrainingArguments(
        output_dir=str(Path(a['work_dir']) / name), per_device_train_batch_size=a['micro_batch'],
        max_steps=a['warmup'] + a['steps'], learning_rate=1e-4, weight_decay=0.0, optim=opts['optim'],
        bf16=a['bf16'], use_cpu=device == 'cpu', deepspeed=ds, use_liger_kernel=bool(opts['use_liger_kernel']),
        torch_compile=bool(opts['torch_compile']), logging_steps=a['warmup'] + a['steps'], save_strategy='no',
        report_to='none', disable_tqdm=True, dataloader_drop_last=True, remove_unused_columns=False, seed=0, **extra)
    if device == 'cuda': torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(model=model, args=targs, train_dataset=data, data_collator=collator, callbacks=[StepTimer()])
    out = trainer.train()
    w, s = a['warmup'], a['steps']
    if len(marks) < w + s: raise RuntimeError(f'only {len(marks)} of {w + s} steps ran')
    secs = marks[w + s - 1] - marks[w - 1]
    tokens = s * a['micro_batch'] * a['seq']
    fpt = flops_per_token(n_mm, cfg.num_hidden_layers, cfg.hidden_size, a['seq'])
    tps = tokens / secs
    return dict(status='ok', tokens_per_s=round(tps, 1), mfu=float(f"{tps * fpt / (a['peak_tflops'] * 1e12):.4g}"),
                step_time_s=round(secs / s, 4), timed_steps=s, warmup_steps=w, micro_batch=a['micro_batch'], seq=a['seq'],
                tokens_per_step=a['micro_batch'] * a['seq'], train_loss=round(out.training_loss, 4),
                params=sum(p.numel() for p in model.parameters()), matmul_params=n_mm, flops_per_token=fpt,
                peak_tflops=a['peak_tflops'], precision=precision,
                attn_implementation=model.config._attn_implementation,
                peak_mem_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == 'cuda' else None,
                options=opts, deepspeed_zero_stage=ds['zero_optimization']['stage'],
                versions=dict(torch=torch.__version__, transformers=__import__('transformers').__version__,
                              deepspeed=deepspeed.__version__))


# --- driver ---------------------------------------------------------------------------------------------------

def child_main(name: str, settings: str):
    a = json.loads(settings)
    try: res = run_one(name, a)
    except Exception as e:
        res = dict(status='failed', error=f'{type(e).__name__}: {e}'[:2000], traceback=traceback.format_exc()[-3000:])
    print('@@RESULT@@' + json.dumps({'config': name, 'device': a['device'], **res}, default=str), flush=True)

def run_config(name: str, a: dict, timeout: int) -> dict:
    "Run one configuration in a fresh Python process and return its result (skipped if it cannot run here, failed if it crashed)."
    try:
        opts = config_options(name, a['device'])
        ds = project_deepspeed_config('bf16' if a['bf16'] else 'fp32') if opts.get('deepspeed') == 'project' else PLAIN_ZERO2
    except Exception as e:
        return {'config': name, 'device': a['device'], 'status': 'failed', 'error': f'{type(e).__name__}: {e}'}
    why = unavailable(opts, a['device'])
    same = lambda o: {**o, 'attn_implementation': o['attn_implementation'] or 'sdpa'}   # None: the model's default, sdpa
    if not why and name.startswith('no_') and same(opts) == same(config_options('project', a['device'])):
        why = f"the project's path already has {name[3:]} as the plain path has it here (same as `project`)"
    if why: return {'config': name, 'device': a['device'], 'status': 'skipped', 'reason': why, 'options': opts}
    a = {**a, 'options': opts, 'ds_config': ds}
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))}
    for k in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'): env.pop(k, None)
    try:
        p = subprocess.run([sys.executable, __file__, '--child', name, json.dumps(a, default=str)], capture_output=True, text=True,
                           timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {'config': name, 'device': a['device'], 'status': 'failed', 'error': f'timed out after {timeout} s'}
    line = next((l for l in p.stdout.splitlines()[::-1] if l.startswith('@@RESULT@@')), None)
    if line: return json.loads(line[len('@@RESULT@@'):])
    return {'config': name, 'device': a['device'], 'status': 'failed',
            'error': f'process exited with {p.returncode} without a result', 'stderr_tail': (p.stderr or '')[-3000:]}

def summary(results: dict) -> dict:
    "Both paths, the project's speedup over plain (goal: 1.5x), and every other configuration's speedup over plain."
    def fig(r): return {k: r.get(k) for k in ('status', 'tokens_per_s', 'mfu', 'reason', 'error') if r.get(k) is not None}
    plain, proj = results.get('plain', {}), results.get('project', {})
    base = plain.get('tokens_per_s') if plain.get('status') == 'ok' else None
    speed = lambda r: round(r['tokens_per_s'] / base, 3) if base and r.get('status') == 'ok' else None
    out = {'summary': True, 'plain': fig(plain), 'project': fig(proj), 'speedup': speed(proj), 'goal_speedup': 1.5,
           'speedup_vs_plain': {n: speed(r) for n, r in results.items() if n not in ('plain', 'project')}}
    if any(r.get('device') == 'cpu' for r in results.values()):
        out['note'] = 'CPU smoke run: these figures say nothing about GPU speed'
    return out

def main(configs: list[str], tiny: bool, device: str|None, steps: int|None, warmup: int|None, micro_batch: int|None,
         seq: int|None, peak_tflops: float, timeout: int, work_dir: str|None) -> dict:
    import torch
    if device is None and not tiny and not torch.cuda.is_available():
        raise SystemExit('no GPU: the 1.1B model on CPU would take hours. Run with --tiny for the CPU smoke run, '
                         'or --device cpu to insist.')
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    a = dict(TINY if tiny else FULL)
    for k, v in dict(steps=steps, warmup=warmup, micro_batch=micro_batch, seq=seq).items():
        if v is not None: a[k] = v
    if a['warmup'] < 1: raise SystemExit('--warmup must be at least 1 (the first step compiles and allocates)')
    a.update(device=device, bf16=device == 'cuda' and not tiny, peak_tflops=peak_tflops,
             work_dir=work_dir or str(Path(os.environ.get('TMPDIR', '/tmp')) / 'dcr_finetune_speed'))
    results = {}
    for name in configs:
        results[name] = run_config(name, a, timeout)
        print(json.dumps(results[name], default=str), flush=True)
    s = summary(results)
    print(json.dumps(s), flush=True)
    return s

if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == '--child':
        child_main(sys.argv[2], sys.argv[3]); sys.exit(0)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.splitlines()[1:]))
    p.add_argument('--configs', default=','.join(CONFIGS), help=f'comma-separated subset of {",".join(CONFIGS)}')
    p.add_argument('--tiny', action='store_true', help='tiny model, few steps, fp32: a CPU smoke run')
    p.add_argument('--device', choices=['cpu', 'cuda'], help='default: cuda when available')
    p.add_argument('--steps', type=int, help='timed steps (default 30; tiny 3)')
    p.add_argument('--warmup', type=int, help='untimed warm-up steps before them (default 5; tiny 1)')
    p.add_argument('--micro-batch', type=int, help='sequences per step (default 8; tiny 4)')
    p.add_argument('--seq', type=int, help='tokens per sequence (default 2048; tiny 128)')
    p.add_argument('--peak-tflops', type=float, default=989.0, help='peak dense TFLOP/s for MFU (989: H100/H200 SXM bf16)')
    p.add_argument('--timeout', type=int, default=1800, help='seconds one configuration may run')
    p.add_argument('--work-dir', help='Trainer output folders (nothing is saved there but logs)')
    args = p.parse_args()
    names = [c.strip() for c in args.configs.split(',') if c.strip()]
    bad = [c for c in names if c not in CONFIGS]
    if bad: p.error(f'unknown configuration(s) {bad}; choose from {", ".join(CONFIGS)}')
    main(names, args.tiny, args.device, args.steps, args.warmup, args.micro_batch, args.seq, args.peak_tflops,
         args.timeout, args.work_dir)
