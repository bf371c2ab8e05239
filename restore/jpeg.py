"""What a JPEG file says about the image it was made from.

A JPEG encoder turns the image into YCbCr (JFIF's full-range matrix), averages the chroma over
cells of 2x2 pixels (4:2:0) or 1x2 (4:2:2) or keeps it (4:4:4), cuts each plane into 8x8 blocks,
takes their orthonormal DCT and rounds each coefficient to a multiple of its step in the
quantisation table. The file keeps the tables, the chroma cells and the rounded coefficients, so
the set of images that encode to it is known: each coefficient lies in a bin one step wide
around its stored value. :class:`Quantisation` holds what the file says; the data term
(:class:`restore.fidelity.JPEGConstraint`) keeps a restoration inside that set.

The coefficients are recovered from the decoded pixels (re-quantising their DCT): decoding
rounds pixels to integers and smooths the chroma, which moves a coefficient by far less than
half a step for the qualities where artefacts show.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

#: JFIF's RGB -> YCbCr matrix (rows Y, Cb, Cr) for pixel values in 0..255; Cb and Cr are offset by 128.
RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                             [-0.168735892, -0.331264108, 0.5],
                             [0.5, -0.418687589, -0.081312411]], dtype=torch.float64)
#: The quantisation table the JPEG standard lists for luminance at quality 50 (Annex K).
STANDARD_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64).reshape(8, 8)


#: The gray value of an RGB pixel (the Y row of :data:`RGB_TO_YCBCR`).
LUMA = RGB_TO_YCBCR[0].float()

#: EXIF orientation -> (transpose, flip rows, flip columns) that turns the stored pixels upright.
_UPRIGHT = {1: (False, False, False), 2: (False, False, True), 3: (False, True, True), 4: (False, True, False),
            5: (True, False, False), 6: (True, False, True), 7: (True, True, True), 8: (True, True, False)}


def from_stored(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """``(H, W, ...)`` pixels as stored in a file of EXIF ``orientation``, turned upright (as readers show them)."""
    transpose, rows, cols = _UPRIGHT[orientation]
    out = np.swapaxes(pixels, 0, 1) if transpose else pixels
    out = out[::-1] if rows else out
    return np.ascontiguousarray(out[:, ::-1] if cols else out)


def to_stored(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """The inverse of :func:`from_stored`."""
    transpose, rows, cols = _UPRIGHT[orientation]
    out = pixels[:, ::-1] if cols else pixels
    out = out[::-1] if rows else out
    return np.ascontiguousarray(np.swapaxes(out, 0, 1) if transpose else out)


def _starts_as_jpeg(path) -> bool:
    """Whether the file (a path or a binary file object) begins with a JPEG's start-of-image marker."""
    try:
        if hasattr(path, "read"):
            at = path.tell()
            head = path.read(12)
            path.seek(at)
        else:
            with open(path, "rb") as f:
                head = f.read(12)
    except OSError:
        return True             # unreadable: the reader's own error says so
    from .images import signature_format
    return signature_format(head) == "JPEG"


class NotJPEGError(ValueError):
    """A file that is not a JPEG where one is needed."""


