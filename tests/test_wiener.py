"""The data's empirical Wiener filter around the prior's estimate (restore.wiener, DataTerm.wiener)."""
import numpy as np
import pytest
import scipy.fft
import torch

import restore
import restore.wiener as wiener_module
from restore.conditions import poisson_gaussian
from restore.data import to_gray
from restore.fidelity import SENSOR_GROUP, SENSOR_SEARCH, Gaussian, PoissonGaussian
from restore.images import read_image
from restore.metrics import psnr
from restore.physics import Denoising, Inpainting
from restore.wiener import empirical_wiener

from conftest import without_data_filter
from test_trust import SAMPLES, noisy, recoloured_photo


def photo(size=96):
    pixels = read_image(f"{SAMPLES}/butterfly.png").pixels[40:40 + size, 60:60 + size]
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float()


def by_windows(y, pilot, variance, block, stride):
    """The filter written out window by window with scipy's DCT (one image, one channel)."""
    h, w = y.shape
    total, norm = np.zeros((h, w)), np.zeros((h, w))
    for i in range(0, h - block + 1, stride):
        for j in range(0, w - block + 1, stride):
            cut = np.s_[i:i + block, j:j + block]
            cy, cp = (scipy.fft.dctn(a[cut], norm="ortho") for a in (y, pilot))
            v = variance[cut].mean()
            share = cp**2 / (cp**2 + v)
            share[0, 0] = 1
            weight = 1 / (v * (share**2).sum())
            total[cut] += weight * scipy.fft.idctn(share * cy, norm="ortho")
            norm[cut] += weight
    return total / norm


def test_without_groups_the_filter_is_the_windows_dct_shrinkage_written_out(monkeypatch):
    monkeypatch.setattr(wiener_module, "WINDOW_CHUNK", 7)    # the pieces' seams are crossed too
    rng = np.random.default_rng(0)
    y, pilot = rng.random((2, 20, 26))
    variance = 0.01 + 0.02 * rng.random((20, 26))
    out = empirical_wiener(torch.tensor(y)[None, None], torch.tensor(pilot)[None, None],
                           torch.tensor(variance)[None, None], patch=8, stride=2, search=0, group=1)
    assert np.abs(out[0, 0].numpy() - by_windows(y, pilot, variance, 8, 2)).max() < 1e-5


def test_without_groups_each_colour_channel_is_filtered_in_its_windows():
    rng = np.random.default_rng(1)
    y, pilot = rng.random((2, 1, 3, 20, 26))
    variance = 0.01 + 0.02 * rng.random((20, 26))
    opponent = wiener_module._opponent(torch.device("cpu")).double().numpy()
    yo, po = (np.einsum("kc,nchw->nkhw", opponent, t)[0] for t in (y, pilot))
    out = empirical_wiener(torch.tensor(y), torch.tensor(pilot), torch.tensor(variance)[None, None],
                           patch=8, stride=2, search=0, group=1)
    out = np.einsum("kc,nchw->nkhw", opponent, out.double().numpy())[0]
    for k in range(3):
        assert np.abs(out[k] - by_windows(yo[k], po[k], variance, 8, 2)).max() < 1e-5


def by_groups(y, pilot, variance, patch, stride, search, group, match=None, shrink=None, offset=0):
    """The filter in groups written out reference by reference with scipy's DCT (one channel),
    the groups matched on ``match`` (the pilot unless given); ``shrink(cy, cp, v)`` gives each
    group's factors and weight (the Wiener filter's unless given); references every ``stride``
    from ``offset``, and at both edges."""
    match = pilot if match is None else match
    h, w = y.shape
    rows, columns = h - patch + 1, w - patch + 1
    starts = lambda n: sorted(set(range(offset, n, stride)) | {0, n - 1})
    cut = lambda a, i, j: a[i:i + patch, j:j + patch]
    total, norm = np.zeros((h, w)), np.zeros((h, w))
    for i in starts(rows):
        for j in starts(columns):
            candidates = [(np.mean((cut(match, i, j) - cut(match, a, b)) ** 2), (a, b))
                          for a in range(max(0, i - search), min(rows, i + search + 1))
                          for b in range(max(0, j - search), min(columns, j + search + 1)) if (a, b) != (i, j)]
            members = [(i, j)] + [place for _, place in sorted(candidates)[:group - 1]]
            cy, cp = (scipy.fft.dctn(np.stack([cut(a, *m) for m in members]), norm="ortho") for a in (y, pilot))
            v = np.mean([cut(variance, *m).mean() for m in members])
            share, weight = (shrink or wiener_shares)(cy, cp, v)
            estimate = scipy.fft.idctn(share * cy, norm="ortho")
            for (a, b), e in zip(members, estimate):
                total[a:a + patch, b:b + patch] += weight * e
                norm[a:a + patch, b:b + patch] += weight
    return total / norm


