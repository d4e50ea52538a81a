"The augmentation report (nbs/reports/augmentation.ipynb) runs end to end through `run_report` at a small size."
import re

import pytest

from dcresearch.reports.runner import run_report

SECTIONS = ['Examples side by side', 'Counts per operator and what the guards dropped', 'Diversity before and after',
            'Images', 'Instruction recombination', 'Effect on a model', 'Did it help?']


def test_report_small_on_sst2(shared, tmp_path, monkeypatch):
    "SST-2 (the default input when ../shared/data is there) at a small size: every section renders, nothing fails."
    res = run_report('augmentation', dict(n_rows=40, examples=6, sizes='30,60', seeds='0', dev_rows=120, n_images=2,
                                          settings='none,eda,typo,mixup'), out_dir=tmp_path, progress=False)
    assert res.ok, res.error
    page = res.html.read_text(encoding='utf-8')
    for s in SECTIONS: assert f'>{s}<' in page or f'{s}</h' in page, s
    assert '<mark>' in page and '<del>' in page                       # changed words highlighted, escaped text around them
    assert page.count('data:image/png;base64') >= 2                     # image grid and the accuracy plot are embedded
    assert 'sst2_train.tsv' in page and 'sst2_dev.tsv' in page
    assert re.search(r'0\.\d{3} ± 0\.\d{3}', page)                      # the mean ± std table
    assert 'too few seeds to tell' in page                              # one seed: no verdict claimed
    assert 'Traceback' not in page


def test_report_notes_missing_inputs(tmp_path):
    "A JSON Lines input without images or instruction data: those sections say so instead of failing."
    src = tmp_path/'in.jsonl'
    texts = [('a truly wonderful and moving film', 'pos'), ('a dull , lifeless and boring mess', 'neg')]
    src.write_text(''.join(f'{{"text": "{t} number {i}", "label": "{y}"}}\n' for i in range(30) for t, y in texts)
                   + '{"text": "no label here"}\nnot json\n', encoding='utf-8')
    res = run_report('augmentation', dict(input=str(src), n_rows=20, examples=4, sizes='10,20', seeds='0', settings='none,eda',
                                          images=str(tmp_path/'none'), instructions=str(tmp_path/'none.json'), ops='synonym,swap'),
                     out_dir=tmp_path/'out', progress=False)
    assert res.ok, res.error
    page = res.html.read_text(encoding='utf-8')
    assert 'No images' in page and 'No instruction data' in page
    assert '25% of the input held out' in page
    assert 'could not be used' in page                                  # the unlabelled and the broken line are counted


def test_report_shows_saved_results(tmp_path):
    "`effect_results` (an effect.csv from `measure_augmentation`) is shown instead of running the experiment."
    src = tmp_path/'in.jsonl'
    src.write_text(''.join(f'{{"text": "a fine and moving film number {i}", "label": "pos"}}\n' for i in range(6)), encoding='utf-8')
    rows = [f'{size},{seed},{s},{size * (1 if s == "none" else 5)},0,0,{acc},{acc},1.0'
            for size in (100, 500) for seed in (0, 1, 2) for s, acc in (('none', 0.70 + seed / 100), ('eda', 0.72 + seed / 100))]
    (tmp_path/'effect.csv').write_text('size,seed,setting,n_train_rows,n_added,n_dropped,accuracy,macro_f1,seconds\n'
                                      + '\n'.join(rows) + '\n')
    res = run_report('augmentation', dict(input=str(src), n_rows=6, ops='swap', effect_results=str(tmp_path/'effect.csv'),
                                          images=str(tmp_path/'none'), instructions=str(tmp_path/'none.json')),
                     out_dir=tmp_path/'out', progress=False)
    assert res.ok, res.error
    page = res.html.read_text(encoding='utf-8')
    assert 'Results read from' in page and '100 rows: helped (+2.0 ± 0.0 pts)' in page
