"""Deblurring's last filter: the data's Wiener deconvolution around the prior's estimate, filtered
under the noise it carries, which is not white (restore.fidelity.deconvolution, restore.wiener with
a correlation)."""
import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn.functional as F

import restore
from restore.fidelity import Gaussian, deconvolution
from restore.physics import Blur, Denoising, gaussian_kernel
from restore.tasks import Deblur
from restore.wiener import coefficient_variances, empirical_wiener, hard_thresholded

from test_wiener import by_groups, photo


def correlation_of(kernel: torch.Tensor, reach: int = 15) -> torch.Tensor:
    """The autocorrelation of white noise of variance 1 convolved with ``kernel``, over lags of -reach..reach."""
    out = torch.zeros(2 * reach + 1, 2 * reach + 1, dtype=torch.float64)
    kh, kw = kernel.shape
    k = kernel.double()
    for dy in range(-kh + 1, kh):
        for dx in range(-kw + 1, kw):
            a = k[max(0, dy):kh + min(0, dy), max(0, dx):kw + min(0, dx)]
            b = k[max(0, -dy):kh + min(0, -dy), max(0, -dx):kw + min(0, -dx)]
            out[reach + dy, reach + dx] = (a * b).sum()
    return (out / out[reach, reach]).float()


BOX = torch.ones(3, 3) / 9


def test_white_noise_has_the_same_variance_in_every_coefficient():
    white = torch.zeros(31, 31)
    white[15, 15] = 1
    for patch in (8, 16):
        assert torch.allclose(coefficient_variances(white, patch), torch.ones(patch * patch), atol=1e-6)


def test_each_coefficients_variance_is_what_coloured_noise_puts_there():
    noise = F.conv2d(torch.randn(1, 1, 1500, 1500, generator=torch.Generator().manual_seed(0)), BOX[None, None])
    patches = noise[0, 0, :1496, :1496].reshape(187, 8, 187, 8).permute(0, 2, 1, 3).reshape(-1, 8, 8).double()
    measured = torch.from_numpy(scipy.fft.dctn(patches.numpy(), axes=(1, 2), norm="ortho").var(0).reshape(-1))
    predicted = coefficient_variances(correlation_of(BOX), 8).double() * noise.var().double()
    assert (predicted / measured - 1).abs().max() < 0.06
    assert predicted[0] > 5 * predicted[-1]       # a blurred noise: the low frequencies carry most of it
    with pytest.raises(ValueError, match="correlation"):
        coefficient_variances(correlation_of(BOX, reach=5), 8)


def coloured_shares(coefficients):
    def shrink(cy, cp, v):
        vk = v * coefficients
        share = cp**2 / (cp**2 + vk)
        share[0, 0, 0] = 1
        return share, 1 / (vk * share**2).sum()
    return shrink


def test_in_groups_each_coefficient_is_shrunk_by_its_own_noise():
    rng = np.random.default_rng(5)
    y, pilot = rng.random((2, 19, 23))
    variance = 0.01 + 0.02 * rng.random((19, 23))
    correlation = correlation_of(BOX)
    out = empirical_wiener(torch.tensor(y)[None, None], torch.tensor(pilot)[None, None],
                           torch.tensor(variance)[None, None], patch=4, stride=3, search=3, group=5, select=False,
                           correlation=correlation)
    coefficients = coefficient_variances(correlation, 4).double().numpy().reshape(4, 4)
    expected = by_groups(y, pilot, variance, 4, 3, 3, 5, shrink=coloured_shares(coefficients))
    assert np.abs(out[0, 0].numpy() - expected).max() < 1e-5
    white = empirical_wiener(torch.tensor(y)[None, None], torch.tensor(pilot)[None, None],
                             torch.tensor(variance)[None, None], patch=4, stride=3, search=3, group=5, select=False)
    assert np.abs(out[0, 0].numpy() - white[0, 0].numpy()).max() > 1e-3


def test_the_first_stage_thresholds_each_coefficient_at_its_own_noise():
    rng = np.random.default_rng(6)
    y, pilot = rng.random((2, 19, 23)) - 0.5
    variance = 0.01 + 0.02 * rng.random((19, 23))
    correlation = correlation_of(BOX)
    coefficients = coefficient_variances(correlation, 8).double().numpy().reshape(8, 8)

    def hard(cy, cp, v):
        keep = np.abs(cy) > 2.0 * (v * coefficients) ** 0.5
        keep[0, 0, 0] = True
        return keep, 1 / (v * coefficients * keep).sum()
    out = hard_thresholded(torch.tensor(y)[None, None], torch.tensor(pilot)[None, None],
                           torch.tensor(variance)[None, None], stride=3, group=5, threshold=2.0,
                           correlation=correlation)
    expected = by_groups(y, pilot, variance, 8, 3, max(y.shape), 5, shrink=hard)
    assert np.abs(out[0, 0].numpy() - expected).max() < 1e-5