def wiener_shares(cy, cp, v):
    share = cp**2 / (cp**2 + v)
    share[0, 0, 0] = 1
    return share, 1 / (v * (share**2).sum())


@pytest.mark.parametrize("shifted", [False, True])      # references from 0; from half the stride
@pytest.mark.parametrize("chunks", [(300, 200), None])   # bands of one row and their seams; one band
@pytest.mark.parametrize("stride", [3, 2])              # matched in windows one by one; in runs of blocks
def test_the_filter_is_the_groups_dct_shrinkage_written_out(monkeypatch, chunks, stride, shifted):
    if chunks:
        monkeypatch.setattr(wiener_module, "CHUNK", chunks[0])
        monkeypatch.setattr(wiener_module, "MATCH_CHUNK", chunks[1])
    rng = np.random.default_rng(5)
    y, pilot = rng.random((2, 19, 23))
    variance = 0.01 + 0.02 * rng.random((19, 23))
    out = empirical_wiener(torch.tensor(y)[None, None], torch.tensor(pilot)[None, None],
                           torch.tensor(variance)[None, None], patch=4, stride=stride, search=3, group=5, select=False,
                           shifted=shifted)
    expected = by_groups(y, pilot, variance, 4, stride, 3, 5, offset=stride // 2 if shifted else 0)
    assert np.abs(out[0, 0].numpy() - expected).max() < 1e-5


def test_each_block_takes_the_estimate_its_risk_estimate_favours():
    """A smooth swell beside hard stripes, under heavy noise: the windows do better on the first,
    the groups on the second (measured: 3.1e-4 against 3.5e-4, 1.21e-2 against 9.4e-3), and each
    half takes the better one, by Stein's unbiased risk estimate, without seeing the image."""
    rows, columns = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    smooth = 0.5 + 0.3 * torch.sin(columns / 20) * torch.cos(rows / 25)
    stripes = 0.5 + 0.3 * torch.sign(torch.sin(columns / 2.5 + 0.3 * rows))
    clean = torch.cat([smooth, stripes], 1)[None, None]
    y = clean + 0.2 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(7))
    pilot = torch.nn.functional.avg_pool2d(clean, 3, stride=1, padding=1, count_include_pad=False)
    groups = empirical_wiener(y, pilot, 0.04, select=False)
    windows = empirical_wiener(y, pilot, 0.04, patch=16, stride=4, search=0, group=1)
    chosen = empirical_wiener(y, pilot, 0.04)
    for half in (slice(0, 64), slice(64, 128)):
        error = lambda x: float((x[..., half] - clean[..., half]).square().mean())
        best, worst = sorted([error(groups), error(windows)])
        assert error(chosen) < 1.05 * best and error(chosen) < worst


def test_each_colour_channel_is_filtered_in_the_groups_matched_on_the_luminance():
    rng = np.random.default_rng(6)
    y, pilot = rng.random((2, 1, 3, 17, 21))
    variance = 0.01 + 0.02 * rng.random((17, 21))
    opponent = wiener_module._opponent(torch.device("cpu")).double().numpy()
    yo, po = (np.einsum("kc,nchw->nkhw", opponent, t)[0] for t in (y, pilot))
    out = empirical_wiener(torch.tensor(y), torch.tensor(pilot), torch.tensor(variance)[None, None],
                           patch=4, stride=3, search=3, group=5, select=False)
    out = np.einsum("kc,nchw->nkhw", opponent, out.double().numpy())[0]
    for k in range(3):
        expected = by_groups(yo[k], po[k], variance, 4, 3, 3, 5, match=po[0])
        assert np.abs(out[k] - expected).max() < 1e-5


