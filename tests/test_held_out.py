"""The validation crops of objects cut out on transparency (pretrained/held_out_crops.py)."""
import importlib.util
from pathlib import Path

import numpy as np

_SPEC = importlib.util.spec_from_file_location(
    "held_out_crops", Path(__file__).parents[1] / "pretrained" / "held_out_crops.py")
held_out_crops = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(held_out_crops)


def test_an_objects_crop_lies_inside_its_opaque_area():
    rng = np.random.default_rng(0)
    pixels = rng.random((100, 140, 3), dtype=np.float32)
    yy, xx = np.mgrid[:100, :140]
    alpha = (((yy - 55) ** 2 + (xx - 80) ** 2) < 40 ** 2).astype(np.float32)   # a disc, off centre
    alpha[55, 80] = 0.5                                                          # one half-clear pixel
    crop = held_out_crops.opaque_crop(pixels, alpha, size=24)
    hits = [(t, l) for t in range(100 - 23) for l in range(140 - 23)
            if np.array_equal(pixels[t:t + 24, l:l + 24], crop)]
    assert crop.shape == (24, 24, 3) and len(hits) == 1
    top, left = hits[0]
    assert (alpha[top:top + 24, left:left + 24] == 1).all()
    assert held_out_crops.opaque_crop(pixels, alpha, size=60) is None      # no opaque square that large
