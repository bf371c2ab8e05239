"""Reading and writing image files.

Images are handled as :class:`Picture`: float32 pixels in [0, 1] of shape
``(H, W, C)`` in RGB order (C is 1 for grayscale, 3 for colour), plus the
alpha channel, if any, and the bit depth to write back. Files are decoded by
OpenCV; the EXIF orientation tag is applied on reading. Writes are atomic: the
encoded file goes to a temporary name beside the target, then is renamed.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import threading
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from PIL import Image

from .atomic import write_atomic

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
_SIXTEEN_BIT = (".png", ".tif", ".tiff")
_ALPHA = (".png", ".tif", ".tiff", ".webp")
MAX_PIXELS = 100_000_000
#: How far outside [0, 1] a float image may stray (rounding, resampling overshoot) before it is
#: taken for an image in other units; values inside the margin are clipped to [0, 1].
FLOAT_MARGIN = 0.01


def out_of_range(pixels: np.ndarray) -> tuple[float, float] | None:
    """``(lowest, highest)`` of finite float ``pixels`` that stray beyond [0, 1] by more than
    :data:`FLOAT_MARGIN` (an image in other units, never clipped into range), else None."""
    low, high = float(pixels.min()), float(pixels.max())
    return (low, high) if low < -FLOAT_MARGIN or high > 1 + FLOAT_MARGIN else None


class ImageError(ValueError):
    """A file that cannot be read or written as an image; the message says why and what to do."""


@dataclass
class Picture:
    pixels: np.ndarray               # (H, W, C) float32 in [0, 1], RGB
    alpha: np.ndarray | None = None  # (H, W) float32 in [0, 1]
    bit_depth: int = 8               # 8 or 16 (written with)
    floating: bool = False           # the file held floating-point pixels (written as 16-bit integers)
    read_notes: tuple[str, ...] = ()  # what reading the file left out or changed, in words
    icc_profile: bytes | None = None  # the file's colour profile, which the pixels are in
    exif: bytes | None = None        # the file's EXIF (camera, date, copyright), its orientation upright
    dpi: tuple[float, float] | None = None   # the file's resolution, pixels per inch across and down
    xmp: bytes | None = None         # the file's XMP (captions, keywords, rights), its orientation and sizes out
    text: tuple[tuple[str, str], ...] = ()   # a PNG's text (title, author, description), keyword and text

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[:2]

    def with_pixels(self, pixels: np.ndarray, alpha: np.ndarray | None = None) -> "Picture":
        return replace(self, pixels=pixels, alpha=self.alpha if alpha is None else alpha)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def is_hidden(relative: Path) -> bool:
    """Whether a path below a folder is hidden (a part's name starts with a dot): the files a system
    leaves beside the user's (macOS's ``._photo.png`` and ``.DS_Store``, ``.thumbnails/``)."""
    return any(part.startswith(".") for part in relative.parts)


def find_images(folder: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """The image files in ``folder`` (and its subfolders), sorted; hidden ones (:func:`is_hidden`) left out."""
    folder = Path(folder)
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in pattern if p.is_file() and is_image_file(p) and not is_hidden(p.relative_to(folder)))


def read_image(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> Picture:
    """Read an image file as a :class:`Picture`.

    Raises :class:`ImageError` with a one-line reason for a missing, unreadable or
    undecodable file or an image larger than ``max_pixels``.
    """
    path = Path(path)
    data, header = _read(path, max_pixels)
    orientation, mode = header.orientation, header.mode
    array, warned = _decode(path, data, max_pixels)
    if array.dtype == np.uint8:
        bit_depth, scale = 8, 255.0
    elif array.dtype == np.uint16:
        bit_depth, scale = 16, 65535.0
    else:
        bit_depth, scale = 16, 1.0           # floats: no format restore writes keeps them
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ImageError(f"{path}: its floating-point pixels hold NaN or infinite values; save it with finite "
                         "values in [0, 1]")
    colour, alpha = _colour_and_alpha(array.astype(np.float32) / scale)
    strays = out_of_range(colour) if array.dtype.kind == "f" else None
    if strays:
        raise ImageError(f"{path}: floating-point pixels from {strays[0]:g} to {strays[1]:g}, outside [0, 1]; save "
                         "it with values in [0, 1], or as 8- or 16-bit integers")
    if mode in GREY_WITH_ALPHA and colour.shape[2] == 3 and np.array_equal(colour[:, :, :1], colour[:, :, 1:2]) \
            and np.array_equal(colour[:, :, :1], colour[:, :, 2:]):
        colour = colour[:, :, :1]        # OpenCV decodes grey with alpha as BGRA: grey it stays
    pixels = _orient(np.ascontiguousarray(np.clip(colour, 0, 1)), orientation)
    alpha = None if alpha is None else np.ascontiguousarray(_orient(alpha, orientation))
    return Picture(pixels=pixels, alpha=alpha, bit_depth=bit_depth, floating=array.dtype.kind == "f",
                   read_notes=header.notes() + warned, icc_profile=header.icc_profile, exif=header.exif, dpi=header.dpi,
                   xmp=header.xmp, text=header.text)


def stored_pixels(path: str | os.PathLike, data: bytes | None = None, *,
                  max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, int]:
    """``(pixels, bits)``: the colour channels of the image file at ``path`` as stored, or of
    ``data``, the encoded bytes written to it -- ``(H, W, C)`` uint8 (``bits`` 8) or uint16
    (16), RGB, upright, without alpha. What scores are computed on: the integers a reader of
    the file gets, without a float copy of the image (a float TIFF is quantised to 16 bits).
    """
    path = Path(path)
    if data is None:
        raw, header = _read(path, max_pixels)
        orientation = header.orientation
    else:                      # bytes this package encoded: no orientation tag
        raw, orientation = np.frombuffer(data, np.uint8), 1
    colour, _ = _colour_and_alpha(_decode(path, raw, max_pixels)[0])
    if colour.dtype.kind == "f":
        colour = to_integer(colour, 16)
    return np.ascontiguousarray(_orient(colour, orientation)), 8 if colour.dtype == np.uint8 else 16


def _read(path: Path, max_pixels: int) -> tuple[np.ndarray, "_Header"]:
    """The file's bytes and its :class:`_Header`; a file over ``max_pixels`` is refused before decoding."""
    if path.is_dir():
        raise ImageError(f"{path}: is a folder; give an image file")
    if not path.is_file():
        raise ImageError(f"{path}: no such file; check the path")
    header = _header(path)
    if header.size is not None:
        _check_size(path, header.size, max_pixels)          # before decoding a huge file
    try:
        return np.fromfile(path, dtype=np.uint8), header
    except OSError as e:
        raise ImageError(f"{path}: cannot read it ({e.strerror}); check its permissions") from None


