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


def test_gaussian_noise_has_no_signal_dependence():
    rng = np.random.default_rng(1)
    noisy = np.clip(_ramp() + rng.normal(0, 0.05, (256, 256, 3)), 0, 1)
    est_a, est_b = estimate_poisson_gaussian(noisy)
    assert est_a < 0.002 and abs(np.sqrt(est_b) - 0.05) < 0.005


def test_too_small_an_image_is_a_clear_error():
    with pytest.raises(ValueError, match="too small"):
        estimate_poisson_gaussian(np.zeros((6, 6, 3)))
