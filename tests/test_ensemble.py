"""The ensemble of turns (``--ensemble``): the mean of the restorations by the prior looking at the
image turned and flipped, for every task."""
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import restore
from restore.cli import app
from restore.fidelity import JPEGConstraint
from restore.images import Picture, read_image, write_image
from restore.metrics import psnr
from restore.reconstructor import SYMMETRIES, Turned
from restore.tasks.dejpeg import jpeg_round_trip

from conftest import smooth_images, without_data_filter, write_smooth_folder
from test_trust import SAMPLES, SATURATED, noisy, patches, recoloured_photo


def turn(a, transpose, flips):
    """An (H, W, C) array turned as :class:`Turned` turns (N, C, H, W) tensors, written out apart."""
    a = a.transpose(1, 0, 2) if transpose else a
    for axis in flips:
        a = np.flip(a, axis + 2)          # the tensors' axes -1, -2 are the array's 1, 0
    return a


def turn_back(a, transpose, flips):
    for axis in flips:
        a = np.flip(a, axis + 2)
    return a.transpose(1, 0, 2) if transpose else a


def test_the_turns_are_the_eight_of_the_square_and_each_is_undone():
    image = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    views = [Turned(None, *s) for s in SYMMETRIES]
    turned = [v._turn(image) for v in views]
    assert len({(tuple(t.shape), t.numpy().tobytes()) for t in turned}) == 8
    assert all(torch.equal(v._back(t), image) for v, t in zip(views, turned))
    as_array = image[0].permute(1, 2, 0).numpy()
    assert all(np.array_equal(t[0].permute(1, 2, 0).numpy(), turn(as_array, *s)) for t, s in zip(turned, SYMMETRIES))


def test_an_ensemble_is_the_mean_of_the_restorations_of_the_turned_image(tiny_prior, monkeypatch):
    _, path = tiny_prior
    # The mean of the turns, before the data's Wiener filter around it (which follows once, on the mean).
    without_data_filter(monkeypatch)
    clean = smooth_images(1, 32, seed=7)[0]             # one tile: the turns see the same tiling
    damaged = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    one = lambda y: restore.denoise(np.ascontiguousarray(y), sigma=25, prior=str(path), precision="fp32")
    by_hand = np.mean([turn_back(one(turn(damaged, *s)), *s) for s in SYMMETRIES], axis=0)
    eight = restore.denoise(damaged, sigma=25, prior=str(path), precision="fp32", ensemble=8)
    assert np.abs(eight - by_hand).max() < 1e-5
    assert np.abs(eight - one(damaged)).max() > 1e-3       # and it is not the one restoration


def test_a_searching_task_turns_its_mask_with_the_image_and_keeps_every_pixel_it_was_given(tiny_prior):
    _, path = tiny_prior
    clean = smooth_images(1, 32, seed=8)[0]
    mask = np.zeros((32, 32), bool)
    mask[4:12, 6:30] = True
    mask[20:29, 3:9] = True
    damaged = np.round(np.where(mask[:, :, None], 1.0, clean) * 255).astype(np.uint8)
    one = lambda y, m: restore.inpaint(np.ascontiguousarray(y), np.ascontiguousarray(m), prior=str(path),
                                       precision="fp32", steps=3)
    by_hand = np.mean([turn_back(one(turn(damaged, *s), turn(mask[:, :, None], *s)[:, :, 0]).astype(np.float64), *s)
                       for s in SYMMETRIES[:4]], axis=0)
    four = restore.inpaint(damaged, mask, prior=str(path), precision="fp32", steps=3, ensemble=4)
    assert np.abs(four.astype(np.float64) - by_hand).max() <= 1.0        # one level: each rounds to 8 bits
    assert (four[~mask] == damaged[~mask]).all()


