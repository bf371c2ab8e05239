"""Damage nobody masked (inpaint --mask auto): the classical maps, the learned detector, the prior's
confirmation, and the options as a user reaches them (API, command line, batch, Ray, --save-mask)."""
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from restore import SolverSettings
from restore.pipeline import restore
from restore.cli import app
from restore.damage import damage_candidates, detect_damage, find_damage
from restore.images import Picture, read_image, write_image
from restore.masks import old_photo_damage
from restore.tasks import Inpaint, OptionError
from tests.conftest import smooth_images

runner = CliRunner()


def textured(size=96, seed=0):
    """A photograph-like crop: smooth shapes, fine texture (a grain of 6 levels) and saturated colour."""
    rng = np.random.default_rng(seed)
    image = smooth_images(1, size, seed=seed)[0]
    image[: size // 3, :, :] = (1.0, 0.0, 1.0)                   # saturated magenta the prior never saw
    grain = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 0.7)
    return np.clip(image + 6 / 255 * grain[:, :, None] / grain.std(), 0, 1).astype(np.float32)


def scratched(image):
    out = image.copy()
    line = np.zeros(image.shape[:2], np.uint8)
    cv2.line(line, (5, 70), (90, 20), 1, 1)                      # a 1-pixel white scratch
    cv2.circle(line, (30, 30), 1, 1, -1)                         # a dark speck ...
    out[line > 0] = 0.97
    out[28:33, 28:33][line[28:33, 28:33] > 0] = 0.03             # ... painted dark
    return out, line > 0


def test_the_candidates_hold_the_scratch_and_noise_is_not_damage():
    clean = textured()
    damaged, truth = scratched(clean)
    candidates = damage_candidates(damaged)
    assert (candidates & truth).sum() >= 0.9 * truth.sum()
    assert damage_candidates(clean).mean() < 0.05
    # Noise is not damage: the same image with noise of sigma 5 holds almost no candidates when told so.
    noisy = np.clip(clean + np.random.default_rng(1).normal(0, 5 / 255, clean.shape), 0, 1)
    assert damage_candidates(noisy, noise=5 / 255).mean() < 0.001 < 0.005 < damage_candidates(noisy).mean()
    # Sensitivity orders what is found.
    assert (damage_candidates(damaged, sensitivity=0.5).sum() <= candidates.sum()
            <= damage_candidates(damaged, sensitivity=2).sum())
    with pytest.raises(ValueError, match="sensitivity"):
        damage_candidates(damaged, sensitivity=0)


def test_the_detector_finds_the_scratch_and_leaves_texture_and_colour_alone():
    # The shipped detector on a crop with grain and saturated magenta it never saw: the scratch and
    # the speck are found, the grain and the colour are not.
    clean = textured()
    damaged, truth = scratched(clean)
    found = find_damage(damaged)
    assert (found & truth).sum() >= 0.9 * truth.sum()
    assert (found & ~truth).mean() < 0.005
    assert find_damage(textured(seed=3)).mean() < 0.002
    # Noise is not damage (sigma 12), and the scratch under it is still found.
    noise = np.random.default_rng(1).normal(0, 12 / 255, clean.shape)
    noisy = np.clip(clean + noise, 0, 1).astype(np.float32)
    assert find_damage(noisy, noise=12 / 255).mean() < 0.002
    under = find_damage(np.clip(damaged + noise, 0, 1).astype(np.float32), noise=12 / 255)
    assert (under & truth).sum() >= 0.9 * truth.sum() and (under & ~truth).mean() < 0.005
    # Sensitivity orders what is found: clear damage only, or texture too (the network is sure of this
    # scratch, log-odds 10 to 31 on it, so only a sensitivity far below 1 leaves some of it).
    fewer, more = find_damage(damaged, sensitivity=1e-6), find_damage(damaged, sensitivity=1000)
    assert fewer.sum() < found.sum() < more.sum() and (fewer & ~found).sum() == (found & ~more).sum() == 0
    with pytest.raises(ValueError, match="sensitivity"):
        find_damage(damaged, sensitivity=0)