def test_each_block_of_a_colour_difference_takes_the_estimate_its_risk_estimate_favours():
    """A colour difference that swells smoothly beside one in hard stripes, the luminance flat (so the
    groups are matched on nothing): each half of that channel takes the better of the two (measured:
    the windows on both, 1.37e-3 against 1.64e-3 and 8.35e-3 against 10.07e-3). The groups' search
    is kept short of the seam, which would otherwise hand each half's groups the other's patches."""
    rows, columns = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    swell = 0.3 * torch.sin(columns / 8) * torch.cos(rows / 9)
    stripes = 0.2 * torch.sign(torch.sin(columns / 2.5 + 0.3 * rows))
    red_less_blue = wiener_module._opponent(torch.device("cpu"))[1]
    clean = (0.5 + red_less_blue[:, None, None] * torch.cat([swell, stripes], 1))[None]
    y = clean + 0.3 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    pilot = torch.nn.functional.avg_pool2d(clean, 3, stride=1, padding=1, count_include_pad=False)
    groups = empirical_wiener(y, pilot, 0.09, search=8, group=16, select=False)
    windows = empirical_wiener(y, pilot, 0.09, patch=16, stride=4, search=0, group=1)
    chosen = empirical_wiener(y, pilot, 0.09, search=8, group=16)
    for half in (slice(0, 48), slice(80, 128)):   # away from the blocks' blend across the seam
        error = lambda x: float(torch.einsum("c,nchw->nhw", red_less_blue, x - clean)[..., half].square().mean())
        best, worst = sorted([error(groups), error(windows)])
        assert error(chosen) < 1.05 * best and error(chosen) < worst


def test_a_right_pilot_and_no_noise_give_every_colour_channel_back():
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    # A pilot equal to the observation and a vanishing noise give the observation back, every channel.
    assert torch.allclose(empirical_wiener(x, x, 1e-12), x, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1, 5, 7), (2, 3, 17, 33), (1, 3, 16, 16), (2, 3, 40, 37)])
def test_any_size_and_batch_comes_back_whole(shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(2))
    out = empirical_wiener(x, x.clamp(0.2, 0.8), 0.01)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())
    for i in range(shape[0]):                 # each image as it would come alone
        alone = empirical_wiener(x[i:i + 1], x[i:i + 1].clamp(0.2, 0.8), 0.01)
        assert torch.allclose(out[i:i + 1], alone, atol=1e-6)


def test_each_blocks_choice_lies_on_its_own_block_whatever_the_size():
    """Choices sit at their blocks' centres and blend between them, a partial last block too: on
    40 rows, block 0 (rows 0-31) takes the groups, block 1 (rows 32-39) the windows."""
    choice = torch.tensor([0.0, 1.0]).reshape(1, 1, 2, 1)
    take = wiener_module._blended(choice, 40, 5)[0, 0, :, 0]
    assert take.shape == (40,)
    assert bool((take[:16] == 0).all())                    # before block 0's centre: its own choice
    centres = wiener_module.SELECT_BLOCK * torch.arange(2) + (wiener_module.SELECT_BLOCK - 1) / 2
    expected = ((torch.arange(40) - centres[0]) / (centres[1] - centres[0])).clamp(0, 1)
    assert torch.allclose(take, expected, atol=1e-6)


def test_a_good_pilot_gives_the_texture_back_from_the_data():
    clean = photo()
    rng = torch.Generator().manual_seed(3)
    y = clean + torch.randn(clean.shape, generator=rng) * 0.1
    blurred = torch.nn.functional.avg_pool2d(clean, 5, stride=1, padding=2, count_include_pad=False)
    score = lambda x: psnr(np.asarray(clean[0].permute(1, 2, 0)), np.asarray(x[0].permute(1, 2, 0).clamp(0, 1)))
    assert score(empirical_wiener(y, clean, 0.01)) > score(y) + 5        # the oracle pilot: +7.2 dB
    assert score(empirical_wiener(y, blurred, 0.01)) > score(blurred) + 1.5  # texture the pilot lacked: +2.3


def test_bad_arguments_are_refused():
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match="one shape"):
        empirical_wiener(x, x[:, :1], 0.01)
    with pytest.raises(ValueError, match="stride"):
        empirical_wiener(x, x, 0.01, patch=8, stride=9)
    with pytest.raises(ValueError, match="group"):
        empirical_wiener(x, x, 0.01, group=0)
    with pytest.raises(ValueError, match="variance"):
        empirical_wiener(x, x, torch.zeros(1, 1, 16, 16))


