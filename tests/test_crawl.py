"""`dcr crawl` against a real website on loopback: the archived iana.org pages (../shared/data/web/iana.warc.gz)
replayed by an HTTP server on 127.0.0.1, with a robots.txt that disallows part of it and sets a Crawl-delay, a slow
page, a huge page, a binary file, a 404, a redirect loop, tracking-parameter copies of a page and a Latin-1 page.
Every check reads the server's own access log or the crawl's files."""
import json, signal, subprocess, time
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from conftest import DCR, ROOT
from dcresearch.crawl import ReplaySite, page_key

CRAWL_DELAY = 0.3
HTML = [('Content-Type', 'text/html; charset=utf-8')]


def dcr(*args, **kw):
    return subprocess.run([DCR, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=600, **kw)


def _slow(path):
    time.sleep(1.0)
    return 200, HTML, b'<html><body><p>A slow page that took its time to answer the crawler.</p></body></html>'


@pytest.fixture()
def site(shared):
    hub = ''.join(f'<a href="{h}">{h}</a> ' for h in ['/', '/?utm_source=news&utm_medium=email', '/?fbclid=abc#top', '/numbers/',
                  '/domains/reserved', '/slow', '/huge', '/file.bin', '/missing', '/loop/a', '/latin1', '/about'])
    extra = {'/robots.txt': (200, [('Content-Type', 'text/plain')], f'User-agent: *\nDisallow: /domains/\nCrawl-delay: {CRAWL_DELAY}\n'.encode()),
             '/hub': (200, HTML, f'<html><body><h1>Hub</h1>{hub}</body></html>'.encode()),
             '/slow': _slow,
             '/huge': (200, HTML, b'<html><body>' + b'<p>big page</p>' * 500_000 + b'</body></html>'),  # 7.5 MB
             '/file.bin': (200, [('Content-Type', 'application/octet-stream')], bytes(range(256)) * 64),
             '/loop/a': (302, [('Location', '/loop/b')], b''), '/loop/b': (302, [('Location', '/loop/a')], b''),
             '/latin1': (200, [('Content-Type', 'text/html; charset=iso-8859-1')],
                         '<html><body><p>Café crème à la française, déjà vu, naïve façade.</p></body></html>'.encode('latin-1'))}
    s = ReplaySite(shared/'web'/'iana.warc.gz', extra).start()
    yield s
    s.stop()


def fates(out: Path, site) -> dict:
    return {l['url'].replace(site.url, '/'): l for l in map(json.loads, (out/'crawl_log.jsonl').read_text().splitlines())}


def responses(warc: Path) -> list[str]:
    with open(warc, 'rb') as f:
        return [r.rec_headers.get_header('WARC-Target-URI') for r in ArchiveIterator(f) if r.rec_type == 'response']


def responses_upto_tear(warc: Path) -> list[str]:
    "Response URIs of a WARC whose last record may be torn (a killed writer)."
    urls = []
    try:
        with open(warc, 'rb') as f:
            for r in ArchiveIterator(f):
                if r.rec_type == 'response': urls.append(r.rec_headers.get_header('WARC-Target-URI'))
                r.content_stream().read()
    except Exception: urls = urls[:-1]  # the record being written when the kill came
    return urls


def test_contract_polite_crawl_then_ingest(site, tmp_path):
    out = tmp_path/'crawl'
    r = dcr('crawl', site.url + 'hub', '--out', out, '--max-pages', 50, '--delay', 0.2)
    assert r.returncode == 0, r.stderr[-3000:]
    log = fates(out, site)
    assert all(set(l) >= {'url', 'status', 'fate'} for l in log.values())
    paths = [p for _, p, _ in site.log]
    assert not any(p.startswith('/domains/') for p in paths), 'requested a URL robots.txt disallows'
    assert log['/domains/reserved']['fate'] == 'robots'
    times = [t for t, _, _ in site.log]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= CRAWL_DELAY - 0.02, min(gaps)  # Crawl-delay (0.3) over --delay (0.2), between any two requests
    pages = [p for p in paths if p != '/robots.txt' and not p.startswith('/loop/')]  # a redirect loop's hops repeat
    assert len(pages) == len(set(pages)), 'a URL was requested twice'
    assert 2 < sum(p.startswith('/loop/') for p in paths) <= 6  # followed up to the redirect limit (5), then given up
    assert sum(page_key(site.url + p.lstrip('/')) == page_key(site.url) for p in pages) == 1  # tracking copies: one fetch
    assert {log[p]['fate'] for p in ('/?utm_source=news&utm_medium=email', '/?fbclid=abc#top') if p in log} <= {'duplicate'}
    assert log['/huge']['fate'] == 'too_large' and log['/file.bin']['fate'] == 'bad_type'
    assert log['/missing']['fate'] == 'error:404' and log['/loop/a']['fate'] == 'error:redirects'
    assert log['/slow']['fate'] == 'fetched' and log['/latin1']['fate'] == 'fetched'
    fetched = [u for u, l in log.items() if l['fate'] == 'fetched']
    warc = responses(out/'crawl.warc.gz')
    assert len(warc) == len(fetched) <= 50
    from dcresearch.pipeline import load_ledger
    from dcresearch.lake import read_delta_table
    summary = load_ledger(out/'stage').check().summary()
    assert summary['n_in'] == len(warc)  # every fetched page is counted by the ingest
    texts = read_delta_table(out/'stage'/'records').column('text').to_pylist()
    assert any('Café crème' in t for t in texts)  # the Latin-1 page decoded by its charset
    from dcresearch.reports.runner import run_report
    rep = run_report('collection', dict(crawl=str(out)), out_dir=tmp_path/'reports', progress=False)
    assert rep.ok, rep.error
    page = rep.html.read_text()
    assert 'pages fetched' in page and 'too_large' in page and 'Politeness' in page and 'text records' in page
    assert page.count('<img') >= 3 and 'No crawl given' not in page


def test_a_killed_crawl_resumes_without_refetching(site, tmp_path):
    out = tmp_path/'crawl'
    p = subprocess.Popen([DCR, 'crawl', site.url + 'hub', '--out', str(out), '--max-pages', '24', '--delay', '0.05', '--no-ingest'],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and sum(p != '/robots.txt' for _, p, _ in site.log) < 10: time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait(10)
    first = [p for _, p, _ in site.log if p != '/robots.txt']
    assert 8 <= len(first) < 24
    before = {page_key(u) for u in responses_upto_tear(out/'crawl.warc.gz')}  # fetched and written before the kill
    r = dcr('crawl', site.url + 'hub', '--out', out, '--max-pages', 24, '--delay', 0.05)
    assert r.returncode == 0 and '(resumed)' in r.stdout, r.stderr[-3000:]
    second = [p for _, p, _ in site.log if p != '/robots.txt'][len(first):]
    assert second, 'the resumed crawl fetched nothing'
    assert not {page_key(site.url + p.lstrip('/')) for p in second} & before, 'a page fetched before the kill was fetched again'
    warc = responses(out/'crawl.warc.gz')
    assert len({page_key(u) for u in warc}) == len(warc), 'a page is twice in the WARC'
    assert json.loads((out/'crawl.json').read_text())['finished']


def test_two_crawls_into_one_folder(site, tmp_path):
    "The second writer is refused at once (exit 2, naming the holder), not interleaved with the first."
    out = tmp_path/'crawl'
    first = subprocess.Popen([DCR, 'crawl', site.url + 'hub', '--out', str(out), '--max-pages', '20', '--no-ingest'], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (out/'crawl.json').is_file(): time.sleep(0.05)
        second = dcr('crawl', site.url + 'hub', '--out', out, '--no-ingest')
        assert second.returncode == 2 and 'locked by another writer' in second.stderr, second.stderr[-2000:]
    finally:
        first.kill(); first.wait(10)


def test_feed_recrawl_fetches_only_new_items(site, tmp_path):
    def feed(n):
        items = ''.join(f'<item><title>n{i}</title><link>{site.url}news/{i}</link></item>' for i in range(1, n + 1))
        return 200, [('Content-Type', 'application/rss+xml')], f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()
    for i in range(1, 4):
        site.extra[f'/news/{i}'] = (200, HTML, f'<html><body><p>News item number {i} with some words in it.</p></body></html>'.encode())
    site.extra['/feed.xml'] = feed(2)
    out = tmp_path/'feed'
    args = ('crawl', site.url + 'feed.xml', '--out', out, '--delay', 0, '--max-depth', 1, '--no-ingest')
    assert dcr(*args).returncode == 0
    site.extra['/feed.xml'] = feed(3)
    n = len(site.log)
    assert dcr(*args).returncode == 0
    again = [p for _, p, _ in site.log[n:] if p != '/robots.txt']
    assert sorted(again) == ['/feed.xml', '/news/3'], again  # the feed, then only its new item
    assert sorted(u.rsplit('/', 1)[-1] for u in responses(out/'crawl.warc.gz')) == ['1', '2', '3']
