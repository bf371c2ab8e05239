"""The empirical Wiener filter: a noisy image shrunk coefficient by coefficient around a pilot.

Given an observation ``y = x + n`` (noise of variance ``v`` per pixel) and a pilot estimate ``p``
of ``x``, the filter works on groups of similar patches, as the second stage of BM3D (Dabov et
al. 2007) does with its own first stage as the pilot:

* every ``stride`` pixels a reference patch of ``patch`` x ``patch`` pixels is matched, on the
  pilot, with the ``group`` most similar patches within ``search`` pixels (itself first);
* the group is transformed in 3-D: each patch's 2-D DCT, then a DCT across the patches;
* each noisy coefficient ``c_y`` keeps the share ``c_p^2 / (c_p^2 + v)`` that the pilot says is
  signal, ``v`` the noise's variance averaged over the group's pixels; the group's mean (the DC)
  is kept whole, so the restoration's local means stay the observation's;
* the patches go back to their places, averaged with the weights ``1 / (v * sum(share^2))``.

Colours are filtered in an orthonormal opponent space, where white noise stays white at the
same level: the luminance and the two colour differences each in the groups matched on the
luminance, as BM3D matches on its Y channel.

Every channel is also filtered in overlapping windows of 16 x 16, each window alone (the filter
with groups of one patch and no search, but for the image's edges: windows reach them by
repeating the last pixels, references by a last reference flush with the edge), and each block
of 32 x 32 pixels of each channel takes whichever of the two estimates Stein's unbiased risk
estimate says is nearer the image: groups gather what recurs, windows the slow swell of a
smooth surface.

Where a prior's estimate misses texture the noise did not hide, the filter gives it back from
the data, from every patch that repeats it; where the estimate is right, it barely moves. BM3D's
first stage (:func:`hard_thresholded`: each group's coefficients kept whole above a threshold,
dropped below it) gives the pilot a second opinion that owes nothing to the prior but where the
patches alike lie. Pure functions over ``(N, C, H, W)`` tensors in [0, 1] units.
"""
from __future__ import annotations

import contextlib
import functools
import math
from contextvars import ContextVar
from typing import Callable, Iterator

import torch
from torch.nn import functional as F

