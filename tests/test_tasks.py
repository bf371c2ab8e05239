"""The tasks through the Python API: what each promises, checked so that a broken one fails."""
from pathlib import Path

import numpy as np
import pytest
import torch

from restore import SolverSettings, deblur, estimate_noise, psnr, restore, superres
from restore import conditions
from restore.baselines import bicubic
from restore.physics import Blur, Downsampling, gaussian_kernel
from restore.tasks import TASKS, Deblur, Inpaint, OptionError, Superres
from tests.conftest import smooth_images


@pytest.mark.parametrize("sigma", [5, 15, 40])
def test_noise_estimate_is_close_to_the_truth(sigma):
    clean = smooth_images(1, 128, seed=11)[0]
    noisy = np.clip(clean + np.random.default_rng(sigma).normal(0, sigma / 255, clean.shape), 0, 1)
    assert abs(estimate_noise(noisy.astype(np.float32)) - sigma) < 0.1 * sigma


def test_superres_solves_rather_than_returning_its_first_guess(tiny_prior):
    # The x-step makes the result agree with the observation; bicubic upscaling of a textured
    # image does not.
    model, _ = tiny_prior
    clean = np.random.default_rng(12).random((64, 64, 3)).astype(np.float32)
    x = torch.from_numpy(clean).permute(2, 0, 1)[None]
    down = Downsampling((64, 64), 4)
    small = down.A(x)[0].permute(1, 2, 0).numpy()
    big = superres(small, scale=4, prior=model, steps=5)

    def misfit(image):
        return float(((down.A(torch.from_numpy(image).permute(2, 0, 1)[None]) - down.A(x)) ** 2).mean())
    assert misfit(big) < 0.1 * misfit(bicubic(small, 4))


def test_deblur_beats_the_blurred_input_and_keeps_the_size(tiny_prior):
    model, _ = tiny_prior
    clean = smooth_images(1, 48, seed=13)[0]
    x = torch.from_numpy(clean).permute(2, 0, 1)[None]
    blurred = Blur(gaussian_kernel(1.5)).blur_image(x)[0].permute(1, 2, 0).numpy()
    restored = deblur(blurred, kernel="gaussian:1.5", sigma=1, prior=model, steps=20)
    assert restored.shape == clean.shape
    assert psnr(clean, restored) > psnr(clean, blurred) + 1


def test_deblur_of_a_tiled_image_matches_the_whole_blur(tiny_prior):
    # Tiles read a margin of the kernel's radius, so the data term is exact at tile edges:
    # a tiled restoration explains the observation as well as a whole-image one.
    model, _ = tiny_prior
    clean = smooth_images(1, 72, seed=14)[0]
    task = Deblur(kernel="motion:9,20", sigma=1)
    blurred = conditions.blurred(task)(clean, np.random.default_rng(0)).pixels
    tiled = restore(np.clip(blurred, 0, 1).astype(np.float32), task,
                    settings=SolverSettings(prior=model, steps=10, tile=32, overlap=8))
    blur = task.physics((72, 72), None)
    again = blur.blur_image(torch.from_numpy(tiled).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(again - blurred).mean() < 0.01


def test_a_task_with_a_kernel_array_is_a_value():
    """Compared and hashed as the kernel's weights (an array field made both raise)."""
    box = np.ones((3, 3))
    task = Deblur(kernel=box, sigma=2)
    assert task == Deblur(kernel=torch.ones(3, 3), sigma=2) and hash(task) == hash(Deblur(kernel=box, sigma=2))
    assert task != Deblur(kernel=np.eye(3), sigma=2) and {task: 1}[Deblur(kernel=box, sigma=2)] == 1
    assert np.allclose(task.weights, 1 / 9)


def test_kernel_specs(tmp_path):
    from restore.images import Picture, write_image
    assert Deblur(kernel="gaussian:2", sigma=1).weights.shape == (13, 13)
    assert Deblur(kernel="motion:15,30", sigma=1).margin == 8
    square = np.zeros((4, 6, 1), np.float32)
    square[1:3, 2:4] = 1
    write_image(tmp_path / "k.png", Picture(square))
    weights = Deblur(kernel=str(tmp_path / "k.png"), sigma=1).weights
    assert weights.shape == (5, 7) and abs(weights.sum() - 1) < 1e-6          # padded to odd sides
    big = np.zeros((66, 40, 1), np.float32)
    big[30:34, 10:30] = 1
    write_image(tmp_path / "big.png", Picture(big))
    with pytest.raises(OptionError, match=r"big\.png: 40x66 is over the limit of 65x65"):   # as the file has it
        Deblur(kernel=str(tmp_path / "big.png"), sigma=1)
    for bad, needle in [("gaussian:x", "STD must be a number"), ("blob", "not gaussian"), ("", "is needed"),
                        ("gaussian:20", "over the limit")]:
        with pytest.raises(OptionError, match=needle):
            Deblur(kernel=bad, sigma=1)


def test_options_are_checked_once_with_clear_errors():
    with pytest.raises(OptionError, match="scale must be 2, 3, 4 or 8, got 3.5"):
        Superres(scale=3.5)
    with pytest.raises(OptionError, match="mask_dilate"):
        Inpaint(mask_dilate=-1)
    with pytest.raises(OptionError, match="sigma must be given"):
        Superres(sigma=None)
    with pytest.raises(OptionError, match="sigma must be at least 1e-06 and at most 255, got 0"):
        Inpaint(sigma=0)


def test_a_given_model_is_neither_moved_nor_changed(tiny_prior):
    model, _ = tiny_prior
    before = {k: v.clone() for k, v in model.state_dict().items()}
    restore(smooth_images(1, 32, seed=15)[0], TASKS["denoise"](sigma=10),
            settings=SolverSettings(prior=model, steps=3, device="cpu"))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).device.type == "cpu"


