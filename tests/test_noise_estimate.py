"""Signal-dependent (Poisson-Gaussian) noise: the estimate of its variance a x + b."""
import numpy as np
import pytest

from restore.noise import estimate_poisson_gaussian


def _ramp(side=256):
    yy, xx = np.mgrid[0:side, 0:side] / side
    return np.stack([0.1 + 0.8 * xx, 0.2 + 0.6 * yy, 0.5 + 0.0 * xx], -1)


def test_poisson_gaussian_parameters_come_back_from_a_generated_image():
    """A smooth image with the noise of a small sensor (40 photo-electrons at white, read noise 0.02)
    gives its gain a within 10 % and its floor b within a factor of 2, clipping at 1 included."""
    rng = np.random.default_rng(0)
    a, b = 1 / 40, 0.02**2
    clean = _ramp()
    noisy = np.clip(rng.poisson(clean / a) * a + rng.normal(0, 0.02, clean.shape), 0, 1)
    est_a, est_b = estimate_poisson_gaussian(noisy)
    assert abs(est_a - a) < 0.1 * a and b / 2 < est_b < 2 * b


def _edgy(seed, side=256):
    """Ramps from near black with sharp-edged shapes of random colours at odd places: edges the
    noise estimate must see through, dark pixels that clipping at 0 shrinks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    clean = np.stack([0.02 + 0.9 * xx, 0.02 + 0.9 * yy, 0.5 * (xx + yy)], -1)
    for _ in range(60):
        t, l, s = rng.integers(0, side - 20, 3)
        clean[t:t + 3 + s % 40, l:l + 3 + (s // 7) % 40] = rng.random(3)
    return clean


def test_the_floor_comes_back_through_edges_and_clipping():
    """A small sensor's noise (gain 1/40, read noise 0.02) over images with edges and black: the
    gain within 10 % on every image, the floor (a sixth of the variance at 10 % grey) within 20 %
    on at least 4 of 5 (the previous estimate managed 1)."""
    a, b = 1 / 40, 0.02**2
    floors = []
    for seed in range(5):
        clean, rng = _edgy(seed), np.random.default_rng(seed + 10)
        noisy = np.round(np.clip(rng.poisson(clean / a) * a + rng.normal(0, 0.02, clean.shape), 0, 1) * 255) / 255
        est_a, est_b = estimate_poisson_gaussian(noisy)
        assert abs(est_a / a - 1) < 0.1, (seed, est_a / a)
        floors.append(est_b / b)
    assert sum(abs(f - 1) < 0.2 for f in floors) >= 4, floors


def test_gaussian_noise_has_no_signal_dependence():
    rng = np.random.default_rng(1)
    noisy = np.clip(_ramp() + rng.normal(0, 0.05, (256, 256, 3)), 0, 1)
    est_a, est_b = estimate_poisson_gaussian(noisy)
    assert est_a < 0.002 and abs(np.sqrt(est_b) - 0.05) < 0.005


def test_too_small_an_image_is_a_clear_error():
    with pytest.raises(ValueError, match="too small"):
        estimate_poisson_gaussian(np.zeros((6, 6, 3)))


def _sensor_photo(seed=0):
    """A generated photograph-like image (smooth shading and edges) with a small sensor's noise."""
    from skimage.transform import resize
    rng = np.random.default_rng(seed)
    coarse = rng.random((6, 6, 3))
    clean = np.clip(resize(coarse, (96, 96, 3), order=3) * 0.9 + 0.05, 0, 1)
    clean[30:60, 20:50] = (0.9, 0.85, 0.2)
    noisy = np.clip(rng.poisson(clean * 40) / 40 + rng.normal(0, 0.02, clean.shape), 0, 1)
    return clean.astype(np.float32), noisy.astype(np.float32)


def test_poisson_gaussian_denoising_beats_one_sigma_on_a_sensors_noise():
    """Shot noise grows with the signal: one sigma over-smooths the dark and under-smooths the bright."""
    import restore
    from restore.metrics import psnr
    clean, noisy = _sensor_photo()
    u8 = lambda v: np.round(np.clip(v, 0, 1) * 255).astype(np.uint8)
    one_sigma = psnr(u8(clean), u8(restore.denoise(noisy)))
    sensor = psnr(u8(clean), u8(restore.denoise(noisy, noise="poisson-gaussian")))
    given = psnr(u8(clean), u8(restore.denoise(noisy, noise=f"poisson-gaussian:{1 / 40},{0.02 ** 2}")))
    assert sensor > one_sigma + 0.3 and given > one_sigma + 0.3, (one_sigma, sensor, given)


