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


def pytest_sessionstart(session):
    "In CI the real data must be there: a skipped real-data test would hide a failure."
    if os.environ.get('CI') and not SHARED.is_dir():
        pytest.exit(f'CI run without the real test data at {SHARED} (../shared/data beside the checkout)', returncode=1)


@pytest.fixture(scope='session')
def shared() -> Path:
    "The real public datasets (../shared/data); tests that need them skip clearly if absent."
    if not SHARED.is_dir(): pytest.skip(f'real data not found at {SHARED}')
    return SHARED