def _decode(path: Path, data: np.ndarray, max_pixels: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """OpenCV's decoding of a file's bytes, as stored: (H, W) or (H, W, C) in BGR(A) order, and the notes
    of what the decoder found amiss but read past (:data:`JPEG_STRAYS`)."""
    with decoder_messages() as said:
        try:                # OpenCV raises for some undecodable input (an empty file) and returns None for the rest
            array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        except cv2.error:
            array = None
    channels = re.search(r"'channels' is (\d+)", said.text)
    if array is None and channels:
        raise ImageError(f"{path}: an image of {channels.group(1)} channels; save it as grey, RGB or RGBA")
    if array is None:
        known = _format(path) or signature_format(bytes(data[:12])) if data.size else None
        if known:
            raise ImageError(f"{path}: a damaged or cut-short {known} file (its pixels cannot be decoded); "
                             "use an intact copy")
        empty = " (the file is empty)" if data.size == 0 else ""
        raise ImageError(f"{path}: not a readable image{empty}; use PNG, JPEG, TIFF, WebP or BMP")
    damage = next((line for line in said.lines if line.startswith(JPEG_DAMAGE)), None)
    if damage:
        # libjpeg decodes on past damage, filling what it cannot read: a restoration of that
        # would restore the damage. Its words, for who wants them, after the fix.
        raise ImageError(f"{path}: a damaged JPEG file ({damage.rstrip('.')}); use an intact copy")
    warned = tuple(f"libjpeg read past stray bytes in it ({line.rstrip('.')}): if the output shows grey or "
                   "shifted blocks, the file is damaged; use an intact copy"
                   for line in said.lines if line.startswith(JPEG_STRAYS) and not line.startswith(JPEG_DAMAGE))
    _check_size(path, (array.shape[1], array.shape[0]), max_pixels)
    if array.dtype not in (np.uint8, np.uint16) and array.dtype.kind != "f":
        raise ImageError(f"{path}: unsupported pixel type {array.dtype}; save it as 8- or 16-bit")
    if array.ndim == 3 and array.shape[2] == 4 and array.dtype == np.uint8 and bytes(data[:4]) in _TIFF_MAGIC:
        # OpenCV reads an 8-bit TIFF with alpha through libtiff's RGBA reader, which multiplies
        # the colour by the alpha: a transparent pixel's colour comes back black. Pillow does not.
        with opened(io.BytesIO(data.tobytes())) as im:
            array = np.asarray(im.convert("RGBA"))[:, :, [2, 1, 0, 3]]
    return array, warned


#: The first bytes of a TIFF file (little- and big-endian).
_TIFF_MAGIC = (b"II*\0", b"MM\0*")
#: Each format's first bytes: what a file cut short before Pillow can read its header still says.
_SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), *((magic, "TIFF") for magic in _TIFF_MAGIC),
               (b"BM", "BMP"))
