"""JPEG artefact removal: the quantisation read from files, the constraint's projection, the task end to end."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import restore
from restore.cli import app
from restore.fidelity import JPEGConstraint, unclipped
from restore.jpeg import NotJPEGError, Quantisation, block_dct, from_ycbcr, to_ycbcr
from restore.tasks.dejpeg import Dejpeg, jpeg_round_trip


def _photo(h=40, w=56, seed=0):
    """Smooth colour shapes with edges (blocks and ringing show on them), saturated colours included."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    image = np.stack([0.5 + 0.4 * np.sin(6 * xx + 2 * yy), 0.4 + 0.3 * np.cos(5 * yy), 0.5 + 0.3 * xx], -1)
    image[h // 4:h // 2, w // 5:w // 2] = (253 / 255, 2 / 255, 253 / 255)        # magenta
    image[h // 2:, w // 2:] = (0, 1, 1)                                          # cyan
    return np.clip(image + rng.normal(0, 0.01, image.shape), 0, 1).astype(np.float32)


def _jpeg(path, image, quality, subsampling=2):
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(path, "JPEG", quality=quality,
                                                                 subsampling=subsampling)
    return path


def test_quantisation_is_read_from_the_file(tmp_path):
    image = _photo()
    q10 = Quantisation.from_file(_jpeg(tmp_path / "a.jpg", image, 10))
    assert q10.chroma_cell == (2, 2) and q10.block == 16 and abs(q10.quality - 10) < 2
    assert q10.tables[0][0, 0] == 80          # the standard luminance table's 16, scaled x5 at quality 10
    q444 = Quantisation.from_file(_jpeg(tmp_path / "b.jpg", image, 90, subsampling=0))
    assert q444.chroma_cell == (1, 1) and q444.block == 8 and abs(q444.quality - 90) < 2
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "gray.jpg", quality=50)
    gray = Quantisation.from_file(tmp_path / "gray.jpg")
    assert len(gray.tables) == 1 and gray.block == 8
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "c.png")
    with pytest.raises(NotJPEGError, match="not a JPEG"):
        Quantisation.from_file(tmp_path / "c.png")
    with pytest.raises(NotJPEGError, match="no such file"):
        Quantisation.from_file(tmp_path / "missing.jpg")


def test_colour_transform_and_block_dct_are_inverted_exactly():
    x = torch.rand(2, 3, 16, 24, dtype=torch.float64)
    assert torch.allclose(from_ycbcr(to_ycbcr(x)), x)
    plane = torch.randn(2, 1, 16, 24, dtype=torch.float64)
    assert torch.allclose(block_dct(block_dct(plane), inverse=True), plane)
    # Orthonormal: energy is kept, block by block.
    assert torch.allclose((block_dct(plane) ** 2).sum(), (plane**2).sum())


@pytest.mark.parametrize("subsampling", [0, 1, 2], ids=["4:4:4", "4:2:2", "4:2:0"])
def test_projection_lands_in_the_files_set_and_keeps_what_is_in_it(subsampling):
    clean = _photo(32, 48)
    decoded, quantisation = jpeg_round_trip(clean, 20, subsampling=subsampling)
    term = JPEGConstraint(quantisation)
    y = torch.from_numpy(decoded).permute(2, 0, 1)[None].double()
    # The decoded image as its coefficients made it (before the decoder's clip, where the saturated
    # colours overshoot) encodes to its own file: re-quantised, every coefficient is in its bin.
    assert float(term.value(unclipped(y, term.planes), y)) < 1e-6 * y.numel()
    # Anything projected lands in the set (a gray image, noise, the clean image).
    for start in (torch.full_like(y, 0.5), torch.rand_like(y), torch.from_numpy(clean).permute(2, 0, 1)[None].double()):
        projected = term.project(start, y)
        assert float(term.value(projected, y)) < 1e-9 * y.numel()
    # A point already in the set (a file whose colours the decoder did not clip) does not move.
    decoded, quantisation = jpeg_round_trip(0.1 + 0.8 * clean, 20, subsampling=subsampling)
    term, y = JPEGConstraint(quantisation), torch.from_numpy(decoded).permute(2, 0, 1)[None].double()
    assert float(term.value(y, y)) < 1e-6 * y.numel() and torch.allclose(term.project(y, y), y, atol=1e-9)


