"""A JPEG file's quantisation as a data term (:class:`JPEGConstraint`): the set of images that encode
to the file, whose x-step is a projection, and what a restoration of a JPEG takes from the file."""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from ..data import is_grey
from ..guided import guided_filter
from ..jpeg import Planes, Quantisation, from_ycbcr, to_ycbcr
from ..physics import Denoising
from ..wiener import empirical_wiener
from .base import DataTerm
from .consistency import mean_within


#: The share of a JPEG file's rounding (:meth:`restore.jpeg.Quantisation.rounding_variance`) that a
#: blurred observation's last filter takes as noise after the JPEG stage (``Gaussian(leftover=...)``):
#: the stage leaves errors that are not the image, and a filter that took only the noise before the
#: rounding for noise deconvolved them. On the 12 held-out crops of 128px (never the benchmark), a blur
#: then a JPEG, dB with none / a quarter / all of the rounding, and without the filter: Gaussian 2 with
#: noise 3 at quality 30, 26.58 / 27.42 / 27.43 (27.24); at 90, 30.83 / 30.85 / 30.87 (30.73); Gaussian 0.7
#: with noise 1 at 30, 31.19 / 31.24 / 30.96 (31.13); at 90, 35.83 / 35.87 / 35.75 (35.46).
JPEG_LEFTOVER = 0.25


def jpeg_leftover(quantisation: Quantisation | None) -> float:
    """The ``leftover`` of an observation decoded from a JPEG file of ``quantisation`` and freed of its
    blocks (:data:`JPEG_LEFTOVER`), 0 for any other."""
    return 0.0 if quantisation is None else JPEG_LEFTOVER * quantisation.rounding_variance()


