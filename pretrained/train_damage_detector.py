"""Train the network with which ``inpaint --mask auto`` finds scratches, dust and specks.

    python pretrained/build_training_data.py data/                     # writes data/photos/
    python pretrained/train_damage_detector.py data/photos --out pretrained/damage.pt --minutes 60

Random crops of the training photographs (never the benchmark's, never the held-out ones; a fifth
of the photographs, those whose file name without its suffix has a CRC-32 that is a multiple of 5,
is also kept out to choose the detector's thresholds on) get generated old-photo damage
(``restore.masks.old_photo_damage``): two in five turned gray (old prints mostly are), a quarter
with their colour channels permuted, half mirrored left to right and half upside down, a third
with noise of sigma 0.005-0.03 (``--max-noise`` raises the top; gray on the gray ones; the network
is told its level); with ``--saturated``, a share of them with one side of a straight edge painted a
saturated colour first (:func:`saturated_side`; ``--any-hue`` for hues beyond the cube's corners). The
network (``restore.detector.DamageDetector``) learns the damage pixel by pixel (binary
cross-entropy, damage weighted 3 to 1, since a scratch left costs more than a pixel refilled);
pixels the damage moved by 2 to 8 levels (a scratch as light as the sky it crosses) have no say.
With ``--miss-cost`` and ``--refill-cost`` each pixel weighs what calling it wrong costs in
squared error (:func:`costs`), so the network learns hardest where a mistake shows most.
Adam, cosine-decayed learning rate over the minutes given; a checkpoint every 200 steps
(``--resume`` continues one; with ``--new-schedule`` the rate's schedule starts again, and a
``--width`` above the checkpoint's widens the network without changing what it computes: the new
channels start with no effect on the old ones or on the output, and Adam starts afresh).
"""
from __future__ import annotations

import argparse
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from restore.detector import DamageDetector, DetectorConfig, detector_inputs, read_detector
from restore.model import save_checkpoint
from restore.images import find_images, read_image
from restore.masks import old_photo_damage

#: Damage pixels weigh this much more than intact ones in the loss.
DAMAGE_WEIGHT = 3.0

#: With ``--miss-cost`` / ``--refill-cost``: the change (in [0, 1] units) at which a wrong call
#: weighs what it weighs without them, and the bounds of the weight (a wrong call on a pixel the
#: damage barely moved still teaches something; one on a pixel it moved a lot must not swamp the rest).
COST_SCALE, COST_BOUNDS = 0.3, (0.2, 8.0)


def saturated_side(clean: np.ndarray, rng: np.random.Generator, *, any_hue: bool = False) -> np.ndarray:
    """The crop with the side of a random straight edge painted one corner of the colour cube
    (saturated magenta, cyan, pure red ...) with a fine grain of up to 6 levels: a hard edge
    between colours the photographs rarely hold, which is no scratch. With ``any_hue``, half the
    time a fully saturated colour of any hue and brightness 0.2-1 instead (a dark red, a deep
    blue), so that specks on such colours still read as damage."""
    h, w = clean.shape[:2]
    angle, offset = rng.uniform(0, 2 * np.pi), rng.uniform(-0.4, 0.4) * min(h, w)
    yy, xx = np.mgrid[:h, :w] - np.array([(h - 1) / 2, (w - 1) / 2])[:, None, None]
    side = yy * np.cos(angle) + xx * np.sin(angle) > offset
    colour = rng.integers(0, 2, 3).astype(np.float32)
    if any_hue and rng.random() < 0.5:     # one channel full, one empty, one between; then darkened
        colour = (rng.uniform(0.2, 1) * np.array([1, rng.random(), 0])[rng.permutation(3)]).astype(np.float32)
    grain = rng.normal(0, rng.uniform(0, 6 / 255), (h, w, 1)).astype(np.float32)
    out = clean.copy()
    out[side] = np.clip(colour + grain, 0, 1)[side]
    return out


