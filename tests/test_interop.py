"""DeepInverse round trip: its physics in restore's Reconstructor, restore's prior in its places."""
import pytest
import torch

dinv = pytest.importorskip("deepinv")

from restore.fidelity import Gaussian  # noqa: E402
from restore.interop import deepinv_denoiser, deepinv_reconstructor, from_deepinv  # noqa: E402
from restore.physics import Inpainting  # noqa: E402
from restore.reconstructor import Reconstructor  # noqa: E402


def _images(n=2, side=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    phase = torch.rand(n, 3, 1, 1, generator=g) * 6
    return (0.5 + 0.35 * torch.sin(4 * xx + 3 * yy + phase)).float()


def _psnr(a, b):
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


PHYSICS = {
    "denoising": lambda: dinv.physics.Denoising(noise_model=dinv.physics.GaussianNoise(0.1)),
    "inpainting": lambda: dinv.physics.Inpainting((3, 32, 32), mask=0.6, noise_model=dinv.physics.GaussianNoise(0.02),
                                                  rng=torch.Generator().manual_seed(0)),
    "downsampling": lambda: dinv.physics.Downsampling((3, 32, 32), filter="bicubic", factor=2,
                                                      noise_model=dinv.physics.GaussianNoise(0.01)),
    "blur": lambda: dinv.physics.Blur(dinv.physics.functional.gaussian_blur(sigma=(1.0, 1.0)), padding="circular",
                                      noise_model=dinv.physics.GaussianNoise(0.01)),
}


@pytest.mark.parametrize("name", PHYSICS)
def test_deepinv_physics_run_through_restores_reconstructor(name, tiny_prior):
    """DeepInverse's Denoising, Inpainting, Downsampling and Blur with GaussianNoise are accepted as
    they are; the result brings the code and gets closer to the truth than the adjoint does."""
    model, _ = tiny_prior
    physics = PHYSICS[name]()
    x = _images()
    y = physics(x)
    result = Reconstructor(model, steps=5)(y, physics)
    assert result.x.shape == x.shape and torch.isfinite(result.x).all()
    assert result.z.shape[0] == 2
    assert _psnr(result.x, x) > _psnr(physics.A_adjoint(y).clamp(0, 1), x) - 0.5


def test_deepinv_noise_becomes_restores_data_term_and_prox_conventions_agree():
    mask = (torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1)) > 0.4).float()
    theirs = dinv.physics.Inpainting((3, 16, 16), mask=mask.expand(1, 3, 16, 16)[0],
                                     noise_model=dinv.physics.GaussianNoise(0.05))
    physics, data = from_deepinv(theirs)
    assert isinstance(data, Gaussian) and abs(data.sigma - 0.05) < 1e-7
    ours = Inpainting(1 - mask)
    z, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    assert torch.allclose(physics.A(z), ours.A(z))
    assert torch.allclose(physics.prox_l2(z, y, 3.0), ours.prox_l2(z, y, 3.0), atol=1e-5)
    # A clean physics is taken as restore takes a clean image (1/255), never as sigma 0.
    assert from_deepinv(dinv.physics.Denoising(noise_model=dinv.physics.GaussianNoise(0.0)))[1].sigma == pytest.approx(1 / 255)
    with pytest.raises(ValueError, match="Gaussian noise"):
        from_deepinv(dinv.physics.Denoising(noise_model=dinv.physics.PoissonNoise(0.1)))


def test_restore_as_deepinv_reconstructor_and_denoiser(tiny_prior):
    model, _ = tiny_prior
    reconstructor = deepinv_reconstructor(model, steps=3)
    assert isinstance(reconstructor, dinv.models.Reconstructor)
    physics = PHYSICS["inpainting"]()
    x = _images(seed=2)
    x_hat = reconstructor(physics(x), physics)
    assert torch.is_tensor(x_hat) and x_hat.shape == x.shape

    denoiser = deepinv_denoiser(model)
    assert isinstance(denoiser, dinv.models.Denoiser)
    noisy = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    one = denoiser(noisy, 0.1)
    per_image = denoiser(noisy, torch.tensor([0.1, 0.1]))
    assert torch.allclose(one, per_image, atol=1e-5)
    assert _psnr(one, x) > _psnr(noisy.clamp(0, 1), x) + 1.0


@pytest.mark.parametrize("name", ["decolorize", "downsampling-double", "inpainting"])
def test_the_clip_of_deepinv_physics_keeps_what_it_sees(name):
    """The clip to [0, 1] through a DeepInverse physics: one that mixes the channels (decolorize),
    one in float64, and a mask (the plain clip)."""
    physics = {"decolorize": lambda: dinv.physics.Decolorize(),
               "downsampling-double": lambda: dinv.physics.Downsampling((3, 32, 32), filter="bicubic", factor=2).double(),
               "inpainting": PHYSICS["inpainting"]}[name]()
    ours, _ = from_deepinv(physics)
    dtype = torch.float64 if name.endswith("double") else torch.float32
    x = _images(n=1).to(dtype)
    x[:, :1, 4::7, 3::9] += 0.5                  # overshoots in one channel: room beside them and in the others
    out = ours.clipped(x)
    assert out.dtype == dtype and float(out.min()) >= 0 and float(out.max()) <= 1
    if name == "inpainting":
        assert torch.equal(out, x.clamp(0, 1))
        return
    before = float((ours.A(x.clamp(0, 1)) - ours.A(x)).abs().max())
    assert float((ours.A(out) - ours.A(x)).abs().max()) < before / 10


def test_a_float64_physics_restores_as_its_float32_twin(tiny_prior):
    """A physics made in float64 (``.double()``) takes float32 observations as its float32 twin does:
    the solver's tensors are the prior's float32 (it raised "Input type ... and weight type ...")."""
    model, _ = tiny_prior
    x = _images(1)
    single = dinv.physics.Downsampling(img_size=(3, 32, 32), factor=2, filter="bicubic")
    double = dinv.physics.Downsampling(img_size=(3, 32, 32), factor=2, filter="bicubic").double()
    y = single.A(x)
    out = {name: Reconstructor(model, steps=2)(y, physics).x for name, physics in (("32", single), ("64", double))}
    assert out["64"].dtype == torch.float32 and torch.allclose(out["64"], out["32"], atol=2e-3)
