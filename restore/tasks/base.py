"""What a restoration task is: one object that the Python API and the command line share, so that
nothing else asks which task it holds.

A task is a frozen dataclass whose fields are its options (noise level, scale, kernel, ...),
each with the help text the command line shows. The class says how to build the forward model
``A`` for a tile, what the observation's noise is (its data term), how to guess ``x`` from ``y``
before the solver starts, and what it reads besides the image (a mask). That is all a task for
one's own experiment needs: ``physics`` alone makes a working task. The benchmark's conditions
and baselines (:mod:`restore.conditions`) and training's views (:mod:`restore.views`) live with
them. Modules here import torch only inside methods, so the command line can list the tasks
without paying for it.
"""
from __future__ import annotations

import math

import numbers

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np

if TYPE_CHECKING:
    import torch

    from ..fidelity import DataTerm
    from ..physics import LinearPhysics

#: Noise assumed in an image that is not noisy, only damaged otherwise (holes, low resolution).
CLEAN_SIGMA = 1.0
#: The least noise level a task takes (0..255 units): far below a file's rounding, and above the least
#: its data term takes (restore.fidelity.gaussian.SIGMA_RANGE, [0, 1] units).
MIN_SIGMA = 1e-6
#: A sensor's gain or floor below this ([0, 1] units) is taken as 0 (a level's hundredth, squared,
#: is 1.5e-9).
NEGLIGIBLE_VARIANCE = 1e-9


class CompanionError(ValueError):
    """A companion (an inpainting mask) that does not fit its image; the message says why."""


class OptionError(ValueError):
    """A task option with a value it cannot take; ``option`` names it."""

    def __init__(self, option: str, reason: str):
        super().__init__(f"{option} {reason}")
        self.option, self.reason = option, reason


#: The largest seed taken (NumPy's classic bound): torch's generators overflow past 2**63, and training
#: seeds each step's generator with the seed plus the step.
MAX_SEED = 2**32 - 1


def check_seed(seed: int) -> None:
    """Refuse a seed outside 0..MAX_SEED (an :class:`OptionError` naming ``seed``)."""
    if not 0 <= seed <= MAX_SEED:
        raise OptionError("seed", f"must be 0 to {MAX_SEED} (2**32 - 1), got {seed}")


def option(help: str, *flags: str, parse: Callable[[str], Any] | None = None, required: bool = False,
           detector: bool = False) -> dict:
    """Field metadata: the command line's help, its flags (default ``--name``), a parser for
    text values, whether the command line insists on it, and whether it tunes the finding of a
    companion (``--mask auto``), so that it is refused beside a companion given as a file."""
    return {"help": help, "flags": flags, "parse": parse, "required": required, "detector": detector}


def parse_sigma(text: str) -> float | None:
    """A noise level typed on the command line: a number in 0..255 units, or ``auto`` (None)."""
    if text.strip().lower() == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise OptionError("sigma", f"{text!r}: give a number from {MIN_SIGMA:g} to 255 (0..255 units), or 'auto'") from None


def parse_noise(text: str) -> tuple[str, tuple[float, float] | None]:
    """``--noise``: ``("gaussian" | "poisson-gaussian" | "auto", (A, B) or None)``."""
    if not isinstance(text, str):
        raise OptionError("noise", f"must be text: gaussian, poisson-gaussian, poisson-gaussian:A,B or auto, got {text!r}")
    kind, colon, args = text.strip().lower().partition(":")
    if kind in ("gaussian", "auto", "poisson-gaussian") and not colon:
        return kind, None
    why = ""
    if kind == "poisson-gaussian":
        try:
            a, b = (float(v) for v in args.split(","))
        except ValueError:
            a = b = math.nan
            why = "needs two numbers A,B after the colon; "
        if 0 <= a <= 1 and 0 <= b <= 1 and a + b > 0:
            return kind, (a, b)
        outside = [f"{name} {value:g}" for name, value in (("A", a), ("B", b)) if not 0 <= value <= 1]
        if outside and not why:
            why = f"{' and '.join(outside)} outside [0, 1]; "
        elif not why:
            why = "A and B both 0; "
    raise OptionError("noise", f"{text!r}: {why}give gaussian, poisson-gaussian, poisson-gaussian:A,B "
                               "(A and B in [0, 1], not both 0) or auto")


