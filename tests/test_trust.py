"""What restore guarantees about the pixels it was given: kept pixels are kept bit for bit,
colours the prior cannot draw are not rewritten, a clean photograph comes back nearly unchanged,
and nothing non-finite is ever returned or written."""
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import restore
import restore.fidelity as fidelity
import restore.fidelity.consistency as consistency
import restore.solver as solver
from restore.cli import app
from restore.data import colour_augment
from restore.images import ImageError, Picture, read_image, write_image
from restore.metrics import psnr
from restore.physics import Denoising, Downsampling, Inpainting
from restore.pipeline import RestoreError

from conftest import smooth_images

SATURATED = [(253, 2, 253), (240, 20, 150), (0, 255, 255), (0, 0, 255), (90, 0, 160), (57, 255, 20),
             (255, 0, 0), (255, 255, 0), (255, 128, 0), (0, 255, 0), (128, 128, 128), (200, 160, 130)]
SAMPLES = restore.__file__.rsplit("/", 2)[0] + "/samples"


def patches(size=64):
    image = np.zeros((2 * size, 6 * size, 3), np.uint8)
    for i, colour in enumerate(SATURATED):
        r, k = divmod(i, 6)
        image[r * size:(r + 1) * size, k * size:(k + 1) * size] = colour
    return image