def held_out(path: Path) -> bool:
    """The fifth of the training photographs kept out of the detector's training."""
    return zlib.crc32(path.stem.encode()) % 5 == 0


def photographs(folder: Path, size: int) -> list[np.ndarray]:
    """The training photographs not :func:`held_out`, as 8-bit RGB, at least ``size`` on each side."""
    out = []
    for path in find_images(folder):
        if held_out(path):
            continue
        pixels = np.round(read_image(path).pixels * 255).astype(np.uint8)
        if min(pixels.shape[:2]) >= size:
            out.append(np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels)
    return out


def widened(detector: DamageDetector, width: int) -> DamageDetector:
    """``detector`` with ``width`` channels in every layer, computing exactly what it did: the new
    channels read everything (small random weights) but nothing reads them yet (zero weights)."""
    old = detector.config.width
    if width < old:
        raise ValueError(f"--width {width} is below the checkpoint's {old}; a network is only widened")
    wide = DamageDetector(DetectorConfig(width=width, dilations=detector.config.dilations))
    with torch.no_grad():
        for new, before in zip(wide.modules(), detector.modules()):
            if isinstance(new, torch.nn.Conv2d):
                rows, cols = before.weight.shape[:2]
                new.weight[:rows, :cols] = before.weight
                new.weight[:rows, cols:] = 0                # the old channels do not read the new ones
                new.bias[:rows] = before.bias
        wide.logits.weight[:, old:] = 0                     # nor does the output, at first
    return wide


def costs(clean: np.ndarray, damaged: np.ndarray, damage: np.ndarray, *, miss: bool, refill: bool) -> np.ndarray:
    """Each pixel's weight in the loss, as what calling it wrong costs in squared error, relative
    to :data:`COST_SCALE` squared and held within :data:`COST_BOUNDS` (1 where not asked for).

    A damage pixel missed keeps its change; an intact pixel called damage is refilled from its
    surroundings, which misses it by about its distance from the median of its 5x5 neighbourhood.
    """
    def weigh(change: np.ndarray) -> np.ndarray:
        return np.clip((change / COST_SCALE) ** 2, *COST_BOUNDS)
    out = np.ones(damage.shape, np.float32)
    if miss:
        out[damage] = weigh(np.abs(damaged - clean).max(axis=2))[damage]
    if refill:
        median = cv2.medianBlur(np.ascontiguousarray(clean, np.float32), 5).reshape(clean.shape)   # channel by channel
        out[~damage] = weigh(np.abs(clean - median).max(axis=2))[~damage]
    return out