#: Patch side, pixels between reference patches, the search's reach and the patches in a group.
#: Chosen on held-out crops (never the benchmark), the photo prior's estimate as the pilot; PSNR
#: in dB at sigma 25 and under the benchmark's sensor noise, then seconds per megapixel of colour
#: (2-core x86-64 CPU, a 1024 x 1024 image):
#:
#: ======================================== ============ ============ ============ =====
#: filter                                   12 of 128px  6 of 256px   6 grey 256px s/MP
#: ======================================== ============ ============ ============ =====
#: pilot alone                              30.78 31.78  29.16 29.65  28.85 28.92
#: windows of 16 every 4, no groups         32.47 33.30  30.64 30.97  29.24 29.29  0.30
#: every channel in groups of 16, 8 every 3 32.58 33.52  31.05 31.35  29.63 29.70  7.6
#: luminance in groups, 8 every 3           32.63 33.53  30.90 31.26  29.63 29.70  2.8
#: luminance in groups, 8 every 4           32.61 33.50  30.89 31.25  29.61 29.68  2.4
#: each block: groups or windows, by SURE   32.71 33.56  30.91 31.25  29.68 29.71  3.2
#: ... every channel in groups and windows  32.82 33.84  31.07 31.73  (one)        4.8
#: ======================================== ============ ============ ============ =====
#:
#: Every row is one pass of the filter (a colour photograph now takes two, three under light noise:
#: restore.reconstructor).
#: The last row is every channel matched on the luminance, each block of each channel choosing;
#: its sensor columns are with the colour photographs' noise made white (restore.fidelity), under
#: which the row of SURE scores 33.76 and 31.57 (and at sigma 15 / 50 on the 128px crops 35.09 /
#: 29.40 against 35.16 / 29.51); the other rows' sensor columns are from before that. A grey image
#: is one channel, as before. The last row's seconds were taken after the groups came to gather each
#: patch's pixels before its transform (rather than transforming every patch of a band), which took
#: the row of SURE from 4.7-5.7 to 3.5 s/MP in runs of that day (its 3.2 is an earlier day's).
#:
#: At sigma 15 and 50 the luminance in groups (8 every 4) against the windows alone: 35.03 / 29.23
#: against 34.93 / 29.07 on the 128px crops, 33.62 / 27.25 against 33.46 / 26.94 on the 256px
#: ones, and 32.29 / 25.94 against 31.99 / 25.63 grey. The windows do better only on the smoothest
#: crops under the heaviest noise (a flower's petals at sigma 50: 0.4 to 1.0 dB), which the choice
#: by blocks (the row of SURE) gives back: 29.23 -> 29.40 at sigma 50 on the 128px crops, 25.94 ->
#: 26.05 grey (choosing with the true error instead: 29.42 and 26.08). A search of 6 cost 0.03 dB;
#: groups of 8, 0.1; patches of 12, nothing measurable.
#:
#: Then larger groups from farther (BM3D's own second stage takes 32 within 19 pixels), measured with
#: the whole denoiser (a colour photograph's two passes, a sensor's noise stabilised, its true ``A,
#: B``) on the held-out crops, PSNR dB at sigma 25 / the sensor's noise, against groups of 16 within
#: 8 (32.31 / 32.41 on the 6 colour 256px crops, 32.95 / 33.89 on the 12 128px ones), and seconds
#: for a megapixel of colour at sigma 25 (2-core x86-64 CPU, runs of one day):
#:
#: ============================== ============= ============= =========
#: groups of, within              6 of 256px    12 of 128px   s/MP
#: ============================== ============= ============= =========
#: 16 within 8 (before)           32.31 32.41   32.95 33.89   20-23
#: 24 within 8                    \-             32.96 33.92
#: 24 within 16 (these)           32.45 32.60   32.97 34.03   27
#: 24 within 20                   32.46 32.63   32.97 34.04   30
#: 32 within 8                    32.36 32.49   32.94 33.93
#: 32 within 12                   32.45 32.59   32.96 34.01   32
#: 32 within 16                   32.47 32.64   32.94 34.05   33-37
#: 32 within 20                   32.49 32.67   32.97 34.07
#: 64 within 12                   32.39 32.57   32.89 33.99
#: ============================== ============= ============= =========
#:
#: Groups of 24 keep most of what 32 gain for less than half the extra time (the groups' transforms
#: grow with their size; the search costs little since distances are summed in runs of blocks,
#: :func:`_window_means`). 24 within 16 at sigma 15 / 50 on the 256px crops: 35.24 / 28.79 against
#: 35.10 / 28.65; grey, 30.70 / 30.47 against 30.62 / 30.41. A JPEG's own filter (restore.fidelity)
#: at quality 10 / 40: 28.29 / 32.92 against 28.27 / 32.90. Not kept: BM3D's Kaiser window (beta 2)
#: on each patch's share of the sums, +0.01 / +0.03 dB at the sensor's noise, nothing at sigma 25;
#: every other offset beyond 8 (within 20: 0.03 dB less than all of them).
PATCH = 8
STRIDE = 4
SEARCH = 16
GROUP = 24
#: Patch coefficients held at a time (about): the work is done in bands of reference rows.
CHUNK = 2**22
#: Candidate distances held at a time (about).
MATCH_CHUNK = 2**24
#: The windows' side and stride, and the windows filtered at a time (about).
WINDOW = 16
WINDOW_STRIDE = 4
WINDOW_CHUNK = 512
#: The blocks, in pixels, that take the groups' or the windows' estimate (``select``);
#: blocks of 16 or 64 scored within 0.03 dB of these on every held-out set of the table above.
SELECT_BLOCK = 32
#: BM3D's first stage (:func:`hard_thresholded`): a coefficient is kept above this many noise levels
#: (BM3D's lambda_3D), in groups of this many patches every this many pixels. Chosen on held-out
#: crops as the denoiser's first pilot (restore.fidelity.Gaussian.pilot), dB at sigma 15 / 25 / 50 /
#: the benchmark's sensor noise on 6 colour crops of 256px, against no first stage: groups of 16
#: (BM3D's; its threshold 2.7 against 2.0 / 3.5: +0.06 / +0.13 / -0.02 / +0.02 against -0.04 / +0.06
#: / 0.00 / -0.01 and +0.06 / +0.02 / -0.09 / 0.00), 32 +0.07 / +0.15 / 0.00 / +0.04, 64 +0.08 /
#: +0.16 / +0.03 / +0.05 (on the 12 of 128px: 16 +0.07 / +0.04 / -0.09 / -0.01, 64 +0.13 / +0.09 /
#: -0.01 / +0.02; on the 256px crops turned grey before their noise, 16 lost up to 0.05, 64 gained up
#: to 0.05). Matched on the prior's estimate,
#: not the noise as BM3D's are, the larger groups stay alike. References every 8 pixels scored within
#: 0.02 dB of every 4, in a quarter of the time (1.1 s against 4.1 for 512x512 colour, 2-core CPU;
#: one pass of the Wiener filter, 1.8).
HARD_THRESHOLD = 2.7
HARD_GROUP = 64
HARD_STRIDE = 8


#: Who hears of each filter call's progress (:func:`reporting`).
_listener: ContextVar[Callable[[int, int], None] | None] = ContextVar("restore_wiener_listener", default=None)