def test_hard_edges_of_saturated_colour_are_not_damage():
    # One side of a straight edge painted cyan, neon green, red, yellow or blue, with and without
    # noise (20 held-out cases, pretrained/eval_saturated_edges.py): no scratch, so almost nothing found.
    from pretrained.eval_saturated_edges import saturated_edges
    shares = np.array([find_damage(pixels, noise=noise).mean() for pixels, noise in saturated_edges()])
    assert shares.mean() < 0.001 and (shares > 0.002).sum() <= 1


def test_gray_photographs_are_read_too():
    # Old prints are mostly gray: there gray damage cannot stand out by its lack of colour.
    clean = textured().mean(axis=2, keepdims=True)
    damaged, truth = scratched(clean)
    found = find_damage(damaged)
    assert (found & truth).sum() >= 0.9 * truth.sum() and (found & ~truth).mean() < 0.005


def test_a_large_image_is_read_in_strips_as_if_whole(monkeypatch):
    from restore import detector
    damaged, _ = scratched(textured())
    whole = detector.damage_log_odds(damaged)
    monkeypatch.setattr(detector, "STRIP", 20)
    assert np.allclose(detector.damage_log_odds(damaged), whole, atol=1e-4)


def test_a_mirrored_photo_gets_the_mirrored_map():
    # The log-odds are the mean over the mirrored views, so a mirrored photo gets the mirrored map.
    from restore import detector
    damaged, _ = scratched(textured())
    odds = detector.damage_log_odds(damaged)
    for flip in (lambda a: a[::-1], lambda a: a[:, ::-1]):
        mirrored = detector.damage_log_odds(np.ascontiguousarray(flip(damaged)))
        assert np.allclose(flip(mirrored), odds, atol=1e-4)


def test_detect_damage_finds_the_scratch_with_the_prior(tiny_prior):
    model, _ = tiny_prior
    damaged, truth = scratched(textured())
    found = detect_damage(damaged, settings=SolverSettings(prior=model))
    assert (found & truth).sum() >= 0.8 * truth.sum() and (found & ~truth).mean() < 0.01
    assert detect_damage(textured(seed=4), settings=SolverSettings(prior=model)).mean() < 0.005
    # The API's input contract: 8-bit gray works; values out of [0, 1] are refused with the fix.
    gray = np.round(damaged.mean(axis=2) * 255).astype(np.uint8)
    found = detect_damage(gray, settings=SolverSettings(prior=model))
    assert found.shape == gray.shape and (found & truth).sum() >= 0.8 * truth.sum()
    with pytest.raises(ValueError, match="divide by 255"):
        detect_damage(damaged * 255, settings=SolverSettings(prior=model))


def test_inpaint_auto_fills_the_scratch_and_keeps_every_other_pixel(tiny_prior):
    model, _ = tiny_prior
    clean = textured(64, seed=2)[:, :, :]
    damaged, truth = scratched(np.pad(clean, ((0, 32), (0, 32), (0, 0)), mode="reflect"))
    clean = np.pad(clean, ((0, 32), (0, 32), (0, 0)), mode="reflect")
    pixels = np.round(damaged * 255).astype(np.uint8)
    out = restore(pixels, Inpaint(), companion="auto", settings=SolverSettings(prior=model))
    assert out.dtype == np.uint8 and out.shape == pixels.shape
    changed = (out != pixels).any(axis=2)
    assert changed[truth].mean() > 0.8                           # the scratch was filled ...
    assert (changed & ~truth).mean() < 0.01                      # ... and little else was touched
    error = lambda image: np.abs(image.astype(np.float32) / 255 - clean)[truth].mean()
    assert error(out) < 0.5 * error(pixels)


def test_sensitivity_is_checked_before_any_work():
    with pytest.raises(OptionError, match="sensitivity"):
        Inpaint(sensitivity=0)


