"""The Python API's input contract: what `restore.denoise/inpaint/superres/deblur` accept, and the
one-line ValueError (TypeError for what is no array; never a silent clip, a wrong result or a raw torch
error) for anything else."""
import numpy as np
import pytest
import torch

from restore import deblur, dejpeg, denoise, inpaint, superres
from restore import restore as run
from restore.pipeline import SolverSettings
from restore import estimate_noise
from restore.tasks import Denoise, Inpaint, Superres
from restore.devices import DeviceError
from restore.priors import PriorError

# Every function with its required options; the contract is checked before the prior is loaded.
CALLS = {
    "denoise": lambda image: denoise(image, sigma=10),
    "inpaint": lambda image: inpaint(image, np.zeros(image.shape[:2], bool)),
    "superres": lambda image: superres(image, scale=2),
    "deblur": lambda image: deblur(image, kernel="gaussian:1", sigma=1),
}


def _digit(dtype=np.float32) -> np.ndarray:
    """A 28x28 gray image for the shipped digits prior (restores in milliseconds)."""
    image = np.zeros((28, 28), np.float32)
    image[6:22, 12:16] = 1.0
    return image if dtype == np.float32 else np.round(image * np.iinfo(dtype).max).astype(dtype)


@pytest.mark.parametrize("name", CALLS)
def test_a_float_image_in_0_255_is_refused_with_the_fix(name):
    with pytest.raises(ValueError, match=r"\[0, 1\].*divide by 255.*65535"):
        CALLS[name](np.full((16, 16, 3), 200.0, np.float32))


@pytest.mark.parametrize("values", [(-0.5, 0.5), (0.0, 1.02), (-0.02, 0.9)])
def test_floats_outside_the_margin_are_refused(values):
    image = np.linspace(*values, 16 * 16, dtype=np.float32).reshape(16, 16)
    with pytest.raises(ValueError, match="must be in"):
        denoise(image, sigma=10)


def test_floats_within_the_margin_are_clipped_and_accepted():
    image = _digit()
    image[0, 0], image[0, 1] = -0.009, 1.009             # rounding and resampling overshoot
    out = denoise(image, sigma=10, prior="digits", steps=0)
    assert out.dtype == np.float32 and out.shape == image.shape and 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int16, np.int8, np.uint32, np.bool_])
def test_integer_dtypes_other_than_uint8_and_uint16_are_refused_by_name(dtype):
    with pytest.raises(ValueError, match=f"dtype {np.dtype(dtype).name}.*uint8.*uint16"):
        denoise(np.full((16, 16, 3), 1, dtype), sigma=10)
    with pytest.raises(ValueError, match=r"e\.g\. image\.to\(torch\.uint8\)"):         # a tensor's own conversion
        denoise(torch.from_numpy(np.full((16, 16, 3), 1, dtype)), sigma=10)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_uint8_and_uint16_come_back_in_their_dtype(dtype):
    out = denoise(_digit(dtype), sigma=10, prior="digits", steps=0)
    assert out.dtype == dtype and out.shape == (28, 28)


def test_big_endian_uint16_is_read_as_the_same_values():
    """A byte-swapped uint16 array (as some TIFF and FITS readers give) holds 16-bit values: the
    same output as the native array, where it was refused with advice to cast to uint8."""
    native = _digit(np.uint16)
    swapped = native.astype(">u2")
    out = denoise(swapped, sigma=10, prior="digits", steps=0)
    assert np.array_equal(out.astype(np.uint16), denoise(native, sigma=10, prior="digits", steps=0))


def test_tensors_follow_the_same_contract():
    with pytest.raises(ValueError, match="divide by 255"):
        denoise(torch.full((3, 16, 16), 100.0), sigma=10, channel_axis=0)
    with pytest.raises(ValueError, match="dtype int32"):
        denoise(torch.zeros((16, 16), dtype=torch.int32), sigma=10)
    out = denoise(torch.from_numpy(_digit()).to(torch.bfloat16), sigma=10, prior="digits", steps=0)
    assert out.dtype == torch.bfloat16 and out.shape == (28, 28)


