import numpy as np
import pytest
import torch

from restore.fill import fill_holes
from restore.physics import Blur, Denoising, Downsampling, GaussianNoise, Inpainting, gaussian_kernel, motion_kernel, wiener
from restore.resize import imresize, resize_matrix
from restore.tasks import Inpaint

torch.manual_seed(0)


def _missing(shape):
    return (torch.rand(1, 1, *shape) < 0.4).float()


SHAPE = (24, 36)
PHYSICS = {
    "denoising": lambda: Denoising(),
    "inpainting": lambda: Inpainting(_missing(SHAPE)),
    "downsampling2": lambda: Downsampling(SHAPE, 2),
    "downsampling3": lambda: Downsampling(SHAPE, 3),
    "downsampling4": lambda: Downsampling(SHAPE, 4),
    "blur-gaussian": lambda: Blur(gaussian_kernel(1.5)),
    "blur-motion-wide-margin": lambda: Blur(motion_kernel(7, 30), margin=6),
}


def _x(op, n=2, dtype=torch.float32):
    m = getattr(op, "margin", 0)          # a blur reads a margin around its output
    return torch.randn(n, 3, SHAPE[0] + 2 * m, SHAPE[1] + 2 * m, dtype=dtype)


@pytest.mark.parametrize("name", PHYSICS)
def test_adjoint_identity(name):
    op = PHYSICS[name]().double()
    x = _x(op, dtype=torch.float64)
    y = torch.randn_like(op.A(x))
    lhs = (op.A(x) * y).sum()
    rhs = (x * op.A_adjoint(y)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-5), (lhs, rhs)