class JPEGConstraint(DataTerm):
    """``y`` is the decoded JPEG: ``x`` is any image that encodes to the same file.

    The term is 0 inside that set and infinite outside (``value`` gives the squared distance
    of the coefficients to their bins, in quantisation steps, for the record); the x-step lands in
    it (in the YCbCr planes' metric, where the bins are boxes), whatever ``gamma``: each
    coefficient of the estimate goes to its mean within its bin (:meth:`project`), taking the
    estimate's coefficient as the image's plus an error of ``spread`` (0..255 units; 0: the
    projection, the nearest point of the bin). It takes the identity as its forward model.

    Parameters
    ----------
    quantisation : restore.jpeg.Quantisation
        The file's tables and chroma cells.
    spread : float, optional
        The error of a restoration's coefficients (default :data:`ESTIMATE_SPREAD` times the
        file's mean luminance step).
    """

    differentiable = False
    # The rounding is not noise: an encoder that learned the context on noisy views reads a coarse
    # table's bins as heavy noise and smooths the image (measured: the large prior's shared encoder
    # gave 24.0 dB on held-out quality-10 files, 3.5 dB below the decoded files; without the
    # context, 28.0). So encoders are told nothing of a JPEG: the same for the file and in training.
    noise_like = False

    def __init__(self, quantisation: Quantisation, *, spread: float | None = None):
        if not isinstance(quantisation, Quantisation):
            raise TypeError(f"quantisation must be a restore.jpeg.Quantisation, got {type(quantisation).__name__}; "
                            "Quantisation.from_file(path) reads a JPEG file's")
        self.quantisation = quantisation
        self.planes = Planes(quantisation)
        self.spread = ESTIMATE_SPREAD * quantisation.mean_step if spread is None else float(spread)
        if not self.spread >= 0:
            raise ValueError(f"spread must be 0 or more, got {spread}")
        self._bins = self._flat = None

    def __repr__(self):
        return f"JPEGConstraint(quality~{self.quantisation.quality:.0f}, chroma cell {self.quantisation.chroma_cell})"

    def _check(self, physics):
        if not isinstance(physics, Denoising):
            raise TypeError("the JPEG constraint observes the image itself: use Denoising() as the forward model")

    def _padded(self, v: torch.Tensor) -> torch.Tensor:
        """``v`` with its edges repeated up to the encoder's grid, as a JPEG encoder pads a partial block."""
        b = self.quantisation.block
        h, w = v.shape[-2:]
        return torch.nn.functional.pad(v, (0, -w % b, 0, -h % b), mode="replicate") if h % b or w % b else v

    def bins(self, y: torch.Tensor) -> list[torch.Tensor]:
        """The stored coefficients (in steps) of the file ``y`` was decoded from; computed once per
        observation (the solver asks at every step with the same ``y``).

        Where the decoder clipped pixels to [0, 1] (the coefficients make a colour beyond it: a
        saturated one, ringing below black), ``y``'s own coefficients are not the file's; there the
        pixels are first found as the coefficients made them (:func:`unclipped`)."""
        if self._bins is None or self._bins[0] is not y:
            self._bins = (y, [c.round() for c in self.planes.coefficients(unclipped(self._padded(y), self.planes))])
        return self._bins[1]

    def value(self, ax, y):
        total = ax.new_zeros(())
        for c, k in zip(self.planes.coefficients(self._padded(ax)), self.bins(y)):
            total = total + ((c - k).abs() - 0.5).clamp_min(0).pow(2).sum() / 2
        return total

    def prox(self, z, y, physics, gamma, *, x0=None):
        self._check(physics)
        return self.project(z, y, spread=self.spread)

    def project(self, x: torch.Tensor, y: torch.Tensor, *, rounds: int = 3, spread: float = 0.0) -> torch.Tensor:
        """``x`` moved into the set of images that encode to ``y``'s file, and into [0, 1].

        Alternates the projection onto the bins with the clip to [0, 1] (both sets are convex;
        the last step is the bins', so the output is in the set, up to a rounding of at most a
        level where the clip and the bins disagree). Sides off the encoder's grid are padded
        as the encoder pads them (the padding's decoded pixels are not in the file, so there
        the set is only approximated).

        ``spread`` > 0 (0..255 units): the first round moves each coefficient not to the nearest
        point of its bin but to the image's mean there, given ``x``'s coefficient as the image's plus
        Gaussian error of that size (:func:`mean_within`). An estimate just outside a bin then lands
        inside it rather than on its edge, by as much as the bin's width against the error says;
        one deep inside a bin wide against the error barely moves. On held-out crops (never the
        benchmark), the default spread against the projection, dB:

        ============ ===== ===== ===== ===== ===== =====
        quality      10    20    40    60    75    90
        ============ ===== ===== ===== ===== ===== =====
        12 of 128px  +0.04 +0.14 +0.17 +0.10 +0.04 0.00
        6 of 256px   +0.05 +0.10 +0.11             +0.02
        6 of 384px   +0.04 +0.12 +0.10
        ============ ===== ===== ===== ===== ===== =====
        """
        h, w = x.shape[-2:]
        bins = self.bins(y)
        x = self._padded(x)
        for i in range(rounds):
            coefficients = self.planes.coefficients(x)
            if i == 0 and spread > 0:
                targets = [mean_within(c, k - 0.5, k + 0.5, spread / self.planes.steps(t, c))
                           for c, k, t in zip(coefficients, bins, self.quantisation.tables)]
            else:
                targets = [torch.maximum(torch.minimum(c, k + 0.5), k - 0.5) for c, k in zip(coefficients, bins)]
            x = self.planes.move(x, [t - c for t, c in zip(targets, coefficients)])
            if i < rounds - 1:
                x = x.clamp(0, 1)
        return x[..., :h, :w]

    def wiener(self, pilot, y, physics, *, groups=True, shifted=False):
        """Two last steps, each ending in the file's set (the projection):

        * where the tables are coarse (a mean luminance step of :data:`CHROMA_GUIDE_STEP` or more),
          the colour differences (Cb, Cr) follow the restoration's luminance: each filtered guided
          by it (:func:`restore.guided.guided_filter`). The file holds its colour at a quarter of
          the pixels and coarsely; where edges of colour are the luminance's, the filter draws them
          there. Held-out 128x128 crops (never the benchmark), radius 3: +0.10 / +0.05 / +0.10 dB
          at quality 10 / 20 / 40, +0.15 at 10 on the 256x256 ones; 0.00 at 75 and -0.24 at 90,
          where the file's colour is already right;
        * at every quality, the restoration's own empirical Wiener filter in groups (itself as observation
          and pilot: what recurs in its groups is kept, what does not, the decoder's and the
          blocks' leftovers, shrinks) at a level of :data:`SELF_FILTER` times the root of the mean
          luminance step (0..255 units): on the 128x128 / 256x256 crops +0.14 / +0.11, +0.10 /
          +0.06, +0.20 / +0.13, +0.27 / +0.25 and +0.38 / +0.36 dB at quality 10, 20, 40, 75, 90.

        One pass (``shifted``: its groups' references between those of the pass before; see
        :meth:`wiener_passes`). ``groups`` false (``quick``): the second
        step left out (in windows alone, tuned for the groups, it lost 0.1 dB on the flower sample at
        quality 10). Last, the file's flat runs of blocks keep its colour (:meth:`flat_kept`).
        """
        self._check(physics)
        return self.flat_kept(self.self_filtered(self.colours_following_luminance(pilot, y), y, groups=groups,
                                                 shifted=shifted), y)

    def wiener_passes(self, y, physics):
        """Two passes of :meth:`wiener`, the second around the first's estimate, its groups shifted
        (restore.reconstructor): what the first pass left of the blocks, the second's groups, placed
        between the first's, see again. Held-out crops (never the benchmark), two passes against one
        (both of groups alone, :meth:`self_filtered`), dB: 6 of 256px +0.14 / +0.11 at quality 10 /
        40, 12 of 128px +0.06 / +0.10, 6 of 384px (measured after the choice) +0.11 / +0.10. The smooth crops gain most (a flower +0.3 at 10), the textured
        lose up to 0.03 at 10. A third pass: +0.06 / +0.02 more on the 256px crops, +0.01 / 0.00 on
        the 128px ones, for a pass's time more (about 9 s for a megapixel of colour, 2-core CPU).

        Measured with selection by blocks and without the shift first (two passes against one: on
        the 256px crops +0.12 / +0.10 at 10 / 40): the second pass's groups where the first's were
        scored 0.00 to 0.03 below shifted; the second pass at 0.7 of :data:`SELF_FILTER`, or without
        its colours made to follow the luminance again, 0.02 to 0.07 below it. Not kept either (256px
        crops at 10 / 40, 128px at 10, against these two passes): the second pass filtering the
        prior's estimate again around the first's, as BM3D's second stage filters its observation,
        -0.10 / -0.07 / -0.04 (the first's estimate filtered again is what gains); each pass's pilot
        half BM3D's first stage of it (:func:`restore.wiener.hard_thresholded`), +0.04 / +0.03 /
        +0.02 for about 4 s more per megapixel and pass; the colours guided over a radius of 4,
        +0.03 at 10 on the 256px crops, -0.02 on the 128px ones."""
        return torch.full((y.shape[0],), JPEG_PASSES)

    def colours_following_luminance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The first step of :meth:`wiener` (``x`` itself for a grey image or fine tables)."""
        if x.shape[1] != 3 or len(self.quantisation.tables) == 1 or is_grey(y) or self.quantisation.mean_step < CHROMA_GUIDE_STEP:
            return x
        planes = to_ycbcr(x)
        colours = guided_filter(planes[:, :1] / 255, planes[:, 1:] / 255, radius=CHROMA_GUIDE_RADIUS,
                                eps=CHROMA_GUIDE_EPS)
        return self.project(from_ycbcr(torch.cat([planes[:, :1], colours * 255], 1)).clamp(0, 1), y,
                            spread=self.spread).clamp(0, 1)

    def self_filtered(self, x: torch.Tensor, y: torch.Tensor, *, groups: bool = True,
                      shifted: bool = False) -> torch.Tensor:
        """The second step of :meth:`wiener` (``x`` itself without ``groups``)."""
        if not groups:
            return x
        level = SELF_FILTER * self.quantisation.mean_step ** 0.5 / 255
        # Groups alone (select=False): the choice of windows by blocks scores each estimate by
        # Stein's risk under white noise of the level, which x, its own observation, does not carry.
        # Held-out crops, two passes (dB against the choice by blocks): 6 of 256px +0.04 / +0.06 /
        # +0.05 at quality 10 / 20 / 40, the same turned grey +0.00 / +0.05 at 10 / 40, 12 of 128px
        # +0.00 / +0.01 / +0.08 / +0.10 at 10 / 40 / 75 / 90, the 28 objects +0.04 at 10; a pass
        # takes 1.7 s less at 1 MP.
        filtered = empirical_wiener(x, x, level**2, select=False, shifted=shifted)
        return self.project(filtered.clamp(0, 1), y, spread=self.spread).clamp(0, 1)

    def correct(self, x, y, physics):
        """The weighted mean of the restoration and the decoded file: both are in the set, which is
        convex, so the mean is too; their errors are largely their own, so it beats either (see
        :func:`prior_share` for the weights). The file's flat runs of blocks keep its colour
        (:meth:`flat_kept`)."""
        return self.flat_kept(y + prior_share(self.quantisation) * (x - y), y)

    def flat_kept(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x`` with the decoded file's pixels where the file is flat: where every channel of
        ``y`` stays within :data:`FLAT_LEVELS` over the window of :data:`FLAT_RADIUS` around a
        pixel (its block and its neighbours' at 4:2:0), then moved back into the set.

        A run of blocks the file holds as one colour says the image is that colour to within a
        bin, and the bin's middle (the decoded value) is the best guess the file gives; the
        prior's only word there is its own colour. On a colour it does not know it moves the
        whole run: flat saturated magenta, cyan, green, red, orange and blue (256x256) came back
        at 37.10 / 46.51 / 44.69 dB at quality 10 / 20 / 40 against the decoded files' 42.29 /
        47.73 / 46.50 (magenta at quality 10: 35.9 against 43.4, its green raised from 3 to 7
        levels), and at the decoded files' figures with this. Held-out crops (never the
        benchmark), against without: 12 of 128px +0.01 / 0.00 / +0.01 dB, 6 of 256px 0.00 /
        0.00 / 0.00, the same made vivid (saturation x2.5) +0.01 / 0.00 / 0.00. At the edges of
        the image (or of a tile) the window is cut short."""
        # Computed once per observation: every pass of the filter and the last correction ask.
        if self._flat is None or self._flat[0] is not y:
            self._flat = (y, flat_pixels(y))
        flat = self._flat[1]
        if not bool(flat.any()):
            return x
        return self.project(torch.where(flat, y, x), y).clamp(0, 1)

    def precision(self, physics, x):
        # A coefficient known to a bin of width q has variance q^2 / 12; the DCT is orthonormal,
        # so a block's pixels have, on average, the mean of its coefficients' variances.
        inverse = [12 * 255**2 / float((torch.as_tensor(t) ** 2).mean()) for t in self.quantisation.tables]
        return torch.full_like(x[:, :1], sum(inverse) / len(inverse))


