"Tests of dcresearch.augment.image on the real ImageNet sample photos and on corrupt files: determinism, labels, quarantine, the CLI function."
import json, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcresearch.augment.image import (ImageAugmenter, ImageError, augment_images, augmentation_grid, image_grid, image_ids,
                                      image_speed, label_from_name, list_images, read_image, to_uint8)

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / 'shared' / 'data' / 'images'


@pytest.fixture(scope='module')
def images(shared):
    paths = sorted(IMAGES.glob('*.JPEG'))
    assert len(paths) == 17
    return paths


def read_rows(path):
    return [json.loads(l) for l in open(path, encoding='utf-8')]


def test_real_images_read_and_labelled(images):
    "Every sample photo decodes to RGB uint8 and its label is the file name after the first underscore."
    for p in images:
        a = read_image(p)
        assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 and min(a.shape[:2]) >= 64
    labels = [label_from_name(p) for p in images]
    assert 'goldfish' in labels and 'horned_viper' in labels and 'fox_squirrel' in labels and None not in labels


def test_augment_images_real(images, tmp_path):
    "The CLI function writes n_per_image images per photo with ids, labels and paths that trace back; twice gives identical bytes."
    r1 = augment_images([str(IMAGES)], str(tmp_path / 'a'), n_per_image=2, seed=7, size=96, quiet=True)
    augment_images([str(IMAGES)], str(tmp_path / 'b'), n_per_image=2, seed=7, size=96, quiet=True)
    rows = read_rows(tmp_path / 'a' / 'augmented.jsonl')
    assert len(rows) == 34 == len(r1.rows) and r1.skipped == []
    assert (tmp_path / 'a' / 'skipped.jsonl').read_text() == ''
    assert len({r['id'] for r in rows}) == 34
    for r in rows:
        src = Path(r['source_path'])
        assert r['source_id'] == src.stem and r['label'] == label_from_name(src)
        assert r['id'].startswith(r['source_id'] + ':')
        out = read_image(tmp_path / 'a' / r['path'])
        assert out.shape == (96, 96, 3)
        assert 'RandomResizedCrop' in r['params'] and abs(r['params']['Rotate']['angle']) <= 15
    assert (tmp_path / 'a' / 'augmented.jsonl').read_bytes() == (tmp_path / 'b' / 'augmented.jsonl').read_bytes()
    for f in sorted((tmp_path / 'a' / 'images').iterdir()):
        assert f.read_bytes() == (tmp_path / 'b' / 'images' / f.name).read_bytes()
    assert len(list((tmp_path / 'a' / 'images').iterdir())) == 34


def test_independent_of_order_and_seed_matters(images):
    "An image's augmentation depends on seed, id and k only: not on batch order; another seed gives other images."
    data = [(p.stem, read_image(p)) for p in images[:5]]
    aug = ImageAugmenter(size=64, seed=3, n_per_image=2)
    fwd = {r['id']: r['image'] for r in aug(data).rows}
    rev = {r['id']: r['image'] for r in aug(list(reversed(data))).rows}
    assert fwd.keys() == rev.keys() and all(np.array_equal(fwd[k], rev[k]) for k in fwd)
    other = {r['id']: r['image'] for r in ImageAugmenter(size=64, seed=4, n_per_image=2)(data).rows}
    assert sum(not np.array_equal(fwd[k], other[k]) for k in fwd) == len(fwd)
    # the two augmentations of one image differ
    assert not np.array_equal(fwd[f'{data[0][0]}:0'], fwd[f'{data[0][0]}:1'])


def test_normalised_output(images):
    "normalize=True gives ImageNet-normalised float32 (mean near 0) that un-normalises to plausible pixels."
    res = ImageAugmenter(size=128, n_per_image=1)([(p.stem, read_image(p)) for p in images])
    x = np.stack([r['image'] for r in res.rows])
    assert x.dtype == np.float32 and x.shape == (17, 128, 128, 3)
    assert abs(float(x.mean())) < 0.6 and 0.5 < float(x.std()) < 1.6
    assert to_uint8(x[0]).dtype == np.uint8


def test_pipeline_from_parameters():
    "The Compose holds exactly the transforms the parameters ask for, with their settings."
    pipe = ImageAugmenter(crop=0.5, rotate=30, hflip=0.25, vflip=0.1, color_jitter=0.3, size=100).pipeline()
    d = pipe.to_dict()['transform']['transforms']
    names = [t['__class_fullname__'] for t in d]
    assert names == ['Rotate', 'RandomResizedCrop', 'HorizontalFlip', 'VerticalFlip', 'ColorJitter', 'Normalize']
    assert tuple(d[0]['limit']) == (-30, 30) and tuple(d[1]['scale']) == (0.5, 1.0) and tuple(d[1]['size']) == (100, 100)
    assert d[2]['p'] == 0.25 and d[3]['p'] == 0.1 and tuple(d[4]['brightness']) == (0.7, 1.3)
    names = [type(t).__name__ for t in ImageAugmenter(crop=None, rotate=None, hflip=0, color_jitter=None, normalize=False, size=50).pipeline().transforms]
    assert names == ['Resize']
    assert ImageAugmenter().params() == dict(crop=0.8, rotate=15, hflip=0.5, vflip=0.0, color_jitter=0.2, size=224,
                                             normalize=True, n_per_image=2, seed=0)


