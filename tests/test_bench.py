import json

import numpy as np
import pytest
from typer.testing import CliRunner

from restore import bench
from restore.cli import app
from restore.images import Picture, write_image
from restore.masks import holes
from tests.conftest import smooth_images, write_smooth_folder


def test_damage_is_8bit_and_reproducible():
    clean = smooth_images(1, 32, seed=2)[0]
    for condition in bench.CONDITIONS:
        made_a = bench.damage(clean, condition, np.random.default_rng(1))
        made_b = bench.damage(clean, condition, np.random.default_rng(1))
        (a, mask_a), (b, mask_b) = (made_a.pixels, made_a.companion), (made_b.pixels, made_b.companion)
        assert np.array_equal(a, b)
        assert np.allclose(a * 255, np.round(a * 255), atol=1e-4)           # exactly 8-bit values
        scale = condition.task.scale
        assert a.shape == (32 // scale, 32 // scale, 3)
        if condition.blind:                                                   # damage nobody masked
            assert made_a.region is mask_a and 0 < mask_a.mean() < 0.1
        elif condition.task.name == "inpaint":
            assert mask_a.any() and (a[mask_a] == 1.0).all()                 # holes painted white
            assert made_a.region is mask_a                                   # scored inside the holes
        elif condition.task.name == "dejpeg" or "jpeg" in condition.name:     # the file's tables
            assert mask_a.tables[0][0, 0] == mask_b.tables[0][0, 0] > 1
            assert np.abs(a - clean[::scale, ::scale]).mean() > 0.002
        else:
            assert mask_a is None and np.abs(a - clean[::scale, ::scale]).mean() > 0.002   # damaged
    pixels = holes("pixels", 64, 64, np.random.default_rng(0))
    assert 0.4 < pixels.mean() < 0.6


def test_digits_test_split_is_balanced():
    digits = bench.digits_test(30)
    assert len(digits) == 30 and digits[0][1].shape == (28, 28, 1)
    labels = [name.split("_")[0] for name, _ in digits]
    assert all(labels.count(f"digit{k}") == 3 for k in range(10))


def test_quick_bench_on_a_folder_writes_every_report(tmp_path, tiny_prior):
    _, model = tiny_prior
    folder = tmp_path / "photos"
    write_smooth_folder(folder)
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["bench", str(folder), "-o", str(out), "--quick", "--model", str(model),
                                      "--steps", "3", "--samples", "2", "-q"])
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert {"results.md", "results.json", "results.csv"} <= names
    assert {f"sheet_photos_{c}.png" for c in bench.QUICK_CONDITIONS} <= names
    report = json.loads((out / "results.json").read_text())
    methods = {r["method"] for r in report["results"]}
    assert {"restore", "restore, mean of 2", "OpenCV NLM", "skimage TV", "bicubic", "Lanczos", "OpenCV Telea",
            "skimage biharmonic"} <= methods
    assert all(r["hole_psnr"] is not None for r in report["results"] if r["condition"] == "inpaint-box")
    assert "**" in (out / "results.md").read_text() and "(2 images)" in (out / "results.md").read_text()
    assert (out / "results.md").read_text().startswith(f"restore: the {model} prior, ")   # which was measured
    assert report["meta"]["size"] == bench.QUICK_SIZE          # what was measured, not --size's default
    # A second run refuses to overwrite the report.
    again = CliRunner().invoke(app, ["bench", str(folder), "-o", str(out), "--quick", "--model", str(model)])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_a_report_folder_that_is_a_file_is_refused_before_any_work(tmp_path, tiny_prior, monkeypatch):
    from restore import speed

    def refuse(*args, **kwargs):
        raise AssertionError("the benchmark started")
    monkeypatch.setattr(bench, "image_sets", refuse)
    monkeypatch.setattr(speed, "run_speed", refuse)
    _, model = tiny_prior
    report = tmp_path / "report.txt"
    report.write_text("precious")
    for output, extra in ((report, ["--quick"]), (report, ["--speed"]), (report / "inside", ["--quick"])):
        result = CliRunner().invoke(app, ["bench", "-o", str(output), "--model", str(model), *extra])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "report.txt is a file, not a folder" in errors[0], result.output
    assert report.read_text() == "precious"


