"""Training a VAE prior by maximising the ELBO on random crops."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .data import CropSampler, degrade, to_gray
from .model import VAE, save_checkpoint, vae_loss


@dataclass
class TrainSettings:
    steps: int = 20000
    batch_size: int = 16
    crop: int = 64
    lr: float = 1e-3
    degraded_fraction: float = 0.5   # share of each batch the encoder sees damaged
    gray_fraction: float = 0.0       # share of crops turned gray (colour priors meet gray photos too)
    checkpoint_every: int = 500
    seed: int = 0
    init: str | None = None          # checkpoint the weights started from (recorded, not read here)


def train(model: VAE, sampler: CropSampler, settings: TrainSettings, out: Path, *,
          device: torch.device, resume: dict | None = None, progress: bool = True) -> dict:
    """Train ``model`` and checkpoint it to ``out``; returns the final metadata.

    Half of every batch (``degraded_fraction``) is shown to the encoder damaged
    (noise, holes, downsampling) with the clean crop as the reconstruction
    target, so its code for a damaged image is a good start for the solver.
    """
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    step, seconds = 0, 0.0
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        step, seconds = resume["meta"]["steps"], resume["meta"]["seconds"]
    rng = np.random.default_rng(settings.seed + step)
    torch_rng = torch.Generator(device=device).manual_seed(settings.seed + step)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.steps, eta_min=settings.lr / 20,
                                                          last_epoch=step - 1 if step else -1)
    n_bad = int(round(settings.batch_size * settings.degraded_fraction))
    bar = tqdm(total=settings.steps, initial=step, disable=not progress, desc="training", unit="step")
    start = time.perf_counter() - seconds

    def meta():
        return {"steps": step, "seconds": round(time.perf_counter() - start, 1), "device": str(device),
                "images": len(sampler), "settings": asdict(settings)}

    while step < settings.steps:
        clean = sampler.batch(settings.batch_size)
        if settings.gray_fraction and clean.shape[1] == 3:
            gray = torch.from_numpy(rng.random(len(clean)) < settings.gray_fraction)
            clean[gray] = to_gray(clean[gray]).expand(-1, 3, -1, -1)
        seen = clean.clone()
        if n_bad:
            seen[:n_bad] = degrade(clean[:n_bad], step % 3, rng)
        loss, stats = vae_loss(model, seen.to(device), clean.to(device), torch_rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        schedule.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", psnr=f"{-10 * np.log10(max(stats['mse'], 1e-10)):.1f}",
                        gamma=f"{stats['gamma']:.3f}")
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            save_checkpoint(out, model, optimizer=optimizer.state_dict(), meta=meta())
    bar.close()
    model.eval()
    return meta()
