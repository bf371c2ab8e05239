"""Training a VAE prior by maximising the ELBO on random crops."""
from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .data import CropSampler, colour_augment, to_gray
from .devices import PRECISIONS, resolve_precision
from .model import VAE, save_checkpoint, vae_loss
from .tasks import OptionError
from .tasks.base import check_seed
from .views import TRAINING_VIEWS, clean_context


@dataclass
class TrainSettings:
    steps: int = 20000
    batch_size: int = 16
    crop: int = 64
    lr: float = 1e-3
    degraded_fraction: float = 0.5   # share of each batch the encoder sees damaged
    gray_fraction: float = 0.0       # share of crops turned gray (colour priors meet gray photos too)
    colour_fraction: float = 0.0     # share of crops recoloured (restore.data.colour_augment)
    checkpoint_every: int = 500
    seed: int = 0
    init: str | None = None          # checkpoint the weights started from (recorded, not read here)
    # The damage the encoder sees, one task per step in turn (restore.views.TRAINING_VIEWS).
    tasks: tuple[str, ...] = tuple(TRAINING_VIEWS)
    precision: str = "auto"          # the networks' arithmetic (restore.devices.resolve_precision)
    loaders: int = 1                 # threads making batches ahead (a GPU outruns one)
    minutes: float | None = None     # a time budget: the learning rate decays over it and training stops
                                     # at its end (or after ``steps``, whichever comes first)
    task_encoder: str | None = None  # train only this task's own encoder (ConvVAE.for_task), all else frozen
    encoder_only: bool = False       # train only the shared encoder, against the frozen decoder
    # The prior (decoder, its scales) learns from the undamaged crops alone, the textbook ELBO; the
    # damaged ones teach only the encoder. Else every crop teaches both, and the decoder learns to
    # draw from the vaguer codes of damaged images: a blurrier prior with a larger scale.
    prior_from_clean: bool = False

    def __post_init__(self):
        """Refuse settings a run cannot take, before any work: an :class:`OptionError` naming the
        setting (the command line names its option)."""
        if self.precision not in PRECISIONS:
            raise OptionError("precision", f"must be auto, fp32 or bf16, got {self.precision!r}")
        unknown = set(self.tasks) - set(TRAINING_VIEWS)
        if unknown or not self.tasks:
            raise OptionError("tasks", f"must be some of {', '.join(TRAINING_VIEWS)}; "
                                       f"{'not ' + ', '.join(sorted(unknown)) if unknown else 'none given'}")
        self.tasks = tuple(self.tasks)
        for name in ("steps", "batch_size", "checkpoint_every", "loaders"):      # crop: check_crop
            if getattr(self, name) < 1:
                raise OptionError(name, f"must be 1 or more, got {getattr(self, name)}")
        check_seed(self.seed)
        if not 0 < self.lr <= 1:
            raise OptionError("lr", f"must be a positive number of at most 1 (Adam's step; 1e-3 is usual), got {self.lr}")
        for name in ("degraded_fraction", "gray_fraction", "colour_fraction"):
            if not 0 <= getattr(self, name) <= 1:        # (NaN too)
                raise OptionError(name, f"must be a share between 0 and 1, got {getattr(self, name)}")
        if self.minutes is not None and not 0 < self.minutes < math.inf:
            raise OptionError("minutes", f"must be a positive number, got {self.minutes}")
        if self.encoder_only and self.init is None:
            raise OptionError("encoder_only", "needs --init: the prior whose frozen decoder the encoder learns "
                              "against (a new model's decoder is random)")
        if self.encoder_only and self.task_encoder is not None:
            raise OptionError("encoder_only", "a task encoder is trained alone already; leave out --encoder-only")
        if self.prior_from_clean and (self.encoder_only or self.task_encoder is not None):
            raise OptionError("prior_from_clean", "trains the prior on clean crops; an encoder trained alone "
                              "leaves the prior as it is")
        if self.prior_from_clean and self.degraded_fraction == 1:
            raise OptionError("prior_from_clean", "needs clean crops: lower --degraded below 1")
        if self.task_encoder is not None and self.tasks != (self.task_encoder,):
            raise ValueError(f"a task encoder learns its own task's damage alone: tasks must be {self.task_encoder!r}")


