import numpy as np
import pytest

from restore.metrics import psnr, ssim


def test_psnr_hand_computed_uint8():
    a = np.full((8, 8), 100, np.uint8)
    b = np.full((8, 8), 110, np.uint8)
    # MSE = 100, peak 255: 10 log10(255^2 / 100)
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 100))


def test_psnr_data_range_follows_dtype():
    a = np.zeros((4, 4), np.uint16)
    b = np.full((4, 4), 655, np.uint16)
    assert psnr(a, b) == pytest.approx(10 * np.log10(65535**2 / 655**2))
    f = np.zeros((4, 4), np.float32)
    assert psnr(f, f + 0.1) == pytest.approx(20.0, abs=1e-4)   # 10 log10(1 / 0.01)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.uint32, np.bool_])
def test_integers_other_than_uint8_and_uint16_are_refused(dtype):
    """An integer image is scored out of its dtype's range: 0..255 held as int64 scored 363 dB."""
    a = np.full((16, 16), 100, dtype)
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match=f"dtype {np.dtype(dtype).name} cannot be scored.*uint8"):
            metric(a, a)


def test_big_endian_uint16_is_scored_as_uint16():
    a = np.arange(256, dtype=np.uint16).reshape(16, 16) * 200
    b = a // 2
    assert psnr(a.astype(">u2"), b.astype(">u2")) == psnr(a, b)
    assert ssim(a.astype(">u2"), b.astype(">u2")) == ssim(a, b)
    assert psnr(a.astype(">u2"), b) == psnr(a, b)          # a file's pixels against a native result


def test_psnr_identical_is_infinite_and_crop_drops_border():
    a = np.zeros((10, 10), np.uint8)
    b = a.copy()
    b[0, :] = 255                        # damage only the border row
    assert psnr(a, a) == float("inf")
    assert psnr(a, b, crop=2) == float("inf")
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / (255**2 * 10 / 100)))


def test_ssim_of_constant_images_hand_computed():
    # With zero variance, SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1), C1 = (0.01 L)^2.
    a = np.full((32, 32), 100, np.uint8)
    b = np.full((32, 32), 150, np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 150 + c1) / (100**2 + 150**2 + c1)
    assert ssim(a, b) == pytest.approx(expected, rel=1e-6)


def test_ssim_identical_colour_is_one_and_noise_lowers_it():
    rng = np.random.default_rng(0)
    a = np.broadcast_to(np.linspace(50, 200, 32)[None, :, None], (32, 32, 3)).astype(np.uint8)
    assert ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a, noisy) < 0.9


def test_metrics_reject_mismatched_inputs():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="dtype"):
        ssim(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.float32))


@pytest.mark.parametrize("shape,dtype", [((600, 37, 3), np.uint8), ((300, 41), np.uint16), ((11, 11), np.uint8),
                                         ((270, 29, 3), np.float64)])
def test_ssim_equals_scikit_image(shape, dtype):
    # Computed in bands of rows with OpenCV's filters; the values must stay scikit-image's.
    from skimage.metrics import structural_similarity
    rng = np.random.default_rng(1)
    top = 1.0 if dtype == np.float64 else np.iinfo(dtype).max
    a = (rng.random(shape) * top).astype(dtype)
    b = np.clip(a + rng.normal(0, 0.1 * top, shape), 0, top).astype(dtype)
    expected = structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=float(top),
                                     gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     channel_axis=2 if len(shape) == 3 else None)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-12)
    assert psnr(a, b) == pytest.approx(10 * np.log10(top**2 / np.mean((a.astype(float) - b) ** 2)), abs=1e-9)
    if min(shape[:2]) < 17:
        return                               # too small to crop 3 pixels and keep an 11-pixel window
    assert ssim(a, b, crop=3) == pytest.approx(structural_similarity(
        a[3:-3, 3:-3].astype(np.float64), b[3:-3, 3:-3].astype(np.float64), data_range=float(top),
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        channel_axis=2 if len(shape) == 3 else None), abs=1e-12)


def test_scoring_a_large_image_makes_no_float_copy_of_it():
    # A float64 copy of this 6 MB image is 48 MB; scoring it whole took several of them.
    import tracemalloc
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (2000, 1000, 3), dtype=np.uint8)
    b = a.copy()
    b[::7] //= 2
    tracemalloc.start()
    try:
        psnr(a, b), ssim(a, b)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30e6, f"{peak / 1e6:.0f} MB"
