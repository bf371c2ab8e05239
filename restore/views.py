"""What training shows the encoder: for each task, a clean batch damaged as the solver would hand it
to the encoder (through the task's first guess), so that its code for a damaged image is a good
start. Restoration never reads this module; a task joins ``restore train --tasks`` with an entry in
:data:`TRAINING_VIEWS`.

Each view takes a clean batch ``(N, C, H, W)`` in [0, 1] and a numpy generator (random options
drawn from it) and returns the batch as the encoder would see it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .tasks import Deblur, Inpaint, Superres


def noisy(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Gaussian noise of random sigma (up to 50/255); one noise image for all channels of a gray
    crop, as a gray file replicated into colour has."""
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    noise = float(rng.uniform(0, 50 / 255)) * torch.randn(x.shape, generator=g)
    gray = (x.amax(1) == x.amin(1)).flatten(1).all(1)
    noise[gray] = noise[gray][:, :1].expand(-1, x.shape[1], -1, -1)
    return (x + noise).clamp(0, 1)


def downsampled(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Bicubic down- and upsampling by 2 or 4."""
    scales = [s for s in (2, 4) if x.shape[2] % s == 0 and x.shape[3] % s == 0 and x.shape[2] // s >= 4]
    if not scales:
        return x
    task = Superres(factor=int(rng.choice(scales)))
    physics = task.physics(x.shape[-2:], None)
    return task.first_guess(physics, physics.A(x)).clamp(0, 1)


def holed(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random holes filled by the first guess."""
    from .masks import random_holes
    missing = torch.from_numpy(np.stack([random_holes(x.shape[2], x.shape[3], rng)
                                         for _ in range(x.shape[0])])[:, None].astype(np.float32))
    task = Inpaint()
    physics = task.physics(x.shape[-2:], missing)
    return task.first_guess(physics, physics.A(x)).clamp(0, 1)


def blurred(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A Gaussian blur of random width (0.5 to 3 pixels, less on tiny crops) and a little noise,
    through the Wiener first guess."""
    widest = min(3.0, (min(x.shape[-2:]) - 1) / 3)          # the reflected border fits the crop
    task = Deblur(kernel=f"gaussian:{rng.uniform(min(0.5, widest), widest):.2f}", sigma=float(rng.uniform(1, 5)))
    physics = task.physics(x.shape[-2:], None)
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    y = physics.blur_image(x) + task.sigma / 255 * torch.randn(x.shape, generator=g)
    m = task.margin
    return task.first_guess(physics, y)[..., m:m + x.shape[2], m:m + x.shape[3]].clamp(0, 1)


def compressed(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """JPEG damage of random quality (5 to 60), 4:2:0 chroma, as a camera or a web page leaves it."""
    from .tasks.dejpeg import jpeg_round_trip
    crops = x.permute(0, 2, 3, 1).numpy()
    out = [jpeg_round_trip(c, int(rng.integers(5, 61)))[0] for c in crops]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.dtype)


#: The view of each task that training knows, by task name.
TRAINING_VIEWS: dict[str, Callable[[torch.Tensor, np.random.Generator], torch.Tensor]] = {
    "denoise": noisy, "superres": downsampled, "inpaint": holed, "deblur": blurred, "dejpeg": compressed}
