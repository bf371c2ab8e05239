import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from restore.cli import app
from restore.generate import grid, interpolate, sample
from restore.images import Picture, read_image, write_image
from restore.model import DigitsVAE, DigitsVAEConfig
from tests.conftest import smooth_images


def test_sample_is_deterministic_and_sized(tiny_prior):
    model, _ = tiny_prior
    a = sample(model, 5, size=16, seed=1)
    assert a.shape == (5, 16, 16, 3) and 0 <= a.min() and a.max() <= 1
    assert np.array_equal(a, sample(model, 5, size=16, seed=1))
    assert not np.array_equal(a, sample(model, 5, size=16, seed=2))
    with pytest.raises(ValueError, match="multiple"):
        sample(model, 1, size=18)


def test_interpolation_ends_at_the_two_reconstructions(tiny_prior):
    model, _ = tiny_prior
    a, b = smooth_images(2, 16, seed=8)
    frames = interpolate(model, a, b, frames=5)
    assert frames.shape == (5, 16, 16, 3)
    with torch.no_grad():
        rec = model.decode(model.encode(torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2))[0])
    rec = rec.clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert np.allclose(frames[0], rec[0], atol=1e-5) and np.allclose(frames[-1], rec[1], atol=1e-5)
    with pytest.raises(ValueError, match="size"):
        interpolate(model, a, b[:8], frames=3)
    # Two grey images walk in grey, the colour prior's tint left out.
    grey = interpolate(model, a.mean(2, keepdims=True), b.mean(2, keepdims=True), frames=3)
    assert grey.shape == (3, 16, 16, 1)


def test_a_negative_seed_is_refused_by_name(tiny_prior):
    from restore.tasks import OptionError
    with pytest.raises(OptionError, match="seed"):
        sample(tiny_prior[0], 2, size=16, seed=-1)


def test_digits_prior_samples_digits_shape():
    vae = DigitsVAE(DigitsVAEConfig(latent_dim=4, width=4, hidden=8))
    assert sample(vae, 3).shape == (3, 28, 28, 1)


def test_grid_layout():
    g = grid(np.zeros((5, 4, 6, 1), np.float32), columns=3, gap=1)
    assert g.shape == (2 * 4 + 1, 3 * 6 + 2, 1)


