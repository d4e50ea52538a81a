"""After `pip install` (a wheel, outside the checkout) the report notebooks ship with the package."""
import os, subprocess, sys, zipfile
from pathlib import Path

from conftest import ROOT


def test_wheel_ships_report_notebooks_and_runs_outside_checkout(tmp_path):
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', tmp_path/'dist', ROOT],
                   check=True, cwd=tmp_path, capture_output=True)
    wheel = next((tmp_path/'dist').glob('dcresearch-*.whl'))
    names = zipfile.ZipFile(wheel).namelist()
    assert 'dcresearch/reports/notebooks/eda.ipynb' in names and 'dcresearch/reports/notebooks/default.yaml' in names
    assert 'dcresearch/reports/notebooks/recommendation.yaml' in names   # recipes by name work outside the checkout
    assert 'dcresearch/data/sample_text.json' in names   # `dcr sample` / `dcr pipeline` need it outside the checkout
    for lang in ('en', 'zh'):  # the PII detector's NER models ship in the wheel
        assert {f'dcresearch/models/ner_{lang}/{f}' for f in ('config.cfg', 'build.json', 'ner/model', 'tok2vec/model')} <= set(names)
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q', '--target', tmp_path/'site', wheel], check=True, capture_output=True)
    env = dict(os.environ, PYTHONPATH=str(tmp_path/'site'))
    code = ('import dcresearch, dcresearch.reports.runner as r; from dcresearch.cli import default_recipe; '
            'print(dcresearch.__file__); print(r.find_report("eda")); print(default_recipe())')
    out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(p.startswith(str(tmp_path/'site')) for p in out), out
    # and a report runs from there, with the installed copy, in a directory that is not the checkout
    (tmp_path/'in.jsonl').write_text('\n'.join(f'{{"text": "a small document number {i}"}}' for i in range(30)))
    r = subprocess.run([sys.executable, '-m', 'dcresearch.cli', 'report', 'eda', '-p', 'input', 'in.jsonl', '--quiet'],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path/'reports'/'eda.html').exists()