def test_only_an_observation_of_the_image_itself_is_filtered():
    x = photo(32)
    y = (x + 0.05).clamp(0, 1)
    assert Gaussian(0.1).wiener(x, y, Inpainting(torch.ones(1, 1, 32, 32))) is x
    assert not torch.equal(Gaussian(0.1).wiener(x, y, Denoising()), x)
    assert not torch.equal(PoissonGaussian(1 / 40, 0.0004).wiener(x, y, Denoising()), x)


def test_a_grey_sensor_observation_reads_its_levels_at_its_pilots_grey():
    """A colour prior's pilot of a grey photograph may tint; the filter works on the grey, and reads
    the noise's levels there too."""
    grey = photo(48).mean(1, keepdim=True)
    y = torch.from_numpy(poisson_gaussian(grey.numpy(), 1 / 40, 0.0004, np.random.default_rng(6)).clip(0, 1)).float()
    tinted = (grey * torch.tensor([1.0, 0.6, 0.2]).reshape(1, 3, 1, 1)).clamp(0, 1)
    term = PoissonGaussian(1 / 40, 0.0004)
    out = term.wiener(tinted, y.expand(-1, 3, -1, -1), Denoising())
    assert torch.allclose(out, term.wiener(to_gray(tinted).expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1), Denoising()),
                          atol=1e-6)


def test_a_sensors_filter_reads_the_noise_levels_at_the_pilot():
    """The pilot's levels are nearer the image's than the noisy observation's (held-out crops:
    +0.01 to +0.03 dB); the two differ, so reading the observation's would change the output."""
    x = photo(48)
    y = poisson_gaussian(x.numpy(), 1 / 40, 0.0004, np.random.default_rng(5)).clip(0, 1)
    y = torch.from_numpy(y).float()
    term = PoissonGaussian(1 / 40, 0.0004)
    out = term.wiener(x, y, Denoising())
    groups = dict(group=SENSOR_GROUP, search=SENSOR_SEARCH)
    assert torch.equal(out, term.gaussian(x).wiener(x, y, Denoising(), **groups))
    assert (out - term.gaussian(y).wiener(x, y, Denoising(), **groups)).abs().max() > 1e-3


def test_a_saturated_colour_stays_where_the_clipped_noise_puts_it():
    """The file's clipping moves a saturated colour's noisy mean inwards; the filter reads the
    observation less that shift, so a right pilot keeps the colour (0.8 levels off; without, 9.8)."""
    magenta = torch.tensor([253, 2, 253], dtype=torch.float32).div(255)[None, :, None, None].expand(1, 3, 48, 48)
    y = (magenta + torch.randn(magenta.shape, generator=torch.Generator().manual_seed(4)) * 0.1).clamp(0, 1)
    y = (y * 255).round() / 255
    out = Gaussian(0.1).wiener(magenta.contiguous(), y, Denoising())
    assert (out.mean((2, 3)) - magenta.mean((2, 3))).abs().max() * 255 < 1.5