def test_dejpeg_improves_a_jpeg_and_stays_consistent_with_its_file(tmp_path, tiny_prior):
    model, _ = tiny_prior
    clean = _photo(56, 72, seed=3)
    path = _jpeg(tmp_path / "in.jpg", clean, 15)
    decoded = np.asarray(Image.open(path), dtype=np.float32) / 255
    out = restore.dejpeg(path, prior=model, steps=5)
    assert out.shape == clean.shape and np.isfinite(out).all()
    # The output is an image that the file's encoder would turn into (nearly) the same file.
    term = JPEGConstraint(Quantisation.from_file(path))
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].double()
    excess = float(term.value(as_tensor(np.round(out * 255) / 255), as_tensor(decoded)))
    assert excess < 0.02 * clean.size, excess
    # Tiles smaller than the image start on the encoder's 16-pixel grid, so each keeps the file's blocks.
    tiled = restore.dejpeg(path, prior=model, steps=5, tile=32)
    excess = float(term.value(as_tensor(np.round(tiled * 255) / 255), as_tensor(decoded)))
    assert excess < 2e-4 * clean.size, excess
    # Same through the array API with the quantisation given.
    same = restore.dejpeg(decoded, quantisation=Quantisation.from_file(path), prior=model, steps=5)
    assert np.array_equal(same, out)
    with pytest.raises(ValueError, match="quantisation"):
        restore.dejpeg(decoded, prior=model)


def test_dejpeg_command_writes_png_by_default_and_refuses_other_files(tmp_path, tiny_prior):
    _, model_path = tiny_prior
    src = _jpeg(tmp_path / "photo.jpg", _photo(), 10)
    before = src.read_bytes()
    result = CliRunner().invoke(app, ["dejpeg", str(src), "--model", str(model_path), "--steps", "2", "-q"])
    assert result.exit_code == 0, result.output
    written = tmp_path / "photo_dejpeg.png"
    assert written.is_file() and Image.open(written).format == "PNG"
    assert src.read_bytes() == before
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "flat.png")
    bad = CliRunner().invoke(app, ["dejpeg", str(tmp_path / "flat.png"), "--model", str(model_path), "-q"])
    assert bad.exit_code == 2 and "not a JPEG" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "flat_dejpeg.png").exists()
    # A float TIFF, which Pillow cannot open: not a JPEG, said alone (no note on its floats first).
    import cv2
    cv2.imwrite(str(tmp_path / "float.tif"), np.full((16, 16, 3), 0.5, np.float32))
    bad = CliRunner().invoke(app, ["dejpeg", str(tmp_path / "float.tif"), "--model", str(model_path), "-q"])
    said = [line for line in bad.output.strip().splitlines() if not line.startswith("note: --model")]
    assert bad.exit_code == 2 and said == [
        f"error: {tmp_path / 'float.tif'}: not a JPEG file; dejpeg restores JPEG files, use denoise for other images"]
    # A folder: the JPEGs are restored into PNGs, the PNG is reported and does not stop the batch.
    folder = tmp_path / "batch"
    folder.mkdir()
    _jpeg(folder / "a.jpg", _photo(seed=1), 20)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "b.png")
    batch = CliRunner().invoke(app, ["dejpeg", str(folder), "-o", str(tmp_path / "out"), "--model", str(model_path),
                                     "--steps", "1", "-q"])
    assert batch.exit_code == 1 and "not a JPEG" in batch.output
    assert (tmp_path / "out" / "a.png").is_file() and not (tmp_path / "out" / "b.png").exists()


def test_dejpeg_says_when_the_prior_never_learned_jpeg_files(tmp_path, tiny_prior):
    from restore.model import save_checkpoint
    model, model_path = tiny_prior
    src = _jpeg(tmp_path / "photo.jpg", _photo(), 10)
    save_checkpoint(tmp_path / "jpeg.pt", model.with_task_encoder("dejpeg"))
    told = {}
    for name, path in (("plain", model_path), ("jpeg", tmp_path / "jpeg.pt")):
        result = CliRunner().invoke(app, ["dejpeg", str(src), "-o", str(tmp_path / f"{name}.png"), "--model", str(path),
                                          "--steps", "0", "-q"])
        assert result.exit_code == 0, result.output
        told[name] = "no encoder trained on JPEG files" in result.output
    assert told == {"plain": True, "jpeg": False}