def test_sample_and_interpolate_commands(tmp_path, tiny_prior):
    _, model = tiny_prior
    runner = CliRunner()
    result = runner.invoke(app, ["sample", "--model", str(model), "-n", "4", "--size", "16", "-o", str(tmp_path / "g.png")])
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "g.png").pixels.shape == (34, 34, 3)
    again = runner.invoke(app, ["sample", "--model", str(model), "-o", str(tmp_path / "g.png")])
    assert again.exit_code == 2 and "--overwrite" in again.output
    a, b = smooth_images(2, 16, seed=9)
    write_image(tmp_path / "a.png", Picture(a))
    write_image(tmp_path / "b.png", Picture(b))
    result = runner.invoke(app, ["interpolate", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--model", str(model),
                                 "--frames", "4", "-o", str(tmp_path / "w.png")])
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "w.png").pixels.shape == (16, 4 * 16 + 3 * 2, 3)
    missing = runner.invoke(app, ["interpolate", str(tmp_path / "a.png"), str(tmp_path / "nope.png"),
                                  "--model", str(model), "-o", str(tmp_path / "w2.png")])
    assert missing.exit_code == 2 and "nope.png" in missing.output
    # Its inputs are never written over, --overwrite or not; a folder or a pair of sizes is named.
    before = (tmp_path / "b.png").read_bytes()
    for overwrite in ([], ["--overwrite"]):     # without it, too, the message says why (not "pass --overwrite")
        onto = runner.invoke(app, ["interpolate", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--model",
                                   str(model), "-o", str(tmp_path / "b.png"), *overwrite])
        assert onto.exit_code == 2 and "b.png: is an input" in onto.output, onto.output
        assert "--overwrite" not in onto.output and (tmp_path / "b.png").read_bytes() == before
    folder = runner.invoke(app, ["interpolate", str(tmp_path), str(tmp_path / "b.png"), "--model", str(model),
                                 "-o", str(tmp_path / "w3.png")])
    assert folder.exit_code == 2 and "is a folder; give an image file" in folder.output, folder.output
    write_image(tmp_path / "rgba.png", Picture(b, alpha=np.full(b.shape[:2], 0.5, np.float32), bit_depth=16))
    said = runner.invoke(app, ["interpolate", str(tmp_path / "a.png"), str(tmp_path / "rgba.png"), "--model",
                               str(model), "--frames", "2", "-o", str(tmp_path / "w5.png")])
    assert said.exit_code == 0 and (f"note: {tmp_path / 'rgba.png'}: its transparency and its 16 bits not carried"
                                    in said.output), said.output
    write_image(tmp_path / "c.png", Picture(smooth_images(1, 24, seed=3)[0]))
    sizes = runner.invoke(app, ["interpolate", str(tmp_path / "a.png"), str(tmp_path / "c.png"), "--model", str(model),
                                "-o", str(tmp_path / "w4.png")])
    assert sizes.exit_code == 2 and "c.png: 24x24 pixels" in sizes.output and "a.png 16x16" in sizes.output, sizes.output
    for name in ("grid.txt", "grid"):
        wrong = runner.invoke(app, ["sample", "--model", str(model), "-o", str(tmp_path / name)])
        assert wrong.exit_code == 2 and f"-o {tmp_path / name}: not a name of an image file" in wrong.output
    (tmp_path / "folder.png").mkdir()
    onto_folder = runner.invoke(app, ["sample", "--model", str(model), "-o", str(tmp_path / "folder.png"),
                                      "--overwrite"])
    assert onto_folder.exit_code == 2 and "is a folder; give the name of a file" in onto_folder.output


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if a prior decodes anything: refusals must come before any work."""
    from restore.model import ConvVAE, DigitsVAE

    def refuse(self, z):
        raise AssertionError("decoding started")
    monkeypatch.setattr(ConvVAE, "decode", refuse)
    monkeypatch.setattr(DigitsVAE, "decode", refuse)


@pytest.mark.parametrize("args,needle", [
    (["--size", "0"], "--size: must be a multiple of 4 from 4 to 1024, got 0"),
    (["--size", "-4"], "--size: must be a multiple of 4 from 4 to 1024, got -4"),
    (["--size", "100000"], "--size: must be a multiple of 4 from 4 to 1024, got 100000"),
    (["--size", "18"], "--size: must be a multiple of 4"),
    (["--temperature", "nan"], "--temperature: must be above 0 and at most 10 (1 draws from the prior itself), got nan"),
    (["--temperature", "0"], "--temperature: must be above 0 and at most 10"),
    (["--temperature", "-1"], "--temperature: must be above 0 and at most 10"),
    (["--temperature", "1e30"], "--temperature: must be above 0 and at most 10"),
    (["-n", "0"], "-n: must be at least 1"),
    (["-n", "1000000"], "-n: 1000000 images of 16x16 make 256 megapixels, over the limit of 100"),
    (["--model", "digits"], "--size: must be 28 for the digits prior"),
])
def test_sample_refuses_what_the_prior_cannot_draw_before_any_work(tmp_path, tiny_prior, no_decoding, args, needle):
    _, model = tiny_prior
    out = tmp_path / "s.png"
    result = CliRunner().invoke(app, ["sample", "-o", str(out), "--model", str(model), "-n", "4", "--size", "16", *args])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], result.output
    assert not out.exists()


@pytest.mark.parametrize("side,model,needle", [
    (1, None, "is 1x1 pixels; the prior takes images of at least 4x4"),
    (2, None, "is 2x2 pixels; the prior takes images of at least 4x4"),
    (6, None, "is 6x6 pixels; the prior takes images of at least 4x4, their sides multiples of 4"),
    (16, "digits", "is 16x16 pixels; the digits prior takes 28x28 images"),
])
def test_interpolate_refuses_images_the_prior_cannot_encode(tmp_path, tiny_prior, no_decoding, side, model, needle):
    """The file the prior cannot encode is named, first or second, with the size the prior takes."""
    small, good = tmp_path / "small.png", tmp_path / "good.png"
    write_image(small, Picture(np.full((side, side, 3), 0.5, np.float32)))
    fits = 28 if model == "digits" else 16
    write_image(good, Picture(np.full((fits, fits, 3), 0.5, np.float32)))
    out = tmp_path / "w.png"
    for pair in ((small, good), (good, small)):
        result = CliRunner().invoke(app, ["interpolate", *map(str, pair), "-o", str(out),
                                          "--model", model or str(tiny_prior[1])])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(f"error: {small}: {needle}"), result.output
        assert not out.exists()
    vae = DigitsVAE(DigitsVAEConfig()) if model == "digits" else tiny_prior[0]
    with pytest.raises(ValueError, match="the second image is"):
        interpolate(vae, np.zeros((fits, fits, 3), np.float32), np.zeros((side, side, 3), np.float32))
