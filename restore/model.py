"""The VAE priors.

Two architectures share one interface, so the solver and the trainer never ask
which one they hold:

* :class:`ConvVAE` -- fully convolutional, with a spatial latent of
  ``latent_channels x H/f x W/f``; it works on any image whose sides are
  multiples of ``f``. This is the photo prior.
* :class:`DigitsVAE` -- the textbook MNIST VAE: a small conv encoder to a global
  latent vector, a deconv decoder back to 28x28. This is the digits prior.

Each model has ``encode(x, context=None) -> (mu, logvar)``, ``decode(z) -> mean image`` and a
learned decoder scale ``gamma`` (the standard deviation of p(x|z)). With
``pixel_scale`` the decoder also predicts a scale per pixel (small where the
mean is sure, as on a flat sky or a digit's blank margin; large on texture it
cannot draw), returned by ``decode_with_scale``. Its
architecture is a small dataclass stored inside the checkpoint next to the
weights, so :func:`load_checkpoint` needs nothing but the file.
"""
from __future__ import annotations

import copy
import io
import math
import os
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from .atomic import write_atomic


@dataclass
class ConvVAEConfig:
    channels: int = 3           # image channels
    width: int = 64             # feature channels of every conv layer
    latent_channels: int = 8    # channels of the spatial latent
    levels: int = 2             # number of 2x downsamplings: f = 2**levels
    blocks: int = 1             # residual blocks per level
    tile_size: int = 256        # default tile for large images (a multiple of f)
    pixel_scale: bool = False   # predict the decoder's scale per pixel, not one for the image
    task_encoders: tuple[str, ...] = ()   # tasks with an encoder of their own, trained on their damage
                                          # alone against the shared decoder (restore.model.ConvVAE.for_task)
    context: bool = False       # the encoder also reads what the data say of each pixel (CONTEXT_CHANNELS maps)


@dataclass
class DigitsVAEConfig:
    channels: int = 1
    image_size: int = 28        # fixed input size, as MNIST
    latent_dim: int = 16
    width: int = 32             # channels of the first conv layer (the second has 2x)
    hidden: int = 256
    pixel_scale: bool = False   # predict the decoder's scale per pixel, not one for the image

    @property
    def tile_size(self) -> int:
        return self.image_size


class _ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


#: The maps an encoder with ``context`` reads beside the image (restore.solver.encoder_context):
#: the noise's standard deviation at each observed pixel and where pixels are not observed.
CONTEXT_CHANNELS = 2


def no_context(x: torch.Tensor) -> torch.Tensor:
    """The context of ``x`` (N, C, H, W) when nothing is known of its damage: zeros, as of a clean image."""
    return x.new_zeros((x.shape[0], CONTEXT_CHANNELS, *x.shape[2:]))

#: Smallest decoder scale: a floor keeps the likelihood from collapsing onto the training pixels.
GAMMA_FLOOR = 1e-3
#: Largest decoder scale: the whole range of a pixel. Beyond it a scale says nothing more, and on
#: codes far from any training image the scale head's exponential overflows (1e13 and more were
#: seen on saturated magenta), which turned posterior samples into NaN.
GAMMA_CEILING = 1.0


