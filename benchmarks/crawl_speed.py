"""Crawl speed against the loopback replay of ../shared/data/web/iana.warc.gz.

    .venv/bin/python benchmarks/crawl_speed.py [--rounds 3] [--polite-delay 0.2]

- politeness off (`--ignore-robots --delay 0 --no-autothrottle --concurrency 16 --per-host 16`): pages/s fetched by `dcr crawl`
  (Scrapy, WARC writing, crawl log) and pages/s of the whole command with the ingest (trafilatura) into a stage;
  requests/s against a plain httpx loop (16 concurrent connections, asyncio) requesting the same URLs the crawl
  requested and writing nothing: the crawler's overhead. The site: --synthetic generated pages (the sample corpus's
  texts, each linking to the next five) served beside the replayed iana.org pages, crawled from /s/0.
- politeness on (`--delay D`, robots.txt without a Crawl-delay), from the replayed iana.org home page: requests per
  second to the host against 1/D, and the smallest gap between two requests in the server's access log.
The replay server is `dcresearch.crawl.ReplaySite` in this process; the crawls run as `dcr crawl` subprocesses.
"""
import argparse, asyncio, json, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent/'shared'/'data'
DCR = str(ROOT/'.venv'/'bin'/'dcr')
sys.path.insert(0, str(ROOT))
from dcresearch.crawl import ReplaySite


def synthetic_pages(n: int) -> dict:
    "n HTML pages of the sample corpus's text, /s/0 ... /s/{n-1}, each linking to the next five; / links to /s/0."
    from dcresearch.sample import generate_documents
    docs = [d['text'] for d in generate_documents(n)]
    html = [('Content-Type', 'text/html; charset=utf-8')]
    pages = {f'/s/{i}': (200, html, ('<html><head><title>page %d</title></head><body><article><p>%s</p></article>%s</body></html>' % (
        i, docs[i].replace('<', ' '), ''.join(f'<a href="/s/{j % n}">next</a> ' for j in range(i + 1, i + 6)))).encode()) for i in range(n)}
    return pages


def crawl(site, seed: str, out: Path, *args) -> tuple[float, dict]:
    t0 = time.perf_counter()
    subprocess.run([DCR, 'crawl', site.url + seed, '--out', str(out), '--quiet', *map(str, args)], check=True, cwd=ROOT)
    return time.perf_counter() - t0, json.loads((out/'crawl.json').read_text())


async def httpx_loop(urls: list[str], concurrency: int) -> float:
    import httpx
    queue = list(urls)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency), timeout=30) as client:
        async def worker():
            while queue:
                (await client.get(queue.pop())).read()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rounds', type=int, default=3, help='repetitions of the impolite crawl (best is reported)')
    ap.add_argument('--polite-delay', type=float, default=0.2, help='--delay of the polite crawl')
    ap.add_argument('--max-pages', type=int, default=2000)
    ap.add_argument('--synthetic', type=int, default=2000, help='pages of generated text added to the replayed site (linked from /)')
    a = ap.parse_args()
    robots = (200, [('Content-Type', 'text/plain')], b'User-agent: *\nDisallow:\n')
    site = ReplaySite(DATA/'web'/'iana.warc.gz', {'/robots.txt': robots, **synthetic_pages(a.synthetic)}).start()
    tmp = Path(tempfile.mkdtemp())
    best = None
    for r in range(a.rounds):
        out = tmp/f'fast{r}'
        n0 = len(site.log)
        secs_crawl, m = crawl(site, 's/0', out, '--ignore-robots', '--delay', 0, '--no-autothrottle', '--concurrency', 16, '--per-host', 16,
                              '--max-pages', a.max_pages, '--max-depth', 10_000, '--no-ingest')
        requests = len(site.log) - n0
        t0 = time.perf_counter()
        subprocess.run([DCR, 'ingest', str(out/'crawl.warc.gz'), '--out', str(out/'stage'), '--quiet'], check=True, cwd=ROOT)
        secs_ingest = time.perf_counter() - t0
        requested = [json.loads(l)['url'] for l in (out/'frontier.jsonl').read_text().splitlines()]
        secs_httpx = asyncio.run(httpx_loop(requested, 16))
        row = dict(part='impolite', pages=m['fetched'], requests=requests, crawl_command_s=round(secs_crawl, 2),
                   crawl_inside_s=m['seconds'], pages_per_s=round(m['fetched'] / m['seconds'], 1),
                   requests_per_s=round(requests / m['seconds'], 1),
                   pages_per_s_with_ingest=round(m['fetched'] / (secs_crawl + secs_ingest), 1),
                   httpx_requests_per_s=round(len(requested) / secs_httpx, 1))
        if best is None or row['pages_per_s'] > best['pages_per_s']: best = row
        print(json.dumps(row), flush=True)
    print(json.dumps(dict(best=best, crawler_vs_httpx=round(best['requests_per_s'] / best['httpx_requests_per_s'], 2))), flush=True)
    n0 = len(site.log)
    secs, m = crawl(site, '', tmp/'polite', '--delay', a.polite_delay, '--max-pages', 30, '--no-ingest')
    times = [t for t, p, _ in site.log[n0:]]
    gaps = [b - a_ for a_, b in zip(times, times[1:])]
    print(json.dumps(dict(part='polite', delay=a.polite_delay, requests=len(times),
                          requests_per_s=round((len(times) - 1) / (times[-1] - times[0]), 2), target_per_s=round(1 / a.polite_delay, 2),
                          min_gap_s=round(min(gaps), 3), median_gap_s=round(sorted(gaps)[len(gaps) // 2], 3))), flush=True)
    site.stop()


if __name__ == '__main__':
    main()
