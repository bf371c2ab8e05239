import pytest
from torch.nn import functional as F
import torch

from restore.tiling import run_tiled, tile_layout, tile_starts


def test_tile_starts_cover_the_length():
    for length, tile, overlap in [(100, 32, 8), (32, 32, 8), (33, 32, 8), (257, 64, 16)]:
        starts = tile_starts(length, tile, overlap)
        covered = set()
        for s in starts:
            covered.update(range(s, s + tile))
        assert covered >= set(range(length)) and max(starts) + tile == max(length, tile)


@pytest.mark.parametrize("h,w,scale,multiple", [(50, 70, 1, 4), (10, 13, 1, 4), (40, 40, 2, 4), (37, 21, 4, 8)])
def test_identity_restoration_is_exact(h, w, scale, multiple):
    """Restoring each tile by plain upsampling must reassemble the upsampled image exactly."""
    y = torch.rand(1, 3, h, w)
    seen = []

    def upsample(tiles, _aux):
        seen.append(tiles.shape)
        assert tiles.shape[-1] * scale % multiple == 0 and tiles.shape[-2] * scale % multiple == 0
        return tiles.repeat_interleave(scale, -1).repeat_interleave(scale, -2)

    out = run_tiled(y, upsample, tile=32, overlap=8, multiple=multiple, scale=scale, batch=3)
    expected = y.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
    assert out.shape == expected.shape
    assert torch.allclose(out, expected, atol=1e-6)
    assert len({s[-2:] for s in seen}) == 1          # every tile has one size: they batch


def test_tiles_that_disagree_are_blended_without_a_step():
    """Each tile comes back off by its own constant: across an overlap the result must ramp
    from one to the other, never jump (as it would if every pixel weighed the same)."""
    y = torch.zeros(1, 1, 8, 80)
    offsets = iter(range(100))

    def shifted(tiles, _aux):
        return torch.stack([t + 0.1 * next(offsets) for t in tiles])

    out = run_tiled(y, shifted, tile=32, overlap=16, multiple=4, batch=1)[0, 0, 4]
    assert float(out.max() - out.min()) > 0.15                   # the tiles did disagree
    assert float(out.diff().abs().max()) < 0.1 / 4               # and the seams ramp


def test_margin_tiles_are_larger_and_reassemble_exactly():
    """A blur's tiles cover ``margin`` more pixels on every side; the output keeps the input's size."""
    y = torch.rand(1, 3, 45, 61)
    margin = 5

    def pad_back(tiles, _aux):
        assert (tiles.shape[-1] + 2 * margin) % 4 == 0 and (tiles.shape[-2] + 2 * margin) % 4 == 0
        return F.pad(tiles, (margin,) * 4, value=9.0)          # margin pixels are junk

    out = run_tiled(y, pad_back, tile=32, overlap=8, multiple=4, margin=margin, batch=2)
    assert out.shape == y.shape
    assert torch.allclose(out, y, atol=1e-6)                    # junk weighs nothing


def test_aux_is_cut_with_the_same_windows():
    y = torch.rand(1, 1, 40, 40)

    def check(tiles, aux):
        assert torch.equal(aux, tiles * 2)
        return tiles

    run_tiled(y, check, tile=16, overlap=4, multiple=4, aux=y * 2)


