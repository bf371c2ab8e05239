"""Shared fixtures: small smooth test images and a tiny prior trained on them in the test session."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from restore.data import CropSampler
from restore.images import Picture, write_image
from restore.model import ConvVAE, ConvVAEConfig
from restore.train import TrainSettings, train


def smooth_images(n: int, size: int, seed: int, channels: int = 3) -> np.ndarray:
    """Random smooth colour fields: bicubic upsampling of coarse noise, values in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, 5, 5, generator=g)
    fine = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
    return fine.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def write_smooth_folder(folder, n: int = 2, size: int = 48, seed: int = 4):
    """``n`` smooth ``size`` x ``size`` images written to ``folder`` (made if new) as im0.png, im1.png, ..."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(smooth_images(n, size, seed=seed)):
        write_image(folder / f"im{i}.png", Picture(im))


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory):
    """A folder of smooth 64x64 training images."""
    folder = tmp_path_factory.mktemp("train")
    for i, im in enumerate(smooth_images(24, 64, seed=1)):
        write_image(folder / f"im{i:02d}.png", Picture(im))
    return folder


@pytest.fixture(scope="session")
def tiny_prior(image_dir, tmp_path_factory):
    """A tiny convolutional VAE trained for a few hundred steps on smooth images; (model, path)."""
    torch.manual_seed(0)
    model = ConvVAE(ConvVAEConfig(width=16, latent_channels=4, levels=2, tile_size=32))
    sampler = CropSampler(sorted(image_dir.glob("*.png")), channels=3, crop=32, seed=0)
    path = tmp_path_factory.mktemp("prior") / "tiny.pt"
    train(model, sampler, TrainSettings(steps=250, batch_size=16, crop=32, lr=3e-3, checkpoint_every=250),
          path, device=torch.device("cpu"), progress=False)
    return model, path


@pytest.fixture
def clean_image() -> np.ndarray:
    """A held-out smooth 48x48 image (not in the training folder)."""
    return smooth_images(1, 48, seed=99)[0]


def without_data_filter(patch) -> None:
    """Restorations end at the prior's estimate, without the data's Wiener filter around it
    (``patch``: pytest's monkeypatch or one of its contexts)."""
    from restore.fidelity import Gaussian
    patch.setattr(Gaussian, "wiener", lambda self, pilot, y, physics, **options: pilot)
    patch.setattr(Gaussian, "pilot", lambda self, estimate, y, physics, **options: estimate)


@pytest.fixture(autouse=True)
def on_a_terminal(monkeypatch):
    """The command line as on a terminal, where it draws its progress bars (restore.cli._on_terminal);
    a test of a log file's output turns it off."""
    monkeypatch.setattr("restore.cli._on_terminal", lambda: True)