@pytest.mark.parametrize("name", PHYSICS)
def test_shapes(name):
    op = PHYSICS[name]()
    x = _x(op)
    y = op.A(x)
    scale = getattr(op, "scale", 1)
    assert y.shape == (2, 3, SHAPE[0] // scale, SHAPE[1] // scale)
    assert op.A_adjoint(y).shape == x.shape


@pytest.mark.parametrize("per_pixel", [False, True], ids=["one-gamma", "per-pixel-gamma"])
@pytest.mark.parametrize("name", PHYSICS)
def test_prox_l2_solves_the_x_step(name, per_pixel):
    """prox_l2(z, y, gamma) zeroes the gradient of |Ax - y|^2 / 2 + |x - z|^2 / (2 gamma)."""
    op = PHYSICS[name]().double()
    op.cg_iterations = op.pcg_iterations = 200
    x_true = _x(op, n=1, dtype=torch.float64).abs()
    y = op.A(x_true) + 0.05 * torch.randn_like(op.A(x_true))
    z = torch.rand_like(x_true)
    gamma = (0.1 / 0.05) ** 2
    if per_pixel:
        gamma = gamma * (0.5 + torch.rand_like(x_true))
    x = op.prox_l2(z, y, gamma)
    grad = op.A_adjoint(op.A(x) - y) + (x - z) / gamma
    assert grad.abs().max() < 1e-6


def test_buffers_move_with_the_module():
    op = Inpainting(_missing((8, 8)))
    assert [name for name, _ in op.named_buffers()] == ["observed"]
    assert {name for name, _ in Downsampling((8, 8), 2).named_buffers()} == {"r_h", "r_w"}
    assert op.double().observed.dtype == torch.float64


def test_inpainting_keeps_observed_pixels_when_noise_free():
    x = torch.rand(1, 3, 16, 16)
    missing = _missing((16, 16))
    op = Inpainting(missing)
    out = op.prox_l2(torch.zeros_like(x), op.A(x), gamma=1e10)
    observed = missing == 0
    assert torch.allclose(out.expand_as(x)[observed.expand_as(x)], x[observed.expand_as(x)], atol=1e-6)
    assert (out[(missing == 1).expand_as(x)] == 0).all()


def test_blur_is_a_convolution_and_exact_inside_a_tile():
    # An impulse comes out as the kernel itself (flipped would mean a correlation).
    kernel = motion_kernel(7, 30)
    op = Blur(kernel)
    r = op.margin
    impulse = torch.zeros(1, 1, 2 * r + 9, 2 * r + 9)
    impulse[..., r + 4, r + 4] = 1
    out = op.A(impulse)[0, 0]
    assert torch.allclose(out[4 - r:4 + r + 1, 4 - r:4 + r + 1], kernel, atol=1e-6)
    # The blur of a tile read with its margin is the whole image's blur on that tile.
    image = torch.rand(1, 3, 40, 40)
    whole = op.blur_image(image)
    tile = op.A(image[..., 10 - r:30 + r, 5 - r:25 + r])
    assert torch.allclose(tile, whole[..., 10:30, 5:25], atol=1e-6)


@pytest.mark.parametrize("margin", [None, 9])
def test_blur_equals_the_valid_convolution_at_any_tile_size(margin):
    """Through FFTs over padded sides the blur is still the linear convolution, for an uneven
    kernel, a margin beyond its radius and tile sides with large prime factors (67, 71)."""
    from scipy.signal import convolve2d
    kernel = torch.rand(5, 9, dtype=torch.float64)
    kernel /= kernel.sum()
    op = Blur(kernel, margin=margin).double()
    m = op.margin
    x = torch.rand(1, 2, 67, 71, dtype=torch.float64)
    expected = np.stack([convolve2d(c.numpy(), kernel.numpy(), mode="same") for c in x[0]])[:, m:-m, m:-m]
    assert np.allclose(op.A(x)[0].numpy(), expected, atol=1e-12)


def test_kernels_are_normalised_and_motion_points_along_its_angle():
    for k in (gaussian_kernel(2.0), motion_kernel(15, 0), motion_kernel(15, 90)):
        assert abs(float(k.sum()) - 1) < 1e-6 and k.shape[0] % 2 == 1
    horizontal, vertical = motion_kernel(15, 0), motion_kernel(15, 90)
    assert horizontal.sum(0).count_nonzero() > 3 * horizontal.sum(1).count_nonzero()
    assert torch.allclose(vertical, horizontal.T, atol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        gaussian_kernel(0)


def test_wiener_undoes_a_blur_better_than_nothing():
    from tests.conftest import smooth_images
    x = torch.from_numpy(smooth_images(1, 64, seed=8)).permute(0, 3, 1, 2)
    kernel = gaussian_kernel(2.0)
    y = Blur(kernel).blur_image(x)
    guess = wiener(y, kernel, sigma=1 / 255)
    assert ((guess - x) ** 2).mean() < 0.5 * ((y - x) ** 2).mean()


@pytest.mark.parametrize("angle", [0, 30, 45, 60, 90, 120, 150])
def test_wiener_undoes_a_motion_blur_at_any_angle(angle):
    """A diagonal motion blurs the image mirrored by its own mirror image: undone through the
    mirrored image, a blur at 45 degrees came out worse than the blurred image (1.7 times its
    squared error), at 30, 60 and 120 barely better (0.8 to 1.2)."""
    from tests.conftest import smooth_images
    x = torch.from_numpy(smooth_images(1, 64, seed=8)).permute(0, 3, 1, 2)
    kernel = motion_kernel(15, angle)
    y = Blur(kernel).blur_image(x)
    guess = wiener(y, kernel, sigma=1 / 255)
    assert ((guess - x) ** 2).mean() < 0.7 * ((y - x) ** 2).mean()


def test_gaussian_noise_is_separate_and_seeded():
    y = torch.zeros(1, 3, 8, 8)
    a = GaussianNoise(0.1)(y, torch.Generator().manual_seed(1))
    b = GaussianNoise(0.1)(y, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and 0.05 < float(a.std()) < 0.15
    assert torch.equal(GaussianNoise(0)(y), y)


def test_fill_holes_stays_within_the_observed_values():
    """A hole at the border beside a sharp dark line (a frame, a scan's rule): the biharmonic fill
    carried the line's slope on to -0.84, which the solver then refused as input out of range."""
    x = torch.full((1, 3, 48, 48), 240 / 255)
    x[..., 44] = 20 / 255
    missing = torch.zeros(1, 1, 48, 48)
    missing[..., 15:30, 45:] = 1
    filled = fill_holes(x * (1 - missing), 1 - missing)
    assert float(filled.min()) >= 20 / 255 - 1e-6 and float(filled.max()) <= 240 / 255 + 1e-6
    error = x * 0
    error[..., 44] = -0.3
    carried = fill_holes(error * (1 - missing), 1 - missing, unseen=0.0)
    assert float(carried.min()) >= -0.3 - 1e-6 and float(carried.max()) <= 1e-6


def test_inpainting_a_hole_beside_a_line_at_the_border_is_filled(tiny_prior):
    from restore import inpaint
    image = np.full((48, 48, 3), 240, np.uint8)
    image[:, 44] = 20
    mask = np.zeros((48, 48), bool)
    mask[15:30, 45:] = True
    out = inpaint(image, mask=mask, prior=str(tiny_prior[1]), steps=2)
    assert np.array_equal(out[~mask], image[~mask])


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
    # border's slope inwards and would rise far above every observed value (0.1 and more); the
    # default fill rose less than 0.02 above them, and both now stop at the highest.
    u = torch.arange(64.0) - 31.5
    x = (1 - torch.sqrt(u.view(-1, 1) ** 2 + u.view(1, -1) ** 2) / 64).view(1, 1, 64, 64)
    observed = torch.ones(1, 1, 64, 64)
    observed[..., 16:48, 16:48] = 0
    border_max = float(x[observed.bool()].max())
    for length in ({}, {"length": 1e6}):
        filled = fill_holes(x * observed, observed, **length)
        assert float(filled.max()) <= border_max + 1e-6
        assert float(filled[..., 16:48, 16:48].min()) >= border_max - 0.1     # a plateau, not a dip
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


def test_downsampling_of_constant_is_constant():
    x = torch.full((1, 1, 16, 24), 0.3)
    assert torch.allclose(Downsampling((16, 24), 4).A(x), torch.full((1, 1, 4, 6), 0.3))
    assert torch.allclose(imresize(torch.full((1, 1, 4, 6), 0.3), (16, 24)), x)


def test_downsampling_rejects_bad_scale_and_size():
    with pytest.raises(ValueError, match="scale"):
        Downsampling((16, 16), 5)
    with pytest.raises(ValueError, match="multiples"):
        Downsampling((10, 12), 4)
    with pytest.raises(ValueError, match="takes"):
        Downsampling((16, 16), 4).A(torch.rand(1, 1, 8, 8))


def test_inpaint_refinement_carries_the_decoders_error_into_the_holes():
    # A decoder that is off by a smooth error everywhere: what it gets wrong around a hole
    # tells what it gets wrong inside, so the last step puts the image back exactly.
    x = torch.rand(1, 3, 32, 32)
    error = 0.1 + torch.linspace(0, 0.2, 32).view(1, 1, 1, 32)
    missing = torch.zeros(1, 1, 32, 32)
    missing[..., 10:20, 12:26] = 1
    task = Inpaint()
    op = task.physics((32, 32), missing)
    d = x + error
    step = op.prox_l2(d, op.A(x), gamma=1e8)
    # the x-step alone leaves the decoder's guess in the hole ...
    assert torch.allclose(step[..., 10:20, 12:26], d[..., 10:20, 12:26])
    # ... the refinement puts the image back
    assert torch.allclose(task.refine(op, op.A(x), task.first_guess(op, op.A(x)))(step, d), x, atol=1e-4)


@pytest.mark.parametrize("name", PHYSICS)
def test_gram_diagonal_is_the_diagonal_of_AtA(name):
    op = PHYSICS[name]().double()
    x = _x(op, n=1, dtype=torch.float64)[:, :1]
    diagonal = op.gram_diagonal(x)
    assert diagonal.shape == x.shape
    flat = x.flatten()
    for i in torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:25]:
        e = torch.zeros_like(flat)
        e[i] = 1
        column = op.A_adjoint(op.A(e.view_as(x)))
        assert torch.isclose(column.flatten()[i], diagonal.flatten()[i]), (name, int(i))


@pytest.mark.parametrize("name", PHYSICS)
def test_the_clip_keeps_what_the_forward_model_sees(name):
    """A restoration that overshoots [0, 1] where the range leaves room beside it is clipped without
    changing ``A`` of it: the excess goes to its neighbours (a downsampled cell's mean, a blur's
    sums stay). Where ``A`` sees each pixel alone, it is the plain clip."""
    op = PHYSICS[name]()
    inside = 0.2 + 0.6 * torch.rand(_x(op, n=1).shape, generator=torch.Generator().manual_seed(1))
    # Overshoots of a few pixels in a smooth field: an image in [0, 1] with the same A exists.
    bump = torch.zeros_like(inside)
    bump[..., 5::9, 4::11] = 0.5
    bump[..., 7::13, 9::7] = -0.5
    x = inside + bump
    out = op.clipped(x)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    if name in ("denoising", "inpainting"):
        assert torch.equal(out, x.clamp(0, 1))
        return
    before = float((op.A(x.clamp(0, 1)) - op.A(x)).abs().max())
    after = float((op.A(out) - op.A(x)).abs().max())
    # A cell's mean is fixed to float rounding; a blur, whose A^T A has eigenvalues near 0, is
    # brought back more slowly (a third of the clip's change at most after its 30 steps).
    assert before > 0.015 and after < before / (100 if name.startswith("down") else 3), (before, after)
    assert torch.equal(op.clipped(inside), inside)                # nothing outside: nothing moves
    pair = op.clipped(torch.cat([inside, x]))                     # a batch: each image its own
    assert torch.equal(pair[:1], inside) and torch.allclose(pair[1:], out, atol=1e-5)
    low = op.clipped(x.bfloat16())                                # bf16 in, bf16 out, float32 inside
    assert low.dtype == torch.bfloat16
    assert float((op.A(low.float()) - op.A(x)).abs().max()) < before / (10 if name.startswith("down") else 2)


def test_a_blur_kernel_must_be_non_negative_and_normalised():
    with pytest.raises(ValueError, match="sum to 1"):
        Blur(torch.ones(3, 3))
    with pytest.raises(ValueError, match="0 or more"):
        Blur(torch.tensor([[0.0, -0.5, 0.0], [0.5, 1.0, 0.5], [0.0, -0.5, 0.0]]))
    assert Blur(torch.ones(3, 3) / 9).gram_norm(None) == 1.0