def test_inpaint_dilation_reaches_the_halo(tiny_prior):
    from restore import inpaint
    model, _ = tiny_prior
    clean = smooth_images(1, 32, seed=16)[0]
    damaged = clean.copy()
    damaged[12:20, 12:20] = 1.0                 # a white halo ...
    mask = np.zeros((32, 32), bool)
    mask[15:17, 15:17] = True                   # ... around a small marked hole
    kept = inpaint(damaged, mask, prior=model, steps=2)
    grown = inpaint(damaged, mask, mask_dilate=4, prior=model, steps=2)
    halo = (slice(12, 14), slice(12, 20))
    assert np.allclose(kept[halo], 1.0, atol=0.02)             # observed pixels are kept
    assert np.abs(grown[halo] - 1.0).mean() > 0.1                # grown holes are filled


def test_inpaint_restores_only_the_tiles_with_holes(tiny_prior):
    from restore import inpaint
    model, _ = tiny_prior
    clean = (smooth_images(1, 96, seed=17)[0] * 255).round().astype(np.uint8)
    mask = np.zeros((96, 96), bool)
    mask[8:14, 10:20] = True                                     # one small hole near a corner
    damaged = clean.copy()
    damaged[mask] = 255
    calls = []
    out = restore(damaged, Inpaint(), companion=mask, progress=lambda done, total: calls.append(total),
                  settings=SolverSettings(prior=model, steps=4, tile=32, overlap=8, tile_batch=1))
    assert set(calls) == {4}                                     # one tile of 16 restored, 4 steps
    far = np.ones((96, 96), bool)
    far[:40, :40] = False                                        # beyond every tile that holds the hole
    assert np.array_equal(out[far], damaged[far])                # bit for bit
    assert np.abs(out[mask].astype(float) - 255).mean() > 20     # the hole was filled
    # no hole at all: nothing to do, the input comes back (and the caller is told the mask marks nothing)
    with pytest.warns(UserWarning, match="its mask marks no pixel"):
        assert np.array_equal(inpaint(damaged, np.zeros((96, 96), bool), prior=model, tile=32), damaged)


