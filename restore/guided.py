"""The guided filter (He, Sun & Tang 2013): one image filtered as a local linear function of another.

Within every window of ``(2 radius + 1)^2`` pixels, ``src`` is fitted as ``a * guide + b`` by least
squares (``eps`` keeps ``a`` small where the guide is flat), and each pixel takes the mean of the
fits of the windows that hold it: edges of ``src`` survive where the guide has them, the rest is
smoothed. Pure functions over ``(N, C, H, W)`` tensors.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def guided_filter(guide: torch.Tensor, src: torch.Tensor, *, radius: int, eps: float) -> torch.Tensor:
    """``src (N, C, H, W)`` filtered guided by ``guide (N, 1, H, W)`` (each channel alone).

    Parameters
    ----------
    guide, src : tensor
        The guide and the channels to filter, of the same height and width.
    radius : int
        The windows' half-side, 1 or more.
    eps : float
        The fits' regularisation, in the squared units of ``guide`` (more than 0).
    """
    if guide.shape[0] != src.shape[0] or guide.shape[1] != 1 or guide.shape[-2:] != src.shape[-2:]:
        raise ValueError(f"guide must be (N, 1, H, W) beside src (N, C, H, W), got {tuple(guide.shape)} and "
                         f"{tuple(src.shape)}")
    if radius < 1 or not eps > 0:
        raise ValueError(f"radius must be 1 or more and eps more than 0, got {radius} and {eps}")

    def mean(t):                     # over each window, the image's edges mirrored
        pad = min(radius, t.shape[-2] - 1, t.shape[-1] - 1)
        t = F.pad(t, (pad, pad, pad, pad), mode="reflect") if pad > 0 else t
        return F.avg_pool2d(t, 2 * pad + 1, stride=1) if pad > 0 else t

    mean_guide, mean_src = mean(guide), mean(src)
    slope = (mean(guide * src) - mean_guide * mean_src) / (mean(guide * guide) - mean_guide**2 + eps)
    return mean(slope) * guide + mean(mean_src - slope * mean_guide)
