"""Denoising: ``A = I``, additive white Gaussian noise of level sigma."""
from __future__ import annotations

from dataclasses import dataclass, field


from .base import Baseline, Condition, SolverDefaults, Task, option, parse_sigma


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

    def physics(self, shape, companion):
        from ..physics import Denoising
        return Denoising()

    @classmethod
    def speed_conditions(cls):
        return [c for c in cls.conditions() if c.name == "noise25"]

    @classmethod
    def conditions(cls):
        return [Condition(f"noise{s}", cls(sigma=s)) for s in (15, 25, 50)]

    def simulate(self, clean, rng, companion=""):
        return clean + rng.normal(0, self.sigma / 255, clean.shape), None

    def baselines(self):
        from .. import baselines as b
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


def denoise(image, *, sigma: float | None = None, prior="photo", steps: int | None = None, mode: str = "joint",
            device="cpu", tile: int | None = None, precision: str = "auto", channel_axis: int = -1,
            progress=None, samples: int = 1, seed: int = 0, return_std: bool = False):
    """Remove additive white Gaussian noise.

    Parameters
    ----------
    image : array or tensor
        The noisy image: ``(H, W)`` or with 1 or 3 channels on ``channel_axis``, at least one
        pixel; uint8 (0..255), uint16 (0..65535) or finite floats in [0, 1]. Anything else raises
        a ``ValueError`` that says what to do: floats outside [-0.01, 1.01] (divide 8-bit values by
        255, 16-bit ones by 65535), NaN or infinite values, another dtype (int32, bool, ...), an
        empty array.
    sigma : float, optional
        Noise standard deviation in 0..255 units; estimated when omitted.
    prior : str or VAE
        ``"photo"``, ``"digits"``, a checkpoint path or a loaded model.
    steps : int, optional
        Solver steps per tile (default 0: the encoder alone).
    mode : {"joint", "latent"}
        Joint MAP over image and code, or over the code alone.
    device : str or torch.device
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; a GPU this machine lacks raises
        :class:`~restore.devices.DeviceError` (a ``ValueError``) before anything is loaded.
    tile : int, optional
        Tile size in output pixels (default the prior's).
    precision : {"auto", "fp32", "bf16"}
        The networks' arithmetic; ``auto`` is bf16 where the hardware has units for it
        (a CUDA GPU, a CPU with AMX or AVX512-BF16), else fp32.
    channel_axis : int
        The colour axis of a 3-D image.
    progress : callable, optional
        ``progress(done, total)`` in solver steps.
    samples : int
        1: the solver's estimate. More: the mean of that many posterior samples around it.
    seed : int
        The samples' random numbers: the same seed gives the same output.
    return_std : bool
        Also return the samples' standard deviation per pixel, ``(H, W)`` in [0, 1] units:
        where the restoration is unsure (needs ``samples`` >= 2).

    Returns
    -------
    The restored image, of the input's type, layout and dtype (and the standard deviation).
    """
    from ..pipeline import restore, settings_for
    return restore(image, Denoise(sigma=sigma), channel_axis=channel_axis, progress=progress,
                   settings=settings_for(prior=prior, steps=steps, mode=mode, device=device, tile=tile,
                                       precision=precision, samples=samples, seed=seed),
                                       return_std=return_std)


def estimate_noise(image, *, channel_axis: int = -1) -> float:
    """Gaussian noise standard deviation of ``image`` in 0..255 units (see :func:`restore.noise.estimate_noise`)."""
    from ..noise import estimate_noise as estimate
    from ..pipeline import to_pixels
    return estimate(to_pixels(image, channel_axis)[0])
