"""The `finance_monitoring` recipe through `dcr pipeline` at a tiny size (papermill report included)."""
import json, subprocess

import pandas as pd

from conftest import DCR, ROOT


def dcr(*args, cwd=ROOT, timeout=900):
    return subprocess.run([str(DCR), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_finance_monitoring_recipe_small(shared, tmp_path):
    "Small slices of the three sources (the PhraseBank slice keeps its BOM and CRLF) and a short stream with planted shifts."
    fpb = (shared/'finance'/'fpb_sentences_50agree.txt').read_bytes().split(b'\r\n')
    (tmp_path/'fpb.txt').write_bytes(b'\r\n'.join(fpb[:4800:48] + [b'a line without a label']) + b'\r\n')
    pd.read_csv(shared/'finance'/'fin_tweets_train.csv').iloc[:2400:16].to_csv(tmp_path/'tweets.csv', index=False)
    pd.read_csv(shared/'tweets'/'airline_tweets.csv').iloc[::96].to_csv(tmp_path/'air.csv', index=False)   # about 150 tweets, every airline
    out = tmp_path/'run'
    r = dcr('pipeline', 'finance_monitoring', '-p', 'phrasebank', tmp_path/'fpb.txt', '-p', 'tweets', tmp_path/'tweets.csv',
            '-p', 'airline', tmp_path/'air.csv', '-p', 'stream_docs', 600, '-p', 'out', out, '--quiet', cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    m = json.loads((out/'metrics.json').read_text())
    assert m['n_news'] == 100 and m['n_quarantined'] == 1 and m['shifts'] == 3 and 0 <= m['detected'] <= 3
    assert 0.3 < m['accuracy_news'] <= 1 and m['airline_alerts'] >= 0 and 0 <= m['detected_on_true_labels'] <= 3
    truth = json.loads((out/'stream'/'shifts.json').read_text())
    assert [s['entity'] for s in truth['shifts']] == ['$BOLT', '$CRUX', '$DYNA']
    page = (tmp_path/'reports'/'finance_monitoring.html').read_text()
    assert 'hl-ipython3' not in page and page.count('data:image/png;base64') >= 3
    assert 'domain gap' in page and 'false alarm' in page and 'airline' in page


def test_a_crawled_news_feed_is_the_live_input(shared, tmp_path):
    """A news site on loopback: an RSS feed whose items are dated article pages (the generated headlines with planted
    shifts). `dcr crawl` reads it in two rounds (the feed grows in between); `dcr monitor --stream` takes the crawl
    folder, dates each page by its publication time and finds its company by cashtag or by name."""
    from dcresearch.crawl import ReplaySite
    from dcresearch.sample import FINANCE_ENTITIES, finance_news
    news = sorted(finance_news(240, seed=1), key=lambda r: r['timestamp'])
    html = [('Content-Type', 'text/html; charset=utf-8')]
    pages = {f"/news/{r['id']}": (200, html, (f'<html><head><title>Newswire</title><meta property="article:published_time" content="{r["timestamp"]}">'
                                             f"</head><body><article><p>{r['text']}</p></article></body></html>").encode()) for r in news}
    listed = [120]   # items in the feed now

    def feed(path):
        items = ''.join(f"<item><title>{r['text']}</title><link>{site.url}news/{r['id']}</link></item>" for r in news[:listed[0]])
        return 200, [('Content-Type', 'application/rss+xml')], f'<?xml version="1.0"?><rss version="2.0"><channel>{items}</channel></rss>'.encode()
    site = ReplaySite(extra={**pages, '/feed.xml': feed, '/robots.txt': (200, [('Content-Type', 'text/plain')], b'User-agent: *\nAllow: /\n')}).start()
    try:
        out = tmp_path/'feed'
        for n in (120, 240):
            listed[0] = n
            r = dcr('crawl', site.url + 'feed.xml', '--out', out, '--delay', 0, '--per-host', 8, '--max-pages', 400, '--no-autothrottle', '--quiet')
            assert r.returncode == 0, r.stdout + r.stderr
        fetched = [p for _, p, s in site.log if p.startswith('/news/')]
        assert len(fetched) == len(set(fetched)) == 240   # the second round fetched only the new items
    finally: site.stop()
    (out/'shifts.json').write_text(json.dumps(dict(start='2026-01-01', shifts=[dict(entity='$BOLT', day=30)])))
    fpb = (shared/'finance'/'fpb_sentences_50agree.txt').read_bytes().split(b'\r\n')
    (tmp_path/'fpb.txt').write_bytes(b'\r\n'.join(fpb[:4800:48]) + b'\r\n')
    pd.read_csv(shared/'finance'/'fin_tweets_train.csv').iloc[:2400:16].to_csv(tmp_path/'tweets.csv', index=False)
    names = ','.join(f'{tag}={name}' for tag, name in FINANCE_ENTITIES)
    r = dcr('monitor', tmp_path/'fpb.txt', '--tweets', tmp_path/'tweets.csv', '--out', tmp_path/'run', '--stream', out, '--entities', names, '--quiet')
    assert r.returncode == 0, r.stdout + r.stderr
    m = json.loads((tmp_path/'run'/'metrics.json').read_text())
    no_entity = sum(not any(t in x['text'] or n in x['text'] for t, n in FINANCE_ENTITIES) for x in news)
    assert m['n_stream'] == 240 - no_entity and m['stream_left_out']['no_entity'] == no_entity
    assert m['stream_dated'] == {'published': m['n_stream']} and m['shifts'] == 1
    index = pd.read_parquet(tmp_path/'run'/'stream_index.parquet')
    assert set(index.entity) <= {t for t, _ in FINANCE_ENTITIES} and index.n.sum() == m['n_stream']
    assert index.timestamp.min() >= pd.Timestamp('2026-01-01') and index.timestamp.max() < pd.Timestamp('2026-04-15')
    from dcresearch.reports.runner import run_report
    run_report('finance_monitoring', dict(run_dir=str(tmp_path/'run')), out_dir=tmp_path/'reports', progress=False)
    page = (tmp_path/'reports'/'finance_monitoring.html').read_text()
    assert f"{m['n_stream']:,} published" in page and 'no airline tweets were given' in page.lower()
