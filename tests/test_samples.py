"""Posterior samples: their mean as the estimate and their spread as a map of where restore is unsure."""
import json

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from restore.fidelity import Gaussian
from restore import SolverSettings, denoise, restore, superres
from restore.cli import app
from restore.images import Picture, read_image, write_image
from restore.tasks import TASKS
from restore.uncertainty import HEAT_MAP_TOP, heat_map


def _noisy(clean, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(clean + rng.normal(0, sigma / 255, clean.shape), 0, 1).astype(np.float32)


@pytest.mark.parametrize("sampler", ["encoder", "langevin"])
def test_same_seed_same_result_and_another_seed_another(tiny_prior, clean_image, sampler):
    model, _ = tiny_prior
    noisy = _noisy(clean_image, 25)
    settings = SolverSettings(prior=model, steps=3, samples=4, sampler=sampler)
    task = TASKS["denoise"](sigma=25)
    torch.manual_seed(1)
    first, std = restore(noisy, task, settings=settings, return_std=True)
    state = torch.get_rng_state()
    again, std_again = restore(noisy, task, settings=settings, return_std=True)
    assert torch.equal(torch.get_rng_state(), state)             # the caller's generator is untouched
    assert np.array_equal(first, again) and np.array_equal(std, std_again)
    other = restore(noisy, task, settings=SolverSettings(prior=model, steps=3, samples=4, sampler=sampler, seed=1))
    assert not np.array_equal(first, other)


def test_one_sample_is_the_single_estimate(tiny_prior, clean_image):
    model, _ = tiny_prior
    noisy = _noisy(clean_image, 25)
    single = denoise(noisy, sigma=25, prior=model, steps=3)
    assert np.array_equal(denoise(noisy, sigma=25, prior=model, steps=3, samples=1, seed=5), single)
    assert not np.array_equal(denoise(noisy, sigma=25, prior=model, steps=3, samples=2), single)
    with pytest.raises(ValueError, match="samples"):
        denoise(noisy, sigma=25, prior=model, return_std=True)


def test_the_map_has_the_image_size_for_every_task(tiny_prior, clean_image):
    model, _ = tiny_prior
    h, w = clean_image.shape[:2]
    out, std = superres(clean_image[::2, ::2], scale=2, prior=model, steps=2, samples=3, return_std=True)
    assert out.shape == clean_image.shape and std.shape == (h, w) and std.dtype == np.float32
    tensor = torch.from_numpy(clean_image).permute(2, 0, 1)
    out, std = denoise(tensor, sigma=25, prior=model, steps=2, samples=3, channel_axis=0, return_std=True)
    assert torch.is_tensor(std) and std.shape == (h, w) and (std >= 0).all()


def test_the_map_is_larger_inside_a_hole_than_outside(tiny_prior, clean_image):
    model, _ = tiny_prior
    mask = np.zeros(clean_image.shape[:2], bool)
    mask[12:28, 10:30] = True
    for sampler in ("encoder", "langevin"):
        settings = SolverSettings(prior=model, steps=5, samples=8, sampler=sampler)
        out, std = restore(clean_image, TASKS["inpaint"](), companion=mask, settings=settings, return_std=True)
        assert std[mask].mean() > 3 * std[~mask].mean(), (sampler, std[mask].mean(), std[~mask].mean())


def test_inpainting_map_grows_with_the_distance_from_known_pixels():
    variance = np.full((9, 9), 0.01, np.float32)
    missing = np.zeros((9, 9), np.float32)
    missing[2:7, 2:7] = 1
    grown = TASKS["inpaint"]().map_variance(variance, missing)
    assert np.array_equal(grown[missing == 0], variance[missing == 0])     # known pixels keep their own
    assert grown[4, 4] > grown[3, 4] > grown[2, 4] > variance[2, 4]         # centre > inside > edge of the hole
    np.testing.assert_allclose(grown[4, 4], 0.01 * (1 + 3))


def test_inpainting_map_is_larger_deep_in_a_box_than_at_its_edge(tiny_prior, clean_image):
    model, _ = tiny_prior
    mask = np.zeros(clean_image.shape[:2], bool)
    mask[12:36, 12:36] = True
    _, std = restore(clean_image, TASKS["inpaint"](), companion=mask,
                     settings=SolverSettings(prior=model, steps=2, samples=4), return_std=True)
    edge = np.concatenate([std[12, 12:36], std[35, 12:36], std[12:36, 12], std[12:36, 35]])
    assert std[22:26, 22:26].mean() > 2 * edge.mean()


def test_heat_map_scale():
    std = np.array([[0.0, HEAT_MAP_TOP / 255 / 2, HEAT_MAP_TOP / 255, 1.0]], np.float32)
    colours = heat_map(std)
    assert colours.shape == (1, 4, 3) and colours.dtype == np.uint8
    assert colours[0, 0].sum() < 10                               # 0: black
    assert np.array_equal(colours[0, 2], colours[0, 3])           # the top and beyond: the same colour
    assert colours[0, 0].sum() < colours[0, 1].sum() < colours[0, 2].sum()


def test_cli_writes_maps_single_and_batch(tiny_prior, clean_image, tmp_path):
    _, model = tiny_prior
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        write_image(folder / f"a{i}.png", Picture(_noisy(clean_image, 25, seed=i)))
    runner = CliRunner()
    common = ["--model", str(model), "--sigma", "25", "--steps", "2", "--samples", "3", "-q"]
    single = runner.invoke(app, ["denoise", str(folder / "a0.png"), "-o", str(tmp_path / "o.png"),
                                 "--uncertainty", str(tmp_path / "std.tif"), *common])
    assert single.exit_code == 0, single.output
    raw = cv2.imread(str(tmp_path / "std.tif"), cv2.IMREAD_UNCHANGED)      # raw values, 0..255 units: no image
    assert raw.shape[:2] == clean_image.shape[:2] and raw.dtype == np.float32 and "mean std" in single.output

    batch = runner.invoke(app, ["denoise", str(folder), "-o", str(tmp_path / "out"), "--uncertainty",
                                str(tmp_path / "maps"), "--json", str(tmp_path / "r.json"), *common])
    assert batch.exit_code == 0, batch.output
    maps = sorted(p.name for p in (tmp_path / "maps").iterdir())
    assert maps == ["a0.png.png", "a1.png.png"]
    assert read_image(tmp_path / "maps" / "a0.png.png").pixels.shape == clean_image.shape[:2] + (3,)
    rows = json.loads((tmp_path / "r.json").read_text())
    assert all(r["uncertainty"] > 0 for r in rows)

    for args, needle in ((["--uncertainty", str(tmp_path / "m.png")], "--samples"),
                         (["--samples", "0"], "--samples: give 1 to 1000"),
                         (["--samples", "100000000"], "--samples: give 1 to 1000")):     # ran silently for hours
        bad = runner.invoke(app, ["denoise", str(folder / "a1.png"), "--model", str(model), *args])
        assert bad.exit_code == 2 and needle in bad.output
    bad = runner.invoke(app, ["denoise", str(folder / "a1.png"), "-o", str(tmp_path / "o2.png"),
                              "--uncertainty", str(tmp_path / "m.jpg"), *common])
    assert bad.exit_code == 2 and "m.jpg" in bad.output and not (tmp_path / "o2.png").exists()


def test_samples_do_not_depend_on_how_tiles_are_batched(tiny_prior):
    from conftest import smooth_images
    model, _ = tiny_prior
    image = _noisy(smooth_images(1, 80, seed=5)[0], 25)
    outs = [restore(image, TASKS["denoise"](sigma=25), return_std=True,
                    settings=SolverSettings(prior=model, steps=1, samples=3, tile=32, tile_batch=b, seed=7))
            for b in (1, 4)]
    assert np.allclose(outs[0][0], outs[1][0], atol=1e-5) and np.allclose(outs[0][1], outs[1][1], atol=1e-5)


def test_samples_without_a_generator_differ_from_each_other(tiny_prior, clean_image):
    from restore.physics import Denoising
    from restore.solver import joint_map
    model, _ = tiny_prior
    y = torch.from_numpy(_noisy(clean_image, 25)).permute(2, 0, 1)[None]
    state = torch.get_rng_state()
    result = joint_map(y, Denoising(), model, x0=y, data=Gaussian(25 / 255), steps=0, samples=4)
    assert torch.equal(torch.get_rng_state(), state)
    # No generator means one stream seeded with 0 for all the samples (not the same noise for each).
    stream = joint_map(y, Denoising(), model, x0=y, data=Gaussian(25 / 255), steps=0, samples=4,
                       generator=torch.Generator().manual_seed(0))
    assert torch.equal(result.x, stream.x) and torch.equal(result.variance, stream.variance)


def test_negative_seed_is_refused():
    with pytest.raises(ValueError, match="seed"):
        SolverSettings(samples=2, seed=-1)
