"""Package build driven by settings.ini (nbdev 2 convention).

Report notebooks live in nbs/reports and the sample corpus text in nbs/data (the sources); `build_py` copies them into
the package as dcresearch/reports/notebooks/ and dcresearch/data/, so `dcr report` and `dcr sample` work after a plain
pip install.
"""
import shutil
from configparser import ConfigParser
from pathlib import Path

import setuptools
from setuptools.command.build_py import build_py

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']
here = Path(__file__).parent


class build_py_with_reports(build_py):
    "Copy the papermill report notebooks (and recipes) into the built package."
    def run(self):
        super().run()
        pkg = Path(self.build_lib) / cfg['lib_name']
        for src, dst, globs in [(here / 'nbs' / 'reports', pkg / 'reports' / 'notebooks', ('*.ipynb', '*.yaml')),
                                (here / 'nbs' / 'data', pkg / 'data', ('*.json', '*.py'))]:
            dst.mkdir(parents=True, exist_ok=True)
            for f in sorted(p for g in globs for p in src.glob(g)):
                shutil.copy(f, dst / f.name)


setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=(here / 'README.md').read_text(encoding='utf-8') if (here / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    author=cfg['author'],
    license='Apache-2.0',
    python_requires=f">={cfg['min_python']}",
    packages=setuptools.find_packages(include=[cfg['lib_name'], f"{cfg['lib_name']}.*"]),
    include_package_data=True,
    install_requires=cfg.get('requirements', '').split(),
    extras_require={'dev': cfg.get('dev_requirements', '').split()},
    entry_points={'console_scripts': cfg.get('console_scripts', '').split(),
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    cmdclass={'build_py': build_py_with_reports},
    zip_safe=False,
)