def test_the_ensemble_restores_photographs_better_than_one_turn(monkeypatch):
    clean = np.round(read_image(f"{SAMPLES}/butterfly.png").pixels[32:160, 48:176] * 255).astype(np.uint8)
    for photo in (clean, recoloured_photo()):
        damaged = noisy(photo, 25)
        one, eight = (restore.denoise(damaged, sigma=25, ensemble=n) for n in (1, 8))
        # The data's Wiener filter (two passes on colour, BM3D's first stage in the first pilot)
        # gives back what the turns add to the prior's estimate (+0.30 and +0.25 dB without it):
        # after it the turns move these crops by +0.010 and -0.007 dB (measured; the sign follows
        # the arithmetic's rounding), so all that holds is that they cost nothing.
        assert psnr(photo, eight) > psnr(photo, one) - 0.03
        with monkeypatch.context() as patch:
            without_data_filter(patch)
            one, eight = (restore.denoise(damaged, sigma=25, ensemble=n) for n in (1, 8))
        assert psnr(photo, eight) > psnr(photo, one) + 0.15


def test_the_ensemble_keeps_saturated_colours_and_the_jpeg_files_set():
    out = restore.denoise(noisy(patches(), 10), sigma=10, ensemble=8)
    for i, colour in enumerate(SATURATED):
        r, k = divmod(i, 6)
        mean = out[r * 64 + 8:(r + 1) * 64 - 8, k * 64 + 8:(k + 1) * 64 - 8].reshape(-1, 3).mean(0)
        assert np.abs(mean - colour).max() <= 4, (colour, mean)
    clean = read_image(f"{SAMPLES}/lake.png").pixels[64:160, 32:133]           # off the 16-pixel grid
    clean[8:40, 8:40] = (253 / 255, 2 / 255, 253 / 255)
    decoded, quantisation = jpeg_round_trip(clean, 10)
    u8 = lambda a: np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
    one, eight = (restore.dejpeg(decoded, quantisation=quantisation, ensemble=n) for n in (1, 8))
    assert psnr(u8(clean), u8(eight)) > psnr(u8(clean), u8(one))
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].double()
    excess = float(JPEGConstraint(quantisation).value(as_tensor(u8(eight) / 255.0), as_tensor(decoded)))
    assert excess < 0.02 * clean.size


def test_an_ensemble_where_it_cannot_apply_is_refused_with_the_fix(clean_image):
    for wrong in (3, 2.0, True):
        with pytest.raises(ValueError, match="ensemble must be one of"):
            restore.denoise(clean_image, sigma=10, ensemble=wrong)
    with pytest.raises(ValueError, match="not alike turned"):
        restore.denoise(np.zeros((28, 28)), sigma=10, prior="digits", ensemble=2)


def test_the_command_line_refuses_an_ensemble_it_cannot_run_in_one_line(tmp_path):
    source = tmp_path / "in.png"
    write_image(source, Picture(smooth_images(1, 32, seed=3)[0]))
    runner = CliRunner()
    for args, says in ((["denoise", str(source), "--ensemble", "3"], "--ensemble: must be one of"),
                       (["denoise", str(source), "--ensemble", "2", "-m", "digits"], "not alike turned")):
        result = runner.invoke(app, [*args, "-q"])
        assert result.exit_code == 2 and says in result.output and len(result.output.strip().splitlines()) == 1, \
            result.output
    assert not list(tmp_path.glob("in_*"))
    for turns in (1, 2):
        result = runner.invoke(app, ["superres", str(source), "--scale", "2", "--steps", "2", "--ensemble", str(turns),
                                     "-o", str(tmp_path / f"sr{turns}.png"), "-q"])
        assert result.exit_code == 0, result.output
    assert not np.array_equal(*(read_image(tmp_path / f"sr{turns}.png").pixels for turns in (1, 2)))
    folder = tmp_path / "batch"
    folder.mkdir()
    for i, im in enumerate(smooth_images(2, 32, seed=5)):
        write_image(folder / f"im{i}.png", Picture(im))
    for turns in (1, 4):
        result = runner.invoke(app, ["denoise", str(folder), "--sigma", "10", "--ensemble", str(turns),
                                     "-o", str(tmp_path / f"out{turns}"), "-q"])
        assert result.exit_code == 0, result.output
    for i in range(2):
        one, four = (read_image(tmp_path / f"out{turns}" / f"im{i}.png").pixels for turns in (1, 4))
        assert not np.array_equal(one, four)


