"""The `recommendation` recipe through `dcr pipeline` at a tiny size (papermill report included), on a u.data-layout file."""
import json, subprocess

from conftest import DCR, ROOT


def dcr(*args, cwd=ROOT, timeout=600):
    return subprocess.run([str(DCR), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_recommendation_recipe_on_another_ratings_file(shared, tmp_path):
    "`dcr pipeline recommendation -p ratings PATH -p out DIR` on MovieLens rows rewritten in u.data layout, with bad lines."
    lines = (shared/'ratings'/'ml_latest_small_ratings.csv').read_text().splitlines()[1:4001]
    udata = [l.replace(',', '\t') for l in lines]
    udata += ['1\t1\t\t964982703', 'not a rating line', udata[5].rsplit('\t', 1)[0] + '\t1700000000']  # missing rating, malformed, a later duplicate
    (tmp_path/'u.data').write_text('\n'.join(udata) + '\n')
    out = tmp_path/'run'
    r = dcr('pipeline', 'recommendation', '-p', 'ratings', tmp_path/'u.data', '-p', 'out', out, '--quiet', cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    m = json.loads((out/'metrics.json').read_text())
    assert m['rmse'] > 0 and m['n_lines'] == 4003 and m['n_quarantined'] == 2
    assert m['n_train'] + m['n_test'] + m['n_removed'] + m['n_quarantined'] == m['n_lines']   # every line accounted for
    removed = [json.loads(l) for l in (out/'removed.jsonl').read_text().splitlines()]
    assert {'line': 6, 'user': '1', 'item': lines[5].split(',')[1], 'reason': 'duplicate:user_item'} in removed  # the later rating stands
    assert [json.loads(l)['reason'] for l in (out/'quarantine.jsonl').read_text().splitlines()] == ['missing:rating', 'io:field_count']
    page = (tmp_path/'reports'/'recommendation.html').read_text()
    assert 'hl-ipython3' not in page and page.count('data:image/png;base64') >= 4 and 'recommendation' in (tmp_path/'reports'/'index.html').read_text()
    assert "RMSE" in page and "naive baseline" in page


def test_recipe_parameters_are_checked(tmp_path):
    r = dcr('pipeline', 'recommendation', '-p', 'rating', 'x.csv', cwd=tmp_path)
    assert r.returncode != 0 and '-p rating: not a parameter' in r.stderr and 'ratings, movies, out' in r.stderr
    r = dcr('pipeline', 'recommendation', '-p', 'ratings', tmp_path/'missing.csv', '-p', 'out', tmp_path/'o', cwd=tmp_path)
    assert r.returncode != 0 and 'no such ratings file' in r.stderr and 'Traceback' not in r.stderr