#: The error of a JPEG restoration's coefficients (:class:`JPEGConstraint`'s ``spread``, 0..255 units)
#: per unit of the file's mean luminance step: 9.8 at quality 10, 3.6 at 40, 0.6 at 90. Chosen on the
#: held-out crops (dB against the projection, 12 of 128px at quality 10 / 40 / 90): 0.035 +0.04 /
#: +0.12 / 0.00, 0.05 +0.04 / +0.17 / 0.00; a spread of 0.4 / 0.5 / 0.6 / 0.8 times the step's root
#: instead gave +0.03 / +0.04 / +0.05 / +0.03 at 10 and +0.16 / +0.16 / +0.12 / -0.05 at 40, 0.5
#: -0.08 at 90 (the 256px crops, 0.5: -0.02 at 90; the step's share here: +0.02). One spread in steps
#: for every coefficient (0.1 of a step: +0.03 / +0.09 at 10 / 40; 0.2: -0.28 at 10) pulls the fine
#: coefficients of a wide bin towards its middle; one in pixel units lets them be.
ESTIMATE_SPREAD = 0.05
#: The mean luminance step (Pillow's quality 50: 58; 60: 46; 75: 29) from which a JPEG's colours are
#: made to follow the luminance (:meth:`JPEGConstraint.wiener`), and the guided filter's radius and
#: regularisation ([0, 1] units squared), chosen on the held-out crops (dB against none): at quality
#: 10 on the 128px ones radius 2 / 3 / 4 / 8 +0.07 / +0.10 / +0.10 / +0.01, on the 256px ones 3 / 4 /
#: 6 +0.15 / +0.19 / +0.23; at 20 (128px) 3 / 4 / 6 +0.05 / +0.02 / -0.07, at 40 +0.10 / +0.03 /
#: -0.12. eps 1e-5 to 1e-3 scored within 0.01 dB of each other.
CHROMA_GUIDE_STEP = 50.0
CHROMA_GUIDE_RADIUS = 3
CHROMA_GUIDE_EPS = 1e-4
#: The level of a JPEG restoration's own Wiener filter (:meth:`JPEGConstraint.wiener`), per root of
#: the file's mean luminance step: chosen on the held-out crops from 0.7 / 1.0 / 1.3 (on the
#: 128x128 ones, +0.11 / +0.14 / +0.15 dB at quality 10 and +0.31 / +0.38 / +0.42 at 90; on the
#: 256x256 ones 1.0 / 1.3 / 1.6 gave +0.06 / +0.04 / +0.01 at 20), a level of 14 at quality 10, 3.4 at 90.
#: With two passes of groups alone (:meth:`JPEGConstraint.wiener_passes`), 0.8 / 1.2 scored -0.03 to
#: -0.01 / -0.00 to +0.02 against 1.0 on the 256px and 128px crops at quality 10 and 40.
SELF_FILTER = 1.0
#: How many times a JPEG restoration takes :meth:`JPEGConstraint.wiener` (see its ``wiener_passes``).
JPEG_PASSES = 2