def test_speed_bench_times_every_task_beside_its_reference(tmp_path, tiny_prior):
    _, model = tiny_prior
    out = tmp_path / "speed"
    result = CliRunner().invoke(app, ["bench", "--speed", "--sizes", "0.005,0.01", "-o", str(out), "--model", str(model),
                                      "--steps", "2", "--precision", "fp32", "-q"])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "speed.json").read_text())
    from restore import speed
    names = [c.name for c, _ in speed.conditions()]
    assert [r["condition"] for r in rows] == names * 2
    assert {"inpaint-scratches", "inpaint-blobs", "superres4"} <= set(names)
    assert all(r["seconds"] > 0 and r["reference_seconds"] > 0 and r["peak_mb"] > 0 for r in rows)
    assert {r["precision"] for r in rows} == {"fp32"} and "restore / reference" in (out / "speed.md").read_text()
    again = CliRunner().invoke(app, ["bench", "--speed", "--sizes", "0.005", "-o", str(out), "--model", str(model)])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_speed_bench_without_the_bench_extra_times_the_next_reference(tmp_path, tiny_prior, monkeypatch):
    # BM3D is JPEG's reference, but it comes with `.[bench]` alone: without it the timing goes on.
    from restore import baselines
    monkeypatch.setattr(baselines, "available", lambda module: module != "bm3d")
    _, model = tiny_prior
    out = tmp_path / "speed"
    result = CliRunner().invoke(app, ["bench", "--speed", "--tasks", "dejpeg", "--sizes", "0.005", "-o", str(out),
                                      "--model", str(model), "--steps", "2", "--precision", "fp32", "-q"])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "speed.json").read_text())
    assert [(r["condition"], r["reference"]) for r in rows] == [("jpeg10", "OpenCV NLM")]


def test_generated_photos_have_the_asked_size_and_holes_their_share():
    from restore import speed
    assert abs(speed.generated_photo(0.25).size / 3 - 0.25e6) < 0.02e6
    rng = np.random.default_rng(0)
    assert 0.01 <= holes("scratches", 300, 400, rng).mean() < 0.02
    assert 0.10 <= holes("blobs", 300, 400, rng).mean() < 0.2


def test_a_new_condition_never_changes_the_damage_of_the_others():
    """Seeds follow the order conditions were introduced in, not their place in the task list."""
    assert {c.name for c in bench.CONDITIONS} == set(bench.SEED_ORDER)
    assert bench.SEED_ORDER[:10] == ("noise15", "noise25", "noise50", "superres2", "superres4", "inpaint-pixels50",
                                     "inpaint-box", "inpaint-scribbles", "blur-gaussian2", "blur-motion15")


def test_tables_leave_a_blank_where_a_condition_has_other_baselines():
    summary = [{"set": "s", "condition": "noise15", "method": "BM3D", "psnr": 30.0, "ssim": 0.9, "hole_psnr": None,
                "seconds": 1.0, "images": 1, "device": "cpu"},
               {"set": "s", "condition": "sensor40", "method": "Anscombe + BM3D", "psnr": 31.0, "ssim": 0.9,
                "hole_psnr": None, "seconds": 1.0, "images": 1, "device": "cpu"}]
    table = bench.markdown_table(summary)
    assert "| noise15 | **30.00 / 0.900** | - |" in table and "| sensor40 | - | **31.00 / 0.900** |" in table


def test_every_shipped_task_is_benchmarked_and_trained_on_in_the_tasks_order():
    from restore.conditions import BENCHMARKS
    from restore.tasks import TASKS
    from restore.views import TRAINING_VIEWS
    assert list(BENCHMARKS) == list(TASKS) == list(TRAINING_VIEWS)
    assert all(bench.speed_conditions() for bench in BENCHMARKS.values())