def sensor(clean, seed=0):
    """A small sensor's noise (the benchmark's sensor40), in an 8-bit file."""
    damaged = poisson_gaussian(clean / 255, 1 / 40, 0.02**2, np.random.default_rng(seed))
    return np.clip(np.round(damaged * 255), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("noise", ["gaussian", "poisson-gaussian:0.025,0.0004"])
def test_denoising_follows_the_prior_with_the_filter(monkeypatch, noise):
    """The filter runs after the solver and gains on photographs, recoloured ones too (measured
    with the photo prior: +1.7 to +2.1 dB on these four)."""
    for clean in (np.round(photo(128)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), recoloured_photo()):
        damaged, sigma = (noisy(clean, 25), 25) if noise == "gaussian" else (sensor(clean), None)
        with_filter = psnr(clean, restore.denoise(damaged, sigma=sigma, noise=noise))
        with monkeypatch.context() as patch:
            without_data_filter(patch)
            without = psnr(clean, restore.denoise(damaged, sigma=sigma, noise=noise))
        assert with_filter > without + 0.5


def test_a_prior_that_draws_its_images_whole_takes_no_filter(monkeypatch):
    """The digits prior's estimate is better than the filter around it (model.DigitsVAE.data_filter)."""
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    damaged = noisy(digit[:, :, None], 25)[:, :, 0]
    restored = restore.denoise(damaged, sigma=25, prior="digits")
    without_data_filter(monkeypatch)
    assert np.array_equal(restored, restore.denoise(damaged, sigma=25, prior="digits"))


def test_a_grey_observation_is_filtered_as_the_one_channel_it_is():
    """A grey photograph restored by a colour prior arrives as three copies of one noisy channel:
    the filter works on that channel, at the noise's own level, and gives it back in all three."""
    clean = photo(48).mean(1, keepdim=True)
    y = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    pilot = photo(48)                                         # a colour estimate: its luma is what counts
    out = Gaussian(0.1).wiener(pilot, y.expand(-1, 3, -1, -1), Denoising())
    grey = Gaussian(0.1).wiener(to_gray(pilot), y, Denoising())
    assert out.shape == (1, 3, 48, 48)
    assert torch.equal(out, grey.expand(-1, 3, -1, -1))


def test_a_grey_observation_is_filtered_at_its_own_noise_level():
    """With the clean image as pilot the filter is the oracle Wiener: filtered as the one channel
    it is, a grey observation comes closer to it than its three copies filtered as colour (where
    the luminance holds three times the noise the filter assumes)."""
    clean = photo(96).mean(1, keepdim=True)
    y = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(4))
    grey = Gaussian(0.1).wiener(clean.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1), Denoising())
    as_colour = empirical_wiener(y.expand(-1, 3, -1, -1), clean.expand(-1, 3, -1, -1), 0.01)
    error = lambda x: float((x[:, :1] - clean).square().mean())
    assert error(grey) < 0.8 * error(as_colour)


def fixed_passes(patch, count):
    """Restorations with ``count`` passes of the data's Wiener filter, whatever the image."""
    from restore.reconstructor import Reconstructor
    filtered = Reconstructor._filtered
    patch.setattr(Reconstructor, "_filtered",
                  lambda self, result, y, physics, data, passes: filtered(self, result, y, physics, data, passes=count))


def test_a_colour_photograph_takes_a_second_pass_around_the_first(monkeypatch):
    """The prior's colour differences are a weaker pilot than the filter's own first estimate
    (measured at sigma 15: +0.27 and +0.27 dB on these two; +0.73 and +0.65 before the first pilot
    took BM3D's first stage)."""
    for clean in (np.round(photo(128)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), recoloured_photo()):
        damaged = noisy(clean, 15)
        two = psnr(clean, restore.denoise(damaged, sigma=15))
        with monkeypatch.context() as patch:
            fixed_passes(patch, 1)
            one = psnr(clean, restore.denoise(damaged, sigma=15))
        assert two > one + 0.15


@pytest.mark.parametrize("sigma, shifts", [(15, [False, True]), (10, [False, True, False])])
def test_every_other_pass_puts_its_groups_between_the_last_ones(monkeypatch, sigma, shifts):
    """The second pass's references lie between the first's (held-out crops: +0.01 to +0.08 dB at
    no cost); a third's where the first's were."""
    import restore.fidelity.gaussian
    calls, filter = [], restore.fidelity.gaussian.empirical_wiener

    def recording(*args, shifted=False, **kwargs):
        calls.append(shifted)
        return filter(*args, shifted=shifted, **kwargs)
    monkeypatch.setattr(restore.fidelity.gaussian, "empirical_wiener", recording)
    clean = np.round(photo(64)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    restore.denoise(noisy(clean, sigma), sigma=sigma)
    assert calls == shifts


def passes_taken(patch):
    """The passes of each call of the filter's loop, as the restorations go."""
    from restore.reconstructor import Reconstructor
    filtered, taken = Reconstructor._filtered, []

    def recording(self, result, y, physics, data, passes):
        taken.append(torch.as_tensor(passes).expand(y.shape[0]).tolist())
        return filtered(self, result, y, physics, data, passes=passes)
    patch.setattr(Reconstructor, "_filtered", recording)
    return taken


def test_a_colour_photograph_takes_two_passes_only_where_its_noise_is_white(monkeypatch):
    """One level (above ``LOW_NOISE``): two passes. A level per pixel: one (a sensor's colour image,
    back in its own terms after two where its noise was made white; or a map of sigmas)."""
    from restore.reconstructor import Reconstructor
    clean = photo(48)
    y = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(7))).clamp(0, 1)
    taken = passes_taken(monkeypatch)
    solve = Reconstructor("photo", steps=0)
    solve(y, Denoising(), data=Gaussian(0.1))
    solve(y, Denoising(), data=Gaussian(torch.full((1, 1, 1, 1), 0.1)))     # one level per image
    assert taken == [[2], [2]]
    taken.clear()
    solve(y, Denoising(), data=Gaussian(torch.full((1, 1, 48, 48), 0.1)))
    assert taken == [[1]]
    taken.clear()
    solve(y, Denoising(), data=PoissonGaussian(1 / 40, 0.0004))
    assert taken == [[2], [1]]        # white of level 19.9 once stabilised: above LOW_NOISE


