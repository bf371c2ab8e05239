"""Super-resolution: ``A`` is antialiased bicubic downsampling by an integer scale (MATLAB ``imresize``)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .api import api_function
from .base import CLEAN_SIGMA, Baseline, Condition, OptionError, SolverDefaults, Task, option

SCALES = (2, 3, 4, 8)


@dataclass(frozen=True)
class Superres(Task):
    name = "superres"
    summary = "Upscale a low-resolution image (inverts antialiased bicubic downsampling)."
    # 20 steps: on 9 held-out crops (x4, bf16) 29.138 dB against 29.145 with 30 steps and 29.070
    # with 10, in 1.2 s instead of 2.0 s per 256x256 output.
    defaults = SolverDefaults(steps=20)
    reference = "Lanczos"

    sigma: float = field(default=CLEAN_SIGMA, metadata=option("Noise of the low-resolution pixels in 0..255 units."))
    factor: int = field(default=4, metadata=option("Upscaling factor: 2, 3, 4 or 8.", "--scale", "-s"))

    def __post_init__(self):
        super().__post_init__()
        if self.factor not in SCALES or isinstance(self.factor, bool):
            raise OptionError("scale", f"must be 2, 3, 4 or 8, got {self.factor}")

    @property
    def scale(self) -> int:
        return self.factor

    def physics(self, shape, companion):
        from ..physics import Downsampling
        return Downsampling(shape, self.factor)

    def first_guess(self, physics, y):
        from ..resize import imresize
        return imresize(y, (y.shape[-2] * self.factor, y.shape[-1] * self.factor))

    def input_estimate(self, damaged):
        from ..baselines import bicubic
        return bicubic(damaged, self.factor)

    @classmethod
    def speed_conditions(cls):
        return [c for c in cls.conditions() if c.name == "superres4"]

    @classmethod
    def conditions(cls):
        return [Condition(f"superres{s}", cls(factor=s)) for s in (2, 4)]

    def simulate(self, clean, rng, companion=""):
        import torch
        t = torch.from_numpy(clean).permute(2, 0, 1)[None]
        return self.physics(clean.shape[:2], None).A(t)[0].permute(1, 2, 0).numpy(), None

    def baselines(self):
        from .. import baselines as b
        s = self.factor
        return [Baseline("bicubic", None, lambda y, _: b.bicubic(y, s)),
                Baseline("Lanczos", None, lambda y, _: b.lanczos(y, s))]

    @classmethod
    def training_view(cls, x, rng):
        """Bicubic down- and upsampling by 2 or 4."""
        scales = [s for s in (2, 4) if x.shape[2] % s == 0 and x.shape[3] % s == 0 and x.shape[2] // s >= 4]
        if not scales:
            return x
        task = cls(factor=int(rng.choice(scales)))
        physics = task.physics(x.shape[-2:], None)
        return task.first_guess(physics, physics.A(x)).clamp(0, 1)


superres = api_function(Superres, "Upscale by ``scale`` (2, 3, 4 or 8), inverting antialiased bicubic "
                                  "downsampling; ``tile`` is in output pixels.")
