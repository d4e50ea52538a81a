"""Shape of the library notebooks and package: export cells, lines per export cell, demos, longest function, widest signature.

    .venv/bin/python scripts/nb_metrics.py            # table per notebook, then the package's longest function/widest signature

An export cell "has a demo" when a code cell that is not exported follows it before the next export cell.
"""
import ast, json, statistics, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def cells(nb: Path) -> list[tuple[str, list[str]]]:
    "(kind, source lines) per cell: kind 'export', 'code' or 'markdown'."
    out = []
    for c in json.loads(nb.read_text())['cells']:
        src = ''.join(c['source']).splitlines()
        if c['cell_type'] != 'code': out.append(('markdown', src)); continue
        exported = any(l.strip().startswith(('#| export', '#|export', '#| exporti')) for l in src[:3])
        out.append(('export' if exported else 'code', src))
    return out

def notebook_shape(nb: Path) -> dict:
    cs = cells(nb)
    sizes, demos = [], 0
    for i, (kind, src) in enumerate(cs):
        if kind != 'export': continue
        sizes.append(sum(1 for l in src if l.strip() and not l.strip().startswith('#|')))
        nxt = next((k for k, _ in cs[i+1:] if k != 'markdown'), None)
        demos += nxt == 'code'
    return dict(notebook=nb.name, export_cells=len(sizes), median_lines=statistics.median(sizes) if sizes else 0,
                max_lines=max(sizes, default=0), demo_share=round(demos / len(sizes), 2) if sizes else 0)

def functions(lib: Path):
    for py in sorted(lib.rglob('*.py')):
        if py.name == '_modidx.py': continue
        for node in ast.walk(ast.parse(py.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                n_params = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) - int(bool(a.args) and a.args[0].arg in ('self', 'cls'))
                yield f'{py.relative_to(lib.parent)}:{node.name}', node.end_lineno - node.lineno + 1, n_params

if __name__ == '__main__':
    rows = [notebook_shape(nb) for nb in sorted((ROOT/'nbs').rglob('[0-9]*.ipynb'))]
    print(f"{'notebook':34} {'export':>6} {'median':>6} {'max':>5} {'demo':>5}")
    for r in rows: print(f"{r['notebook']:34} {r['export_cells']:6} {r['median_lines']:6} {r['max_lines']:5} {r['demo_share']:5.0%}")
    fs = list(functions(ROOT/'dcresearch'))
    longest, widest = max(fs, key=lambda f: f[1]), max(fs, key=lambda f: f[2])
    print(f'longest function: {longest[0]} ({longest[1]} lines); widest signature: {widest[0]} ({widest[2]} parameters)')
    for name, n, p in sorted(fs, key=lambda f: -f[1])[:5]: print(f'  {n:4} lines  {name}')
    for name, n, p in sorted(fs, key=lambda f: -f[2])[:5]: print(f'  {p:4} params {name}')