def signal_dependent(a: float, b: float) -> bool:
    """Whether noise of variance ``a x + b`` is a sensor's rather than one level: its shot noise at
    mid-grey is at least half its floor, and not negligible (a standard deviation of 4 levels at mid-grey)."""
    return a * 0.5 >= 0.5 * b and a * 0.5 >= (4 / 255) ** 2


NOISE_HELP = ("Noise model: gaussian (one sigma), poisson-gaussian[:A,B] (a sensor's: variance A*x + B in [0, 1] "
              "units, estimated per image when not given) or auto (the model the estimate fits).")


def noise_field():
    """The ``noise`` option of a task that takes :class:`NoiseModel`."""
    return field(default="gaussian", metadata=option(NOISE_HELP, parse=lambda text: text))


def check_quantisation(value) -> None:
    """An :class:`OptionError` unless ``value`` is None or a :class:`restore.jpeg.Quantisation`."""
    from ..jpeg import Quantisation
    if value is not None and not isinstance(value, Quantisation):
        raise OptionError("quantisation", f"must be a JPEG file's tables, restore.jpeg.Quantisation.from_file(path), "
                                          f"or None; got {value!r}")


class JPEGSource:
    """What a task adds to take, beside a JPEG file's pixels, the file's quantisation (a
    :class:`restore.jpeg.Quantisation`; the task declares ``quantisation`` as a field): read from the
    file in batch mode (:meth:`companion_from_source`), or given to :func:`restore.pipeline.restore` as
    the companion. The file's rounding is then undone first (:meth:`outer_task`)."""

    quantisation = None

    def __post_init__(self):
        super().__post_init__()
        check_quantisation(self.quantisation)

    def companion_from_source(self, path):
        """A JPEG file's quantisation; None for other files."""
        from ..jpeg import Quantisation
        try:
            return Quantisation.from_file(path)
        except Exception:       # not a JPEG (or tables it cannot read): its pixels are all there is
            return None

    def companion_values(self, value, shape):
        from ..jpeg import Quantisation
        return None if isinstance(value, Quantisation) else super().companion_values(value, shape)

    def advice(self, path):
        """A JPEG whose tables cannot be used (4:1:1 chroma, CMYK) is restored as its pixels: said so."""
        from PIL import Image

        from ..jpeg import Quantisation
        try:
            Quantisation.from_file(path)
        except Exception as e:
            try:
                with Image.open(path) as image:
                    jpeg = image.format == "JPEG"
            except Exception:        # advice only: a file it cannot read is the reader's to report
                jpeg = False
            if jpeg:
                reason = str(e).removeprefix(f"{path}: ")
                return f"{path}: its JPEG rounding is not undone first ({reason}); restored as its pixels"
        return super().advice(path)

    def outer_task(self):
        # The file's rounding came after the damage the task restores (a camera's noise, a blur, a
        # downscale), which, restored as it is, takes the blocks for the image and sharpens or
        # enlarges them. It is undone first, within the file's tables (the dejpeg task), where
        # its blocks lie. On 12 held-out crops of 128px (256 / 384px for the upscale), PSNR dB as
        # it was / with the rounding undone first: noise 15 at quality 50 / 90, 29.85 / 30.71 and
        # 33.63 / 33.95; noise 5 at 30, 30.49 / 32.07; blur (Gaussian 2, noise 3) at 30 / 60 / 90,
        # 23.78 / 27.28, 26.09 / 28.88, 30.30 / 30.71 (the file 25.79, 26.46, 26.53); an upscale
        # x4 at 30 / 90, 22.16 / 23.67 and 25.43 / 25.88 (bicubic 22.33, 24.68).
        if self.quantisation is None:
            return super().outer_task()
        from .dejpeg import Dejpeg
        return Dejpeg(quantisation=self.quantisation)

    def with_source(self, companion):
        """This task with the file's quantisation, where ``companion`` is one."""
        from dataclasses import replace

        from ..jpeg import Quantisation
        return replace(self, quantisation=companion) if isinstance(companion, Quantisation) else self