def test_poisson_gaussian_without_shot_noise_is_gaussian():
    import torch

    from restore.fidelity import Gaussian, PoissonGaussian
    from restore.physics import Denoising
    y, z = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    assert torch.allclose(PoissonGaussian(0, 0.05**2).prox(z, y, Denoising(), 0.01),
                          Gaussian(0.05).prox(z, y, Denoising(), 0.01))
    with pytest.raises(ValueError):
        PoissonGaussian(0, 0)
    for a, b in ((2.0, 0.1), (0.1, 3.0), (float("nan"), 0.1)):       # levels in 0..255 units, or none
        with pytest.raises(ValueError, match=r"a and b must be from 0 to 1 \(\[0, 1\] units"):
            PoissonGaussian(a, b)


def test_noise_option_on_the_command_line(tmp_path):
    import json

    from typer.testing import CliRunner

    from restore.cli import app
    from restore.images import Picture, write_image
    _, noisy = _sensor_photo(1)
    write_image(tmp_path / "n.png", Picture(noisy))
    result = CliRunner().invoke(app, ["denoise", str(tmp_path / "n.png"), "--noise", "poisson-gaussian", "-q",
                                      "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert "estimated Poisson-Gaussian noise A" in result.output
    a, b = json.loads((tmp_path / "r.json").read_text())[0]["sensor"]
    assert 0.4 / 40 < a < 2.5 / 40 and b >= 0
    bad = CliRunner().invoke(app, ["denoise", str(tmp_path / "n.png"), "--noise", "poisson:1", "-q"])
    assert bad.exit_code == 2 and "--noise" in bad.output and "Traceback" not in bad.output


def test_deblur_takes_a_sensors_noise_too():
    """--noise works wherever a task takes --sigma: a blurred image with sensor noise deblurs under it."""
    import restore
    from restore.tasks import TASKS
    clean, _ = _sensor_photo(2)
    task = TASKS["deblur"](kernel="gaussian:1.5", noise=f"poisson-gaussian:{1 / 40},{0.02 ** 2}")
    from restore.conditions import blurred
    noisy = np.clip(blurred(task)(clean, np.random.default_rng(3)).pixels, 0, 1).astype(np.float32)
    a, b = task.sensor
    resolved = task.resolve(noisy)
    assert resolved.sensor == (a, b) and 1 <= resolved.sigma <= 255
    out = restore.deblur(noisy, kernel="gaussian:1.5", noise="poisson-gaussian", steps=2)
    assert out.shape == clean.shape and np.isfinite(out).all()


def _textured(seed, side=256):
    """Ramps from near black, three quarters of them under a strong fine grain (random, blurred by
    0.7 pixels, of deviation 0.2): the low quantile of each brightness's blocks lands in the grain."""
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    clean = np.stack([0.02 + 0.9 * xx, 0.02 + 0.9 * yy, 0.1 + 0.5 * xx * yy], -1)
    grain = gaussian_filter(rng.random((side, side)), 0.7)
    grain = (grain - grain.mean()) / grain.std() * 0.2
    clean[:, side // 4:] = np.clip(clean[:, side // 4:] + grain[:, side // 4:, None], 0, 1)
    return clean


def test_a_restoration_shows_the_blocks_where_the_noise_is_alone():
    """Under texture the estimate from the noisy image alone finds the gain 38-43 % high; with the
    restoration (here the clean image) choosing the smooth blocks, within 10 %, the floor within 50 %."""
    a, b = 1 / 40, 0.02**2
    for seed in range(3):
        clean, rng = _textured(seed), np.random.default_rng(seed + 20)
        noisy = np.clip(rng.poisson(clean / a) * a + rng.normal(0, 0.02, clean.shape), 0, 1)
        alone, _ = estimate_poisson_gaussian(noisy)
        est_a, est_b = estimate_poisson_gaussian(noisy, pilot=clean)
        assert alone > 1.3 * a                         # what the pilot is for
        assert abs(est_a / a - 1) < 0.1 and abs(est_b / b - 1) < 0.5, (seed, est_a / a, est_b / b)


def test_a_pilot_of_another_shape_is_refused():
    with pytest.raises(ValueError, match="pilot"):
        estimate_poisson_gaussian(np.zeros((32, 32, 3)), pilot=np.zeros((32, 32, 1)))


def test_a_clipped_sensors_moments_are_its_counts():
    """The mean and variance of clip(a K + N(0, b), 0, 1) as a million draws give them, at a few
    photons a pixel (where a Gaussian of variance a x + b leaves too little after clipping) and many."""
    from restore.noise import clipped_moments, clipped_sensor_moments
    a, b = 1 / 40, 0.02**2
    rng = np.random.default_rng(3)
    for x in (0.0, 0.01, 0.03, 0.3, 0.97, 1.4):
        draws = np.clip(rng.poisson(x / a, 10**6) * a + rng.normal(0, 0.02, 10**6), 0, 1)
        mean, variance = clipped_sensor_moments(np.array([x]), a, b)
        assert abs(mean[0] - draws.mean()) < 2e-4 and abs(variance[0] / draws.var() - 1) < 0.02, x
    gaussian = clipped_moments(np.array([0.03]), np.array([a * 0.03 + b]))[1][0]
    assert gaussian < 0.9 * clipped_sensor_moments(np.array([0.03]), a, b)[1][0]


def test_denoising_fits_an_estimated_sensor_again_on_a_first_restoration(monkeypatch):
    """``--noise poisson-gaussian`` without ``A, B``: the photo prior's first restoration chooses the
    smooth blocks (the gain within 10 %, measured 1 %, where the image alone put it 43 % high, and the
    floor within 30 %, measured 8 %, where it was 51 % high); given ``A, B``, or
    for a task whose observation is not the image itself, nothing more is restored."""
    import restore.pipeline as pipeline
    from restore.tasks import TASKS
    a, b = 1 / 40, 0.02**2
    clean, rng = _textured(0), np.random.default_rng(20)
    noisy = np.clip(rng.poisson(clean / a) * a + rng.normal(0, 0.02, clean.shape), 0, 1).astype(np.float32)
    denoise = TASKS["denoise"]
    assert denoise(noise="poisson-gaussian").resolve(noisy).sensor[0] > 1.3 * a
    refitted = pipeline.resolve(noisy, denoise(noise="poisson-gaussian"))
    assert abs(refitted.sensor[0] / a - 1) < 0.1 and abs(refitted.sensor[1] / b - 1) < 0.3, refitted.sensor

    def no_restoration(*args, **kwargs):
        raise AssertionError("a first restoration ran")
    monkeypatch.setattr(pipeline, "restore", no_restoration)
    assert pipeline.resolve(noisy, denoise(noise=f"poisson-gaussian:{a},{b}")).sensor == pytest.approx((a, b))
    deblur = pipeline.resolve(noisy, TASKS["deblur"](kernel="gaussian:1.5", noise="poisson-gaussian"))
    assert deblur.sensor == denoise(noise="poisson-gaussian").resolve(noisy).sensor


def test_a_large_image_is_sampled_in_a_grid_of_crops_for_the_first_restoration():
    from restore.pipeline import pilot_sample
    pixels = np.arange(2000 * 1500, dtype=np.float32).reshape(2000, 1500, 1)
    sample = pilot_sample(pixels)
    assert sample.shape == (15 * 256, 256, 1)                  # 5 rows of 3 in the image's proportions
    assert np.array_equal(sample[:256], pixels[:256, :256]) and np.array_equal(sample[-256:], pixels[-256:, -256:])
    small = pixels[:1000, :1000]
    assert pilot_sample(small) is small                        # up to a megapixel: the image itself
    thin = np.arange(200 * 20000, dtype=np.float32).reshape(200, 20000, 1)
    crops = pilot_sample(thin).reshape(-1, 200, 200)
    assert crops.size <= 2**20 and len({float(c[0, 0]) for c in crops}) == len(crops) > 20   # none twice


def test_auto_chooses_again_on_the_refitted_estimate(monkeypatch):
    """Texture pushes the first estimate's gain up; where the refit finds no shot noise, ``auto``
    takes one sigma after all (and keeps the sensor's model where the refit still finds it)."""
    import restore.noise as noise
    import restore.pipeline as pipeline
    from restore.tasks import TASKS
    rng = np.random.default_rng(4)
    noisy = np.clip(_ramp(64) + rng.normal(0, 0.05, (64, 64, 3)), 0, 1).astype(np.float32)
    plain = noise.estimate_poisson_gaussian
    refits = {"to": (1e-4, 0.0025)}

    def estimate(pixels, *, pilot=None, start=None, **options):
        return refits["to"] if pilot is not None else (0.02, 0.001)     # the first: a sensor's
    monkeypatch.setattr(noise, "estimate_poisson_gaussian", estimate)
    auto = TASKS["denoise"](noise="auto")
    assert auto.resolve(noisy).sensor == (0.02, 0.001)
    resolved = pipeline.resolve(noisy, auto)
    assert resolved.sensor is None and resolved.sigma == pytest.approx(plain(noisy)[1] ** 0.5 * 255, rel=0.3)
    refits["to"] = (0.03, 0.0004)
    assert pipeline.resolve(noisy, auto).sensor == pytest.approx((0.03, 0.0004), rel=1e-5)


def test_the_first_restoration_reports_its_progress():
    """Refitting an estimated sensor restores the image twice; the progress callback hears both."""
    import restore
    a = 1 / 40
    clean, rng = _textured(1, side=64), np.random.default_rng(21)
    noisy = np.clip(rng.poisson(clean / a) * a + rng.normal(0, 0.02, clean.shape), 0, 1).astype(np.float32)
    heard = {"estimated": [], "given": []}
    restore.denoise(noisy, noise="poisson-gaussian", progress=lambda done, total: heard["estimated"].append(done))
    restore.denoise(noisy, noise=f"poisson-gaussian:{a},0.0004", progress=lambda done, total: heard["given"].append(done))
    assert len(heard["estimated"]) == 2 * len(heard["given"]) > 0
    # Told the stages' names, the first restoration's are named for what it is for.
    from restore.batch import Progress

    class Stages(Progress):
        names = []

        def stage(self, name, unit):
            self.names.append(name)
    restore.denoise(noisy, noise="poisson-gaussian", progress=Stages())
    first, own = Stages.names[:len(Stages.names) // 2], Stages.names[len(Stages.names) // 2:]
    assert first == [f"estimating the noise: {name}" for name in own] and own[0] == "the prior", Stages.names


@pytest.mark.parametrize("side", [2, 64])
def test_a_pattern_of_the_finest_pixels_reads_as_at_most_all_noise(side):
    # A checkerboard's finest diagonal coefficients are all there is: it read as 494 levels, and
    # denoise(sigma auto) refused its own estimate ("sigma must be ... at most 255").
    import restore
    from restore.noise import MAX_LEVEL
    board = (np.indices((side, side)).sum(0) % 2 * 255).astype(np.uint8)
    assert restore.estimate_noise(board) == MAX_LEVEL == 127.5
    if side >= 4:                     # the estimate is one denoise takes
        out = restore.denoise(board, prior="digits", steps=0)
        assert out.dtype == np.uint8 and out.shape == board.shape


def _camera_jpeg(clean, quality, *, sigma=None, sensor=None, seed=0, orientation=1):
    """``clean`` with Gaussian noise of ``sigma`` (0..255) or a sensor's ``(a, b)``, written as a
    JPEG of ``quality`` as a camera writes one (its EXIF orientation: the stored pixels turned so):
    the decoded pixels, upright, and the file's quantisation."""
    import io

    from PIL import Image

    from restore.jpeg import Quantisation, to_stored
    rng = np.random.default_rng(seed)
    if sensor is not None:
        a, b = sensor
        noisy = rng.poisson(clean / a) * a + rng.normal(0, b ** 0.5, clean.shape)
    else:
        noisy = clean + rng.normal(0, (sigma or 0) / 255, clean.shape)
    stored = to_stored(np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8), orientation)
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(stored)).save(buffer, "JPEG", quality=quality, exif=exif)
    buffer.seek(0)
    quantisation = Quantisation.from_file(buffer)
    buffer.seek(0)
    from PIL import ImageOps
    with Image.open(buffer) as im:
        decoded = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), np.float32) / 255
    return decoded, quantisation