def test_command_line_auto_mask_save_mask_and_batch(tiny_prior, tmp_path):
    _, model = tiny_prior
    damaged, truth = scratched(textured())
    folder = tmp_path / "old"
    folder.mkdir()
    write_image(folder / "a.png", Picture(damaged))
    write_image(folder / "b.png", Picture(textured(seed=5)))
    common = ["--model", str(model), "--precision", "fp32"]

    one = runner.invoke(app, ["inpaint", str(folder / "a.png"), "--mask", "auto", "--save-mask",
                              str(tmp_path / "a_mask.png"), "-o", str(tmp_path / "a.png"), *common])
    assert one.exit_code == 0, one.output
    assert "of the pixels damaged" in one.output and "grown by" not in one.output
    grown = runner.invoke(app, ["inpaint", str(folder / "a.png"), "--mask", "auto", "--mask-dilate", "1", "--steps",
                                "0", "-o", str(tmp_path / "grown.png"), *common])
    assert grown.exit_code == 0 and "of the pixels filled: the damage found, grown by --mask-dilate 1" in grown.output, \
        grown.output
    # The bar says what it counts: the encoder's passes for the second look beside the kept fill's steps.
    assert "1 per batch for the second look" in one.output, one.output
    saved = read_image(tmp_path / "a_mask.png").pixels[:, :, 0] > 0.5
    assert (saved & truth).sum() >= 0.8 * truth.sum() and saved.mean() < 0.05
    given, written = read_image(folder / "a.png").pixels, read_image(tmp_path / "a.png").pixels
    assert np.array_equal(given[~saved], written[~saved])         # outside the mask: the input, bit for bit
    # The saved mask is a mask restore takes back.
    again = runner.invoke(app, ["inpaint", str(folder / "a.png"), "--mask", str(tmp_path / "a_mask.png"),
                                "-o", str(tmp_path / "again.png"), *common])
    assert again.exit_code == 0, again.output

    batch = runner.invoke(app, ["inpaint", str(folder), "--mask", "auto", "--save-mask", str(tmp_path / "masks"),
                                "-o", str(tmp_path / "fixed"), *common])
    assert batch.exit_code == 0, batch.output
    assert {p.name for p in (tmp_path / "masks").iterdir()} == {"a.png", "b.png"}
    assert read_image(tmp_path / "masks" / "b.png").pixels.mean() < 0.01     # intact: almost nothing
    assert np.array_equal(read_image(tmp_path / "fixed" / "a.png").pixels, read_image(tmp_path / "a.png").pixels)

    # Mistakes are one-line errors before any work.
    lone = runner.invoke(app, ["inpaint", str(folder / "a.png"), "--mask", str(tmp_path / "a_mask.png"),
                               "--save-mask", str(tmp_path / "x.png"), "-o", str(tmp_path / "x_out.png"), *common])
    assert lone.exit_code == 2 and "only with --mask auto" in lone.output
    jpeg = runner.invoke(app, ["inpaint", str(folder / "a.png"), "--mask", "auto", "--save-mask",
                               str(tmp_path / "m.jpg"), "-o", str(tmp_path / "y.png"), *common])
    assert jpeg.exit_code == 2 and ".png" in jpeg.output and not (tmp_path / "y.png").exists()
    inside = runner.invoke(app, ["inpaint", str(folder), "--mask", "auto", "--save-mask", str(folder / "m"),
                                 "-o", str(tmp_path / "z"), *common])
    assert inside.exit_code == 2 and "outside the input folder" in inside.output
    bad = runner.invoke(app, ["inpaint", str(folder / "a.png"), "--mask", "auto", "--sensitivity", "0", *common])
    assert bad.exit_code == 2 and "--sensitivity" in bad.output
    other = runner.invoke(app, ["denoise", str(folder / "a.png"), "--sigma", "5", "-o", str(tmp_path / "d.png"),
                                *common])
    assert other.exit_code == 0                                  # other tasks take no --save-mask
    assert "Traceback" not in one.output + batch.output + lone.output + bad.output


