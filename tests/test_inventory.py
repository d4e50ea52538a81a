"The inventory report (`dcr report inventory -p lake DIR`) on a lake of real data: ingest and clean of C4, twice ingested."
import subprocess

from conftest import DCR
from dcresearch.cli import clean, ingest
from dcresearch.inventory import lake_tables, token_estimate, work_by_node

SECTIONS = ['Storage', 'Growth across versions', 'Rows by source, language and time', 'Tokens', 'Compute',
            'Memory per GPU', 'Where the work ran']


def test_inventory_report_on_a_real_lake(shared, tmp_path):
    lake = tmp_path/'lake'
    c4 = str(shared/'web'/'c4_demo.jsonl')
    ingest([c4], str(lake/'ingest'), shard_size=100, quiet=True)
    ingest([c4], str(lake/'ingest'), shard_size=100, quiet=True, fresh=True)   # a second version of the table
    clean([str(lake/'ingest')], str(lake/'clean'), shard_size=100, workers=2, quiet=True)
    tabs = lake_tables(lake)
    rec = tabs.query('table == "records"').set_index('stage')
    assert list(rec.index) == ['ingest', 'clean'] and rec.loc['ingest', 'rows'] == 300 and (rec['files'] == 3).all()
    assert rec.loc['ingest', 'version'] == 2 and (rec['compression'] > 1).all()
    est = token_estimate(lake/'ingest', sample=300)
    assert est['sampled'] == 300 and est['tokens_low'] == est['tokens'] == est['tokens_high']  # the whole stage: no interval
    assert set(work_by_node(lake)['stage']) == {'ingest', 'clean'}

    r = subprocess.run([DCR, 'report', 'inventory', '-p', 'lake', str(lake)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    page = (tmp_path/'reports'/'inventory.html').read_text(encoding='utf-8')
    for s in SECTIONS: assert f'{s}</h' in page or f'>{s}<' in page, s
    assert page.count('data:image/png;base64') >= 7                      # storage, growth, sources, languages, compute, memory, work
    assert 'def md' not in page and 'inv.lake_tables' not in page        # no code in the report
    assert 'Traceback' not in page and 'WARNING' not in page
    assert str(shared) not in page and 'c4_demo.jsonl' in page            # sources by file name, no machine folders
