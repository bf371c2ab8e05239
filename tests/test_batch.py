from pathlib import Path

import pytest

from restore.batch import PlanError, default_output, plan


def _touch(path: Path, text="x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_default_output_names(tmp_path, monkeypatch):
    f = _touch(tmp_path / "photo.jpg")
    assert default_output(f, "denoise") == tmp_path / "photo_denoise.jpg"
    assert default_output(tmp_path, "inpaint") == tmp_path.parent / f"{tmp_path.name}_inpaint"
    # "restore denoise ." inside the folder: beside it, named after it (it wrote ./_denoise/).
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert default_output(Path("."), "denoise") == tmp_path / "sub_denoise"
    assert default_output(Path("../sub/.."), "denoise") == tmp_path.parent / f"{tmp_path.name}_denoise"


def test_hidden_files_and_folders_are_no_inputs(tmp_path):
    # A folder copied from a Mac holds ._a.png (AppleDouble data, not a PNG) beside a.png: a batch
    # counted it a failed image and exited 1.
    src = tmp_path / "in"
    _touch(src / "a.png"), _touch(src / "._a.png"), _touch(src / ".DS_Store"), _touch(src / ".thumbs" / "b.png")
    _touch(tmp_path / "masks" / "a.png"), _touch(tmp_path / "masks" / "._a.png")
    p = plan(src, tmp_path / "out", "inpaint", recursive=True, companion=tmp_path / "masks")
    assert [j.source.name for j in p.jobs] == ["a.png"] and p.jobs[0].companion == tmp_path / "masks" / "a.png"
    assert not any(".DS_Store" in s or "._a" in s for s in p.skipped)
    # Nor are a hidden folder's files masks: c.png's only match is in the trash.
    _touch(src / "c.png"), _touch(tmp_path / "masks" / ".Trash" / "c.png")
    p = plan(src, tmp_path / "out", "inpaint", companion=tmp_path / "masks")
    assert "no mask named 'c.*'" in [j for j in p.jobs if j.source.name == "c.png"][0].problem


def test_single_file_into_existing_folder(tmp_path):
    f = _touch(tmp_path / "a.png")
    (tmp_path / "out").mkdir()
    p = plan(f, tmp_path / "out", "superres")
    assert not p.batch and p.jobs[0].output == tmp_path / "out" / "a_superres.png"


def test_folder_mirrors_and_matches_masks_and_refs_by_stem(tmp_path):
    src = tmp_path / "in"
    _touch(src / "a.png"), _touch(src / "sub" / "b.jpg"), _touch(src / "notes.txt")
    _touch(tmp_path / "masks" / "a.png"), _touch(tmp_path / "masks" / "b.png")
    _touch(tmp_path / "refs" / "a.png"), _touch(tmp_path / "refs" / "sub" / "b.jpg")
    p = plan(src, tmp_path / "out", "inpaint", recursive=True, companion=tmp_path / "masks",
             reference=tmp_path / "refs")
    assert [j.output for j in p.jobs] == [tmp_path / "out" / "a.png", tmp_path / "out" / "sub" / "b.jpg"]
    assert [j.companion.name for j in p.jobs] == ["a.png", "b.png"]
    assert p.jobs[1].reference == tmp_path / "refs" / "sub" / "b.jpg"
    assert any("notes.txt" in s for s in p.skipped)
    flat = plan(src, tmp_path / "out", "denoise")
    assert [j.source.name for j in flat.jobs] == ["a.png"]


def test_the_mask_or_reference_of_the_same_name_wins_and_a_tie_is_named(tmp_path):
    # masks/a.bmp sorts before masks/a.png: the stem alone once took it for in/a.png.
    src = tmp_path / "in"
    _touch(src / "a.png"), _touch(src / "c.jpg"), _touch(src / "sub" / "a.png")
    for name in ("a.bmp", "a.png", "c.bmp", "c.png", "sub/a.tif"):
        _touch(tmp_path / "masks" / name), _touch(tmp_path / "refs" / name)
    p = plan(src, tmp_path / "out", "inpaint", recursive=True, companion=tmp_path / "masks",
             reference=tmp_path / "refs")
    by_source = {j.source.relative_to(src).as_posix(): j for j in p.jobs}
    assert by_source["a.png"].companion == tmp_path / "masks" / "a.png"
    assert by_source["a.png"].reference == tmp_path / "refs" / "a.png"
    assert by_source["sub/a.png"].companion == tmp_path / "masks" / "sub" / "a.tif"    # its own folder's
    # c.jpg: c.bmp and c.png match it alike; the mask is refused by name, the reference left out by name.
    assert "c.bmp, c.png" in by_source["c.jpg"].problem and "name it c.jpg" in by_source["c.jpg"].problem
    assert by_source["c.jpg"].reference is None
    assert any("c.bmp, c.png" in s and "not scored" in s for s in p.skipped)
    with pytest.raises(PlanError, match="c.bmp, c.png"):
        plan(src / "c.jpg", tmp_path / "out.png", "inpaint", companion=tmp_path / "masks")


def test_single_mask_applies_to_all(tmp_path):
    src = tmp_path / "in"
    _touch(src / "a.png"), _touch(src / "b.png")
    mask = _touch(tmp_path / "m.png")
    assert {j.companion for j in plan(src, None, "inpaint", companion=mask).jobs} == {mask}


def test_bad_plans(tmp_path):
    with pytest.raises(PlanError, match="no such file"):
        plan(tmp_path / "missing.png", None, "denoise")
    src = tmp_path / "in"
    _touch(src / "a.png")
    with pytest.raises(PlanError, match="input folder"):
        plan(src, src, "denoise")
    with pytest.raises(PlanError, match="--mask"):
        plan(src / "a.png", None, "inpaint", companion=tmp_path / "nomask.png")


def test_run_reports_every_job_and_goes_on_after_a_failure(tmp_path):
    import numpy as np

    from restore.batch import Progress, Restored, run
    from restore.images import Picture, read_image, write_image
    from restore.tasks import Denoise

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b", "c"):
        write_image(src / f"{name}.png", Picture(np.full((4, 4, 1), 0.5, np.float32)))
    (src / "b.png").write_bytes(b"broken")
    jobs = plan(src, tmp_path / "out", "denoise").jobs

    def invert(picture, job, progress):
        progress.step(1, 1)
        return Restored(1 - picture.pixels, Denoise(sigma=3), picture.pixels)

    class Record(Progress):
        def __init__(self):
            self.events = []

        def start(self, job):
            self.events.append(("start", job.source.name))

        def step(self, done, total):
            self.events.append(("step", done))

        def finish(self, job, result):
            self.events.append(("finish", job.source.name, result.status))

    record = Record()
    results = run(jobs, invert, max_pixels=10**6, progress=record)
    assert [r.status for r in results] == ["ok", "failed", "ok"] and "b.png" in results[1].message
    assert record.events == [("start", "a.png"), ("step", 1), ("finish", "a.png", "ok"),
                             ("start", "b.png"), ("finish", "b.png", "failed"),
                             ("start", "c.png"), ("step", 1), ("finish", "c.png", "ok")]
    assert np.allclose(read_image(tmp_path / "out" / "c.png").pixels, 0.5, atol=0.01)
    again = run(jobs, invert, skip_existing=True, max_pixels=10**6)
    assert [r.status for r in again] == ["skipped", "failed", "skipped"]


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16, 40])
@pytest.mark.parametrize("jobs", [0, 1, 5, 17, 39])
def test_shards_are_disjoint_and_cover_the_jobs(count, jobs):
    from restore.batch import Job, shard
    import random
    names = [Path(f"in/{i:03d}.png") for i in range(jobs)]
    random.Random(count * 100 + jobs).shuffle(names)           # the plan's order must not matter
    all_jobs = [Job(n, Path("out") / n.name) for n in names]
    parts = [shard(all_jobs, i, count) for i in range(1, count + 1)]
    sources = [str(j.source) for part in parts for j in part]
    assert sorted(sources) == sorted(str(n) for n in names)     # the union is the job list...
    assert len(sources) == len(set(sources))                     # ...and no job is in two parts
    assert max(map(len, parts)) - min(map(len, parts)) <= 1      # and the parts are balanced
    assert [str(j.source) for j in shard(all_jobs, 1, count)] == sorted(str(n) for n in names)[::count]