@pytest.mark.parametrize("task", ["denoise", "dejpeg"])
def test_the_data_filter_runs_once_on_the_whole_image_after_the_priors_tiles(monkeypatch, task):
    """The photo prior restores 256-pixel tiles; the data's last filter then takes the blended
    estimate of the whole image (one filter tile here), not each of the prior's tiles alone."""
    import numpy as np

    import restore
    from restore.reconstructor import Reconstructor
    from restore.tasks.dejpeg import jpeg_round_trip
    calls = {"estimate": [], "finish": []}
    for name in calls:
        method = getattr(Reconstructor, name)

        def spy(self, result_or_y, *args, _method=method, _name=name, **kwargs):
            y = args[0] if _name == "finish" else result_or_y
            calls[_name].append((len(y), *y.shape[-2:]))
            return _method(self, result_or_y, *args, **kwargs)
        monkeypatch.setattr(Reconstructor, name, spy)
    rng = np.random.default_rng(3)
    clean = np.clip(0.5 + 0.2 * np.sin(np.arange(300) / 9)[:, None, None] + 0.1 * rng.random((300, 320, 3)), 0, 1)
    if task == "denoise":
        out = restore.denoise(np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32), sigma=25)
    else:
        decoded, quantisation = jpeg_round_trip(clean, 20)
        out = restore.dejpeg(decoded, quantisation=quantisation)
    assert out.shape == clean.shape and np.isfinite(out).all()
    assert sum(n for n, *_ in calls["estimate"]) == 4 and all(max(s) == 256 for _, *s in calls["estimate"])
    assert calls["finish"] == [(1, 300, 320)]


def test_rectangular_tiles_reassemble_exactly_and_have_their_own_sides():
    y = torch.rand(1, 3, 50, 70)
    shapes = []

    def identity(tiles, aux_tiles):
        shapes.append(tuple(tiles.shape[-2:]))
        return tiles
    out = run_tiled(y, identity, tile=(20, 36), overlap=4, multiple=1, batch=1)
    assert torch.allclose(out, y, atol=1e-6)
    assert set(shapes) == {(20, 36)} and len(shapes) == 3 * 3