def test_holes_grown_over_every_pixel_are_said_in_a_note_found_or_given(tiny_prior, tmp_path):
    """--mask-dilate 64 over a found mask leaked a raw CompanionWarning (file, line and source) onto the
    terminal; over a given mask it said nothing, though nothing of the image was kept."""
    import warnings

    from restore.pipeline import CompanionWarning
    _, model = tiny_prior
    damaged, truth = scratched(textured(size=48))
    write_image(tmp_path / "a.png", Picture(damaged))
    write_image(tmp_path / "m.png", Picture(truth[:, :, None].astype(np.float32)))
    common = ["--model", str(model), "--steps", "0", "--mask-dilate", "64"]
    for mask in ("auto", str(tmp_path / "m.png")):
        with warnings.catch_warnings(record=True) as heard:
            warnings.simplefilter("always")
            result = runner.invoke(app, ["inpaint", str(tmp_path / "a.png"), "--mask", mask, "-o",
                                         str(tmp_path / "o.png"), "--overwrite", *common])
        assert result.exit_code == 0, result.output
        assert "its mask marks every pixel" in result.output, (mask, result.output)
        assert not [w for w in heard if issubclass(w.category, CompanionWarning)], mask


def test_detector_options_and_a_shared_map_and_mask_path_are_refused_before_any_work(tiny_prior, tmp_path):
    """--sensitivity beside a mask file was passed over; --uncertainty and --save-mask of one path wrote
    the mask over the map (exit 0)."""
    _, model = tiny_prior
    write_image(tmp_path / "a.png", Picture(textured(size=48)))
    write_image(tmp_path / "m.png", Picture(np.zeros((48, 48, 1), np.float32)))
    common = [str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--model", str(model)]
    tuned = runner.invoke(app, ["inpaint", *common, "--mask", str(tmp_path / "m.png"), "--sensitivity", "5"])
    assert tuned.exit_code == 2 and "--sensitivity: only with --mask auto" in tuned.output, tuned.output
    shared = runner.invoke(app, ["inpaint", *common, "--mask", "auto", "--samples", "2", "--uncertainty",
                                 str(tmp_path / "s.png"), "--save-mask", str(tmp_path / "s.png")])
    assert shared.exit_code == 2 and "s.png: the saved mask would replace" in shared.output, shared.output
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "s.png").exists()


def test_the_benchmark_condition_hands_no_mask_to_anyone():
    from dataclasses import replace

    from restore.bench import CONDITIONS, damage, methods
    from restore.conditions import Baseline
    condition = next(c for c in CONDITIONS if c.name == "inpaint-unmasked")
    assert condition.blind
    made = damage(textured(), condition, np.random.default_rng(0))
    assert made.region is not None and made.region.any() and made.companion is made.region
    given = []
    spy = replace(condition, baselines=(Baseline("spy", None, lambda y, companion: given.append(companion) or y),))
    runs = dict(methods(spy, None, SolverSettings()))
    runs["spy"](made.pixels, made.companion)
    assert given == [None]
    assert {"restore", "restore, given the mask"} <= set(runs)


def test_old_photo_damage_is_thin_and_sparse():
    clean = textured(256)
    damaged, region = old_photo_damage(clean, np.random.default_rng(0))
    assert 0.005 < region.mean() < 0.05
    assert np.abs(damaged - clean).max(axis=2)[region].min() > 8 / 255
    opened = cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_OPEN, np.ones((6, 6), np.uint8))
    assert opened.mean() < 0.1 * region.mean()                   # nothing wide


