"""Batch mode on a real local Ray instance (2 CPUs): same outputs as the local batch, bad files
reported, resumable, and a worker that dies mid-batch loses no file and doubles none."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import ray
from typer.testing import CliRunner

from restore.batch import file_restorer, plan
from restore.cli import app
from restore.images import Picture, read_image, write_image
from restore.pipeline import SolverSettings
from restore.priors import load_prior
from restore.ray_runner import RETRIES, run_on_ray
from restore.tasks import TASKS

from conftest import smooth_images

runner = CliRunner()


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture
def photos(tmp_path):
    """Five small noisy images and a corrupt one."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i, im in enumerate(smooth_images(5, 24, seed=11)):
        noisy = np.clip(im + rng.normal(0, 20 / 255, im.shape), 0, 1).astype(np.float32)
        write_image(folder / f"p{i}.png", Picture(noisy))
    (folder / "p9_corrupt.png").write_bytes(b"\x89PNG not really")
    return folder


def _invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def test_ray_batch_equals_the_local_batch_and_resumes(local_ray, photos, tiny_prior, tmp_path):
    _, model = tiny_prior
    common = ["--model", model, "--sigma", "20", "--steps", "2", "--precision", "fp32"]
    local = _invoke("denoise", photos, "-o", tmp_path / "local", *common)
    on_ray = _invoke("denoise", photos, "-o", tmp_path / "ray", "--ray", "--json", tmp_path / "r.json", *common)
    assert local.exit_code == on_ray.exit_code == 1, on_ray.output
    assert "p9_corrupt.png: not a readable image" in on_ray.output
    assert "5 restored, 0 skipped, 1 failed" in on_ray.output and "on Ray cpu workers, fp32)" in on_ray.output
    for i in range(5):
        a, b = read_image(tmp_path / "local" / f"p{i}.png"), read_image(tmp_path / "ray" / f"p{i}.png")
        assert np.array_equal(a.pixels, b.pixels)
    rows = json.loads((tmp_path / "r.json").read_text())
    assert [Path(r["source"]).name for r in rows] == [f"p{i}.png" for i in range(5)] + ["p9_corrupt.png"]
    assert [r["status"] for r in rows] == ["ok"] * 5 + ["failed"]
    assert {(r["device"], r["precision"]) for r in rows} == {("cpu", "fp32")}

    stamps = {f: f.stat().st_mtime_ns for f in (tmp_path / "ray").iterdir()}
    again = _invoke("denoise", photos, "-o", tmp_path / "ray", "--ray", "--skip-existing", *common)
    assert again.exit_code == 1 and "0 restored, 5 skipped, 1 failed" in again.output
    assert {f: f.stat().st_mtime_ns for f in (tmp_path / "ray").iterdir()} == stamps


def test_a_worker_that_dies_loses_no_file_and_doubles_none(local_ray, photos, tiny_prior, tmp_path):
    _, model = tiny_prior
    log, died = tmp_path / "restored.log", tmp_path / "died"
    task = TASKS["denoise"](sigma=20.0)
    settings = SolverSettings(prior=str(model), steps=1)

    def make_restore_fn(device):
        restore_fn = file_restorer(task, SolverSettings(prior=load_prior(settings.prior), steps=1), max_pixels=10**6)

        def restore_or_die(picture, job, progress):
            if job.source.name == "p2.png" and not died.exists():
                died.touch()
                job.output.write_bytes(b"half")   # as if it died after writing its output
                os._exit(1)            # the worker process dies mid-file, once
            if job.source.name == "p4.png":
                os._exit(1)            # this file kills every worker it is given
            out = restore_fn(picture, job, progress)
            with open(log, "a") as f:
                f.write(job.source.name + "\n")
            return out
        return restore_or_die

    jobs = plan(photos, tmp_path / "out", "denoise").jobs
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "p3.png").write_bytes(b"the user's")       # there before the batch: never replaced
    batch = run_on_ray(jobs, make_restore_fn, max_pixels=10**6)
    status = {Path(r.source).name: r.status for r in batch.results}
    assert status == {"p0.png": "ok", "p1.png": "ok", "p2.png": "ok", "p3.png": "failed", "p4.png": "failed",
                      "p9_corrupt.png": "failed"}
    assert "exists" in batch.results[3].message and (tmp_path / "out" / "p3.png").read_bytes() == b"the user's"
    assert read_image(tmp_path / "out" / "p2.png").pixels.shape == (24, 24, 3)    # the retry's, whole
    assert f"died {RETRIES + 1} times" in batch.results[4].message
    assert "not a readable image" in batch.results[5].message
    assert died.exists()
    assert sorted(log.read_text().split()) == ["p0.png", "p1.png", "p2.png"]   # each exactly once
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == ["p0.png", "p1.png", "p2.png", "p3.png"]