class _VAE(nn.Module):
    """What both architectures share: the decoder scale, decoding and sampling.

    Subclasses build ``self.decoder`` as a sequence whose last layer maps
    features to pixels, and ``self.scale_head`` (features to log-scale per
    pixel) when the config asks for ``pixel_scale``.
    """

    #: Whether it takes images of one size only (tiles of it), so that tiles cannot follow a JPEG's
    #: block grid (restore.tasks.base.Task.outer_task).
    fixed_size = False

    config: ConvVAEConfig | DigitsVAEConfig
    decoder: nn.Sequential
    scale_head: nn.Module | None

    def __init__(self):
        super().__init__()
        # log of the decoder's standard deviation gamma, learned with the ELBO.
        self.log_gamma = nn.Parameter(torch.tensor(math.log(0.1)))

    @property
    def gamma(self) -> torch.Tensor:
        """The image-wide decoder scale (what the ELBO of the mean uses)."""
        return self.log_gamma.exp().clamp(min=GAMMA_FLOOR)

    def for_task(self, name: str) -> "_VAE":
        """This prior as task ``name`` sees it (an architecture with task encoders overrides this)."""
        return self

    def encode(self, x, context=None):
        """``(mu, logvar)`` of q(z | x) for pixel values in [0, 1]. An encoder told the context
        (config ``context``) reads ``context``, ``(N, CONTEXT_CHANNELS, H, W)``, beside the image
        (none: zeros, a clean image); any other ignores it."""
        inputs = x * 2 - 1
        if getattr(self.config, "context", False):
            maps = no_context(inputs) if context is None else context
            inputs = torch.cat([inputs, maps.to(inputs.dtype)], 1)
        mu, logvar = self.encoder(inputs).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 6)

    def decode(self, z):
        """The decoder's mean image ``D(z)``, pixel values around [0, 1]."""
        return (self.decoder(z) + 1) / 2

    def decode_with_scale(self, z) -> tuple[torch.Tensor, torch.Tensor]:
        """``D(z)`` and the decoder's scale: per pixel with ``pixel_scale``, else :attr:`gamma`."""
        if self.scale_head is None:
            return self.decode(z), self.gamma
        features = self.decoder[:-1](z)
        mean = (self.decoder[-1](features) + 1) / 2
        # Detached: the scale is fitted to the mean's errors and never bends the mean itself.
        log_gamma = self.scale_head(features.detach()) + self.log_gamma.detach()
        return mean, log_gamma.clamp(max=math.log(GAMMA_CEILING)).exp().clamp(min=GAMMA_FLOOR)

    @property
    def channels(self) -> int:
        return self.config.channels

    @property
    def tile_size(self) -> int:
        return self.config.tile_size

    def with_pixel_scale(self) -> "_VAE":
        """This model with a per-pixel scale head (a new one starts at the image-wide scale)."""
        if self.scale_head is not None:
            return self
        model = type(self)(replace(self.config, pixel_scale=True))
        missing, unexpected = model.load_state_dict(self.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("scale_head.") for k in missing), (missing, unexpected)
        return model.to(self.log_gamma.device)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, context=None):
        """Encode, sample z by the reparameterisation trick, decode: ``(D(z), gamma, mu, logvar)``."""
        mu, logvar = self.encode(x, context)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return *self.decode_with_scale(mu + torch.exp(0.5 * logvar) * eps), mu, logvar


