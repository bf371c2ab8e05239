"""Data terms as objects: one noise level or one per pixel, any forward model, the solvers' use of them."""
import numpy as np
import pytest
import torch

from restore.fidelity import DataTerm, Gaussian, JPEGConstraint
from restore.model import ConvVAE, ConvVAEConfig
from restore.physics import Blur, Denoising, Downsampling, Inpainting, LinearPhysics, conjugate_gradient, gaussian_kernel, motion_kernel
from restore.solver import csgm, joint_map
from restore.tasks.dejpeg import jpeg_round_trip

torch.manual_seed(0)


def _vae():
    torch.manual_seed(0)
    return ConvVAE(ConvVAEConfig(width=8, latent_channels=2, levels=2, tile_size=16)).eval()


PHYSICS = {
    "denoising": lambda: Denoising(),
    "inpainting": lambda: Inpainting((torch.rand(1, 1, 16, 16) < 0.3).float()),
    "downsampling": lambda: Downsampling((16, 16), 2),
    "blur": lambda: Blur(gaussian_kernel(1.0)),
}


@pytest.mark.parametrize("name", PHYSICS)
def test_per_pixel_noise_solves_the_weighted_x_step(name):
    """prox with a per-pixel sigma zeroes the gradient of |A x - y|^2_W / 2 + |x - z|^2 / (2 gamma), W = 1 / sigma^2."""
    op = PHYSICS[name]().double()
    op.cg_iterations = op.pcg_iterations = 300
    x_true = torch.rand(1, 3, 16 + 2 * getattr(op, "margin", 0), 16 + 2 * getattr(op, "margin", 0), dtype=torch.float64)
    y = op.A(x_true)
    sigma = 0.02 + 0.1 * torch.rand_like(y)
    y = y + sigma * torch.randn_like(y)
    z = torch.rand_like(x_true)
    x = Gaussian(sigma).prox(z, y, op, 0.05**2)
    grad = op.A_adjoint((op.A(x) - y) / sigma**2) + (x - z) / 0.05**2
    assert grad.abs().max() < 1e-5 * (1 / sigma**2).max()


@pytest.mark.parametrize("name", PHYSICS)
def test_solvers_take_a_per_pixel_noise_level(name):
    """A per-pixel sigma runs through both solvers (it once failed on 'Boolean value of Tensor'), and
    one level written per pixel restores as that level does."""
    op = PHYSICS[name]()
    vae = _vae()
    side = 16 + 2 * getattr(op, "margin", 0)
    side += -side % 4                   # the prior's sides are multiples of 4
    y = op.A(torch.rand(1, 3, side, side))
    x0 = op.A_adjoint(y)
    flat = joint_map(y, op, vae, x0=x0, data=Gaussian(0.05), steps=3)
    per_pixel = joint_map(y, op, vae, x0=x0, data=Gaussian(torch.full_like(y, 0.05)), steps=3)
    assert torch.isfinite(per_pixel.x).all()
    assert (flat.x - per_pixel.x).abs().max() < 2e-3
    varying = csgm(y, op, vae, x0=x0, data=Gaussian(0.02 + 0.1 * torch.rand_like(y)), steps=2)
    assert torch.isfinite(varying.x).all()


def test_noisier_pixels_keep_less_of_the_data():
    """Where sigma is larger, the x-step trusts the observation less."""
    y = torch.ones(1, 1, 2, 2)
    z = torch.zeros(1, 1, 2, 2)
    sigma = torch.tensor([0.01, 0.1, 0.5, 2.0]).view(1, 1, 2, 2)
    x = Gaussian(sigma).prox(z, y, Denoising(), 0.1**2).flatten()
    assert (x[:-1] > x[1:]).all() and x[0] > 0.95 and x[-1] < 0.01


def test_bad_noise_levels_and_data_terms_are_refused():
    with pytest.raises(ValueError, match="sigma"):
        Gaussian(0)
    with pytest.raises(ValueError, match="sigma"):
        Gaussian(torch.tensor([0.1, 0.0]))
    vae = _vae()
    y = torch.rand(1, 3, 16, 16)
    with pytest.raises(TypeError, match="data term"):
        joint_map(y, Denoising(), vae, x0=y, data=0.1)
    _, quantisation = jpeg_round_trip(np.random.default_rng(0).random((16, 16, 3)).astype(np.float32), 20)
    with pytest.raises(ValueError, match="differentiable"):
        csgm(y, Denoising(), vae, x0=y, data=JPEGConstraint(quantisation), steps=1)


def test_a_new_data_term_is_one_class():
    """The solver asks the data term only: a Laplace-like term written here runs through joint_map."""

    class Scaled(DataTerm):
        def __init__(self, inner):
            self.inner = inner
            self.calls = 0

        def value(self, ax, y):
            return self.inner.value(ax, y)

        def prox(self, z, y, physics, gamma, *, x0=None):
            self.calls += 1
            return self.inner.prox(z, y, physics, gamma, x0=x0)

        def precision(self, physics, x):
            return self.inner.precision(physics, x)

    term = Scaled(Gaussian(0.1))
    y = torch.rand(1, 3, 16, 16)
    joint_map(y, Denoising(), _vae(), x0=y, data=term, steps=4)
    assert term.calls == 4 + 2          # the start, one per step, the last