class NoiseModel(JPEGSource):
    """What a task whose observation is noisy adds to take a sensor's noise as well as one sigma:
    its ``noise`` field (:func:`noise_field`) says which, and the data term follows it.

    Its ``quantisation``, where the observation was decoded from a JPEG file, says how to estimate
    the noise: as it was before the file's rounding, from the coefficients the file kept
    (:mod:`restore.noise`). Deblurring held-out crops (Gaussian 2, noise 3 / 10, quality 90): 30.40 /
    28.51 dB with it against 26.94 / 27.69 from the pixels."""

    noise: str

    def __post_init__(self):
        super().__post_init__()
        parse_noise(self.noise)

    def with_noise_level(self, pixels):
        if self.sigma is not None or self.quantisation is None:
            return super().with_noise_level(pixels)
        from dataclasses import replace

        from ..noise import estimate_noise
        return replace(self, sigma=max(estimate_noise(pixels, quantisation=self.quantisation), CLEAN_SIGMA))

    @classmethod
    def from_options(cls, **options):
        task = super().from_options(**options)
        if parse_noise(task.noise)[0] != "gaussian" and task.sigma is not None:
            raise OptionError("sigma", f"is the one level of Gaussian noise, which noise {task.noise!r} does not "
                                       "take; leave sigma out, or make the noise gaussian")
        return task

    def resolve(self, pixels, companion=None):
        """The noise made definite: sigma estimated for Gaussian noise; ``A, B`` for a sensor's, with
        ``sigma`` its level at mid-grey (what a one-level step such as a Wiener guess takes). A JPEG
        file's quantisation as the companion (:meth:`companion_from_source`) becomes the task's."""
        from dataclasses import replace

        from ..jpeg import Quantisation
        from ..noise import estimate_poisson_gaussian
        if isinstance(companion, Quantisation):
            return self.with_source(companion).resolve(pixels)
        kind, params = parse_noise(self.noise)
        if kind == "gaussian":
            return self.with_noise_level(pixels)
        if params is None:
            a, b = estimate_poisson_gaussian(pixels, quantisation=self.quantisation)
            if kind == "auto" and not signal_dependent(a, b):
                return replace(self, noise="gaussian").with_noise_level(pixels)
            params = (a, b)
        return self._with_sensor(*params)

    #: Whether the observation is the image itself plus the noise, so that a restoration is its mean.
    observes_image = False

    def refined_by(self, unresolved):
        """An estimated sensor's noise, where a restoration is the observation's mean: the blocks
        it shows smooth hold the noise alone (:func:`restore.noise.estimate_poisson_gaussian`)."""
        return (self.observes_image and self.sensor is not None and parse_noise(unresolved.noise)[1] is None
                and self.quantisation is None)     # the smooth blocks' fit reads the detail a JPEG rounds away

    def refined(self, unresolved, pixels, restoration):
        """``auto`` chooses again on the refitted estimate: texture had pushed the first one up."""
        from dataclasses import replace

        from ..noise import estimate_poisson_gaussian
        a, b = estimate_poisson_gaussian(pixels, pilot=restoration, start=self.sensor)
        if parse_noise(unresolved.noise)[0] == "auto" and not signal_dependent(a, b):
            return replace(unresolved, noise="gaussian").with_noise_level(pixels)
        return self._with_sensor(a, b)

    def _with_sensor(self, a, b):
        """This task with a sensor's noise ``a, b`` and ``sigma`` its level at mid-grey."""
        from dataclasses import replace
        # A fit's leftovers far below a level's hundredth (2.3e-17 printed as the gain) are none.
        a, b = (0.0 if v < NEGLIGIBLE_VARIANCE else min(float(v), 1.0) for v in (a, b))    # in [0, 1] units
        if a + b <= 0:      # an image without noise (a flat one): the floor of a clean photograph's
            b = (CLEAN_SIGMA / 255) ** 2
        level = min(255.0, max(CLEAN_SIGMA, (a * 0.5 + b) ** 0.5 * 255))
        return replace(self, noise=f"poisson-gaussian:{a:.6g},{b:.6g}", sigma=level)

    @property
    def estimates_noise(self) -> bool:
        """A sensor's ``A, B`` given are not estimated; its model alone, or ``auto``, is."""
        kind, params = parse_noise(self.noise)
        return params is None and (kind != "gaussian" or self.sigma is None)

    @property
    def sensor(self) -> tuple[float, float] | None:
        """``(A, B)`` of a resolved Poisson-Gaussian noise, else None."""
        kind, params = parse_noise(self.noise)
        return params if kind == "poisson-gaussian" else None

    def data_term(self):
        # A JPEG file's observation is restored after its blocks are undone, which leaves some of
        # its rounding in it: the data term is told so (used where the observation is blurred).
        from ..fidelity import Gaussian, PoissonGaussian, jpeg_leftover
        leftover = jpeg_leftover(self.quantisation)
        if self.sensor is not None:
            return PoissonGaussian(*self.sensor, leftover=leftover)
        return Gaussian(self.sigma / 255, leftover=leftover)

    def describe_noise(self):
        if self.sensor is not None:
            said = "Poisson-Gaussian noise A {:.4g}, B {:.4g}".format(*self.sensor)
        else:
            said = super().describe_noise()
        return f"{said}, before the JPEG's rounding" if said and self.quantisation is not None else said