def test_bm3d_baseline_of_a_grey_image_stored_as_rgb_is_finite(monkeypatch):
    # bm3d_rgb scales each channel of its colour space by its range: a grey image's colour
    # differences have none, and its output was NaN (scored 1.28 dB in a bench of held-out crops).
    import sys
    import types
    from restore import baselines
    calls = []

    def rgb(noisy, sigma_psd):
        calls.append("rgb")
        out = noisy.copy()
        out[..., 1:] = np.nan if np.ptp(noisy - noisy.mean(2, keepdims=True)) == 0 else out[..., 1:]
        return out

    def grey(noisy, sigma_psd):
        calls.append(noisy.shape)
        return noisy * 0.5
    monkeypatch.setitem(sys.modules, "bm3d", types.SimpleNamespace(bm3d_rgb=rgb, bm3d=grey))
    flat = np.random.default_rng(0).random((16, 16, 1)).astype(np.float32)
    out = baselines.bm3d(np.repeat(flat, 3, axis=2), 10)
    assert calls == [(16, 16)] and np.array_equal(out, np.repeat(flat * 0.5, 3, axis=2))
    # A colour image whose colour space lost a channel anyway is denoised channel by channel.
    calls.clear()
    tinted = np.concatenate([flat, flat, np.zeros_like(flat)], axis=2)
    monkeypatch.setitem(sys.modules, "bm3d", types.SimpleNamespace(
        bm3d_rgb=lambda noisy, sigma_psd: np.full_like(noisy, np.nan), bm3d=grey))
    assert np.isfinite(baselines.bm3d(tinted, 10)).all()
    # A colour one goes to bm3d_rgb as before.
    calls.clear()
    monkeypatch.setitem(sys.modules, "bm3d", types.SimpleNamespace(bm3d_rgb=rgb, bm3d=grey))
    colour = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
    assert np.array_equal(baselines.bm3d(colour, 10), colour) and calls == ["rgb"]


def test_a_folder_s_unreadable_or_too_small_files_are_left_out_of_the_benchmark_with_a_note(tmp_path):
    """As training leaves them out: one bad file among a photographer's folder stopped the benchmark."""
    folder = tmp_path / "photos"
    write_smooth_folder(folder)
    measured = len(bench.image_sets(folder, prior=None)[0].images)
    (folder / "broken.png").write_text("not an image")
    write_image(folder / "tiny.png", Picture(np.full((16, 16, 3), 0.5, np.float32)))
    notes = []
    sets = bench.image_sets(folder, prior=None, note=notes.append)
    assert len(sets[0].images) == measured >= 1
    assert len(notes) == 2 and "broken.png: not a readable image" in notes[0] and "tiny.png: 16x16 pixels" in notes[1]
    with pytest.raises(ValueError, match="broken.png: not a readable image"):
        bench.image_sets(folder, prior=None)           # no one to tell: refused


def test_a_quick_bench_of_a_folder_takes_its_first_images_that_can_be_measured(tmp_path):
    """It took the first two files and then found neither could be measured, the folder's good
    images left unread."""
    folder = tmp_path / "photos"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "broken.png").write_text("not an image")
    write_image(folder / "a" / "tiny.png", Picture(np.full((16, 16, 3), 0.5, np.float32)))
    write_smooth_folder(folder / "b", n=3)
    notes = []
    sets = bench.image_sets(folder, prior=None, quick=True, note=notes.append)
    assert [name for name, _ in sets[0].images] == ["b/im0", "b/im1"] and len(notes) == 2