def test_blur_x_step_is_preconditioned_to_the_exact_solution_inside_the_image():
    """The default deblurring x-step (few Fourier-preconditioned iterations) matches a fully
    converged solve on the pixels that are output (the margin is cut away)."""
    op = Blur(gaussian_kernel(2.0))
    m = op.margin
    x = torch.rand(2, 3, 64 + 2 * m, 64 + 2 * m)
    y = op.A(x) + 0.01 * torch.randn(2, 3, 64, 64)
    z = torch.rand_like(x)
    exact = conjugate_gradient(lambda v: op.A_adjoint(op.A(v)) + v / 25, op.A_adjoint(y) + z / 25, z, iterations=800)
    error = (op.prox_l2(z, y, 25.0) - exact)[..., m:-m, m:-m]
    assert error.pow(2).mean().sqrt() < 5e-4
    plain = LinearPhysics.prox_l2(op, z, y, 25.0)        # 25 unpreconditioned iterations, for scale
    assert (plain - exact)[..., m:-m, m:-m].pow(2).mean().sqrt() < 5e-4


def test_blur_x_step_in_the_fourier_domain_is_preconditioned_conjugate_gradients():
    """The x-step's iterations on half spectra are, iterate for iterate, preconditioned conjugate
    gradients on the image zero-padded to the FFT's sides (where the padding sees no data)."""
    from restore.physics import fast_length
    op = Blur(motion_kernel(9, 20)).double()
    op.pcg_iterations = 3
    m, side = op.margin, 41 + 2 * op.margin
    size = (fast_length(side),) * 2
    assert size[0] > side
    x = torch.rand(2, 3, side, side, dtype=torch.float64)
    y = op.A(x) + 0.01 * torch.randn(2, 3, 41, 41, dtype=torch.float64)
    z = torch.rand_like(x)
    transfer = op.transfer(size, z.device, z.dtype)
    window = torch.zeros(size, dtype=z.dtype)
    window[m:side - m, m:side - m] = 1

    def circular(v, kernel):
        return torch.fft.irfft2(torch.fft.rfft2(v) * kernel, s=size)

    def pad(v):
        return torch.nn.functional.pad(v, (0, size[1] - v.shape[-1], 0, size[0] - v.shape[-2]))

    rhs = circular(pad(torch.nn.functional.pad(y, (m, m, m, m))), transfer.conj()) + pad(z) / 25
    expected = conjugate_gradient(lambda v: circular(window * circular(v, transfer), transfer.conj()) + v / 25,
                                  rhs, pad(z), iterations=3,
                                  precondition=lambda r: circular(r, 1 / (transfer.abs() ** 2 + 1 / 25)))
    assert torch.allclose(op.prox_l2(z, y, 25.0), expected[..., :side, :side], atol=1e-10)


@pytest.mark.parametrize("name", PHYSICS)
def test_posterior_samples_take_one_noise_level_per_image(name):
    """A noise level per image of the batch ((N, 1, 1, 1), as DeepInverse gives it) runs through the
    samples' variance for every forward model."""
    op = PHYSICS[name]()
    side = 16 + 2 * getattr(op, "margin", 0)
    side += -side % 4
    y = op.A(torch.rand(2, 3, side, side))
    result = joint_map(y, op, _vae(), x0=op.A_adjoint(y), data=Gaussian(torch.tensor([0.02, 0.05]).view(2, 1, 1, 1)),
                       steps=1, samples=2)
    assert result.variance.shape == (2, 1, side, side) and torch.isfinite(result.variance).all()


def test_local_means_are_the_weighted_means_over_each_window_written_out():
    """Each window's weighted mean (0 where a window sees nothing), the windows cut at the edges."""
    from restore.fidelity.consistency import _local_mean
    rng = np.random.default_rng(3)
    v = torch.tensor(rng.random((1, 2, 9, 12)))
    weight = torch.tensor((rng.random((1, 2, 9, 12)) > 0.3).astype(np.float64))
    weight[0, 0, :5, :6] = 0                                # a hole wider than a window
    k, r = 3, 1
    mean = _local_mean(weight, k)(v).numpy()
    for c in range(2):
        for i in range(9):
            for j in range(12):
                rows, columns = slice(max(0, i - r), i + r + 1), slice(max(0, j - r), j + r + 1)
                w = weight[0, c, rows, columns].numpy()
                expected = (w * v[0, c, rows, columns].numpy()).sum() / w.sum() if w.sum() else 0.0
                assert abs(mean[0, c, i, j] - expected) < 1e-5


def test_window_extremes_are_each_windows_highest_and_lowest_seen_pixel():
    """Written out window by window, cut short at the edges; with ``observed``, only the seen pixels."""
    from restore.fidelity import window_extremes
    rng = np.random.default_rng(3)
    y = torch.from_numpy(rng.random((2, 3, 13, 17))).float()
    observed = torch.from_numpy(rng.random((1, 1, 13, 17)) > 0.3).float()
    radius = 2
    for seen in (None, observed):
        high, low, share = window_extremes(y, seen, radius=radius)
        mask = np.ones((13, 17), bool) if seen is None else seen[0, 0].numpy() > 0.5
        for i in range(13):
            for j in range(17):
                rows, cols = slice(max(i - radius, 0), i + radius + 1), slice(max(j - radius, 0), j + radius + 1)
                window = y[:, :, rows, cols].numpy()[..., mask[rows, cols]]
                assert share[0, 0, i, j] == pytest.approx(mask[rows, cols].mean())
                if window.shape[-1]:
                    assert np.array_equal(high[:, :, i, j].numpy(), window.max(-1))
                    assert np.array_equal(low[:, :, i, j].numpy(), window.min(-1))
                else:
                    assert (high[:, :, i, j] < low[:, :, i, j]).all()
