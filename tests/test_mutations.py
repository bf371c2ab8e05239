"""Guards on behaviour that the rest of the suite reaches only indirectly: the seam blend of
super-resolved tiles, the solver's ``refine`` hook, the shipped priors' digests, Ray retries of
files that existed before a batch, noise estimates of odd-sized images and atomic writes that
fail midway. Every test uses tiny images and an untrained tiny prior, so none needs training."""
from __future__ import annotations

import hashlib
import os
import signal
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import restore
from restore.fidelity import Gaussian
from restore import priors
from restore.atomic import OutputError, write_atomic
from restore.batch import Job, Restored
from restore.cli import app
from restore.images import Picture, read_image, write_image
from restore.model import ConvVAE, ConvVAEConfig, save_checkpoint
from restore.noise import estimate_noise
from restore.physics import Denoising
from restore.solver import joint_map
from restore.tiling import run_tiled


def _tiny_vae(seed: int = 0) -> ConvVAE:
    """An untrained convolutional VAE small enough to run in milliseconds."""
    torch.manual_seed(seed)
    return ConvVAE(ConvVAEConfig(width=8, latent_channels=2, levels=1, blocks=1, tile_size=32)).eval()


# --- tiling: the blend across an overlap spans the overlap in restored pixels ----------------------

@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("vertical", [False, True])
def test_super_resolved_tiles_blend_linearly_across_the_whole_overlap(scale, vertical):
    """With ``scale`` > 1 the overlap of two tiles covers ``overlap_obs * scale`` restored pixels,
    and the blend from one tile to the next must ramp over all of them: no step between
    adjacent output pixels may be larger than the tiles' difference spread over that width."""
    obs_tile, obs_overlap = 16, 8
    y = torch.zeros(1, 1, 16, 24)                   # two tiles side by side: starts 0 and 8
    if vertical:
        y = y.transpose(-1, -2)
    tile_values = iter([0.0, 1.0, 2.0])

    def constant_per_tile(tiles, _aux):
        return torch.stack([torch.full((t.shape[0], t.shape[-2] * scale, t.shape[-1] * scale), next(tile_values))
                            for t in tiles])

    out = run_tiled(y, constant_per_tile, tile=obs_tile * scale, overlap=obs_overlap * scale, multiple=1,
                    scale=scale, batch=8)
    assert out.shape[-2:] == (y.shape[-2] * scale, y.shape[-1] * scale)
    line = out[0, 0, :, 0] if vertical else out[0, 0, 0, :]
    ramp = obs_overlap * scale
    start = obs_overlap * scale                      # the second tile's first restored pixel
    assert torch.all(line[:start] == 0) and torch.all(line[start + ramp:] == 1)
    steps = line.diff()
    assert torch.all(steps >= -1e-6)                 # monotone from one tile to the other
    assert float(steps.max()) <= 1.0 / ramp + 1e-4, (float(steps.max()), 1.0 / ramp)
    # and every restored pixel of the overlap is a mix of both tiles
    overlap = line[start:start + ramp]
    assert torch.all((overlap > 0) & (overlap < 1))


# --- solver: refine shapes the last x-step ---------------------------------------------------------

@pytest.mark.parametrize("steps,samples", [(0, 1), (1, 1), (1, 2)])
def test_joint_map_returns_what_refine_makes_of_the_last_x_step(steps, samples):
    """``refine(x, d)`` is applied to the last x-step (and to every posterior sample's), so what it
    returns is the solver's output; it is called with the x-step's image and the decoder's image."""
    vae = _tiny_vae()
    g = torch.Generator().manual_seed(1)
    y = torch.rand(2, 3, 16, 16, generator=g)
    calls = []

    def refine(x, d):
        calls.append((x.shape, d.shape))
        return torch.full_like(x, 0.25)

    plain = joint_map(y, Denoising(), vae, x0=y, data=Gaussian(0.1), steps=steps, samples=samples)
    refined = joint_map(y, Denoising(), vae, x0=y, data=Gaussian(0.1), steps=steps, samples=samples, refine=refine)
    assert len(calls) >= samples                     # the MAP estimate, then each sample
    assert all(shape == (2, 3, 16, 16) for call in calls for shape in call)
    assert torch.allclose(refined.x, torch.full_like(y, 0.25), atol=1e-6)
    assert not torch.allclose(plain.x, refined.x, atol=1e-3)


# --- priors: a shipped prior whose bytes do not match SHA256SUMS is refused ------------------------

