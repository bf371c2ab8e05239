import numpy as np
import pytest
import torch

from restore.operators import Denoise, Inpaint, Superres, fill_holes
from restore.resize import imresize, resize_matrix

torch.manual_seed(0)


def _missing(shape):
    return (torch.rand(1, 1, *shape) < 0.4).float()


OPERATORS = [Denoise(), Inpaint(_missing((24, 36))), Superres(2), Superres(3), Superres(4)]


@pytest.mark.parametrize("op", OPERATORS, ids=lambda op: f"{type(op).__name__}{op.scale}")
def test_adjoint_identity(op):
    x = torch.randn(2, 3, 24, 36, dtype=torch.float64)
    y = torch.randn_like(op(x))
    lhs = (op(x) * y).sum()
    rhs = (x * op.adjoint(y)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-5), (lhs, rhs)


@pytest.mark.parametrize("op", OPERATORS, ids=lambda op: f"{type(op).__name__}{op.scale}")
def test_shapes(op):
    x = torch.rand(2, 3, 24, 36)
    y = op(x)
    assert y.shape == (2, 3, 24 // op.scale, 36 // op.scale)
    assert op.adjoint(y).shape == x.shape
    assert op.initial_guess(y).shape == x.shape


@pytest.mark.parametrize("op", OPERATORS, ids=lambda op: f"{type(op).__name__}{op.scale}")
def test_data_consistency_solves_the_x_step(op):
    """The x-step's result zeroes the gradient of |Ax-y|^2/(2s^2) + |x-d|^2/(2g^2)."""
    x_true = torch.rand(1, 3, 24, 36, dtype=torch.float64)
    y = op(x_true) + 0.05 * torch.randn_like(op(x_true))
    d = torch.rand_like(x_true)
    sigma, gamma = 0.05, 0.1
    x = op.data_consistency(d, y, sigma, gamma, iterations=200)
    grad = op.adjoint(op(x) - y) / sigma**2 + (x - d) / gamma**2
    assert grad.abs().max() < 1e-6 * (1 / sigma**2)


def test_inpaint_keeps_observed_pixels_when_noise_free():
    x = torch.rand(1, 3, 16, 16)
    missing = _missing((16, 16))
    op = Inpaint(missing)
    out = op.data_consistency(torch.zeros_like(x), op(x), sigma=1e-6, gamma=0.1)
    observed = missing == 0
    assert torch.allclose(out.expand_as(x)[observed.expand_as(x)], x[observed.expand_as(x)], atol=1e-6)
    assert (out[(missing == 1).expand_as(x)] == 0).all()


def test_inpaint_crop_pads_past_the_edge():
    op = Inpaint(_missing((10, 10)))
    tiles = op.crop([(0, 0, 8, 8), (4, 4, 8, 8)])
    assert tiles.observed.shape == (2, 1, 8, 8)


def test_fill_holes_keeps_known_pixels_and_reproduces_planes():
    ramp = torch.linspace(0, 0.5, 32).view(1, 1, 1, 32) + torch.linspace(0, 0.3, 32).view(1, 1, 32, 1)
    x = ramp.expand(2, 3, 32, 32)
    missing = torch.zeros(1, 1, 32, 32)
    missing[..., 8:24, 8:24] = 1
    filled = fill_holes(x * (1 - missing), 1 - missing)
    assert torch.equal(filled[..., :8, :], x[..., :8, :])
    assert torch.allclose(filled, x, atol=1e-5)          # both terms of the energy vanish on a plane
    assert torch.equal(fill_holes(x, torch.zeros(1, 1, 32, 32)), torch.full_like(x, 0.5))


def test_fill_holes_flattens_deep_in_a_large_hole():
    # A cone whose top is missing: the biharmonic fill (length -> infinity) carries the
    # border's slope inwards and rises far above every observed value; the default fill
    # stays near them.
    u = torch.arange(64.0) - 31.5
    x = (1 - torch.sqrt(u.view(-1, 1) ** 2 + u.view(1, -1) ** 2) / 64).view(1, 1, 64, 64)
    observed = torch.ones(1, 1, 64, 64)
    observed[..., 16:48, 16:48] = 0
    border_max = float(x[observed.bool()].max())
    overshoot = float(fill_holes(x * observed, observed).max()) - border_max
    biharmonic = float(fill_holes(x * observed, observed, length=1e6).max()) - border_max
    assert overshoot < 0.02 < 0.1 < biharmonic
    with pytest.raises(ValueError, match="length"):
        fill_holes(x, observed, length=0)


def test_resize_matrix_rows_sum_to_one_and_reproduce_ramps():
    m = resize_matrix(16, 8)
    assert np.allclose(m.sum(1), 1)
    # Away from the borders the cubic kernel reproduces linear functions exactly:
    # output pixel i (1-based) sits at input coordinate 2i - 0.5 (MATLAB's pixel-centre convention).
    ramp = np.arange(1, 17, dtype=float)
    out = m @ ramp
    assert np.allclose(out[2:6], 2 * np.arange(3, 7) - 0.5)


def test_superres_of_constant_is_constant():
    x = torch.full((1, 1, 16, 24), 0.3)
    assert torch.allclose(Superres(4)(x), torch.full((1, 1, 4, 6), 0.3))
    assert torch.allclose(imresize(torch.full((1, 1, 4, 6), 0.3), (16, 24)), x)


def test_superres_rejects_bad_scale_and_size():
    with pytest.raises(ValueError, match="scale"):
        Superres(5)
    with pytest.raises(ValueError, match="multiples"):
        Superres(4)(torch.rand(1, 1, 10, 12))


def test_inpaint_final_step_carries_the_decoders_error_into_the_holes():
    # A decoder that is off by a smooth error everywhere: what it gets wrong around a hole
    # tells what it gets wrong inside, so the last step puts the image back exactly.
    x = torch.rand(1, 3, 32, 32)
    error = 0.1 + torch.linspace(0, 0.2, 32).view(1, 1, 1, 32)
    missing = torch.zeros(1, 1, 32, 32)
    missing[..., 10:20, 12:26] = 1
    op = Inpaint(missing)
    sigma = 1e-4
    out = op.final_step(x + error, op(x), sigma, gamma=1.0)
    assert torch.allclose(out, x, atol=1e-4)
    # every other step leaves the decoder's guess in the hole
    inside = op.data_consistency(x + error, op(x), sigma, 1.0)[..., 10:20, 12:26]
    assert torch.allclose(inside, (x + error)[..., 10:20, 12:26])