def test_denoise_points_to_dejpeg_on_a_heavily_compressed_jpeg(tmp_path, tiny_prior):
    _, model_path = tiny_prior
    heavy = _jpeg(tmp_path / "heavy.jpg", _photo(), 10)
    light = _jpeg(tmp_path / "light.jpg", _photo(), 90)
    said = CliRunner().invoke(app, ["denoise", str(heavy), "--model", str(model_path), "--sigma", "5", "-q"])
    assert said.exit_code == 0 and "restore dejpeg heavy.jpg" in said.output and "quality about 1" in said.output
    quiet = CliRunner().invoke(app, ["denoise", str(light), "--model", str(model_path), "--sigma", "5", "-q"])
    assert quiet.exit_code == 0 and "restore dejpeg" not in quiet.output


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_an_exif_turned_jpeg_is_projected_on_its_stored_blocks(tmp_path, orientation):
    """Phone photographs store their pixels turned and say so in EXIF: the blocks lie on the stored
    pixels, so the clean image (upright) projected onto the file's set barely moves."""
    from restore.images import read_image
    from restore.jpeg import from_stored
    stored = _photo(40, 56, seed=4)                       # sides off the 16-pixel grid
    image = Image.fromarray(np.round(stored * 255).astype(np.uint8))
    exif = image.getexif()
    exif[0x0112] = orientation
    path = tmp_path / "turned.jpg"
    image.save(path, "JPEG", quality=20, exif=exif)
    quantisation = Quantisation.from_file(path)
    assert quantisation.orientation == orientation
    decoded = read_image(path).pixels                     # upright, as readers show it
    assert decoded.shape[:2] == (56, 40) if orientation in (6, 8) else (40, 56)
    task = Dejpeg().resolve(decoded, quantisation)
    term = JPEGConstraint(quantisation)
    stored_clean = torch.from_numpy(np.ascontiguousarray(stored)).permute(2, 0, 1)[None].double()
    y = torch.from_numpy(task.to_stored(decoded)).permute(2, 0, 1)[None].double()
    moved = (term.project(stored_clean, y) - stored_clean).abs().mean()
    assert moved < 1 / 255
    assert np.array_equal(from_stored(task.to_stored(decoded), orientation), decoded)


def test_a_batch_never_gives_two_files_one_output(tmp_path):
    from restore.batch import plan
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.jpg", "a.jpeg", "b.jpg"):
        _jpeg(folder / name, _photo(), 50)
    jobs = plan(folder, tmp_path / "out", "dejpeg", extension=".png").jobs
    assert [j.output.name for j in jobs] == ["a.png", "a.png", "b.png"]
    assert [bool(j.problem) for j in jobs] == [False, True, False] or [bool(j.problem) for j in jobs] == [True, False, False]


def test_dejpeg_is_never_worse_than_the_decoded_file_at_any_quality():
    """The shipped prior cannot draw the detail a lightly compressed file keeps; the weighted mean of
    its estimate and the decoded file (both in the file's set, so the mean is too) beats the file
    from heavy to light compression and is no worse at quality 90, saturated colours included."""
    from restore.fidelity import prior_share
    from restore.images import read_image
    from restore.metrics import psnr
    clean = read_image("samples/lake.png").pixels[64:160, 32:128]
    clean[8:40, 8:40] = (253 / 255, 2 / 255, 253 / 255)                 # magenta the prior never saw
    u8 = lambda a: np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
    shares = []
    for quality in (10, 40, 75, 90):
        decoded, quantisation = jpeg_round_trip(clean, quality)
        out = restore.dejpeg(decoded, quantisation=quantisation)
        gain = psnr(u8(clean), u8(out)) - psnr(u8(clean), u8(decoded))
        assert gain > (0.1 if quality < 90 else -0.005), (quality, gain)
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].double()
        excess = float(JPEGConstraint(quantisation).value(as_tensor(u8(out) / 255.0), as_tensor(decoded)))
        assert excess < 0.02 * clean.size, (quality, excess)
        shares.append(prior_share(quantisation))
    assert shares[0] == 1 and shares[-1] < 0.25 and shares == sorted(shares, reverse=True)


