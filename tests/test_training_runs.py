"""Training that travels and runs against the clock: crop packs, several batch threads giving the
same run as one, a budget in minutes, and the GPU stage script run on the CPU with a few steps."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from restore.data import CropSampler, read_crop_pack, write_crop_pack
from restore.images import Picture, write_image
from restore.model import ConvVAE, ConvVAEConfig, load_checkpoint
from restore.train import TrainSettings, train

from conftest import smooth_images

ROOT = Path(__file__).resolve().parents[1]


def photos(folder: Path, n=4, size=48) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for i, im in enumerate(smooth_images(n, size, seed=21)):
        paths.append(folder / f"p{i}.png")
        write_image(paths[-1], Picture(im))
    return paths


def test_a_crop_pack_holds_crops_of_every_photo_within_its_size(tmp_path):
    files = photos(tmp_path / "photos")
    pack = tmp_path / "crops.npz"
    count = write_crop_pack(files, pack, size=16, max_bytes=20_000, scales=(1.0,))
    assert pack.stat().st_size <= 20_000 and count % len(files) == 0 and count >= len(files)
    crops = read_crop_pack(pack, 3)
    assert len(crops) == count and all(c.shape == (16, 16, 3) and 0 <= c.min() and c.max() <= 1 for c in crops)
    sampler = CropSampler([pack], channels=3, crop=12)
    assert len(sampler) == count and sampler.batch(5).shape == (5, 3, 12, 12)


def _run(tmp_path, name, **settings):
    torch.manual_seed(0)
    model = ConvVAE(ConvVAEConfig(width=8, latent_channels=2, tile_size=16))
    sampler = CropSampler(photos(tmp_path / "photos"), channels=3, crop=16)
    out = tmp_path / f"{name}.pt"
    meta = train(model, sampler, TrainSettings(batch_size=4, crop=16, checkpoint_every=100, **settings), out,
                 device=torch.device("cpu"), progress=False)
    return load_checkpoint(out)[0].state_dict(), meta


def test_batches_made_on_several_threads_give_the_same_run(tmp_path):
    one, _ = _run(tmp_path, "one", steps=6, loaders=1, colour_fraction=0.5, gray_fraction=0.3)
    three, _ = _run(tmp_path, "three", steps=6, loaders=3, colour_fraction=0.5, gray_fraction=0.3)
    assert all(torch.equal(one[k], three[k]) for k in one)


def test_a_budget_in_minutes_ends_the_run_with_a_checkpoint(tmp_path):
    _, meta = _run(tmp_path, "timed", steps=10**6, minutes=0.02)
    assert 0 < meta["steps"] < 10**6 and meta["seconds"] < 30
    assert (tmp_path / "timed.pt").is_file()


def test_a_resumed_budget_in_minutes_counts_from_the_run_s_start(tmp_path):
    """Resuming a run its minutes ended trained a whole budget again (the learning rate back up its
    schedule): a spent budget is refused, and a larger one goes on to that total."""
    from restore.train import TrainError, resume_from
    _, meta = _run(tmp_path, "timed", steps=10**6, minutes=0.02)
    out = tmp_path / "timed.pt"
    with pytest.raises(TrainError, match="give --minutes more than"):
        resume_from(out, 10**6)
    model, settings, state = resume_from(out, 10**6, minutes=0.03)
    more = train(model, CropSampler(photos(tmp_path / "photos"), channels=3, crop=16), settings, out,
                 device=torch.device("cpu"), resume=state, progress=False)
    # 1.8 s in all (a second budget on top of the first would end at 3.0)
    assert more["steps"] > meta["steps"] and meta["seconds"] < more["seconds"] < 0.03 * 60 + 0.6


def test_the_gpu_stage_script_trains_the_large_prior_on_the_cpu(tmp_path):
    pack = tmp_path / "crops.npz"
    write_crop_pack(photos(tmp_path / "photos", size=64), pack, size=48, scales=(1.0,))
    env = {**os.environ, "MINUTES": "0.02", "DEVICE": "cpu", "LOADERS": "1", "BATCH": "2", "CROP": "32"}
    done = subprocess.run(["bash", str(ROOT / "pretrained" / "gpu_stage.sh"), str(pack), str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    model, state = load_checkpoint(tmp_path / "out" / "photo-large.pt")
    assert model.config.width == 96 and model.config.blocks == 2 and model.scale_head is not None
    assert model.config.context and model.config.task_encoders == ("dejpeg",)     # told the context; JPEG's own encoder
    assert "optimizer" not in state and state["meta"]["steps"] >= 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo-large.pt", "train.log"]


def test_a_task_encoder_learns_alone_and_serves_its_task_only(tmp_path):
    """`restore train --task-encoder dejpeg --init PRIOR` trains an encoder of its own for JPEG damage
    against the prior's frozen decoder: the shared encoder and the decoder come out unchanged, the
    new encoder changed, and only `dejpeg` restores through it."""
    import numpy as np
    from typer.testing import CliRunner

    from restore.cli import app
    from restore.model import save_checkpoint
    torch.manual_seed(0)
    base = ConvVAE(ConvVAEConfig(width=8, latent_channels=4, pixel_scale=True))
    save_checkpoint(tmp_path / "base.pt", base)
    photos(tmp_path / "photos", size=40)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "photos"), "-o", str(tmp_path / "jpeg.pt"),
                                      "--init", str(tmp_path / "base.pt"), "--task-encoder", "dejpeg",
                                      "--steps", "3", "--batch-size", "2", "--crop", "32", "--lr", "1e-2", "-q"])
    assert result.exit_code == 0, result.output
    model, state = load_checkpoint(tmp_path / "jpeg.pt")
    assert model.config.task_encoders == ("dejpeg",) and state["meta"]["settings"]["tasks"] == ("dejpeg",)
    before, after = base.state_dict(), model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)                  # shared weights frozen
    changed = [not torch.equal(after[f"task_encoders.dejpeg.{k}"], v) for k, v in base.encoder.state_dict().items()]
    assert any(changed)
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(model.for_task("denoise").encode(x)[0], base.encode(x)[0])
    assert not torch.equal(model.for_task("dejpeg").encode(x)[0], base.encode(x)[0])

    import restore
    from restore.tasks.dejpeg import jpeg_round_trip
    pixels, quantisation = jpeg_round_trip(np.random.default_rng(0).random((32, 32, 3)).astype(np.float32), 20)
    own = restore.dejpeg(pixels, quantisation=quantisation, prior=model)
    shared = restore.dejpeg(pixels, quantisation=quantisation, prior=base)
    assert not np.array_equal(own, shared)
    assert np.array_equal(restore.denoise(pixels, sigma=5, prior=model), restore.denoise(pixels, sigma=5, prior=base))

    refused = CliRunner().invoke(app, ["train", str(tmp_path / "photos"), "-o", str(tmp_path / "x.pt"),
                                       "--task-encoder", "dejpeg", "--steps", "1", "-q"])
    assert refused.exit_code != 0 and "--init" in refused.output and "Traceback" not in refused.output


def test_noisy_crops_of_the_damage_detector_keep_their_intact_pixels_in_the_loss():
    # Only the pixels the damage moved by 2 to 8 levels are left out, never those the noise moved.
    import numpy as np
    from pretrained.train_damage_detector import example
    pictures = [np.round(im * 255).astype(np.uint8) for im in smooth_images(3, 96, seed=5)]
    weights = [example(pictures, np.random.default_rng(seed), 64)[2].mean() for seed in range(12)]
    assert min(weights) > 0.95, weights


def test_the_damage_detectors_loss_weighs_a_wrong_call_by_what_it_costs():
    import numpy as np
    from pretrained.train_damage_detector import COST_BOUNDS, costs
    clean = np.full((16, 16, 3), 0.5, np.float32)
    clean[:, 8] = 0.9                                   # a thin bright line: refilling it costs a lot
    damaged, damage = clean.copy(), np.zeros((16, 16), bool)
    damaged[2, 2], damaged[4, 4], damage[2, 2], damage[4, 4] = 1.0, 0.56, True, True     # far and slight
    assert np.array_equal(costs(clean, damaged, damage, miss=False, refill=False), np.ones((16, 16)))
    miss = costs(clean, damaged, damage, miss=True, refill=False)
    assert miss[2, 2] > 1 > miss[4, 4] and miss[~damage].tolist() == [1.0] * 254
    refill = costs(clean, damaged, damage, miss=False, refill=True)
    assert refill[8, 8] > refill[8, 2] == COST_BOUNDS[0] and refill[damage].tolist() == [1.0, 1.0]
    both = costs(clean, damaged, damage, miss=True, refill=True)
    assert np.array_equal(both[damage], miss[damage]) and np.array_equal(both[~damage], refill[~damage])
    assert both.max() <= COST_BOUNDS[1]


def test_the_damage_detector_resumes_with_a_new_schedule(tmp_path):
    import zlib
    folder = tmp_path / "photos"
    folder.mkdir()
    names = [n for n in (f"p{i}" for i in range(20)) if zlib.crc32(n.encode()) % 5][:3]   # none kept out
    for name, im in zip(names, smooth_images(3, 64, seed=8)):
        write_image(folder / f"{name}.png", Picture(im))
    out = tmp_path / "damage.pt"
    script = [sys.executable, str(ROOT / "pretrained" / "train_damage_detector.py"), str(folder), "--out", str(out),
              "--minutes", "0.02", "--crop", "32", "--batch-size", "2", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def steps(*extra):
        subprocess.run(script + list(extra), check=True, capture_output=True, env=env, timeout=120)
        return torch.load(out, weights_only=True)["meta"]["steps"]

    first = steps()
    assert first > 0
    assert steps("--resume") == first              # the schedule's minutes are spent
    assert steps("--resume", "--new-schedule") > first
    steps("--resume", "--new-schedule", "--width", "28")
    assert torch.load(out, weights_only=True)["config"]["width"] == 28
    narrower = subprocess.run(script + ["--resume", "--new-schedule", "--width", "16"], capture_output=True,
                              text=True, env=env, timeout=120)
    assert narrower.returncode == 2 and "widened" in narrower.stderr and "Traceback" not in narrower.stderr


def test_a_widened_damage_detector_computes_what_it_did_and_then_learns():
    from pretrained.train_damage_detector import widened
    from restore.detector import DamageDetector, DetectorConfig
    torch.manual_seed(0)
    narrow = DamageDetector(DetectorConfig(width=6, dilations=(1, 2)))
    for p in narrow.parameters():               # no zero weights anywhere, as after training
        torch.nn.init.normal_(p, std=0.3)
    wide = widened(narrow, 10)
    x = torch.randn(2, 5, 24, 24)
    assert wide.config.width == 10 and torch.allclose(wide(x), narrow(x), atol=1e-5)
    wide(x).square().mean().backward()
    assert wide.logits.weight.grad[:, 6:].abs().sum() > 0       # the new channels start to count
    with pytest.raises(ValueError, match="widened"):
        widened(narrow, 4)


def test_the_damage_detectors_held_out_crops_and_scores(tmp_path):
    # The crops the thresholds are chosen on: only the kept-out fifth and the held-out photographs,
    # a third gray, 8-bit, each with damage; the scores of leaving it and of undoing it exactly.
    import zlib

    import numpy as np
    from pretrained.eval_damage_detector import COUNT, damaged_crops, scores
    names = [f"p{i}" for i in range(40)]
    kept_out = [n for n in names if zlib.crc32(n.encode()) % 5 == 0][:2]
    trained = [n for n in names if zlib.crc32(n.encode()) % 5][:2]
    for folder, group in (("photos", kept_out + trained), ("held_out", ["h0"])):
        (tmp_path / folder).mkdir()
        for name, im in zip(group, smooth_images(len(group), 300, seed=len(group))):
            write_image(tmp_path / folder / f"{name}.png", Picture(im))
    crops = damaged_crops(tmp_path)
    assert len(crops) == COUNT and {c[0] for c in crops} <= set(kept_out) | {"h0"}
    assert sum(c[1].shape[2] == 1 for c in crops) == (COUNT + 2) // 3
    for _, clean, damaged, damage, _ in crops:
        assert clean.shape[:2] == (256, 256) and damage.any() and np.array_equal(np.round(damaged * 255), damaged * 255)
    _, clean, damaged, damage, _ = crops[0]
    left, undone = scores(clean, damaged, damaged, damage), scores(clean, damaged, clean, damage)
    assert left[2:] == (0.0, 0.0) and undone[0] > left[0] + 20 and undone[1] == 100.0
    assert undone[3] == 1.0 and 0.5 < undone[2] <= 1.0