@dataclass(frozen=True)
class Quantisation:
    """The quantisation of a JPEG file: one 8x8 table of steps per plane and the chroma cells.

    Parameters
    ----------
    tables : tuple of (8, 8) arrays
        The steps of the luma plane and, for colour, of Cb and Cr (natural row order).
    chroma_cell : (int, int)
        Rows and columns of pixels one chroma sample covers: (2, 2) for 4:2:0, (1, 2) for
        4:2:2, (1, 1) for 4:4:4.
    orientation : int
        The EXIF orientation (1 to 8): the blocks lie on the stored pixels, which a reader turns
        upright (:func:`to_stored` and :func:`from_stored` go between the two).
    """
    tables: tuple[np.ndarray, ...]
    chroma_cell: tuple[int, int] = (1, 1)
    orientation: int = 1            # the file's EXIF orientation: its pixels are stored turned this way

    def __post_init__(self):
        if len(self.tables) not in (1, 3) or any(np.shape(t) != (8, 8) for t in self.tables):
            raise ValueError("a JPEG quantisation has one or three 8x8 tables")
        if any(np.min(t) < 1 for t in self.tables):
            raise ValueError("quantisation steps must be at least 1")
        if self.chroma_cell not in ((1, 1), (1, 2), (2, 1), (2, 2)):
            raise ValueError(f"chroma cells of {self.chroma_cell} pixels are not supported")

    def rounding_variance(self) -> float:
        """The variance, in [0, 1] units, that rounding the luma plane's coefficients puts into each
        pixel: the mean over its table of ``step^2 / 12`` (each coefficient's error uniform within
        its bin, the DCT orthonormal), over 255^2."""
        return float((np.asarray(self.tables[0], dtype=np.float64) ** 2).mean() / 12 / 255**2)

    @classmethod
    def from_file(cls, path) -> Quantisation:
        """The quantisation a JPEG file (a path or a binary file object) was written with;
        :class:`NotJPEGError` for any other file."""
        from PIL import UnidentifiedImageError

        from .images import opened
        path = path if hasattr(path, "read") else Path(path)
        try:
            with opened(path) as im:
                if im.format not in ("JPEG", "MPO"):     # MPO: a JPEG with more pictures after it
                    raise NotJPEGError(f"{path}: not a JPEG file ({im.format}); dejpeg restores JPEG files, "
                                       "use denoise for other images")
                layers, tables = im.layer, im.quantization
                orientation = int(im.getexif().get(0x0112, 1))
        except FileNotFoundError:
            raise NotJPEGError(f"{path}: no such file; check the path") from None
        except (UnidentifiedImageError, OSError) as e:
            if not _starts_as_jpeg(path):      # another format Pillow does not read (a float TIFF)
                raise NotJPEGError(f"{path}: not a JPEG file; dejpeg restores JPEG files, use denoise for other "
                                   "images") from None
            raise NotJPEGError(f"{path}: not a readable JPEG file ({type(e).__name__}); give a .jpg") from None
        if len(layers) not in (1, 3) or not tables:
            raise NotJPEGError(f"{path}: a JPEG of {len(layers)} planes (CMYK?); dejpeg restores gray or RGB JPEGs")
        steps = tuple(np.asarray(tables[table], dtype=np.float64).reshape(8, 8) for *_, table in layers)
        h_max, v_max = max(h for _, h, _, _ in layers), max(v for _, _, v, _ in layers)
        cell = (1, 1)
        if len(layers) == 3:
            _, h, v, _ = layers[1]
            cell = (v_max // v, h_max // h)
        try:
            return cls(steps, cell, orientation if orientation in range(1, 9) else 1)
        except ValueError as e:
            raise NotJPEGError(f"{path}: {e}") from None

    @property
    def block(self) -> int:
        """The side of the encoder's grid (its minimum coded unit) that tiles must align with."""
        return 8 * max(self.chroma_cell) if len(self.tables) == 3 else 8

    @property
    def mean_step(self) -> float:
        """The mean of the luminance table's steps: how coarse the file is (Pillow's quality 10: 196,
        50: 58, 90: 11.5)."""
        return float(np.mean(self.tables[0]))

    @property
    def quality(self) -> float:
        """The libjpeg quality (1..100) whose luminance table is nearest to this one's, for messages."""
        scale = float(np.median(self.tables[0] / STANDARD_LUMINANCE)) * 100
        quality = 5000 / scale if scale > 100 else (200 - scale) / 2
        return float(np.clip(quality, 1, 100))


@functools.lru_cache(maxsize=8)
def _dct_matrix(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The orthonormal 8-point DCT-II matrix (JPEG's transform along each side of a block)."""
    k = torch.arange(8, dtype=torch.float64)
    m = torch.cos(torch.pi * (2 * k[None, :] + 1) * k[:, None] / 16) * (2 / 8) ** 0.5
    m[0] /= 2**0.5
    return m.to(device=device, dtype=dtype)


def block_dct(plane: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """The DCT of every 8x8 block of ``plane`` (N, 1, H, W), H and W multiples of 8, in place of the block."""
    n, c, h, w = plane.shape
    d = _dct_matrix(plane.device, plane.dtype)
    d = d.T if inverse else d
    blocks = plane.reshape(n, c, h // 8, 8, w // 8, 8).transpose(3, 4)
    return (d @ blocks @ d.T).transpose(3, 4).reshape(n, c, h, w)


def to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """RGB (N, 3, H, W) in [0, 1] -> YCbCr in 0..255 units, each plane centred on 0 (JPEG's level shift)."""
    m = RGB_TO_YCBCR.to(device=x.device, dtype=x.dtype)
    return torch.einsum("ij,njhw->nihw", m, x * 255) - torch.tensor([128, 0, 0], device=x.device,
                                                                     dtype=x.dtype).view(1, 3, 1, 1)


def from_ycbcr(v: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`to_ycbcr`."""
    m = torch.linalg.inv(RGB_TO_YCBCR).to(device=v.device, dtype=v.dtype)
    v = v + torch.tensor([128, 0, 0], device=v.device, dtype=v.dtype).view(1, 3, 1, 1)
    return torch.einsum("ij,njhw->nihw", m, v) / 255


class Planes:
    """The planes a JPEG encoder quantises, as a linear map of the image and its adjoint-based
    projection: luma at full size, chroma averaged over ``chroma_cell``."""

    def __init__(self, quantisation: Quantisation):
        self.q = quantisation

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Image (N, C, H, W) in [0, 1] -> the centred planes the encoder transforms."""
        if len(self.q.tables) == 1:         # a gray file: what a colour image turns into in gray
            return [torch.einsum("j,njhw->nhw", LUMA.to(x), x)[:, None] * 255 - 128 if x.shape[1] == 3
                    else x * 255 - 128]
        if x.shape[1] != 3:
            raise ValueError("a colour JPEG needs a colour prior (this one restores gray images)")
        v = to_ycbcr(x)
        cell = self.q.chroma_cell
        return [v[:, :1]] + [F.avg_pool2d(v[:, i:i + 1], cell) if cell != (1, 1) else v[:, i:i + 1] for i in (1, 2)]

    @staticmethod
    def steps(table, like: torch.Tensor) -> torch.Tensor:
        """``table``'s steps at every coefficient of a plane's block DCT shaped as ``like``."""
        return torch.as_tensor(table, device=like.device, dtype=like.dtype).repeat(like.shape[-2] // 8,
                                                                                  like.shape[-1] // 8)

    def coefficients(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each plane's block DCT divided by its quantisation steps: rounding them gives the file."""
        return [block_dct(plane) / self.steps(table, plane) for plane, table in zip(self.split(x), self.q.tables)]

    def move(self, x: torch.Tensor, changes: list[torch.Tensor]) -> torch.Tensor:
        """``x`` changed so that its plane coefficients (in steps) change by ``changes``: the least
        change in the planes' own metric. A chroma sample averages ``k`` pixels, so adding its change
        to each of them moves the average by exactly that (``S S^T = I / k``)."""
        moved = []
        for change, table in zip(changes, self.q.tables):
            moved.append(block_dct(change * self.steps(table, change), inverse=True))
        if len(self.q.tables) == 1:         # the luma weights sum to 1: adding to each channel is exact
            return x + moved[0] / 255
        cell = self.q.chroma_cell
        full = [moved[0]] + [m.repeat_interleave(cell[0], -2).repeat_interleave(cell[1], -1) for m in moved[1:]]
        inverse = torch.linalg.inv(RGB_TO_YCBCR).to(device=x.device, dtype=x.dtype)
        return x + torch.einsum("ij,njhw->nihw", inverse, torch.cat(full, 1)) / 255