#: Rounds of :func:`unclipped`'s alternation.
UNCLIP_ROUNDS = 20


def unclipped(y: torch.Tensor, planes: Planes, *, rounds: int = UNCLIP_ROUNDS) -> torch.Tensor:
    """The decoded JPEG ``y`` as its coefficients made it, before the decoder's clip to [0, 1].

    The decoder rounds to whole levels, then clips: a pixel it left inside (0, 1) is the
    coefficients' image to within half a level; one at 0 or 1 is taken to be at or beyond that
    bound (the rounding allows half a level inside it too; held that tight, held-out crops scored
    0.00 to +0.06 dB better at quality 10 / 40 / 90, made vivid or not). Alternately moving the
    image's coefficients to the nearest whole steps (the file holds whole steps) and its pixels
    into what the decoded pixels so allow finds an image that both are true of. Without a clipped
    pixel ``y`` itself is returned (a pixel at 0 or 1 anywhere, common in photographs, costs 20
    rounds of the planes' transform, once for each observation: nothing measurable against a
    restoration).
    """
    clipped_low, clipped_high = y <= 0, y >= 1
    if not bool((clipped_low | clipped_high).any()):
        return y
    half = 0.5 / 255
    low = torch.where(clipped_low, -torch.inf, torch.where(clipped_high, 1.0, y - half))
    high = torch.where(clipped_high, torch.inf, torch.where(clipped_low, 0.0, y + half))
    z = y
    for _ in range(rounds):
        coefficients = planes.coefficients(z)
        z = planes.move(z, [c.round() - c for c in coefficients])
        z = torch.maximum(torch.minimum(z, high), low)
    return z


