"""restore: repair damaged photos with a learned VAE prior.

The data model is ``y = A(x) + n`` with Gaussian noise ``n``: ``A`` is the
identity (denoise), a pixel mask (inpaint) or antialiased bicubic downsampling
(superres). Restoration searches the latent space of a VAE for an image that
explains ``y`` (see :mod:`restore.solver`).

>>> from restore import denoise
>>> clean = denoise(noisy_uint8_array, sigma=25)          # doctest: +SKIP
"""
from .metrics import psnr, ssim
from .priors import load_prior
from .tasks import denoise, estimate_noise, inpaint, superres

__all__ = ["denoise", "inpaint", "superres", "estimate_noise", "load_prior", "psnr", "ssim"]
__version__ = "0.1.0"
