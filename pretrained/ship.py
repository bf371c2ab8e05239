"""Copy a trained checkpoint into pretrained/ as a shipped prior (or the damage detector).

    python pretrained/ship.py runs/photo.pt photo
    python pretrained/ship.py runs/damage.pt damage

Keeps the architecture, weights and training metadata, drops the optimizer
state (only needed to resume training), and records the file's SHA-256 in
SHA256SUMS, which loading checks.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

from restore.detector import read_detector
from restore.model import load_checkpoint, save_checkpoint

HERE = Path(__file__).resolve().parent


def ship(checkpoint: Path, name: str) -> str:
    target = HERE / f"{name}.pt"
    is_detector = torch.load(checkpoint, map_location="cpu", weights_only=True).get("architecture") == "DamageDetector"
    model, state = (read_detector if is_detector else load_checkpoint)(checkpoint)
    save_checkpoint(target, model, meta=state.get("meta", {}))
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    sums = HERE / "SHA256SUMS"
    lines = [l for l in (sums.read_text().splitlines() if sums.exists() else []) if not l.endswith(f"  {target.name}")]
    sums.write_text("\n".join(sorted(lines + [f"{digest}  {target.name}"])) + "\n")
    return digest


if __name__ == "__main__":
    print(ship(Path(sys.argv[1]), sys.argv[2]))
