"""An encoder told what it is looking at: the noise's level per pixel and the holes, as the solver
knows them from the data term and the forward model, read beside the image."""
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from restore.fidelity import Gaussian, PoissonGaussian
from restore.model import CONTEXT_CHANNELS, ConvVAE, ConvVAEConfig, load_checkpoint, save_checkpoint
from restore.physics import Denoising, Downsampling, Inpainting, LinearPhysics
from restore.reconstructor import SYMMETRIES, Reconstructor, Turned
from restore.solver import NOISE_UNIT, encoder_context
from restore.views import TRAINING_VIEWS

from conftest import write_smooth_folder


def _told(seed=0, **config) -> ConvVAE:
    """A small prior whose encoder reads the context with weights that are not zero."""
    torch.manual_seed(seed)
    model = ConvVAE(ConvVAEConfig(width=8, latent_channels=4, context=True, **config)).eval()
    with torch.no_grad():
        model.encoder[0].weight[:, 3:] = torch.randn_like(model.encoder[0].weight[:, 3:])
    return model


def test_the_context_says_the_noise_level_and_the_holes():
    y = torch.rand(2, 3, 16, 16)
    plain = encoder_context(Gaussian(0.1), Denoising(), y)
    assert plain.shape == (2, CONTEXT_CHANNELS, 16, 16)
    assert torch.allclose(plain[:, 0], torch.full_like(plain[:, 0], 0.1 / NOISE_UNIT)) and not plain[:, 1].any()

    missing = (torch.rand(2, 1, 16, 16) < 0.3).float()
    holes = encoder_context(Gaussian(0.05), Inpainting(missing), y)
    assert torch.equal(holes[:, 1:], missing)
    assert not holes[:, :1][missing.bool()].any()
    assert torch.allclose(holes[:, :1][~missing.bool()], torch.tensor(0.05 / NOISE_UNIT))

    # A sensor's noise: the map grows with the brightness, as sqrt(a x + b) does.
    ramp = torch.linspace(0, 1, 16).expand(1, 3, 16, 16).contiguous()
    sensor = encoder_context(PoissonGaussian(1 / 40, 0.02**2), Denoising(), ramp)[0, 0] * NOISE_UNIT
    assert sensor[:, 0].mean() < 0.04 and sensor[:, -1].mean() > 0.15
    assert torch.allclose(sensor[5, 8], torch.tensor((0.5 / 40 + 0.02**2) ** 0.5), rtol=0.05)

    # Half the resolution: each pixel is seen through a quarter of an observed one.
    small = encoder_context(Gaussian(0.1), Downsampling((16, 16), 2), y)
    assert small[:, 0].mean() > plain[:, 0].mean() and not small[:, 1].any()


def test_a_blurs_margin_is_told_as_a_hole():
    """The pixels beyond a blurred observation (the margin the x-step restores over) are barely
    reached by the data; training crops them away, so the encoder is told they are not observed
    rather than read a noise level of up to 5 units there."""
    from restore.physics import Blur
    physics = Blur(torch.ones(5, 5) / 25)                  # margin 2
    x = torch.rand(1, 3, 14, 14)
    context = encoder_context(Gaussian(0.02), physics, x)
    edge = torch.ones(14, 14, dtype=torch.bool)
    edge[2:-2, 2:-2] = False
    assert torch.equal(context[0, 1].bool(), edge) and not context[0, 0][edge].any()
    assert (context[0, 0][~edge] > 0).all() and context[0, 0][~edge].max() < 5


def test_a_forward_model_that_cannot_say_gives_no_context():
    class Opaque(LinearPhysics):
        def A(self, x):
            return x

        def A_adjoint(self, y):
            return y
    context = encoder_context(Gaussian(0.1), Opaque(), torch.rand(1, 3, 8, 8))
    assert context.shape == (1, CONTEXT_CHANNELS, 8, 8) and not context.any()