def test_auto_precision_follows_the_hardware(monkeypatch):
    from restore import devices
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert devices.resolve_precision("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert devices.resolve_precision("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert devices.resolve_precision("auto", cpu) == torch.float32
    assert devices.resolve_precision("bf16", cpu) == torch.bfloat16
    assert devices.resolve_precision("FP32", cpu) == torch.float32
    with pytest.raises(ValueError, match="precision"):
        devices.resolve_precision("fp16", cpu)


@pytest.mark.parametrize("name", TASKS)
def test_bf16_networks_give_nearly_the_fp32_result(tiny_prior, name):
    model, _ = tiny_prior
    condition = conditions.BENCHMARKS[name].conditions[0]
    # With texture: where the small image is band-limited, superres returns the plain upscale, and
    # the network's output is not used.
    texture = np.random.default_rng(1).uniform(-0.1, 0.1, (32, 32, 1)).astype(np.float32)
    clean = np.clip(smooth_images(1, 32, seed=18)[0] + texture, 0, 1)
    made = condition.damage(clean, np.random.default_rng(0))
    damaged, companion = np.clip(made.pixels, 0, 1).astype(np.float32), made.companion
    out = {p: restore(damaged, condition.task, companion=companion,
                      settings=SolverSettings(prior=model, steps=5, precision=p)) for p in ("fp32", "bf16")}
    assert not np.array_equal(out["fp32"], out["bf16"])          # bf16 did run
    assert abs(psnr(clean, out["fp32"]) - psnr(clean, out["bf16"])) < 0.3
    assert np.abs(out["fp32"] - out["bf16"]).max() < 0.05


def test_tile_batches_follow_the_device_memory(monkeypatch):
    from restore import devices
    assert devices.tile_batch(torch.device("cpu"), 256) == 4
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (70 * gib, 80 * gib))
    assert devices.tile_batch(torch.device("cuda"), 256) == 64
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * gib, 8 * gib))
    assert 1 <= devices.tile_batch(torch.device("cuda"), 256) < 64
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 * 2**20, 8 * gib))
    assert devices.tile_batch(torch.device("cuda"), 256) == 1


def test_output_decode_stays_float32_unless_the_task_allows_bf16(tiny_prior):
    from restore.devices import Autocast
    from restore.priors import load_prior
    vae = load_prior(tiny_prior[1])
    z = vae.encode(torch.rand(1, 3, 32, 32))[0]
    exact = vae.decode_with_scale(z)[0]
    kept = Autocast(vae, torch.bfloat16).decode_with_scale(z)[0]
    rounded = Autocast(vae, torch.bfloat16, float32_output=False).decode_with_scale(z)[0]
    assert kept.dtype == rounded.dtype == torch.float32
    assert torch.equal(kept, exact) and not torch.equal(rounded, exact)
    assert TASKS["denoise"].defaults.float32_output is False
    assert all(t.defaults.float32_output for n, t in TASKS.items() if n != "denoise")


@pytest.mark.parametrize("name", [n for n in TASKS if n != "dejpeg"])
def test_public_functions_follow_their_tasks(name):
    """Each task's function takes the task's options and documents its own default steps."""
    import inspect

    import restore
    from restore.tasks.api import _api_name
    from restore.tasks.base import option_fields
    task = TASKS[name]
    function = getattr(restore, name)
    params = inspect.signature(function).parameters
    for f in option_fields(task):
        assert _api_name(f) in params and f.metadata["help"] in function.__doc__
    if task.companion is not None:
        assert list(params)[1] == task.companion.name
    assert f"Solver steps per tile (default {task.defaults.steps}" in function.__doc__
    with pytest.raises(TypeError, match="stpes"):
        required = {_api_name(f): "gaussian:1" for f in option_fields(task) if f.metadata["required"]}
        function(np.zeros((8, 8)), *([np.zeros((8, 8))] if task.companion else []), **required, stpes=3)


def test_a_task_for_ones_own_experiment_needs_only_its_physics(tiny_prior):
    """The restoration protocol alone makes a working task: no benchmark conditions, baselines or
    training view (those live in restore.conditions and restore.views)."""
    from dataclasses import dataclass

    from restore.physics import LinearPhysics
    from restore.tasks import Task

    class Underexposed(LinearPhysics):           # a third of the light reached the film
        def A(self, x):
            return x / 3

        def A_adjoint(self, y):
            return y / 3

    @dataclass(frozen=True)
    class Brighten(Task):
        sigma: float = 1.0

        def physics(self, shape, companion):
            return Underexposed()

    model, _ = tiny_prior
    clean = smooth_images(1, 32, seed=3)[0]
    dark = np.round(clean / 3 * 255) / 255
    out = restore(dark.astype(np.float32), Brighten(), settings=SolverSettings(prior=model, steps=15))
    assert out.shape == clean.shape
    assert psnr(clean, out) > psnr(clean, dark) + 10