def option_fields(task_type: type[Task]):
    """The fields of a task that are options."""
    return [f for f in fields(task_type) if "help" in f.metadata]


@dataclass(frozen=True)
class SolverDefaults:
    """What a task's restoration does unless told otherwise; chosen on held-out crops."""
    steps: int
    prior_weight: float = 1.0
    anchor: str = "prior"
    float32_output: bool = True    # the decode that makes the output in float32 under --precision bf16


#: The companion value that asks the task to find its companion in the image itself (``--mask auto``).
DETECT = "auto"


@dataclass(frozen=True)
class Companion:
    """A per-image input file besides the image (inpainting's mask), matched by name in batch mode.
    ``detectable``: the task can find it in the image itself (:data:`DETECT`, :meth:`Task.detect`)."""
    name: str
    help: str
    detectable: bool = False


@dataclass(frozen=True)
class Scores:
    psnr: float
    ssim: float


@dataclass(frozen=True)
class Task(ABC):
    """Base class of the tasks; subclasses are frozen dataclasses that declare a ``sigma`` field."""

    name: ClassVar[str] = "restore"      # the command and the Python function
    summary: ClassVar[str] = ""          # one line for --help
    defaults: ClassVar[SolverDefaults] = SolverDefaults(steps=20)
    companion: ClassVar[Companion | None] = None
    #: ``sigma=None`` (estimate it from the image) is allowed.
    estimates_sigma: ClassVar[bool] = False
    #: The default output's extension (None: the input's).
    output_suffix: ClassVar[str | None] = None
    #: The solver's modes the task's data term allows: the latent mode follows its gradient.
    modes: ClassVar[tuple[str, ...]] = ("joint", "latent")
    #: Whether the data term's last filter (restore.reconstructor.Reconstructor.finish) works on this
    #: task's observation (the image itself: noise, a JPEG's rounding), so that restore.restore runs it
    #: on the whole image once the prior's tiles are blended.
    filters_whole: ClassVar[bool] = False

    sigma: float | None

    def __post_init__(self):
        if self.sigma is None:
            if not self.estimates_sigma:
                raise OptionError("sigma", "must be given for this task")
        elif isinstance(self.sigma, bool) or not isinstance(self.sigma, numbers.Real):
            raise OptionError("sigma", f"must be a number (0..255 units) or None to estimate it, got {self.sigma!r}")
        elif not MIN_SIGMA <= self.sigma <= 255:
            raise OptionError("sigma", f"must be at least {MIN_SIGMA:g} and at most 255, got {self.sigma}")

    @classmethod
    def from_options(cls, **options):
        """The task from the options a user gave (the command line, the Python functions); an
        :class:`OptionError` where they contradict each other."""
        return cls(**options)

    @property
    def estimates_noise(self) -> bool:
        """Whether restoring estimates the noise from the image (``resolve`` then says what it found)."""
        return self.estimates_sigma and self.sigma is None

    # --- geometry --------------------------------------------------------------------------

    @property
    def scale(self) -> int:
        """Restored pixels per observed pixel along each side."""
        return 1

    @property
    def margin(self) -> int:
        """Restored pixels beyond the observation on every side that ``A`` reads (a blur's radius)."""
        return 0

    @property
    def grid(self) -> int:
        """Tiles start on multiples of this many observed pixels (a JPEG's block grid)."""
        return 1

    # --- restoration ----------------------------------------------------------------------

    def resolve(self, pixels: np.ndarray, companion: Any = None) -> Task:
        """This task made definite for one image (``(H, W, C)`` pixels in [0, 1]) and its companion:
        by default the noise level estimated where it was left to that."""
        return self.with_noise_level(pixels)

    def outer_task(self) -> Task | None:
        """The task of damage done after this one's (a small image's JPEG rounding, done after the
        downsampling), whose restoration the observation goes through first, at its own size; None
        by default."""
        return None

    def refined_by(self, unresolved: Task) -> bool:
        """Whether this task, resolved from ``unresolved`` (:meth:`resolve`), estimated what a first
        restoration of the image estimates better (then :meth:`refined`); by default nothing."""
        return False

    def refined(self, unresolved: Task, pixels: np.ndarray, restoration: np.ndarray) -> Task:
        """This task, resolved from ``unresolved``, estimated again from ``pixels`` (a sample of the
        image) and a first ``restoration`` of them; by default itself."""
        return self

    def companion_from_source(self, path: Path) -> Any:
        """What the image file itself says beside its pixels that the task needs (a JPEG's
        quantisation), read before any work; None by default."""
        return None

    def describe_noise(self) -> str | None:
        """The noise this task assumes, in words, for the estimate's note (None: nothing to say)."""
        return None if self.sigma is None else f"noise sigma {self.sigma:.1f}"

    def to_stored(self, pixels: np.ndarray) -> np.ndarray:
        """``(H, W, ...)`` pixels turned the way the task's observation lies in its file (a JPEG's
        blocks lie on the stored pixels, which a reader turns upright); by default as they are."""
        return pixels

    def from_stored(self, pixels: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_stored`."""
        return pixels

    def advice(self, path: Path) -> str | None:
        """A note for the user about the file at ``path`` before it is restored (damage this task
        does not model), or None."""
        return None

    def prior_advice(self, prior) -> str | None:
        """A note for the user about restoring this task with ``prior`` (a loaded model), once
        before a run, or None."""
        return None

    def with_noise_level(self, pixels: np.ndarray) -> Task:
        """This task with a definite ``sigma``: estimated from ``pixels`` where it was left to that."""
        if self.sigma is not None:
            return self
        from dataclasses import replace

        from ..noise import estimate_noise
        return replace(self, sigma=max(estimate_noise(pixels), CLEAN_SIGMA))

    def data_term(self) -> DataTerm:
        """How the observation was made from ``A(x)``: by default white Gaussian noise of ``sigma``."""
        from ..fidelity import Gaussian
        return Gaussian(self.sigma / 255)

    @abstractmethod
    def physics(self, shape: tuple[int, int], companion: torch.Tensor | None) -> LinearPhysics:
        """The forward model for tiles of ``shape`` (restored pixels, margin included), with their companion tiles."""

    def with_unseen_guessed(self, y: torch.Tensor, companion: torch.Tensor | None) -> torch.Tensor:
        """The observation ``y`` (1, C, H, W) with a guess from the whole image at the pixels it does
        not see (given its companion, (1, 1, H, W)), for tiles that see none of the image; by
        default ``y``."""
        return y

    def first_guess(self, physics: LinearPhysics, y: torch.Tensor) -> torch.Tensor:
        """A first image from the observation, for the encoder to start from (default ``A^T y``)."""
        return physics.A_adjoint(y)

    def skips_tile(self, companion: torch.Tensor | None) -> bool:
        """True for a tile (given its companion tile) with nothing to restore; its pixels are then
        kept exactly as observed. By default every tile is restored."""
        return False

    def kept_pixels(self, companion: np.ndarray | None) -> np.ndarray | None:
        """``(H, W)`` booleans: the pixels the output must copy from the input bit for bit (those
        the user said to keep), given the companion as :meth:`companion_values` gives it; None
        where the task restores every pixel."""
        return None

    def refine(self, physics: LinearPhysics, y: torch.Tensor,
               first: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        """A correction of the solver's last x-step, ``refine(x, D(z))``, for the observation ``y`` whose
        :meth:`first_guess` is ``first``, or None."""
        return None

    def map_variance(self, variance: np.ndarray, companion: np.ndarray | None) -> np.ndarray:
        """The uncertainty map's variance per pixel, ``(H, W)``, from the posterior samples' ``variance``
        and the companion (as :meth:`companion_values` gives it). By default the samples' own."""
        return variance

    def companion_values(self, value: Any, shape: tuple[int, int]) -> np.ndarray | None:
        """The companion given to the Python API as a ``(H, W)`` float32 array for an image of ``shape``."""
        if value is not None:
            raise CompanionError(f"{self.name} takes no {self.companion.name if self.companion else 'companion'} input")
        return None

    def detect(self, pixels: np.ndarray, *, settings: Any, progress: Callable[[int, int], None] | None = None,
               return_std: bool = False) -> Any:
        """Find the companion in ``(H, W, C)`` pixels and restore with it (a task whose companion is
        ``detectable``): a :class:`restore.damage.Repair` (pixels, the companion found, std)."""
        raise CompanionError(f"{self.name} cannot find its {self.companion.name if self.companion else 'companion'} "
                             "in the image; give it")

    def companion_note(self, companion: Any) -> str | None:
        """A note for the user about a companion read from its file (:meth:`read_companion`) that
        asks for something they may not mean (a mask that marks nothing), or None."""
        return None

    def read_companion(self, path: Path, *, max_pixels: int) -> Any:
        """The companion file at ``path``, in the form :meth:`companion_values` takes."""
        raise CompanionError(f"{path}: {self.name} takes no companion file")

    def input_estimate(self, damaged: np.ndarray) -> np.ndarray:
        """The damaged image at the output's size: what the output's scores are compared with."""
        return damaged

    # --- scores ------------------------------------------------------------------------------

    def score(self, reference: np.ndarray, result: np.ndarray) -> Scores:
        """PSNR and SSIM of integer images against a clean reference (see :mod:`restore.metrics`);
        super-resolution drops ``scale`` pixels at each border."""
        from ..metrics import psnr, ssim
        crop = self.scale if self.scale > 1 else 0
        return Scores(psnr(reference, result, crop=crop), ssim(reference, result, crop=crop))
