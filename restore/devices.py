"""Choosing the torch device (``--device``) and the arithmetic the networks run in (``--precision``)."""
from __future__ import annotations

import functools
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
#: The kinds of torch device restore runs on: its tile batches, arithmetic and memory checks know
#: these two (an Apple GPU, 'mps', or the shapes-only 'meta' failed deep inside torch).
DEVICE_TYPES = ("cpu", "cuda")
#: What a device may be called, for the messages.
DEVICE_NAMES = "auto, cpu, cuda or cuda:N"


class DeviceError(ValueError):
    """A device this machine does not have (no GPU, no such GPU), or one restore does not run on
    ('mps', 'meta'); the message says which to use."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``.

    An unknown name is a ``ValueError``, a device this machine lacks a :class:`DeviceError`;
    both messages begin with ``device``, so the command line can prefix ``--``.
    """
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        index = name.partition(":")[2]
        if index and not index.isdigit():
            raise ValueError(f"device {name}: unknown device; use {DEVICE_NAMES}")
        return check_device(name)
    raise ValueError(f"device {name}: unknown device; use {DEVICE_NAMES}")


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``, checked to exist here before anything is put on it
    (else torch's own error surfaces later, far from its cause).

    ``"auto"`` is a GPU when there is one, else the CPU, as on the command line. A name torch does
    not know is a ``ValueError``; a device restore does not run on (only ``cpu`` and ``cuda`` ones)
    or this machine lacks, a :class:`DeviceError`.
    """
    if isinstance(device, str) and device.strip().lower() == "auto":
        return resolve_device("auto")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device}: unknown device; use {DEVICE_NAMES}") from None
    if device.type not in DEVICE_TYPES:
        raise DeviceError(f"device {device}: restore runs on CPUs and CUDA GPUs only; use {DEVICE_NAMES}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device}: no CUDA GPU is available here; use cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {device}: there are {count} GPU(s); use cuda:0..cuda:{count - 1}")
    return device


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux's /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """The dtype the networks run in: ``fp32``, ``bf16``, or ``auto``.

    ``auto`` is bfloat16 where the hardware has matrix units for it -- a CUDA GPU
    that supports it, a CPU with AMX or AVX512-BF16 (there bf16 convolutions ran
    3.5x faster than fp32) -- and float32 elsewhere, where bf16 may run slower.
    """
    name = name.strip().lower()
    if name not in PRECISIONS:
        raise ValueError(f"precision must be auto, fp32 or bf16, got {name!r}")
    if name == "fp32":
        return torch.float32
    if name == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu" and cpu_flags() & {"amx_bf16", "avx512_bf16"}:
        return torch.bfloat16
    return torch.float32


def precision_name(name: str, device: str | torch.device) -> str:
    """What ``--precision name`` resolves to on ``device``: ``"bf16"`` or ``"fp32"``."""
    return "bf16" if resolve_precision(name, torch.device(device)) == torch.bfloat16 else "fp32"


#: Bytes a tile pixel holds on the device during a solver step: the decoder's activations kept for
#: the backward pass (about 24 maps of 48 float32 channels for the photo prior), with room to spare.
BYTES_PER_TILE_PIXEL = 24 * 48 * 4


def tile_batch(device: torch.device, tile: int) -> int:
    """Tiles per solver call: 4 on a CPU (more gains nothing on a few cores); on a GPU as many as
    half its free memory holds, up to 64."""
    if device.type != "cuda":
        return 4
    free, _total = torch.cuda.mem_get_info(device)
    return max(1, min(64, int(free / 2 // (BYTES_PER_TILE_PIXEL * tile * tile))))


class Autocast:
    """A prior whose networks run under autocast in ``dtype``; what goes in and comes out is float32.

    The encoder and the decoder passes of the search run in ``dtype``; the decode that makes
    the output (``decode_with_scale``, the solver's last x-step) stays in float32 unless
    ``float32_output`` is False: in bf16 its rounding lands in the detail the data do not
    constrain (held-out crops: -0.06 dB at x2 super-resolution and with half the pixels
    missing; nothing measurable in denoising). The solver's x-step, objective and optimizer
    state are float32 throughout. Every other attribute is the prior's own.
    """

    def __init__(self, vae, dtype: torch.dtype, *, float32_output: bool = True):
        self.vae, self.dtype, self.float32_output = vae, dtype, float32_output
        self.device_type = next(vae.parameters()).device.type

    def __getattr__(self, name):
        return getattr(self.vae, name)

    def _run(self, network, *args):
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = network(*args)
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()

    def encode(self, x, context=None):
        return self._run(self.vae.encode, x, context)

    def decode(self, z):
        return self._run(self.vae.decode, z)

    def decode_with_scale(self, z):
        if self.float32_output:
            return self.vae.decode_with_scale(z.float())
        return self._run(self.vae.decode_with_scale, z)
