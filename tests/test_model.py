import hashlib

import numpy as np
import pytest
import torch

from restore.model import (ConvVAE, ConvVAEConfig, DigitsVAE, DigitsVAEConfig, load_checkpoint,
                           save_checkpoint, vae_loss)
from restore.priors import SHIPPED, PriorError, load_prior, prior_path
from restore.views import TRAINING_VIEWS
from tests.conftest import smooth_images


def test_conv_vae_shapes_any_size():
    model = ConvVAE(ConvVAEConfig(width=8, latent_channels=3, levels=2))
    x = torch.rand(2, 3, 20, 36)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (2, 3, 5, 9)
    assert model.decode(mu).shape == x.shape
    assert model.size_multiple == 4


def test_growing_the_latent_keeps_what_the_model_does():
    torch.manual_seed(0)
    model = ConvVAE(ConvVAEConfig(width=8, latent_channels=3, levels=2, pixel_scale=True))
    grown = model.with_latent_channels(5)
    assert grown.config.latent_channels == 5 and grown.config.width == 8 and grown.scale_head is not None
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        grown_mu, grown_logvar = grown.encode(x)
        assert torch.equal(grown_mu[:, :3], mu) and torch.equal(grown_logvar[:, :3], logvar)
        assert torch.equal(grown_logvar[:, 3:], torch.zeros_like(grown_logvar[:, 3:]))   # new channels: variance 1
        assert 0 < grown_mu[:, 3:].abs().max() < mu.abs().max()                        # small, not zero
        padded = torch.cat([mu, torch.zeros_like(mu[:, :2])], 1)
        assert torch.equal(grown.decode(padded), model.decode(mu))                      # the old code decodes as before
        assert torch.equal(grown.decode_with_scale(padded)[1], model.decode_with_scale(mu)[1])
        assert not torch.equal(grown.decode(grown_mu), grown.decode(padded))            # and the new channels are read
    assert model.with_latent_channels(3) is model
    with pytest.raises(ValueError, match="grow only"):
        model.with_latent_channels(2)


def test_digits_vae_is_the_textbook_global_latent_model():
    model = DigitsVAE(DigitsVAEConfig(latent_dim=10))
    x = torch.rand(5, 1, 28, 28)
    mu, _ = model.encode(x)
    assert mu.shape == (5, 10)
    assert model.decode(mu).shape == x.shape
    with pytest.raises(ValueError, match="28x28"):
        model.encode(torch.rand(1, 1, 32, 32))


def test_elbo_loss_is_finite_and_trains():
    torch.manual_seed(0)
    model = ConvVAE(ConvVAEConfig(width=8, latent_channels=2))
    x = torch.rand(4, 3, 16, 16) * 0.2 + 0.4
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss, stats = vae_loss(model, x, x)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(loss) and loss.item() < first
    assert set(stats) == {"mse", "kl", "gamma"}


@pytest.mark.parametrize("model", [ConvVAE(ConvVAEConfig(width=8, latent_channels=2, levels=1)),
                                   DigitsVAE(DigitsVAEConfig(latent_dim=4, width=4, hidden=16))])
def test_checkpoint_round_trip_needs_only_the_file(tmp_path, model):
    save_checkpoint(tmp_path / "m.pt", model, meta={"steps": 1})
    loaded, state = load_checkpoint(tmp_path / "m.pt")
    assert type(loaded) is type(model) and loaded.config == model.config
    assert state["meta"]["steps"] == 1
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"junk")
    with pytest.raises(PriorError, match="not a restore prior"):
        load_prior(str(tmp_path / "x.pt"))
    with pytest.raises(PriorError, match="no such prior"):
        load_prior(str(tmp_path / "missing.pt"))


@pytest.mark.parametrize("name,cls", [(name, DigitsVAE if name == "digits" else ConvVAE) for name in SHIPPED])
def test_shipped_priors_load_and_match_their_checksums(name, cls):
    path = prior_path(name)
    sums = (path.parent / "SHA256SUMS").read_text()
    assert f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}" in sums
    assert isinstance(load_prior(name), cls)


@pytest.mark.parametrize("model", [ConvVAE(ConvVAEConfig(width=8, latent_channels=2)),
                                   DigitsVAE(DigitsVAEConfig(latent_dim=4, width=4, hidden=16))])
def test_a_new_pixel_scale_head_starts_at_the_image_wide_scale(model):
    x = torch.rand(2, 1 if isinstance(model, DigitsVAE) else 3, 28, 28)
    scaled = model.with_pixel_scale()
    z = model.encode(x)[0]
    mean, gamma = scaled.decode_with_scale(z)
    assert gamma.shape == x.shape
    assert torch.allclose(gamma, model.gamma.expand_as(gamma))
    assert torch.allclose(mean, model.decode(z))