def test_where_the_decoder_clipped_the_pixels_are_found_as_the_file_made_them(monkeypatch):
    """A vivid photograph's file makes colours beyond [0, 1] (a saturated petal's, ringing past
    black), which the decoder clips; the clipped pixels' own coefficients are not the file's.
    Restored within the bins of the pixels as the file made them (``unclipped``), the flower's
    crop came out 0.6 dB nearer the image at quality 40 (37.67 against 37.06; the decoded file
    32.90); the pixels the decoder left inside stay within half a level."""
    import restore.fidelity.quantisation as fidelity
    from restore.images import read_image
    from restore.jpeg import Planes
    from restore.metrics import psnr
    photo = read_image("samples/flower.png").pixels[:96, :96]
    decoded, quantisation = jpeg_round_trip(photo, 40)
    assert ((decoded == 0) | (decoded == 1)).mean() > 0.05
    y = torch.from_numpy(np.ascontiguousarray(decoded)).permute(2, 0, 1)[None]
    found = fidelity.unclipped(y, Planes(quantisation))
    inside = (y > 0) & (y < 1)
    assert float((found - y)[inside].abs().max()) <= 0.5 / 255 + 1e-6 and float((found - y).abs().max()) > 2 / 255
    plain = y.clamp(0.1, 0.9)
    assert fidelity.unclipped(plain, Planes(quantisation)) is plain                   # nothing clipped
    restored = psnr(photo, restore.dejpeg(decoded, quantisation=quantisation))
    monkeypatch.setattr(fidelity, "unclipped", lambda y, planes: y)
    assert restored > psnr(photo, restore.dejpeg(decoded, quantisation=quantisation)) + 0.3


@pytest.mark.parametrize("colour", [(1, 0, 1), (0, 1, 1), (0.2, 1, 0.1)])
def test_a_flat_colour_the_prior_never_saw_comes_back_as_the_file_holds_it(colour):
    """Blocks the file holds as one colour keep the decoded colour: the prior moved flat saturated
    magenta's green from 3 to 7 levels at quality 10 (35.9 dB against the decoded file's 43.4).
    Where the file has detail, the restoration still changes it."""
    from restore.metrics import psnr
    clean = np.ones((64, 96, 3), np.float32) * np.array(colour, np.float32)
    clean[:, 64:] = _photo(64, 32)
    for quality in (10, 20):
        decoded, quantisation = jpeg_round_trip(clean, quality)
        out = restore.dejpeg(decoded, quantisation=quantisation)
        flat = (slice(8, 56), slice(8, 48))
        assert np.abs(out[flat] - decoded[flat]).max() <= 1.5 / 255, (quality, colour)
        assert psnr(clean[flat], out[flat]) >= psnr(clean[flat], decoded[flat]) - 0.01
        assert np.abs(out[:, 72:] - decoded[:, 72:]).mean() > 1 / 255     # the detail is restored
        assert np.isfinite(out).all()
    # A gentle gradient the file holds as steps of flat blocks is not flat: its blocks are still
    # smoothed away (33.3 -> 39.2 dB; with a flatness of 12 levels, 37.1).
    yy, xx = np.mgrid[0:64, 0:96] / 96.0
    gradient = np.stack([0.35 + 0.3 * xx, 0.45 + 0.2 * xx, 0.7 - 0.1 * yy], -1).astype(np.float32)
    decoded, quantisation = jpeg_round_trip(gradient, 10)
    assert psnr(gradient, restore.dejpeg(decoded, quantisation=quantisation)) > psnr(gradient, decoded) + 5