@pytest.mark.parametrize("text", ["0/4", "5/4", "3", "a/b", "2/0", "-1/3", ""])
def test_bad_shards_are_refused(text):
    from restore.batch import parse_shard
    with pytest.raises(ValueError, match="I/N"):
        parse_shard(text)
    assert parse_shard("3/16") == (3, 16)


def test_uncertainty_maps_never_replace_inputs_masks_or_each_other(tmp_path):
    src = tmp_path / "in"
    _touch(src / "a.png"), _touch(src / "a.jpg"), _touch(src / "b.png")
    masks = tmp_path / "masks"
    _touch(masks / "a.png"), _touch(masks / "b.png")
    p = plan(src, tmp_path / "out", "inpaint", companion=masks, uncertainty=tmp_path / "maps")
    maps = {j.source.name: j.uncertainty for j in p.jobs}
    assert maps == {n: tmp_path / "maps" / f"{n}.png" for n in ("a.jpg", "a.png", "b.png")}
    # A map's name does not depend on what else the folder holds (a resume finds the same names).
    (src / "a.jpg").unlink()
    assert {j.source.name: j.uncertainty for j in plan(src, tmp_path / "out", "inpaint", companion=masks,
                                                       uncertainty=tmp_path / "maps").jobs}["a.png"] == maps["a.png"]
    for bad in (src, src / "maps", tmp_path / "out"):
        with pytest.raises(PlanError, match="--uncertainty|uncertainty map"):
            plan(src, tmp_path / "out", "inpaint", companion=masks, uncertainty=bad)
    with pytest.raises(PlanError, match="uncertainty map would replace"):
        plan(src / "a.png", tmp_path / "o.png", "inpaint", companion=masks / "a.png", uncertainty=masks / "a.png")
    with pytest.raises(PlanError, match="does not exist"):
        plan(src / "a.png", tmp_path / "o.png", "denoise", uncertainty=tmp_path / "no" / "m.png")
    # A folder's maps go to a folder: a file's name for it made a folder called u.png, holding a.png.png.
    with pytest.raises(PlanError, match=rf"u\.png: with a folder of images, --uncertainty names a folder, not an "
                                        rf"image file; give --uncertainty {tmp_path / 'u'}$"):
        plan(src, tmp_path / "out", "denoise", uncertainty=tmp_path / "u.png")
    with pytest.raises(PlanError, match=r"--save-mask names a folder, not an image file"):
        plan(src, tmp_path / "out", "inpaint", detect=True, save_found=tmp_path / "found.PNG")