#: How libjpeg begins its warnings of damaged data that it decodes on past, filling in what it
#: cannot read (an image of 64x64 at quality 50: a restart marker written into its scan gave pixels
#: 38 levels off on average): refused.
JPEG_DAMAGE = ("Premature end of JPEG file", "Corrupt JPEG data: premature end of data segment",
               "Corrupt JPEG data: bad Huffman code", "Corrupt JPEG data: found marker")
#: Its warning of bytes it skipped to find the next marker: junk an encoder left before the end
#: marker, or between segments, decodes to the intact file's pixels; scrambled scan data can say
#: the same (80 levels off). Read, with a note.
JPEG_STRAYS = ("Corrupt JPEG data",)
#: How the C decoders' own lines on the process's stderr begin (libjpeg, libpng, libtiff, OpenCV's log):
#: restore says in one line what they mean, and shows them not.
_DECODER_LINES = JPEG_DAMAGE + JPEG_STRAYS + ("libpng ", "[ERROR:", "[ WARN:", "[ INFO:", "> ", "TIFFRead",
                                              "Warning: thumbnail")


def signature_format(head: bytes) -> str | None:
    """The format whose first bytes a file's ``head`` (12 bytes or more) begins with (a WebP's are
    ``RIFF....WEBP``), else None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in _SIGNATURES if head.startswith(magic)), None)


@dataclass
class _Said:
    """What the decoders wrote while :func:`decoder_messages` listened: ``lines``, and all as ``text``."""
    text: str = ""

    @property
    def lines(self) -> list[str]:
        return [line.strip() for line in self.text.splitlines() if line.strip()]


#: One listener at a time: the process has one stderr.
_STDERR = threading.Lock()


@contextlib.contextmanager
def decoder_messages() -> Iterator[_Said]:
    """What the C libraries write to the process's stderr (file descriptor 2) within the block,
    caught rather than shown: libjpeg's warnings of damaged data, libpng's errors, OpenCV's log of
    a file it cannot read. Lines that are none of theirs (another thread's) pass on to stderr."""
    said = _Said()
    try:
        listening = tempfile.TemporaryFile()
    except OSError:                 # no temporary folder to write in: the decoders speak for themselves
        yield said
        return
    with _STDERR, listening as caught:
        if sys.stderr is not None:
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:             # no stderr at all (a daemon's): nothing to catch, nothing shown
            yield said
            return
        os.dup2(caught.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            said.text = caught.read().decode(errors="replace")
    others = [line for line in said.text.splitlines(keepends=True)
              if line.strip() and not line.lstrip().startswith(_DECODER_LINES)]
    if others and sys.stderr is not None:
        sys.stderr.write("".join(others))


#: Pillow's modes of grey images with an alpha channel.
GREY_WITH_ALPHA = ("LA", "La")


def _colour_and_alpha(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A decoded array's colour channels, ``(H, W, C)`` in RGB order, and its alpha channel or None (views)."""
    if array.ndim == 2:
        array = array[:, :, None]
    alpha = None
    if array.shape[2] in (2, 4):
        alpha, array = array[:, :, -1], array[:, :, :-1]
    if array.shape[2] == 3:
        array = array[:, :, ::-1]                       # OpenCV's BGR -> RGB
    return array, alpha


def _check_size(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    if size[0] * size[1] > max_pixels:
        raise ImageError(f"{path}: image of {size[0]}x{size[1]} pixels is over the limit of "
                         f"{max_pixels / 1e6:g} megapixels; downscale it or raise --max-megapixels")


#: Pillow warns of a "decompression bomb" over 89 megapixels and refuses one over 179 as it opens a
#: file; restore opens files for their headers to refuse images over its own limit (``max_pixels``,
#: --max-megapixels) before decoding them, so it opens them without Pillow's (a lock, as the limit is
#: Pillow's global).
_PILLOW_LIMIT = threading.Lock()


@contextlib.contextmanager
def opened(path):
    """``PIL.Image.open(path)`` (a path or a binary file object) without Pillow's own size limit,
    for the header: restore applies its own before decoding."""
    # Pillow's warnings of a damaged header ("Corrupt EXIF data", two lines naming its own source) are
    # not the user's to read: restore reads the file without what it cannot, or says in one line why not.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _PILLOW_LIMIT:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        with image:
            yield image


@dataclass(frozen=True)
class _Header:
    """What Pillow reads of a file without decoding its pixels (``size`` and ``mode`` None where
    Pillow cannot read it: OpenCV decides, nothing rotated, nothing carried over)."""
    size: tuple[int, int] | None = None
    orientation: int = 1
    mode: str | None = None
    frames: int = 1
    icc_profile: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None      # across and down, upright
    xmp: bytes | None = None
    text: tuple[tuple[str, str], ...] = ()

    def notes(self) -> tuple[str, ...]:
        """What :func:`read_image` leaves out of the file or changes, in words."""
        said = []
        if self.frames > 1:
            said.append(f"only the first of its {self.frames} pages or frames is restored")
        if self.mode == "CMYK":
            said.append("its CMYK inks are converted to RGB colours, without a printer's colour profile, and written as RGB")
        return tuple(said)


def _header(path: Path) -> _Header:
    try:
        with opened(path) as im:
            exif = im.getexif()
            orientation = int(exif.get(ORIENTATION, 1))
            kept = _descriptive(exif)
            dpi = im.info.get("dpi")
            dpi = tuple(float(d) for d in dpi) if dpi and len(dpi) == 2 and min(dpi) > 0 else None
            if dpi is not None and orientation >= 5:     # turned a quarter: across and down swap
                dpi = dpi[::-1]
            mode = "LA" if im.format == "PNG" and _png_colour_type(path) == 4 else im.mode   # Pillow: 16-bit LA as RGBA
            xmp = im.info.get("xmp") or im.info.get(_PNG_XMP)     # Pillow < 10 names a PNG's by its keyword
            text = tuple((k, str(v)) for k, v in getattr(im, "text", {}).items() if k != _PNG_XMP) \
                if im.format == "PNG" else ()
            return _Header(im.size, orientation, mode, int(getattr(im, "n_frames", 1)),
                           im.info.get("icc_profile") or None, kept.tobytes() if len(kept) else None, dpi,
                           _upright_xmp(xmp), text)
    except Exception:
        return _Header()


def _png_colour_type(path: Path) -> int:
    """A PNG file's colour type (4: grey with alpha), from its header."""
    with open(path, "rb") as f:
        return f.read(26)[25]


#: The EXIF tag of the orientation.
ORIENTATION = 0x0112
#: The EXIF that says what a photograph is and who made it, and goes with its pixels: the first
#: directory's description, maker, model, software, date, artist, computer and copyright, then the
#: camera's directory (exposure, lens, dates) and the GPS directory. Not the orientation (the pixels
#: are read upright), nor a TIFF's layout (strips, sizes), a maker's note (its offsets break when
#: moved), the interoperability pointer or the pixel sizes (an upscale changes them).
_DESCRIPTIVE = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x013C, 0x8298)
_CAMERA, _GPS = 0x8769, 0x8825
_NOT_CARRIED = (0x927C, 0xA005, 0xA002, 0xA003)


#: The PNG text keyword of an XMP packet, and the header of a JPEG's XMP segment (APP1).
_PNG_XMP = "XML:com.adobe.xmp"
_JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\0"
#: What an XMP packet says of the pixels' layout, which the restored file may no longer have: the
#: orientation (the pixels are read upright), the sizes and the resolution (an upscale changes
#: them; the file's own resolution goes with it as :attr:`Picture.dpi`).
_XMP_LAYOUT = ("tiff:Orientation", "tiff:ImageWidth", "tiff:ImageLength", "exif:PixelXDimension",
               "exif:PixelYDimension", "tiff:XResolution", "tiff:YResolution", "tiff:ResolutionUnit")


def _upright_xmp(xmp: bytes | str | None) -> bytes | None:
    """``xmp`` (a packet's UTF-8 text) without the properties :data:`_XMP_LAYOUT` names, written as
    attributes or as elements with their usual prefixes; None for none."""
    if not xmp:
        return None
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    for name in (n.encode() for n in _XMP_LAYOUT):
        xmp = re.sub(rb"\s" + name + rb"\s*=\s*(\"[^\"]*\"|'[^']*')", b"", xmp)
        xmp = re.sub(rb"<" + name + rb"(\s[^>]*)?(/>|>.*?</" + name + rb"\s*>)", b"", xmp, flags=re.DOTALL)
    return xmp


def _descriptive(exif: Image.Exif) -> Image.Exif:
    """The part of ``exif`` (Pillow's) that :data:`_DESCRIPTIVE` says goes with the pixels."""
    kept = Image.Exif()
    try:
        for tag in _DESCRIPTIVE:
            if tag in exif:
                kept[tag] = exif[tag]
        for pointer in (_CAMERA, _GPS):
            directory = {tag: value for tag, value in exif.get_ifd(pointer).items() if tag not in _NOT_CARRIED}
            if directory:
                kept[pointer] = directory
        kept.tobytes()
    except Exception:      # a damaged directory: the photograph is read without it, not refused
        return Image.Exif()
    return kept


def _format(path: Path) -> str | None:
    """The image format Pillow recognises in the file's header (``"PNG"``), else None."""
    try:
        with opened(path) as im:
            return im.format
    except Exception:
        return None


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) so the image displays upright."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
           7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.swapaxes(a, 0, 1)[::-1]}
    return ops[orientation](a) if orientation in ops else a


def encode_image(picture: Picture, suffix: str) -> bytes:
    """Encode ``picture`` in the format named by ``suffix`` (e.g. ``".png"``).

    16-bit is kept where the format allows it (PNG, TIFF), else written as 8-bit;
    alpha is kept where the format allows it (PNG, TIFF, WebP).
    """
    suffix = suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageError(f"cannot write '{suffix}' files; use one of {', '.join(IMAGE_SUFFIXES)}")
    bits = written_bits(picture, suffix)
    array = picture.pixels
    if array.shape[2] == 3:
        array = array[:, :, ::-1]
    if picture.alpha is not None and suffix in _ALPHA:
        if array.shape[2] == 1 and suffix == ".png":
            grey_alpha = to_integer(np.concatenate([array, picture.alpha[:, :, None]], axis=2), bits)
            return with_metadata(_grey_with_alpha_png(grey_alpha), suffix, picture)
        if array.shape[2] == 1:       # OpenCV writes no grey with alpha: three equal channels
            array = np.repeat(array, 3, axis=2)
        array = np.concatenate([array, picture.alpha[:, :, None]], axis=2)
    array = to_integer(array, bits)
    if suffix == ".webp" and array.shape[2] == 4:
        # Lossless, and exact: OpenCV's encoder drops the colour under fully transparent pixels
        # (libwebp's default), which are pixels of the image like any other.
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array[:, :, [2, 1, 0, 3]]), "RGBA").save(buffer, "WEBP", lossless=True,
                                                                                      exact=True)
        return buffer.getvalue()
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix in (".jpg", ".jpeg") else []
    if suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 101]        # > 100 means lossless
    ok, buffer = cv2.imencode(suffix, np.ascontiguousarray(array.squeeze(2) if array.shape[2] == 1 else array), params)
    if not ok:
        raise ImageError(f"could not encode the image as '{suffix}'")
    return with_metadata(buffer.tobytes(), suffix, picture)


