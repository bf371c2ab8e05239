"""Denoising: ``A = I``, additive white Gaussian noise of level sigma."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


from .api import api_function
from .base import Baseline, Condition, OptionError, SolverDefaults, Task, option, parse_sigma


def _estimated(pixels):
    from ..noise import estimate_noise
    return estimate_noise(pixels)


def parse_noise(text: str) -> tuple[str, tuple[float, float] | None]:
    """``--noise``: ``("gaussian" | "poisson-gaussian" | "auto", (A, B) or None)``."""
    kind, _, args = text.strip().lower().partition(":")
    if kind in ("gaussian", "auto") and not args:
        return kind, None
    if kind == "poisson-gaussian":
        if not args:
            return kind, None
        try:
            a, b = (float(v) for v in args.split(","))
        except ValueError:
            a = b = -1.0
        if 0 <= a <= 1 and 0 <= b <= 1 and a + b > 0:
            return kind, (a, b)
    raise OptionError("noise", f"{text!r}: give gaussian, poisson-gaussian, poisson-gaussian:A,B "
                               "(A and B in [0, 1], not both 0) or auto")


def signal_dependent(a: float, b: float) -> bool:
    """Whether noise of variance ``a x + b`` is a sensor's rather than one level: its shot noise at
    mid-grey is at least half its floor, and not negligible (a standard deviation of 4 levels at mid-grey)."""
    return a * 0.5 >= 0.5 * b and a * 0.5 >= (4 / 255) ** 2


#: JPEG quality below which ``denoise`` points to ``dejpeg`` (blocks show at 8x8 from about here down).
HEAVY_JPEG = 50


@dataclass(frozen=True)
class Denoise(Task):
    name = "denoise"
    summary = "Remove Gaussian noise."
    # With the photo prior the encoder's estimate is the best denoiser: refining the MAP fits
    # the noise (held-out crops).
    # The output's decode in bf16 too: 12 held-out crops at sigma 15 / 25 / 50 scored +0.013 /
    # +0.009 / +0.008 dB against float32 (rounding, not a gain) in 0.55 of the time.
    defaults = SolverDefaults(steps=0, float32_output=False)
    estimates_sigma = True
    reference = "OpenCV NLM"

    sigma: float | None = field(default=None, metadata=option(
        "Noise standard deviation in 0..255 units, or 'auto' to estimate it per image.", parse=parse_sigma))
    noise: str = field(default="gaussian", metadata=option(
        "Noise model: gaussian (one sigma), poisson-gaussian[:A,B] (a sensor's: variance A*x + B in [0, 1] "
        "units, estimated per image when not given) or auto (the model the estimate fits).", parse=lambda t: t))

    def __post_init__(self):
        super().__post_init__()
        parse_noise(self.noise)

    def resolve(self, pixels, companion=None):
        """The noise made definite: sigma estimated for Gaussian noise, ``A, B`` for a sensor's."""
        from dataclasses import replace

        from ..noise import estimate_poisson_gaussian
        kind, params = parse_noise(self.noise)
        if kind == "gaussian":
            return self.with_noise_level(pixels)
        if params is None:
            a, b = estimate_poisson_gaussian(pixels)
            if kind == "auto" and not signal_dependent(a, b):
                return replace(self, noise="gaussian").with_noise_level(pixels)
            params = (a, b)
        return replace(self, noise=f"poisson-gaussian:{params[0]:.6g},{params[1]:.6g}")

    @property
    def sensor(self) -> tuple[float, float] | None:
        """``(A, B)`` of a resolved Poisson-Gaussian noise, else None."""
        kind, params = parse_noise(self.noise)
        return params if kind == "poisson-gaussian" else None

    def data_term(self):
        from ..fidelity import PoissonGaussian
        if self.sensor is not None:
            return PoissonGaussian(*self.sensor)
        return super().data_term()

    def describe_noise(self):
        if self.sensor is not None:
            return "Poisson-Gaussian noise A {:.4g}, B {:.4g}".format(*self.sensor)
        return super().describe_noise()

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
        if self.sensor is not None:
            a, c = self.sensor
            return [Baseline("Anscombe + BM3D", "bm3d", lambda y, _: b.anscombe_bm3d(y, a, c)),
                    Baseline("BM3D (estimated sigma)", "bm3d", lambda y, _: b.bm3d(y, _estimated(y)))]
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
