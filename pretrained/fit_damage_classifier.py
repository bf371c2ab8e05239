"""Fit the weights with which ``inpaint --mask auto`` tells damage from texture among its candidates.

    python pretrained/build_training_data.py data/          # writes data/photos/
    python pretrained/fit_damage_classifier.py data/photos

Random 256 x 256 crops of the training photographs (never the benchmark's, never the held-out
ones) get generated old-photo damage (``restore.masks.old_photo_damage``), a third of them noise
as well. Each crop's candidates (``restore.damage.damage_candidates``) are filled by the shipped
photo prior and their evidence (``restore.damage.damage_evidence``) recorded. A logistic regression
is fitted on it, every candidate weighted by what a mistake on it costs in squared error (a damaged
pixel left: its damage's contrast; an intact pixel filled: the fill's distance from the truth), and
measured on held-out folds of crops against the rule it replaced; gray crops (the photographs
turned gray: old prints mostly are) get weights of their own, there being no colour to tell gray
damage by. The weights it prints go into ``restore/damage.py`` (EVIDENCE_WEIGHTS, EVIDENCE_BIAS).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from restore.damage import EVIDENCE, WINDOW, damage_candidates, damage_evidence
from restore.images import find_images, read_image
from restore.masks import old_photo_damage
from restore.pipeline import SolverSettings, restore
from restore.tasks import Inpaint

#: Every candidate's weight also holds this much (2 levels squared), so that a mistake where the
#: fill happens to be right still counts a little.
COST_FLOOR = (2 / 255) ** 2


def crops(folder: Path, *, count: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for path in rng.permutation(find_images(folder)):
        pixels = read_image(path).pixels
        h, w = pixels.shape[:2]
        if min(h, w) < size:
            continue
        t, l = rng.integers(h - size + 1), rng.integers(w - size + 1)
        crop = pixels[t:t + size, l:l + size]
        out.append(np.repeat(crop, 3, 2) if crop.shape[2] == 1 else crop)
        if len(out) == count:
            break
    return out


def candidate_table(clean: np.ndarray, rng: np.random.Generator, *, noisy: bool):
    """The evidence, truth and costs of one damaged crop's candidates."""
    damaged, truth = old_photo_damage(clean, rng)
    noise = rng.uniform(0.005, 0.03) if noisy else 0.0
    damaged = np.round(np.clip(damaged + rng.normal(0, noise, damaged.shape), 0, 1) * 255).astype(np.float32) / 255
    candidates = damage_candidates(damaged, noise=noise)
    task = Inpaint(sigma=max(1.0, 255 * noise))
    fill = restore(damaged, task, companion=candidates, settings=SolverSettings(samples=1))
    miss = np.abs(damaged - clean).max(axis=2) ** 2       # a damaged pixel left as it is
    spoil = np.abs(fill - clean).max(axis=2) ** 2         # an intact pixel replaced by the fill
    rule = _previous_rule(damaged, candidates, fill, noise)
    return (damage_evidence(damaged, candidates, fill, noise=noise)[candidates], truth[candidates],
            np.where(truth, miss, spoil)[candidates] + COST_FLOOR, rule[candidates])


def _previous_rule(damaged, candidates, fill, noise):
    """The rule the classifier replaced: only the clearest candidates where they crowd, then a
    fixed distance (0.3 plus 3 sigma) from the fill."""
    from restore.damage import HIGH, damage_scores
    crowd = cv2.blur(candidates.astype(np.float32), (WINDOW, WINDOW), borderType=cv2.BORDER_REFLECT)
    clear = damage_scores(damaged, noise=noise) > HIGH * (1 + crowd / 0.3)
    return candidates & clear & (np.abs(fill - damaged).max(axis=2) > 0.3 + 3 * noise)


def fit(x: np.ndarray, y: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights and bias of the cost-weighted logistic regression of ``y`` on ``x`` (raw units)."""
    x64 = torch.tensor(x, dtype=torch.float64)
    mean, scale = x64.mean(0), x64.std(0) + 1e-9
    z = (x64 - mean) / scale
    target = torch.tensor(y, dtype=torch.float64)
    weight = torch.tensor(cost / cost.mean(), dtype=torch.float64)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        each = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, target, reduction="none")
        loss = (weight * each).mean()
        loss.backward()
        return loss
    optimizer.step(closure)
    raw = (w / scale).detach()
    return raw.numpy(), float(b.detach() - (mean * raw).sum())


def measure_and_fit(tables: list, label: str) -> tuple[np.ndarray, float]:
    """Cross-validated cost on 4 folds of crops, then the weights fitted on all of ``tables``."""
    folds = np.concatenate([np.full(len(t[1]), i % 4) for i, t in enumerate(tables)])
    x, y, cost, rule = (np.concatenate(column) for column in zip(*tables))
    used = x.std(0) > 0                  # gray crops have no chroma to weigh
    spent = lambda found, where: (cost[where] * (found != y[where])).sum()
    fitted = 0.0
    for k in range(4):
        w, b = fit(x[folds != k][:, used], y[folds != k], cost[folds != k])
        fitted += spent(x[folds == k][:, used] @ w + b > 0, folds == k)
    everywhere = np.ones_like(y)
    print(f"{label}: squared error of the mistakes on held-out folds {fitted:.1f}; the previous rule "
          f"{spent(rule, everywhere):.1f}, filling every candidate {spent(everywhere, everywhere):.1f}, "
          f"none {spent(~everywhere, everywhere):.1f}")
    weights = np.zeros(x.shape[1])
    weights[used], bias = fit(x[:, used], y, cost)
    return weights, bias


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the training photographs")
    parser.add_argument("--crops", type=int, default=60, help="colour crops")
    parser.add_argument("--gray-crops", type=int, default=40, help="crops turned gray")
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    tables = {"colour": [], "gray": []}
    for i, clean in enumerate(crops(args.folder, count=args.crops + args.gray_crops, size=256, rng=rng)):
        kind = "colour" if i < args.crops else "gray"
        if kind == "gray":
            clean = clean.mean(axis=2, keepdims=True)
        tables[kind].append(candidate_table(clean, rng, noisy=i % 3 == 0))
        print(f"{kind} crop {len(tables[kind])}: {len(tables[kind][-1][1])} candidates, "
              f"{tables[kind][-1][1].mean():.0%} damage", flush=True)
    weights, biases = {}, {}
    for kind, kind_tables in tables.items():
        weights[kind], biases[kind] = measure_and_fit(kind_tables, kind)
    print("EVIDENCE_WEIGHTS = {" + ", ".join(
        f'"{kind}": np.array([' + ", ".join(f"{v:.4g}" for v in w) + "], np.float32)" for kind, w in weights.items())
        + "}   # " + ", ".join(EVIDENCE))
    print("EVIDENCE_BIAS = {" + ", ".join(f'"{kind}": {b:.4g}' for kind, b in biases.items()) + "}")


if __name__ == "__main__":
    main()