def test_a_coarse_files_colours_follow_the_luminance_within_its_set(monkeypatch):
    """The file keeps its colour at a quarter of the pixels, coarsely: guided by the restoration's
    luminance, the colour differences take its edges (the flower sample at quality 10: +0.33 dB
    before the restoration's own filter came after it, +0.27 now). The result stays in the file's
    set; a fine file's colour, and a grey file, are left alone."""
    from restore.images import read_image
    from restore.metrics import psnr
    clean = read_image("samples/flower.png").pixels
    decoded, quantisation = jpeg_round_trip(clean, 10)
    guided = psnr(clean, restore.dejpeg(decoded, quantisation=quantisation))
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()
    pilot, y = as_tensor(_photo()), as_tensor(jpeg_round_trip(_photo(), 10)[0])
    term = JPEGConstraint(jpeg_round_trip(_photo(), 10)[1])
    moved = term.colours_following_luminance(pilot, y)
    assert not torch.equal(moved, pilot) and float(term.value(moved, y)) < 0.02 * moved.numel()
    fine = JPEGConstraint(jpeg_round_trip(_photo(), 90)[1])
    assert torch.equal(fine.colours_following_luminance(pilot, y), pilot)
    grey = JPEGConstraint(jpeg_round_trip(_photo()[:, :, :1], 10)[1])
    assert torch.equal(grey.colours_following_luminance(pilot[:, :1], y[:, :1]), pilot[:, :1])
    three = pilot[:, :1].expand(-1, 3, -1, -1)                # a grey file as a colour prior gets it
    assert torch.equal(grey.colours_following_luminance(three, y[:, :1].expand(-1, 3, -1, -1)), three)
    monkeypatch.setattr(JPEGConstraint, "colours_following_luminance", lambda self, x, y: x)
    assert guided > psnr(clean, restore.dejpeg(decoded, quantisation=quantisation)) + 0.1


def test_mean_within_a_bin_is_the_cut_gaussians_mean_even_far_in_a_tail():
    from scipy.stats import truncnorm
    from restore.fidelity import mean_within
    mu = torch.tensor([0.0, 0.3, -0.45, 2.0, -9.0, 40.0, 0.0], dtype=torch.float64)
    low = torch.tensor([-0.5, -0.5, -0.5, 0.5, 2.5, -0.5, -0.5], dtype=torch.float64)
    sigma = torch.tensor([0.2, 0.05, 1.0, 0.3, 0.5, 1.0, 1e-4], dtype=torch.float64)
    mean = mean_within(mu, low, low + 1, sigma)
    a, b = ((low - mu) / sigma).numpy(), ((low + 1 - mu) / sigma).numpy()
    expected = truncnorm.mean(a, b, loc=mu.numpy(), scale=sigma.numpy())
    assert np.allclose(mean.numpy(), expected, atol=1e-6), (mean, expected)
    assert bool(((mean >= low) & (mean <= low + 1)).all())
    assert float(mean[-1]) == 0.0                            # a tiny error: the estimate itself, inside
    assert 2.5 < float(mean[4]) < 2.6 and 0.4 < float(mean[5]) <= 0.5       # far tails: near the facing edge
    in_float = mean_within(mu.float(), low.float(), low.float() + 1, sigma.float())
    # float32, 40 errors out: within 3e-4 of a step (the mixed-precision restorations' arithmetic).
    assert torch.isfinite(in_float).all() and np.allclose(in_float.numpy(), expected, atol=1e-3)


def test_a_restoration_lands_at_its_mean_within_each_bin(monkeypatch):
    """Each coefficient at its mean within its bin, given the restoration's error, rather than at
    the bin's nearest point: the flower and lake samples at quality 20, +0.10 / +0.11 dB; still in
    the file's set, and the decoded file (its coefficients near their bins' middles, but for the
    rounding of its pixels) barely moves (0.04 / 0.13 levels on average at quality 20)."""
    from restore.fidelity import quantisation as fidelity
    from restore.images import read_image
    from restore.metrics import psnr
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()
    for name in ("flower", "lake"):
        clean = read_image(f"samples/{name}.png").pixels
        decoded, quantisation = jpeg_round_trip(clean, 20)
        term = JPEGConstraint(quantisation)
        assert term.spread > 5
        y = as_tensor(decoded)
        assert float((term.project(y, y, spread=term.spread) - y).abs().mean()) < 0.2 / 255
        inside = term.project(torch.rand_like(y), y, spread=term.spread)
        assert float(term.value(inside, y)) < 1e-6 * y.numel()
        spread = restore.dejpeg(decoded, quantisation=quantisation)
        monkeypatch.setattr(fidelity, "ESTIMATE_SPREAD", 0.0)
        projected = restore.dejpeg(decoded, quantisation=quantisation)
        monkeypatch.undo()
        assert psnr(clean, spread) > psnr(clean, projected) + 0.05, name