def test_the_bench_measures_the_ensemble_beside_restore(tmp_path, tiny_prior):
    _, model = tiny_prior
    photos = tmp_path / "photos"
    write_smooth_folder(photos)
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["bench", str(photos), "-o", str(out), "--quick", "--model", str(model),
                                      "--tasks", "denoise,superres", "--steps", "2", "--ensemble", "2", "-q"])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "results.json").read_text())["results"]
    plain = {r["condition"] for r in rows if r["method"] == "restore"}
    assert plain and {r["condition"] for r in rows if r["method"] == "restore, 2 turns"} == plain
    on_photos = [str(photos), "--quick"]
    for args, says in ((on_photos + ["--ensemble", "3"], "--ensemble: must be one of"),
                       (on_photos + ["--ensemble", "2", "--model", "digits"], "a prior of 28x28 digits cannot"),
                       (["--ensemble", "2", "--speed", "--sizes", "0.01"], "leave --ensemble out")):
        bad = CliRunner().invoke(app, ["bench", "-o", str(tmp_path / "r2"), "--tasks", "denoise", *args, "-q"])
        assert bad.exit_code == 2 and says in bad.output, bad.output
    assert not (tmp_path / "r2").exists()


def test_the_bench_counts_and_runs_the_turns_only_where_the_prior_allows_them(tiny_prior):
    from restore import bench
    from restore.pipeline import SolverSettings
    from restore.priors import load_prior
    photo, digits = tiny_prior[0], load_prior("digits")
    sets = [bench.ImageSet("photos", [("a", None)], photo), bench.ImageSet("digits", [("b", None)] * 2, digits)]
    conditions = [c for c in bench.CONDITIONS if c.name in ("noise25", "superres2", "inpaint-unmasked")]
    runs = {s.name: sum(len(bench.methods(c, s.prior, SolverSettings(), ensemble=4)) for c in conditions) for s in sets}
    plain = {s.name: sum(len(bench.methods(c, s.prior, SolverSettings())) for c in conditions) for s in sets}
    assert runs["photos"] == plain["photos"] + 2 and runs["digits"] == plain["digits"]
    assert bench.total_runs(sets, conditions, ensemble=4) == runs["photos"] + 2 * runs["digits"]


def test_the_ensembles_variance_is_the_mixtures(tiny_prior, monkeypatch):
    """Where each turn returns posterior samples' mean and variance, the ensemble's variance is the
    mixture's: the turns' mean variance plus the spread of their means (averaged over channels)."""
    from restore.reconstructor import Reconstructor
    from restore.solver import SolverResult
    from restore.physics import Denoising
    model, _ = tiny_prior
    means = [torch.full((1, 3, 4, 4), v) for v in (0.2, 0.4)]
    variances = [torch.full((1, 1, 4, 4), v) for v in (0.01, 0.03)]
    turns = iter(range(2))

    def solve(self, prior, y, physics, **_):
        i = next(turns)
        return SolverResult(x=means[i], z=torch.zeros(1), variance=variances[i])
    monkeypatch.setattr(Reconstructor, "_solve", solve)
    without_data_filter(monkeypatch)
    out = Reconstructor(model, steps=0, samples=2, ensemble=2)(torch.full((1, 3, 4, 4), 0.3), Denoising())
    assert torch.allclose(out.x, torch.full_like(out.x, 0.3))
    assert torch.allclose(out.variance, torch.full_like(out.variance, 0.02 + 0.01))
