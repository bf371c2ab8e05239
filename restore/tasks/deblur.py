"""Deblurring: ``A`` is convolution with a known kernel, the image's borders reflected."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .api import api_function
from .base import NoiseModel, OptionError, SolverDefaults, Task, noise_field, option, parse_sigma

KERNEL_HELP = ("Blur kernel: gaussian:STD (pixels), motion:LENGTH,ANGLE (pixels, degrees; without ANGLE, "
               "horizontal), or an image file of the kernel (normalised to sum 1; an even side gets a zero row or "
               "column at the bottom or right); from Python also a 2-D array. Convolved, as "
               "scipy.ndimage.convolve does (OpenCV's filter2D correlates: flip a kernel used with it).")
#: Kernels wider than this are refused: the solver's tiles would be mostly margin.
MAX_KERNEL = 65


def parse_kernel(spec: str) -> np.ndarray:
    """The ``(kh, kw)`` float32 kernel a ``--kernel`` value names (see :data:`KERNEL_HELP`)."""
    from ..physics import gaussian_kernel, motion_kernel

    kind, _, args = spec.partition(":")
    try:
        if kind == "gaussian" and args:
            kernel = gaussian_kernel(_number(args, "STD"), max_side=MAX_KERNEL).numpy()
        elif kind == "motion" and args:
            length, comma, angle = args.partition(",")
            if comma and not angle.strip():
                raise ValueError("ANGLE must follow the comma (motion:LENGTH,ANGLE), or leave out the comma")
            kernel = motion_kernel(_number(length, "LENGTH"), _number(angle or "0", "ANGLE"),
                                   max_side=MAX_KERNEL).numpy()
        else:       # its size checked as the file has it, before an even side gains a row
            kernel = _centred(_within_limit(_kernel_file(Path(spec)), f"{spec}: "))
    except ValueError as e:
        raise OptionError("kernel", f"{spec}: {e}") from None
    return _within_limit(kernel, f"{spec}: ")


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None


def _within_limit(kernel: np.ndarray, given: str = "") -> np.ndarray:
    if max(kernel.shape) > MAX_KERNEL:
        raise OptionError("kernel", f"{given}{kernel.shape[1]}x{kernel.shape[0]} is over the limit of "
                                    f"{MAX_KERNEL}x{MAX_KERNEL} pixels; give a smaller kernel")
    return kernel


def kernel_array(kernel) -> np.ndarray:
    """A kernel given as an array, a tensor or nested sequences, as float64 numbers (booleans,
    text and objects are no weights: an ``OptionError``)."""
    given = np.asarray(kernel.detach().cpu() if hasattr(kernel, "detach") else kernel)
    if given.dtype.kind not in "iuf":
        raise OptionError("kernel", f"must hold numbers (its weights), got dtype {given.dtype}")
    return given.astype(np.float64)


def kernel_weights(kernel) -> np.ndarray:
    """A kernel given as an array (the Python function's ``kernel``): 2-D, finite, not negative,
    not all zero, at most :data:`MAX_KERNEL` on a side; normalised to sum 1, an even side given a
    zero row or column so that it has a centre pixel."""
    array = kernel_array(kernel)
    if array.ndim != 2 or not np.isfinite(array).all() or (array < 0).any() or array.sum() <= 0:
        raise OptionError("kernel", f"must be a 2-D array, finite, not negative and not all zero (or text: "
                                    f"gaussian:STD, motion:LENGTH,ANGLE, a file), got shape {array.shape}")
    return _centred(_within_limit(array))


def _centred(kernel: np.ndarray) -> np.ndarray:
    # Even sides get a zero row or column, so the kernel has a centre pixel.
    kernel = np.pad(kernel, ((0, 1 - kernel.shape[0] % 2), (0, 1 - kernel.shape[1] % 2)))
    return (kernel / kernel.sum()).astype(np.float32)


def _kernel_file(path: Path) -> np.ndarray:
    from ..images import IMAGE_SUFFIXES, ImageError, read_image
    if not path.is_file():
        looks_like_file = path.suffix.lower() in IMAGE_SUFFIXES or len(path.parts) > 1
        raise ValueError("no such file; check the path" if looks_like_file else
                         "not gaussian:STD, motion:LENGTH[,ANGLE] or an image file of a kernel")
    try:
        kernel = read_image(path).pixels.mean(axis=2)
    except ImageError as e:
        raise ValueError(str(e).partition(": ")[2]) from None
    if kernel.sum() <= 0:
        raise ValueError("the kernel image is black; white pixels are the kernel's weights")
    return kernel


@dataclass(frozen=True)
class Deblur(NoiseModel, Task):
    name = "deblur"
    summary = "Remove a known blur (Gaussian, motion, or a kernel image)."
    # On 9 crops of the held-out photographs (noise 2.55): Gaussian 2 px / motion 15 px, from
    # 27.5 / 24.2 dB blurred: encoder alone 30.9 / 27.9, 30 steps 32.1 / 29.3 (1.8 s per
    # 128x128 crop), 60 steps 32.1 / 29.8 for twice the time; the encoder anchor lost 0.5 / 0.9.
    defaults = SolverDefaults(steps=30)
    estimates_sigma = True

    kernel: str | np.ndarray | tuple = field(default="", metadata=option(KERNEL_HELP, required=True))
    sigma: float | None = field(default=None, metadata=option(
        "Noise of the blurred pixels in 0..255 units, or 'auto' to estimate it per image (an estimate below "
        "1 counts as 1).",
        parse=parse_sigma))
    noise: str = noise_field()
    quantisation: Any = field(default=None, repr=False)     # a JPEG file's (NoiseModel, JPEGSource)

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.kernel, str):
            if not self.kernel:
                raise OptionError("kernel", "is needed: gaussian:STD, motion:LENGTH,ANGLE or a kernel image file")
            weights = parse_kernel(self.kernel)
        else:
            weights = kernel_weights(self.kernel)
            # Held as nested tuples: a task is a value (compared, hashed, a key), which an array is not.
            object.__setattr__(self, "kernel", tuple(map(tuple, kernel_array(self.kernel).tolist())))
        object.__setattr__(self, "weights", weights)

    @property
    def margin(self) -> int:
        return max(self.weights.shape) // 2

    def physics(self, shape, companion):
        import torch

        from ..physics import Blur
        return Blur(torch.from_numpy(self.weights), margin=self.margin)

    def first_guess(self, physics, y):
        import torch.nn.functional as F
        from ..physics import wiener
        m = self.margin
        padded = F.pad(y, (m, m, m, m), mode="replicate")
        return wiener(padded, physics.weight.flip(-2, -1)[0, 0], sigma=self.sigma / 255)



deblur = api_function(Deblur, "Remove a known blur.")
