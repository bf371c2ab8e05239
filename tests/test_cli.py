import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from restore.cli import app
from restore.images import Picture, read_image, write_image
from tests.conftest import smooth_images

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def _error_lines(result):
    return [line for line in result.output.splitlines() if line.startswith("error:")]


@pytest.fixture
def images(tmp_path):
    """clean/ and noisy/ folders of three 32x32 images each, and a stray text file."""
    rng = np.random.default_rng(0)
    clean = smooth_images(3, 32, seed=7)
    for sub in ("clean", "noisy"):
        (tmp_path / sub).mkdir()
    for i, im in enumerate(clean):
        write_image(tmp_path / "clean" / f"im{i}.png", Picture(im))
        noisy = np.clip(im + rng.normal(0, 25 / 255, im.shape), 0, 1).astype(np.float32)
        write_image(tmp_path / "noisy" / f"im{i}.png", Picture(noisy))
    (tmp_path / "noisy" / "readme.txt").write_text("not an image")
    return tmp_path


@pytest.mark.parametrize("command,options", [
    ("denoise", ["--sigma", "--max-megapixels"]),
    ("inpaint", ["--mask-dilate", "--max-megapixels"]),
    ("superres", ["--scale", "--max-megapixels"]),
    ("deblur", ["--kernel", "--max-megapixels"]),
    ("train", ["--tasks", "--out", "--steps"]),          # train and bench read no image to restore:
    ("bench", ["--tasks", "--quick", "--output"]),       # they have no --max-megapixels
])
def test_help_lists_every_command_and_option(command, options):
    """``restore --help`` lists every command, and each command's --help exits 0 and shows its
    own options (the restoring commands also their image-size limit)."""
    listing = invoke("--help")
    assert listing.exit_code == 0 and command in listing.output
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    for option in options:
        assert option in result.output, f"{command} --help lacks {option}"


def test_help_shows_flags_as_flags_and_each_command_s_summary_whole():
    """A flag read ``--resume <bool>`` (and ``--resume true`` is refused); the command list cut each
    summary at 45 characters."""
    for command in ("train", "denoise", "bench"):
        result = invoke(command, "--help")
        assert "<bool>" not in result.output and "--overwrite" in result.output, result.output
    listing = invoke("--help").output.split("Commands:")[1]
    assert "..." not in listing and " ".join(listing.split()).count("the file's own tables allow.") == 1, listing


def test_denoise_single_file_default_output(images, tiny_prior):
    _, model = tiny_prior
    src = images / "noisy" / "im0.png"
    result = invoke("denoise", src, "--model", model, "--sigma", "25", "--steps", "5", "-q")
    assert result.exit_code == 0, result.output
    out = images / "noisy" / "im0_denoise.png"
    assert out.is_file() and read_image(out).pixels.shape == (32, 32, 3)
    assert "wrote" in result.output


