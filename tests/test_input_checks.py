"""Wrong input to the advanced entry points (the Reconstructor, the metrics, the device) is refused
before any work, by one error that names the argument and says what to pass, not by torch's or
numpy's from deep inside."""
import math

import numpy as np
import pytest
import torch

from restore.devices import Autocast, DeviceError, check_device
from restore.fidelity import Gaussian, JPEGConstraint
from restore.metrics import psnr, ssim
from restore.model import ConvVAE, ConvVAEConfig
from restore.physics import Blur, Denoising, Downsampling, Inpainting
from restore.reconstructor import Reconstructor, Turned


@pytest.fixture(scope="module")
def vae() -> ConvVAE:
    """A small untrained prior: the checks do not care what it draws."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return ConvVAE(ConvVAEConfig(width=8, latent_channels=4, tile_size=16)).eval()


def _y(seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def _no_work(monkeypatch):
    """The solver, made to fail: a refusal must come before it runs."""
    def solve(*args, **kwargs):
        raise AssertionError("the solver ran before the input was checked")
    monkeypatch.setattr(Reconstructor, "_solve", solve)


# --- the Reconstructor's settings --------------------------------------------------------------

@pytest.mark.parametrize("steps", [2.5, "3", -1, True])
def test_steps_must_be_a_whole_number(vae, steps):
    with pytest.raises(ValueError, match=r"steps must be a whole number, 0 or more"):
        Reconstructor(vae, steps=steps)


@pytest.mark.parametrize("samples", [0, 1.5, "2", True])
def test_samples_must_be_a_whole_number_from_one(vae, samples):
    with pytest.raises(ValueError, match=r"samples must be a whole number, 1 or more"):
        Reconstructor(vae, steps=0, samples=samples)


@pytest.mark.parametrize("lr", [-0.1, None, "0.05", math.nan, math.inf, True])
def test_lr_must_be_a_number_from_zero(vae, lr):
    with pytest.raises(ValueError, match=r"lr must be a number 0 or more and at most 1 \(default 0.05\)"):
        Reconstructor(vae, steps=0, lr=lr)


def test_the_settings_the_library_passes_are_kept(vae):
    # lr 0 holds the code where the encoder put it (tests/test_context.py); numpy's integers count.
    Reconstructor(vae, steps=np.int64(3), samples=np.int64(2), lr=0.0)
    Reconstructor(vae, steps=0, samples=1, lr=1)


@pytest.mark.parametrize("prior", [None, 3, torch.nn.Conv2d(3, 3, 1)])
def test_the_prior_must_be_restores_vae(prior):
    with pytest.raises(TypeError, match=r"prior must be 'photo'.*restore.load_prior, got"):
        Reconstructor(prior, steps=0)


def test_a_wrapped_vae_is_a_prior(vae):
    # The solver's turns and the networks' autocast pass every call on to the VAE they wrap.
    Reconstructor(Turned(vae, True, (-1,)), steps=0)
    Reconstructor(Autocast(vae, torch.bfloat16), steps=0)


# --- the Reconstructor's observation -----------------------------------------------------------

@pytest.mark.parametrize("entry", ["forward", "estimate", "finish"])
def test_integer_images_are_refused_with_the_conversion(vae, entry, monkeypatch):
    _no_work(monkeypatch)
    run = Reconstructor(vae, steps=0)
    y = (_y() * 255).to(torch.uint8)
    call = {"forward": lambda: run(y, Denoising(), data=Gaussian(0.1)),
            "estimate": lambda: run.estimate(y, Denoising(), data=Gaussian(0.1)),
            "finish": lambda: run.finish(None, y, Denoising(), data=Gaussian(0.1))}[entry]
    with pytest.raises(ValueError, match=r"y must hold floats in \[0, 1\], got torch.uint8; pass y.float\(\) / 255"):
        call()


def test_a_float64_batch_is_restored_as_float32(vae):
    run = Reconstructor(vae, steps=0, quick=True)
    y = _y()
    single = run(y, Denoising(), data=Gaussian(0.1)).x
    double = run(y.double(), Denoising(), data=Gaussian(0.1)).x
    assert double.dtype == torch.float32 and torch.allclose(double, single, atol=1e-6)


def test_non_finite_values_are_refused(vae, monkeypatch):
    _no_work(monkeypatch)
    y = _y()
    y[0, 1, 2, 3] = math.nan
    with pytest.raises(ValueError, match="y has NaN or infinite values"):
        Reconstructor(vae, steps=0)(y, Denoising(), data=Gaussian(0.1))


def test_values_in_0_to_255_are_refused_with_the_division(vae, monkeypatch):
    _no_work(monkeypatch)
    with pytest.raises(ValueError, match=r"y must hold values in \[0, 1\].*divide 8-bit values by 255"):
        Reconstructor(vae, steps=0)(_y() * 255, Denoising(), data=Gaussian(0.1))


def test_the_range_allows_for_the_noise(vae):
    # Heavy noise reaches far beyond [0, 1] (deepinv's physics do not clip): its level widens the range.
    y = _y()
    y[0, 0, 5, 5], y[0, 2, 9, 9] = 2.1, -1.1
    run = Reconstructor(vae, steps=0, quick=True)
    assert run(y, Denoising(), data=Gaussian(0.2)).x.shape == y.shape
    with pytest.raises(ValueError, match=r"got -1.1 to 2.1; divide 8-bit values by 255"):
        run(y, Denoising(), data=Gaussian(0.02))


def test_a_y_that_requires_grad_is_restored_as_it_is(vae):
    run = Reconstructor(vae, steps=0, quick=True)
    y = _y()
    graded = run(y.clone().requires_grad_(), Denoising(), data=Gaussian(0.1)).x
    assert not graded.requires_grad
    assert torch.equal(graded, run(y, Denoising(), data=Gaussian(0.1)).x)


def test_a_y_on_another_device_than_the_prior_is_refused(vae, monkeypatch):
    _no_work(monkeypatch)
    y = torch.empty(1, 3, 16, 16, device="meta")
    with pytest.raises(ValueError, match=r"y is on meta and the prior on cpu; move y there \(y.to\('cpu'\)\)"):
        Reconstructor(vae, steps=0)(y, Denoising(), data=Gaussian(0.1))


@pytest.mark.parametrize("data,example", [(0.1, r"Gaussian\(0.1\)"), ("gaussian", r"Gaussian\(sigma\)")])
def test_data_must_be_a_data_term(vae, data, example, monkeypatch):
    _no_work(monkeypatch)
    with pytest.raises(TypeError, match=rf"data must be a data term such as restore.fidelity.{example}"):
        Reconstructor(vae, steps=0)(_y(), Denoising(), data=data)


# --- the metrics -------------------------------------------------------------------------------

@pytest.mark.parametrize("metric", [psnr, ssim])
def test_float_images_in_0_to_255_are_refused(metric):
    a = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"reference holds floats from .*divide 8-bit values by 255"):
        metric(a * 255, a * 255)
    with pytest.raises(ValueError, match=r"image holds floats from .*divide 8-bit values by 255"):
        metric(a, a * 255)


def test_float_images_a_hair_outside_0_1_are_scored():
    # A float32 restoration or noisy image may pass [0, 1] by rounding; they score as before.
    a = np.full((16, 16, 3), 0.5, np.float32)
    b = a.copy()
    b[0, 0] = (1.005, -0.005, 0.2)
    assert math.isfinite(psnr(a, b)) and -1 <= ssim(a, b) <= 1


def test_nan_in_a_float_image_is_refused():
    a = np.zeros((16, 16), np.float32)
    b = a.copy()
    b[3, 4] = math.nan
    with pytest.raises(ValueError, match="image has NaN or infinite values"):
        psnr(a, b)


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 40, 48)])
def test_ssim_of_a_channels_first_array_says_the_layout(shape):
    a = np.zeros(shape, np.uint8)
    with pytest.raises(ValueError, match=r"images are \(H, W, C\).*np.moveaxis\(a, 0, -1\)"):
        ssim(a, a)
    assert ssim(np.moveaxis(a, 0, -1), np.moveaxis(a, 0, -1)) == pytest.approx(1.0)


# --- the device --------------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["mps", "meta", torch.device("meta")])
def test_devices_restore_does_not_run_on_are_a_device_error(device):
    with pytest.raises(DeviceError, match=r"runs on CPUs and CUDA GPUs only; use auto, cpu, cuda or cuda:N"):
        check_device(device)


def test_a_prior_is_not_loaded_on_an_unsupported_device():
    from restore.priors import shared_prior
    with pytest.raises(DeviceError, match="device meta: restore runs on CPUs and CUDA GPUs only"):
        shared_prior("photo", "meta")


@pytest.mark.parametrize("available,expected", [(False, "cpu"), (True, "cuda")])
def test_auto_is_a_gpu_if_there_is_one(available, expected, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    assert check_device("auto") == check_device(" AUTO ") == torch.device(expected)


@pytest.mark.parametrize("device", ["bogus", None])
def test_a_device_torch_does_not_know_is_a_value_error(device):
    with pytest.raises(ValueError, match="unknown device; use auto, cpu, cuda or cuda:N") as caught:
        check_device(device)
    assert not isinstance(caught.value, DeviceError)


def test_the_functions_take_device_auto_as_the_command_line_does(monkeypatch):
    """``device="auto"`` is the CPU without a GPU, for a prior by name and for a loaded one; a device
    restore does not run on is refused before the loaded prior is moved there."""
    from restore import denoise, load_prior
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    image = np.zeros((28, 28), np.float32)
    image[6:22, 12:16] = 1.0
    by_name = denoise(image, sigma=25, prior="digits", steps=0, device="auto")
    assert np.array_equal(by_name, denoise(image, sigma=25, prior="digits", steps=0, device="cpu"))
    loaded = load_prior("digits")
    assert np.array_equal(denoise(image, sigma=25, prior=loaded, steps=0, device="auto"), by_name)
    with pytest.raises(DeviceError, match="CPUs and CUDA GPUs only"):
        denoise(image, sigma=25, prior=loaded, steps=0, device="meta")


@pytest.mark.parametrize("options,needle", [
    (dict(gamma=0), r"gamma must be a number above 0 and at most 1 \(the decoder's scale; None: the prior's\), got 0"),
    (dict(gamma=math.nan), "gamma must be a number above 0"),
    (dict(gamma=-1), "gamma must be a number above 0"),
    (dict(gamma="x"), "gamma must be a number above 0"),
    (dict(prior_weight=math.nan), r"prior_weight must be a number 0 or more \(default 1\), got nan"),
    (dict(prior_weight=-1), "prior_weight must be a number 0 or more"),
    (dict(prior_weight="x"), "prior_weight must be a number 0 or more"),
    (dict(lr=1e30), "lr must be a number 0 or more and at most 1"),
    (dict(quick="y"), "quick must be True or False, got 'y'"),
    (dict(anchor="x"), "anchor must be one of 'prior', 'encoder', got 'x'"),
    (dict(sampler="x"), "sampler must be one of 'encoder', 'langevin', got 'x'"),
])
def test_the_reconstructor_refuses_search_settings_as_the_solver_settings_do(vae, options, needle):
    """Taken in silence, several gave an image of NaN (gamma 0, lr 1e30) or failed deep in forward."""
    from restore.pipeline import SolverSettings
    with pytest.raises(ValueError, match=needle):
        Reconstructor(vae, steps=0, **options)
    with pytest.raises(ValueError, match=needle):
        SolverSettings(**options)


def _missing(size=32):
    missing = torch.zeros(1, 1, size, size)
    missing[..., 10:16, 10:16] = 1
    return missing


@pytest.mark.parametrize("call,error,needle", [
    (lambda m, y: m(torch.zeros(0, 3, 32, 32), Denoising()), ValueError, r"y holds no pixels \(shape \(0, 3, 32, 32\)\)"),
    (lambda m, y: m(y, Denoising(), x0=torch.rand(1, 3, 16, 16)), ValueError,
     r"x0 must have the image's shape \(1, 3, 32, 32\) \(A\^T y's\), got \(1, 3, 16, 16\)"),
    (lambda m, y: m(y, Inpainting(_missing(16))), ValueError, "the forward model Inpainting does not fit y of shape"),
    (lambda m, y: m(torch.rand(1, 3, 16, 16), Downsampling((64, 64), 2)), ValueError,
     "the forward model Downsampling does not fit y of shape"),
    (lambda m, y: m(y, Blur(torch.ones(3, 3) / 9)), ValueError,
     r"Blur's margin of 1 pixels makes the image 34x34, off the prior's grid of 4; give Blur\(kernel, margin=2\)"),
    (lambda m, y: Blur(torch.full((3, 3), float("nan"))), ValueError, "kernel has NaN or infinite weights"),
    (lambda m, y: Blur("gaussian:2"), TypeError, r"kernel must be an array of weights, got the text 'gaussian:2'"),
    (lambda m, y: Inpainting(np.zeros((32, 32), bool)), TypeError, r"missing must be a tensor .*torch.as_tensor"),
    (lambda m, y: Inpainting(torch.full((1, 1, 32, 32), 0.5)), ValueError, "missing must hold 0 .* or 1"),
    (lambda m, y: Downsampling(32, 2), ValueError, r"shape must be the high-resolution image's \(H, W\), got 32"),
    (lambda m, y: Gaussian(10), ValueError, r"sigma must be from 1e-09 to 2 in \[0, 1\] units \(10 levels of 255 are"),
    (lambda m, y: Gaussian(float("inf")), ValueError, "sigma must be from"),
    (lambda m, y: Gaussian(1e-30), ValueError, "sigma must be from"),
    (lambda m, y: Gaussian("0.1"), TypeError, "sigma must be a number or a tensor, got str"),
    (lambda m, y: m(y, Denoising(), data=Gaussian(torch.full((1, 3, 16, 16), 0.04))), ValueError,
     r"sigma of shape \(1, 3, 16, 16\) does not broadcast against y of shape \(1, 3, 32, 32\)"),
    (lambda m, y: JPEGConstraint(None), TypeError, "quantisation must be a restore.jpeg.Quantisation, got NoneType"),
    (lambda m, y: Reconstructor(m.prior, steps=0, prior_weight=None), ValueError,
     r"prior_weight must be given to the Reconstructor \(None takes a task's default only in SolverSettings\)"),
])
def test_the_tensor_interface_refuses_what_it_cannot_take_by_name_before_any_work(vae, call, error, needle):
    """Each failed deep inside torch (a broadcast, a matrix product, an attribute), blamed the image, or
    gave NaN (a NaN kernel, a level of 1e-30); Gaussian(10) restored as if 10 were a level in [0, 1]."""
    with pytest.raises(error, match=needle):
        call(Reconstructor(vae, steps=0), torch.rand(1, 3, 32, 32))


def test_the_tensor_interface_still_takes_what_it_should(vae):
    m, y = Reconstructor(vae, steps=0), torch.rand(1, 3, 32, 32)
    assert m(y, Inpainting(_missing().bool())).x.shape == (1, 3, 32, 32)
    assert m(torch.rand(1, 3, 16, 16), Downsampling(torch.Size((32, 32)), 2)).x.shape == (1, 3, 32, 32)
    assert m(y, Blur(torch.ones(3, 3) / 9, margin=2)).x.shape == (1, 3, 36, 36)
    assert m(y, Denoising(), data=Gaussian(np.full((1, 3, 32, 32), 0.04))).x.shape == (1, 3, 32, 32)
    assert m(y, Denoising(), data=Gaussian(torch.full((1, 1, 1, 1), 0.04))).x.shape == (1, 3, 32, 32)


def test_smaller_settings_name_themselves_and_their_value():
    """overlap and tile_batch shared one message that named neither's value; psnr's crop failed in a slice."""
    from restore.pipeline import SolverSettings
    with pytest.raises(ValueError, match="^overlap must be 0 or more pixels, got -1$"):
        SolverSettings(overlap=-1)
    with pytest.raises(ValueError, match="^tile_batch must be 1 or more tiles, got 0$"):
        SolverSettings(tile_batch=0)
    image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"^crop must be a whole number of pixels, got 2.5$"):
        psnr(image, image, crop=2.5)