def example(photos: list[np.ndarray], rng: np.random.Generator, size: int, *, miss_cost: bool = False,
            refill_cost: bool = False, max_noise: float = 0.03, saturated: float = 0.0, any_hue: bool = False):
    """One damaged crop: the network's inputs, the damage and each pixel's weight (:func:`costs`)."""
    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape[:2]
    t, l = rng.integers(h - size + 1), rng.integers(w - size + 1)
    clean = photo[t:t + size, l:l + size].astype(np.float32) / 255
    if rng.random() < saturated:
        clean = saturated_side(clean, rng, any_hue=any_hue)
    gray = rng.random() < 0.4
    if gray:
        clean = np.repeat(clean.mean(axis=2, keepdims=True), 3, axis=2)
    if rng.random() < 0.5:
        clean = clean[:, ::-1]
    if rng.random() < 0.5:            # it reads images upside down too (restore.detector.FLIPS)
        clean = clean[::-1]
    if rng.random() < 0.25:
        clean = clean[:, :, rng.permutation(3)]
    painted, damage = old_photo_damage(np.ascontiguousarray(clean), rng)
    # Pixels the damage moved by 2 to 8 levels have no say; the noise added next is no damage.
    faint = ~damage & (np.abs(painted - clean).max(axis=2) >= 2 / 255)
    noise = rng.uniform(0.005, max_noise) if rng.random() < 1 / 3 else 0.0
    grain = rng.normal(0, noise, (size, size, 1 if gray else 3))      # a gray print's noise is gray
    damaged = np.round(np.clip(painted + grain, 0, 1) * 255).astype(np.float32) / 255
    weight = (~faint) * costs(clean, painted, damage, miss=miss_cost, refill=refill_cost)
    return detector_inputs(damaged, noise=noise), damage.astype(np.float32), weight.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the training photographs")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--crop", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--width", type=int, help=f"feature channels (default {DetectorConfig.width}; "
                        "with --resume: the checkpoint's, or more to widen it)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--miss-cost", action="store_true",
                        help="weigh each damage pixel by its squared change (what missing it costs)")
    parser.add_argument("--refill-cost", action="store_true",
                        help="weigh each intact pixel by what refilling it from its surroundings costs")
    parser.add_argument("--max-noise", type=float, default=0.03,
                        help="the highest noise sigma of the noisy third of the examples ([0, 1] units)")
    parser.add_argument("--saturated", type=float, default=0.0,
                        help="the share of examples with one side of a straight edge painted a saturated colour")
    parser.add_argument("--any-hue", action="store_true",
                        help="with --saturated: half the painted sides any fully saturated hue at brightness 0.2-1")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint at --out")
    parser.add_argument("--new-schedule", action="store_true",
                        help="with --resume: keep the weights and Adam's state, start the learning rate's schedule again")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    photos = photographs(args.folder, args.crop)
    torch.manual_seed(args.seed)
    detector, step, seconds, state = DamageDetector(DetectorConfig(width=args.width or DetectorConfig.width)), 0, 0.0, None
    if args.resume:
        detector, state = read_detector(args.out)
        step, seconds = state["meta"]["steps"], 0.0 if args.new_schedule else state["meta"]["seconds"]
        if args.width and args.width != detector.config.width:
            if not args.new_schedule:
                parser.error("--width with --resume widens the network: add --new-schedule")
            try:
                detector = widened(detector, args.width)
            except ValueError as e:
                parser.error(str(e))
    optimizer = torch.optim.Adam(detector.parameters(), lr=args.lr)
    if state is not None and detector.config.width == state["config"]["width"]:     # Adam's state fits
        optimizer.load_state_dict(state["optimizer"])
    detector.train()
    print(f"{sum(p.numel() for p in detector.parameters()):,} parameters, {len(photos)} photographs", flush=True)
    start, budget, average = time.perf_counter() - seconds, 60 * args.minutes, None

    def save() -> None:
        save_checkpoint(args.out, detector, optimizer=optimizer.state_dict(),
                      meta={"steps": step, "seconds": round(time.perf_counter() - start, 1),
                            "photographs": len(photos), "settings": {k: str(v) for k, v in vars(args).items()}})

    while (elapsed := time.perf_counter() - start) < budget:
        for group in optimizer.param_groups:     # cosine decay to 1/20 of the rate over the minutes
            group["lr"] = float(args.lr * (0.05 + 0.95 * (1 + np.cos(np.pi * elapsed / budget)) / 2))
        rng = np.random.default_rng([args.seed, step])
        inputs, damage, weight = (torch.from_numpy(np.stack(column)) for column in
                                  zip(*(example(photos, rng, args.crop, miss_cost=args.miss_cost,
                                                          refill_cost=args.refill_cost, max_noise=args.max_noise,
                                                          saturated=args.saturated, any_hue=args.any_hue)
                                                  for _ in range(args.batch_size))))
        each = F.binary_cross_entropy_with_logits(detector(inputs), damage, reduction="none",
                                                  pos_weight=torch.tensor(DAMAGE_WEIGHT))
        loss = (each * weight).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        average = loss.item() if average is None else 0.98 * average + 0.02 * loss.item()
        if step % 200 == 0:
            print(f"step {step}, {elapsed:.0f} s, loss {average:.4f}", flush=True)
            save()
    save()
    print(f"wrote {args.out} after {step} steps in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