@pytest.fixture
def fake_pretrained(tmp_path, monkeypatch):
    """A stand-in for the shipped ``pretrained/`` folder holding a tiny ``photo.pt`` (and no SHA256SUMS
    yet); the real folder is never touched and the prior cache is cleared before and after."""
    folder = (tmp_path / "pretrained").resolve()
    folder.mkdir()
    save_checkpoint(folder / "photo.pt", _tiny_vae())
    monkeypatch.setattr(priors, "pretrained_dir", lambda: folder)
    priors._load.cache_clear()
    yield folder
    priors._load.cache_clear()


def test_shipped_prior_with_a_wrong_digest_is_refused(fake_pretrained):
    """A shipped prior whose SHA-256 differs from the one SHA256SUMS lists (a damaged or swapped
    file) raises PriorError telling the user to reinstall, instead of being loaded."""
    digest = hashlib.sha256((fake_pretrained / "photo.pt").read_bytes()).hexdigest()
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    (fake_pretrained / "SHA256SUMS").write_text(f"{wrong}  photo.pt\n{'a' * 64}  digits.pt\n")
    with pytest.raises(priors.PriorError, match="SHA-256.*SHA256SUMS; reinstall"):
        priors.load_prior("photo")


def test_shipped_prior_with_the_listed_digest_loads(fake_pretrained):
    """The same file with its true digest in SHA256SUMS loads as a model."""
    digest = hashlib.sha256((fake_pretrained / "photo.pt").read_bytes()).hexdigest()
    (fake_pretrained / "SHA256SUMS").write_text(f"{digest}  photo.pt\n")
    model = priors.load_prior("photo")
    assert isinstance(model, ConvVAE) and model.config.width == 8


def test_a_shipped_prior_changed_after_install_is_refused(fake_pretrained):
    """Bytes changed after the digest was recorded (one weight altered, the file still a valid
    checkpoint) are caught by the digest, not only by a failed load."""
    path = fake_pretrained / "photo.pt"
    (fake_pretrained / "SHA256SUMS").write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  photo.pt\n")
    save_checkpoint(path, _tiny_vae(seed=1))         # another valid checkpoint, same name
    with pytest.raises(priors.PriorError, match="does not match SHA256SUMS"):
        priors.load_prior("photo")


def test_the_shipped_damage_detector_is_checked_too(fake_pretrained):
    """The damage detector is a shipped file like the priors: a digest that does not match refuses it."""
    from restore import detector
    path = fake_pretrained / "damage.pt"
    save_checkpoint(path, detector.DamageDetector(detector.DetectorConfig(width=4, dilations=(1,))))
    (fake_pretrained / "SHA256SUMS").write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  damage.pt\n")
    detector.load_detector.cache_clear()
    try:
        assert detector.load_detector().config.width == 4
        save_checkpoint(path, detector.DamageDetector(detector.DetectorConfig(width=4, dilations=(2,))))
        detector.load_detector.cache_clear()
        with pytest.raises(priors.PriorError, match="does not match SHA256SUMS"):
            detector.load_detector()
    finally:
        detector.load_detector.cache_clear()


# --- Ray: a retry never replaces an output that existed before the batch ---------------------------

class _Ref:
    def __init__(self, value=None, error: Exception | None = None):
        self.value, self.error = value, error


class _FakeRay:
    """Just enough of the ``ray`` module for :func:`restore.ray_runner.run_on_ray`, in this process:
    each actor is a real ``_Worker``; the first call restoring a file named in ``dies_once`` kills
    its worker (after writing half an output where none was)."""

    def __init__(self, dies_once):
        class RayError(Exception):
            pass

        class RayTaskError(RayError):
            pass

        class ActorDiedError(RayError):
            pass
        self.exceptions = SimpleNamespace(RayError=RayError, RayTaskError=RayTaskError)
        self.ActorDiedError = ActorDiedError
        self.dies_once = set(dies_once)
        self.calls: list[tuple[str, bool]] = []
        self.killed = 0

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return {"CPU": 2.0}

    def available_resources(self):
        return {"CPU": 2.0}

    def nodes(self):
        return [{"Alive": True, "Resources": {"CPU": 2.0}}]

    def remote(self, cls):
        fake = self

        class ActorClass:
            def options(self, **_):
                return self

            def remote(self, *args):
                instance = cls(*args)
                return SimpleNamespace(
                    ready=SimpleNamespace(remote=lambda: _Ref(instance.ready())),
                    restore=SimpleNamespace(remote=lambda job, replaceable=frozenset():
                                            fake._restore(instance, job, replaceable)))
        return ActorClass()

    def _restore(self, instance, job, replaceable):
        self.calls.append((job.source.name, sorted(path.name for path in replaceable)))
        if job.source.name in self.dies_once:
            self.dies_once.discard(job.source.name)
            for path in (job.output, job.uncertainty):
                if path is not None and not path.exists():
                    path.write_bytes(b"half")     # as if it died after writing part of its files
            return _Ref(error=self.ActorDiedError("the actor died unexpectedly"))
        return _Ref(instance.restore(job, replaceable))

    def wait(self, refs, num_returns=1, timeout=None):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        if ref.error is not None:
            raise ref.error
        return ref.value

    def kill(self, _actor):
        self.killed += 1


