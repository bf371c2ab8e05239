from pathlib import Path

import pytest

from restore.batch import PlanError, default_output, plan


def _touch(path: Path, text="x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_default_output_names(tmp_path):
    f = _touch(tmp_path / "photo.jpg")
    assert default_output(f, "denoise") == tmp_path / "photo_denoise.jpg"
    assert default_output(tmp_path, "inpaint") == tmp_path.parent / f"{tmp_path.name}_inpaint"


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