@pytest.mark.parametrize("name", ["photo", "photo-large"])
def test_the_shipped_photo_priors_denoise_by_name(images, name):
    """Each shipped photo prior restores by its name, and does better than the noisy input."""
    from restore.metrics import psnr
    src, out = images / "noisy" / "im1.png", images / f"im1_{name}.png"
    result = invoke("denoise", src, "--model", name, "--sigma", "25", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    clean, noisy = read_image(images / "clean" / "im1.png").pixels, read_image(src).pixels
    assert psnr(clean, read_image(out).pixels) > psnr(clean, noisy) + 3


def test_auto_sigma_is_estimated_and_printed(images, tiny_prior):
    _, model = tiny_prior
    result = invoke("denoise", images / "noisy" / "im0.png", "--model", model, "--steps", "2",
                    "-o", images / "o.png")
    assert result.exit_code == 0, result.output
    assert "estimated noise sigma" in result.output
    # The note comes first and alone: no progress-bar fragment before it or on its line.
    first = result.output.lstrip("\r").splitlines()[0]
    assert first.startswith(str(images / "noisy" / "im0.png")) and "it/s" not in first, result.output


def test_existing_output_is_never_overwritten_without_flag(images, tiny_prior):
    _, model = tiny_prior
    src, out = images / "noisy" / "im0.png", images / "out.png"
    out.write_bytes(b"precious")
    result = invoke("denoise", src, "-o", out, "--model", model, "--sigma", "25", "--steps", "1", "-q")
    assert result.exit_code == 2 and len(_error_lines(result)) == 1 and "--overwrite" in result.output
    assert out.read_bytes() == b"precious"
    assert invoke("denoise", src, "-o", out, "--model", model, "--sigma", "25", "--steps", "1",
                  "--skip-existing", "-q").exit_code == 0
    assert out.read_bytes() == b"precious"
    assert invoke("denoise", src, "-o", out, "--model", model, "--sigma", "25", "--steps", "1",
                  "--overwrite", "-q").exit_code == 0
    assert read_image(out).pixels.shape == (32, 32, 3)


def test_batch_with_reference_prints_table_and_writes_json(images, tiny_prior):
    _, model = tiny_prior
    (images / "noisy" / "broken.png").write_text("not really a png")
    result = invoke("denoise", images / "noisy", "-o", images / "out", "--sigma", "25", "--model", model,
                    "--steps", "20", "--ref", images / "clean", "--json", images / "r.json")
    assert result.exit_code == 1, result.output         # broken.png failed ...
    assert sorted(p.name for p in (images / "out").iterdir()) == ["im0.png", "im1.png", "im2.png"]  # ... the rest went on
    assert "broken.png" in result.output and "readme.txt" in result.output
    assert "mean" in result.output and "3 restored, 0 skipped, 1 failed" in result.output
    assert f"the outputs are in {images / 'out'}\n" in result.output      # where a terminal's bar alone said nothing
    report = json.loads((images / "r.json").read_text())
    ok = [r for r in report if r["status"] == "ok"]
    assert len(ok) == 3 and all(r["psnr"] > r["input_psnr"] for r in ok)
    assert {"seconds", "device", "model", "sigma", "ssim"} <= set(ok[0])
    assert all(Path(r["output"]).is_file() for r in ok)
    failed = [r for r in report if r["status"] == "failed"]     # never written: no path to look for
    assert [r["output"] for r in failed] == [None] and failed[0]["source"].endswith("broken.png")


def test_a_batch_mean_leaves_out_an_image_equal_to_its_reference(images, tiny_prior):
    """One file identical to its reference (infinite PSNR) made every mean of the summary ``inf``."""
    _, model = tiny_prior
    refs = images / "refs"
    refs.mkdir()
    for name in ("im0.png", "im1.png", "im2.png"):       # im0's reference is its noisy input itself
        source = images / ("noisy" if name == "im0.png" else "clean") / name
        (refs / name).write_bytes(source.read_bytes())
    result = invoke("denoise", images / "noisy", "-o", images / "out", "--sigma", "25", "--model", model,
                    "--steps", "1", "--ref", refs, "--json", images / "r.json")
    assert result.exit_code == 0, result.output
    mean = next(line for line in result.output.splitlines() if line.startswith("mean")).split()
    report = json.loads((images / "r.json").read_text())
    finite = [r["input_psnr"] for r in report if r["input_psnr"] is not None]
    assert len(finite) == 2 and float(mean[1]) == pytest.approx(sum(finite) / 2, abs=0.01), result.output
    assert "leave out 1 infinite PSNR(s)" in result.output, result.output


def test_inpaint_with_mask_and_alpha_only_mask(images, tiny_prior):
    _, model = tiny_prior
    clean = read_image(images / "clean" / "im1.png").pixels
    mask = np.zeros((32, 32), np.float32)
    mask[8:20, 10:24] = 1
    holed = clean.copy()
    holed[mask > 0] = 1.0
    write_image(images / "holed.png", Picture(holed))
    write_image(images / "mask.png", Picture(mask[:, :, None]))
    result = invoke("inpaint", images / "holed.png", "--mask", images / "mask.png", "--model", model,
                    "--steps", "20", "--ref", images / "clean" / "im1.png", "-o", images / "filled.png")
    assert result.exit_code == 0, result.output
    assert "PSNR" in result.output
    # The same holes given only in an alpha channel (colour uniform).
    write_image(images / "alpha_mask.png", Picture(np.zeros((32, 32, 3), np.float32), alpha=mask))
    result = invoke("inpaint", images / "holed.png", "--mask", images / "alpha_mask.png", "--model", model,
                    "--steps", "20", "-o", images / "filled2.png", "-q")
    assert result.exit_code == 0
    assert np.allclose(read_image(images / "filled.png").pixels, read_image(images / "filled2.png").pixels)


@pytest.mark.parametrize("value", [1.0, 0.0])
def test_inpaint_mask_of_wrong_size_is_one_line_error(images, tiny_prior, value):
    """A black one too: it said first that its mask marks no pixel and the image is written as it
    is, then that the mask does not fit (and nothing was written)."""
    _, model = tiny_prior
    write_image(images / "small_mask.png", Picture(np.full((8, 8, 1), value, np.float32)))
    result = invoke("inpaint", images / "clean" / "im0.png", "--mask", images / "small_mask.png",
                    "--model", model, "-o", images / "x.png")
    assert result.exit_code == 2
    assert len(_error_lines(result)) == 1 and "small_mask.png" in result.output
    assert "marks no pixel" not in result.output, result.output
    assert not (images / "x.png").exists()


def test_a_mask_of_0_and_1_is_refused_not_read_as_no_hole(images, tiny_prior):
    """A mask array saved as it is (0 and 1, not 0 and 255) would fill nothing and say nothing."""
    _, model = tiny_prior
    h, w = read_image(images / "clean" / "im0.png").pixels.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    mask[10:20, 10:20] = 1
    cv2.imwrite(str(images / "ones.png"), mask)
    result = invoke("inpaint", images / "clean" / "im0.png", "--mask", images / "ones.png",
                    "--model", model, "-o", images / "x.png")
    errors = _error_lines(result)
    assert result.exit_code == 2 and len(errors) == 1 and errors[0].endswith(
        f"{images / 'ones.png'}: a mask of 0 and 1, which marks no hole (holes are white); save it with 255 "
        "(white) where to fill, e.g. as mask * 255"), result.output
    assert f"im0.png: its --mask {images / 'ones.png'}" in errors[0]      # the option's file, named as such
    assert not (images / "x.png").exists()
    cv2.imwrite(str(images / "none.png"), mask * 0)            # no hole at all: nothing to fill, not an error
    none = invoke("inpaint", images / "clean" / "im0.png", "--mask", images / "none.png", "--model", model,
                  "-o", images / "y.png", "-q")
    assert none.exit_code == 0 and "its mask marks no pixel (holes are white)" in none.output, none.output
    cv2.imwrite(str(images / "all.png"), mask * 0 + 255)       # every pixel a hole: said, not refused
    import warnings
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        every = invoke("inpaint", images / "clean" / "im0.png", "--mask", images / "all.png", "--model", model,
                       "-o", images / "z.png", "-q")
    assert every.exit_code == 0 and "its mask marks every pixel" in every.output, every.output
    assert not [w for w in warned if "marks every pixel" in str(w.message)]     # a note alone, not a warning too
    cv2.imwrite(str(images / "some.png"), mask * 255)
    some = invoke("inpaint", images / "clean" / "im0.png", "--mask", images / "some.png", "--model", model,
                  "-o", images / "w.png", "-q")
    assert some.exit_code == 0 and "its mask marks" not in some.output, some.output


def test_superres_doubles_size_and_keeps_alpha(images, tiny_prior):
    _, model = tiny_prior
    small = smooth_images(1, 16, seed=3)[0]
    alpha = np.full((16, 16), 0.5, np.float32)
    write_image(images / "small.png", Picture(small, alpha=alpha))
    result = invoke("superres", images / "small.png", "--scale", "2", "--model", model, "--steps", "3", "-q")
    assert result.exit_code == 0, result.output
    out = read_image(images / "small_superres.png")
    assert out.pixels.shape == (32, 32, 3) and out.alpha is not None and out.alpha.shape == (32, 32)


@pytest.mark.parametrize("args,needle", [
    (["denoise", "missing.png"], "missing.png"),
    (["denoise", "{noisy}/readme.txt", "-o", "{tmp}/r.png"], "not a readable image"),
    (["denoise", "{noisy}/im0.png", "-o", "{tmp}/no/such/dir/out.png"], "does not exist"),
    (["denoise", "{noisy}/im0.png", "--sigma", "loud"], "--sigma"),
    (["denoise", "{noisy}/im0.png", "--device", "tpu"], "--device"),
    (["superres", "{noisy}/im0.png", "--scale", "5"], "--scale"),
    (["deblur", "{noisy}/im0.png", "--kernel", "gaussian:zero"], "--kernel"),
    (["deblur", "{noisy}/im0.png", "--kernel", "{tmp}/no_kernel.png"], "no_kernel.png"),
    (["denoise", "{noisy}/im0.png", "--mode", "fast"], "--mode"),
    (["inpaint", "{noisy}/im0.png", "--mask", "{noisy}/im1.png", "--mask-dilate", "-1"], "--mask-dilate"),
    (["denoise", "{noisy}/im0.png", "--model", "{tmp}/nope.pt"], "nope.pt"),
    (["denoise", "{noisy}/im0.png", "--max-megapixels", "0.0001", "-o", "{tmp}/big.png"], "megapixel"),
    (["denoise", "{noisy}/im0.png", "--max-megapixels", "nan"], "--max-megapixels"),
    (["denoise", "{noisy}/im0.png", "--tile", "1000000000"], "--tile"),
    (["deblur", "{noisy}/im0.png", "--kernel", "gaussian:1e6"], "over the limit"),
    (["deblur", "{noisy}/im0.png", "--kernel", "motion:15,nan"], "--kernel"),
    (["inpaint", "{noisy}/im0.png", "--mask", "{noisy}/im1.png", "--mask-dilate", "100000"], "--mask-dilate"),
    (["superres", "{noisy}/im0.png", "--max-megapixels", "0.01", "-o", "{tmp}/big.png"], "the output would be"),
    (["denoise", "{noisy}/im0.png", "--ref", "{noisy}/readme.txt", "-o", "{tmp}/r.png"],
     "--ref {noisy}/readme.txt: not a readable image"),
])
def test_bad_input_gives_one_line_error_and_nonzero_exit(images, tiny_prior, args, needle):
    _, model = tiny_prior
    args = [a.format(noisy=images / "noisy", tmp=images) for a in args]
    needle = needle.format(noisy=images / "noisy", tmp=images)
    if "--model" not in args:
        args += ["--model", str(model)]
    result = invoke(*args)
    assert result.exit_code != 0
    assert len(_error_lines(result)) == 1 and needle in result.output, result.output


def test_output_never_replaces_the_input(images, tiny_prior):
    _, model = tiny_prior
    src = images / "noisy" / "im0.png"
    before = src.read_bytes()
    result = invoke("denoise", src, "-o", src, "--overwrite", "--model", model, "--sigma", "25", "--steps", "1")
    assert result.exit_code == 2 and "input" in result.output
    assert src.read_bytes() == before


def test_train_then_resume(images):
    out = images / "prior.pt"
    args = ["train", images / "clean", "--out", out, "--width", "8", "--latent", "2", "--crop", "16",
            "--batch-size", "4", "--checkpoint-every", "2"]
    result = invoke(*args, "--steps", "3")
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert invoke(*args, "--steps", "3").exit_code == 2          # refuses to overwrite
    result = invoke(*args, "--steps", "5", "--resume")
    assert result.exit_code == 0, result.output
    assert "--width" in result.output and "not used" in result.output       # the checkpoint's model goes on
    assert "--steps" not in result.output.split("not used")[0].split("settings;")[-1]
    from restore.model import load_checkpoint
    _, state = load_checkpoint(out)
    assert state["meta"]["steps"] == 5
    before = out.read_bytes()
    for done in ("5", "4"):                  # no more steps to take: said, not "wrote ... after 5 steps"
        result = invoke(*args, "--steps", done, "--resume")
        assert result.exit_code == 2 and _error_lines(result) == [
            f"error: {out}: has trained 5 steps already; give --steps more than 5 to go on"], result.output
    assert out.read_bytes() == before
    result = invoke(*args, "--steps", "9", "--resume", "--overwrite")      # two meanings: neither is guessed
    assert result.exit_code == 2 and _error_lines(result) == [
        f"error: --resume goes on with {out}, --overwrite starts it again; pick one"], result.output
    assert out.read_bytes() == before
    # A file that is no checkpoint: one line, no traceback, the file left as it was.
    for name, data in (("text.pt", b"hello"), ("zip.pt", b"PK\x03\x04" + bytes(40))):
        (images / name).write_bytes(data)
        result = invoke(*args[:3], images / name, *args[4:], "--steps", "3", "--resume")
        lines = _error_lines(result)
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert lines[0].startswith(f"error: {images / name}: not a checkpoint written by 'restore train'")
        assert (images / name).read_bytes() == data
    # The trained prior restores through the CLI.
    assert invoke("denoise", images / "noisy" / "im0.png", "--model", out, "--sigma", "25", "--steps", "2",
                  "-o", images / "t.png", "-q").exit_code == 0


def test_train_from_a_checkpoint_adds_a_per_pixel_scale(images):
    first, second = images / "first.pt", images / "second.pt"
    common = [images / "clean", "--crop", "16", "--batch-size", "4", "--steps", "2"]
    assert invoke("train", *common, "--out", first, "--width", "8", "--latent", "2").exit_code == 0
    result = invoke("train", *common, "--out", second, "--init", first, "--pixel-scale", "--gray", "0.5",
                    "--arch", "digits", "--width", "32")
    assert f"note: --init starts from {first}'s own architecture; --arch, --width not used" in result.output
    assert result.exit_code == 0, result.output
    from restore.model import load_checkpoint
    model, state = load_checkpoint(second)
    assert model.config.pixel_scale and model.config.width == 8
    assert state["meta"]["settings"]["init"] == str(first)
    assert state["meta"]["settings"]["gray_fraction"] == 0.5
    result = invoke("train", *common, "--out", images / "bf16.pt", "--width", "8", "--latent", "2",
                    "--precision", "bf16", "--tasks", "Deblur, INPAINT")         # names as a user may type them
    assert result.exit_code == 0, result.output
    settings = load_checkpoint(images / "bf16.pt")[1]["meta"]["settings"]
    assert settings["precision"] == "bf16" and tuple(settings["tasks"]) == ("deblur", "inpaint")
    result = invoke("train", *common, "--out", images / "wider.pt", "--init", second, "--latent", "4")
    assert result.exit_code == 0, result.output
    grown = load_checkpoint(images / "wider.pt")[0]
    assert grown.config.latent_channels == 4 and grown.config.pixel_scale and grown.config.width == 8
    result = invoke("train", *common, "--out", images / "narrower.pt", "--init", second, "--latent", "1")
    assert result.exit_code == 2 and "can only grow" in result.output and "Traceback" not in result.output
    assert invoke("train", *common, "--out", images / "x.pt", "--tasks", "sharpen").exit_code == 2
    assert invoke("denoise", images / "noisy" / "im0.png", "--model", second, "--sigma", "25",
                  "-o", images / "t2.png", "-q").exit_code == 0
    result = invoke("train", *common, "--out", images / "third.pt", "--init", images / "noisy" / "im0.png")
    assert result.exit_code == 2 and "im0.png" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("options,needle", [
    (["--lr", "-1"], "--lr: must be a positive number of at most 1 (Adam's step; 1e-3 is usual), got -1.0"),
    (["--lr", "nan"], "--lr: must be a positive number of at most 1 (Adam's step; 1e-3 is usual), got nan"),
    (["--batch-size", "0"], "--batch-size: must be 1 or more, got 0"),
    (["--crop", "7"], "--crop: must be a multiple of 4 (the prior's 2 downsamplings) of at least 8, got 7"),
    (["--crop", "0"], "--crop: must be a multiple of 4"),
    (["--crop", "4"], "of at least 8, got 4"),
    (["--crop", "12", "--levels", "3"], "--crop: must be a multiple of 8 (the prior's 3 downsamplings)"),
    (["--arch", "digits"], "--width: for photo priors; the digits prior has its own fixed size"),   # was passed over
    (["--arch", "digits", "--gray", "0.5"], "--width, --gray: for photo priors"),
    (["--width", "0"], "--width: must be 1 or more, got 0"),
    (["--latent", "0"], "--latent: must be 1 or more, got 0"),
    (["--levels", "-1"], "--levels: must be 0 or more, got -1"),
    (["--steps", "0"], "--steps: must be 1 or more, got 0"),
    (["--steps", "-2"], "--steps: must be 1 or more, got -2"),
    (["--degraded", "5"], "--degraded: must be a share between 0 and 1, got 5.0"),
    (["--gray", "nan"], "--gray: must be a share between 0 and 1, got nan"),
    (["--checkpoint-every", "0"], "--checkpoint-every: must be 1 or more, got 0"),
    (["--minutes", "0"], "--minutes: must be a positive number"),
    (["--seed", "-1"], "--seed: must be 0 to 4294967295 (2**32 - 1), got -1"),
    (["--seed", str(2**70)], "--seed: must be 0 to 4294967295"),     # torch's generator overflowed
    (["--tasks", "denoise,sharpen"], "--tasks: must be some of denoise, superres, inpaint, deblur, dejpeg; not sharpen"),
    (["--encoder-only"], "--encoder-only: needs --init"),        # it trained against a random decoder
    (["--prior-from-clean", "--degraded", "1"], "--prior-from-clean: needs clean crops: lower --degraded below 1"),
    (["--out", "{tmp}/p.txt"], "p.txt: --out writes a checkpoint; give a name ending in .pt"),
])
def test_train_refuses_bad_options_before_any_work(images, monkeypatch, options, needle):
    """Each option training cannot take is one line naming it, exit status 2, before any image is
    read; and no checkpoint is written."""
    from restore import data

    def refuse(*args, **kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr(data.CropSampler, "__init__", refuse)
    options = [o.format(tmp=images) for o in options]
    result = invoke("train", images / "clean", "--out", images / "p.pt", "--width", "8", "--latent", "2",
                    "--crop", "16", "--batch-size", "4", "--steps", "2", *options)
    errors = _error_lines(result)
    assert result.exit_code == 2 and len(errors) == 1 and needle in errors[0], result.output
    assert not (images / "p.pt").exists() and not (images / "p.txt").exists()


@pytest.mark.parametrize("out, extra, needle", [
    ("{tmp}/folder.pt", ["--overwrite"], "folder.pt: is a folder; give the name of a file to write"),
    ("/proc/p.pt", [], "/proc/p.pt: cannot write in /proc"),
    ("{tmp}/first.pt", ["--init", "{tmp}/first.pt", "--overwrite"], "first.pt: is the --init checkpoint"),
    ("{tmp}/new.pt", ["--init", "{tmp}/nope.pt"], "nope.pt: no such checkpoint; give --init a .pt checkpoint"),
])
def test_train_refuses_an_output_it_cannot_write_before_any_work(images, monkeypatch, out, extra, needle):
    """Training checkpoints every few hundred steps: an --out that cannot take them (a folder, a
    place not writable, the checkpoint it starts from) is refused before the first step, not at
    the first checkpoint."""
    from restore import train as training

    common = ["--width", "8", "--latent", "2", "--crop", "16", "--batch-size", "2", "--steps", "1", "-q"]
    assert invoke("train", images / "clean", "--out", images / "first.pt", *common).exit_code == 0
    (images / "folder.pt").mkdir()
    before = (images / "first.pt").read_bytes()

    def refuse(*args, **kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr(training, "train", refuse)
    result = invoke("train", images / "clean", "--out", out.format(tmp=images), *common,
                    *[e.format(tmp=images) for e in extra])
    errors = _error_lines(result)
    assert result.exit_code == 2 and len(errors) == 1 and needle in errors[0], result.output
    assert (images / "first.pt").read_bytes() == before


def test_train_names_the_images_it_cannot_read_and_counts_only_the_rest(images):
    mixed, unreadable = images / "mixed", images / "unreadable"
    for folder in (mixed, unreadable):
        folder.mkdir()
        (folder / "text.png").write_text("not an image")
        (folder / "empty.png").write_bytes(b"")
    for name in ("im0.png", "im1.png"):
        (mixed / name).write_bytes((images / "clean" / name).read_bytes())
    write_image(mixed / "tiny.png", Picture(np.full((8, 12, 3), 0.5, np.float32)))
    common = ["--width", "8", "--latent", "2", "--crop", "16", "--batch-size", "2", "--steps", "1", "-q"]
    result = invoke("train", mixed, "--out", images / "m.pt", *common)
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert sorted(notes) == [f"note: skipping {mixed / 'empty.png'}: not a readable image (the file is empty); "
                             "use PNG, JPEG, TIFF, WebP or BMP",
                             f"note: skipping {mixed / 'text.png'}: not a readable image; use PNG, JPEG, TIFF, WebP or BMP",
                             f"note: skipping {mixed / 'tiny.png'}: 12x8 pixels, under --crop 16 at every scale it "
                             "is trained at (its long side at most 1024)"]
    assert "training on 2 images (cropped from 4 copies: each at full and, where a crop fits, half size)" in result.output, result.output
    from restore.model import load_checkpoint
    meta = load_checkpoint(images / "m.pt")[1]["meta"]
    assert (meta["images"], meta["at_all_scales"]) == (2, 4)
    result = invoke("train", unreadable, "--out", images / "u.pt", *common)
    assert result.exit_code == 2 and _error_lines(result) == [
        f"error: {unreadable}: none of its 2 image files could be read; replace them with readable images"], result.output
    assert "text.png" in result.output and "empty.png" in result.output and not (images / "u.pt").exists()


def test_the_command_line_starts_without_torch():
    # --help and argument errors should answer at once; torch loads only when a command runs.
    import subprocess
    import sys
    code = "import sys, restore.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_mask_dilate_grows_the_holes(images, tiny_prior):
    _, model = tiny_prior
    clean = read_image(images / "clean" / "im2.png").pixels
    damaged = clean.copy()
    damaged[12:20, 12:20] = 1.0                                 # a white halo around ...
    mask = np.zeros((32, 32, 1), np.float32)
    mask[15:17, 15:17] = 1                                      # ... a small marked hole
    write_image(images / "halo.png", Picture(damaged))
    write_image(images / "dot.png", Picture(mask))
    outputs = {}
    for dilate in ("0", "5"):
        out = images / f"dilate{dilate}.png"
        result = invoke("inpaint", images / "halo.png", "--mask", images / "dot.png", "--mask-dilate", dilate,
                        "--model", model, "--steps", "2", "-o", out, "-q")
        assert result.exit_code == 0, result.output
        outputs[dilate] = read_image(out).pixels[12:14, 12:20]
    assert np.allclose(outputs["0"], 1.0, atol=0.02)             # observed: kept
    assert np.abs(outputs["5"] - 1.0).mean() > 0.1               # inside the grown holes: filled


def test_deblur_a_folder_with_a_kernel_image(images, tiny_prior):
    import torch

    from restore.physics import Blur, gaussian_kernel
    _, model = tiny_prior
    (images / "blurred").mkdir()
    blur = Blur(gaussian_kernel(1.0))
    for i in range(2):
        clean = read_image(images / "clean" / f"im{i}.png").pixels
        blurred = blur.blur_image(torch.from_numpy(clean).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
        write_image(images / "blurred" / f"im{i}.png", Picture(np.clip(blurred, 0, 1)))
    kernel = gaussian_kernel(1.0).numpy()
    write_image(images / "kernel.png", Picture((kernel / kernel.max())[:, :, None]))
    for spec in ("gaussian:1", images / "kernel.png"):
        out = images / f"sharp_{'file' if isinstance(spec, type(images)) else 'spec'}"
        report = out.with_suffix(".json")
        result = invoke("deblur", images / "blurred", "--kernel", spec, "--sigma", "1", "--model", model,
                        "--steps", "5", "-o", out, "--ref", images / "clean", "--json", report)
        assert result.exit_code == 0, result.output
        rows = json.loads(report.read_text())
        assert len(rows) == 2 and all(r["psnr"] > r["input_psnr"] for r in rows), rows
        assert rows[0]["task"] == "deblur" and rows[0]["sigma"] == 1


def test_ctrl_c_in_training_saves_the_step_and_says_how_to_go_on(images, monkeypatch):
    """Ctrl-C ends the step under way, writes its checkpoint, says so and exits 130; --resume then
    goes on from that step."""
    import signal

    from restore import train as training
    from restore.model import load_checkpoint
    real, calls = training.vae_loss, {"n": 0}

    def interrupted_at_the_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)
    monkeypatch.setattr(training, "vae_loss", interrupted_at_the_third)
    out = images / "stopped.pt"
    args = ["train", images / "clean", "--out", out, "--width", "8", "--latent", "2", "--crop", "16",
            "--batch-size", "2", "--steps", "50", "--checkpoint-every", "100"]
    result = invoke(*args, "-q")
    assert result.exit_code == 130, result.output
    assert f"interrupted at step 3: {out} holds it; to go on, run the command again with --resume" in result.output
    assert load_checkpoint(out)[1]["meta"]["steps"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler         # Ctrl-C is Ctrl-C again
    assert not [p for p in images.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(training, "vae_loss", real)
    result = invoke(*args, "--resume", "--steps", "5", "-q")
    assert result.exit_code == 0 and load_checkpoint(out)[1]["meta"]["steps"] == 5, result.output
    # Asked during the last step, the run ends as it would have: nothing is left to go on with.
    calls["n"] = 0
    monkeypatch.setattr(training, "vae_loss", interrupted_at_the_third)
    result = invoke(*args, "--out", images / "whole.pt", "--steps", "3", "-q")
    assert result.exit_code == 0 and "wrote" in result.output and "interrupted" not in result.output, result.output


def test_a_time_budget_s_progress_bar_counts_its_seconds(images):
    result = invoke("train", images / "clean", "--out", images / "timed.pt", "--width", "8", "--latent", "2",
                    "--crop", "16", "--batch-size", "2", "--minutes", "0.02")
    assert result.exit_code == 0, result.output
    assert "/1 s of --minutes" in result.output and "step=" in result.output, result.output


def test_training_skips_non_finite_steps_and_stops_when_it_diverges(images, monkeypatch):
    import torch

    from restore import train as training
    real, calls = training.vae_loss, {"n": 0}

    def sometimes_nan(*args, **kwargs):
        loss, stats = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan"), stats) if calls["n"] in (2, 3) or calls["n"] > 6 else (loss, stats)
    monkeypatch.setattr(training, "vae_loss", sometimes_nan)
    out = images / "diverged.pt"
    result = invoke("train", images / "clean", "--out", out, "--width", "8", "--latent", "2", "--crop", "16",
                    "--batch-size", "4", "--checkpoint-every", "2", "--steps", "40")
    assert result.exit_code == 2 and _error_lines(result) and "diverged at step 26" in result.output, result.output
    assert "pass --overwrite to start again" in result.output      # "train again" alone met "exists"
    from restore.model import load_checkpoint
    model, state = load_checkpoint(out)              # the last checkpoint before it stopped...
    assert state["meta"]["steps"] == 24
    assert all(torch.isfinite(p).all() for p in model.parameters())   # ...holds finite weights


def test_a_run_that_ends_within_non_finite_steps_says_it_diverged_and_a_wild_rate_is_refused(images, monkeypatch):
    """Too few non-finite steps to stop the run, but its last: its weights give no finite loss (a rate
    of 1e12 left them at 1e12 after one step and wrote them, exit 0)."""
    from restore import train as training
    real, calls = training.vae_loss, {"n": 0}

    def late_nan(*args, **kwargs):
        loss, stats = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan"), stats) if calls["n"] > 3 else (loss, stats)
    monkeypatch.setattr(training, "vae_loss", late_nan)
    common = ["--width", "8", "--latent", "2", "--crop", "16", "--batch-size", "2", "--steps", "6"]
    result = invoke("train", images / "clean", "--out", images / "late.pt", *common)
    assert result.exit_code == 2 and _error_lines(result), result.output
    assert "training diverged: the loss was not finite in its last 3 steps" in result.output, result.output
    assert "nor on a fresh batch; lower --lr and train again with --overwrite" in result.output, result.output

    def last_step_nan(*args, **kwargs):       # the last step's batch alone: no divergence
        loss, stats = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan"), stats) if calls["n"] == 6 else (loss, stats)
    calls["n"] = 0
    monkeypatch.setattr(training, "vae_loss", last_step_nan)
    one_bad = invoke("train", images / "clean", "--out", images / "one_bad.pt", *common)
    assert one_bad.exit_code == 0 and (images / "one_bad.pt").exists(), one_bad.output
    result = invoke("train", images / "clean", "--out", images / "wild.pt", *common, "--lr", "1e12")
    assert result.exit_code == 2 and "--lr" in result.output and "at most 1" in result.output, result.output
    assert not (images / "wild.pt").exists()


def test_a_prior_that_gives_non_finite_values_is_said_so_in_one_line(images, tiny_prior, tmp_path):
    """The data's filter matched patches by the NaN a diverged prior decoded, and failed inside with an
    index error; now nothing is filtered and the output's check says what happened."""
    import copy

    import torch

    from restore.model import save_checkpoint
    model = copy.deepcopy(tiny_prior[0])
    with torch.no_grad():
        model.decoder[-1].bias.fill_(float("nan"))
    save_checkpoint(tmp_path / "nan.pt", model)
    noisy = sorted((images / "noisy").glob("*.png"))[0]
    result = invoke("denoise", noisy, "--model", tmp_path / "nan.pt", "--sigma", "10", "-o", tmp_path / "out.png")
    assert result.exit_code == 1 and _error_lines(result), result.output
    assert "the restoration produced non-finite pixels; nothing was returned" in result.output, result.output
    assert "unexpected" not in result.output and not (tmp_path / "out.png").exists()


def test_a_colour_image_restored_by_a_one_channel_prior_is_said_to_come_back_grey(images):
    src = images / "noisy" / "im0.png"
    grey = images / "grey.png"
    write_image(grey, Picture(read_image(src).pixels[:, :, :1]))
    said = {}
    for path in (src, grey):
        result = invoke("denoise", path, "--model", "digits", "--sigma", "10", "--steps", "0", "-o",
                        images / f"{path.stem}_out.png")
        assert result.exit_code == 0, result.output
        said[path.name] = "the prior sees one channel: what it restores of this colour image comes back grey" in result.output
    assert said == {"im0.png": True, "grey.png": False}


@pytest.fixture
def no_restoration(monkeypatch):
    """Fails the test if a restoration starts: refusals must come before any work."""
    import restore.pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("a restoration started")
    monkeypatch.setattr(restore.pipeline, "restore", refuse)


@pytest.mark.parametrize("output,needle", [("{tmp}/out.txt", "cannot write '.txt' files"),
                                           ("{tmp}/out", "no such folder, and no suffix to name a file; create"),
                                           ("{tmp}/out/", "no such folder, and no suffix to name a file; create"),
                                           ("/proc/x.png", "cannot write in /proc")])
def test_an_output_that_cannot_be_written_is_refused_before_restoring(images, tiny_prior, no_restoration,
                                                                      output, needle):
    if output.startswith("/proc") and not __import__("os").path.isdir("/proc"):
        pytest.skip("no /proc here")
    _, model = tiny_prior
    output = output.format(tmp=images)
    result = invoke("denoise", images / "noisy" / "im0.png", "-o", output, "--model", model, "--sigma", "25")
    assert result.exit_code == 2 and len(_error_lines(result)) == 1, result.output
    assert output.rstrip("/") in _error_lines(result)[0] and needle in result.output, result.output
    assert not (images / "out.txt").exists() and not (images / "out").exists()


@pytest.mark.parametrize("option", ["-o", "--json", "--uncertainty"])
def test_a_batch_whose_outputs_cannot_be_written_is_refused_before_restoring(images, tiny_prior, no_restoration,
                                                                             option):
    import os
    if not os.path.isdir("/proc"):
        pytest.skip("no /proc here")
    _, model = tiny_prior
    target = {"-o": "/proc/restored", "--json": "/proc/r.json", "--uncertainty": "/proc/maps"}[option]
    args = {"-o": [], "--json": ["-o", images / "out"], "--uncertainty": ["-o", images / "out", "--samples", "2"]}
    result = invoke("denoise", images / "noisy", option, target, *args[option], "--model", model, "--sigma", "25")
    assert result.exit_code == 2 and len(_error_lines(result)) == 1 and target in result.output, result.output
    assert not (images / "out").exists()


def test_exit_status_says_what_failed(images, tiny_prior, monkeypatch):
    """0 done; 1 a restoration failed (in a batch: some files); 2 bad usage or input, a missing file
    and an unreadable one alike; 3 this machine cannot run it (no GPU)."""
    import torch

    import restore.images
    _, model = tiny_prior
    common = ["--model", model, "--sigma", "25", "--steps", "1", "-q"]
    src = images / "noisy" / "im0.png"
    assert invoke("denoise", src, "-o", images / "ok.png", *common).exit_code == 0
    assert invoke("denoise", images / "missing.png", *common).exit_code == 2
    (images / "corrupt.png").write_bytes(b"not a png")
    assert invoke("denoise", images / "corrupt.png", "-o", images / "c.png", *common).exit_code == 2

    real_fromfile = np.fromfile

    def unreadable(path, *args, **kwargs):       # root reads any file: permissions cannot be trusted here
        if str(path).endswith("im1.png"):
            raise PermissionError(13, "Permission denied")
        return real_fromfile(path, *args, **kwargs)
    monkeypatch.setattr(restore.images.np, "fromfile", unreadable)
    result = invoke("denoise", images / "noisy" / "im1.png", "-o", images / "u.png", *common)
    assert result.exit_code == 2 and "im1.png: cannot read it (Permission denied)" in result.output, result.output
    batch = invoke("denoise", images / "noisy", "-o", images / "out", *common)
    assert batch.exit_code == 1 and "2 restored, 0 skipped, 1 failed" in batch.output, batch.output
    monkeypatch.undo()

    import restore.pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")
    monkeypatch.setattr(restore.pipeline, "restore", broken)
    result = invoke("denoise", src, "-o", images / "b.png", *common)
    assert result.exit_code == 1 and len(_error_lines(result)) == 1 and "out of memory" in result.output
    monkeypatch.undo()

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = invoke("denoise", src, "-o", images / "g.png", "--device", "cuda", *common)
    assert result.exit_code == 3 and "--device cuda: no CUDA GPU" in result.output, result.output
    assert "not a restore prior" not in result.output


def test_quiet_hides_the_bars_but_not_the_estimated_sigma(images, tiny_prior):
    _, model = tiny_prior
    result = invoke("denoise", images / "noisy" / "im0.png", "--model", model, "--steps", "2",
                    "-o", images / "q.png", "-q")
    assert result.exit_code == 0, result.output
    assert "estimated noise sigma" in result.output and "wrote" in result.output
    assert "%|" not in result.output                              # no bar


def test_progress_bars_name_their_unit_and_show_no_rate(images, tiny_prior):
    _, model = tiny_prior
    single = invoke("denoise", images / "noisy" / "im0.png", "--model", model, "--steps", "3", "--sigma", "25",
                    "-o", images / "p.png")
    assert single.exit_code == 0, single.output
    assert "solver steps (3 per batch of tiles)" in single.output, single.output
    # The data's filter: a bar for each of its passes, named, in its own unit.
    assert "im0.png, the data's filter, pass 2: 100%" in single.output and "bands of rows" in single.output
    fast = invoke("denoise", images / "noisy" / "im0.png", "--model", model, "--steps", "0", "--sigma", "25",
                  "-o", images / "p0.png")
    assert "batches of tiles" in fast.output, fast.output
    batch = invoke("denoise", images / "noisy", "--model", model, "--steps", "1", "--sigma", "25",
                   "-o", images / "pb")
    assert "/3 images" in batch.output, batch.output
    import re
    for output in (single.output, fast.output, batch.output):
        plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", output)           # the nested bars' cursor moves
        bars = [line.strip() for line in re.split(r"[\r\n]", plain) if "%|" in line]
        # every bar shows [elapsed<left] with nothing after "left": no rate (stdout may follow on the line)
        assert bars and all(re.search(r"\[[\d:]+<[\d:?]+\]", bar) for bar in bars), bars
        # a stage's bar opens once: no line of it drawn twice in a row (its 0/total was)
        assert all(a != b for a, b in zip(bars, bars[1:])), bars


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_scores_are_those_of_the_file_as_written(images, tiny_prior, suffix):
    from restore.metrics import psnr, ssim
    _, model = tiny_prior
    out = images / f"scored{suffix}"
    result = invoke("denoise", images / "noisy" / "im0.png", "--model", model, "--sigma", "25", "--steps", "2",
                    "-o", out, "--ref", images / "clean" / "im0.png", "--json", images / "s.json", "-q")
    assert result.exit_code == 0, result.output
    row = json.loads((images / "s.json").read_text())[0]
    reference = np.round(read_image(images / "clean" / "im0.png").pixels * 255).astype(np.uint8)
    written = np.round(read_image(out).pixels * 255).astype(np.uint8)      # JPEG's loss included
    assert row["psnr"] == pytest.approx(psnr(reference, written), abs=1e-9)
    assert row["ssim"] == pytest.approx(ssim(reference, written), abs=1e-9)
    assert f"PSNR {row['psnr']:.2f} dB" in result.output


@pytest.mark.parametrize("args,kept", [
    (["denoise", "{noisy}/im0.png", "--json", "{noisy}/im0.png", "-o", "{tmp}/o.png"], "{noisy}/im0.png"),
    (["denoise", "{noisy}/im0.png", "--json", "{tmp}/o.json", "-o", "{clean}/im0.png", "--ref", "{clean}/im0.png",
      "--overwrite"], "{clean}/im0.png"),
    (["inpaint", "{noisy}/im0.png", "--mask", "{noisy}/im1.png", "-o", "{noisy}/im1.png", "--overwrite"],
     "{noisy}/im1.png"),
    (["inpaint", "{noisy}", "--mask", "{clean}", "-o", "{clean}", "--overwrite"], "{clean}/im2.png"),
    (["denoise", "{noisy}/im0.png", "--ref", "{clean}/im0.png", "--json", "{clean}/im0.png"], "{clean}/im0.png"),
])
def test_no_output_and_no_report_replaces_an_input_a_mask_or_a_reference(images, tiny_prior, no_restoration,
                                                                          args, kept):
    _, model = tiny_prior
    where = dict(noisy=images / "noisy", clean=images / "clean", tmp=images)
    kept = Path(kept.format(**where))
    before = kept.read_bytes()
    result = invoke(*[a.format(**where) for a in args], "--model", model, "--sigma", "25")
    assert result.exit_code == 2 and len(_error_lines(result)) == 1, result.output
    assert kept.read_bytes() == before


@pytest.mark.parametrize("report,needle", [("{tmp}/r.png", "ending in .json"), ("{tmp}/folder.json", "is a folder")])
def test_a_report_that_is_no_json_file_is_refused_before_restoring(images, tiny_prior, no_restoration, report, needle):
    _, model = tiny_prior
    (images / "folder.json").mkdir()
    report = report.format(tmp=images)
    result = invoke("denoise", images / "noisy" / "im0.png", "--json", report, "-o", images / "o.png",
                    "--model", model, "--sigma", "25")
    assert result.exit_code == 2 and needle in result.output, result.output
    assert not (images / "o.png").exists() and not (images / "r.png").exists()


def test_an_existing_report_is_kept_unless_overwrite(images, tiny_prior, no_restoration):
    _, model = tiny_prior
    report = images / "keep.json"
    report.write_text('{"keep": 1}')
    result = invoke("denoise", images / "noisy" / "im0.png", "--json", report, "-o", images / "o.png",
                    "--model", model, "--sigma", "25")
    assert result.exit_code == 2 and "--overwrite" in result.output, result.output
    assert report.read_text() == '{"keep": 1}' and not (images / "o.png").exists()


def test_a_report_of_an_image_equal_to_its_reference_is_strict_json(images, tiny_prior):
    """Its PSNR is infinite: ``Infinity`` is no JSON (JSON.parse and others refuse it), null is."""
    _, model = tiny_prior
    clean = images / "clean" / "im0.png"
    write_image(images / "nothing.png", Picture(np.zeros((32, 32, 1), np.float32)))
    result = invoke("inpaint", clean, "--mask", images / "nothing.png", "-o", images / "o.png", "--model", model,
                    "--ref", clean, "--json", images / "r.json", "-q")
    assert result.exit_code == 0, result.output
    text = (images / "r.json").read_text()
    assert "Infinity" not in text and json.loads(text)[0]["psnr"] is None


@pytest.mark.parametrize("command,extra", [("denoise", ["--sigma", "25"]), ("superres", ["--scale", "2"])])
def test_a_reference_of_another_size_is_refused_before_restoring(images, tiny_prior, no_restoration, command, extra):
    _, model = tiny_prior
    write_image(images / "small.png", Picture(smooth_images(1, 16, seed=1)[0]))
    result = invoke(command, images / "noisy" / "im0.png", "--ref", images / "small.png", "-o", images / "o.png",
                    "--model", model, *extra)
    assert result.exit_code == 2 and "reference is 16x16" in result.output, result.output
    assert not (images / "o.png").exists()


def test_an_image_too_small_to_score_is_refused_before_restoring(images, tiny_prior, no_restoration):
    """SSIM needs 11x11 pixels: an 8x8 image with --ref is refused with the fix, and nothing is
    written (the score came after the output, which stayed)."""
    _, model = tiny_prior
    for name in ("dot.png", "dot_ref.png"):
        write_image(images / name, Picture(smooth_images(1, 8, seed=2)[0]))
    result = invoke("denoise", images / "dot.png", "--sigma", "10", "--ref", images / "dot_ref.png",
                    "-o", images / "o.png", "--model", model)
    assert result.exit_code == 2 and "too small to score" in result.output and "leave out --ref" in result.output, \
        result.output
    assert not (images / "o.png").exists()


def test_a_failure_in_a_batch_names_its_file(images, tiny_prior):
    """A 1x1 image's noise cannot be estimated: the line says which of the batch's files it is."""
    _, model = tiny_prior
    write_image(images / "noisy" / "dot.png", Picture(np.full((1, 1, 3), 0.5, np.float32)))
    result = invoke("denoise", images / "noisy", "-o", images / "out", "--model", model, "--steps", "1")
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "too small" in line)
    assert "dot.png" in line and "sigma" in line, result.output
    assert len(list((images / "out").glob("im*.png"))) == 3


def test_a_sensor_noise_given_is_not_said_to_be_estimated(images, tiny_prior):
    _, model = tiny_prior
    src = images / "noisy" / "im0.png"
    given = invoke("denoise", src, "-o", images / "a.png", "--noise", "poisson-gaussian:0.01,0.0004",
                   "--model", model, "--steps", "1")
    assert given.exit_code == 0 and "estimated" not in given.output, given.output
    found = invoke("denoise", src, "-o", images / "b.png", "--noise", "poisson-gaussian", "--model", model,
                   "--steps", "1")
    assert found.exit_code == 0 and "estimated Poisson-Gaussian noise" in found.output, found.output


def test_a_batch_output_named_like_an_image_is_refused(images, tiny_prior, no_restoration):
    _, model = tiny_prior
    result = invoke("denoise", images / "noisy", "-o", images / "out" / "x.png", "--model", model, "--sigma", "25")
    assert result.exit_code == 2 and "names a folder, not an image file" in result.output, result.output
    assert not (images / "out").exists()
    inside = invoke("denoise", images / "noisy" / "im0.png", "-o", images / "noisy" / "im1.png" / "o.png",
                    "--model", model, "--sigma", "25")
    assert inside.exit_code == 2 and "is a file, not a folder" in inside.output, inside.output


@pytest.mark.parametrize("options,needle", [
    (["--noise", "poisson-gaussian:0.01,0.0004", "--sigma", "25"], "--sigma: is the one level of Gaussian noise"),
    (["--noise", "auto", "--sigma", "25"], "noise 'auto' does not take"),
    (["--sigma", "25", "--steps", "10001"], "--steps: must be 0 to 10000"),
    (["--noise", "poisson-gaussian:"], "'poisson-gaussian:': needs two numbers A,B after the colon"),
    (["--noise", "poisson-gaussian:0.1"], "needs two numbers A,B after the colon"),
    (["--noise", "poisson-gaussian:0.1,-1"], "'poisson-gaussian:0.1,-1': B -1 outside [0, 1]; give"),
    (["--noise", "poisson-gaussian:2,nan"], "A 2 and B nan outside [0, 1]"),
    (["--noise", "poisson-gaussian:0,0"], "A and B both 0; give"),
    (["--max-megapixels", "0"], "--max-megapixels: must be a positive number"),
])
def test_contradicting_or_runaway_options_are_refused_before_any_work(images, tiny_prior, no_restoration,
                                                                      options, needle):
    _, model = tiny_prior
    result = invoke("denoise", images / "noisy" / "im0.png", "-o", images / "a.png", "--model", model, *options)
    assert result.exit_code == 2 and needle in result.output, result.output
    assert len(_error_lines(result)) == 1 and not (images / "a.png").exists()


def test_an_output_format_that_drops_alpha_or_depth_says_so(images, tiny_prior):
    _, model = tiny_prior
    clean = read_image(images / "clean" / "im0.png").pixels
    alpha = np.linspace(0, 1, clean.shape[0] * clean.shape[1], dtype=np.float32).reshape(clean.shape[:2])
    write_image(images / "rgba.png", Picture(clean, alpha=alpha))
    write_image(images / "deep.png", Picture(clean, bit_depth=16))
    for name, said in (("rgba", "hold no transparency"), ("deep", "hold no 16-bit depth")):
        jpeg = invoke("denoise", images / f"{name}.png", "-o", images / f"{name}_out.jpg", "--model", model,
                      "--sigma", "25", "--steps", "0")
        assert jpeg.exit_code == 0 and said in jpeg.output, jpeg.output
        png = invoke("denoise", images / f"{name}.png", "-o", images / f"{name}_out.png", "--model", model,
                     "--sigma", "25", "--steps", "0")
        assert png.exit_code == 0 and "hold no" not in png.output, png.output
    # A colour profile and EXIF are kept in PNG and JPEG; a TIFF output says it drops them, and a
    # file of several pages says that only its first is restored.
    from PIL import Image, ImageCms
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x8298] = "(c) A. Photographer"
    pages = [Image.fromarray((clean * 255).astype(np.uint8)), Image.fromarray((clean * 127).astype(np.uint8))]
    pages[0].save(images / "scan.tif", save_all=True, append_images=pages[1:], icc_profile=icc, exif=exif)
    for suffix in (".png", ".jpg", ".tif"):
        result = invoke("denoise", images / "scan.tif", "-o", images / f"scan_out{suffix}", "--model", model,
                        "--sigma", "25", "--steps", "0")
        assert result.exit_code == 0 and "only the first of its 2 pages" in result.output, result.output
        with Image.open(images / f"scan_out{suffix}") as out:
            kept = out.info.get("icc_profile") == icc and out.getexif().get(0x8298) == "(c) A. Photographer"
        assert kept == (suffix != ".tif")
        assert ("no colour profile (ICC) and no EXIF" in result.output) == (suffix == ".tif"), result.output
    cv2.imwrite(str(images / "float.tif"), clean[:, :, ::-1].astype(np.float32))    # no format written keeps floats
    for suffix, bits in ((".tif", 16), (".jpg", 8)):
        result = invoke("denoise", images / "float.tif", "-o", images / f"float_out{suffix}", "--model", model,
                        "--sigma", "25", "--steps", "0")
        said = f"floating-point pixels are written as {bits}-bit integers"
        assert result.exit_code == 0 and said in result.output and "hold no" not in result.output, result.output


def test_ctrl_c_in_a_batch_keeps_and_reports_what_was_finished(images, tiny_prior, monkeypatch):
    import restore.cli
    _, model = tiny_prior
    real = restore.cli.file_restorer

    def stopping(*args, **kwargs):
        restore_fn = real(*args, **kwargs)

        def fn(picture, job, progress):
            if job.source.name == "im1.png":
                raise KeyboardInterrupt
            return restore_fn(picture, job, progress)
        return fn
    monkeypatch.setattr(restore.cli, "file_restorer", stopping)
    out, report = images / "out", images / "report.json"
    args = ("denoise", images / "noisy", "-o", out, "--model", model, "--sigma", "25", "--steps", "0",
            "--ref", images / "clean", "--json", report, "-q")
    result = invoke(*args)
    assert result.exit_code == 130, result.output
    assert "interrupted: 1 of 3 files done" in result.output and "--skip-existing" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["im0.png"]          # nothing half-written
    done = json.loads(report.read_text())
    assert [Path(r["source"]).name for r in done] == ["im0.png"] and done[0]["psnr"] > 0
    monkeypatch.setattr(restore.cli, "file_restorer", real)
    again = invoke(*args[:-3], "--json", images / "rest.json", "-q", "--skip-existing")     # the rest
    assert again.exit_code == 0 and sorted(p.name for p in out.iterdir()) == ["im0.png", "im1.png", "im2.png"]


def test_an_upscaled_scan_keeps_its_size_on_paper(images, tiny_prior):
    from PIL import Image
    _, model = tiny_prior
    clean = (read_image(images / "clean" / "im0.png").pixels * 255).astype(np.uint8)
    Image.fromarray(clean).save(images / "scan.png", dpi=(300, 300))
    result = invoke("superres", images / "scan.png", "--scale", "2", "--steps", "0", "--model", model,
                    "-o", images / "big.png", "-q")
    assert result.exit_code == 0, result.output
    with Image.open(images / "big.png") as out:
        assert out.size == (64, 64) and np.allclose(out.info["dpi"], (600, 600), atol=0.01)


@pytest.mark.parametrize("args, named", [
    (["denoise"], "'SOURCE'"),
    (["denoise", "x.png", "--bogus"], "--bogus"),
    (["denoise", "x.png", "--steps", "abc"], "--steps"),
    (["inpaint", "x.png"], "--mask"),
    (["frobnicate"], "frobnicate"),
    (["denoise", "x.png", "--sigma"], "--sigma"),
])
def test_usage_errors_take_one_line(args, named, capsys):
    """The console script (restore.cli.command_line) puts click's own usage errors on one line naming the
    argument, like every other error, and exits 2 before any work."""
    from restore.cli import command_line
    with pytest.raises(SystemExit) as stopped:
        command_line(args)
    out, err = capsys.readouterr()
    assert stopped.value.code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], err
    assert "╭" not in err and "Traceback" not in err


@pytest.mark.parametrize("args", [
    ["denoise", "{long}.png"],
    ["denoise", "{sample}", "-o", "{tmp}/{long}.png"],
    ["train", "{samples}", "--out", "{tmp}/{long}.pt"],
    ["bench", "--quick", "-o", "{tmp}/{long}"],
])
def test_a_name_too_long_for_the_file_system_takes_one_line(tmp_path, capsys, args):
    """Any path argument with a name over 255 bytes ended in a traceback (OSError: File name too long)."""
    from restore.cli import command_line
    sample = Path(__file__).resolve().parents[1] / "samples" / "butterfly_noisy.png"
    with pytest.raises(SystemExit) as stopped:
        command_line([a.format(long="a" * 300, tmp=tmp_path, sample=sample, samples=sample.parent) for a in args])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert stopped.value.code == 2 and len(lines) == 1 and "name too long" in lines[0], err
    assert "a" * 300 in lines[0] and list(tmp_path.iterdir()) == []


def test_console_script_passes_statuses_on(tmp_path, capsys):
    """command_line() exits with what the command said: 0 for help, 2 for a missing input (restore's own
    one-line error)."""
    from restore.cli import command_line
    with pytest.raises(SystemExit) as stopped:
        command_line(["denoise", "--help"])
    assert stopped.value.code == 0 and "SOURCE" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stopped:
        command_line(["denoise", str(tmp_path / "missing.png")])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing.png'}: no such file or folder; check the path"


def test_python_dash_m_runs_the_command(tmp_path):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "restore", "denoise"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == "error: Missing argument 'SOURCE'. (see 'restore denoise --help')"


def test_captions_survive_an_upscale(images, tiny_prior):
    """A photograph's XMP caption and PNG text come through `superres` into its output; what the
    packet said of the old size does not."""
    from PIL import Image, PngImagePlugin
    _, model = tiny_prior
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
           'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:PixelXDimension="32"><dc:rights><rdf:Alt>'
           '<rdf:li xml:lang="x-default">(c) Town archive</rdf:li></rdf:Alt></dc:rights></rdf:Description>'
           '</rdf:RDF></x:xmpmeta>')
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp)
    info.add_text("Author", "Town archive")
    Image.open(images / "clean" / "im0.png").save(images / "scan.png", pnginfo=info)
    result = invoke("superres", images / "scan.png", "--scale", "2", "-o", images / "big.png", "--model", model,
                    "--steps", "0")
    assert result.exit_code == 0, result.output
    with Image.open(images / "big.png") as out:
        assert out.size == (64, 64) and out.text["Author"] == "Town archive"
        assert "(c) Town archive" in out.text["XML:com.adobe.xmp"] and "PixelXDimension" not in out.text["XML:com.adobe.xmp"]