@pytest.mark.parametrize("quality", [75, 90])
def test_a_cameras_jpeg_gives_its_noise_back(quality):
    """Noise of 15 written into a JPEG: the file's rounding hides most of it from the finest detail
    (the estimate without the file's tables reads under four fifths of it), the file's own
    coefficients give it back within 15 %; a clean image's JPEG reads as nearly clean."""
    from restore.noise import estimate_noise
    clean = _ramp()
    decoded, quantisation = _camera_jpeg(clean, quality, sigma=15)
    assert estimate_noise(decoded) < 15 * 0.8
    assert abs(estimate_noise(decoded, quantisation=quantisation) - 15) < 15 * 0.15
    decoded, quantisation = _camera_jpeg(clean, quality, sigma=0)
    assert estimate_noise(decoded, quantisation=quantisation) < 2


def _lines_and_dots(side=128):
    """A grey ramp under fine structure in every 8x8 block and few 4x4 quarters: a dark line of
    one pixel every 6 columns on the left half, sparse bright dots on the right."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side]
    image = 0.3 + 0.4 * xx / side
    image[:, :side // 2] -= 0.25 * (xx[:, :side // 2] % 6 == 0)
    image[:, side // 2:] += 0.3 * (rng.random((side, side - side // 2)) < 0.04)
    return np.repeat(image[:, :, None], 3, 2)


@pytest.mark.parametrize("quality", [90, 95])
def test_fine_structure_under_a_jpeg_is_not_read_as_noise(quality):
    """Lines and dots in every block of a clean file: the file's high orders alone take them for
    noise of 20 to 30, the finest detail of the blocks' quarters sees the clean spots between them;
    the same image with noise of 12 still gives its level back within 20 %."""
    from restore.noise import estimate_noise
    clean = _lines_and_dots()
    decoded, quantisation = _camera_jpeg(clean, quality, sigma=0)
    assert estimate_noise(decoded, quantisation=quantisation) < 4
    decoded, quantisation = _camera_jpeg(clean, quality, sigma=12)
    assert abs(estimate_noise(decoded, quantisation=quantisation) - 12) < 12 * 0.2


def test_the_jpeg_estimate_reads_the_blocks_as_the_file_stores_them():
    """A camera's JPEG stored turned (EXIF orientation 6, sides not multiples of 8): the blocks lie on
    the stored pixels, and the estimate from the upright pixels finds the level as for the file
    stored upright (each file rounded on its own grid, so not to the digit)."""
    from restore.noise import estimate_noise
    clean = _ramp(203)[:, :117]
    upright, q1 = _camera_jpeg(clean, 85, sigma=12, seed=3)
    turned, q6 = _camera_jpeg(clean, 85, sigma=12, seed=3, orientation=6)
    assert turned.shape == upright.shape == (203, 117, 3) and q6.orientation == 6
    for pixels, quantisation in ((upright, q1), (turned, q6)):
        assert abs(estimate_noise(pixels, quantisation=quantisation) - 12) < 12 * 0.1
    # The turned file's upright pixels are read as its stored pixels are: to the digit.
    from dataclasses import replace

    from restore.jpeg import to_stored
    assert estimate_noise(turned, quantisation=q6) == estimate_noise(to_stored(turned, 6),
                                                                     quantisation=replace(q6, orientation=1))


def test_a_cameras_jpeg_gives_its_sensor_back():
    """A small sensor's noise (gain 1/40, read noise 0.02) written into a JPEG of quality 90: the gain
    within 25 % from the file's coefficients, where the estimate without them reads under half."""
    a, b = 1 / 40, 0.02**2
    decoded, quantisation = _camera_jpeg(_ramp(), 90, sensor=(a, b))
    assert estimate_poisson_gaussian(decoded)[0] < a / 2
    est_a, est_b = estimate_poisson_gaussian(decoded, quantisation=quantisation)
    assert abs(est_a - a) < 0.25 * a and est_b < 4 * b