def test_pixel_scale_learns_where_the_decoder_errs_without_moving_the_mean():
    torch.manual_seed(0)
    plain = ConvVAE(ConvVAEConfig(width=8, latent_channels=2))
    model = plain.with_pixel_scale()
    # Left half flat (easy), right half random texture (the decoder cannot draw it).
    x = torch.full((8, 3, 16, 16), 0.5)
    x[..., 8:] = torch.rand(8, 3, 16, 8)
    for m in (plain, model):
        vae_loss(m, x, x, torch.Generator().manual_seed(1))[0].backward()
    for a, b in zip(plain.decoder.parameters(), model.decoder.parameters()):
        assert torch.allclose(a.grad, b.grad)      # the scale's likelihood leaves the mean alone
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        loss, _ = vae_loss(model, x, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, gamma = model.decode_with_scale(model.encode(x)[0])
    assert gamma[..., 10:].mean() > 1.4 * gamma[..., :6].mean()


@pytest.mark.parametrize("seed", range(4))     # Gaussian and sensor batches both
def test_training_damage_gives_gray_crops_gray_noise(seed):
    from restore.data import to_gray
    from restore.views import noisy as noisy_view

    colour = torch.rand(2, 3, 16, 16)
    gray = to_gray(colour).expand(-1, 3, -1, -1)
    noisy, _ = noisy_view(torch.cat([gray, colour]), np.random.default_rng(seed))
    assert torch.equal(noisy[:2, 0], noisy[:2, 2])          # one noise image for a gray crop's channels
    assert not torch.equal(noisy[2:, 0] - colour[:, 0], noisy[2:, 2] - colour[:, 2])
    assert (noisy[:2] != gray).any()


@pytest.mark.parametrize("name", TRAINING_VIEWS)
def test_every_task_shows_the_encoder_a_damaged_crop_of_the_same_size_and_says_what_it_knows(name):
    from restore.model import CONTEXT_CHANNELS
    from restore.views import clean_context
    x = torch.from_numpy(smooth_images(4, 32, seed=6)).permute(0, 3, 1, 2).contiguous()
    seen, context = TRAINING_VIEWS[name](x, np.random.default_rng(3))
    assert seen.shape == x.shape and 0 <= seen.min() and seen.max() <= 1
    assert (seen - x).abs().mean() > 1e-4           # the smooth fill of a smooth crop is close
    assert context.shape == (4, CONTEXT_CHANNELS, 32, 32) and torch.isfinite(context).all() and (context >= 0).all()
    if name == "inpaint":                           # the holes, and no noise level in them
        assert context[:, 1].any() and set(context[:, 1].unique().tolist()) <= {0.0, 1.0}
        assert not context[:, 0][context[:, 1] == 1].any()
    elif name == "dejpeg":                          # a JPEG's rounding is not noise: nothing told
        assert not context.any()
    else:
        assert not context[:, 1].any() and context[:, 0].min() > 0
    assert not clean_context(x).any()


def test_a_grown_latent_starts_the_same_for_the_same_seed(tmp_path):
    from restore.train import model_from
    path = tmp_path / "small.pt"
    save_checkpoint(path, ConvVAE(ConvVAEConfig(width=8, latent_channels=2, levels=2)))
    torch.manual_seed(1)
    first = model_from(path, latent=4, seed=3).state_dict()
    torch.manual_seed(2)                      # the caller's random state does not decide it
    second = model_from(path, latent=4, seed=3).state_dict()
    other = model_from(path, latent=4, seed=4).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_a_prior_from_clean_crops_learns_nothing_from_the_damaged_ones():
    """``step_loss`` with the prior's parameters: what the damaged crops look like moves the
    encoder's gradient but not the decoder's (nor its scales'), which are the clean crops' alone;
    without them, the damaged crops teach the decoder too."""
    from restore.train import step_loss
    torch.manual_seed(0)
    model = ConvVAE(ConvVAEConfig(width=8, latent_channels=2, pixel_scale=True))
    clean = torch.rand(4, 3, 16, 16)
    prior = [p for name, p in model.named_parameters() if not name.startswith("encoder.")]
    context = torch.zeros(4, 2, 16, 16)

    def gradients(damage, prior):
        seen = clean.clone()
        seen[:2] = (seen[:2] + damage).clamp(0, 1)
        model.zero_grad()
        step_loss(model, seen, clean, context, torch.Generator().manual_seed(1), autocast=torch.float32,
                  damaged=2, prior=prior)[0].backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    a, b = gradients(0.3 * torch.randn(2, 3, 16, 16), prior), gradients(0.3 * torch.randn(2, 3, 16, 16), prior)
    decoder = [name for name in a if not name.startswith("encoder.")]
    assert decoder and all(torch.equal(a[name], b[name]) for name in decoder)
    assert not torch.allclose(a["encoder.0.weight"], b["encoder.0.weight"])
    assert all(p.requires_grad for p in model.parameters())       # handed back trainable
    c, d = gradients(0.3 * torch.randn(2, 3, 16, 16), []), gradients(0.3 * torch.randn(2, 3, 16, 16), [])
    assert not torch.allclose(c["decoder.0.weight"], d["decoder.0.weight"])
