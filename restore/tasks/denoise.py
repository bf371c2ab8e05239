"""Denoising: ``A = I``, white Gaussian noise of level sigma or a sensor's Poisson-Gaussian noise."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


from .api import api_function
from .base import Baseline, Condition, NoiseModel, SolverDefaults, Task, noise_field, option, parse_sigma


#: JPEG quality below which ``denoise`` points to ``dejpeg`` (blocks show at 8x8 from about here down).
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
    reference = "OpenCV NLM"

    sigma: float | None = field(default=None, metadata=option(
        "Noise standard deviation in 0..255 units, or 'auto' to estimate it per image.", parse=parse_sigma))
    noise: str = noise_field()

    def physics(self, shape, companion):
        from ..physics import Denoising
        return Denoising()

    def advice(self, path):
        """A heavily compressed JPEG's blocks are not Gaussian noise: point to ``dejpeg``."""
        from ..jpeg import Quantisation
        try:
            quality = Quantisation.from_file(path).quality
        except Exception:            # advice only: a file it cannot read is the reader's to report
            return None
        if quality >= HEAVY_JPEG:
            return None
        return (f"{path}: a JPEG of quality about {quality:.0f}; its block artefacts are not noise and denoise "
                f"leaves them: 'restore dejpeg {path.name}' removes them")

    @classmethod
    def speed_conditions(cls):
        return [c for c in cls.conditions() if c.name == "noise25"]

    @classmethod
    def conditions(cls):
        # A small sensor: 40 photo-electrons at white, read noise 0.02.
        return [Condition(f"noise{s}", cls(sigma=s)) for s in (15, 25, 50)] + [
            Condition("sensor40", cls(noise=f"poisson-gaussian:{1 / 40:.6g},{0.02 ** 2:.6g}"))]

    def simulate(self, clean, rng, companion=""):
        if self.sensor is not None:
            a, b = self.sensor
            return rng.poisson(np.clip(clean, 0, 1) / a) * a + rng.normal(0, b**0.5, clean.shape), None
        return clean + rng.normal(0, self.sigma / 255, clean.shape), None

    def baselines(self):
        from .. import baselines as b
        from ..noise import estimate_noise
        if self.sensor is not None:
            a, c = self.sensor
            return [Baseline("Anscombe + BM3D", "bm3d", lambda y, _: b.anscombe_bm3d(y, a, c)),
                    Baseline("BM3D (estimated sigma)", "bm3d", lambda y, _: b.bm3d(y, estimate_noise(y)))]
        s = self.sigma
        return [Baseline("BM3D", "bm3d", lambda y, _: b.bm3d(y, s)),
                Baseline("OpenCV NLM", None, lambda y, _: b.opencv_nlm(y, s)),
                Baseline("skimage TV", None, lambda y, _: b.skimage_tv(y, s)),
                Baseline("skimage wavelet", "pywt", lambda y, _: b.skimage_wavelet(y, s))]

    @classmethod
    def training_view(cls, x, rng):
        """Gaussian noise of random sigma (up to 50/255); one noise image for all channels of a
        gray crop, as a gray file replicated into colour has."""
        import torch
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        noise = float(rng.uniform(0, 50 / 255)) * torch.randn(x.shape, generator=g)
        gray = (x.amax(1) == x.amin(1)).flatten(1).all(1)
        noise[gray] = noise[gray][:, :1].expand(-1, x.shape[1], -1, -1)
        return (x + noise).clamp(0, 1)


denoise = api_function(Denoise, "Remove additive white Gaussian noise.")


def estimate_noise(image, *, channel_axis: int = -1) -> float:
    """Gaussian noise standard deviation of ``image`` in 0..255 units (see :func:`restore.noise.estimate_noise`)."""
    from ..noise import estimate_noise as estimate
    from ..pipeline import to_pixels
    return estimate(to_pixels(image, channel_axis)[0])