#: The formats whose files restore writes with the input's colour profile, EXIF, resolution and XMP.
_METADATA = (".png", ".jpg", ".jpeg")


def with_metadata(data: bytes, suffix: str, picture: Picture) -> bytes:
    """The encoded file ``data`` with ``picture``'s colour profile, EXIF, resolution and XMP added,
    for a PNG (``pHYs``, ``iCCP``, ``eXIf`` and ``iTXt`` chunks after the header, its text too) or a
    JPEG (APP1 and APP2 segments after the first, the JFIF header's density): the pixels are
    unchanged in colour space, so the profile still says what they mean."""
    suffix = suffix.lower()
    if suffix not in _METADATA or (picture.icc_profile is None and picture.exif is None and picture.dpi is None
                                   and picture.xmp is None and not picture.text):
        return data
    if suffix == ".png":
        chunks = b""
        if picture.dpi is not None:           # pixels per metre, across and down, unit 1 (the metre)
            per_metre = [min(round(d / 0.0254), 2**31 - 1).to_bytes(4, "big") for d in picture.dpi]
            chunks += _png_chunk(b"pHYs", b"".join(per_metre) + b"\x01")
        if picture.icc_profile is not None:
            chunks += _png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(picture.icc_profile))
        if picture.exif is not None:
            chunks += _png_chunk(b"eXIf", picture.exif.removeprefix(b"Exif\0\0"))
        # iTXt: a keyword, no compression, no language, then UTF-8 text
        for keyword, text in picture.text + (((_PNG_XMP, picture.xmp.decode("utf-8", "replace")),)
                                             if picture.xmp is not None else ()):
            chunks += _png_chunk(b"iTXt", keyword.encode("latin-1", "replace")[:79] + b"\0\0\0\0\0"
                                 + text.encode("utf-8"))
        end_of_header = 8 + 8 + 13 + 4                      # signature, IHDR's length, type, data, CRC
        return data[:end_of_header] + chunks + data[end_of_header:]
    segments = b""
    if picture.exif is not None:
        exif = _jpeg_exif(picture.exif)
        if len(exif) <= _JPEG_SEGMENT:          # else dropped (dropped_by says so): no segment holds it
            segments += b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif
    xmp = None if picture.xmp is None else _jpeg_xmp(picture.xmp)
    if xmp is not None and len(xmp) <= _JPEG_SEGMENT:          # else dropped (dropped_by says so)
        segments += b"\xff\xe1" + (len(xmp) + 2).to_bytes(2, "big") + xmp
    if picture.icc_profile is not None:
        size = _JPEG_SEGMENT - 14
        parts = [picture.icc_profile[i:i + size] for i in range(0, len(picture.icc_profile), size)]
        for i, part in enumerate(parts[:255]):
            body = b"ICC_PROFILE\0" + bytes([i + 1, len(parts)]) + part
            segments += b"\xff\xe2" + (len(body) + 2).to_bytes(2, "big") + body
    at = 2                                                  # after SOI, and after the JFIF APP0 if first
    if data[2:4] == b"\xff\xe0":
        at = 4 + int.from_bytes(data[4:6], "big")
        if picture.dpi is not None and data[6:11] == b"JFIF\0":   # its units (1: dots per inch) and densities
            density = b"\x01" + b"".join(min(round(d), 65535).to_bytes(2, "big") for d in picture.dpi)
            data = data[:13] + density + data[18:]
    return data[:at] + segments + data[at:]


