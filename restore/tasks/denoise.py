"""Denoising: ``A = I``, white Gaussian noise of level sigma or a sensor's Poisson-Gaussian noise."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .api import api_function
from .base import NoiseModel, SolverDefaults, Task, noise_field, option, parse_sigma


#: JPEG quality below which ``denoise`` says it removes the blocks first and points to ``dejpeg`` (blocks
#: show at 8x8 from about here down).
HEAVY_JPEG = 50


@dataclass(frozen=True)
class Denoise(NoiseModel, Task):
    name = "denoise"
    summary = "Remove noise: Gaussian of one level, or a camera's (Poisson-Gaussian, --noise)."
    # With the photo prior the encoder's estimate is the best denoiser: refining the MAP fits
    # the noise (held-out crops).
    # The output's decode in bf16 too: 12 held-out crops at sigma 15 / 25 / 50 scored +0.013 /
    # +0.009 / +0.008 dB against float32 (rounding, not a gain) in 0.55 of the time.
    defaults = SolverDefaults(steps=0, float32_output=False)
    estimates_sigma = True
    observes_image = True
    filters_whole = True

    sigma: float | None = field(default=None, metadata=option(
        "Noise standard deviation in 0..255 units, or 'auto' to estimate it per image.", parse=parse_sigma))
    noise: str = noise_field()
    quantisation: Any = field(default=None, repr=False)     # a JPEG file's (NoiseModel.quantisation)

    def physics(self, shape, companion):
        from ..physics import Denoising
        return Denoising()

    def advice(self, path):
        """A heavily compressed JPEG's blocks are not Gaussian noise: they are removed first, as
        ``dejpeg`` does, which is all such a file needs where it holds no noise (held-out crops at
        quality 10 / 30: 28.79 / 32.51 dB denoised, 28.79 / 32.49 by dejpeg alone)."""
        from ..jpeg import Quantisation
        try:
            quality = Quantisation.from_file(path).quality
        except Exception:            # not a JPEG, or tables it cannot use (JPEGSource.advice says so)
            return super().advice(path)
        if quality >= HEAVY_JPEG:
            return None
        return (f"{path}: a JPEG of quality about {quality:.0f}: its blocks are removed first, as 'restore dejpeg "
                f"{path.name}' does, which is all it needs if it holds no noise (and faster)")



denoise = api_function(Denoise, "Remove noise: white Gaussian of one level, or a camera's Poisson-Gaussian (``noise``).")


def estimate_noise(image, *, channel_axis: int = -1, quantisation=None) -> float:
    """Gaussian noise standard deviation of ``image`` in 0..255 units (see :func:`restore.noise.estimate_noise`);
    with ``quantisation`` (the JPEG file's, ``restore.jpeg.Quantisation.from_file(path)``), before the file's
    rounding."""
    from ..jpeg import Quantisation
    from ..noise import estimate_noise as estimate
    from ..pipeline import to_pixels
    if quantisation is not None and not isinstance(quantisation, Quantisation):
        raise TypeError(f"quantisation must be the JPEG file's, restore.jpeg.Quantisation.from_file(path), "
                        f"got {quantisation!r}")
    return estimate(to_pixels(image, channel_axis)[0], quantisation=quantisation)