@pytest.mark.parametrize("h,w,grid", [(866, 1155, 1), (3000, 4000, 1), (1224, 1632, 16), (300, 320, 16), (1025, 700, 8)])
def test_the_filters_tiles_are_balanced_and_no_larger_than_they_need_be(h, w, grid):
    from restore.pipeline import FILTER_TILE, filter_tiles
    th, tw = filter_tiles(h, w, overlap=32, grid=grid)
    assert th % grid == 0 and tw % grid == 0
    for length, side in ((h, th), (w, tw)):
        count = len(tile_starts(length, side, 32))
        assert side <= max(FILTER_TILE, -(-length // grid) * grid)
        # The fewest tiles of at most FILTER_TILE, and the work of their overlaps small.
        assert count == max(1, -(-(length - 32) // (FILTER_TILE - 32)))
        assert count * side <= length + count * (32 + grid)


def test_the_filters_tiles_take_any_overlap():
    from restore.pipeline import FILTER_TILE, filter_tiles
    for overlap in (0, FILTER_TILE - 1, FILTER_TILE, 5 * FILTER_TILE):
        th, tw = filter_tiles(3000, 700, overlap=overlap)
        assert 0 < th <= FILTER_TILE and tw == 700


def test_the_progress_names_each_stage_and_counts_it_to_its_total():
    """The prior's steps, then each pass of the data's filter over each of its tiles: a stage each,
    named, each counted from its start to its total; a function hears the same counts."""
    import numpy as np

    import restore
    from restore.batch import Progress

    class Heard(Progress):
        def __init__(self):
            self.stages = []

        def stage(self, name, unit):
            self.stages.append((name, unit, []))

        def step(self, done, total):
            self.stages[-1][2].append((done, total))
    heard, plain = Heard(), []
    noisy = np.random.default_rng(4).random((300, 1200, 3)).astype(np.float32)
    restore.denoise(noisy, sigma=25, quick=True, progress=heard)
    restore.denoise(noisy, sigma=25, quick=True, progress=lambda done, total: plain.append((done, total)))
    # One encoder pass for each batch of the prior's tiles, then the filter's one pass (quick) on each
    # of its two tiles (1200 columns: two of at most FILTER_TILE).
    assert [(name, unit) for name, unit, _ in heard.stages] == [
        ("the prior", None), ("the data's filter, tile 1 of 2, pass 1", "bands of rows"),
        ("the data's filter, tile 2 of 2, pass 1", "bands of rows")]
    prior, *passes = [counts for _, _, counts in heard.stages]
    assert [done for done, _ in prior] == list(range(1, len(prior) + 1)) and {t for _, t in prior} == {len(prior)}
    for counts in passes:
        total = counts[0][1]
        assert counts == [(done, total) for done in range(total + 1)] and total > 1
    assert plain == [c for _, _, counts in heard.stages for c in counts]


def test_a_grey_scan_with_a_colour_stamp_keeps_its_grey_parts_grey():
    """Under a sensor's noise a colour image is restored where its noise is white, a grey one (three
    copies of one channel) as it is, and a colour image's parts of grey alone as grey."""
    import numpy as np

    from restore.conditions import poisson_gaussian
    from restore.metrics import psnr
    from restore.pipeline import SolverSettings, restore as run
    from restore.tasks.denoise import Denoise
    rng = np.random.default_rng(5)
    rows, columns = np.mgrid[0:300, 0:600] / 300.0
    grey = 0.35 + 0.25 * np.sin(6 * rows) * np.cos(4 * columns)
    clean = np.repeat(grey[:, :, None], 3, 2)
    clean[:, 300:] = np.stack([grey, 0.9 - grey, 0.5 + 0.3 * (grey - 0.35)], 2)[:, 300:]  # the colour stamp
    noisy = np.clip(poisson_gaussian(clean, 1 / 40, 0.02**2, rng), 0, 1).astype(np.float32)
    noisy[:, :300] = noisy[:, :300, :1]            # the grey part: one reading in all three channels
    clean = clean.astype(np.float32)
    out = run(noisy, Denoise(noise="poisson-gaussian:0.025,0.0004"), settings=SolverSettings(tile_batch=1))
    # The first 256 columns are tiles of grey alone, restored as grey: measured +17.2 dB, +15.1 in all
    # (filtered as one colour image, the grey parts' one draw of the noise in three channels: +5.6).
    assert psnr(clean[:, :256], out[:, :256]) > psnr(clean[:, :256], noisy[:, :256]) + 14
    assert psnr(clean, out) > psnr(clean, noisy) + 12


@pytest.mark.parametrize("h, w, tile, overlap, multiple, scale, margin, grid", [
    (300, 320, 128, 32, 8, 1, 0, 1), (300, 321, (96, 128), 16, 8, 1, 0, 8), (45, 37, 64, 16, 8, 2, 0, 1),
    (90, 140, 64, 16, 4, 1, 7, 1), (20, 500, 64, 32, 16, 1, 0, 16), (130, 70, 64, 8, 8, 4, 2, 1)])
def test_the_layout_is_the_tiles_run_tiled_restores(h, w, tile, overlap, multiple, scale, margin, grid):
    """``tile_layout`` (what the progress counts before the work) lays the tiles run_tiled restores."""
    seen = []

    def restore_tiles(tiles, _):
        seen.append(tuple(tiles.shape[-2:]))
        side = lambda n: n * scale + 2 * margin
        return torch.zeros(len(tiles), 1, side(tiles.shape[-2]), side(tiles.shape[-1]))

    counted = []
    run_tiled(torch.rand(1, 1, h, w), restore_tiles, tile=tile, overlap=overlap, multiple=multiple, scale=scale,
              margin=margin, grid=grid, batch=1, on_tiles=counted.append)
    layout = tile_layout(h, w, tile=tile, overlap=overlap, multiple=multiple, scale=scale, margin=margin, grid=grid)
    assert counted == [len(layout.windows)] == [len(seen)]
    assert set(seen) == {layout.size}
    assert all((side + p) % grid == 0 for side, p in zip((h, w), layout.pad))


def test_tiles_on_a_grid_that_no_size_up_to_the_tile_fits_take_the_smallest_that_does():
    """A prior of one size (28: the digits prior) on a 4:2:0 JPEG's blocks (16): no tile up to 28
    fits both, so the tile is the smallest that does (112, which that prior then refuses by size)."""
    layout = tile_layout(64, 64, tile=28, overlap=8, multiple=28, grid=16)
    assert layout.size == (112, 112) and layout.windows == [(0, 0)]
    image = torch.rand(1, 3, 64, 64)
    assert torch.equal(run_tiled(image, lambda t, a: t, tile=28, overlap=8, multiple=28, grid=16), image)
