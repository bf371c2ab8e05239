"""JPEG artefact removal: the file's own quantisation says which images encode to it.

The forward model is the identity and the data term is the file's quantisation constraint
(:class:`~restore.fidelity.JPEGConstraint`): the restoration is the most plausible image, under
the prior, among those that a JPEG encoder with the file's tables would turn into the same file.
Its x-step is a projection, so each tile's output lies in that set: nothing the file says is
rewritten, only what the rounding lost is filled in (where tiles overlap, their blend may step
outside it by a fraction of a step). The blocks lie on the pixels as the file stores them: an
image with an EXIF orientation is restored turned back that way, and turned upright after.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .base import CompanionError, SolverDefaults, Task, check_quantisation


def jpeg_round_trip(clean: np.ndarray, quality: int, *, subsampling: int = 2) -> tuple[np.ndarray, Any]:
    """``clean`` (H, W, C) in [0, 1] written as a JPEG of ``quality`` and read back: the decoded
    pixels and the file's :class:`~restore.jpeg.Quantisation`."""
    from PIL import Image

    from ..jpeg import Quantisation
    pixels = np.round(np.clip(clean, 0, 1) * 255).astype(np.uint8)
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(quality), subsampling=subsampling)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        out = np.asarray(decoded, dtype=np.float32) / 255
    buffer.seek(0)
    return (out[:, :, None] if out.ndim == 2 else out), Quantisation.from_file(buffer)


@dataclass(frozen=True)
class Dejpeg(Task):
    name = "dejpeg"
    summary = "Remove JPEG artefacts (blocks, ringing), staying within what the file's own tables allow."
    # The encoder's estimate, moved into the file's set: on 12 held-out crops of 128x128 (never the
    # benchmark's) +1.01 / +0.75 / +0.29 dB over the decoded JPEG at quality 10 / 20 / 40. Solver
    # steps lose there (2 steps: -0.03 / +0.38 / +0.50, 10 steps worse at quality 10): the set
    # holds the blocky image too, and the search follows it. Smoothing the encoder's input
    # first (Gaussian 0.7 to 2 px) lost 0.1 to 0.4 dB.
    defaults = SolverDefaults(steps=0)
    filters_whole = True
    #: Restored files are PNGs unless -o names another format: a JPEG would be compressed again.
    output_suffix = ".png"
    modes = ("joint",)          # the file's quantisation set has no gradient to follow

    sigma: float | None = None                      # no noise: the file's rounding is the data term
    quantisation: Any = field(default=None, repr=False)   # a restore.jpeg.Quantisation, from the file

    def __post_init__(self):         # no noise level to check: sigma stays None
        check_quantisation(self.quantisation)

    @property
    def grid(self) -> int:
        return 8 if self.quantisation is None else self.quantisation.block

    def with_noise_level(self, pixels):
        return self

    def resolve(self, pixels, companion):
        from ..jpeg import Quantisation
        task = replace(self, quantisation=companion) if isinstance(companion, Quantisation) else self
        if task.quantisation is None:
            raise CompanionError("dejpeg needs the JPEG file's quantisation: restore.dejpeg(path), or "
                                 "quantisation=Quantisation.from_file(path) with the decoded pixels")
        if len(task.quantisation.tables) == 3 and pixels.shape[2] == 1:
            raise CompanionError("a colour JPEG's pixels came as gray; give all three channels")
        return task

    def companion_values(self, value, shape):
        return None

    def prior_advice(self, prior):
        """A prior without an encoder of its own for JPEG files reads the blocks as image (the
        photo-large prior's shared encoder: 0.5 dB below the photo prior's at quality 10 on
        held-out crops; with its own, 0.3 dB above)."""
        if self.name in getattr(prior.config, "task_encoders", ()):
            return None
        return "this prior has no encoder trained on JPEG files; the shipped photo priors have one and do better"

    def to_stored(self, pixels):
        from ..jpeg import to_stored
        return to_stored(pixels, self.quantisation.orientation)

    def from_stored(self, pixels):
        from ..jpeg import from_stored
        return from_stored(pixels, self.quantisation.orientation)

    def companion_from_source(self, path: Path):
        from ..jpeg import Quantisation
        return Quantisation.from_file(path)

    def data_term(self):
        from ..fidelity import JPEGConstraint
        return JPEGConstraint(self.quantisation)

    def physics(self, shape, companion):
        from ..physics import Denoising
        return Denoising()



def dejpeg(image, *, quantisation=None, prior="photo", steps: int | None = None, device="cpu",
           tile: int | None = None, precision: str = "auto", channel_axis: int = -1, progress=None,
           ensemble: int | None = None, quick: bool = False):
    """Remove JPEG artefacts within what the file allows.

    Parameters
    ----------
    image : path, array or tensor
        A JPEG file's path (its pixels and quantisation are read from it), or its decoded pixels
        (as :func:`restore.denoise` takes them) with ``quantisation``.
    quantisation : restore.jpeg.Quantisation, optional
        The file's tables and chroma cells, ``Quantisation.from_file(path)``; needed with pixels.
    prior, steps, device, tile, precision, channel_axis, progress, ensemble
        As :func:`restore.denoise` (steps default 0: the encoder's estimate, projected).
    quick : bool
        Leave out the restoration's own last filter (:meth:`~restore.fidelity.JPEGConstraint.wiener`):
        about three times faster, 0.2-0.6 dB lower on held-out crops (a megapixel at quality 10:
        7.5-9.3 s against 24 s, 2-core CPU, fp32; 6 crops of 256px at quality 10 / 40, -0.32 / -0.43 dB).

    Returns
    -------
    The restored image (for a path, ``(H, W, C)`` float32 in [0, 1]).
    """
    from ..jpeg import Quantisation
    from ..pipeline import SolverSettings, restore
    if isinstance(image, (str, Path)):
        from ..images import read_image
        if quantisation is not None:
            raise ValueError("quantisation: a path's file says its own; give the path alone, or decoded pixels "
                             "with quantisation")
        quantisation = Quantisation.from_file(image)
        image = read_image(Path(image)).pixels
    if quantisation is None:
        raise ValueError("quantisation: give Quantisation.from_file(path) with decoded pixels, or the file's path")
    return restore(image, Dejpeg(quantisation=quantisation), channel_axis=channel_axis, progress=progress,
                   settings=SolverSettings(prior=prior, steps=steps, device=device, tile=tile, precision=precision,
                                           ensemble=ensemble, quick=quick))