#: A JPEG segment's most bytes after its marker and length.
_JPEG_SEGMENT = 65533


def _jpeg_exif(exif: bytes) -> bytes:
    """The body of a JPEG's EXIF segment (APP1): ``exif`` after its ``Exif`` header."""
    return exif if exif.startswith(b"Exif\0\0") else b"Exif\0\0" + exif


def _jpeg_xmp(xmp: bytes) -> bytes:
    """The body of a JPEG's XMP segment (APP1): its namespace header, then the packet."""
    return _JPEG_XMP + xmp


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def _grey_with_alpha_png(array: np.ndarray) -> bytes:
    """A ``(H, W, 2)`` grey and alpha array, uint8 or uint16, as a PNG of that colour type (4) and
    depth: Pillow writes 8 bits (its filters pack them 9 % smaller than none); neither it nor OpenCV
    writes 16, so those are written here, rows unfiltered."""
    if array.dtype == np.uint8:
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array), "LA").save(buffer, "PNG")
        return buffer.getvalue()
    h, w, _ = array.shape
    rows = np.ascontiguousarray(array, dtype=">u2").view(np.uint8).reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()      # filter type 0 for each row
    header = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([16, 4, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(raw, 6))
            + _png_chunk(b"IEND", b""))


def written_bits(picture: Picture, suffix: str) -> int:
    """The bits per channel :func:`encode_image` writes ``picture`` with in a file of ``suffix``."""
    return picture.bit_depth if suffix.lower() in _SIXTEEN_BIT else 8