@pytest.mark.parametrize("shape", [(0, 0), (0, 16, 3), (16, 0), (16, 0, 3)])
@pytest.mark.parametrize("name", CALLS)
def test_empty_images_are_refused(name, shape):
    with pytest.raises(ValueError, match="empty"):
        CALLS[name](np.zeros(shape, np.float32))


@pytest.mark.parametrize("given", [None, "photo.png", b"photo.png"])
def test_anything_but_an_array_is_a_type_error(given):
    with pytest.raises(TypeError, match="arrays or tensors"):
        denoise(given, sigma=10)


@pytest.mark.parametrize("given", [False, True, "bar"])
def test_a_progress_that_is_no_function_is_refused_before_any_work(given, monkeypatch):
    import restore.pipeline
    monkeypatch.setattr(restore.pipeline, "resolve", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(TypeError, match="progress must be a function"):
        denoise(_digit(), sigma=10, prior="digits", progress=given)


@pytest.mark.parametrize("image,options,needle", [
    (np.zeros((32, 32, 3), np.uint8), {"channel_axis": 0}, r"shape \(32, 32, 3\); its channels are last"),
    (np.zeros((32, 32, 4), np.uint8), {}, r"\(32, 32, 4\); keep the colour channels"),
    (np.zeros((1, 3, 32, 32), np.float32), {}, r"not a batch: image\[0\], channel_axis=0"),
    (np.zeros((5, 32, 32, 3), np.float32), {}, "one at a time"),
])
def test_a_layout_it_cannot_take_is_named_as_given_with_the_fix(image, options, needle):
    with pytest.raises(ValueError, match=needle):
        denoise(image, sigma=10, **options)


def test_a_channels_first_image_is_told_of_channel_axis():
    with pytest.raises(ValueError, match="channel_axis=0"):
        denoise(torch.rand(3, 32, 32), sigma=10)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad):
    image = np.full((16, 16, 3), 0.5, np.float32)
    image[3, 4, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        denoise(image, sigma=10)


def test_a_missing_gpu_is_a_device_error_not_a_bad_prior(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1", torch.device("cuda")):
        with pytest.raises(DeviceError, match="device cuda.*no CUDA GPU.*use cpu") as caught:
            denoise(_digit(), sigma=10, prior="digits", device=device)
        assert not isinstance(caught.value, PriorError)


def test_a_bad_checkpoint_is_still_a_prior_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(PriorError, match="not a restore prior"):
        denoise(_digit(), sigma=10, prior=str(bad))


@pytest.mark.parametrize("call,needle", [
    (lambda im: denoise(im, sigma="loud"), "sigma 'loud'"),
    (lambda im: denoise(im, sigma=[25]), "sigma must be a number"),
    (lambda im: denoise(im, sigma=True), "sigma must be a number"),
    (lambda im: denoise(im, sigma=np.array([25.0, 25.0])), "sigma must be a number"),
    (lambda im: denoise(im, sigma=10, noise=None), "noise must be text"),
    (lambda im: denoise(im, sigma=10, steps="3"), "steps must be a whole number"),
    (lambda im: denoise(im, sigma=10, steps=2.5), "steps must be a whole number"),
    (lambda im: denoise(im, sigma=10, tile=10**9), "tile must be 8 to 4096"),
    (lambda im: denoise(im, sigma=10, quick="no"), "quick must be True or False"),
    (lambda im: denoise(im, sigma=10, steps=10**6), "steps must be 0 to 10000"),
    (lambda im: denoise(im, sigma=10, noise="poisson-gaussian"), "sigma is the one level of Gaussian noise"),
    (lambda im: deblur(im, kernel="gaussian:1", sigma=2, noise="auto"), "noise 'auto' does not take"),
    (lambda im: superres(im, scale="2"), "scale must be a whole number"),
    (lambda im: inpaint(im, np.zeros(im.shape[:2]), mask_dilate=2.5), "mask_dilate must be a whole number"),
    (lambda im: inpaint(im, np.zeros(im.shape[:2]), mask_dilate=10**6), "mask_dilate must be 0 to"),
    (lambda im: inpaint(im, "mask.png"), "an array \\(H, W\\).*'mask.png'"),
    (lambda im: inpaint(im, np.zeros((*im.shape[:2], 3))), "mask must be \\(H, W\\)"),
    (lambda im: inpaint(im, np.full(im.shape[:2], np.nan)), "NaN"),
    (lambda im: inpaint(im, np.full(im.shape[:2], "a")), r"mask must hold numbers or booleans, got dtype <U1"),
    (lambda im: inpaint(im, np.full(im.shape[:2], None)), "mask must hold numbers or booleans, got dtype object"),
    (lambda im: deblur(im, kernel="gaussian:abc", sigma=1), "STD must be a number, got 'abc'"),
    (lambda im: deblur(im, kernel="motion:9,up", sigma=1), "ANGLE must be a number"),
    (lambda im: deblur(im, kernel="kernels/missing.png", sigma=1), "missing.png: no such file"),
    (lambda im: deblur(im, kernel=5, sigma=1), "kernel must be a 2-D array"),
    (lambda im: deblur(im, kernel=-np.ones((3, 3)), sigma=1), "kernel must be a 2-D array"),
    (lambda im: deblur(im, kernel="gaussian:1e6", sigma=1), "over the limit"),
    (lambda im: deblur(im, kernel="motion:15,nan", sigma=1), "angle a number"),
    (lambda im: deblur(im, kernel="motion:15,", sigma=1), r"ANGLE must follow the comma \(motion:LENGTH,ANGLE\)"),
    (lambda im: deblur(im, kernel=np.ones((3, 3), bool), sigma=1), "kernel must hold numbers .*, got dtype bool"),
])
def test_a_wrong_option_value_is_refused_by_name_before_any_work(call, needle, monkeypatch):
    import restore.pipeline
    monkeypatch.setattr(restore.pipeline, "resolve", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ValueError, match=needle):
        call(_digit())


def test_a_mask_of_every_or_no_pixel_is_warned_of_as_the_command_line_notes_it():
    """An all-true mask gave the prior's grey drawing without a word (the command line said so)."""
    image = _digit()
    with pytest.warns(UserWarning, match="inpaint: its mask marks every pixel: nothing of the image is kept"):
        inpaint(image, np.ones(image.shape[:2], bool), prior="digits", steps=0)
    with pytest.warns(UserWarning, match="inpaint: its mask marks no pixel"):
        inpaint(image, np.zeros(image.shape[:2], bool), prior="digits", steps=0)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mask = np.zeros(image.shape[:2], bool)
        mask[10:14, 10:14] = True
        inpaint(image, mask, prior="digits", steps=0)


def test_a_jpeg_path_with_a_quantisation_beside_it_is_refused(tmp_path):
    """The path's own file was read and the quantisation given beside it silently ignored."""
    from PIL import Image

    from restore.jpeg import Quantisation
    pixels = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "q50.jpg", quality=50)
    Image.fromarray(pixels).save(tmp_path / "q95.jpg", quality=95)
    with pytest.raises(ValueError, match="quantisation: a path's file says its own"):
        dejpeg(tmp_path / "q50.jpg", quantisation=Quantisation.from_file(tmp_path / "q95.jpg"))


def test_text_options_read_as_on_the_command_line():
    """``sigma="auto"`` estimates, ``sigma="25"`` is 25: the function takes what --sigma takes."""
    image = _digit()
    noisy = np.clip(image + np.random.default_rng(0).normal(0, 0.1, image.shape), 0, 1).astype(np.float32)
    for text, number in (("25", 25.0), ("auto", None)):
        np.testing.assert_array_equal(denoise(noisy, sigma=text, prior="digits", steps=1),
                                      denoise(noisy, sigma=number, prior="digits", steps=1))


def test_a_kernel_given_as_an_array_blurs_as_its_text_does():
    from restore.physics import gaussian_kernel
    from restore.tasks.deblur import Deblur
    image = _digit()
    by_text = deblur(image, kernel="gaussian:1.2", sigma=1, prior="digits", steps=1, precision="fp32")
    for kernel in (gaussian_kernel(1.2).numpy(), gaussian_kernel(1.2)):      # numpy or torch
        np.testing.assert_array_equal(deblur(image, kernel=kernel, sigma=1, prior="digits", steps=1,
                                             precision="fp32"), by_text)
    # normalised to sum 1; an even side given a zero row and column, so that it has a centre
    np.testing.assert_allclose(Deblur(kernel=gaussian_kernel(1.2).numpy() * 3, sigma=1).weights,
                               gaussian_kernel(1.2).numpy(), atol=1e-7)
    assert Deblur(kernel=np.ones((4, 2)), sigma=1).weights.shape == (5, 3)


def test_a_flat_image_under_an_estimated_sensor_noise_is_restored():
    """No noise to estimate is a clean image's floor, not a refusal of the estimate it made itself."""
    flat = np.full((32, 32), 0.5, np.float32)
    out = denoise(flat, noise="poisson-gaussian", prior="digits", steps=1)
    assert np.isfinite(out).all() and np.abs(out - flat).max() < 2 / 255


def test_a_loaded_prior_is_the_callers_own_and_loading_leaves_torchs_random_numbers_alone():
    import restore
    from restore import priors
    priors._load.cache_clear()
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    mine = restore.load_prior("digits")                  # the first load builds the model
    assert torch.equal(torch.rand(1), expected)
    from restore.detector import load_detector
    load_detector.cache_clear()
    torch.manual_seed(0)
    load_detector()
    assert torch.equal(torch.rand(1), expected)
    before = denoise(_digit(), sigma=25, steps=0, prior="digits")
    for p in mine.parameters():
        p.data.mul_(0.5)
    mine.to(torch.float64)
    assert np.array_equal(denoise(_digit(), sigma=25, steps=0, prior="digits"), before)


def _pillow(image, mode):
    from PIL import Image
    return Image.fromarray(np.round(image * 255).astype(np.uint8)).convert(mode)


@pytest.mark.parametrize("call,needle", [
    (lambda im: denoise(im, sigma=25, seed=None), "seed must be a whole number"),
    (lambda im: denoise(im, sigma=25, device="bogus"), "unknown device"),
    (lambda im: run(im, "denoise"), "task must be a task object"),
    (lambda im: run(im, Denoise), "task must be a task object"),
    (lambda im: run(im, Denoise(sigma=25), settings={}), "settings must be a SolverSettings"),
    (lambda im: run(im, Denoise(sigma=25), settings=SolverSettings(lr=-1)), "lr must be a number 0 or more and at most 1"),
    (lambda im: run(im, Denoise(sigma=25), settings=SolverSettings(gamma=float("nan"))), "gamma must"),
    (lambda im: run(im, Denoise(sigma=25), settings=SolverSettings(prior_weight=-1)), "prior_weight must"),
    (lambda im: run(im, Denoise(sigma="25")), "sigma must be a number"),
    (lambda im: run(im, Denoise(sigma=5, noise=5)), "noise must be text"),
    (lambda im: run(im, Superres(scale=4.0)), "scale must be 2, 3, 4 or 8, got 4.0"),
    (lambda im: run(im, Superres(scale="4")), "scale must be 2, 3, 4 or 8, got '4'"),
    (lambda im: run(im, Inpaint(mask_dilate=2.0), companion=np.zeros(im.shape)), "mask_dilate must be a whole"),
    (lambda im: run(im, Inpaint(sensitivity="x"), companion=np.zeros(im.shape)), "sensitivity must be above 0"),
    (lambda im: denoise(im, sigma=25, channel_axis="0"), "channel_axis must be the number"),
    (lambda im: denoise(im, sigma=25, channel_axis=None), "channel_axis must be the number"),
    (lambda im: denoise(im, sigma=25, samples=2, return_std="yes"), "return_std must be True or False"),
    (lambda im: denoise(im, sigma=25, samples=2, mode="latent"), "need mode 'joint', not 'latent'"),
    (lambda im: denoise(im, sigma=25, samples=10**8), "samples must be 1 to 1000"),
    (lambda im: denoise(im, sigma=25, samples=2, seed=2**70), "seed must be 0 to 4294967295"),
    (lambda im: denoise(_pillow(im, "RGBA"), sigma=25), "with alpha \\(RGBA\\).*convert\\('RGB'\\)"),
    (lambda im: estimate_noise(im, quantisation=5), "quantisation must be the JPEG file's"),
    (lambda im: run(im, Denoise(quantisation="photo.jpg")), "quantisation must be a JPEG file's tables.*from_file"),
    (lambda im: run(im, Superres(quantisation=3)), "quantisation must be a JPEG file's tables"),
    (lambda im: dejpeg(im, quantisation="photo.jpg"), "quantisation must be a JPEG file's tables"),
])
def test_settings_and_tasks_built_by_hand_are_refused_by_name_before_any_work(call, needle, monkeypatch):
    import restore.pipeline
    monkeypatch.setattr(restore.pipeline, "resolve", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises((ValueError, TypeError), match=needle):
        call(_digit())



def test_a_tensor_that_requires_grad_comes_back_detached_from_every_function():
    image = torch.rand(28, 28, requires_grad=True)
    mask = np.zeros((28, 28), bool)
    mask[10:14, 10:14] = True
    for out in (denoise(image, sigma=10, prior="digits", steps=0),
                inpaint(image, mask, prior="digits", steps=0)):
        assert not out.requires_grad and out.grad_fn is None


@pytest.mark.parametrize("x,needle", [
    (torch.rand(1, 28, 28), r"a batch of images \(N, C, H, W\), got \(1, 28, 28\); x\[None\]"),
    (torch.rand(1, 1, 30, 30), "multiples of 28, got 30x30; pad them"),
    (torch.rand(1, 3, 28, 28), "takes images of 1 channel"),
])
def test_the_reconstructor_refuses_tensors_it_cannot_take_whole_with_the_fix(x, needle):
    from restore.physics import Denoising
    from restore.reconstructor import Reconstructor
    with pytest.raises(ValueError, match=needle):
        Reconstructor("digits", steps=0)(x, Denoising())
    assert Reconstructor("digits", steps=0)(torch.rand(2, 1, 28, 28), Denoising()).x.shape == (2, 1, 28, 28)


@pytest.mark.parametrize("mode,back", [("RGB", "RGB"), ("L", "L"), ("P", "RGB"), ("1", "L")])
def test_a_pillow_image_comes_back_as_a_pillow_image(mode, back):
    from PIL import Image
    rng = np.random.default_rng(0)
    image = Image.fromarray((rng.random((28, 28, 3)) * 255).astype(np.uint8)).convert(mode)
    out = denoise(image, sigma=10, prior="digits", steps=0)
    assert isinstance(out, Image.Image) and out.mode == back and out.size == image.size
    mask = np.zeros((28, 28), bool)
    mask[5:9, 5:9] = True
    kept = np.asarray(image.convert(back))
    filled = np.asarray(inpaint(image, mask, prior="digits", steps=0))
    assert np.array_equal(filled[~mask], kept[~mask])


def test_a_palette_image_is_read_as_its_colours_not_its_indices():
    """A palette (P) Pillow image holds indices into its palette: the noise estimate reads the colours."""
    from PIL import Image
    rng = np.random.default_rng(1)
    noisy = np.clip(0.5 + rng.normal(0, 20 / 255, (64, 64, 3)), 0, 1)
    palette = Image.fromarray(np.round(noisy * 255).astype(np.uint8)).convert("P")
    assert estimate_noise(palette) == estimate_noise(np.asarray(palette.convert("RGB")))
