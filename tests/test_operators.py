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


def test_fill_holes_leaves_no_hole_and_keeps_known_pixels():
    x = torch.rand(1, 3, 32, 32)
    missing = torch.zeros(1, 1, 32, 32)
    missing[..., 8:24, 8:24] = 1
    filled = fill_holes(x * (1 - missing), 1 - missing)
    assert torch.equal(filled[..., :8, :], x[..., :8, :])
    hole = filled[..., 8:24, 8:24]
    assert hole.min() >= x.min() - 1e-6 and hole.max() <= x.max() + 1e-6


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