@pytest.fixture
def keep_torch_threads():
    """Workers set torch's thread count in their process, here the test's own: put it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_ray_retry_never_replaces_an_output_that_existed_before_the_batch(tmp_path, monkeypatch,
                                                                          keep_torch_threads):
    """When a worker dies on a file and the file is handed to another worker, the retry may replace
    an output the dead worker wrote in this batch, but never one that was there before the batch
    (without --overwrite it is reported as existing and kept byte for byte)."""
    from restore import ray_runner

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    pixels = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    for name in ("a.png", "b.png"):
        write_image(src / name, Picture(pixels))
    (out / "a.png").write_bytes(b"the user's")      # there before the batch
    jobs = [Job(src / "a.png", out / "a.png"), Job(src / "b.png", out / "b.png")]

    def make_restore_fn(device):
        return lambda picture, job, progress: Restored(picture.pixels, SimpleNamespace(sigma=None), picture.pixels)

    fake = _FakeRay(dies_once={"a.png", "b.png"})
    monkeypatch.setattr(ray_runner, "import_ray", lambda: fake)
    batch = ray_runner.run_on_ray(jobs, make_restore_fn, max_pixels=10**6)

    a, b = batch.results
    assert (out / "a.png").read_bytes() == b"the user's"
    assert a.status == "failed" and "exists" in a.message
    assert b.status == "ok"
    assert np.allclose(read_image(out / "b.png").pixels, pixels, atol=1 / 255)   # the retry's, whole
    # each file was handed out twice (its first worker died); only b's retry may replace its output
    assert sorted(fake.calls) == [("a.png", []), ("a.png", []), ("b.png", []), ("b.png", ["b.png"])]


def test_ray_retry_never_replaces_an_uncertainty_map_that_existed_before_the_batch(tmp_path, monkeypatch,
                                                                                   keep_torch_threads):
    """The same for the files written beside the output: a retry replaces the uncertainty map its
    dead first try wrote, and keeps one the user had there before the batch."""
    from restore import ray_runner

    src, out, maps = tmp_path / "in", tmp_path / "out", tmp_path / "maps"
    for folder in (src, out, maps):
        folder.mkdir()
    pixels = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    for name in ("a.png", "b.png"):
        write_image(src / name, Picture(pixels))
    (maps / "a.png").write_bytes(b"the user's")     # there before the batch; a's output is not
    jobs = [Job(src / name, out / name, uncertainty=maps / name) for name in ("a.png", "b.png")]

    def make_restore_fn(device):
        return lambda picture, job, progress: Restored(picture.pixels, SimpleNamespace(sigma=None), picture.pixels,
                                                       std=np.full((8, 8), 0.01, np.float32))

    fake = _FakeRay(dies_once={"a.png", "b.png"})
    monkeypatch.setattr(ray_runner, "import_ray", lambda: fake)
    a, b = ray_runner.run_on_ray(jobs, make_restore_fn, max_pixels=10**6).results
    assert (maps / "a.png").read_bytes() == b"the user's"
    assert a.status == "failed" and "exists" in a.message
    assert b.status == "ok" and read_image(maps / "b.png").pixels.shape[:2] == (8, 8)   # the retry's map


# --- noise: odd-sized images ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(65, 64, 3), (64, 65, 3), (65, 63, 3), (33, 35), (3, 5, 1)])
def test_noise_of_odd_sized_images_is_estimated_on_their_even_part(shape):
    """An image with an odd height or width has its noise estimated (on the largest even-sized
    top-left part, dropping the last row or column) rather than failing."""
    rng = np.random.default_rng(0)
    pixels = np.clip(0.5 + rng.normal(0, 20 / 255, shape), 0, 1)
    estimate = estimate_noise(pixels)
    even = pixels[:shape[0] // 2 * 2, :shape[1] // 2 * 2]
    assert estimate == pytest.approx(estimate_noise(even))
    if shape[0] > 30:
        assert estimate == pytest.approx(20, rel=0.2)


def test_noise_of_a_single_row_is_a_clear_error():
    """A 1-pixel-high image has no 2x2 block to estimate noise from: a ValueError that says so."""
    with pytest.raises(ValueError, match="too small"):
        estimate_noise(np.zeros((1, 9, 3)))


def _noisy_odd_image() -> np.ndarray:
    rng = np.random.default_rng(1)
    return (np.clip(0.5 + rng.normal(0, 15 / 255, (33, 35, 3)), 0, 1) * 255).round().astype(np.uint8)


def test_denoise_with_estimated_sigma_takes_odd_sized_images():
    """``restore.denoise`` without a sigma estimates it from an odd-sized image and restores it at its size."""
    image = _noisy_odd_image()
    out = restore.denoise(image, prior=_tiny_vae(), steps=0, precision="fp32")
    assert out.shape == image.shape and out.dtype == np.uint8


def test_cli_denoise_with_sigma_auto_takes_odd_sized_images(tmp_path):
    """``restore denoise --sigma auto`` on an odd-sized file estimates and prints sigma, and writes
    an output of the input's size."""
    image = _noisy_odd_image()
    write_image(tmp_path / "odd.png", Picture(image.astype(np.float32) / 255))
    save_checkpoint(tmp_path / "tiny.pt", _tiny_vae())
    result = CliRunner().invoke(app, ["denoise", str(tmp_path / "odd.png"), "-o", str(tmp_path / "out.png"),
                                      "--model", str(tmp_path / "tiny.pt"), "--sigma", "auto", "--steps", "0",
                                      "--precision", "fp32", "-q"])
    assert result.exit_code == 0, result.output
    assert "estimated noise sigma" in result.output
    assert read_image(tmp_path / "out.png").pixels.shape == (33, 35, 3)


