"""A small convolutional network that tells thin damage (scratches, dust specks, small spots) from
the thin structures photographs are full of (hair, foliage, railings, highlights).

It reads the image and the classical detector's two maps (:func:`restore.damage.thin_structure_strength`:
top-hat and black-hat responses over their local strength), so it starts from what the
morphology already sees and learns, from the shapes around each pixel, which of those
structures are painted over the photograph. It is trained on generated damage over the training
photographs (``pretrained/train_damage_detector.py``, ``restore.masks.old_photo_damage``) and
shipped as ``pretrained/damage.pt`` (model card in ``pretrained/README.md``).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

#: The image (3 channels, gray repeated) and the classical detector's bright and dark maps.
INPUT_CHANNELS = 5


@dataclass
class DetectorConfig:
    width: int = 24                                   # feature channels of every layer
    dilations: tuple[int, ...] = (1, 2, 4, 8, 4, 2, 1)   # residual layers; with the first 3x3, 47 px across

    @property
    def reach(self) -> int:
        """How many pixels away an input still moves an output."""
        return 1 + sum(self.dilations)


class DamageDetector(nn.Module):
    """Per-pixel log-odds that a pixel is painted-over damage, from :func:`detector_inputs`."""

    def __init__(self, config: DetectorConfig | None = None):
        super().__init__()
        self.config = config or DetectorConfig()
        width = self.config.width
        self.inputs = nn.Conv2d(INPUT_CHANNELS, width, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(width, width, 3, padding=d, dilation=d) for d in self.config.dilations)
        self.logits = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 5, H, W)`` inputs -> ``(N, H, W)`` log-odds."""
        h = F.relu(self.inputs(x))
        for conv in self.body:
            h = h + F.relu(conv(h))
        return self.logits(h)[:, 0]


def detector_inputs(pixels: np.ndarray, *, noise: float) -> np.ndarray:
    """The network's ``(5, H, W)`` inputs for ``pixels`` (``(H, W, C)`` floats in [0, 1], 1 or 3
    channels) with noise of ``noise`` (in [0, 1] units): the image in [-1, 1] and the log of the
    classical bright and dark maps."""
    from .damage import thin_structure_strength
    colour = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels
    bright, dark = thin_structure_strength(colour, noise=noise)
    return np.concatenate([colour.transpose(2, 0, 1) * 2 - 1,
                           np.log(bright + 1e-2)[None], np.log(dark + 1e-2)[None]]).astype(np.float32)


#: Rows of an image the network reads at once (plus its reach above and below): beside the 5 input
#: maps (20 bytes a pixel), its activations are held for one strip only, a few hundred MB for a
#: 50-megapixel scan.
STRIP = 512

#: The image axes ((H, W)) flipped in each of the views the network reads: damage looks the same
#: either way up (it is trained on all four), and the average of the four is surer than any one.
#: Measured on held-out crops with generated damage (never the benchmark's): at the threshold
#: shipped before, precision 0.917 -> 0.951 at the same recall.
FLIPS = ((), (1,), (0,), (0, 1))


def damage_log_odds(pixels: np.ndarray, *, noise: float = 0.0, detector: DamageDetector | None = None) -> np.ndarray:
    """The log-odds that each pixel of ``pixels`` (``(H, W, C)`` floats in [0, 1]) is damage, ``(H, W)``.

    The network reads the image as it is, mirrored, upside down and both (:data:`FLIPS`); its
    log-odds are averaged.
    It reads strips of :data:`STRIP` rows, each with the network's reach of rows around it, so
    the result is the same as reading the image whole.
    """
    detector = detector or load_detector()
    inputs = torch.from_numpy(detector_inputs(pixels, noise=noise))
    reach, h = detector.config.reach, pixels.shape[0]
    out = np.empty(pixels.shape[:2], np.float32)
    with torch.no_grad():
        for top in range(0, h, STRIP):
            lo, hi = max(0, top - reach), min(h, top + STRIP + reach)
            strip = inputs[None, :, lo:hi]
            # A strip flipped is the flipped image's strip: the reach of rows is on both sides.
            odds = sum(detector(strip.flip([a + 2 for a in axes]))[0].flip(list(axes)) for axes in FLIPS)
            out[top:top + STRIP] = (odds / len(FLIPS))[top - lo: top - lo + min(STRIP, h - top)].numpy()
    return out


def read_detector(path: str | os.PathLike) -> tuple[DamageDetector, dict]:
    """The detector a checkpoint describes (in eval mode) and the whole checkpoint (written by
    :func:`restore.model.save_checkpoint`, as the priors are)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("architecture") != "DamageDetector":
        raise ValueError(f"{path} is not a damage detector checkpoint")
    config = DetectorConfig(**{**state["config"], "dilations": tuple(state["config"]["dilations"])})
    with torch.random.fork_rng(devices=[]):      # its first weights, replaced next, leave the caller's sequence alone
        detector = DamageDetector(config)
    detector.load_state_dict(state["state_dict"])
    return detector.eval(), state


@functools.lru_cache(maxsize=1)
def load_detector() -> DamageDetector:
    """The shipped detector (``pretrained/damage.pt``), its SHA-256 checked, loaded once per process."""
    from .priors import PriorError, checked_file, pretrained_dir
    path = checked_file(pretrained_dir() / "damage.pt")
    try:
        return read_detector(path)[0]
    except Exception as e:
        raise PriorError(f"{path}: not a damage detector ({type(e).__name__}); reinstall restore") from None
