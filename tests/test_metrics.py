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