def test_noise_estimate_reads_the_smoothest_blocks_not_texture():
    """Fine texture is no noise: the median over the whole image took a clean butterfly's wings
    (a 128x128 crop) for noise of 17.8, and "denoised" them 26 dB below the file."""
    from restore.images import read_image
    wings = read_image(Path(__file__).parent.parent / "samples" / "butterfly.png").pixels[64:192, 64:192].astype(np.float64)
    assert estimate_noise(wings) < 6
    noisy = np.round(np.clip(wings + np.random.default_rng(0).normal(0, 3 / 255, wings.shape), 0, 1) * 255) / 255
    assert estimate_noise(noisy) < 10


def test_noise_estimate_leaves_clipped_blocks_out():
    """Where noise is clipped at black or white it hides: a half-white image at sigma 25 read 19.8."""
    clean = np.concatenate([np.full((64, 128, 3), 0.5), np.full((64, 128, 3), 0.97)])
    noisy = np.clip(clean + np.random.default_rng(1).normal(0, 25 / 255, clean.shape), 0, 1)
    assert estimate_noise(noisy) == pytest.approx(25, rel=0.1)


def test_noise_estimate_reads_a_dark_photographs_clipped_blocks():
    """A dark photograph (a night scene) under heavy noise has most blocks clipped at black: the few
    left unclipped are its brightest, not its smooth parts, and read 17 at sigma 25 on held-out crops
    darkened to 10 %. Read with clipping's share of the variance, it comes back within 10 %."""
    dark = smooth_images(1, 128, seed=8)[0].astype(np.float64) * 0.1
    noisy = np.round(np.clip(dark + np.random.default_rng(2).normal(0, 25 / 255, dark.shape), 0, 1) * 255) / 255
    assert estimate_noise(noisy) == pytest.approx(25, rel=0.1)


def test_a_tile_inside_a_large_hole_starts_from_the_whole_images_fill():
    """A hole larger than a tile leaves tiles that see no pixel of the image. They start from the
    smooth fill of the whole image: a dark photograph's hole came back as a mid-grey square, and
    with the decoder's error carried in as mid-grey too, white."""
    from restore import inpaint
    from restore.images import read_image
    image = (read_image("samples/lake.png").pixels[:64, :64] * 0.25 * 255).round().astype(np.uint8)   # dark
    mask = np.zeros((64, 64))
    mask[8:56, 8:56] = 1
    image[mask > 0] = 255                                   # the hole painted white
    out = inpaint(image, mask, tile=16, steps=1)
    inside = out[24:40, 24:40].astype(float)              # a tile's whole core, all hole
    around = image[mask == 0].astype(float)
    assert abs(inside.mean() - around.mean()) < 8 and inside.max() < around.max() + 10
    assert np.array_equal(out[mask == 0], image[mask == 0])


def test_the_coarse_fill_of_a_large_image_follows_its_surroundings():
    """On a grid coarser than the image the fill still keeps every seen pixel and, inside a hole,
    follows what surrounds it (a ramp comes back a ramp)."""
    from restore.fill import coarse_fill
    h, w = 300, 700
    ramp = torch.linspace(0, 1, w).expand(h, w)[None, None].repeat(1, 3, 1, 1).contiguous()
    observed = torch.ones(1, 1, h, w)
    observed[..., 50:250, 100:600] = 0
    painted = torch.where(observed > 0, ramp, torch.ones_like(ramp))
    filled = coarse_fill(painted, observed, side=64)
    assert torch.equal(filled[observed.expand_as(filled) > 0], ramp[observed.expand_as(ramp) > 0])
    assert float((filled - ramp)[..., 50:250, 100:600].abs().max()) < 0.03