def test_a_prior_grown_to_read_the_context_restores_as_before_until_trained():
    torch.manual_seed(0)
    base = ConvVAE(ConvVAEConfig(width=8, latent_channels=4, pixel_scale=True, task_encoders=("dejpeg",))).eval()
    grown = base.with_context()
    assert grown.config.context and grown.encoder[0].in_channels == 3 + CONTEXT_CHANNELS
    assert grown.task_encoders["dejpeg"][0].in_channels == 3 + CONTEXT_CHANNELS
    x, context = torch.rand(1, 3, 16, 16), torch.rand(1, CONTEXT_CHANNELS, 16, 16)
    assert torch.equal(grown.encode(x, context)[0], base.encode(x)[0])
    assert torch.equal(grown.for_task("dejpeg").encode(x, context)[0], base.for_task("dejpeg").encode(x)[0])
    assert grown.with_context() is grown
    # One that was not grown ignores a context; one that was reads it.
    assert torch.equal(base.encode(x, context)[0], base.encode(x)[0])
    told = _told()
    assert not torch.equal(told.encode(x, context)[0], told.encode(x)[0])


def test_a_jpeg_tells_the_encoder_nothing_in_restoration_and_in_training():
    """A JPEG's rounding is not noise: read as a noise level, a coarse table's bins made the large
    prior's shared encoder smooth the file 3.5 dB below the decoded one."""
    from restore.fidelity import JPEGConstraint
    from restore.tasks.dejpeg import jpeg_round_trip
    decoded, quantisation = jpeg_round_trip(np.random.default_rng(0).random((16, 16, 3)), 10)
    x = torch.from_numpy(decoded).permute(2, 0, 1)[None]
    assert JPEGConstraint(quantisation).precision(Denoising(), x).min() > 0       # the variance stays known
    assert not encoder_context(JPEGConstraint(quantisation), Denoising(), x).any()
    _, context = TRAINING_VIEWS["dejpeg"](torch.rand(2, 3, 16, 16), np.random.default_rng(1))
    assert context.shape == (2, CONTEXT_CHANNELS, 16, 16) and not context.any()


@pytest.mark.parametrize("steps", [0, 3])
def test_the_solver_tells_the_encoder_what_the_data_say(steps):
    """The code the solver starts from is the encoder's for the first guess and its context: a
    different noise level or other holes change it, and it is what encode gives by hand."""
    model = _told()
    y = torch.rand(1, 3, 16, 16)
    missing = torch.zeros(1, 1, 16, 16)
    missing[..., 4:9, 4:9] = 1
    physics = Inpainting(missing)
    run = Reconstructor(model, steps=steps, lr=0.0)
    result = run(y, physics, data=Gaussian(0.05))
    x0 = physics.A_adjoint(y)
    by_hand = model.encode(x0, encoder_context(Gaussian(0.05), physics, x0))[0]
    assert torch.allclose(result.z, by_hand, atol=1e-6)
    assert not torch.allclose(run(y, physics, data=Gaussian(0.2)).z, by_hand, atol=1e-4)
    assert not torch.allclose(run(y, Inpainting(torch.zeros_like(missing)), data=Gaussian(0.05)).z, by_hand, atol=1e-4)


def test_a_turned_prior_turns_the_context_with_the_image():
    model = _told()
    x, context = torch.rand(1, 3, 16, 16), torch.rand(1, CONTEXT_CHANNELS, 16, 16)
    for transpose, flips in SYMMETRIES[1:]:
        turned = Turned(model, transpose, flips)
        assert torch.equal(turned.encode(x, context)[0], model.encode(turned._turn(x), turned._turn(context))[0])
        assert not torch.equal(turned.encode(x, context)[0], model.encode(turned._turn(x), context)[0])