def test_a_lightly_noisy_colour_photograph_takes_a_third_pass(monkeypatch):
    """At sigma 10 the second pass's estimate is a better pilot still (measured: +0.17 and +0.13 dB
    on these two against two passes, since the first pilot took BM3D's first stage; +0.45 and +0.39
    before)."""
    for clean in (np.round(photo(128)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), recoloured_photo()):
        damaged = noisy(clean, 10)
        taken = passes_taken(monkeypatch)
        three = psnr(clean, restore.denoise(damaged, sigma=10))
        assert taken == [[3]]
        with monkeypatch.context() as patch:
            fixed_passes(patch, 2)
            two = psnr(clean, restore.denoise(damaged, sigma=10))
        assert three > two + 0.08


def test_each_image_of_a_batch_takes_the_passes_of_its_own_noise(monkeypatch):
    """Light noise and heavier in one batch: three passes and two, each image as if alone."""
    from restore.reconstructor import Reconstructor
    clean = torch.cat([photo(48), photo(48).flip(-1)])
    levels = torch.tensor([0.04, 0.1]).view(2, 1, 1, 1)
    y = (clean + levels * torch.randn(clean.shape, generator=torch.Generator().manual_seed(7))).clamp(0, 1)
    solve = Reconstructor("photo", steps=0)
    taken = passes_taken(monkeypatch)
    both = solve(y, Denoising(), data=Gaussian(levels)).x
    assert taken[0] == [3, 2]
    for i in range(2):
        alone = solve(y[i:i + 1], Denoising(), data=Gaussian(float(levels[i]))).x
        assert (both[i] - alone[0]).abs().max() < 1e-5


def test_a_grey_photograph_takes_one_pass_but_under_light_noise(monkeypatch):
    """Above ``LOW_NOISE`` one pass; below it two, the second around the first's estimate
    (measured on this grey flower at sigma 10: +0.42 dB; +0.98 before the first pilot took BM3D's
    first stage)."""
    clean = np.round(read_image(f"{SAMPLES}/flower.png").pixels.mean(2) * 255).astype(np.uint8)[:, :, None]
    heavy, light = (np.repeat(noisy(clean, sigma), 3, 2) for sigma in (25, 10))
    taken = passes_taken(monkeypatch)
    default_heavy = restore.denoise(heavy, sigma=25)
    two = psnr(clean[..., 0], restore.denoise(light, sigma=10)[..., 0])
    assert taken == [[1], [2]]
    fixed_passes(monkeypatch, 1)
    assert np.array_equal(default_heavy, restore.denoise(heavy, sigma=25))
    assert two > psnr(clean[..., 0], restore.denoise(light, sigma=10)[..., 0]) + 0.25


def test_quick_filters_once_in_windows_alone(monkeypatch):
    """``quick``: one pass of the windows (about a fifth of a pass's work), where the default takes
    two in groups and windows; the result is still nearer the image than the prior's estimate."""
    from restore.reconstructor import Reconstructor
    clean = photo(64)
    y = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(8))).clamp(0, 1)
    wiener, calls = Gaussian.wiener, []

    def recording(self, pilot, y, physics, *, groups=True, **options):
        calls.append(groups)
        return wiener(self, pilot, y, physics, groups=groups, **options)
    monkeypatch.setattr(Gaussian, "wiener", recording)
    error = lambda x: float((x - clean).square().mean())
    quick = Reconstructor("photo", steps=0, quick=True)(y, Denoising(), data=Gaussian(0.1)).x
    assert calls == [False]
    calls.clear()
    full = Reconstructor("photo", steps=0)(y, Denoising(), data=Gaussian(0.1)).x
    assert calls == [True, True]
    monkeypatch.setattr(Gaussian, "wiener", lambda self, pilot, y, physics, **options: pilot)
    prior_alone = Reconstructor("photo", steps=0)(y, Denoising(), data=Gaussian(0.1)).x
    assert error(full) < error(quick) < error(prior_alone)


