import pytest
import torch

from restore.tiling import run_tiled, tile_starts


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

    def upsample(tiles, windows):
        seen.append(tiles.shape)
        assert tiles.shape[-1] * scale % multiple == 0 and tiles.shape[-2] * scale % multiple == 0
        return tiles.repeat_interleave(scale, -1).repeat_interleave(scale, -2)

    out = run_tiled(y, upsample, tile=32, overlap=8, multiple=multiple, scale=scale, batch=3)
    expected = y.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
    assert out.shape == expected.shape
    assert torch.allclose(out, expected, atol=1e-6)
    assert len({s[-2:] for s in seen}) == 1          # every tile has one size: they batch