def test_denoise_reads_a_jpeg_files_tables(tmp_path, tiny_prior):
    """On the command line a JPEG's noise is estimated from the file (said so), and the restoration
    is better than with the estimate from its pixels alone (the same pixels as a PNG)."""
    from typer.testing import CliRunner

    from restore.cli import app
    from restore.images import Picture, write_image
    _, model = tiny_prior
    from tests.conftest import smooth_images
    clean = smooth_images(1, 64, seed=5)[0]
    decoded, _ = _camera_jpeg(clean, 85, sigma=15)

    from PIL import Image
    rng = np.random.default_rng(0)
    noisy = np.round(np.clip(clean + rng.normal(0, 15 / 255, clean.shape), 0, 1) * 255).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "cam.jpg", quality=85)
    Image.open(tmp_path / "cam.jpg").save(tmp_path / "same.png")
    write_image(tmp_path / "ref.png", Picture(clean))
    said = {}
    for name in ("cam.jpg", "same.png"):
        result = CliRunner().invoke(app, ["denoise", str(tmp_path / name), "-o", str(tmp_path / f"{name}.out.png"),
                                          "--model", str(model), "--ref", str(tmp_path / "ref.png")])
        assert result.exit_code == 0, result.output
        line = next(l for l in result.output.splitlines() if "estimated noise sigma" in l)
        said[name] = (float(line.split("sigma ")[1].split(",")[0]), line,
                      float(result.output.split("PSNR ")[1].split(" dB")[0]))
    assert "before the JPEG's rounding" in said["cam.jpg"][1] and "JPEG" not in said["same.png"][1]
    assert abs(said["cam.jpg"][0] - 15) < 3 and said["same.png"][0] < 12
    assert said["cam.jpg"][2] > said["same.png"][2]
    # The same for a sensor's noise: its level at mid-grey read from the file.
    import json
    level = {}
    for name in ("cam.jpg", "same.png"):
        result = CliRunner().invoke(app, ["denoise", str(tmp_path / name), "-o", str(tmp_path / f"{name}.pg.png"),
                                          "--model", str(model), "--noise", "poisson-gaussian", "--steps", "0",
                                          "--json", str(tmp_path / f"{name}.json")])
        assert result.exit_code == 0, result.output
        a, b = json.loads((tmp_path / f"{name}.json").read_text())[0]["sensor"]
        level[name] = (a * 0.5 + b) ** 0.5 * 255
    assert abs(level["cam.jpg"] - 15) < 15 * 0.25 and level["same.png"] < 12