def prior_share(quantisation: Quantisation) -> float:
    """The restoration's weight against the decoded file's in :meth:`JPEGConstraint.correct`: 1
    for coarse tables (the decoded blocks are far from the image), falling for fine ones (the
    file keeps detail the prior cannot draw).

    Piecewise linear in the mean step of the luminance table through :data:`SHARE_POINTS`
    (Pillow's quality 10 has a mean step of 196, 20: 141, 40: 72, 75: 29, 90: 11.5). Chosen on 12
    held-out crops of 128x128 (not the benchmark), best weight by quality: 10: 1 (28.47 dB; 1/2:
    28.03, the decoded file 26.90), 20: 3/4 (30.84; 1: 30.69), 30: 3/4 (32.00; 1/2: 31.94),
    40 to 75: 1/2 (40: 33.04 against 32.47 with 1 and 31.96 decoded; 75: 36.04, 34.82, 35.24), 90:
    1/4 to 1/2 (39.15; 38.76 decoded); and on a crop of samples/lake.png with a saturated magenta
    square, where at quality 90 and 95 only 1/10 still gains (29.57 against 29.54 decoded; 1/2:
    29.24). Without it the restoration was worse than the decoded file from quality 60 on.
    """
    steps, shares = zip(*SHARE_POINTS)
    return float(np.interp(quantisation.mean_step, steps, shares))