@contextlib.contextmanager
def reporting(report: Callable[[int, int], None]) -> Iterator[None]:
    """Within it, every filter call of this module (:func:`empirical_wiener`, :func:`hard_thresholded`,
    :func:`windowed_wiener`) tells ``report(done, total)`` its bands of work: ``(0, total)`` as it
    starts, then each band as it ends. A call's bands are of like size, so their count paces it."""
    token = _listener.set(report)
    try:
        yield
    finally:
        _listener.reset(token)


class _Bands:
    """One filter call's count of bands done, told to the listener of :func:`reporting`."""

    def __init__(self, total: int):
        self.done, self.total, self.report = 0, total, _listener.get()
        if self.report is not None:
            self.report(0, total)

    def __call__(self) -> None:
        self.done += 1
        if self.report is not None:
            self.report(self.done, self.total)


@functools.lru_cache(maxsize=8)
def _dct_matrix(n: int, device: torch.device) -> torch.Tensor:
    """The orthonormal DCT-II of length ``n`` as a matrix (rows: frequencies)."""
    k = torch.arange(n, dtype=torch.float64)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m.to(device=device, dtype=torch.float32)


@functools.lru_cache(maxsize=8)
def _opponent(device: torch.device) -> torch.Tensor:
    """An orthonormal colour transform: luminance and two colour differences."""
    m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [1.0, -2.0, 1.0]], dtype=torch.float64)
    return (m / m.norm(dim=1, keepdim=True)).to(device=device, dtype=torch.float32)


def _references(length: int, stride: int, offset: int = 0) -> torch.Tensor:
    """Reference patches' first pixels along one side: every ``stride`` from ``offset``, and the
    first and the last one."""
    first = ([0] if offset else []) + list(range(offset, length, stride))
    if first[-1] != length - 1:
        first.append(length - 1)
    return torch.tensor(first)


def empirical_wiener(y: torch.Tensor, pilot: torch.Tensor, variance: torch.Tensor | float, *,
                     patch: int = PATCH, stride: int = STRIDE, search: int = SEARCH,
                     group: int = GROUP, select: bool = True, shifted: bool = False,
                     correlation: torch.Tensor | None = None) -> torch.Tensor:
    """The empirical Wiener estimate of ``x`` from ``y = x + n`` around ``pilot``.

    Parameters
    ----------
    y, pilot : tensor (N, C, H, W)
        The observation and an estimate of the clean image, C 1 or 3.
    variance : float or tensor
        The noise's variance: one number, or a tensor that broadcasts against ``(N, 1, H, W)``
        (per pixel; averaged over each group).
    patch, stride, search, group : int
        Patch side, pixels between reference patches (at most ``patch``), the farthest a match
        lies from its reference along each axis (0 or more), and the patches in a group (1 or
        more; fewer where the image holds fewer): every channel's groups, matched on the
        luminance (or the one channel). ``group=1`` with ``search=0`` filters every channel in
        windows of ``patch`` every ``stride`` pixels, each alone.
    select : bool
        Whether each block of ``SELECT_BLOCK`` pixels of each channel takes the groups' estimate
        or that of windows of ``WINDOW`` every ``WINDOW_STRIDE`` pixels, whichever Stein's unbiased
        risk estimate says is nearer the image (else the groups' everywhere).
    shifted : bool
        Whether the reference patches lie every ``stride`` pixels from ``stride // 2`` (and at both
        edges) rather than from 0: a second pass shifted so puts its groups between the first's
        (restore.reconstructor takes every other pass so).
    correlation : tensor (2q+1, 2q+1), optional
        Where the noise is not white but stationary (a deconvolution's), its autocorrelation over
        lags of -q..q pixels, 1 at the centre, q at least ``patch - 1`` and ``WINDOW - 1`` (see
        :func:`coefficient_variances`); ``variance`` stays the noise's variance per pixel.

    Returns
    -------
    tensor (N, C, H, W), float32.
    """
    if not 1 <= stride <= patch:
        raise ValueError(f"stride must be in 1..patch ({patch}), got {stride}")
    if search < 0 or group < 1:
        raise ValueError(f"search must be 0 or more and group 1 or more, got {search} and {group}")
    if group == 1 and search == 0:
        def windows(y, pilot, variance):
            bands = _Bands(y.shape[0] * len(_window_bands(*y.shape[-2:], patch, stride)))
            return torch.div(*_windows(y, pilot, variance, patch, stride, bands, correlation))
        return _in_opponent(y, pilot, variance, windows)
    return _in_opponent(y, pilot, variance,
                        lambda *t: _groups_or_windows(*t, patch, stride, search, group, select,
                                                      offset=stride // 2 if shifted else 0,
                                                      correlation=correlation))