def test_a_jpegs_sensor_is_not_fitted_again_on_the_finest_detail():
    """The fit on a first restoration's smooth blocks reads the finest detail, which the file's
    rounding wiped out: for a JPEG it would pull the estimate back down (held-out crops, sensor noise
    then quality 85: 31.23 dB with the file's estimate, 27.16 fitted again), so it is skipped."""
    from restore.tasks.denoise import Denoise
    a, b = 1 / 40, 0.02**2
    decoded, quantisation = _camera_jpeg(_ramp(64), 90, sensor=(a, b))
    for given, refitted in ((None, True), (quantisation, False)):
        task = Denoise(noise="poisson-gaussian", quantisation=given)
        assert task.resolve(decoded).refined_by(task) is refitted


def test_a_fits_leftovers_are_no_gain():
    """A fit that leaves a gain of 2.3e-17 (printed so to the user once) means none."""
    from restore.tasks.denoise import Denoise
    task = Denoise(noise="poisson-gaussian")._with_sensor(2.262e-17, 4e-4)
    assert task.sensor == (0.0, 4e-4) and task.describe_noise() == "Poisson-Gaussian noise A 0, B 0.0004"


def test_deblur_reads_a_jpeg_files_tables_too(tmp_path, tiny_prior):
    """A blurred photograph's JPEG: its noise read from the file (said so), near what was put in,
    where its pixels alone read far less (held-out crops: 30.40 against 26.94 dB deblurred)."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter
    from typer.testing import CliRunner

    from restore.cli import app
    _, model = tiny_prior
    clean = _ramp(64)
    blurred = np.stack([gaussian_filter(clean[..., i], 2.0) for i in range(3)], -1)
    noisy = blurred + np.random.default_rng(0).normal(0, 10 / 255, clean.shape)
    Image.fromarray(np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)).save(tmp_path / "b.jpg", quality=90)
    Image.open(tmp_path / "b.jpg").save(tmp_path / "b.png")
    level = {}
    for name in ("b.jpg", "b.png"):
        result = CliRunner().invoke(app, ["deblur", str(tmp_path / name), "--kernel", "gaussian:2", "--steps", "1",
                                          "--model", str(model), "-o", str(tmp_path / f"{name}.out.png")])
        assert result.exit_code == 0, result.output
        line = next(l for l in result.output.splitlines() if "estimated noise sigma" in l)
        level[name] = (float(line.split("sigma ")[1].split(",")[0]), "before the JPEG's rounding" in line)
    assert level["b.jpg"][1] and not level["b.png"][1]
    assert abs(level["b.jpg"][0] - 10) < 2 and level["b.png"][0] < 8, level