# --- atomic writes that fail midway ----------------------------------------------------------------

@pytest.fixture
def file_size_limit():
    """``limit(n)``: writes in this process fail with EFBIG beyond ``n`` bytes of a file (as on a
    full disk or quota); ``limit(None)`` lifts it (as does the end of the test)."""
    resource = pytest.importorskip("resource")
    if not hasattr(resource, "RLIMIT_FSIZE") or not hasattr(signal, "SIGXFSZ"):
        pytest.skip("no file size limit on this platform")
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # an error, not a killed process

    def limit(n):
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit if n is None else (n, old_limit[1]))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def test_a_write_that_fails_midway_keeps_the_old_file_and_leaves_nothing(tmp_path, file_size_limit):
    """When writing the new content fails partway (no room after some bytes), the file at ``path``
    keeps its old content whole, the error is an OutputError naming the file, and no partial or
    temporary file is left beside it."""
    path = tmp_path / "out.png"
    path.write_bytes(b"old content")
    file_size_limit(4096)
    try:
        with pytest.raises(OutputError, match="out.png"):
            write_atomic(path, b"x" * 100_000)
    finally:
        file_size_limit(None)
    assert path.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_a_write_that_fails_midway_creates_no_file(tmp_path, file_size_limit):
    """Where no file existed, a write that fails partway leaves no file at all (no truncated output)."""
    path = tmp_path / "new.png"
    file_size_limit(4096)
    try:
        with pytest.raises(OutputError):
            write_atomic(path, b"x" * 100_000)
    finally:
        file_size_limit(None)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    """Until the new content is whole it is not in place: if the final rename fails, the old file
    is untouched and the temporary file is removed."""
    path = tmp_path / "out.png"
    path.write_bytes(b"old content")

    def refuse(*_):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError, match="No space left"):
        write_atomic(path, b"new content")
    assert path.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_ctrl_c_during_a_write_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    path = tmp_path / "out.pt"
    path.write_bytes(b"old content")

    def interrupted(*_):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, b"new content")
    assert path.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["out.pt"]


def test_a_successful_write_replaces_the_whole_file(tmp_path):
    """A write that succeeds leaves exactly the new bytes (shorter than the old ones) and nothing else."""
    path = tmp_path / "out.png"
    path.write_bytes(b"a much longer old content")
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
