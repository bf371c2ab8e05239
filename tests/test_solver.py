import numpy as np
import pytest
import torch

from restore.fidelity import Gaussian
from restore import SolverSettings, denoise, inpaint, psnr, restore, superres
from restore.physics import Denoising, Downsampling, Inpainting
from restore.solver import csgm, joint_map
from restore.tasks import TASKS, Denoise


def _noisy(clean, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(clean + rng.normal(0, sigma / 255, clean.shape), 0, 1).astype(np.float32)


def test_joint_solver_lowers_its_objective(tiny_prior, clean_image):
    model, _ = tiny_prior
    y = torch.from_numpy(_noisy(clean_image, 25)).permute(2, 0, 1)[None]
    result = joint_map(y, Denoising(), model, x0=y, data=Gaussian(25 / 255), steps=40, record_objective=True)
    assert len(result.objective) == 41
    assert result.objective[-1] < result.objective[0]
    assert result.x.shape == y.shape and 0 <= result.x.min() and result.x.max() <= 1


def test_latent_mode_lowers_its_objective(tiny_prior, clean_image):
    model, _ = tiny_prior
    y = torch.from_numpy(_noisy(clean_image, 25)).permute(2, 0, 1)[None]
    result = csgm(y, Denoising(), model, x0=y, data=Gaussian(25 / 255), steps=40, record_objective=True)
    assert result.objective[-1] < result.objective[0]
    assert csgm(y, Denoising(), model, x0=y, data=Gaussian(25 / 255), steps=3).objective == []   # not asked for


def test_denoise_beats_the_noisy_input(tiny_prior, clean_image):
    model, _ = tiny_prior
    noisy = _noisy(clean_image, 25)
    restored = denoise(noisy, sigma=25, prior=model, steps=40)
    assert restored.shape == noisy.shape and restored.dtype == np.float32
    assert psnr(clean_image, restored) > psnr(clean_image, noisy) + 3


def test_more_steps_do_better_than_the_encoder_alone(tiny_prior, clean_image):
    model, _ = tiny_prior
    noisy = _noisy(clean_image, 25)
    fast = denoise(noisy, sigma=25, prior=model, steps=0)
    slow = denoise(noisy, sigma=25, prior=model, steps=60)
    assert psnr(clean_image, fast) > psnr(clean_image, noisy)
    assert psnr(clean_image, slow) >= psnr(clean_image, fast) - 0.1


def test_inpaint_beats_the_damaged_input_and_keeps_known_pixels(tiny_prior, clean_image):
    model, _ = tiny_prior
    mask = np.zeros(clean_image.shape[:2], bool)
    mask[12:28, 10:34] = True
    damaged = clean_image.copy()
    damaged[mask] = 1.0
    restored = inpaint(damaged, mask, prior=model, steps=40)
    assert psnr(clean_image, restored) > psnr(clean_image, damaged) + 5
    assert np.abs(restored[~mask] - clean_image[~mask]).max() < 0.02


def test_superres_gives_the_right_size_for_uint8_and_tensor(tiny_prior, clean_image):
    model, _ = tiny_prior
    small = (clean_image[::4, ::4] * 255).astype(np.uint8)
    big = superres(small, scale=4, prior=model, steps=5)
    assert big.shape == (48, 48, 3) and big.dtype == np.uint8
    t = torch.from_numpy(clean_image[::2, ::2].copy())
    assert superres(t, scale=2, prior=model, steps=2).shape == (48, 48, 3)
    # the same image with channels first gives the same result, channels first
    first = superres(t.permute(2, 0, 1), scale=2, prior=model, steps=2, channel_axis=0)
    assert torch.equal(first.permute(1, 2, 0), superres(t, scale=2, prior=model, steps=2))


def test_results_are_deterministic(tiny_prior, clean_image):
    model, _ = tiny_prior
    noisy = _noisy(clean_image, 25)
    state = torch.random.get_rng_state()
    a = denoise(noisy, sigma=25, prior=model, steps=10)
    b = denoise(noisy, sigma=25, prior=model, steps=10)
    assert np.array_equal(a, b)
    assert torch.equal(torch.random.get_rng_state(), state)      # the caller's random state is untouched


def test_large_images_are_tiled_without_visible_seams(tiny_prior):
    model, _ = tiny_prior
    from tests.conftest import smooth_images
    clean = smooth_images(1, 80, seed=5)[0]
    noisy = _noisy(clean, 20)
    restored = restore(noisy, Denoise(sigma=20), settings=SolverSettings(prior=model, steps=20, tile=32, overlap=8))
    assert psnr(clean, restored) > psnr(clean, noisy) + 3
    # No seam: the column-to-column jump at a tile border is like anywhere else.
    jumps = np.abs(np.diff(restored, axis=1)).mean(axis=(0, 2))
    assert jumps.max() < 4 * np.median(jumps)


def test_gray_image_through_a_colour_prior_stays_gray(tiny_prior, clean_image):
    model, _ = tiny_prior
    gray = clean_image.mean(axis=2)
    out = denoise(_noisy(gray, 10), sigma=10, prior=model, steps=3)
    assert out.shape == gray.shape


def test_bad_arguments_raise_value_errors(tiny_prior, clean_image):
    model, _ = tiny_prior
    with pytest.raises(ValueError, match="mask"):
        inpaint(clean_image, np.zeros((5, 5)), prior=model)
    with pytest.raises(ValueError, match="sigma"):
        joint_map(torch.rand(1, 3, 8, 8), Denoising(), model, x0=torch.rand(1, 3, 8, 8), data=Gaussian(0))
    with pytest.raises(ValueError, match="sigma"):
        denoise(clean_image, sigma=0, prior=model)
    with pytest.raises(ValueError, match="scale"):
        superres(clean_image, scale=5, prior=model)
    with pytest.raises(ValueError, match="images are"):
        denoise(np.zeros((4, 4, 5)), sigma=5, prior=model)
    with pytest.raises(ValueError, match="mode"):
        denoise(clean_image, sigma=5, prior=model, mode="fast")
    with pytest.raises(TypeError, match="stpes"):
        denoise(clean_image, sigma=5, prior=model, stpes=3)


def test_per_pixel_scale_trusts_the_decoder_where_it_is_sure():
    y, d = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    gamma = torch.tensor([[[[1e-3, 1e3], [1e-3, 1e3]]]])
    for op in (Denoising(), Inpainting(torch.zeros(1, 1, 2, 2)), Downsampling((2, 2), 2)):
        op.cg_iterations = 50
        x = op.prox_l2(d, op.A(y), (gamma / 0.1) ** 2)
        assert torch.allclose(x[..., 0], torch.ones(1, 1, 2), atol=1e-3), type(op).__name__
        if not isinstance(op, Downsampling):   # its one observed pixel covers both columns
            assert torch.allclose(x[..., 1], torch.zeros(1, 1, 2), atol=1e-3)


def test_encoder_anchor_keeps_codes_the_data_cannot_reach(tiny_prior, clean_image):
    model, _ = tiny_prior
    x = torch.from_numpy(clean_image).permute(2, 0, 1)[None]
    missing = torch.zeros(1, 1, 48, 48)
    missing[..., 8:40, 8:40] = 1                       # a hole of 8x8 latent cells
    op = Inpainting(missing)
    y = op.A(x)
    start = joint_map(y, op, model, x0=y, data=Gaussian(0.01), steps=0).z
    inner = (..., slice(4, 6), slice(4, 6))            # cells whose decoder footprint is all hole
    anchored = joint_map(y, op, model, x0=y, data=Gaussian(0.01), steps=40, anchor="encoder").z
    shrunk = joint_map(y, op, model, x0=y, data=Gaussian(0.01), steps=40, anchor="prior").z
    assert shrunk[inner].norm() < 0.8 * start[inner].norm()
    assert (anchored - start)[inner].norm() < 0.2 * (shrunk - start)[inner].norm()
    with pytest.raises(ValueError, match="anchor"):
        joint_map(y, op, model, x0=y, data=Gaussian(0.01), steps=1, anchor="mean")


@pytest.mark.parametrize("name", TASKS)
def test_a_global_latent_prior_runs_every_task(name):
    from restore.model import DigitsVAE, DigitsVAEConfig

    torch.manual_seed(0)
    vae = DigitsVAE(DigitsVAEConfig(latent_dim=4, width=4, hidden=16, pixel_scale=True)).eval()
    from restore.conditions import BENCHMARKS
    condition = BENCHMARKS[name].conditions[0]
    x = np.random.default_rng(0).random((28, 28, 1)).astype(np.float32)
    made = condition.damage(x, np.random.default_rng(1))
    out = restore(np.clip(made.pixels, 0, 1), condition.task, companion=made.companion,
                  settings=SolverSettings(prior=vae, steps=2))
    assert out.shape == x.shape