def dropped_by(picture: Picture, suffix: str) -> list[str]:
    """What of ``picture`` a file of ``suffix`` cannot hold (see :func:`encode_image`), in words."""
    suffix = suffix.lower()
    lost = []
    if picture.bit_depth == 16 and not picture.floating and suffix not in _SIXTEEN_BIT:
        lost.append("16-bit depth (it is written with 8 bits)")
    if picture.alpha is not None and suffix not in _ALPHA:
        lost.append("transparency (the alpha channel is left out)")
    kept = {"colour profile (ICC)": picture.icc_profile, "EXIF data (camera, date, copyright)": picture.exif,
            "resolution (DPI)": picture.dpi, "XMP data (captions, keywords, rights)": picture.xmp}
    lost += [what for what, value in kept.items() if value is not None and suffix not in _METADATA]
    if picture.text and suffix != ".png":
        lost.append(f"PNG text ({', '.join(k for k, _ in picture.text)})")
    if suffix in (".jpg", ".jpeg") and picture.exif is not None and len(_jpeg_exif(picture.exif)) > _JPEG_SEGMENT:
        lost.append("EXIF data (over the 64 KB a JPEG's EXIF segment holds)")
    if suffix in (".jpg", ".jpeg") and picture.xmp is not None and len(_jpeg_xmp(picture.xmp)) > _JPEG_SEGMENT:
        lost.append("XMP data (over the 64 KB a JPEG's XMP segment holds)")
    return lost


