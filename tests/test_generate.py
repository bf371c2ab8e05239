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