@pytest.mark.parametrize("select", [False, True])
def test_knowing_the_noises_colour_filters_it_better_than_taking_it_for_white(select):
    x = photo(96)
    kernel = gaussian_kernel(1.0)
    side = 96 + kernel.shape[0] - 1
    noise = F.conv2d(torch.randn(3, 1, side, side, generator=torch.Generator().manual_seed(1)),
                     kernel[None, None]).view(1, 3, 96, 96)
    noise = noise * 0.08 / noise.std()
    y = x + noise
    pilot = x + 0.3 * noise                                  # a pilot with a part of the same noise
    correlation = correlation_of(kernel)
    knowing = empirical_wiener(y, pilot, 0.08**2, correlation=correlation, select=select)
    white = empirical_wiener(y, pilot, 0.08**2, select=select)
    score = lambda out: restore.psnr(x[0].permute(1, 2, 0).numpy(), out[0].clamp(0, 1).permute(1, 2, 0).numpy())
    assert score(knowing) > score(white) + 0.5


def test_each_block_takes_the_estimate_the_risk_under_the_noises_colour_favours():
    """test_wiener's smooth swell beside hard stripes, under correlated noise: each half takes
    the better of groups and windows (measured: within 1.01 / 1.06 of it) when the risk estimate's
    probe carries the noise's correlation; with a white probe the swell took the groups (1.35)."""
    rows, columns = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    smooth = 0.5 + 0.3 * torch.sin(columns / 20) * torch.cos(rows / 25)
    stripes = 0.5 + 0.3 * torch.sign(torch.sin(columns / 2.5 + 0.3 * rows))
    clean = torch.cat([smooth, stripes], 1)[None, None]
    kernel = gaussian_kernel(0.7)
    r = kernel.shape[0] // 2
    noise = F.conv2d(torch.randn(1, 1, 64 + 2 * r, 128 + 2 * r, generator=torch.Generator().manual_seed(7)),
                     kernel[None, None])
    y = clean + 0.2 * noise / noise.std()
    pilot = F.avg_pool2d(clean, 3, stride=1, padding=1, count_include_pad=False)
    correlation = correlation_of(kernel)
    groups = empirical_wiener(y, pilot, 0.04, select=False, correlation=correlation)
    windows = empirical_wiener(y, pilot, 0.04, patch=16, stride=4, search=0, group=1, correlation=correlation)
    chosen = empirical_wiener(y, pilot, 0.04, correlation=correlation)
    for half in (slice(0, 64), slice(64, 128)):
        error = lambda x: float((x[..., half] - clean[..., half]).square().mean())
        best, worst = sorted([error(groups), error(windows)])
        assert error(chosen) < 1.1 * best and error(chosen) < worst