class ConvVAE(_VAE):
    """Fully convolutional VAE with a spatial latent (the photo prior)."""

    #: A photograph turned or mirrored is as likely as itself (and the prior trains on flipped
    #: crops): the solver's ensemble may turn it (restore.reconstructor.Turned).
    symmetric = True
    #: Restorations end with the data's empirical Wiener filter around this prior's estimate
    #: (:meth:`restore.fidelity.DataTerm.wiener`): the decoder cannot draw a photograph's finest
    #: texture, which the data still hold (12 held-out crops, denoising at sigma 25: +1.6 dB).
    data_filter = True
    #: A sensor's noise is restored where it is white, of one level (the generalised Anscombe
    #: transform, :meth:`restore.fidelity.DataTerm.stabilised`): a photograph under that
    #: square-root tone curve is still a photograph to this prior (12 + 6 held-out crops, the
    #: benchmark's sensor noise: +0.2 / +0.3 dB).
    stabilise = True

    def __init__(self, config: ConvVAEConfig):
        super().__init__()
        self.config = config
        w, lc = config.width, config.latent_channels
        enc = [nn.Conv2d(config.channels + (CONTEXT_CHANNELS if config.context else 0), w, 3, padding=1)]
        for _ in range(config.levels):
            enc += [_ResBlock(w) for _ in range(config.blocks)]
            enc += [nn.Conv2d(w, w, 4, stride=2, padding=1)]
        enc += [_ResBlock(w) for _ in range(config.blocks)]
        enc += [nn.SiLU(), nn.Conv2d(w, 2 * lc, 1)]
        self.encoder = nn.Sequential(*enc)
        dec = [nn.Conv2d(lc, w, 3, padding=1)]
        dec += [_ResBlock(w) for _ in range(config.blocks)]
        for _ in range(config.levels):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w, w, 3, padding=1)]
            dec += [_ResBlock(w) for _ in range(config.blocks)]
        dec += [nn.SiLU(), nn.Conv2d(w, config.channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.scale_head = _zero_init(nn.Conv2d(w, config.channels, 3, padding=1)) if config.pixel_scale else None
        self.task_encoders = nn.ModuleDict({name: copy.deepcopy(self.encoder) for name in config.task_encoders})

    def for_task(self, name: str) -> "ConvVAE":
        """This prior as task ``name`` sees it: with that task's own encoder where it has one (the
        decoder, and so the prior, is the same), else itself."""
        if name not in self.task_encoders:
            return self
        view = copy.copy(self)       # shares every module and parameter; only the encoder differs
        view._modules = {**self._modules, "encoder": self.task_encoders[name]}
        return view

    def with_task_encoder(self, name: str) -> "ConvVAE":
        """This model with an encoder of its own for task ``name``, starting as the shared one."""
        if name in self.task_encoders:
            return self
        model = ConvVAE(replace(self.config, task_encoders=(*self.config.task_encoders, name)))
        state = {**self.state_dict(), **{f"task_encoders.{name}.{key}": value
                                         for key, value in self.encoder.state_dict().items()}}
        model.load_state_dict(state)
        return model.to(self.log_gamma.device)

    def with_context(self) -> "ConvVAE":
        """This model with encoders that read the context maps beside the image (every task
        encoder too). They read the maps with zero weights at first, so the model restores as
        before, and training teaches them."""
        if self.config.context:
            return self
        model = ConvVAE(replace(self.config, context=True)).to(self.log_gamma.device)
        state = self.state_dict()
        for name, value in model.state_dict().items():
            if value.shape != state[name].shape:       # the encoders' first convolutions
                grown = torch.zeros_like(value)
                grown[:, :self.config.channels] = state[name]
                state[name] = grown
        model.load_state_dict(state)
        return model

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this."""
        return 2 ** self.config.levels

    def latent_shape(self, height: int, width: int) -> tuple[int, ...]:
        f = self.size_multiple
        return (self.config.latent_channels, height // f, width // f)

    def with_latent_channels(self, channels: int, *, generator: torch.Generator | None = None) -> "ConvVAE":
        """This model with ``channels`` latent channels, the new ones added beside the old.

        The new channels start near the prior (mean ~0, variance 1) and the decoder reads
        them with small weights, so the grown model restores as before and training fills
        them in; the small random weights (1/10 of a fresh layer's) let gradients reach both
        sides, which zeros would not.
        """
        old = self.config.latent_channels
        if self.config.task_encoders:
            raise ValueError("grow the latent before adding task encoders: theirs would not fit")
        if channels < old:
            raise ValueError(f"the latent can grow only: the model has {old} channels, asked for {channels}")
        if channels == old:
            return self
        model = ConvVAE(replace(self.config, latent_channels=channels)).to(self.log_gamma.device)
        state = self.state_dict()
        new = model.state_dict()
        head, first = f"encoder.{len(self.encoder) - 1}", "decoder.0"
        for name, value in state.items():
            if not name.startswith((head + ".", first + ".weight")):
                new[name] = value
        with torch.no_grad():
            fresh_head = torch.empty_like(new[head + ".weight"])
            nn.init.kaiming_uniform_(fresh_head, a=math.sqrt(5), generator=generator)
            weight, bias = torch.zeros_like(new[head + ".weight"]), torch.zeros_like(new[head + ".bias"])
            old_weight, old_bias = state[head + ".weight"], state[head + ".bias"]
            # Output channels are [means, log-variances]: old means, new means, old log-variances, new.
            weight[:old], bias[:old] = old_weight[:old], old_bias[:old]
            weight[old:channels] = 0.1 * fresh_head[old:channels]
            weight[channels:channels + old], bias[channels:channels + old] = old_weight[old:], old_bias[old:]
            new[head + ".weight"], new[head + ".bias"] = weight, bias        # new log-variances 0: variance 1
            fresh_first = torch.empty_like(new[first + ".weight"])
            nn.init.kaiming_uniform_(fresh_first, a=math.sqrt(5), generator=generator)
            first_weight = 0.1 * fresh_first
            first_weight[:, :old] = state[first + ".weight"]
            new[first + ".weight"] = first_weight
        model.load_state_dict(new)
        return model


class DigitsVAE(_VAE):
    """The classic global-latent VAE on 28x28 digits."""

    symmetric = False                  # a digit turned or mirrored is no digit
    #: The decoder draws its small world whole: the data's Wiener filter around its estimate only
    #: gives noise back (60 digits of the training split, denoising at sigma 15 / 25 / 50: -2.3 /
    #: -2.4 / -2.7 dB).
    data_filter = False
    #: Its small world is black and white: under a square-root tone curve no digit is drawn.
    stabilise = False
    fixed_size = True

    def __init__(self, config: DigitsVAEConfig):
        super().__init__()
        self.config = config
        w, s = config.width, config.image_size // 4
        self.encoder = nn.Sequential(
            nn.Conv2d(config.channels, w, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(2 * w * s * s, config.hidden), nn.ReLU(),
            nn.Linear(config.hidden, 2 * config.latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim, config.hidden), nn.ReLU(),
            nn.Linear(config.hidden, 2 * w * s * s), nn.ReLU(),
            nn.Unflatten(1, (2 * w, s, s)),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(w, config.channels, 4, stride=2, padding=1),
        )
        self.scale_head = (_zero_init(nn.ConvTranspose2d(w, config.channels, 4, stride=2, padding=1))
                           if config.pixel_scale else None)

    @property
    def size_multiple(self) -> int:
        return self.config.image_size

    def latent_shape(self, height: int, width: int) -> tuple[int, ...]:
        return (self.config.latent_dim,)

    def encode(self, x, context=None):
        size = self.config.image_size
        if x.shape[-2:] != (size, size):
            raise ValueError(f"the digits prior takes {size}x{size} images, got {tuple(x.shape[-2:])}")
        return super().encode(x)


def _zero_init(layer: nn.Module) -> nn.Module:
    # A new scale head starts at the image-wide scale: its output is added to log_gamma.
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


VAE = ConvVAE | DigitsVAE
# The architectures a checkpoint may name, keyed by class name.
_ARCHITECTURES = {cls.__name__: (cls, cfg) for cls, cfg in
                  ((ConvVAE, ConvVAEConfig), (DigitsVAE, DigitsVAEConfig))}


def save_checkpoint(path: str | os.PathLike, model: VAE, **extra) -> None:
    """Write config, weights and ``extra`` (training state, metadata) atomically."""
    state = {"architecture": type(model).__name__, "config": asdict(model.config),
             "state_dict": model.state_dict(), **extra}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> tuple[VAE, dict]:
    """Build the model a checkpoint describes and load its weights.

    Returns the model (in eval mode) and the whole checkpoint dictionary, whose
    other keys hold training state and metadata.
    """
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("architecture") not in _ARCHITECTURES:
        raise ValueError(f"{path} is not a restore prior checkpoint")
    cls, cfg = _ARCHITECTURES[state["architecture"]]
    model = cls(cfg(**state["config"]))
    model.load_state_dict(state["state_dict"])
    return model.eval(), state


def vae_loss(model: VAE, x_in: torch.Tensor, target: torch.Tensor,
             generator: torch.Generator | None = None, *, autocast: torch.dtype = torch.float32,
             context: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Negative ELBO per pixel of ``target`` given the encoder's view ``x_in``.

    With ``x_in = target`` this is the textbook ELBO; with a degraded ``x_in``
    it trains the encoder to map damaged images near the clean image's code
    (told the damage by ``context``, where the encoder reads it).
    The networks run under autocast in ``autocast``; the loss is float32.
    """
    with torch.autocast(x_in.device.type, dtype=autocast, enabled=autocast != torch.float32):
        outputs = model(x_in, generator, context)
    recon, pixel_gamma, mu, logvar = (t.float() for t in outputs)
    gamma = model.gamma
    n_pix = target[0].numel()
    # Gaussian decoder: |x - D(z)|^2 / (2 gamma^2) + log gamma per pixel (+ const).
    rec = ((target - recon) ** 2).flatten(1).sum(1) / (2 * gamma**2) + n_pix * torch.log(gamma)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).flatten(1).sum(1)
    loss = (rec + kl).mean() / n_pix
    mse = ((target - recon.detach()) ** 2).mean()
    stats = {"mse": mse.item(), "kl": (kl.mean() / n_pix).item(), "gamma": gamma.item()}
    if model.scale_head is not None:
        # The per-pixel scale's own likelihood, on the mean's (detached) errors: it learns
        # where the decoder is sure without trading sharpness of the mean for it.
        err2 = (target - recon.detach()) ** 2
        loss = loss + (err2 / (2 * pixel_gamma**2) + torch.log(pixel_gamma)).mean()
    return loss, stats