def test_a_batch_table_names_files_below_their_shared_folder():
    """`a.png` and `sub/a.png` of one batch are told apart in the table of scores."""
    from restore.cli import _short_names
    assert _short_names([Path("in/a.png"), Path("in/sub/a.png")]) == ["a.png", str(Path("sub/a.png"))]
    assert _short_names([Path("/tmp/x/photo.png")]) == ["photo.png"]


def test_a_log_file_gets_each_files_line_and_no_bars(images, tiny_prior, monkeypatch):
    """Written to a log file or a pipe (a cluster's job), a batch draws no bars (each redraw would be
    one more carriage return on one line) and says each file it wrote on a line of its own."""
    _, model = tiny_prior
    monkeypatch.setattr("restore.cli._on_terminal", lambda: False)
    result = invoke("denoise", images / "noisy", "-o", images / "out", "--model", model, "--sigma", "25",
                    "--steps", "1")
    assert result.exit_code == 0, result.output
    assert "%|" not in result.output and "\r" not in result.output, result.output
    wrote = [line for line in result.output.splitlines() if line.startswith("wrote ")]
    assert sorted(Path(line.split()[1]).name for line in wrote) == ["im0.png", "im1.png", "im2.png"]


def test_training_in_a_log_file_says_each_checkpoint_on_a_line_and_draws_no_bars(images, monkeypatch):
    """A cluster job's log got the training bar's redraws run into one line, and no word otherwise."""
    monkeypatch.setattr("restore.cli._on_terminal", lambda: False)
    out = images / "logged.pt"
    result = invoke("train", images / "clean", "--out", out, "--width", "8", "--latent", "2", "--crop", "16",
                    "--batch-size", "2", "--steps", "4", "--checkpoint-every", "2")
    assert result.exit_code == 0, result.output
    assert "%|" not in result.output and "\r" not in result.output, result.output
    said = [line for line in result.output.splitlines() if line.startswith("step ")]
    assert [line.split(",")[0] for line in said] == ["step 2/4", "step 4/4"], result.output
    assert all(line.endswith(f"; wrote {out}") and " dB" in line for line in said), said
    quiet = invoke("train", images / "clean", "--out", images / "quiet.pt", "--width", "8", "--latent", "2",
                   "--crop", "16", "--batch-size", "2", "--steps", "2", "-q")
    assert quiet.exit_code == 0 and "step 2/2" not in quiet.output, quiet.output