def test_ray_missing_is_a_one_line_error(photos, tiny_prior, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)      # import ray now raises ImportError
    result = _invoke("denoise", photos, "--ray", "--model", tiny_prior[1])
    assert result.exit_code == 3                      # this machine cannot run it (README's exit statuses)
    assert result.output.strip().splitlines() == ["error: Ray is not installed; install it with: pip install 'restore[ray]'"]


def test_shard_restores_only_its_part(photos, tiny_prior, tmp_path):
    _, model = tiny_prior
    for i in (1, 2):
        result = _invoke("denoise", photos, "-o", tmp_path / "out", "--shard", f"{i}/2", "--model", model,
                         "--sigma", "20", "--steps", "0")
        assert f"shard {i}/2: 3 of 6 files" in result.output
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == [f"p{i}.png" for i in range(5)]
    empty = _invoke("denoise", photos, "-o", tmp_path / "out", "--shard", "9/9", "--json", tmp_path / "e.json",
                    "--model", model)
    assert empty.exit_code == 0 and "0 of 6 files" in empty.output
    assert json.loads((tmp_path / "e.json").read_text()) == []
    bad = _invoke("denoise", photos, "--shard", "3/2", "--model", model)
    assert bad.exit_code == 2 and "--shard" in bad.output


def test_more_threads_per_worker_than_the_cluster_has_is_an_error(local_ray, photos, tiny_prior, tmp_path):
    from restore.ray_runner import RayError
    jobs = plan(photos, tmp_path / "out", "denoise").jobs
    with pytest.raises(RayError, match="at most 2"):
        run_on_ray(jobs, lambda device: None, threads_per_worker=4, max_pixels=10**6)


def test_found_masks_on_ray_are_those_of_the_local_batch(local_ray, tiny_prior, tmp_path):
    """--mask auto and --save-mask work on Ray workers as in the local batch."""
    import cv2
    _, model = tiny_prior
    folder = tmp_path / "old"
    folder.mkdir()
    for i, im in enumerate(smooth_images(2, 32, seed=21)):
        im = np.ascontiguousarray(im)
        cv2.line(im, (2, 30), (30, 4), (0.98, 0.98, 0.98), 1)
        write_image(folder / f"s{i}.png", Picture(im))
    common = ["--mask", "auto", "--model", model, "--precision", "fp32"]
    local = _invoke("inpaint", folder, "-o", tmp_path / "local", "--save-mask", tmp_path / "lm", *common)
    on_ray = _invoke("inpaint", folder, "-o", tmp_path / "ray", "--save-mask", tmp_path / "rm", "--ray", *common)
    assert local.exit_code == on_ray.exit_code == 0, on_ray.output
    for i in range(2):
        masks = [read_image(tmp_path / m / f"s{i}.png").pixels for m in ("lm", "rm")]
        assert np.array_equal(*masks) and masks[0].any()
        assert np.array_equal(read_image(tmp_path / "local" / f"s{i}.png").pixels,
                              read_image(tmp_path / "ray" / f"s{i}.png").pixels)


def test_ctrl_c_on_ray_hands_back_what_was_finished(local_ray, photos, tiny_prior, tmp_path):
    from restore.batch import Interrupted, Progress
    _, model = tiny_prior
    task = TASKS["denoise"](sigma=20.0)

    class StopAfterTwo(Progress):
        finished = 0

        def finish(self, job, result):
            self.finished += 1
            if self.finished == 2:
                raise KeyboardInterrupt          # Ctrl-C reaches the driver here

    jobs = plan(photos, tmp_path / "out", "denoise").jobs
    make = lambda device: file_restorer(task, SolverSettings(prior=load_prior(str(model)), steps=1),  # noqa: E731
                                        max_pixels=10**6)
    with pytest.raises(Interrupted) as stop:
        run_on_ray(jobs, make, max_pixels=10**6, progress=StopAfterTwo())
    assert len(stop.value.results) == 2 and all(r.output for r in stop.value.results)