def noisy(clean, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(np.round(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)


def test_saturated_patches_keep_their_mean_colour_within_4_levels():
    out = restore.denoise(noisy(patches(), 10), sigma=10)
    for i, colour in enumerate(SATURATED):
        r, k = divmod(i, 6)
        mean = out[r * 64 + 8:(r + 1) * 64 - 8, k * 64 + 8:(k + 1) * 64 - 8].reshape(-1, 3).mean(0)
        assert np.abs(mean - colour).max() <= 4, (colour, mean)


def recoloured_photo():
    """A textured photograph (a held-out sample) turned to saturated magenta, cyan and violet."""
    x = torch.from_numpy(read_image(f"{SAMPLES}/butterfly.png").pixels[64:192, 64:192]).permute(2, 0, 1)[None]
    out = colour_augment(x, np.random.default_rng(3), 1.0)
    return np.round(out[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)


@pytest.mark.parametrize("sigma", [5, 10, 25])
def test_a_saturated_textured_photo_is_never_restored_below_its_input(sigma):
    clean = recoloured_photo()
    damaged = noisy(clean, sigma)
    assert psnr(clean, restore.denoise(damaged, sigma=sigma)) > psnr(clean, damaged)


def test_superres_of_a_saturated_photo_beats_bicubic():
    from restore.baselines import bicubic
    clean = recoloured_photo()
    small = (Downsampling(clean.shape[:2], 2).A(torch.from_numpy(clean / 255.0).permute(2, 0, 1)[None].float())
             [0].permute(1, 2, 0).numpy().clip(0, 1))
    small = np.round(small * 255).astype(np.uint8)
    out = restore.superres(small, scale=2, steps=5)
    assert psnr(clean, out, crop=2) > psnr(clean, np.round(bicubic(small / 255.0, 2).clip(0, 1) * 255).astype(np.uint8),
                                           crop=2)


def test_a_saturated_jpeg_is_never_restored_below_its_file():
    """Flat magenta, cyan and neon green with an orange box (colours the prior may not know), written
    as JPEGs of quality 30 the way each task meets them (small, blurred, as it is): each restoration,
    its rounding undone first, is above the file (bicubic's upscale of it for superres)."""
    from restore.baselines import bicubic
    from restore.conditions import blurred
    from restore.pipeline import restore as run
    from restore.tasks import Deblur, Denoise, Superres
    from restore.tasks.dejpeg import jpeg_round_trip
    image = np.zeros((128, 128, 3), np.float32)
    image[:, :43] = (253 / 255, 2 / 255, 253 / 255)
    image[:, 43:86] = (0, 1, 1)
    image[:, 86:] = (57 / 255, 1, 20 / 255)
    image[40:90, 30:100] = (1, 0.4, 0)
    u8 = lambda a: np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
    score = lambda a, crop=0: psnr(u8(image), u8(a), crop=crop)
    upscale = Superres(scale=4)
    small = upscale.physics(image.shape[:2], None).A(torch.from_numpy(image).permute(2, 0, 1)[None])[0]
    decoded, quantisation = jpeg_round_trip(small.permute(1, 2, 0).numpy(), 30)
    assert score(run(decoded, upscale, companion=quantisation), 4) > score(bicubic(decoded, 4), 4) + 0.3
    decoded, quantisation = jpeg_round_trip(image, 30)
    assert score(run(decoded, Denoise(), companion=quantisation)) > score(decoded) + 0.5
    blur = Deblur(kernel="gaussian:2", sigma=3)
    decoded, quantisation = jpeg_round_trip(np.clip(blurred(blur)(image, np.random.default_rng(0)).pixels, 0, 1), 30)
    assert score(run(decoded, Deblur(kernel="gaussian:2"), companion=quantisation)) > score(decoded) + 0.5


def test_a_clean_photograph_at_a_small_sigma_comes_back_nearly_unchanged():
    clean = np.round(read_image(f"{SAMPLES}/flower.png").pixels * 255).astype(np.uint8)
    assert psnr(clean, restore.denoise(clean, sigma=3)) >= 40


@pytest.mark.parametrize("noise", ["sigma", "sensor"])
def test_no_denoised_pixel_stands_farther_from_its_observation_than_the_noise_reaches(noise):
    """Thin lines of red and cyan on white, clean, given noise it does not have: the prior and the
    filter took the lone pixel where the lines cross for noise, and moved it by 200 levels at sigma 10
    (20 sigma). Every pixel now keeps within 5 levels of the noise of its observation. (Under a
    sensor's noise, two black lines on a grey image crossing at a white pixel: a grey image is
    restored in its own terms.)"""
    clean = np.full((64, 64, 3), 255, np.uint8)
    clean[32, :] = (0, 255, 255)
    clean[:, 20] = (255, 0, 0)
    if noise == "sensor":
        clean = np.full((64, 64, 1), 128, np.uint8)
        clean[32, :] = clean[:, 20] = 0
        clean[32, 20] = 255
    if noise == "sigma":
        out, reach = restore.denoise(clean, sigma=10), np.full(clean.shape, 5 * 10.0)
    else:
        a, b = 1 / 40, 0.02**2
        out = restore.denoise(clean, noise=f"poisson-gaussian:{a},{b}")
        level = fidelity.PoissonGaussian(a, b).gaussian(torch.from_numpy(clean / 255.0).permute(2, 0, 1)[None]).sigma
        reach = 5 * 255 * level[0].permute(1, 2, 0).numpy()
    moved = np.abs(out.astype(float) - clean)
    assert (moved <= reach + 0.5).all() and moved[32, 20].max() > 0.5 * reach[32, 20].max(), moved[32, 20]


def test_the_decoder_scale_grows_only_where_the_data_say_it_is_wrong():
    torch.manual_seed(0)
    y = torch.rand(1, 3, 32, 32)
    physics = Denoising()
    d = y + 0.05 * torch.randn(y.shape)                   # explained by noise of 0.05
    g = torch.full_like(y, 0.01)
    kept = torch.isclose(fidelity.consistent_scale(d, g, y, physics, 0.05), g)
    assert kept.float().mean() > 0.95                    # noise alone passes the threshold in few windows
    biased = d.clone()
    biased[..., :16] += 0.4                               # a colour the decoder got wrong
    grown = fidelity.consistent_scale(biased, g, y, physics, 0.05)
    assert (grown[..., :12] > 0.3).all() and torch.isclose(grown[..., 20:], g[..., 20:]).float().mean() > 0.95


def test_local_means_are_corrected_beyond_the_noise_only():
    torch.manual_seed(0)
    clean = torch.full((1, 3, 48, 48), 0.5)
    y = clean + 0.04 * torch.randn(clean.shape)
    physics = Denoising()
    assert (fidelity.consistent_means(clean, y, physics, 0.04) - clean).abs().max() < 0.01
    off = clean - 0.2
    fixed = fidelity.consistent_means(off, y, physics, 0.04)
    assert (fixed[..., 8:-8, 8:-8].mean() - 0.5).abs() < 0.01


def test_a_clipped_colour_is_corrected_until_the_noise_explains_it():
    """At a saturated channel the file's noise is cut off at 0, so the observed mean sits 4 levels
    inside (sigma 10); a restoration 20 levels off is brought back until the observed mean is
    within the tolerance of what it predicts, not one step towards it."""
    torch.manual_seed(0)
    sigma = 10 / 255
    clean = torch.tensor([0.0, 1.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 64, 64).contiguous()
    y = (clean + sigma * torch.randn(clean.shape)).clamp(0, 1)
    off = clean + torch.tensor([20, -20, -20]).view(1, 3, 1, 1) / 255
    fixed = fidelity.consistent_means(off, y, Denoising(), sigma)
    inside = (..., slice(12, -12), slice(12, -12))
    residual = (y - fidelity.clipped_mean(fixed, torch.tensor(sigma))[0])[inside].mean(dim=(-2, -1))
    assert residual.abs().max() <= 1.05 * consistency.MEAN_TOLERANCE * sigma / consistency.MEAN_WINDOW, residual * 255
    assert (fixed[inside].mean(dim=(-2, -1)) - clean[..., 0, 0]).abs().max() < 4 / 255


def test_holes_take_no_part_in_the_consistency_of_what_is_observed():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    missing = torch.zeros(1, 1, 32, 32)
    missing[..., 8:24, 8:24] = 1
    y = torch.where(missing.bool(), 1.0, x)                # holes painted white in the observation
    physics = Inpainting(missing)
    assert torch.allclose(fidelity.consistent_means(x, y, physics, 1 / 255), x)


def mask_of(shape):
    mask = np.zeros(shape[:2], bool)
    mask[20:23, :] = True
    mask[:, 100:102] = True
    return mask


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_inpaint_keeps_every_unmasked_pixel_bit_for_bit(dtype):
    image = patches(32)
    image = image.astype(dtype) * 257 if dtype == np.uint16 else image
    image = (image / 255).astype(dtype) if np.dtype(dtype).kind == "f" else image
    if np.dtype(dtype).kind == "f":
        image = image + np.random.default_rng(0).uniform(0, 1e-3, image.shape).astype(dtype) * (image < 0.5)
    mask = mask_of(image.shape)
    out = restore.inpaint(image, mask)
    assert out.dtype == image.dtype
    assert np.array_equal(out[~mask], image[~mask])
    assert not np.array_equal(out[mask], image[mask])


def test_inpaint_keeps_unmasked_pixels_with_samples_tensors_gray_and_dilation():
    image = patches(32)
    mask = mask_of(image.shape)
    out, std = restore.inpaint(image, mask, samples=4, return_std=True)
    assert np.array_equal(out[~mask], image[~mask]) and np.isfinite(std).all()
    tensor = torch.from_numpy(image).permute(2, 0, 1)
    out = restore.inpaint(tensor, torch.from_numpy(mask), channel_axis=0)
    assert torch.equal(out[:, ~torch.from_numpy(mask)], tensor[:, ~torch.from_numpy(mask)])
    gray = image[:, :, 1]
    assert np.array_equal(restore.inpaint(gray, mask)[~mask], gray[~mask])
    from restore.masks import dilate
    grown = dilate(mask, 2)
    out = restore.inpaint(image, mask, mask_dilate=2)
    assert np.array_equal(out[~grown], image[~grown]) and not np.array_equal(out[~mask], image[~mask])


def test_inpaint_keeps_unmasked_pixels_in_files_single_and_batch(tmp_path):
    image = patches(32)
    mask = mask_of(image.shape)
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", Picture(image / 255.0))
    write_image(tmp_path / "in" / "b.jpg", Picture(image / 255.0))
    write_image(tmp_path / "mask.png", Picture(mask[:, :, None].astype(np.float32)))
    runner = CliRunner()
    single = runner.invoke(app, ["inpaint", str(tmp_path / "in" / "a.png"), "--mask", str(tmp_path / "mask.png"),
                                 "-o", str(tmp_path / "a_out.png"), "-q"])
    assert single.exit_code == 0, single.output
    from_jpeg = runner.invoke(app, ["inpaint", str(tmp_path / "in" / "b.jpg"), "--mask", str(tmp_path / "mask.png"),
                                    "-o", str(tmp_path / "b_out.png"), "-q"])
    assert from_jpeg.exit_code == 0, from_jpeg.output
    batch = runner.invoke(app, ["inpaint", str(tmp_path / "in"), "--mask", str(tmp_path / "mask.png"),
                                "-o", str(tmp_path / "out"), "-q", "--samples", "2"])
    assert batch.exit_code == 0, batch.output
    # A lossless output holds the kept pixels exactly (a JPEG output is re-encoded, as any JPEG is).
    for source, result in ((tmp_path / "in" / "a.png", tmp_path / "a_out.png"),
                           (tmp_path / "in" / "a.png", tmp_path / "out" / "a.png"),
                           (tmp_path / "in" / "b.jpg", tmp_path / "b_out.png")):
        given, written = read_image(source).pixels, read_image(result).pixels
        assert np.array_equal(np.round(written[~mask] * 255), np.round(given[~mask] * 255)), result


def test_the_decoder_scale_never_overflows(monkeypatch):
    from restore.priors import load_prior
    vae = load_prior("photo")
    with torch.no_grad():
        vae_copy = type(vae)(vae.config)
        vae_copy.load_state_dict(vae.state_dict())
        vae_copy.scale_head.bias.fill_(80.0)               # exp(80) overflows float32 squared
        _, g = vae_copy.decode_with_scale(torch.zeros(1, vae.config.latent_channels, 4, 4))
    assert torch.isfinite(g).all() and g.max() <= 1.0


def test_non_finite_results_are_refused_never_returned_or_written(monkeypatch, tmp_path):
    real = solver.joint_map

    def broken(*args, **kwargs):
        result = real(*args, **kwargs)
        result.x[..., 0, 0] = float("nan")
        return result
    monkeypatch.setattr("restore.reconstructor.joint_map", broken)
    with pytest.raises(RestoreError):
        restore.superres(patches(16), scale=2, steps=1)
    with pytest.raises(ImageError, match="NaN or infinite"):
        write_image(tmp_path / "x.png", Picture(np.full((4, 4, 3), np.nan, np.float32)))
    assert not (tmp_path / "x.png").exists()
    written = CliRunner().invoke(app, ["superres", f"{SAMPLES}/lake_small.png", "--steps", "1", "-q",
                                       "-o", str(tmp_path / "y.png")])
    assert written.exit_code == 1 and "non-finite" in written.output and "Traceback" not in written.output
    assert not (tmp_path / "y.png").exists()


def test_colour_augmentation_stays_in_srgb_and_keeps_gray_gray():
    x = torch.from_numpy(smooth_images(6, 16, seed=4)).permute(0, 3, 1, 2).contiguous()
    x[0] = x[0].mean(0, keepdim=True)
    out = colour_augment(x, np.random.default_rng(0), 1.0)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(out[0], out[0].mean(0, keepdim=True).expand(3, -1, -1), atol=1e-5)
    assert (out[1:] - x[1:]).abs().amax(dim=(1, 2, 3)).min() > 0.05
    assert torch.equal(colour_augment(x, np.random.default_rng(0), 0.0), x)


@pytest.mark.parametrize("colour", [(255, 0, 255), (0, 255, 255)])
def test_upscaling_a_flat_saturated_colour_keeps_what_was_observed(colour):
    """The prior draws a saturated colour's borders beyond [0, 1]; clipped alone, the restoration's
    downsampled image moved 19 levels from the observation at the borders (38.7 dB against the
    clean magenta). The clip now keeps what the observation saw."""
    small = np.full((48, 64, 3), colour, np.uint8)
    out = restore.superres(small, scale=2)
    seen = Downsampling(out.shape[:2], 2).A(torch.from_numpy(out / 255.0).permute(2, 0, 1)[None].float())
    assert float((seen * 255 - torch.from_numpy(small).permute(2, 0, 1)[None]).abs().max()) < 3
    assert psnr(np.full((96, 128, 3), colour, np.uint8), out) > 50


@pytest.mark.parametrize("colour", [(255, 0, 255), (0, 255, 255), (57, 255, 20)])
def test_holes_amid_a_flat_saturated_colour_are_filled_with_it(colour):
    """The prior fills holes with its own colours: in flat magenta with half the pixels missing
    the holes came back up to 69 levels off (cyan 50, neon 22; 7.6 inside a box in cyan). Amid
    one colour the holes now take that colour."""
    rng = np.random.default_rng(0)
    image = np.full((96, 128, 3), colour, np.uint8)
    for mask in (rng.random(image.shape[:2]) < 0.5, np.pad(np.ones((40, 40), bool), ((28, 28), (44, 44)))):
        holed = image.copy()
        holed[mask] = 255 - holed[mask]
        out = restore.inpaint(holed, mask)
        assert int(np.abs(out.astype(int) - image).max()) <= 1


def test_only_holes_amid_one_colour_count_as_flat():
    """A hole is flat where the seen pixels of its window, or all the seen pixels around it, are
    one colour; texture, a colour edge within the window or no seen pixel at all are not."""
    from restore.fill import flat_holes
    y = torch.full((1, 3, 64, 96), 0.5)
    y[..., 48:] = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(0))  # texture on the right
    observed = torch.ones(1, 1, 64, 96)
    observed[..., 10:14, 10:14] = 0           # a speck in the flat part
    observed[..., 10:14, 70:74] = 0           # a speck in the texture
    observed[..., 30:60, 2:40] = 0            # a large hole in the flat part
    observed[..., 16:20, 40:56] = 0           # a hole across the edge
    flat = flat_holes(y, observed)[0, 0]
    assert flat[10:14, 10:14].all() and flat[30:60, 2:40].all()
    assert not flat[10:14, 70:74].any() and not flat[16:20, 40:56].any()
    assert not flat[observed[0, 0] > 0].any()
    assert not flat_holes(y, torch.zeros(1, 1, 64, 96)).any()


@pytest.mark.parametrize("scale", [2, 4])
def test_an_upscaled_smooth_gradient_is_no_worse_than_bicubic(scale):
    """The prior's own detail is all error where the image is smooth: a gradient came back 1.2 / 2.6 dB
    below bicubic at x2 / x4."""
    from restore.baselines import bicubic
    yy, xx = np.mgrid[0:96, 0:128] / 127.0
    clean = np.round(np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 + 0.3 * np.sin(3 * xx * yy)], -1) * 255) / 255
    clean = clean.astype(np.float32)
    small = Downsampling(clean.shape[:2], scale).A(torch.from_numpy(clean).permute(2, 0, 1)[None])
    small = (np.round(small[0].permute(1, 2, 0).numpy().clip(0, 1) * 255) / 255).astype(np.float32)
    plain = psnr(clean, bicubic(small, scale).clip(0, 1), crop=scale)
    assert psnr(clean, restore.superres(small, scale=scale), crop=scale) >= plain - 0.05


@pytest.mark.parametrize("side, scale", [(64, 8), (64, 4)])
def test_a_small_steep_gradient_is_upscaled_no_worse_than_bicubic(side, scale):
    """Its border, padded with the edge value, read as a step of a third of the slope, and in an
    input of 8 to 16 pixels that border's detail reached every pixel: the prior's upscale, 5 to 7
    dB below bicubic."""
    from restore.baselines import bicubic
    yy, xx = np.mgrid[0:side, 0:side] / side
    clean = np.stack([0.1 + 0.8 * xx, 0.2 + 0.6 * yy, 0.9 - 0.35 * (xx + yy)], -1).astype(np.float32)
    small = Downsampling(clean.shape[:2], scale).A(torch.from_numpy(clean).permute(2, 0, 1)[None])
    small = (np.round(small[0].permute(1, 2, 0).numpy().clip(0, 1) * 255) / 255).astype(np.float32)
    plain = psnr(clean, bicubic(small, scale).clip(0, 1))
    assert psnr(clean, restore.superres(small, scale=scale)) >= plain - 0.05


def soft_shapes(size=96, blur=3.0):
    """Saturated shapes (magenta, neon green, yellow, blue on cyan) with edges blurred by ``blur``
    pixels: a graphic the prior cannot draw, with soft edges that are not smooth."""
    import cv2
    image = np.zeros((size, size, 3), np.float32)
    image[:] = (0, 1, 1)
    cv2.circle(image, (30, 34), 18, (1, 0, 1), -1)
    cv2.rectangle(image, (50, 10), (90, 30), (0.2, 1, 0.1), -1)
    cv2.circle(image, (70, 70), 20, (1, 0.9, 0), -1)
    cv2.rectangle(image, (8, 64), (40, 92), (0.1, 0.1, 1), -1)
    return np.clip(cv2.GaussianBlur(image, (0, 0), blur), 0, 1)


def test_an_upscaled_soft_edged_graphic_is_near_bicubic():
    """Soft edges of colours the prior cannot draw: bicubic draws them to within a level, and the
    prior's own detail along them was all error (x2: 19 dB below bicubic with 3-px edges). Where the
    small image holds next to nothing near its Nyquist frequency, the upscale is now the plain one."""
    from restore.baselines import bicubic
    clean = soft_shapes()
    small = Downsampling(clean.shape[:2], 2).A(torch.from_numpy(clean).permute(2, 0, 1)[None])
    small = (np.round(small[0].permute(1, 2, 0).numpy().clip(0, 1) * 255) / 255).astype(np.float32)
    plain = psnr(clean, bicubic(small, 2).clip(0, 1))
    assert plain > 55
    assert psnr(clean, restore.superres(small, scale=2)) >= plain - 1.0


def test_soft_edged_graphic_with_half_its_pixels_missing_is_filled_near_the_smooth_fill():
    """Where what is seen around the holes is band-limited, the smooth fill stands: the prior's own
    detail came to 40 dB in the holes of these shapes, where the smooth fill draws them at 59."""
    import torch
    from restore.fill import fill_holes
    clean = soft_shapes()
    missing = np.random.default_rng(0).random(clean.shape[:2]) < 0.5
    damaged = np.where(missing[..., None], 0, clean).astype(np.float32)
    observed = torch.from_numpy(~missing).float()[None, None]
    fill = fill_holes(torch.from_numpy(damaged).permute(2, 0, 1)[None] * observed, observed, unseen=None)
    fill = fill[0].permute(1, 2, 0).numpy()
    holes = lambda x: 10 * np.log10(1 / np.square(x[missing] - clean[missing]).mean())
    assert holes(fill) > 55
    assert holes(restore.inpaint(damaged, mask=missing)) > holes(fill) - 1.5


@pytest.mark.parametrize("colour, scale", [((255, 0, 255), 4), ((0, 0, 255), 4), ((50, 255, 25), 2)])
def test_an_upscaled_flat_colour_stays_that_colour(colour, scale):
    """The prior drew spots up to 48 levels off into a flat magenta, cyan or blue at x4 (20 in a
    neon green at x2), along the edges of the image and of its tiles; where the small image is one
    colour the upscale now is too."""
    small = np.full((48, 64, 3), colour, np.uint8)
    assert int(np.abs(restore.superres(small, scale=scale).astype(int) - colour).max()) <= 1
