"""Training a VAE prior by maximising the ELBO on random crops, and its encoder's context blocks
by distillation (:func:`train_context`)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .data import CropSampler, degrade, random_missing, to_gray
from .model import VAE, ConvVAE, save_checkpoint, vae_loss
from .operators import Inpaint


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


#: Damaged crops that :func:`train_context` draws its batches from (it stores the frozen
#: encoder layers' features of each: about 1 GB for 128-pixel crops of a 48-channel prior).
POOL_CROPS = 10000


def train_context(model: ConvVAE, sampler: CropSampler, settings: TrainSettings, out: Path, *,
                  device: torch.device, pool_crops: int = POOL_CROPS, progress: bool = True) -> dict:
    """Teach the encoder's context blocks to see through damage; every other weight stays.

    The prior without its context blocks is the teacher. For a crop with holes
    (mostly rectangles, as large as half the crop) the target is its code for
    the clean crop: with a receptive field wider than the hole the blocks can
    carry edges and shading across it. For a noisy or downsampled crop the
    target is its code for that damaged crop, so denoising and upscaling keep
    what the ELBO already taught them. The loss is KL(teacher || encoder) per
    latent position, so the encoder's variance says how sure it is under a hole.

    The crops are damaged once into a pool whose features (the output of the
    frozen encoder layers) are kept: a step then costs only the context blocks.
    """
    if model.config.context_blocks == 0:
        raise ValueError("the prior has no context blocks to train")
    model.to(device).eval()
    rng = np.random.default_rng(settings.seed)
    size = min(pool_crops, settings.steps * settings.batch_size)    # no more crops than the steps draw
    with torch.no_grad():
        features, target_mu, target_logvar = _context_pool(model, sampler, settings, size, rng, device)
    blocks = list(model.context.parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    for p in blocks:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(blocks, lr=settings.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.steps, eta_min=settings.lr / 20)
    bar = tqdm(total=settings.steps, disable=not progress, desc="training context", unit="step")
    start = time.perf_counter()
    for step in range(1, settings.steps + 1):
        pick = torch.from_numpy(rng.integers(len(features), size=settings.batch_size)).to(device)
        mu, logvar = model.encode_features(features[pick].float())
        t_mu, t_logvar = target_mu[pick], target_logvar[pick]
        loss = 0.5 * (logvar - t_logvar + (t_logvar.exp() + (t_mu - mu) ** 2) / logvar.exp() - 1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.update(1)
        bar.set_postfix(kl=f"{loss.item():.4f}")
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            meta = {"steps": step, "seconds": round(time.perf_counter() - start, 1), "device": str(device),
                    "images": len(sampler), "pool_crops": len(features), "settings": asdict(settings)}
            save_checkpoint(out, model, meta=meta)
    bar.close()
    for p in model.parameters():
        p.requires_grad_(True)
    return meta


def _context_pool(model: ConvVAE, sampler: CropSampler, settings: TrainSettings, size: int,
                  rng: np.random.Generator, device: torch.device, chunk: int = 32):
    """Damaged crops as frozen-encoder features, with the teacher's codes for them."""
    features, mus, logvars = [], [], []
    for start in tqdm(range(0, size, chunk), desc="damaging crops", unit="batch", leave=False):
        clean = sampler.batch(min(chunk, size - start))
        chunk = len(clean)
        if settings.gray_fraction and clean.shape[1] == 3:
            gray = torch.from_numpy(rng.random(chunk) < settings.gray_fraction)
            clean[gray] = to_gray(clean[gray]).expand(-1, 3, -1, -1)
        # 60% holes (two in three of them a rectangle), 20% noise, 20% downsampling.
        kind = rng.choice(3, size=chunk, p=[0.6, 0.2, 0.2])
        seen, teacher_sees = clean.clone(), clean.clone()
        holes = torch.from_numpy(kind == 0)
        if holes.any():
            op = Inpaint(random_missing(int(holes.sum()), clean.shape[2], clean.shape[3], rng, rectangles=2 / 3))
            seen[holes] = op.initial_guess(op.observe(clean[holes], 0.0)).clamp(0, 1)
        for k in (1, 2):
            other = torch.from_numpy(kind == k)
            if other.any():
                seen[other] = teacher_sees[other] = degrade(clean[other], 0 if k == 1 else 2, rng)
        feats = model.encoder[:-2](seen.to(device) * 2 - 1)
        mu, logvar = model.encode(teacher_sees.to(device), context=False)
        features.append(feats.half())     # half precision: the pool is the memory
        mus.append(mu)
        logvars.append(logvar)
    return torch.cat(features), torch.cat(mus), torch.cat(logvars)
