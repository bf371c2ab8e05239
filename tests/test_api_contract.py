"""The Python API's input contract: what `restore.denoise/inpaint/superres/deblur` accept, and the
one-line ValueError (never a silent clip, a wrong result or a raw torch error) for anything else."""
import numpy as np
import pytest
import torch

from restore import deblur, denoise, inpaint, superres
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


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_uint8_and_uint16_come_back_in_their_dtype(dtype):
    out = denoise(_digit(dtype), sigma=10, prior="digits", steps=0)
    assert out.dtype == dtype and out.shape == (28, 28)


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