def test_the_posterior_samples_are_drawn_with_the_context():
    """Every code the solver asks of the encoder, the samples' spread at the restored image
    included, is read with the observation's context: under a hole, the hole's."""
    class Spy:
        def __init__(self, vae):
            self.vae, self.contexts = vae, []

        def __getattr__(self, name):
            return getattr(self.vae, name)

        def encode(self, x, context=None):
            self.contexts.append(context)
            return self.vae.encode(x, context)
    spy = Spy(_told(seed=3))
    y = torch.rand(1, 3, 16, 16)
    missing = torch.zeros(1, 1, 16, 16)
    missing[..., 2:14, 2:14] = 1
    physics = Inpainting(missing)
    result = Reconstructor(spy, steps=2, samples=3)(y, physics, data=Gaussian(0.05))
    assert result.variance is not None and torch.isfinite(result.variance).all()
    expected = encoder_context(Gaussian(0.05), physics, physics.A_adjoint(y))
    assert len(spy.contexts) == 2 and all(c is not None and torch.equal(c, expected) for c in spy.contexts)


def test_the_noisy_view_tells_the_noise_it_added():
    """Gaussian batches say their one sigma; sensor batches the level the pixel's brightness gives."""
    clean = torch.linspace(0.05, 0.95, 64).expand(8, 3, 64, 64).contiguous()
    kinds = set()
    for seed in range(8):
        seen, context = TRAINING_VIEWS["denoise"](clean, np.random.default_rng(seed))
        told = context[:, 0] * NOISE_UNIT
        # The noise's spread down each column (one brightness) against the level told there.
        measured = (seen - clean)[:, 0, :, 8:56].std(dim=(0, 1))
        level = told[:, :, 8:56].mean(dim=(0, 1))
        sensor = bool(level[-1] > 1.5 * level[0])
        kinds.add(sensor)
        if level.mean() > 5 / 255:
            assert torch.allclose(measured, level, rtol=0.25), (seed, measured, level)
    assert kinds == {True, False}


def test_training_the_encoder_alone_with_context_from_the_command_line(tmp_path):
    """`restore train --init PRIOR --context --encoder-only`: the encoders grow to read the
    context, only the shared encoder learns, and the prior (the decoder) comes out as it went in."""
    from restore.cli import app
    torch.manual_seed(0)
    base = ConvVAE(ConvVAEConfig(width=8, latent_channels=4, pixel_scale=True))
    save_checkpoint(tmp_path / "base.pt", base)
    (tmp_path / "photos").mkdir()
    write_smooth_folder(tmp_path / "photos", n=3, size=40)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "photos"), "-o", str(tmp_path / "told.pt"),
                                      "--init", str(tmp_path / "base.pt"), "--context", "--encoder-only",
                                      "--steps", "3", "--batch-size", "4", "--crop", "32", "--lr", "1e-2",
                                      "--degraded", "1", "-q"])
    assert result.exit_code == 0, result.output
    model, state = load_checkpoint(tmp_path / "told.pt")
    assert model.config.context and state["meta"]["settings"]["encoder_only"]
    before, after = base.state_dict(), model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("encoder."))
    assert not torch.equal(after["encoder.0.weight"][:, 3:], torch.zeros_like(after["encoder.0.weight"][:, 3:]))

    resumed = CliRunner().invoke(app, ["train", str(tmp_path / "photos"), "-o", str(tmp_path / "told.pt"),
                                       "--resume", "--steps", "4", "-q"])
    assert resumed.exit_code == 0, resumed.output
    again, _ = load_checkpoint(tmp_path / "told.pt")
    assert all(torch.equal(before[k], again.state_dict()[k]) for k in before if not k.startswith("encoder."))

    refused = CliRunner().invoke(app, ["train", str(tmp_path / "photos"), "-o", str(tmp_path / "d.pt"),
                                       "--arch", "digits", "--context", "--steps", "1", "-q"])
    assert refused.exit_code != 0 and "--context" in refused.output and "Traceback" not in refused.output
