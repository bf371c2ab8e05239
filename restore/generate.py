"""What a VAE gives beyond restoration: samples from the prior and walks through its latent space."""
from __future__ import annotations

import numpy as np
import torch

from .data import to_channels
from .images import MAX_PIXELS
from .model import VAE, DigitsVAE
from .tasks import OptionError
from .tasks.base import check_seed

#: The largest side of a sample: four of the photo priors' tiles (a sample is decoded whole).
MAX_SIDE = 1024
#: Pixels decoded at once: the decoder's features of each pixel are held in memory together.
DECODE_PIXELS = 2**20


#: The widest spread of the codes drawn: far beyond the prior's own (1), the decoded pixels only
#: saturate.
MAX_TEMPERATURE = 10.0


@torch.no_grad()
def sample(vae: VAE, n: int, *, size: int | None = None, temperature: float = 1.0,
           seed: int = 0) -> np.ndarray:
    """``n`` images ``D(z)``, ``z ~ N(0, temperature^2 I)``, as ``(n, H, W, C)`` floats in [0, 1].

    ``size`` is the side of each image (default the prior's tile size; the
    digits prior always draws 28x28). Arguments the prior cannot take are refused before
    any work (an :class:`OptionError` naming the argument).
    """
    side = vae.tile_size if size is None else size
    if isinstance(vae, DigitsVAE):
        if side != vae.config.image_size:
            raise OptionError("size", f"must be {vae.config.image_size} for the digits prior (its image size), "
                              f"got {side}; leave it out")
    elif not vae.size_multiple <= side <= MAX_SIDE or side % vae.size_multiple:
        raise OptionError("size", f"must be a multiple of {vae.size_multiple} from {vae.size_multiple} to "
                          f"{MAX_SIDE}, got {side}")
    if not 0 < temperature <= MAX_TEMPERATURE:
        raise OptionError("temperature", f"must be above 0 and at most {MAX_TEMPERATURE:g} (1 draws from the "
                                         f"prior itself), got {temperature}")
    if n < 1:
        raise OptionError("n", f"must be at least 1, got {n}")
    check_seed(seed)
    _check_pixels("n", n, side, side)
    device = next(vae.parameters()).device
    g = torch.Generator().manual_seed(seed)
    z = temperature * torch.randn((n, *vae.latent_shape(side, side)), generator=g)
    return _decode(vae, z.to(device), side * side)


def check_image_size(vae: VAE, height: int, width: int) -> None:
    """Refuse an image of ``height`` x ``width`` pixels that ``vae`` cannot encode (a ``ValueError``
    whose message begins "is <width>x<height> pixels" and says what the prior takes)."""
    if isinstance(vae, DigitsVAE):
        fixed = vae.config.image_size
        if (height, width) != (fixed, fixed):
            raise ValueError(f"is {width}x{height} pixels; the digits prior takes {fixed}x{fixed} images")
        return
    f = vae.size_multiple
    if min(height, width) < f or height % f or width % f:
        raise ValueError(f"is {width}x{height} pixels; the prior takes images of at least {f}x{f}, "
                         f"their sides multiples of {f}; crop or resize it")


@torch.no_grad()
def interpolate(vae: VAE, start: np.ndarray, end: np.ndarray, frames: int = 8) -> np.ndarray:
    """Decode ``frames`` codes on the line between the encoder means of two images.

    ``start`` and ``end`` are ``(H, W, C)`` floats in [0, 1] of one size, which the
    prior must accept (28x28 for digits, multiples of 4 for photos: :func:`check_image_size`).
    """
    for name, image in (("the first image", start), ("the second image", end)):
        try:
            check_image_size(vae, *image.shape[:2])
        except ValueError as e:
            raise ValueError(f"{name} {e}") from None
    if start.shape[:2] != end.shape[:2]:
        raise ValueError(f"the two images differ in size: {start.shape[:2]} and {end.shape[:2]}")
    if frames < 2:
        raise OptionError("frames", f"must be at least 2, got {frames}")
    _check_pixels("frames", frames, *start.shape[:2])
    device = next(vae.parameters()).device
    pair = np.stack([to_channels(start, vae.channels), to_channels(end, vae.channels)])
    mu, _ = vae.encode(torch.from_numpy(pair).permute(0, 3, 1, 2).to(device))
    t = torch.linspace(0, 1, frames, device=device).view(-1, *([1] * (mu.dim() - 1)))
    walk = _decode(vae, (1 - t) * mu[:1] + t * mu[1:], start.shape[0] * start.shape[1])
    if start.shape[2] == end.shape[2] == 1 and walk.shape[3] == 3:
        # Two grey images walk in grey: a colour prior's decoder tints what lies between.
        walk = np.stack([to_channels(frame, 1) for frame in walk])
    return walk


def _check_pixels(name: str, count: int, height: int, width: int) -> None:
    """Refuse ``count`` images of ``height`` x ``width`` whose grid would pass :data:`MAX_PIXELS`."""
    if count * height * width > MAX_PIXELS:
        raise OptionError(name, f"{count} images of {width}x{height} make {count * height * width / 1e6:.0f} "
                          f"megapixels, over the limit of {MAX_PIXELS / 1e6:.0f}; ask for fewer or smaller ones")


def _decode(vae: VAE, z: torch.Tensor, pixels: int) -> np.ndarray:
    """``D(z)`` as :func:`_to_numpy` gives it, decoded a few codes at a time (``pixels`` each), so
    that many images need no more memory than one batch of them."""
    at_once = max(1, DECODE_PIXELS // pixels)
    return np.concatenate([_to_numpy(vae.decode(z[i:i + at_once])) for i in range(0, len(z), at_once)])


def grid(images: np.ndarray, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Tile ``(n, H, W, C)`` images into one ``(rows*H, columns*W, C)`` image with white gaps."""
    n, h, w, c = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    out = np.ones((rows * (h + gap) - gap, columns * (w + gap) - gap, c), np.float32)
    for i, im in enumerate(images):
        r, k = divmod(i, columns)
        out[r * (h + gap): r * (h + gap) + h, k * (w + gap): k * (w + gap) + w] = im
    return out


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