def test_flip_rates_respected():
    "hflip and vflip fire at their own rates, independently."
    img = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    aug = ImageAugmenter(crop=None, rotate=None, color_jitter=None, size=None, normalize=False, hflip=0.5, vflip=0.2, n_per_image=1)
    ops = [r['op'] for r in aug([(i, img) for i in range(2000)]).rows]
    h = sum('HorizontalFlip' in o for o in ops) / 2000
    v = sum('VerticalFlip' in o for o in ops) / 2000
    both = sum('HorizontalFlip' in o and 'VerticalFlip' in o for o in ops) / 2000
    assert 0.45 < h < 0.55 and 0.16 < v < 0.24 and abs(both - h * v) < 0.03


def test_corrupt_files_quarantined(images, tmp_path):
    "Truncated JPEGs, text named .jpg, zero-byte, tiny, 16-bit and non-image files become skipped rows; good files still go through."
    d = tmp_path / 'in'; d.mkdir()
    shutil.copy(images[0], d / images[0].name)
    shutil.copy(images[1], d / 'n00000001_png_inside.jpg')   # wrong extension: decoded by content
    data = images[2].read_bytes()
    (d / 'n00000002_truncated.JPEG').write_bytes(data[:len(data) // 3])
    (d / 'n00000003_header_only.JPEG').write_bytes(data[:200])
    (d / 'n00000004_text.jpg').write_text('this is not a JPEG\n')
    (d / 'n00000005_empty.jpg').write_bytes(b'')
    Image.new('RGB', (4, 4)).save(d / 'n00000006_tiny.png')
    Image.new('I;16', (64, 64)).save(d / 'n00000007_deep.png')
    (d / 'README.md').write_text('# notes')
    (d / 'n00000008_random.png').write_bytes(np.random.default_rng(0).bytes(5000))
    res = augment_images([str(d)], str(tmp_path / 'out'), size=64, quiet=True)
    skipped = {r['source_id']: r for r in read_rows(tmp_path / 'out' / 'skipped.jsonl')}
    assert {k: v['reason'] for k, v in skipped.items()} == {
        'n00000002_truncated': 'image:unreadable', 'n00000003_header_only': 'image:unreadable',
        'n00000004_text': 'image:not_an_image', 'n00000005_empty': 'image:empty', 'n00000006_tiny': 'image:too_small',
        'n00000007_deep': 'image:unsupported_mode', 'README': 'image:not_an_image', 'n00000008_random': 'image:not_an_image'}
    assert all(Path(v['path']).parent == d for v in skipped.values())
    ok = {r['source_id'] for r in read_rows(tmp_path / 'out' / 'augmented.jsonl')}
    assert ok == {images[0].stem, 'n00000001_png_inside'}
    assert len(res.rows) == 4 and len(res.skipped) == 8


def test_single_file_glob_and_jpeg_output(images, tmp_path):
    "Files, globs and JPEG output work; missing inputs fail with the path."
    res = augment_images([str(images[0]), str(IMAGES / 'n02*')], str(tmp_path / 'o'), fmt='jpg', size=64, n_per_image=1, quiet=True)
    n02 = len(list(IMAGES.glob('n02*')))
    assert len(res.rows) == 1 + n02 and all(r['path'].endswith('.jpg') for r in res.rows)
    assert Image.open(tmp_path / 'o' / res.rows[0]['path']).format == 'JPEG'
    with pytest.raises(FileNotFoundError, match='nope.jpg'): augment_images(['nope.jpg'], str(tmp_path / 'x'), quiet=True)
    with pytest.raises(ValueError, match='fmt'): augment_images([str(images[0])], str(tmp_path / 'x'), fmt='gif', quiet=True)


def test_grid_of_real_images(images):
    "The grid has originals in the first column with class labels as titles."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig = augmentation_grid(str(IMAGES), ImageAugmenter(n_per_image=3, size=64), n_images=3)
    axes = fig.axes
    assert len(axes) == 12
    assert [axes[i].get_title() for i in (0, 4, 8)] == [label_from_name(p) for p in images[:3]]
    assert axes[1].get_title() == 'augmented 1'
    plt.close(fig)
    with pytest.raises(ValueError, match='originals'): image_grid([np.zeros((4, 4, 3), np.uint8)], [])


def test_image_speed_runs(images):
    "image_speed returns a positive images/s figure (the benchmark prints it; no timing is asserted)."
    assert image_speed(str(IMAGES), repeats=1, size=64, n_per_image=1) > 0


def test_import_does_not_touch_network():
    "Importing the module (and albumentations) makes no network call: the update check is disabled."
    code = ('import socket\n'
            'def boom(*a, **k): raise SystemExit("network call attempted")\n'
            'socket.socket.connect = boom; socket.create_connection = boom; socket.getaddrinfo = boom\n'
            'import warnings; warnings.simplefilter("error")\n'
            'import dcresearch.augment.image\n')
    env = {k: v for k, v in __import__('os').environ.items() if k != 'NO_ALBUMENTATIONS_UPDATE'}
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