def test_band_ratio_tells_a_band_limited_image_from_texture():
    """Near 0 for a smooth or softly edged image, at its borders too (padding a ramp or a bowl made
    a kink of it there: 0.06 and 0.17), about 1 for white noise, and nothing said (infinite) where
    the image is too small for the differences."""
    from restore.bands import BAND_LIMITED, band_ratio
    import cv2
    edge = np.zeros((48, 40, 3), np.float32)
    cv2.circle(edge, (36, 20), 14, (1, 0, 1), -1)           # a magenta disc cut by the right border
    yy, xx = np.mgrid[0:48, 0:40].astype(np.float32)
    for soft in (cv2.GaussianBlur(edge, (0, 0), 1.5), np.stack([0.1 + 0.02 * xx, 0.9 - 0.015 * yy, 0.5 + 0 * xx], -1),
                 np.stack([((xx - 20) / 40) ** 2 + ((yy - 10) / 48) ** 2] * 3, -1)):
        assert float(band_ratio(torch.from_numpy(soft).permute(2, 0, 1)[None]).max()) < BAND_LIMITED
    noise = band_ratio(torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(0)))
    assert 0.7 < float(noise.mean()) < 1.5
    assert torch.isinf(band_ratio(torch.rand(1, 3, 6, 6))).all()


def test_band_limited_says_nothing_inside_a_large_hole():
    """A smooth fill is band-limited wherever it is: inside a large hole it is all there is, and
    there the prior keeps its say (the weight 0); along a thin hole and on a large one's rim, whose
    windows see the image around them, 1."""
    from restore.bands import band_limited
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    smooth = torch.stack([0.2 + 0.5 * xx, 0.3 + 0.4 * yy, 0.5 + 0 * xx])[None]
    observed = torch.ones(1, 1, 64, 64)
    observed[..., 12:52, 12:52] = 0
    weight = band_limited(smooth, radius=4, observed=observed)
    assert float(weight[..., 28:36, 28:36].max()) == 0
    assert float(weight[..., :4, :].min()) == 1
    assert float(weight[..., 12:17, 20:44].min()) == 1 and float(weight[..., 20:44, 12:17].min()) == 1
    thin = torch.ones(1, 1, 64, 64)
    thin[..., 30:33, :] = 0
    assert float(band_limited(smooth, radius=4, observed=thin).min()) == 1
    assert torch.equal(band_limited(smooth, radius=4), torch.ones_like(weight))


def test_inpaint_refine_takes_the_smooth_fill_where_the_seen_image_is_band_limited():
    """No prior needed: a smooth tile's holes (scattered pixels and a 3-px stroke) take the smooth
    fill, a noisy tile's keep the solver's, and so does the interior of a 40-px hole; the observed
    pixels are the solver's own. bf16 steps too."""
    from restore.fill import fill_holes
    from restore.physics import Inpainting
    rng = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    smooth = torch.stack([0.2 + 0.5 * xx, 0.3 + 0.4 * yy, 0.5 + 0.2 * xx * yy])[None]
    noisy = (smooth + 0.2 * torch.rand(smooth.shape, generator=rng)).clamp(0, 1)
    missing = torch.rand(1, 1, 64, 64, generator=rng) < 0.3
    missing[..., 40:43, :] = True
    physics = Inpainting(missing.float())
    y = torch.cat([smooth, noisy]) * physics.observed
    first = fill_holes(y, physics.observed, unseen=None)
    x = torch.full_like(y, 0.5)                        # the solver's last step: far from both
    out = Inpaint().refine(physics, y, first)(x, x)
    holes = missing.expand_as(out[:1])[0]
    assert torch.allclose(out[0][holes], first[0][holes], atol=1e-6)
    assert float((out[1][holes] - 0.5).abs().max()) < 1e-6
    assert torch.equal(out[:, :, ~missing[0, 0]], x[:, :, ~missing[0, 0]])
    low = Inpaint().refine(physics, y, first)(x.bfloat16(), x.bfloat16())
    assert torch.allclose(low[0][holes].float(), first[0][holes], atol=0.01)
    big = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    big[..., 12:52, 12:52] = True
    physics = Inpainting(big.float())
    y = smooth * physics.observed
    out = Inpaint().refine(physics, y, fill_holes(y, physics.observed, unseen=None))(x[:1], x[:1])
    assert float((out[..., 20:44, 20:44] - 0.5).abs().max()) < 1e-6