def test_quick_on_the_command_line_and_in_the_api(tmp_path):
    from typer.testing import CliRunner
    from restore.cli import app
    from restore.images import Picture, write_image
    clean = np.round(photo(64)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    damaged = noisy(clean, 20)
    write_image(tmp_path / "n.png", Picture(damaged.astype(np.float32) / 255))
    result = CliRunner().invoke(app, ["denoise", str(tmp_path / "n.png"), "--sigma", "20", "--quick", "-q",
                                      "-o", str(tmp_path / "q.png")])
    assert result.exit_code == 0, result.output
    written = read_image(tmp_path / "q.png").pixels
    quick = restore.denoise(damaged, sigma=20, quick=True)
    assert np.abs(written - quick.astype(np.float32) / 255).max() <= 1 / 255
    assert not np.array_equal(quick, restore.denoise(damaged, sigma=20))


def by_hard_groups(y, pilot, variance, stride, group, threshold):
    """BM3D's first stage written out (8x8 patches, the search reaching the whole image)."""
    def hard(cy, cp, v):
        keep = np.abs(cy) > threshold * v**0.5
        keep[0, 0, 0] = True
        return keep, 1 / (v * keep.sum())
    return by_groups(y, pilot, variance, 8, stride, max(y.shape), group, shrink=hard)


@pytest.mark.parametrize("stride", [8, 3])
def test_the_first_stage_is_the_groups_hard_thresholding_written_out(stride):
    from restore.wiener import hard_thresholded
    rng = np.random.default_rng(6)
    y, pilot = rng.random((2, 19, 23)) - 0.5              # groups' means near 0: a DC below the threshold
    variance = 0.01 + 0.02 * rng.random((19, 23))
    out = hard_thresholded(torch.tensor(y)[None, None], torch.tensor(pilot)[None, None],
                           torch.tensor(variance)[None, None], stride=stride, group=5, threshold=2.0)
    expected = by_hard_groups(y, pilot, variance, stride, 5, 2.0)
    assert np.abs(out[0, 0].numpy() - expected).max() < 1e-5
    # Nothing dropped, each patch's estimate is itself: the observation comes back.
    same = hard_thresholded(torch.tensor(y)[None, None], torch.tensor(pilot)[None, None], 0.01, threshold=0)
    assert torch.allclose(same[0, 0].double(), torch.tensor(y), atol=1e-5)


def test_the_first_stage_gives_the_texture_a_smooth_pilot_lacks_from_the_data():
    from restore.wiener import hard_thresholded
    clean = photo()
    y = clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(3)) * 0.1
    blurred = torch.nn.functional.avg_pool2d(clean, 5, stride=1, padding=2, count_include_pad=False)
    score = lambda x: psnr(np.asarray(clean[0].permute(1, 2, 0)), np.asarray(x[0].permute(1, 2, 0).clamp(0, 1)))
    # The blurred pilot 15.2 dB, the noisy observation 20.9, the first stage matched on the blur 25.4.
    assert score(hard_thresholded(y, blurred, 0.01)) > max(score(y), score(blurred)) + 4
    with pytest.raises(ValueError, match="one shape"):
        hard_thresholded(y, blurred[..., :40], 0.01)