def train(model: VAE, sampler: CropSampler, settings: TrainSettings, out: Path, *,
          device: torch.device, resume: dict | None = None, progress: bool = True,
          log: Callable[[str], None] | None = None) -> dict:
    """Train ``model`` and checkpoint it to ``out``; returns the final metadata. ``progress``: a bar
    (for a terminal); ``log``: told a line at each checkpoint written (for a log file, where a bar's
    redraws run into one line).

    A share of every batch (``degraded_fraction``) is shown to the encoder as
    the solver would hand it a damaged image (each task's view in :mod:`restore.views`, the
    tasks taking turns step by step), with the clean crop as the reconstruction
    target, so its code for a damaged image is a good start for the solver.
    """
    check_crop(model, settings.crop)
    views = [TRAINING_VIEWS[name] for name in settings.tasks]
    dtype = resolve_precision(settings.precision, device)
    model.to(device).train()
    learner = model if settings.task_encoder is None else model.for_task(settings.task_encoder)
    trained = list((learner.encoder if learner is not model or settings.encoder_only else model).parameters())
    for parameter in model.parameters():      # an encoder alone learns against the frozen rest
        parameter.requires_grad_(False)
    for parameter in trained:
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam(trained, lr=settings.lr)
    encoder = {id(p) for p in learner.encoder.parameters()}
    prior = [p for p in trained if id(p) not in encoder] if settings.prior_from_clean else []
    step, seconds = 0, 0.0
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        step, seconds = resume["meta"]["steps"], resume["meta"]["seconds"]
    torch_rng = torch.Generator(device=device).manual_seed(settings.seed + step)
    n_bad = int(round(settings.batch_size * settings.degraded_fraction))
    start = time.perf_counter() - seconds
    # The budget counts from the run's start, as the steps do: a resumed run goes on to the same end,
    # its learning rate on the same schedule.
    budget = None if settings.minutes is None else 60 * settings.minutes
    if budget is None:
        bar = tqdm(total=settings.steps, initial=step, disable=not progress, desc="training", unit="step")
    else:                 # the time budget is what ends the run (or the steps, if they end first)
        bar = tqdm(total=round(budget), initial=round(seconds), disable=not progress, desc="training",
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of --minutes "
                              "[{elapsed}<{remaining}{postfix}]")

    def progress_made() -> float:
        """How far along the run is, 0 to 1: in steps, or in time under a budget of minutes."""
        if budget is None:
            return step / settings.steps
        return min(1.0, (time.perf_counter() - start) / budget)

    def set_learning_rate() -> None:
        # Cosine decay to 1/20 of the rate, over the steps or over the minutes.
        floor = settings.lr / 20
        for group in optimizer.param_groups:
            group["lr"] = float(floor + (settings.lr - floor) * (1 + np.cos(np.pi * progress_made())) / 2)

    def meta():
        return {"steps": step, "seconds": round(time.perf_counter() - start, 1), "device": str(device),
                "images": sampler.image_count, "at_all_scales": len(sampler), "settings": asdict(settings), "skipped_steps": skipped_in_all}

    def batch(at: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The clean crops of step ``at``, what the encoder sees of them and what it is told
        (:func:`restore.solver.encoder_context`): drawn from a stream of their own, so batches
        made on several threads are those made one after the other."""
        rng = np.random.default_rng([settings.seed, at])
        clean = colour_augment(sampler.batch(settings.batch_size, rng), rng, settings.colour_fraction)
        if settings.gray_fraction and clean.shape[1] == 3:
            gray = torch.from_numpy(rng.random(len(clean)) < settings.gray_fraction)
            clean[gray] = to_gray(clean[gray]).expand(-1, 3, -1, -1)
        seen, context = clean.clone(), clean_context(clean)
        if n_bad:
            seen[:n_bad], context[:n_bad] = views[at % len(views)](clean[:n_bad], rng)
        return clean, seen, context

    # The next batches are made on other threads while this one trains.
    loader = ThreadPoolExecutor(max_workers=settings.loaders)
    upcoming = deque(loader.submit(batch, at) for at in range(step, min(step + settings.loaders, settings.steps)))
    skipped = 0                      # non-finite steps in a row
    skipped_in_all = (resume or {}).get("meta", {}).get("skipped_steps", 0)
    # Ctrl-C: the step under way ends, its checkpoint is written, and the run stops (a second one
    # stops at once, the last checkpoint kept).
    with _Stop() as stop, _closing(loader, bar):
        while step < settings.steps and progress_made() < 1 and not stop.asked:
            set_learning_rate()
            clean, seen, context = upcoming.popleft().result()
            if step + settings.loaders < settings.steps:
                upcoming.append(loader.submit(batch, step + settings.loaders))
            loss, stats = step_loss(learner, seen.to(device), clean.to(device), context.to(device), torch_rng,
                                    autocast=dtype, damaged=n_bad, prior=prior)
            optimizer.zero_grad(set_to_none=True)
            # A non-finite loss or gradient skips the update, so the weights (and every checkpoint)
            # stay finite; a run that keeps producing them has diverged and stops with a way out.
            finite = bool(torch.isfinite(loss))
            if finite:
                loss.backward()
                finite = bool(torch.isfinite(torch.nn.utils.clip_grad_norm_(trained, 5.0)))
            if finite:
                optimizer.step()
                skipped = 0
            else:
                skipped += 1
                skipped_in_all += 1
                if skipped >= MAX_SKIPPED_STEPS:
                    raise TrainError(f"{out}: training diverged at step {step + 1} (the loss was not finite "
                                     f"{skipped} steps running); lower --lr, or train without --pixel-scale first "
                                     f"and add it with --init ({out} holds the last checkpoint written: pass "
                                     "--overwrite to start again)")
            step += 1
            if budget is None:
                bar.update(1)
            else:
                bar.n = min(round(budget), round(time.perf_counter() - start))
            psnr = -10 * np.log10(max(stats["mse"], 1e-10))
            bar.set_postfix(**({} if budget is None else {"step": step}), loss=f"{loss.item():.3f}",
                            psnr=f"{psnr:.1f}", gamma=f"{stats['gamma']:.3f}")
            if (step % settings.checkpoint_every == 0 or step == settings.steps or progress_made() >= 1
                    or stop.asked):
                save_checkpoint(out, model, optimizer=optimizer.state_dict(), meta=meta())
                if log is not None:
                    log(f"step {step}/{settings.steps}, {time.perf_counter() - start:.0f} s: loss {loss.item():.4f}, "
                        f"PSNR {psnr:.1f} dB; wrote {out}")
        if skipped and not stop.asked and not _finite_loss(learner, batch(step), device, torch_rng, dtype, n_bad):
            # Ended within a run of skipped steps, and a fresh batch fails too: the weights (not
            # updated since) give no finite loss. One bad batch at the end is no divergence.
            raise TrainError(f"{out}: training diverged: the loss was not finite in its last {skipped} steps, nor "
                             f"on a fresh batch; lower --lr and train again with --overwrite ({out} holds the "
                             "weights that diverged)")
    model.eval()
    # (asked during the last step, the run has ended as it would have: nothing is left to go on with)
    if stop.asked and step < settings.steps and progress_made() < 1:
        raise TrainInterrupted(f"interrupted at step {step}: {out} holds it; to go on, run the command again with "
                               "--resume (and without --overwrite)")
    return meta()


def _finite_loss(model: VAE, crops, device, generator, autocast, damaged: int) -> bool:
    """Whether ``model`` gives a finite loss on the batch ``crops`` (clean, seen, context)."""
    clean, seen, context = crops
    with torch.no_grad():
        loss, _ = step_loss(model, seen.to(device), clean.to(device), context.to(device), generator,
                            autocast=autocast, damaged=damaged)
    return bool(torch.isfinite(loss))


def step_loss(model: VAE, seen: torch.Tensor, clean: torch.Tensor, context: torch.Tensor,
              generator: torch.Generator, *, autocast: torch.dtype, damaged: int = 0,
              prior: Sequence[torch.nn.Parameter] = ()) -> tuple[torch.Tensor, dict]:
    """A batch's loss (:func:`restore.model.vae_loss`), its first ``damaged`` crops seen damaged.
    With ``prior`` (the decoder's parameters) those crops' loss reaches the encoder alone: the
    prior's parameters are constants in their graph. The statistics are then the clean crops'."""
    if not prior or damaged == 0:
        return vae_loss(model, seen, clean, generator, autocast=autocast, context=context)
    loss, stats = vae_loss(model, seen[damaged:], clean[damaged:], generator, autocast=autocast,
                           context=context[damaged:])
    for parameter in prior:
        parameter.requires_grad_(False)
    try:
        encoder_loss, _ = vae_loss(model, seen[:damaged], clean[:damaged], generator, autocast=autocast,
                                   context=context[:damaged])
    finally:
        for parameter in prior:
            parameter.requires_grad_(True)
    return torch.lerp(loss, encoder_loss, damaged / len(seen)), stats


#: Non-finite losses in a row after which a run counts as diverged.
MAX_SKIPPED_STEPS = 20


class TrainError(ValueError):
    """A training run that cannot start; the message names the file and the fix."""


@contextlib.contextmanager
def _closing(loader: ThreadPoolExecutor, bar: tqdm):
    """The batch makers stopped and the bar closed, however training ends (a second Ctrl-C too)."""
    try:
        yield
    finally:
        loader.shutdown(cancel_futures=True)
        bar.close()


class TrainInterrupted(Exception):
    """Training stopped by Ctrl-C after its checkpoint was written; the message says how to go on."""


class _Stop:
    """While entered, Ctrl-C asks (:attr:`asked`) rather than interrupts, so that the training step
    under way ends and is saved; a second Ctrl-C interrupts at once. Only the main thread receives
    signals, and a process told to ignore Ctrl-C (started in the background) goes on ignoring it:
    there Ctrl-C is left as it is."""

    def __init__(self):
        self.asked, self.installed, self.previous = False, False, None

    def _ask(self, signum, frame):
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self.previous, self.installed = signal.signal(signal.SIGINT, self._ask), True
        return self

    def __exit__(self, *exc):
        if self.installed:       # (None: a handler not set from Python, which Python's default stands for)
            signal.signal(signal.SIGINT, self.previous if self.previous is not None else signal.default_int_handler)


def build_model(arch: str, *, width: int = 64, latent: int | None = None, levels: int = 2, blocks: int = 1,
                pixel_scale: bool = False, context: bool = False) -> VAE:
    """A new prior: ``photo`` (convolutional, spatial latent; ``latent`` default 8; ``context``:
    its encoder told the damage) or ``digits`` (28x28, global latent; default 16)."""
    from .model import ConvVAE, ConvVAEConfig, DigitsVAE, DigitsVAEConfig
    if latent is not None and latent < 1:
        raise OptionError("latent", f"must be 1 or more, got {latent}")
    if arch == "digits":
        if context:
            raise TrainError("--context is for photo priors: the digits encoder reads the image alone")
        return DigitsVAE(DigitsVAEConfig(latent_dim=latent or 16, pixel_scale=pixel_scale))
    if arch == "photo":
        for name, value, least in (("width", width, 1), ("levels", levels, 0), ("blocks", blocks, 0)):
            if value < least:
                raise OptionError(name, f"must be {least} or more, got {value}")
        return ConvVAE(ConvVAEConfig(width=width, latent_channels=latent or 8, levels=levels, blocks=blocks,
                                     pixel_scale=pixel_scale, context=context))
    raise ValueError(f"architecture must be 'photo' or 'digits', got {arch!r}")


def model_from(path: Path, *, pixel_scale: bool = False, latent: int | None = None, seed: int = 0,
               context: bool = False) -> VAE:
    """A trainable copy of the prior at ``path``, given a per-pixel scale head if asked for, its
    latent grown to ``latent`` channels if that is more than it has (photo priors; the new
    channels' small random weights are drawn with ``seed``, so a rebuild starts the same), and
    encoders told the context if ``context`` (photo priors)."""

    from .model import ConvVAE
    from .priors import SHIPPED, load_prior
    if str(path) not in SHIPPED and not Path(path).is_file():
        raise TrainError(f"{path}: no such checkpoint; give --init a .pt checkpoint or a shipped prior "
                         f"({', '.join(SHIPPED)})")
    model = load_prior(str(path))       # a copy of its own, which training may change
    if latent is not None and latent != getattr(model.config, "latent_channels", None):
        if not isinstance(model, ConvVAE):
            raise TrainError(f"{path}: --latent with --init grows a photo prior's latent; this prior's is fixed")
        if latent < model.config.latent_channels:
            raise TrainError(f"{path}: has {model.config.latent_channels} latent channels; --latent can only "
                             "grow them (or leave --latent out)")
        model = model.with_latent_channels(latent, generator=torch.Generator().manual_seed(seed))
    if context:
        if not isinstance(model, ConvVAE):
            raise TrainError(f"{path}: --context is for photo priors; this one's encoder reads the image alone")
        model = model.with_context()
    return model.with_pixel_scale() if pixel_scale else model


def resume_from(out: Path, steps: int, minutes: float | None = None) -> tuple[VAE, TrainSettings, dict]:
    """The model, settings (with the new total of ``steps``, and of ``minutes`` where given: both count
    from the run's start, not the resumption's) and training state saved at ``out``."""
    from .model import load_checkpoint
    if not out.exists():
        raise TrainError(f"{out}: nothing to resume; run without --resume first")
    try:
        model, state = load_checkpoint(out)
    except Exception as e:
        raise TrainError(f"{out}: not a checkpoint written by 'restore train' ({type(e).__name__}); "
                         "give --out a new file, or --overwrite to start it again") from None
    if "optimizer" not in state:
        raise TrainError(f"{out} holds no training state (a shipped prior?); train a new one instead")
    done = state["meta"]["steps"]
    if steps <= done:
        raise TrainError(f"{out}: has trained {done} steps already; give --steps more than {done} to go on")
    saved = state["meta"]["settings"]
    # Checkpoints from before the deblurring task trained on these three, in this order.
    saved.setdefault("tasks", ("denoise", "inpaint", "superres"))
    saved.setdefault("precision", "fp32")          # and in float32
    saved.setdefault("colour_fraction", 0.0)
    saved.setdefault("loaders", 1)
    saved.setdefault("minutes", None)
    saved.setdefault("task_encoder", None)
    saved.setdefault("encoder_only", False)
    saved.setdefault("prior_from_clean", False)
    if minutes is not None:
        saved["minutes"] = minutes
    spent = state["meta"]["seconds"] / 60
    if saved["minutes"] is not None and spent >= saved["minutes"]:
        raise TrainError(f"{out}: has trained {spent:.1f} minutes already, its --minutes {saved['minutes']:g}; "
                         f"give --minutes more than {spent:.1f} to go on")
    return model, TrainSettings(**{**saved, "steps": steps}), state


def sampler_for(model: VAE, files: list[Path], *, crop: int, seed: int, note=None) -> CropSampler:
    """Crops for ``model``: flipped and at two scales for photographs, as they are for digits
    (``note``: told each file that cannot be read, :class:`CropSampler`)."""
    from .model import DigitsVAE
    check_crop(model, crop)
    digits = isinstance(model, DigitsVAE)
    return CropSampler(files, channels=model.channels, crop=crop, flips=not digits,
                       scales=(1.0,) if digits else (1.0, 0.5), seed=seed, note=note)


#: The smallest crop a photo prior trains on: one block of the JPEG damage the encoder learns to
#: see through (restore.views.compressed), and a latent of more than one code at 2 levels.
MIN_CROP = 8


def check_crop(model: VAE, crop: int) -> None:
    """Refuse a crop size ``model`` cannot train on (an :class:`OptionError` naming ``crop``): the
    digits prior's own size, or a photo prior's multiple of ``2**levels`` of at least :data:`MIN_CROP`."""
    from .model import DigitsVAE
    if isinstance(model, DigitsVAE):
        if crop != model.config.image_size:
            size = model.config.image_size
            raise OptionError("crop", f"must be {size} for the digits prior (its image size), got {crop}")
        return
    multiple = model.size_multiple
    least = max(multiple, -(-MIN_CROP // multiple) * multiple)
    if crop < least or crop % multiple:
        raise OptionError("crop", f"must be a multiple of {multiple} (the prior's {model.config.levels} "
                          f"downsamplings) of at least {least}, got {crop}; give such a --crop, or a prior of "
                          "fewer --levels")