def test_outputs_that_cannot_be_written_are_refused_when_planning(tmp_path):
    import os
    src = tmp_path / "in"
    _touch(src / "a.png")
    with pytest.raises(PlanError, match=r"out\.txt: cannot write '\.txt' files"):
        plan(src / "a.png", tmp_path / "out.txt", "denoise")
    if os.path.isdir("/proc"):
        with pytest.raises(PlanError, match="/proc/a.png: cannot write in /proc"):
            plan(src / "a.png", Path("/proc/a.png"), "denoise")
        with pytest.raises(PlanError, match="/proc/out/deeper: cannot write in /proc"):
            plan(src, Path("/proc/out/deeper"), "denoise")          # a folder still to be made: its parent
        with pytest.raises(PlanError, match="/proc/maps: cannot write in /proc"):
            plan(src, tmp_path / "out", "denoise", uncertainty=Path("/proc/maps"))
    assert plan(src, tmp_path / "new" / "out", "denoise").jobs            # a batch's folder may be made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]             # the probe left nothing behind


def test_a_failed_result_says_what_failed(tmp_path):
    import numpy as np

    from restore.batch import Restored, process
    from restore.images import Picture, write_image
    from restore.tasks import Denoise

    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", Picture(np.full((4, 4, 1), 0.5, np.float32)))
    (src / "b.png").write_bytes(b"broken")
    jobs = {j.source.name: j for j in plan(src, tmp_path / "out", "denoise").jobs}

    def same(picture, job, progress):
        return Restored(picture.pixels, Denoise(sigma=3), picture.pixels)

    def crash(picture, job, progress):
        raise RuntimeError("boom")
    run = dict(overwrite=False, skip_existing=False, max_pixels=10**6)
    assert process(jobs["b.png"], same, **run).failure == "input"
    assert process(jobs["a.png"], crash, **run).failure == "restore"
    ok = process(jobs["a.png"], same, **run)
    assert ok.status == "ok" and ok.failure is None
    exists = process(jobs["a.png"], same, **run)
    assert exists.failure == "output" and "exists" in exists.message