def test_a_restorations_own_filter_keeps_what_recurs_within_the_files_set(monkeypatch):
    """The restoration filtered with itself as observation and pilot, projected into the file's set:
    the flower sample at quality 90 (where the colours are left alone) +0.64 dB, at 10 +0.18."""
    from restore.fidelity import quantisation as fidelity
    from restore.images import read_image
    from restore.metrics import psnr
    clean = read_image("samples/flower.png").pixels
    decoded, quantisation = jpeg_round_trip(clean, 90)
    filtered = restore.dejpeg(decoded, quantisation=quantisation)
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()
    # In the set but for what the clip to [0, 1] keeps out: the file makes some of the flower's
    # colours beyond it (:func:`unclipped`), which no image in [0, 1] reaches. The decoded file is
    # 500 times as far outside (measured: 0.20 against 107.6, squared steps, in all).
    term = JPEGConstraint(quantisation)
    outside = lambda x: float(term.value(as_tensor(x), as_tensor(decoded)))
    assert outside(filtered) < 0.01 * outside(decoded)
    quick = restore.dejpeg(decoded, quantisation=quantisation, quick=True)
    monkeypatch.setattr(JPEGConstraint, "self_filtered", lambda self, x, y, **options: x)
    without = restore.dejpeg(decoded, quantisation=quantisation)
    assert psnr(clean, filtered) > psnr(clean, without) + 0.3
    monkeypatch.setattr(fidelity, "JPEG_PASSES", 1)
    # quick leaves it out, and takes one pass
    assert np.array_equal(quick, restore.dejpeg(decoded, quantisation=quantisation))


def test_a_jpeg_takes_a_second_pass_of_its_filter_its_groups_between_the_firsts(monkeypatch):
    """What the first pass left of the blocks the second's groups, placed between the first's, see
    again: the flower sample at quality 10 +0.28 dB (measured)."""
    from restore.fidelity import quantisation as fidelity
    from restore.images import read_image
    from restore.metrics import psnr
    clean = read_image("samples/flower.png").pixels
    decoded, quantisation = jpeg_round_trip(clean, 10)
    calls, filter = [], fidelity.empirical_wiener

    def recording(*args, shifted=False, **kwargs):
        calls.append(shifted)
        return filter(*args, shifted=shifted, **kwargs)
    monkeypatch.setattr(fidelity, "empirical_wiener", recording)
    two = psnr(clean, restore.dejpeg(decoded, quantisation=quantisation))
    assert calls == [False, True]
    monkeypatch.setattr(fidelity, "JPEG_PASSES", 1)
    one = psnr(clean, restore.dejpeg(decoded, quantisation=quantisation))
    assert two > one + 0.15


def test_a_jpegs_own_filter_keeps_its_groups_estimate_without_the_choice_by_blocks(monkeypatch):
    """The choice of windows by blocks scores estimates by Stein's risk under white noise, which a
    restoration filtered as its own observation does not carry: the flower sample at quality 90
    +0.13 dB without it (measured)."""
    from restore.fidelity import quantisation as fidelity
    from restore.images import read_image
    from restore.metrics import psnr
    clean = read_image("samples/flower.png").pixels
    decoded, quantisation = jpeg_round_trip(clean, 90)
    alone = psnr(clean, restore.dejpeg(decoded, quantisation=quantisation))
    filter = fidelity.empirical_wiener
    monkeypatch.setattr(fidelity, "empirical_wiener", lambda *args, select=True, **kwargs: filter(*args, **kwargs))
    chosen = psnr(clean, restore.dejpeg(decoded, quantisation=quantisation))
    assert alone > chosen + 0.06


def test_the_guided_filter_keeps_a_linear_function_of_its_guide_and_smooths_the_rest():
    from restore.guided import guided_filter
    rng = torch.Generator().manual_seed(0)
    guide = torch.rand(1, 1, 32, 40, generator=rng)
    assert torch.allclose(guided_filter(guide, 0.3 * guide + 0.2, radius=3, eps=1e-6), 0.3 * guide + 0.2, atol=1e-3)
    noise = torch.rand(1, 2, 32, 40, generator=rng)
    flat = guided_filter(torch.full_like(guide, 0.5), noise, radius=3, eps=1e-4)
    assert float(flat.var()) < 0.2 * float(noise.var())             # no edges to follow: a box mean
    with pytest.raises(ValueError, match="guide"):
        guided_filter(noise, noise, radius=3, eps=1e-4)
    with pytest.raises(ValueError, match="radius"):
        guided_filter(guide, noise, radius=0, eps=1e-4)