def to_integer(array: np.ndarray, bits: int) -> np.ndarray:
    """Quantise [0, 1] floats to 8- or 16-bit integers; 8- or 16-bit integers are converted exactly
    as their value in [0, 1] would be."""
    dtype = np.uint16 if bits == 16 else np.uint8
    if array.dtype == dtype:
        return array
    if array.dtype == np.uint8:                         # x / 255 * 65535 is x * 257, exactly
        return array.astype(np.uint16) * 257
    if array.dtype == np.uint16:                        # round(x / 257): x % 257 is never 128.5
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    scaled = np.clip(array, 0, 1)                       # one float copy, scaled and rounded in place
    scaled *= 65535 if bits == 16 else 255
    return np.rint(scaled, out=scaled).astype(dtype)


def quantize(picture: Picture, suffix: str) -> np.ndarray:
    """The pixels exactly as :func:`write_image` stores them, back in [0, 1]."""
    bits = picture.bit_depth if suffix.lower() in _SIXTEEN_BIT else 8
    top = 65535.0 if bits == 16 else 255.0
    return to_integer(picture.pixels, bits).astype(np.float32) / top


def write_image(path: str | os.PathLike, picture: Picture) -> None:
    """Write ``picture`` to ``path`` atomically; the format follows the suffix.

    Pixels that are not finite are refused (an :class:`ImageError`, nothing written): cast to
    integers they would land as arbitrary values.
    """
    if not np.isfinite(picture.pixels).all() or (picture.alpha is not None and not np.isfinite(picture.alpha).all()):
        raise ImageError(f"{path}: the image holds NaN or infinite pixels; nothing was written")
    write_atomic(path, encode_image(picture, Path(path).suffix))