@pytest.mark.parametrize("args, needle", [
    (["--seed", "-1"], "--seed: must be 0 to 4294967295"),
    (["--seed", str(2**64)], "--seed: must be 0 to 4294967295"),
    (["--samples", "1001"], "--samples: give 1 to 1000"),
    (["--steps", "100000"], "--steps: must be 0 to 10000"),
    (["--size", "8"], "--size: must be 0 (whole images) or at least 24"),
    (["--speed", "--sizes", "nan"], "--sizes nan: give megapixels from 0.001 to 100"),
    (["--speed", "--sizes", "inf"], "--sizes inf: give megapixels from 0.001 to 100"),
    (["--speed", "--sizes", "1e9"], "--sizes 1e9: give megapixels from 0.001 to 100"),
    (["--speed", "--sizes", "1e-7"], "--sizes 1e-7: give megapixels from 0.001 to 100"),
    (["--speed", "--samples", "4", "--digits", "7"], "--digits, --samples: not used by --speed"),
    (["--speed", "{folder}"], "FOLDER: not used by --speed"),
    (["--sizes", "1"], "--sizes: not used without --speed"),
    (["--quick", "--size", "64"], "--size: --quick measures at 128 pixels"),
    (["--speed", "--size", "16"], "--size: not used by --speed"),
    (["{folder}", "-o", "{folder}/report"], "report: inside the folder measured"),
    (["{small}"], "small: none of its 1 images can be measured (each said why)"),
    (["{folder}", "--digits", "5"], "--digits: the digits are measured with scikit-image's photographs"),
    (["--quick", "--digits", "50"], "--digits: --quick measures at most 10 digits"),
    (["--model", "digits"], "--model digits: a prior of 28x28 digits cannot restore photographs"),
])
def test_bench_refuses_what_it_cannot_run_before_any_work(tmp_path, tiny_prior, monkeypatch, args, needle):
    """Each in one line, exit status 2, before a single run and with no report folder made."""
    from restore import speed

    def refuse(*args, **kwargs):
        raise AssertionError("the benchmark started")
    monkeypatch.setattr(bench, "run_benchmark", refuse)
    monkeypatch.setattr(speed, "run_speed", refuse)
    _, model = tiny_prior
    folder, small = tmp_path / "photos", tmp_path / "small"
    write_smooth_folder(folder)
    small.mkdir()
    write_image(small / "t.png", Picture(np.full((16, 16, 3), 0.5, np.float32)))
    args = [a.format(folder=folder, small=small) for a in args]
    output = [] if "-o" in args else ["-o", str(tmp_path / "report")]
    prior = [] if "--model" in args else ["--model", str(model)]
    result = CliRunner().invoke(app, ["bench", *args, *output, *prior, "--tasks", "denoise"])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and needle in errors[0], result.output
    assert not (tmp_path / "report").exists() and not (folder / "report").exists()


def test_an_interrupted_bench_says_so_and_leaves_no_empty_report(tmp_path, tiny_prior, monkeypatch):
    def interrupted(*args, progress, **kwargs):
        progress("one run")
        raise KeyboardInterrupt
    monkeypatch.setattr(bench, "run_benchmark", interrupted)
    _, model = tiny_prior
    write_smooth_folder(tmp_path / "photos")
    result = CliRunner().invoke(app, ["bench", str(tmp_path / "photos"), "-o", str(tmp_path / "report"), "--quick",
                                      "--model", str(model), "-q"])
    assert result.exit_code == 130 and "interrupted after 1 of" in result.output, result.output
    assert "no report was written" in result.output and not (tmp_path / "report").exists()


def test_a_rewritten_report_names_the_sheets_of_an_earlier_run(tmp_path, tiny_prior):
    _, model = tiny_prior
    write_smooth_folder(tmp_path / "photos")
    report = tmp_path / "report"
    report.mkdir()
    (report / "sheet_old_jpeg20.png").write_bytes(b"an earlier run's")
    (report / "results.json").write_text("{}")
    result = CliRunner().invoke(app, ["bench", str(tmp_path / "photos"), "-o", str(report), "--quick", "--overwrite",
                                      "--tasks", "denoise", "--steps", "1", "--model", str(model), "-q"])
    assert result.exit_code == 0, result.output
    assert "still holds 1 sheet of an earlier run (sheet_old_jpeg20.png)" in result.output, result.output
    assert (report / "sheet_old_jpeg20.png").read_bytes() == b"an earlier run's"      # not the report's to delete


def test_images_of_one_name_in_two_folders_are_told_apart(tmp_path, tiny_prior):
    _, model = tiny_prior
    write_smooth_folder(tmp_path / "photos", n=1)
    write_smooth_folder(tmp_path / "photos" / "sub", n=1, seed=5)
    result = CliRunner().invoke(app, ["bench", str(tmp_path / "photos"), "-o", str(tmp_path / "report"), "--tasks",
                                      "denoise", "--steps", "1", "--size", "0", "--model", str(model), "-q"])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "report" / "results.json").read_text())["results"]
    assert {r["image"] for r in rows} == {"im0", "sub/im0"}


def test_the_default_report_folder_inside_the_folder_measured_is_named_as_the_default(tmp_path, tiny_prior,
                                                                                       monkeypatch):
    _, model = tiny_prior
    write_smooth_folder(tmp_path / "photos")
    monkeypatch.chdir(tmp_path / "photos")
    result = CliRunner().invoke(app, ["bench", ".", "--model", str(model), "--tasks", "denoise"])
    assert result.exit_code == 2 and "-o bench-report (the default): inside the folder measured" in result.output
    assert not (tmp_path / "photos" / "bench-report").exists()