def test_the_latent_mode_is_refused_before_any_work(tmp_path, tiny_prior, monkeypatch):
    """A JPEG's quantisation set has no gradient: --mode latent is refused by name, before a file is read."""
    import restore.pipeline
    from restore.pipeline import SolverSettings
    _, model_path = tiny_prior
    src = _jpeg(tmp_path / "photo.jpg", _photo(), 10)
    monkeypatch.setattr(restore.pipeline, "resolve", lambda *a, **k: pytest.fail("a restoration started"))
    result = CliRunner().invoke(app, ["dejpeg", str(src), "--model", str(model_path), "--mode", "latent", "-q"])
    assert result.exit_code == 2 and "--mode: dejpeg searches in the joint mode only" in result.output, result.output
    assert not (tmp_path / "photo_dejpeg.png").exists()
    with pytest.raises(ValueError, match="joint mode only"):
        restore.pipeline.restore(np.zeros((16, 16, 3), np.float32), Dejpeg(quantisation=Quantisation.from_file(src)),
                                 settings=SolverSettings(prior=str(model_path), mode="latent"))


def _thumbnail(clean, factor, quality):
    """``clean`` made ``factor`` times smaller (as ``superres`` models it), then a JPEG of ``quality``."""
    from restore.tasks.superres import Superres
    small = Superres(scale=factor).physics(clean.shape[:2], None).A(
        torch.from_numpy(np.ascontiguousarray(clean)).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    return jpeg_round_trip(small, quality)


@pytest.mark.parametrize("quality", [20, 50])
def test_a_small_jpeg_is_upscaled_after_its_rounding_is_undone(quality):
    """A thumbnail's blocks upscaled as they are come out larger, as the prior takes them for detail
    (here below the plain bicubic upscale); its rounding undone first within the file's tables, the
    upscale is far better (held-out crops, x4 at quality 30: 24.02 dB against 22.30 and bicubic 22.49)."""
    from restore.baselines import bicubic
    from restore.images import read_image
    from restore.metrics import psnr
    from restore.pipeline import restore as run
    from restore.tasks.superres import Superres
    clean = read_image("samples/flower.png").pixels[:128, :128]
    decoded, quantisation = _thumbnail(clean, 4, quality)
    task = Superres(scale=4)
    u8 = lambda a: np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
    score = lambda a: psnr(u8(clean), u8(a), crop=4)
    with_file = score(run(decoded, task, companion=quantisation))
    assert with_file > score(run(decoded, task)) + 2 and with_file > score(bicubic(decoded, 4)) + 2
    assert task.resolve(decoded, quantisation).outer_task().quantisation is quantisation
    assert task.resolve(decoded).outer_task() is None


def test_superres_of_a_jpeg_file_undoes_its_rounding_first(tmp_path, tiny_prior):
    """On the command line the file's tables are read: the restoration of the JPEG's rounding is a
    stage of its own, named so; the same pixels as a PNG go straight to the upscale."""
    _, model_path = tiny_prior
    decoded, _ = _thumbnail(_photo(64, 64), 2, 30)
    Image.fromarray(np.round(decoded * 255).astype(np.uint8)).save(tmp_path / "t.png")
    Image.fromarray(np.round(decoded * 255).astype(np.uint8)).save(tmp_path / "t.jpg", quality=30)
    stages = {}
    for name in ("t.jpg", "t.png"):
        result = CliRunner().invoke(app, ["superres", str(tmp_path / name), "--scale", "2", "--model", str(model_path),
                                          "--steps", "1", "-o", str(tmp_path / f"{name}.out.png")])
        assert result.exit_code == 0, result.output
        assert Image.open(tmp_path / f"{name}.out.png").size == (64, 64)
        stages[name] = "dejpeg first: the prior" in result.output
    assert stages == {"t.jpg": True, "t.png": False}
    # The digits prior takes tiles of its one size, which cannot follow the file's blocks: the JPEG
    # is upscaled as it is, as before.
    Image.fromarray(np.round(decoded[:14, :14, 0] * 255).astype(np.uint8)).save(tmp_path / "digit.jpg", quality=30)
    digit = CliRunner().invoke(app, ["superres", str(tmp_path / "digit.jpg"), "--scale", "2", "--model", "digits",
                                     "--steps", "1", "-o", str(tmp_path / "digit.png")])
    assert digit.exit_code == 0 and "dejpeg first" not in digit.output, digit.output
    assert Image.open(tmp_path / "digit.png").size == (28, 28)


def test_a_blurred_jpeg_is_deblurred_after_its_rounding_is_undone():
    """Deblurred as it is, a blurred photograph's JPEG has its blocks sharpened, below the file
    itself at quality 30; its rounding undone first, well above (held-out crops: 27.28 dB against
    23.78, the file 25.79)."""
    from restore.conditions import blurred
    from restore.images import read_image
    from restore.metrics import psnr
    from restore.pipeline import restore as run
    from restore.tasks.deblur import Deblur
    clean = read_image("samples/flower.png").pixels[:96, :96]
    task = Deblur(kernel="gaussian:2", sigma=3)
    decoded, quantisation = jpeg_round_trip(blurred(task)(clean, np.random.default_rng(0)).pixels, 30)
    u8 = lambda a: np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
    score = lambda a: psnr(u8(clean), u8(a))
    with_file = score(run(decoded, Deblur(kernel="gaussian:2"), companion=quantisation))
    assert with_file > score(run(decoded, Deblur(kernel="gaussian:2"))) + 1 and with_file > score(decoded) + 0.5


def test_a_noisy_jpeg_is_denoised_after_its_rounding_is_undone():
    """A camera's JPEG holds noise and blocks: denoised as it was, the blocks stayed (held-out crops,
    noise 5 at quality 30: 30.49 dB, the file 30.46); with the rounding undone first, 32.07."""
    from restore.images import read_image
    from restore.metrics import psnr
    from restore.pipeline import restore as run
    from restore.tasks.denoise import Denoise
    clean = read_image("samples/flower.png").pixels[:96, :96]
    noisy = clean + np.random.default_rng(0).normal(0, 5 / 255, clean.shape)
    decoded, quantisation = jpeg_round_trip(noisy, 30)
    task = Denoise().resolve(decoded, quantisation)
    u8 = lambda a: np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
    score = lambda a: psnr(u8(clean), u8(a))
    first = score(run(decoded, task))
    assert first > score(run(decoded, replace(task, quantisation=None))) + 0.5 and first > score(decoded) + 1


def test_a_prior_of_one_tile_size_off_the_blocks_is_refused_with_the_fix(tmp_path):
    """The digits prior restores tiles of 28 pixels: they cannot lie on a JPEG's 8 or 16-pixel blocks
    (it said 'unexpected StopIteration', then 'takes 28x28 images, got (112, 112)')."""
    src = _jpeg(tmp_path / "photo.jpg", _photo(), 30)
    result = CliRunner().invoke(app, ["dejpeg", str(src), "--model", "digits", "-q"])
    assert result.exit_code == 1 and "tiles of 28 pixels, which cannot lie on the JPEG's blocks of 16" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "photo_dejpeg.png").exists()


def test_a_jpeg_whose_tables_cannot_be_used_is_said_to_be_restored_as_its_pixels(tmp_path, tiny_prior):
    """A CMYK JPEG (or 4:1:1 chroma) is restored as its pixels, its rounding not undone: said so,
    where it was silent; a PNG says nothing of the kind."""
    _, model_path = tiny_prior
    rgb = Image.fromarray(np.round(_photo() * 255).astype(np.uint8))
    rgb.convert("CMYK").save(tmp_path / "inks.jpg", quality=40)
    rgb.save(tmp_path / "plain.png")
    said = {}
    for name in ("inks.jpg", "plain.png"):
        result = CliRunner().invoke(app, ["denoise", str(tmp_path / name), "--model", str(model_path), "--sigma", "5",
                                          "--steps", "0", "-q", "-o", str(tmp_path / f"{name}.out.png")])
        assert result.exit_code == 0, result.output
        said[name] = "its JPEG rounding is not undone first" in result.output
    assert said == {"inks.jpg": True, "plain.png": False}