@pytest.mark.parametrize("content, needle", [
    (lambda p: p.write_text("not an archive"), "not a pack of crops"),
    (lambda p: np.savez(p, other=np.zeros((2, 8, 8, 3), np.uint8)), "holds no 'crops' array"),
    (lambda p: np.savez(p, crops=np.zeros(3, np.uint8)), "its crops are uint8 of shape (3,)"),
    (lambda p: np.savez(p, crops=np.zeros((3, 16, 16, 5), np.uint8)), "of shape (3, 16, 16, 5)"),
    (lambda p: np.savez(p, crops=np.zeros((0, 16, 16, 3), np.uint8)), "at least one"),
    (lambda p: np.savez(p, crops=np.zeros((2, 8, 8, 3), np.uint8)), "no crop of the pack is at least 16x16"),
])
def test_train_refuses_a_file_that_is_no_pack_of_crops(tmp_path, content, needle):
    """A broken .npz ended in a traceback (a KeyError, an IndexError, a convolution's channels) or in
    a fix that did not fit ("lower --crop")."""
    pack = tmp_path / "crops.npz"
    content(pack)
    result = invoke("train", pack, "--out", tmp_path / "p.pt", "--width", "8", "--latent", "2", "--crop", "16",
                    "--batch-size", "2", "--steps", "1")
    errors = _error_lines(result)
    assert result.exit_code == 2 and len(errors) == 1 and needle in errors[0], result.output
    assert "Traceback" not in result.output
    assert ("lower --crop" in errors[0]) == ("no crop" in needle)      # the one fix that fits each
    assert not (tmp_path / "p.pt").exists()