def test_a_second_look_fills_what_the_first_damage_hid(tiny_prior, monkeypatch):
    # The detector reads the image again with the damage it found filled: what it finds then is
    # filled too, around the first fill, and every other pixel stays the input's.
    from restore import damage
    model, _ = tiny_prior
    damaged, _ = scratched(textured())
    first, hidden = np.zeros(damaged.shape[:2], bool), np.zeros(damaged.shape[:2], bool)
    first[40, 10:60], hidden[70, 20:30] = True, True
    looks = []

    def detector(pixels, **_):
        looks.append(pixels.copy())
        return first if len(looks) == 1 else hidden | first
    monkeypatch.setattr(damage, "find_damage", detector)
    reports = []
    out = damage.repair(damaged, Inpaint(), settings=SolverSettings(prior=model),
                        progress=lambda done, total: reports.append((done, total)))
    assert len(looks) == 2 and not np.array_equal(looks[1][first], damaged[first])   # read again, filled
    assert np.array_equal(looks[1][~first], damaged[~first])    # ... there alone
    assert out.mask[first].all() and out.mask[hidden].all()
    assert (out.pixels[hidden] != damaged[hidden]).any()
    assert np.array_equal(out.pixels[~out.mask], damaged[~out.mask])
    assert reports[-1][0] == reports[-1][1] and all(a <= b for (a, _), (b, _) in zip(reports, reports[1:]))
    # The second fill's steps are counted from the first report on (its tiles may grow with the
    # damage the second look found: 16 then 23 here, where the fills' steps alone said 4).
    assert reports[0][1] >= reports[-1][1] / 2
    # Nothing more found on the second look: the bar still ends full.
    looks.clear(), reports.clear()
    hidden[:] = False
    damage.repair(damaged, Inpaint(), settings=SolverSettings(prior=model),
                  progress=lambda done, total: reports.append((done, total)))
    assert len(looks) == 2 and reports[-1][0] == reports[-1][1]
    assert len({total for _, total in reports}) == 1     # the same tiles: the total holds throughout


def test_the_uncertainty_of_mask_auto_is_zero_on_every_pixel_kept(tiny_prior):
    # Every pixel outside the damage found is the input's, so the map shows it as certain, whatever
    # the samples did there (README, "Where restore is unsure").
    from restore import damage
    model, _ = tiny_prior
    damaged, _ = scratched(textured())
    out = damage.repair(damaged, Inpaint(), settings=SolverSettings(prior=model, samples=2), return_std=True)
    assert out.mask.any() and (out.std[~out.mask] == 0).all() and (out.std[out.mask] > 0).any()


def test_the_damage_found_is_filled_last_and_alone(tiny_prior, monkeypatch):
    # The first fill (the second look reads it) holds the damage first found and a pixel around it;
    # the fill that is kept holds exactly the mask returned, the damage the second look found with
    # it, nothing around it.
    from restore import damage, pipeline
    model, _ = tiny_prior
    damaged, _ = scratched(textured())
    first, hidden = np.zeros(damaged.shape[:2], bool), np.zeros(damaged.shape[:2], bool)
    first[40, 10:60], hidden[70, 20:30] = True, True
    holes, fill = [], pipeline.restore          # the holes of each fill, in order
    monkeypatch.setattr(damage, "find_damage", lambda pixels, **_: first if not holes else hidden)

    def spy(pixels, task, *, companion, **options):
        holes.append(np.asarray(companion).copy())
        return fill(pixels, task, companion=companion, **options)
    monkeypatch.setattr(pipeline, "restore", spy)
    out = damage.repair(damaged, Inpaint(), settings=SolverSettings(prior=model))
    from restore.masks import dilate
    assert len(holes) == 2 and np.array_equal(holes[0], dilate(first, 1))
    assert np.array_equal(holes[1], first | hidden) and np.array_equal(out.mask, first | hidden)
    holes.clear()
    grown = damage.repair(damaged, Inpaint(mask_dilate=2), settings=SolverSettings(prior=model)).mask
    assert np.array_equal(grown, dilate(first | hidden, 2)) and np.array_equal(holes[-1], grown)