def test_the_filters_first_pilot_takes_the_datas_first_stage_beside_the_prior(monkeypatch):
    """The prior's estimate averaged with BM3D's first stage matched on it, as the first pass's
    pilot: textured crops the prior smooths gain (measured +0.32 / +0.25 dB at sigma 15 / 25 on
    the butterfly, +0.28 / +0.22 recoloured); only where the observation is the image plus noise."""
    from restore.fidelity import gaussian as fidelity
    for clean in (np.round(photo(128)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), recoloured_photo()):
        for sigma in (15, 25):
            damaged = noisy(clean, sigma)
            mixed = psnr(clean, restore.denoise(damaged, sigma=sigma))
            with monkeypatch.context() as patch:
                patch.setattr(fidelity, "PILOT_SHARE", 0.0)
                alone = psnr(clean, restore.denoise(damaged, sigma=sigma))
            assert mixed > alone + 0.15, (sigma, mixed, alone)
    estimate = photo(32)
    for physics in (Inpainting(torch.ones(1, 1, 32, 32, dtype=torch.bool)),):
        assert Gaussian(0.1).pilot(estimate, estimate, physics) is estimate
    mixed = Gaussian(0.1).pilot(estimate, estimate + 0.1, Denoising())
    assert not torch.equal(mixed, estimate) and bool(((mixed >= 0) & (mixed <= 1)).all())


def test_the_first_stage_is_left_out_under_heavy_noise_image_by_image():
    """Above FIRST_STAGE_NOISE the first pilot is the prior's estimate itself; in a batch, each
    image by its own level."""
    from restore.fidelity import FIRST_STAGE_NOISE
    estimate = photo(32).expand(2, -1, -1, -1).contiguous()
    y = (estimate + 0.05 * torch.randn(estimate.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    heavy = FIRST_STAGE_NOISE * 1.1
    assert torch.equal(Gaussian(heavy).pilot(estimate, y, Denoising()), estimate)
    light = Gaussian(FIRST_STAGE_NOISE * 0.9).pilot(estimate, y, Denoising())
    both = Gaussian(torch.tensor([FIRST_STAGE_NOISE * 0.9, heavy]).view(2, 1, 1, 1)).pilot(estimate, y, Denoising())
    assert not torch.equal(light[0], estimate[0]) and torch.equal(both[1], estimate[1])
    assert torch.allclose(both[0], light[0], atol=1e-6)


def test_a_grey_sensor_observation_takes_the_first_stage_a_colour_one_takes_it_where_stabilised(monkeypatch):
    """A grey observation under a sensor's noise is filtered in its own terms, first pilot included
    (the samples turned grey, two draws of the noise each: the flower +0.28 / +0.18 dB, the lake
    +0.08 / +0.10, the butterfly -0.12 / -0.12); a colour one's filter in its own terms comes after
    its restoration where the noise is white, which had the first stage, so there it is left out."""
    from restore.fidelity import gaussian as fidelity
    grey = np.round(read_image(f"{SAMPLES}/flower.png").pixels.mean(2, keepdims=True) * 255)
    clean, damaged = np.repeat(grey, 3, 2).astype(np.uint8), np.repeat(sensor(grey), 3, 2)
    mixed = psnr(clean, restore.denoise(damaged, noise="poisson-gaussian:0.025,0.0004"))
    with monkeypatch.context() as patch:
        patch.setattr(fidelity, "PILOT_SHARE", 0.0)
        alone = psnr(clean, restore.denoise(damaged, noise="poisson-gaussian:0.025,0.0004"))
    assert mixed > alone + 0.1, (mixed, alone)
    term = PoissonGaussian(1 / 40, 0.02**2)
    estimate = photo(32)
    y = (estimate + 0.05 * torch.randn(estimate.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    assert term.pilot(estimate, y, Denoising()) is estimate
    assert not torch.equal(term.pilot(estimate, y[:, :1].expand(-1, 3, -1, -1), Denoising()), estimate)


@pytest.mark.parametrize("shape", [(2, 3, 70, 90), (1, 1, 5, 7), (1, 3, 33, 8)])
def test_each_filter_call_counts_its_bands_from_0_to_its_total(shape, monkeypatch):
    """What the progress bar of each of the data's filter passes shows: every band once, ending at
    the total the call announced before its first, also where bands are small and the image tiny."""
    monkeypatch.setattr(wiener_module, "CHUNK", 2**16)
    monkeypatch.setattr(wiener_module, "MATCH_CHUNK", 2**18)
    monkeypatch.setattr(wiener_module, "WINDOW_CHUNK", 64)
    y = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    for call in (wiener_module.empirical_wiener, wiener_module.hard_thresholded, wiener_module.windowed_wiener):
        heard = []
        with wiener_module.reporting(lambda done, total: heard.append((done, total))):
            call(y, y, 0.01)
        total = heard[0][1]
        assert heard == [(done, total) for done in range(total + 1)] and total > 0, call.__name__
