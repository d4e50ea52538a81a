"""Shared fixtures: where the real data is, the project's own `dcr`, and offline settings."""
import os, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / 'shared' / 'data'
DCR = str(Path(sys.executable).parent / 'dcr')

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ.setdefault('PYDEVD_DISABLE_FILE_VALIDATION', '1')
os.environ.setdefault('RAY_USAGE_STATS_ENABLED', '0')  # offline: Ray must not try to report usage


# The longest files first (seconds of each file's tests, `pytest --durations=0`, 2026-12-07: ray 247, cli 174,
# customer_service 132, ...). The Makefile runs `-n 2 --dist loadfile --no-loadscope-reorder`, so xdist hands files out in
# this order (by default it orders them by their number of tests): a long file left for the end keeps one worker busy
# while the other idles.
LONGEST_FIRST = ('test_ray.py', 'test_cli.py', 'test_customer_service.py', 'test_objectstore.py', 'test_faults.py',
                 'test_label.py', 'test_finetune.py', 'test_deploy.py', 'test_monitor.py', 'test_augmentation_report.py',
                 'test_tuning_report.py', 'test_crawl.py', 'test_finetune_report.py', 'test_augment.py')


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the order inside a file stays


def pytest_sessionstart(session):
    "In CI the real data must be there: a skipped real-data test would hide a failure."
    if os.environ.get('CI') and not SHARED.is_dir():
        pytest.exit(f'CI run without the real test data at {SHARED} (../shared/data beside the checkout)', returncode=1)


@pytest.fixture(scope='session')
def shared() -> Path:
    "The real public datasets (../shared/data); tests that need them skip clearly if absent."
    if not SHARED.is_dir(): pytest.skip(f'real data not found at {SHARED}')
    return SHARED


def free_port() -> int:
    "A free TCP port on 127.0.0.1 (tests bind services to loopback only)."
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def wait_until_up(url: str, proc, log: Path, path: str='/healthz', tries: int=300):
    "Poll `url + path` until it answers 200; fail with the server's log if the process exits first."
    import time, httpx
    for _ in range(tries):
        try:
            if httpx.get(url + path, timeout=1).status_code == 200: return
        except httpx.HTTPError: pass
        assert proc.poll() is None, Path(log).read_text()[-2000:]
        time.sleep(0.2)
    raise AssertionError(f'{url} did not come up')