def blurred(x, kernel, sigma, seed=0):
    physics = Blur(kernel, margin=kernel.shape[0] // 2)
    b = physics.blur_image(x)
    return (b + sigma * torch.randn(b.shape, generator=torch.Generator().manual_seed(seed))), physics


def test_the_deconvolution_gives_the_image_back_from_noiseless_data_whatever_the_pilot():
    x = photo(64)
    kernel = gaussian_kernel(0.7)
    y, physics = blurred(x, kernel, 0.0)
    m = physics.margin
    image = F.pad(x, (m, m, m, m), mode="reflect")
    pilot = F.pad(y, (m, m, m, m), mode="reflect")                      # the blurred image itself
    z, level, correlation = deconvolution(pilot, y, physics, torch.full((1, 1, 64, 64), 1e-12))
    assert (z - image)[..., m + 4:-m - 4, m + 4:-m - 4].abs().max() < 0.02
    assert (pilot - image)[..., m + 4:-m - 4, m + 4:-m - 4].abs().max() > 0.1
    assert correlation.shape == (31, 31) and float(correlation[15, 15]) == pytest.approx(1)
    assert level.shape == (1, 1, 64 + 2 * m, 64 + 2 * m)
    same, _, _ = deconvolution(image, y, physics, torch.full((1, 1, 64, 64), 1e-4))
    assert (same - image).abs().max() < 1e-4                            # a pilot the data explain stays


def test_the_deconvolutions_noise_is_as_strong_and_correlated_as_said():
    kernel = gaussian_kernel(1.0)
    y, physics = blurred(torch.zeros(1, 1, 128, 128), kernel, 0.0)
    m = physics.margin
    noise = 0.02 * torch.randn(64, 1, 128, 128, generator=torch.Generator().manual_seed(3))
    variance = torch.full((1, 1, 128, 128), 0.02**2)
    zs = [deconvolution(torch.zeros(1, 1, 128 + 2 * m, 128 + 2 * m), n[None], physics, variance, smoothness=10.0)
          for n in noise]
    inner = torch.cat([z for z, _, _ in zs])[..., 24:-24, 24:-24]
    level, correlation = zs[0][1], zs[0][2]
    assert float(inner.var()) == pytest.approx(float(level.mean()), rel=0.1)
    shifted = (inner[..., :, 1:] * inner[..., :, :-1]).mean() / inner.var()
    assert float(shifted) == pytest.approx(float(correlation[15, 16]), abs=0.05)


def test_a_blurs_width_is_its_kernels_spread():
    assert Blur(gaussian_kernel(0.7)).width == pytest.approx(0.7, abs=0.02)
    assert Blur(gaussian_kernel(2.0)).width == pytest.approx(2.0, abs=0.02)
    assert Blur(torch.ones(1, 1)).width == 0
    assert Blur(torch.ones(1, 3) / 3).width == pytest.approx((2 / 3 / 2) ** 0.5)


def test_a_light_blurs_pilot_takes_the_datas_first_stage_a_heavy_ones_the_estimate_alone():
    x = photo(48)
    data = Gaussian(2 / 255)
    for std, taken in ((0.7, True), (1.5, True), (2.5, False)):
        kernel = gaussian_kernel(std)
        y, physics = blurred(x, kernel, 2 / 255)
        m = physics.margin
        estimate = F.pad(x, (m, m, m, m), mode="reflect").add(0.02).clamp(0, 1)
        pilot = data.pilot(estimate, y, physics)
        assert (pilot is not estimate) == taken, std
        assert pilot.shape == estimate.shape
    assert data.wiener_passes(y, physics).tolist() == [1]
    assert data.wiener_passes(x, Denoising()).tolist() == [3]


def test_the_filter_takes_from_the_data_what_they_say_and_an_estimate_got_wrong():
    x = photo(64)
    kernel = gaussian_kernel(1.0)
    y, physics = blurred(x, kernel, 3 / 255)
    m = physics.margin
    image = F.pad(x, (m, m, m, m), mode="reflect")
    # An estimate wrong in its slow swells, which the blur leaves in the data.
    swell = Blur(gaussian_kernel(3.0)).blur_image(torch.randn(image.shape, generator=torch.Generator().manual_seed(2)))
    estimate = (image + 0.05 * swell / swell.std()).clamp(0, 1)
    out = Gaussian(3 / 255).wiener(estimate, y, physics)
    error = lambda a: float((a - image)[..., m:-m, m:-m].square().mean())
    assert error(out) < 0.5 * error(estimate)


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("kernel", ["gaussian:0.5", "gaussian:0.7", "motion:3,0"])
@pytest.mark.parametrize("scene", ["yellow", "swell"])
def test_a_lightly_blurred_smooth_image_is_deblurred_above_its_blurred_input(kernel, scene, quick):
    """Under light blur and light noise a smooth image (a yellow whose blue is near 0; a slow swell
    of colour) came back 1.6-3.5 dB below its blurred input before the deblurring's last filter."""
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    if scene == "yellow":
        clean = np.stack([220 + 35 * xx, 150 + 80 * yy * (1 - xx), 4 + 6 * xx * yy], -1)
    else:
        clean = 128 + 60 * np.sin(3 * xx + 2 * yy)[..., None] * np.array([1.0, -0.8, 0.5])
    clean = np.round(clean).clip(0, 255).astype(np.uint8)
    physics = Deblur(kernel=kernel, sigma=1).physics(None, None)
    b = physics.blur_image(torch.from_numpy(clean / 255.0).float().permute(2, 0, 1)[None])[0].permute(1, 2, 0)
    damaged = np.clip(np.round(b.numpy() * 255 + np.random.default_rng(0).normal(0, 1, clean.shape)), 0, 255)
    damaged = damaged.astype(np.uint8)
    out = restore.deblur(damaged, kernel=kernel, sigma=1, quick=quick)
    assert restore.psnr(clean, out) > restore.psnr(clean, damaged) + 0.5


@pytest.mark.parametrize("grey", [False, True])
def test_a_blurred_photograph_under_a_sensors_noise_is_deblurred(grey):
    """The sensor's levels are read where the image was observed (the pilot blurred), each pixel's."""
    from restore.conditions import poisson_gaussian
    from restore.images import read_image
    from test_trust import SAMPLES
    clean = read_image(f"{SAMPLES}/lake.png").pixels[:64, :64]
    if grey:
        clean = np.repeat(clean.mean(2, keepdims=True), 3, 2)
    physics = Deblur(kernel="gaussian:1", sigma=1).physics(None, None)
    b = physics.blur_image(torch.from_numpy(clean).float().permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    damaged = np.clip(poisson_gaussian(b, 1 / 40, 0.02**2, np.random.default_rng(0)), 0, 1).astype(np.float32)
    if grey:
        damaged = np.repeat(damaged[..., :1], 3, 2)
    out = restore.deblur(damaged, kernel="gaussian:1", noise=f"poisson-gaussian:{1 / 40},{0.02**2}")
    assert restore.psnr(clean, out) > restore.psnr(clean, damaged) + 2


@pytest.mark.parametrize("motion, lags", [("motion:9,0", ((0, 3), (3, 0))), ("motion:9,45", ((3, 3), (3, -3)))])
def test_the_noises_correlation_is_read_the_right_way_round(motion, lags):
    """A motion blur's deconvolution correlates the noise along the motion otherwise than across
    it: two lags differ, and each lag is as the noise measured has it (a correlation transposed or
    mirrored would not be)."""
    kernel = Deblur(kernel=motion, sigma=1).weights
    physics = Blur(torch.from_numpy(kernel))
    m = physics.margin
    noise = 0.02 * torch.randn(32, 1, 96, 96, generator=torch.Generator().manual_seed(4))
    zs = [deconvolution(torch.zeros(1, 1, 96 + 2 * m, 96 + 2 * m), n[None], physics,
                        torch.full((1, 1, 96, 96), 0.02**2), smoothness=10.0) for n in noise]
    inner = torch.cat([z for z, _, _ in zs])[..., 24:-24, 24:-24]
    correlation = zs[0][2]
    for dy, dx in ((0, 1), (1, 0)) + lags:
        a = inner[..., dy:, max(dx, 0):inner.shape[-1] + min(dx, 0)]
        b = inner[..., :inner.shape[-2] - dy, max(-dx, 0):inner.shape[-1] + min(-dx, 0)]
        assert float((a * b).mean() / inner.var()) == pytest.approx(float(correlation[15 + dy, 15 + dx]), abs=0.03)
    (ay, ax), (by, bx) = lags
    assert abs(float(correlation[15 + ay, 15 + ax] - correlation[15 + by, 15 + bx])) > 0.3


def test_a_light_blurs_share_of_the_first_stage_grows_as_the_blur_narrows(monkeypatch):
    import restore.fidelity.gaussian as fidelity
    x = photo(48)
    kernel = gaussian_kernel(1.5)                            # halfway between the widths 1 and 2
    y, physics = blurred(x, kernel, 2 / 255)
    m = physics.margin
    estimate = F.pad(x, (m, m, m, m), mode="reflect").add(0.02).clamp(0, 1)
    half = Gaussian(2 / 255).pilot(estimate, y, physics)
    monkeypatch.setattr(fidelity, "DATA_PILOT_WIDTHS", (1.6, 2.6))      # the same blur, all of it
    whole = Gaussian(2 / 255).pilot(estimate, y, physics)
    assert physics.width == pytest.approx(1.5, abs=0.02)
    assert torch.allclose(half - estimate, (whole - estimate) * (2 - physics.width), atol=1e-5)
    assert (whole - estimate).abs().max() > 0.01


def test_a_batch_is_filtered_image_by_image_each_at_its_own_noise():
    x = torch.cat([photo(48), photo(48).flip(-1)])
    kernel = gaussian_kernel(1.0)
    y, physics = blurred(x, kernel, 3 / 255)
    m = physics.margin
    estimate = F.pad(x, (m, m, m, m), mode="reflect").add(0.03).clamp(0, 1)
    sigma = torch.tensor([3 / 255, 6 / 255]).view(2, 1, 1, 1)
    both = Gaussian(sigma).wiener(estimate, y, physics)
    for i in range(2):
        alone = Gaussian(float(sigma[i])).wiener(estimate[i:i + 1], y[i:i + 1], physics)
        assert torch.allclose(both[i:i + 1], alone, atol=1e-5)
    assert not torch.allclose(both[1:], Gaussian(3 / 255).wiener(estimate[1:], y[1:], physics), atol=1e-4)


@pytest.mark.parametrize("side", [9, 20])
@pytest.mark.parametrize("level", [0, 255, 128])
def test_a_small_or_flat_image_is_deblurred_whole_and_finite(side, level):
    flat = np.full((side, side, 3), level, np.uint8)
    out = restore.deblur(flat, kernel="gaussian:0.7", sigma=1)
    assert out.shape == flat.shape and np.abs(out.astype(int) - level).max() <= 1
    textured = (np.random.default_rng(0).random((side, side + 3, 3)) * 255).astype(np.uint8)
    assert np.isfinite(restore.deblur(textured / 255.0, kernel="motion:5,30", sigma=2)).all()


@pytest.mark.parametrize("level", [0.0, 0.5, 1.0])
def test_a_flat_pilot_gives_defined_shares_and_the_flat_back(level):
    """A flat pilot's gain is 0 but at the mean, so its deconvolution's noise reaches no coefficient
    but that one: the filter's shares stay defined (they were 0 / 0) and the flat comes back."""
    physics = Blur(gaussian_kernel(0.7))
    m = physics.margin
    y = torch.full((1, 3, 24, 24), level)
    pilot = torch.full((1, 3, 24 + 2 * m, 24 + 2 * m), level)
    for data in (Gaussian(1 / 255), Gaussian(torch.full((1, 3, 24, 24), 2 / 255))):
        out = data.wiener(data.pilot(pilot, y, physics), y, physics)
        assert torch.isfinite(out).all() and (out - level).abs().max() < 1e-4


def test_a_colour_photograph_under_a_sensors_noise_takes_the_first_stage_when_lightly_blurred():
    from restore.fidelity import PoissonGaussian
    x = photo(48)
    y, physics = blurred(x, gaussian_kernel(0.7), 2 / 255)
    m = physics.margin
    estimate = F.pad(x, (m, m, m, m), mode="reflect").add(0.02).clamp(0, 1)
    assert PoissonGaussian(1 / 40, 0.02**2).pilot(estimate, y, physics) is not estimate
    assert PoissonGaussian(1 / 40, 0.02**2).pilot(x, y, Denoising()) is x        # denoised where stabilised


def test_a_jpeg_files_leftover_rounding_is_a_quarter_of_its_tables_variance():
    from restore.fidelity import JPEG_LEFTOVER, jpeg_leftover
    from restore.jpeg import Quantisation
    flat = Quantisation((np.full((8, 8), 12), np.full((8, 8), 30), np.full((8, 8), 30)), (2, 2))
    assert flat.rounding_variance() == pytest.approx(12 / 255**2)       # 12^2 / 12, the luma's alone
    assert jpeg_leftover(flat) == pytest.approx(JPEG_LEFTOVER * 12 / 255**2) and jpeg_leftover(None) == 0
    task = Deblur(kernel="gaussian:2", sigma=3, quantisation=flat)
    assert task.data_term().leftover == pytest.approx(jpeg_leftover(flat))
    assert Deblur(kernel="gaussian:2", sigma=3).data_term().leftover == 0
    sensor = Deblur(kernel="gaussian:2", noise="poisson-gaussian:0.01,0.0001", quantisation=flat).data_term()
    assert sensor.gaussian(torch.full((1, 3, 4, 4), 0.5)).leftover == pytest.approx(jpeg_leftover(flat))
    with pytest.raises(ValueError, match="leftover"):
        Gaussian(0.01, leftover=-1.0)


def test_what_a_jpeg_stage_leaves_is_not_deconvolved_as_the_image():
    """The leftover counts as noise: the filter moves an estimate less towards data that carry it."""
    x = photo(48)
    y, physics = blurred(x, gaussian_kernel(2.0), 3 / 255)
    m = physics.margin
    estimate = F.pad(x, (m, m, m, m), mode="reflect").add(0.02).clamp(0, 1)
    plain = Gaussian(3 / 255).wiener(estimate, y, physics)
    told = Gaussian(3 / 255, leftover=(10 / 255) ** 2).wiener(estimate, y, physics)
    assert (told - estimate).abs().mean() < 0.95 * (plain - estimate).abs().mean()


def test_quick_keeps_a_light_blurs_first_stage_and_leaves_denoisings_out():
    x = photo(48)
    y, physics = blurred(x, gaussian_kernel(0.7), 2 / 255)
    m = physics.margin
    estimate = F.pad(x, (m, m, m, m), mode="reflect").add(0.02).clamp(0, 1)
    data = Gaussian(2 / 255)
    assert torch.equal(data.pilot(estimate, y, physics, quick=True), data.pilot(estimate, y, physics))
    assert data.pilot(estimate, y, physics, quick=True) is not estimate
    noisy = (x + 0.1).clamp(0, 1)
    assert data.pilot(x, noisy, Denoising(), quick=True) is x
    assert data.pilot(x, noisy, Denoising()) is not x
