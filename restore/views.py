"""What training shows the encoder: for each task, a clean batch damaged as the solver would hand it
to the encoder (through the task's first guess), so that its code for a damaged image is a good
start. Restoration never reads this module; a task joins ``restore train --tasks`` with an entry in
:data:`TRAINING_VIEWS`.

Each view takes a clean batch ``(N, C, H, W)`` in [0, 1] and a numpy generator (random options
drawn from it) and returns the batch as the encoder would see it, with what the solver would tell
an encoder of it (:func:`restore.solver.encoder_context` of the task's data term and forward
model at the first guess).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .fidelity import Gaussian, JPEGConstraint, PoissonGaussian
from .model import no_context
from .physics import Denoising
from .solver import encoder_context
from .tasks import Deblur, Inpaint, Superres

View = tuple[torch.Tensor, torch.Tensor]      # what the encoder sees, and its context


#: The context of an undamaged batch: no noise, every pixel observed.
clean_context = no_context


#: The share of noisy batches that carry a sensor's noise (variance ``a x + b``) instead of one
#: sigma, and its range: 10 to 300 photo-electrons at white (``a = 1 / peak``), read noise of
#: 0.002 to 0.04 (``b``, its square).
SENSOR_SHARE = 0.5
PEAKS = (10.0, 300.0)
READ_NOISE = (0.002, 0.04)


def noisy(x: torch.Tensor, rng: np.random.Generator) -> View:
    """Gaussian noise of random sigma (up to 50/255) or, in :data:`SENSOR_SHARE` of the batches, a
    sensor's noise; one noise image for all channels of a gray crop, as a gray file replicated
    into colour has."""
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    if rng.random() < SENSOR_SHARE:
        a = 1 / float(np.exp(rng.uniform(*np.log(PEAKS))))
        data = PoissonGaussian(a, float(rng.uniform(*READ_NOISE)) ** 2)
        level = (data.a * x + data.b).sqrt()
    else:
        data = Gaussian(max(float(rng.uniform(0, 50 / 255)), 1e-4))
        level = torch.full_like(x, data.sigma)
    noise = torch.randn(x.shape, generator=g)
    gray = (x.amax(1) == x.amin(1)).flatten(1).all(1)
    noise[gray] = noise[gray][:, :1].expand(-1, x.shape[1], -1, -1)
    y = (x + level * noise).clamp(0, 1)
    return y, encoder_context(data, Denoising(), y)


def downsampled(x: torch.Tensor, rng: np.random.Generator) -> View:
    """Bicubic down- and upsampling by 2 or 4."""
    scales = [s for s in (2, 4) if x.shape[2] % s == 0 and x.shape[3] % s == 0 and x.shape[2] // s >= 4]
    if not scales:
        return x, clean_context(x)
    task = Superres(scale=int(rng.choice(scales)))
    physics = task.physics(x.shape[-2:], None)
    first = task.first_guess(physics, physics.A(x)).clamp(0, 1)
    return first, encoder_context(task.data_term(), physics, first)


def holed(x: torch.Tensor, rng: np.random.Generator) -> View:
    """Random holes filled by the first guess."""
    from .masks import random_holes
    missing = torch.from_numpy(np.stack([random_holes(x.shape[2], x.shape[3], rng)
                                         for _ in range(x.shape[0])])[:, None].astype(np.float32))
    task = Inpaint()
    physics = task.physics(x.shape[-2:], missing)
    first = task.first_guess(physics, physics.A(x)).clamp(0, 1)
    return first, encoder_context(task.data_term(), physics, first)


def blurred(x: torch.Tensor, rng: np.random.Generator) -> View:
    """A Gaussian blur of random width (0.5 to 3 pixels, less on tiny crops) and a little noise,
    through the Wiener first guess."""
    widest = min(3.0, (min(x.shape[-2:]) - 1) / 3)          # the reflected border fits the crop
    task = Deblur(kernel=f"gaussian:{rng.uniform(min(0.5, widest), widest):.2f}", sigma=float(rng.uniform(1, 5)))
    physics = task.physics(x.shape[-2:], None)
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    y = physics.blur_image(x) + task.sigma / 255 * torch.randn(x.shape, generator=g)
    m = task.margin
    first = task.first_guess(physics, y)
    inside = (..., slice(m, m + x.shape[2]), slice(m, m + x.shape[3]))
    return first[inside].clamp(0, 1), encoder_context(task.data_term(), physics, first)[inside]


def compressed(x: torch.Tensor, rng: np.random.Generator) -> View:
    """JPEG damage of random quality (5 to 60), 4:2:0 chroma, as a camera or a web page leaves it."""
    from .tasks.dejpeg import jpeg_round_trip
    crops = x.permute(0, 2, 3, 1).numpy()
    seen, context = [], []
    for crop in crops:
        decoded, quantisation = jpeg_round_trip(crop, int(rng.integers(5, 61)))
        decoded = torch.from_numpy(decoded).permute(2, 0, 1)[None].to(x.dtype)
        seen.append(decoded)
        context.append(encoder_context(JPEGConstraint(quantisation), Denoising(), decoded))
    return torch.cat(seen), torch.cat(context)


#: The view of each task that training knows, by task name.
TRAINING_VIEWS: dict[str, Callable[[torch.Tensor, np.random.Generator], View]] = {
    "denoise": noisy, "superres": downsampled, "inpaint": holed, "deblur": blurred, "dejpeg": compressed}
