"""The runner end to end: resume after a real kill gives the same output as an uninterrupted run."""
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import pyarrow as pa

from dcresearch.lake import read_delta_table
from dcresearch.pipeline import load_ledger
from dcresearch.sample import write_sample

SCRIPT = textwrap.dedent('''
    import sys, time
    import numpy as np, pyarrow.compute as pc
    from dcresearch.core import Step, split_by_mask
    from dcresearch.io import RecordReader
    from dcresearch.pipeline import Pipeline

    class SlowShortFilter(Step):
        "Rejects documents under `min_chars` characters, slowly (so the test can kill it mid-way)."
        stage = 'demo'
        def __init__(self, min_chars=80, delay=0.0): self.min_chars, self.delay = min_chars, delay
        def __call__(self, t):
            time.sleep(self.delay)
            keep = pc.greater_equal(pc.utf8_length(t['text']), self.min_chars).to_numpy(zero_copy_only=False)
            return split_by_mask(t, keep, self.stage, 'demo:short_doc')

    inputs, out, workers, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    Pipeline([SlowShortFilter(delay=delay)], workers=workers, shard_size=100, progress=False).run(RecordReader(inputs), out)
''')


def _tables(out: Path) -> dict:
    return {n: read_delta_table(out/n).sort_by('id') if n != 'quarantine' else read_delta_table(out/n).sort_by([('source', 'ascending'), ('line', 'ascending')])
            for n in ('records', 'rejected', 'quarantine')}


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    write_sample(tmp_path/'in', n_docs=1200, seed=3, n_files=3, n_broken=6)
    script = tmp_path/'run.py'; script.write_text(SCRIPT)
    run = lambda out, workers, delay: subprocess.Popen([sys.executable, str(script), str(tmp_path/'in'), str(out), str(workers), str(delay)])
    # reference: one uninterrupted run, one process
    assert run(tmp_path/'ref', 1, 0.0).wait(timeout=300) == 0
    # the run under test: two workers, killed (SIGKILL, no clean-up) once a few shards are done
    p = run(tmp_path/'out', 2, 0.4)
    done = tmp_path/'out'/'_work'/'done'
    deadline = time.time() + 120
    while time.time() < deadline and len(list(done.glob('*.json'))) < 3: time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    n_done = len(list(done.glob('*.json')))
    assert n_done >= 3 and not (tmp_path/'out'/'run.json').exists(), 'the run should have been killed part-way'
    # re-run the same command: it resumes and finishes
    assert run(tmp_path/'out', 2, 0.4).wait(timeout=300) == 0
    manifest = json.loads((tmp_path/'out'/'run.json').read_text())
    assert manifest['resumed_shards'] >= n_done > 0
    assert manifest['resumed_shards'] < manifest['n_shards']
    ref, got = _tables(tmp_path/'ref'), _tables(tmp_path/'out')
    for name in ref: assert got[name].equals(ref[name]), f'{name} differs after resume'
    assert load_ledger(tmp_path/'out').check().summary() == load_ledger(tmp_path/'ref').summary()
    s = load_ledger(tmp_path/'out').summary()
    assert s['n_in'] == 1206 and s['n_quarantined'] == 6 and s['n_rejected'] > 0


def test_a_step_that_loses_rows_fails_the_run_and_commits_nothing(tmp_path):
    from dcresearch.core import Step, StepResult
    from dcresearch.io import RecordReader
    from dcresearch.pipeline import Pipeline, StepContractError

    class DropsFirstRowSilently(Step):
        def __call__(self, t): return StepResult(kept=t.slice(1))

    write_sample(tmp_path/'in', n_docs=50, seed=1, n_files=1, n_broken=0)
    import pytest
    with pytest.raises(StepContractError, match='DropsFirstRowSilently on shard 0'):
        Pipeline([DropsFirstRowSilently()], progress=False).run(RecordReader(tmp_path/'in'), tmp_path/'out')
    assert not (tmp_path/'out'/'records').exists() and not (tmp_path/'out'/'run.json').exists()