def test_an_output_folder_inside_the_inputs_is_never_read_and_one_around_them_is(tmp_path):
    """Outputs written inside the input folder are not inputs of the next run; an input folder that
    sits inside the output folder (restore denoise photos/new -o photos) still has its images."""
    src = tmp_path / "in"
    _touch(src / "a.png"), _touch(src / "out" / "a.png")
    found = plan(src, src / "out", "denoise", recursive=True)
    assert [j.source for j in found.jobs] == [src / "a.png"]
    # ... and says so: a user's own images there are not restored without a word.
    _touch(src / "out" / "b.png"), _touch(src / "out" / ".hidden.png"), _touch(src / "out" / "notes.txt")
    said = plan(src, src / "out", "denoise", recursive=True).skipped
    assert said == [f"leaving out the 2 images in {src / 'out'}: the output folder's files are outputs, never "
                    f"inputs; choose an -o outside {src} to restore them"]
    assert plan(src, tmp_path / "elsewhere", "denoise", recursive=True).skipped == [f"skipping {src / 'out' / 'notes.txt'}: not an image file"]
    # --overwrite would replace out/a.png, an image of the input folder as much as a last run's output:
    # refused before any work (it was replaced); out/b.png, no output's, does not stop the run.
    with pytest.raises(PlanError, match=rf"{src / 'out' / 'a.png'}: --overwrite would replace an image of the "
                                        rf"input folder {src} \(its subfolder {src / 'out'} is -o\); choose an -o "
                                        rf"outside {src}$"):
        plan(src, src / "out", "denoise", recursive=True, overwrite=True)
    with pytest.raises(PlanError, match="--overwrite would replace an image of the input folder"):
        plan(src, src / ".." / "in" / "out", "denoise", recursive=True, overwrite=True)     # spelled otherwise
    (tmp_path / "x").mkdir()
    with pytest.raises(PlanError, match="--overwrite would replace an image of the input folder"):
        plan(tmp_path / "x" / ".." / "in", src / "out", "denoise", recursive=True, overwrite=True)
    (src / "a.png").rename(src / "c.png")
    assert [j.output for j in plan(src, src / "out", "denoise", recursive=True, overwrite=True).jobs] == [src / "out" / "c.png"]
    inner = tmp_path / "photos" / "new"
    _touch(inner / "b.png")
    jobs = plan(inner, tmp_path / "photos", "denoise").jobs
    assert [(j.source, j.output) for j in jobs] == [(inner / "b.png", tmp_path / "photos" / "b.png")]


def test_skip_existing_never_replaces_a_map_or_mask_beside_an_output_not_yet_written(tmp_path):
    """An archivist corrects a saved mask by hand and resumes the batch: --skip-existing replaced it."""
    import numpy as np

    from restore.batch import Restored, process
    from restore.images import Picture, write_image
    from restore.tasks import Inpaint

    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", Picture(np.full((4, 4, 1), 0.5, np.float32)))
    job = plan(src, tmp_path / "out", "inpaint", detect=True, save_found=tmp_path / "masks").jobs[0]
    (tmp_path / "masks").mkdir()
    job.found.write_bytes(b"corrected by hand")

    def found(picture, job, progress):
        return Restored(picture.pixels, Inpaint(), picture.pixels, None, np.zeros((4, 4), bool))
    resumed = process(job, found, overwrite=False, skip_existing=True, max_pixels=10**6)
    assert resumed.status == "failed" and resumed.failure == "output", resumed
    assert f"{job.found}: exists; it is no output of a finished run ({job.output} does not exist)" in resumed.message
    assert job.found.read_bytes() == b"corrected by hand" and not job.output.exists()
    replaced = process(job, found, overwrite=True, skip_existing=False, max_pixels=10**6)
    assert replaced.status == "ok" and job.found.read_bytes() != b"corrected by hand"
    assert process(job, found, overwrite=False, skip_existing=True, max_pixels=10**6).status == "skipped"


def test_a_link_to_nothing_in_a_folder_is_said_not_passed_over(tmp_path):
    src = tmp_path / "in"
    _touch(src / "a.png")
    (src / "gone.png").symlink_to(tmp_path / "nowhere.png")
    found = plan(src, tmp_path / "out", "denoise")
    assert [j.source.name for j in found.jobs] == ["a.png"]
    assert found.skipped == [f"skipping {src / 'gone.png'}: a link to {tmp_path / 'nowhere.png'}, which does not exist"]