#: (mean luminance quantisation step, the restoration's weight) through which :func:`prior_share` runs.
SHARE_POINTS = ((6.0, 0.1), (30.0, 0.4), (70.0, 0.5), (190.0, 1.0))
#: Where a JPEG's decoded pixels keep within FLAT_LEVELS (0..255 units, the decoder's rounding) over
#: the window of FLAT_RADIUS pixels around a pixel, the file's value stands
#: (:meth:`JPEGConstraint.flat_kept`).
FLAT_RADIUS = 8
FLAT_LEVELS = 1.5


def flat_pixels(y: torch.Tensor) -> torch.Tensor:
    """Where ``y`` is one colour: ``(N, 1, H, W)``, True where every channel stays within
    :data:`FLAT_LEVELS` (0..255 units) over the window of :data:`FLAT_RADIUS` around the pixel
    (cut short at the edges of the image)."""
    high, low, _ = window_extremes(y)
    return (high - low <= FLAT_LEVELS / 255).all(1, keepdim=True)


def window_extremes(y: torch.Tensor, observed: torch.Tensor | None = None, *, radius: int = FLAT_RADIUS):
    """Each channel's highest and lowest value over the window of ``radius`` around every pixel,
    and the share of the window that was seen: with ``observed`` (``(N or 1, 1, H, W)``, 1 where
    a pixel was seen) only the seen pixels count (a window without one has ``high`` below
    ``low``). Windows are cut short at the edges of the image."""
    k = 2 * radius + 1
    if observed is None:
        return _window_max(y, radius), -_window_max(-y, radius), torch.ones_like(y[:, :1])
    seen = (observed >= 0.5).expand(len(y), -1, -1, -1)
    high = _window_max(torch.where(seen, y, -torch.inf), radius)
    low = -_window_max(torch.where(seen, -y, -torch.inf), radius)
    return high, low, F.avg_pool2d(seen.to(y.dtype), k, 1, radius, count_include_pad=False)


def _window_max(t: torch.Tensor, radius: int) -> torch.Tensor:
    """The highest value over the square window of ``radius`` around each pixel (cut short at the
    edges): along the rows, then the columns, which is the square's (a 17 x 17 window at 1 MP in
    colour: 1.0 -> 0.3 s)."""
    k = 2 * radius + 1
    return F.max_pool2d(F.max_pool2d(t, (1, k), 1, (0, radius)), (k, 1), 1, (radius, 0))
