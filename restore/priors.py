"""The shipped priors and loading a prior by name or path.

The weights in ``pretrained/`` install as the package ``restore.pretrained``,
so they are found from a checkout, an editable install and a wheel alike.
``pretrained/SHA256SUMS`` lists each file's digest, checked on loading.
"""
from __future__ import annotations

import copy
import functools
import hashlib
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:                  # torch is imported when a prior is loaded, not before
    import torch

    from .model import VAE

SHIPPED = ("photo", "photo-large", "digits")


class PriorError(ValueError):
    """A prior that cannot be found or loaded; the message says what to do."""


def pretrained_dir() -> Path:
    return Path(str(resources.files("restore.pretrained")))


def prior_path(name_or_path: str) -> Path:
    """The file of a shipped prior (:data:`SHIPPED`) or a given checkpoint path."""
    if name_or_path in SHIPPED:
        path = pretrained_dir() / f"{name_or_path}.pt"
        if not path.is_file():
            raise PriorError(f"the shipped '{name_or_path}' prior is missing from {path.parent}; reinstall restore")
        return path
    path = Path(name_or_path)
    if not path.is_file():
        raise PriorError(f"{path}: no such prior; give one of {', '.join(SHIPPED)} (--model, or prior= in Python) or "
                         "the path of a .pt checkpoint")
    return path


def _expected_digest(path: Path) -> str | None:
    sums = path.parent / "SHA256SUMS"
    if not sums.is_file():
        return None
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name.strip() == path.name:
            return digest.strip()
    return None


def checked_file(path: Path) -> Path:
    """``path``, once its SHA-256 matches ``SHA256SUMS`` where it is a shipped file (else a
    :class:`PriorError` that says to reinstall)."""
    if not path.is_file():
        raise PriorError(f"{path} is missing; reinstall restore")
    if path.parent == pretrained_dir():
        expected = _expected_digest(path)
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if expected is not None and expected != actual:
            raise PriorError(f"{path}: SHA-256 {actual[:12]}... does not match SHA256SUMS; reinstall restore")
    return path


@functools.lru_cache(maxsize=4)
def _load(path: Path, device: str) -> VAE:
    checked_file(path)
    from .model import load_checkpoint

    import torch

    try:   # read on the CPU, so that only a bad file lands here, never a device's failure
        # The model's first weights are drawn before the checkpoint's replace them: from a fork
        # of torch's random numbers, so that loading a prior leaves the caller's sequence alone.
        with torch.random.fork_rng(devices=[]):
            model, _ = load_checkpoint(path, map_location="cpu")
    except Exception:
        raise PriorError(f"{path}: not a restore prior; give a checkpoint written by 'restore train'") from None
    return model.to(device)


def load_prior(name_or_path: str = "photo", device: str | torch.device = "cpu") -> VAE:
    """Load a prior: the file is read once per process and device, and each call returns a copy of
    its own, so that changing one (its weights, its dtype) changes no other restoration.

    Raises :class:`PriorError` for a missing or bad checkpoint, and
    :class:`~restore.devices.DeviceError` (checked first) for a device this machine lacks.
    """
    return copy.deepcopy(shared_prior(name_or_path, device))


def shared_prior(name_or_path: str = "photo", device: str | torch.device = "cpu") -> VAE:
    """:func:`load_prior`'s model itself, shared by every caller in the process: for restore's own
    use, which never changes it."""
    from .devices import check_device

    device = check_device(device)
    return _load(prior_path(str(name_or_path)).resolve(), str(device))