def _in_opponent(y, pilot, variance, filter):
    """``filter(y, pilot, variance)`` of ``(N, C, H, W)`` images, C 1 or 3, float32, a colour one's
    in the opponent space (where white noise stays white at its level) and back; ``variance`` as
    :func:`empirical_wiener` takes it, made ``(N, 1, H, W)``."""
    if y.shape != pilot.shape or y.dim() != 4 or y.shape[1] not in (1, 3):
        raise ValueError(f"y and pilot must be (N, 1 or 3, H, W) of one shape, got {tuple(y.shape)} and "
                         f"{tuple(pilot.shape)}")
    if not bool((torch.as_tensor(variance) > 0).all()):
        raise ValueError("variance must be positive at every pixel")
    n, c, h, w = y.shape
    y, pilot = y.float(), pilot.float()
    variance = torch.as_tensor(variance, dtype=torch.float32, device=y.device).expand(n, 1, h, w)
    if c == 1:
        return filter(y, pilot, variance)
    opponent = _opponent(y.device)
    y, pilot = (torch.einsum("kc,nchw->nkhw", opponent, t) for t in (y, pilot))
    return torch.einsum("kc,nkhw->nchw", opponent, filter(y, pilot, variance))


def hard_thresholded(y: torch.Tensor, pilot: torch.Tensor, variance: torch.Tensor | float, *,
                     threshold: float = HARD_THRESHOLD, group: int = HARD_GROUP,
                     stride: int = HARD_STRIDE, correlation: torch.Tensor | None = None) -> torch.Tensor:
    """BM3D's first stage (Dabov et al. 2007), its groups matched on ``pilot``: every channel of
    ``y`` in groups of ``group`` similar patches (as :func:`empirical_wiener`'s, in the opponent
    colours), each 3-D coefficient kept whole where it stands above ``threshold`` times the noise's
    level, else dropped. It owes nothing to the pilot's values, only to where the pilot says the
    patches alike lie: what recurs in the data stays as the data have it, texture a prior's estimate
    smoothed away included. Not linear in ``y``, so there are no windows to choose by SURE.
    ``y``, ``pilot``, ``variance`` and ``correlation`` as :func:`empirical_wiener`'s."""
    shrink = functools.partial(_hard, threshold=threshold)
    return _in_opponent(y, pilot, variance,
                        lambda *t: _groups_or_windows(*t, PATCH, stride, SEARCH, group, False, shrink,
                                                      reads_pilot=False, correlation=correlation))


