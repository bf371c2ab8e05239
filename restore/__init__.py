"""restore: repair damaged photos with a learned VAE prior.

An observation ``y`` is made from ``A(x)``: ``A`` is the identity (denoise,
dejpeg), a pixel mask (inpaint), antialiased bicubic downsampling (superres) or
a blur (deblur), and a data term says how (:mod:`restore.fidelity`: Gaussian
noise, or a JPEG file's quantisation). Restoration searches the latent space of
a VAE for an image that explains ``y`` (see :mod:`restore.solver`); each task is
one module of :mod:`restore.tasks`.

>>> from restore import denoise
>>> clean = denoise(noisy_uint8_array, sigma=25)          # doctest: +SKIP
"""
from .tasks import TASKS as _TASKS

# The API is imported on first use (PEP 562), so that ``import restore.cli`` does not pay for torch.
# Each task's function lives in its module, restore.tasks.<name>.
_HOME = {**{name: f"tasks.{name}" for name in _TASKS}, "estimate_noise": "tasks.denoise",
         "restore": "pipeline", "SolverSettings": "pipeline", "load_prior": "priors",
         "psnr": "metrics", "ssim": "metrics", "Quantisation": "jpeg", "detect_damage": "damage"}


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'restore' has no attribute {name!r}")
    from importlib import import_module
    return getattr(import_module(f".{_HOME[name]}", __name__), name)


__all__ = list(_HOME)
__version__ = "0.1.0"
