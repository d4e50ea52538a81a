"""Authoring helper: convert a jupytext percent script to a clean notebook, or back.

    .venv/bin/python scripts/nb.py to-ipynb /tmp/x.py nbs/00_core.ipynb
    .venv/bin/python scripts/nb.py to-py nbs/00_core.ipynb /tmp/x.py

The notebook in nbs/ stays the source; this only saves typing JSON by hand.
"""
import sys

import jupytext

cmd, src, dst = sys.argv[1:4]
nb = jupytext.read(src)
if cmd == 'to-ipynb':
    nb.metadata = {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}
    jupytext.write(nb, dst, fmt='ipynb')
else:
    jupytext.write(nb, dst, fmt='py:percent')
