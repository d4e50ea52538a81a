"""`dcr label`: the contract commands on the shared crowd-label sets, SST-2 and Banking77."""
import json, subprocess

import numpy as np
import pandas as pd
import pytest

from conftest import DCR, ROOT
from dcresearch import label as L

FIELDS = ['--item-field', 'question', '--annotator-field', 'worker', '--label-field', 'answer']


def dcr(*args):
    return subprocess.run([DCR, 'label', *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=600)


def lines(path):
    return [json.loads(l) for l in path.read_text().splitlines()]


def test_agree_matches_the_reference_implementations(shared, tmp_path):
    import krippendorff
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa
    r = dcr('agree', shared/'labels'/'dog_answers.csv', *FIELDS, '--out', tmp_path)
    assert r.returncode == 0, r.stderr
    got = json.loads((tmp_path/'agreement.json').read_text())
    assert (got['n_items'], got['n_annotators']) == (807, 109)
    ann = L.read_annotations(shared/'labels'/'dog_answers.csv', 'question', 'worker', 'answer')
    wide = ann.table.pivot(index='annotator', columns='item', values='value').to_numpy(dtype=float)
    assert abs(got['krippendorff_alpha'] - krippendorff.alpha(reliability_data=wide, level_of_measurement='nominal')) < 1e-9
    rows = np.array(ann.table.groupby('item')['label'].apply(list).tolist())  # ten answers per item
    codes = pd.Index(ann.labels).get_indexer(rows.ravel()).reshape(rows.shape)
    assert abs(got['fleiss_kappa'] - fleiss_kappa(aggregate_raters(codes, n_cat=len(ann.labels))[0])) < 1e-9
    lo, hi = got['krippendorff_alpha_ci95']
    assert lo < got['krippendorff_alpha'] < hi
    r = dcr('agree', shared/'labels'/'emotion_answers.csv', *FIELDS, '--level', 'interval', '--out', tmp_path/'emo')
    assert r.returncode == 0, r.stderr
    emo = L.read_annotations(shared/'labels'/'emotion_answers.csv', 'question', 'worker', 'answer')
    wide = emo.table.pivot(index='annotator', columns='item', values='value').to_numpy(dtype=float)
    assert abs(json.loads((tmp_path/'emo'/'agreement.json').read_text())['krippendorff_alpha']
               - krippendorff.alpha(reliability_data=wide, level_of_measurement='interval')) < 1e-9


def test_aggregate_default_is_at_least_dawid_skene(shared, tmp_path):
    r = dcr('aggregate', shared/'labels'/'dog_answers.csv', *FIELDS, '--out', tmp_path, '--truth', shared/'labels'/'dog_truth.csv')
    assert r.returncode == 0, r.stderr
    cons = lines(tmp_path/'consensus.jsonl')
    assert len(cons) == 807 and all(set(c) == {'item', 'label', 'confidence'} and 0 < c['confidence'] <= 1 for c in cons)
    annotators = lines(tmp_path/'annotators.jsonl')
    assert len(annotators) == 109 and all(0 <= a['quality'] <= 1 for a in annotators)
    summary = json.loads((tmp_path/'aggregate.json').read_text())
    assert summary['method'] == 'ds' and summary['accuracy_vs_truth'] >= 0.8426  # crowd-kit 1.4.2's Dawid-Skene
    r = dcr('aggregate', shared/'labels'/'emotion_answers.csv', *FIELDS, '--level', 'interval', '--out', tmp_path/'emo',
            '--truth', shared/'labels'/'emotion_truth.csv')
    assert r.returncode == 0, r.stderr
    emo = json.loads((tmp_path/'emo'/'aggregate.json').read_text())
    assert emo['method'] == 'robust' and emo['mae_vs_truth'] < 12.1  # the plain mean's error is 12.02


def test_bad_answers_are_quarantined_or_refused_with_the_flag(tmp_path):
    (tmp_path/'a.csv').write_text('question,worker,answer\n1,a,x\n1,b,x\n2,a,y\n2,,y\n3,a,\n')
    r = dcr('aggregate', tmp_path/'a.csv', *FIELDS, '--out', tmp_path/'o', '--method', 'mv')
    assert r.returncode == 0, r.stderr
    assert [q['reason'] for q in lines(tmp_path/'o'/'quarantine.jsonl')] == ['label:no_annotator', 'label:no_label']
    assert len(lines(tmp_path/'o'/'consensus.jsonl')) == 2
    r = dcr('aggregate', tmp_path/'a.csv', '--out', tmp_path/'o2')
    assert r.returncode == 2 and '--item-field' in r.stderr, r.stderr
    r = dcr('aggregate', tmp_path/'a.csv', *FIELDS, '--out', tmp_path/'o3', '--method', 'nope')
    assert r.returncode == 2 and '--method nope' in r.stderr


@pytest.fixture(scope='module')
def noisy_sst(shared, tmp_path_factory):
    "600 SST-2 training sentences as JSON lines, 10% of labels flipped (seeded); the flipped ids."
    d = tmp_path_factory.mktemp('sst')
    sst = pd.read_csv(shared/'en_sentiment'/'sst2_train.tsv', sep='\t', header=None, names=['label', 'text'], quoting=3).iloc[:600]
    y, flips = L.flip_labels(sst['label'].to_numpy(), 0.1, seed=0)
    rows = [dict(id=f'sst-{i}', text=t, label=int(l)) for i, (t, l) in enumerate(zip(sst['text'], y))]
    (d/'train.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return d/'train.jsonl', {f'sst-{i}' for i in flips}


def test_issues_ranks_flipped_labels_first(noisy_sst, tmp_path):
    path, flipped = noisy_sst
    r = dcr('issues', path, '--text-field', 'text', '--label-field', 'label', '--out', tmp_path)
    assert r.returncode == 0, r.stderr
    found = lines(tmp_path/'issues.jsonl')
    assert found and all(set(f) == {'id', 'given_label', 'suggested_label', 'score'} for f in found)
    assert [f['score'] for f in found] == sorted((f['score'] for f in found), reverse=True)
    top = [f['id'] for f in found[:len(flipped)]]
    assert len(set(top) & flipped) / len(flipped) > 0.3  # chance would be 0.1 (600 sentences: weak models; the full set is in the benchmark)
    assert all(f['given_label'] != f['suggested_label'] for f in found[:20])


def test_next_picks_k_unlabelled_pool_items(noisy_sst, tmp_path):
    path, _ = noisy_sst
    rows = [json.loads(l) for l in path.read_text().splitlines()]
    (tmp_path/'labeled.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows[:40]))
    (tmp_path/'pool.jsonl').write_text(''.join(json.dumps({'id': r['id'], 'text': r['text']}) + '\n' for r in rows[40:240]))
    r = dcr('next', tmp_path/'pool.jsonl', '--labeled', tmp_path/'labeled.jsonl', '--k', 25, '--out', tmp_path/'o')
    assert r.returncode == 0, r.stderr
    picked = [x['id'] for x in lines(tmp_path/'o'/'next.jsonl')]
    assert len(picked) == len(set(picked)) == 25 and set(picked) <= {x['id'] for x in rows[40:240]}


def test_report_labeling_writes_html_with_plots_and_no_code(tmp_path):
    "The contract command, in a scratch folder: no answers given, so the simulated crowd (its truth known)."
    r = subprocess.run([DCR, 'report', 'labeling', '--quiet'], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    page = (tmp_path/'reports'/'labeling.html').read_text()
    assert 'hl-ipython3' not in page and 'import dcresearch' not in page
    assert page.count('data:image/png;base64') >= 2 and "Krippendorff" in page and 'Against the known truth' in page


def test_weak_supervision_on_youtube_spam(shared):
    from dcresearch.core import package_file
    yt = pd.concat([pd.read_csv(f) for f in sorted((shared/'weak_supervision').glob('Youtube0*.csv'))], ignore_index=True)
    votes = L.apply_lfs(L.load_lfs(package_file('data', 'youtube_lfs.py')), yt['CONTENT'])
    table = L.lf_analysis(votes, yt['CLASS']).set_index('lf')
    on = votes['link'].notna()
    assert table.loc['link', 'coverage'] == on.mean()
    assert table.loc['link', 'correct'] == int((votes['link'][on] == yt['CLASS'][on].astype(str)).sum())
    accuracy = {m: (L.weak_labels(votes, m, default='0')['label'].astype(int) == yt['CLASS']).mean() for m in ('mv', 'model')}
    assert accuracy['mv'] > 0.9 and accuracy['model'] > 0.9, accuracy  # snorkel's tutorial: MV 0.842, label model 0.883


def test_label_studio_round_trip_keeps_labels_spans_annotators_and_ids(noisy_sst, tmp_path):
    path, _ = noisy_sst
    rows = [json.loads(l) for l in path.read_text().splitlines()][:5]
    (tmp_path/'in.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    (tmp_path/'predictions.jsonl').write_text(''.join(json.dumps(dict(id=r['id'], label=r['label'], prediction=1, confidence=0.75)) + '\n' for r in rows[:3]))
    r = dcr('export', tmp_path/'in.jsonl', '--predictions', tmp_path/'predictions.jsonl', '--out', tmp_path/'x')
    assert r.returncode == 0, r.stderr
    tasks = json.loads((tmp_path/'x'/'tasks.json').read_text())
    assert [t['data']['id'] for t in tasks] == [r['id'] for r in rows] and sum('predictions' in t for t in tasks) == 3
    assert tasks[0]['predictions'][0]['score'] == 0.75
    for k, t in enumerate(tasks):  # two annotators answer as Label Studio records it; one also marks a span
        t['annotations'] = [dict(id=2 * k + j, completed_by=who, created_at='2026-12-01T10:00:00Z',
                                 result=[dict(from_name='label', to_name='text', type='choices', value=dict(choices=[str(k % 2 if j else 1)]))])
                            for j, who in enumerate([{'id': 3, 'email': 'ann@example.org'}, 11])]
    tasks[1]['annotations'][0]['result'].append(dict(from_name='ner', to_name='text', type='labels', value=dict(start=0, end=4, text=tasks[1]['data']['text'][:4], labels=['ASPECT'])))
    (tmp_path/'done.json').write_text(json.dumps(tasks))
    r = dcr('import', tmp_path/'done.json', '--out', tmp_path/'i')
    assert r.returncode == 0, r.stderr
    back = pd.read_csv(tmp_path/'i'/'answers.csv', dtype=str)
    assert len(back) == 11 and set(back['item']) == {r['id'] for r in rows} and set(back['annotator']) == {'ann@example.org', '11'}
    span = back[back['label'] == 'ASPECT'].iloc[0]
    assert (span['item'], int(float(span['start'])), int(float(span['end']))) == (rows[1]['id'], 0, 4)
    r = dcr('aggregate', tmp_path/'i'/'answers.csv', '--out', tmp_path/'a', '--method', 'mv')
    assert r.returncode == 0 and len(lines(tmp_path/'a'/'consensus.jsonl')) == 5, r.stderr
    (tmp_path/'doccano.jsonl').write_text(json.dumps(dict(id=1, text='Alice paid', label=[[0, 5, 'PER']], user='u1')) + '\n'
                                          + json.dumps(dict(id=2, text='nice', label=['positive'], user='u2')) + '\n{broken\n')
    r = dcr('import', tmp_path/'doccano.jsonl', '--format', 'doccano', '--out', tmp_path/'d')
    assert r.returncode == 0, r.stderr
    d = pd.read_csv(tmp_path/'d'/'answers.csv', dtype=str)
    assert d[['item', 'annotator', 'label']].values.tolist() == [['1', 'u1', 'PER'], ['2', 'u2', 'positive']] and d.loc[0, 'span'] == 'Alice'
    assert lines(tmp_path/'d'/'quarantine.jsonl')[0]['reason'] == 'label:invalid_json'
    from dcresearch.lake import read_delta_table
    assert read_delta_table(tmp_path/'d'/'annotations').num_rows == 2


def test_weak_command_writes_labels_and_the_lf_table(shared, tmp_path):
    yt = pd.read_csv(shared/'weak_supervision'/'Youtube01-Psy.csv')
    (tmp_path/'yt.jsonl').write_text(''.join(json.dumps(dict(id=i, text=t, label=int(c))) + '\n' for i, t, c in zip(yt['COMMENT_ID'], yt['CONTENT'], yt['CLASS'])))
    r = dcr('weak', tmp_path/'yt.jsonl', '--lfs', ROOT/'nbs'/'data'/'youtube_lfs.py', '--out', tmp_path/'w')
    assert r.returncode == 0, r.stderr
    got = lines(tmp_path/'w'/'weak_labels.jsonl')
    assert [g['id'] for g in got] == yt['COMMENT_ID'].tolist()
    summary = json.loads((tmp_path/'w'/'lf_analysis.json').read_text())
    assert summary['lfs'] == 11 and summary['accuracy_on_covered'] > 0.85
    assert {'lf', 'polarity', 'coverage', 'overlaps', 'conflicts', 'emp_accuracy'} <= set(summary['lf_analysis'][0])
    r = dcr('weak', tmp_path/'yt.jsonl', '--out', tmp_path/'w2')
    assert r.returncode == 2 and '--lfs' in r.stderr


def test_fix_drops_or_relabels_suspects_with_a_balanced_ledger(noisy_sst, tmp_path):
    path, flipped = noisy_sst
    ingest = subprocess.run([DCR, 'ingest', path, '--out', tmp_path/'ingest', '--label-field', 'label', '--quiet'], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert ingest.returncode == 0, ingest.stderr
    found = [dict(id=i, given_label='0', suggested_label='1', score=s) for i, s in (('sst-1', 0.9), ('sst-5', 0.4))]
    (tmp_path/'issues.jsonl').write_text(''.join(json.dumps(f) + '\n' for f in found))
    r = dcr('fix', tmp_path/'ingest', '--issues', tmp_path/'issues.jsonl', '--fix', 'drop', '--min-score', 0.5, '--out', tmp_path/'fixed')
    assert r.returncode == 0, r.stderr
    from dcresearch.lake import read_stage_table
    from dcresearch.pipeline import load_ledger, verify_stage
    rej = read_stage_table(tmp_path/'fixed', 'rejected')
    assert rej.num_rows == 1 and rej['reason'][0].as_py() == 'label:suspected_error' and json.loads(rej['meta'][0].as_py())['id'] == 'sst-1'
    assert load_ledger(tmp_path/'fixed').check().summary() == dict(n_in=600, n_kept=599, n_rejected=1, n_quarantined=0)
    assert verify_stage(tmp_path/'fixed').ok
    r = dcr('fix', tmp_path/'ingest', '--issues', tmp_path/'issues.jsonl', '--fix', 'relabel', '--out', tmp_path/'relabelled')
    assert r.returncode == 0, r.stderr
    recs = read_stage_table(tmp_path/'relabelled', 'records').to_pylist()
    changed = {json.loads(x['meta'])['id']: (x['label'], json.loads(x['meta']).get('given_label')) for x in recs if 'given_label' in json.loads(x['meta'])}
    assert set(changed) == {'sst-1', 'sst-5'} and all(lab == '1' for lab, _ in changed.values())
    (tmp_path/'bad.jsonl').write_text(json.dumps(dict(id='nope', given_label='0', suggested_label='1', score=1.0)) + '\n')
    r = dcr('fix', tmp_path/'ingest', '--issues', tmp_path/'bad.jsonl', '--out', tmp_path/'x')
    assert r.returncode == 2 and 'not in' in r.stderr


def test_crowdlab_uses_the_texts(noisy_sst, tmp_path):
    path, flipped = noisy_sst
    rows = [json.loads(l) for l in path.read_text().splitlines()]
    truth = {r['id']: str(1 - r['label'] if r['id'] in flipped else r['label']) for r in rows}  # SST-2's own labels
    rng = np.random.default_rng(1)
    answers = [(r['id'], f'w{a}', truth[r['id']] if rng.random() < 0.7 else str(1 - int(truth[r['id']]))) for r in rows for a in rng.choice(8, 3, replace=False)]
    pd.DataFrame(answers, columns=['question', 'worker', 'answer']).to_csv(tmp_path/'answers.csv', index=False)
    r = dcr('aggregate', tmp_path/'answers.csv', *FIELDS, '--method', 'crowdlab', '--out', tmp_path/'o')
    assert r.returncode == 2 and '--texts' in r.stderr
    r = dcr('aggregate', tmp_path/'answers.csv', *FIELDS, '--method', 'crowdlab', '--texts', path, '--out', tmp_path/'o')
    assert r.returncode == 0, r.stderr
    cons = lines(tmp_path/'o'/'consensus.jsonl')
    assert len(cons) == 600 and {c['item'] for c in cons} == set(truth)
    mv = L.aggregate(L.read_annotations(tmp_path/'answers.csv', 'question', 'worker', 'answer'), 'mv').items
    mv_acc = np.mean([l == truth[i] for i, l in zip(mv['item'], mv['label'])])
    # 600 sentences train too weak a model to beat the vote clearly (the benchmark's 6,920: 0.888 vs 0.790); on 300 it
    # fell below the vote (0.72 vs 0.80): the README says to use CROWDLAB with thousands of items
    assert np.mean([c['label'] == truth[c['item']] for c in cons]) > mv_acc - 0.02


def test_doccano_export_then_import(tmp_path):
    (tmp_path/'in.jsonl').write_text(json.dumps(dict(id='a', text='good film')) + '\n' + json.dumps(dict(id='b', text='bad film')) + '\n')
    (tmp_path/'p.jsonl').write_text(json.dumps(dict(id='a', prediction='positive', confidence=0.9)) + '\n')
    r = dcr('export', tmp_path/'in.jsonl', '--format', 'doccano', '--predictions', tmp_path/'p.jsonl', '--out', tmp_path/'x')
    assert r.returncode == 0, r.stderr
    rows = lines(tmp_path/'x'/'tasks.jsonl')
    assert rows == [dict(id='a', text='good film', label=['positive']), dict(id='b', text='bad film', label=[])]
    rows[1]['label'] = ['negative']
    (tmp_path/'done.jsonl').write_text(''.join(json.dumps(dict(x, user='ann')) + '\n' for x in rows))
    r = dcr('import', tmp_path/'done.jsonl', '--format', 'doccano', '--out', tmp_path/'i')
    assert r.returncode == 0, r.stderr
    back = pd.read_csv(tmp_path/'i'/'answers.csv', dtype=str)
    assert back[['item', 'annotator', 'label']].values.tolist() == [['a', 'ann', 'positive'], ['b', 'ann', 'negative']]