def windowed_wiener(y: torch.Tensor, pilot: torch.Tensor, variance: torch.Tensor | float, *,
                    correlation: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`empirical_wiener` in windows of ``WINDOW`` every ``WINDOW_STRIDE`` pixels alone, no
    groups: the filter's first form, a photograph denoised in a fifth of the time, 0.5-1.3 dB lower."""
    return empirical_wiener(y, pilot, variance, patch=WINDOW, stride=WINDOW_STRIDE, search=0, group=1,
                            correlation=correlation)


def _groups_or_windows(y, pilot, variance, patch, stride, search, group, select, shrink=None, *,
                       reads_pilot=True, offset=0, correlation=None):
    """Every channel of ``(N, C, H, W)`` in groups matched on the first (the luminance), or, with
    ``select``, each block of each channel from the groups or the windows, by Stein's unbiased risk
    estimate (SURE) of each.

    Around a fixed pilot both filters are linear in ``y``: ``f(y) = J y``, and the expected squared
    error of ``f(y)`` is that of ``f(y) - y`` less the noise plus twice ``v`` times ``J``'s diagonal,
    which one random probe ``b`` of signs estimates without bias (``b * J b``), filtered beside ``y``
    (Ramani, Blu & Unser 2008). Groups repeat what recurs; windows see the slow swell of a smooth
    surface that 8x8 patches cut up, which at heavy noise is worth more (held-out crops at sigma
    50: the windows alone 0.4-1.0 dB better on a flower's smooth petals). Noise of covariance
    ``S`` (``correlation``) adds ``2 tr(J S)`` instead, which the probe estimates as ``b * J S b``:
    the probe filtered is ``S b``.
    """
    n, c, h, w = y.shape
    if select:
        # The same probe for every image, so that an image's result does not hang on its batch, and
        # for every channel: each channel's copy of it is filtered with that channel's shares.
        generator = torch.Generator(device=y.device).manual_seed(0)
        probe = torch.randint(0, 2, (1, 1, h, w), generator=generator, device=y.device).float().mul_(2).sub_(1)
        probe = probe.expand(n, c, -1, -1)
        y = torch.cat([y, probe if correlation is None else _correlated(probe, correlation)], 1)
    # An image smaller than a patch is repeated at its edges as far as one patch needs.
    extra_h, extra_w = max(0, patch - h), max(0, patch - w)
    padded, padded_pilot, padded_variance = (F.pad(t, (0, extra_w, 0, extra_h), mode="replicate")
                                             for t in (y, pilot, variance))
    plan = _GroupPlan(*padded.shape[1:], patch, stride, search, group, offset)
    bands = _Bands(n * (plan.filtered + (len(_window_bands(h, w, WINDOW, WINDOW_STRIDE)) if select else 0)))
    sums = [_groups(padded[i], padded_pilot[i], padded_variance[i, 0], plan, shrink, reads_pilot=reads_pilot,
                    bands=bands, correlation=correlation) for i in range(n)]
    groups = (torch.stack([s[0] for s in sums]) / torch.stack([s[1] for s in sums]))[..., :h, :w]
    if not select:
        return groups
    total, norm = _windows(y, pilot, variance, WINDOW, WINDOW_STRIDE, bands, correlation)
    windows = total / norm
    # Each pixel's share of the risk (up to what both have alike), averaged over each block.
    risk_groups, risk_windows = (
        F.avg_pool2d((t[:, :c] - y[:, :c]).square() + 2 * variance * probe * t[:, c:], SELECT_BLOCK,
                     ceil_mode=True) for t in (groups, windows))
    return torch.lerp(groups[:, :c], windows[:, :c], _blended((risk_windows < risk_groups).float(), h, w))


def _blended(choice: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(N, C, h, w)``: the choices of blocks of ``SELECT_BLOCK`` pixels from the first (the last
    ones partial where a side is no multiple of it), ``(N, C, blocks down, blocks across)``, each
    at its block's centre and blended bilinearly between the centres, so that no seam shows."""
    return F.interpolate(choice, scale_factor=SELECT_BLOCK, mode="bilinear", align_corners=False)[..., :h, :w]


def _window_padding(h: int, w: int, patch: int, stride: int) -> tuple[int, int]:
    """The pixels :func:`_windows` repeats below and right of an ``h x w`` image: windows from the
    first pixel, and the edges repeated only as far as the last window needs (repeated pixels carry
    repeated noise, which the filter would take for signal)."""
    return max(patch - h, -(h - patch) % stride), max(patch - w, -(w - patch) % stride)


def _window_bands(h: int, w: int, patch: int, stride: int) -> list[tuple[int, int]]:
    """The bands of window rows :func:`_windows` filters an ``h x w`` image in, ``(first, last)``
    rows of windows: bands whose windows stay in the processor's cache (the work is a few passes
    over each window, and unfolding the whole image at once spends more time copying than filtering)."""
    extra_h, extra_w = _window_padding(h, w, patch, stride)
    rows, columns = ((side + extra - patch) // stride + 1 for side, extra in ((h, extra_h), (w, extra_w)))
    band = max(1, WINDOW_CHUNK // columns)
    return [(first, min(rows, first + band)) for first in range(0, rows, band)]


def _windows(y, pilot, variance, patch, stride, bands: _Bands, correlation=None):
    """The filter without groups, every window filtered alone, of ``(N, C, H, W)`` in the opponent
    space and ``variance (N, 1, H, W)``, around ``pilot`` of C channels or of a divisor of C, repeated:
    the sums of the windows' weighted estimates and of their weights, ``(N, C, H, W)`` each. Each band
    done is told to ``bands``; ``correlation`` as :func:`empirical_wiener` takes it."""
    n, c, h, w = y.shape
    device = y.device
    extra_h, extra_w = _window_padding(h, w, patch, stride)
    window_bands = _window_bands(h, w, patch, stride)
    y, pilot, variance = (F.pad(t, (0, extra_w, 0, extra_h), mode="replicate") for t in (y, pilot, variance))
    noise = F.avg_pool2d(variance, patch, stride=stride)              # (N, 1, rows, columns) of windows
    columns = noise.shape[-1]
    coefficients = _coefficients(correlation, patch, device, 1)
    dct = _dct_matrix(patch, device)
    ones = torch.ones(1, 1, patch, patch, device=device)
    total, norm = torch.zeros_like(y), torch.zeros_like(y)
    for i in range(n):
        for first, last in window_bands:
            top, bottom = first * stride, (last - 1) * stride + patch
            cy, cp = (_dct2(F.unfold(t[i, :, None, top:bottom], patch, stride=stride), dct) for t in (y, pilot))
            cy, weight = _shrink(cy, cp, noise[i, :, first:last].reshape(1, -1) * coefficients, dc=(slice(None), 0),
                                 summed=1)
            weight = weight[:, 0].expand(c // weight.shape[0], -1, -1).reshape(c, -1)      # (C, L)
            estimate = _dct2(cy, dct.T)
            total[i, :, top:bottom] += F.fold(estimate, (bottom - top, y.shape[-1]), patch, stride=stride)[:, 0]
            norm[i, :, top:bottom] += F.conv_transpose2d(weight.reshape(c, 1, last - first, columns), ones,
                                                         stride=stride)[:, 0]
            bands()
    return total[..., :h, :w], norm[..., :h, :w]


class _GroupPlan:
    """How :func:`_groups` goes over an image of ``c x h x w`` (the observation's channels, a probe's
    included): its patches' first pixels, the reference patches, the group size it can hold, and
    the bands of reference rows it matches (all candidates' distances at once) and filters (in
    smaller ones), sized to hold about :data:`MATCH_CHUNK` distances and :data:`CHUNK` coefficients."""

    def __init__(self, c: int, h: int, w: int, patch: int, stride: int, search: int, group: int, offset: int = 0):
        self.patch, self.search = patch, search
        self.rows, self.columns = h - patch + 1, w - patch + 1          # patches' first pixels
        # Every reference has at least this many candidates, however near an edge it lies.
        self.group = min(group, min(self.rows, search + 1) * min(self.columns, search + 1))
        self.first_rows, self.first_columns = (_references(n, stride, offset) for n in (self.rows, self.columns))
        self.rows_matched = max(1, MATCH_CHUNK // ((2 * search + 1) ** 2 * len(self.first_columns)))
        self.rows_filtered = max(1, CHUNK // (len(self.first_columns) * self.group * c * patch * patch))
        # Each band matched: (first reference row's index, [first indices of its bands filtered]).
        self.bands = [(start, list(range(0, min(self.rows_matched, len(self.first_rows) - start), self.rows_filtered)))
                      for start in range(0, len(self.first_rows), self.rows_matched)]
        self.filtered = sum(len(parts) for _, parts in self.bands)     # bands filtered in all


def _groups(y, pilot, variance, plan: _GroupPlan, shrink=None, *, reads_pilot=True, bands: _Bands,
            correlation=None):
    """The filter in groups of one image's channels ``(C, H, W)``, ``variance (H, W)``, around ``pilot``
    of C channels or of a divisor of C, repeated (matched on its first), as ``plan`` goes: the sums
    of the patches' weighted estimates and of their weights, ``(C, H, W)`` each. ``reads_pilot``
    false: ``shrink`` takes no pilot's coefficients (None), which are then not computed (the groups
    are still the pilot's). Each band filtered is told to ``bands``."""
    c, h, w = y.shape
    device = y.device
    patch, search = plan.patch, plan.search
    first_rows, first_columns = plan.first_rows.to(device), plan.first_columns.to(device)
    noise = F.avg_pool2d(variance[None, None], patch, stride=1)[0, 0]   # (rows, columns): each patch's mean
    coefficients = _coefficients(correlation, patch, device, 3)
    total = torch.zeros(c, h, w, device=device)
    # Each patch's weight is added once, at its first pixel, and spread over its pixels at the end.
    weights = torch.zeros(pilot.shape[0], h, w, device=device)
    for start, parts in plan.bands:
        refs = first_rows[start:start + plan.rows_matched]
        top, bottom = max(0, int(refs[0]) - search), min(plan.rows, int(refs[-1]) + search + 1)
        matches = _match(pilot[0, top:bottom + patch - 1], refs - top, first_columns, search, patch, plan.group)
        matches[..., 0] += top                                           # (refs, columns, group, 2)
        for part in parts:
            _filter_groups(y, pilot if reads_pilot else None, noise, matches[part:part + plan.rows_filtered], patch,
                           total, weights, shrink or _shrink, coefficients)
            bands()
    # Every pixel's weight: the sum over the patch x patch window that ends there (10x faster as a
    # box mean than as a transposed convolution).
    norm = F.avg_pool2d(F.pad(weights[:, None], (patch - 1, 0, patch - 1, 0)), patch, stride=1)[:, 0] * patch**2
    return total, norm.repeat(c // norm.shape[0], 1, 1)


def _filter_groups(y, pilot, noise, matches, patch, total, weights, shrink, coefficients=1.0):
    """Filter the groups of patches whose first pixels are ``matches`` ``(refs, columns, group, 2)``,
    adding their estimates into ``total`` ``(C, H, W)`` and their weights into ``weights`` ``(Cp, H, W)``
    at their first pixels (in place: an image's sums are built band by band, and a band's are too
    large to return). ``pilot`` None: ``shrink`` is given None for its coefficients. ``coefficients``:
    each 2-D coefficient's share of the noise's variance (:func:`_coefficients`)."""
    c, h, w = y.shape
    group = matches.shape[2]
    device = y.device
    across, dct = _dct_matrix(group, device), _dct_matrix(patch, device)
    # Each patch's pixels, gathered where it lies: (p^2, refs, columns, group) indices into the image.
    within = torch.arange(patch, device=device)
    offsets = (within[:, None] * w + within[None, :]).reshape(-1, 1, 1, 1)
    firsts = matches[..., 0] * w + matches[..., 1]
    pixels = offsets + firsts
    shape, flat = pixels.shape, pixels.reshape(-1)
    # Each group's 3-D transform: the patches' 2-D DCTs, then a DCT across the group (index_select
    # gathers 1.5x faster than indexing with the same indices).
    cy, cp = (None if t is None else
              _dct2(torch.index_select(t.reshape(t.shape[0], -1), 1, flat).reshape(t.shape[0], patch * patch, -1),
                    dct).reshape(t.shape[0], *shape) @ across.T for t in (y, pilot))  # (C, p^2, refs, columns, group)
    v = noise[matches[..., 0], matches[..., 1]].mean(-1)[..., None] * coefficients  # ([p^2,] refs, columns, 1)
    # The group's mean (its first coefficient in both transforms) stays the observation's.
    cy, weight = shrink(cy, cp, v, dc=(slice(None), 0, ..., 0), summed=(1, 4))    # weight (Cp, 1, refs, columns, 1)
    estimate = _dct2((cy @ across).reshape(c, patch * patch, -1), dct.T)
    total.view(c, -1).index_add_(1, flat, estimate.reshape(c, -1))
    weights.view(weights.shape[0], -1).index_add_(1, firsts.reshape(-1), weight.expand(
        -1, 1, -1, -1, group).reshape(weights.shape[0], -1))


def _shrink(cy: torch.Tensor, cp: torch.Tensor, v: torch.Tensor, *, dc, summed) -> tuple[torch.Tensor, torch.Tensor]:
    """The Wiener shrinkage of a batch of groups (or windows) in the transform domain.

    Each coefficient of ``cy`` keeps the share ``cp^2 / (cp^2 + v)`` of it that the pilot's
    coefficient ``cp`` says is signal, but the DC (index ``dc``), kept whole, and is weighted by
    its group's ``1 / (v * sum(share^2))`` over the axes ``summed`` (BM3D's aggregation weight).
    ``cy`` holds k copies of the pilot's Cp channels (the image's, then a probe's), each taking its
    channel's shares. Returns ``cy`` so weighted (in place) and the weights, ``summed`` axes kept;
    ``cp`` is overwritten.
    """
    share = cp.square_()
    share = share.div_(share + v)
    share[dc] = 1
    weight = (share.square() * v).sum(summed, keepdim=True).clamp_min_(1e-12).reciprocal_()
    cy = cy.view(-1, *share.shape).mul_(share.mul_(weight)).view_as(cy)
    return cy, weight


def _hard(cy: torch.Tensor, cp: torch.Tensor, v: torch.Tensor, *, dc, summed, threshold: float):
    """BM3D's first-stage shrinkage, in :func:`_shrink`'s terms (``cp`` is not read): each coefficient
    of ``cy`` kept whole where it stands above ``threshold`` noise levels, else dropped, and weighted
    by its group's ``1 / (v * coefficients kept)``."""
    keep = cy.abs() > threshold * v.sqrt()
    keep[dc] = True
    weight = (keep * v).sum(summed, keepdim=True).reciprocal_()
    return cy.mul_(keep.to(cy.dtype).mul_(weight)), weight


def coefficient_variances(correlation: torch.Tensor, patch: int) -> torch.Tensor:
    """``(patch * patch,)``: the variance of each 2-D DCT coefficient of a patch (as :func:`_dct2`
    orders them) under stationary noise of unit variance and autocorrelation ``correlation``
    ``(2q+1, 2q+1)``, lags -q..q with 0 at the centre, ``q >= patch - 1``: ``diag(D S D^T)``, ``S``
    the patch's covariance, ``D`` the 2-D DCT, at least ``1e-6``. White noise gives ones."""
    q = correlation.shape[-1] // 2
    if correlation.dim() != 2 or correlation.shape[0] != correlation.shape[1] or correlation.shape[0] % 2 == 0 \
            or q < patch - 1:
        raise ValueError(f"correlation must be square of odd side, at least {2 * patch - 1}, got "
                         f"{tuple(correlation.shape)}")
    i = torch.arange(patch, device=correlation.device)
    lag = (i[:, None] - i[None, :] + q)                                  # (p, p): lag between two rows
    covariance = correlation.double()[lag[:, None, :, None], lag[None, :, None, :]].reshape(patch**2, patch**2)
    dct = _dct_matrix(patch, correlation.device).double()
    basis = torch.kron(dct, dct)                                         # rows: coefficients, row-major
    # At least a millionth of the mean: a coefficient the noise does not reach keeps a defined share.
    return torch.einsum("ki,ij,kj->k", basis, covariance, basis).clamp_min(1e-6).float()


def _coefficients(correlation, patch: int, device, trailing: int):
    """:func:`coefficient_variances` shaped ``(p^2,)`` + ``(1,) * trailing`` to scale a noise level
    per coefficient, or 1.0 for white noise (``correlation`` None)."""
    if correlation is None:
        return 1.0
    return coefficient_variances(correlation.to(device), patch).view(-1, *(1,) * trailing)


def _correlated(probe: torch.Tensor, correlation: torch.Tensor) -> torch.Tensor:
    """``probe`` ``(N, C, H, W)`` times the noise's correlation matrix: convolved with ``correlation``,
    zero beyond the image."""
    kernel = correlation.to(probe)[None, None]
    q = correlation.shape[-1] // 2
    n, c, h, w = probe.shape
    return F.conv2d(probe.reshape(n * c, 1, h, w), kernel, padding=q).view(n, c, h, w)


def _dct2(patches: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``matrix @ P @ matrix^T`` for each patch of ``patches``, ``(C, p*p, L)`` as unfold gives them
    (rows first), as two batched products that need no transposed copies."""
    c, area, count = patches.shape
    p = matrix.shape[0]
    rows = matrix @ patches.contiguous().reshape(c, p, p * count)                # along each patch's rows
    return (matrix @ rows.reshape(c * p, p, count)).reshape(c, area, count)


def _window_means(x: torch.Tensor, starts: torch.Tensor, patch: int, dim: int) -> torch.Tensor:
    """Means of ``x`` over windows of ``patch`` along ``dim`` (0 or more) that start at ``starts``:
    evenly spaced, but for the first and the last (as :func:`_references` gives them)."""
    if len(starts) > 2 and int(starts[1] - starts[0]) != int(starts[2] - starts[1]):
        return torch.cat([x.narrow(dim, int(starts[0]), patch).mean(dim, keepdim=True),
                          _window_means(x, starts[1:], patch, dim)], dim)
    first = int(starts[0])
    step = int(starts[1] - starts[0]) if len(starts) > 1 else 1
    even = len(starts) if len(starts) < 2 or int(starts[-1] - starts[-2]) == step else len(starts) - 1
    span = x.narrow(dim, first, (even - 1) * step + patch)
    if step > 1 and patch % step == 0:
        # The sums of blocks of ``step``, then of each run of ``patch // step`` of them: a few passes
        # over memory where windows read each pixel ``patch / step`` times.
        blocks = span.unflatten(dim, (span.shape[dim] // step, step)).sum(dim + 1)
        out = sum(blocks.narrow(dim, k, even) for k in range(patch // step)) / patch
    else:
        out = span.unfold(dim, patch, step).mean(-1)
    if even < len(starts):
        out = torch.cat([out, x.narrow(dim, int(starts[-1]), patch).mean(dim, keepdim=True)], dim)
    return out


def _match(luminance: torch.Tensor, refs: torch.Tensor, columns: torch.Tensor, search: int,
           patch: int, group: int) -> torch.Tensor:
    """The ``group`` patches of ``luminance`` nearest each reference (rows ``refs`` x ``columns``)
    within ``search`` pixels along each axis: ``(refs, columns, group, 2)`` first pixels (row,
    column), the reference itself first."""
    h, w = luminance.shape
    reach = 2 * search + 1
    # Outside the image is NaN: a window that reaches it sums to NaN, and is never chosen.
    padded = F.pad(luminance[None, None], (search, search, search, search), value=math.nan)[0, 0]
    distances = []
    squares = torch.empty(h, w, reach, dtype=luminance.dtype, device=luminance.device)
    for down in range(reach):
        # (h, w, reach): every move right, nearest in memory, so that the sums over rows and over
        # columns run over whole slabs (in the order unfold gives them: 3x slower).
        torch.sub(padded[down:down + h].unfold(1, w, 1).permute(0, 2, 1), luminance[:, :, None], out=squares)
        means = _window_means(_window_means(squares.square_(), refs, patch, 0), columns, patch, 1)
        distances.append(means.permute(2, 0, 1))
    distances = torch.cat(distances).nan_to_num_(nan=math.inf)                # (reach^2, refs, columns)
    distances[search * reach + search] = -1                                   # the reference leads its group
    nearest = distances.topk(group, dim=0, largest=False, sorted=True).indices
    offsets = torch.stack(torch.meshgrid(torch.arange(reach, device=luminance.device) - search,
                                         torch.arange(reach, device=luminance.device) - search,
                                         indexing="ij"), -1).reshape(-1, 2)
    first = torch.stack(torch.broadcast_tensors(refs[:, None], columns[None, :]), -1)
    return (first[None] + offsets[nearest]).permute(1, 2, 0, 3).contiguous()
