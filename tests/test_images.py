import numpy as np
import pytest
from PIL import Image

from restore.images import ImageError, Picture, dropped_by, encode_image, read_image, write_image


def _gradient(h=12, w=16, c=3):
    y, x = np.mgrid[0:h, 0:w]
    planes = [(x / (w - 1)), (y / (h - 1)), ((x + y) / (h + w - 2))][:c]
    return np.stack(planes, axis=2).astype(np.float32)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp", ".webp"])
def test_8bit_colour_round_trip_is_exact(tmp_path, suffix):
    pic = Picture(np.round(_gradient() * 255) / 255)
    write_image(tmp_path / f"a{suffix}", pic)
    back = read_image(tmp_path / f"a{suffix}")
    assert back.bit_depth == 8 and back.pixels.shape == (12, 16, 3)
    assert np.array_equal(np.round(back.pixels * 255), np.round(pic.pixels * 255))


def test_colour_order_is_rgb(tmp_path):
    Image.fromarray(np.array([[[255, 0, 0]]], np.uint8)).save(tmp_path / "red.png")
    assert read_image(tmp_path / "red.png").pixels[0, 0].tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_stays_16bit(tmp_path, suffix):
    pixels = np.round(_gradient() * 65535) / 65535
    write_image(tmp_path / f"a{suffix}", Picture(pixels, bit_depth=16))
    back = read_image(tmp_path / f"a{suffix}")
    assert back.bit_depth == 16
    assert np.array_equal(np.round(back.pixels * 65535), np.round(pixels * 65535))


def test_16bit_to_jpeg_is_written_as_8bit(tmp_path):
    write_image(tmp_path / "a.jpg", Picture(_gradient(), bit_depth=16))
    assert read_image(tmp_path / "a.jpg").bit_depth == 8


def test_grayscale_stays_grayscale(tmp_path):
    write_image(tmp_path / "g.png", Picture(_gradient(c=1)))
    back = read_image(tmp_path / "g.png")
    assert back.pixels.shape == (12, 16, 1)
    assert np.asarray(Image.open(tmp_path / "g.png")).ndim == 2


def test_alpha_is_preserved(tmp_path):
    alpha = np.linspace(0, 1, 16 * 12, dtype=np.float32).reshape(12, 16)
    alpha = np.round(alpha * 255) / 255
    write_image(tmp_path / "a.png", Picture(_gradient(), alpha=alpha))
    back = read_image(tmp_path / "a.png")
    assert back.alpha is not None and np.allclose(back.alpha, alpha, atol=1e-6)
    assert back.pixels.shape == (12, 16, 3)


@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
def test_an_eight_bit_tiff_with_alpha_keeps_its_colours(tmp_path, compression):
    """OpenCV reads such a file through libtiff's RGBA reader, which multiplies the colour by the
    alpha: a transparent pixel's colour came back black, every half-transparent one darkened."""
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    alpha = np.tile(np.linspace(0, 255, 16).astype(np.uint8), (12, 1))
    Image.fromarray(np.dstack([colour, alpha]), "RGBA").save(tmp_path / "a.tif", compression=compression)
    back = read_image(tmp_path / "a.tif")
    assert np.array_equal(np.round(back.pixels * 255).astype(np.uint8), colour)
    assert np.array_equal(np.round(back.alpha * 255).astype(np.uint8), alpha)


def test_exif_orientation_is_applied(tmp_path):
    # Stored landscape 16x12 with orientation 6 ("rotate 90 CW to display"): displays as 12x16.
    stored = np.zeros((12, 16, 3), np.uint8)
    stored[0, 0] = 255                                 # top-left corner marked white
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "o.jpg", exif=exif, quality=100)
    back = read_image(tmp_path / "o.jpg")
    assert back.pixels.shape[:2] == (16, 12)
    # Rotating 90 degrees clockwise moves the stored top-left corner to the top-right.
    assert back.pixels[0, -1].mean() > 0.8 and back.pixels[0, 0].mean() < 0.2


def test_missing_file_and_not_an_image_give_clear_errors(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageError, match="not a readable image"):
        read_image(tmp_path / "notes.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.png: not a readable image \(the file is empty\)"):
        read_image(tmp_path / "empty.png")
    whole = tmp_path / "whole.png"
    write_image(whole, Picture(np.random.default_rng(0).random((64, 64, 3), np.float32)))
    (tmp_path / "cut.png").write_bytes(whole.read_bytes()[:2000])
    with pytest.raises(ImageError, match=r"cut\.png: a damaged or cut-short PNG file"):
        read_image(tmp_path / "cut.png")


def test_damaged_files_are_refused_in_one_line_without_the_decoders_own_words(tmp_path, capfd):
    """libjpeg decodes on past damaged data (a restoration would restore the damage) and says so only
    on the process's stderr; libpng and OpenCV print there too before they give up."""
    from io import BytesIO

    from PIL import Image
    buffer = BytesIO()
    Image.fromarray((np.random.default_rng(0).random((48, 48, 3)) * 255).astype(np.uint8)).save(buffer, "JPEG", quality=20)
    whole = buffer.getvalue()
    (tmp_path / "whole.jpg").write_bytes(whole)
    assert read_image(tmp_path / "whole.jpg").shape == (48, 48)
    at = whole.find(b"\xff\xc4")                                  # the Huffman tables' marker
    # Stray bytes libjpeg skips to the next marker: the intact file's pixels, read with a note (some
    # encoders leave such junk; refusing them refused whole folders of good photographs).
    (tmp_path / "bytes.jpg").write_bytes(whole[:at] + b"\xaa" * 33 + whole[at:])
    strays = read_image(tmp_path / "bytes.jpg")
    assert np.array_equal(strays.pixels, read_image(tmp_path / "whole.jpg").pixels)
    assert strays.read_notes == ("libjpeg read past stray bytes in it (Corrupt JPEG data: 33 extraneous bytes before "
                                 "marker 0xc4): if the output shows grey or shifted blocks, the file is damaged; use "
                                 "an intact copy",)
    # A restart marker written into the scan: libjpeg fills what it cannot read, the pixels are wrong.
    scan = bytearray(whole)
    scan[whole.find(b"\xff\xda") + 300:whole.find(b"\xff\xda") + 302] = b"\xff\xd0"
    (tmp_path / "scan.jpg").write_bytes(bytes(scan))
    with pytest.raises(ImageError, match=r"scan\.jpg: a damaged JPEG file \(Corrupt JPEG data: premature end of "
                                         r"data segment\); use an intact copy$"):
        read_image(tmp_path / "scan.jpg")
    (tmp_path / "header.jpg").write_bytes(whole[:whole.find(b"\xff\xc0")])    # cut before its size: Pillow reads nothing
    with pytest.raises(ImageError, match=r"header\.jpg: a damaged or cut-short JPEG file"):
        read_image(tmp_path / "header.jpg")
    png = BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png, "PNG")
    data = bytearray(png.getvalue())
    data[data.find(b"IDAT") + 6] ^= 0xFF                           # its checksum no longer holds
    (tmp_path / "crc.png").write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"crc\.png: a damaged or cut-short PNG file"):
        read_image(tmp_path / "crc.png")
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((8, 8, 5), np.uint8), photometric="rgb", extrasamples=[0, 0])
    with pytest.raises(ImageError, match=r"five\.tif: an image of 5 channels; save it as grey, RGB or RGBA"):
        read_image(tmp_path / "five.tif")
    out, err = capfd.readouterr()
    assert out == err == ""


def test_lines_of_others_written_while_the_decoders_are_listened_to_pass_on(capfd):
    import os

    from restore.images import decoder_messages
    with decoder_messages() as said:
        os.write(2, b"libpng error: IDAT: incorrect data check\nsomeone else's line\n")
    assert said.lines == ["libpng error: IDAT: incorrect data check", "someone else's line"]
    assert capfd.readouterr().err == "someone else's line\n"


def test_huge_image_is_refused_before_decoding(tmp_path):
    write_image(tmp_path / "big.png", Picture(np.zeros((100, 100, 1), np.float32)))
    with pytest.raises(ImageError, match="megapixel"):
        read_image(tmp_path / "big.png", max_pixels=5000)


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path):
    write_image(tmp_path / "a.png", Picture(_gradient()))
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
    with pytest.raises(ImageError, match="cannot write"):
        encode_image(Picture(_gradient()), ".xyz")
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


@pytest.mark.parametrize("suffix,bits", [(".png", 8), (".png", 16), (".tif", 16), (".jpg", 8)])
def test_stored_pixels_are_the_integers_a_reader_gets(tmp_path, suffix, bits):
    from restore.images import stored_pixels, to_integer
    alpha = np.full((12, 16), 0.5, np.float32) if suffix != ".jpg" else None
    write_image(tmp_path / f"a{suffix}", Picture(_gradient(), alpha=alpha, bit_depth=bits))
    back = read_image(tmp_path / f"a{suffix}")
    pixels, stored_bits = stored_pixels(tmp_path / f"a{suffix}")
    assert stored_bits == bits and pixels.dtype == (np.uint16 if bits == 16 else np.uint8)
    assert np.array_equal(pixels, to_integer(back.pixels, bits))                  # RGB, alpha dropped
    data = (tmp_path / f"a{suffix}").read_bytes()
    assert np.array_equal(stored_pixels(tmp_path / f"a{suffix}", data)[0], pixels)  # from the bytes alike


def test_stored_pixels_are_upright(tmp_path):
    from restore.images import stored_pixels
    stored = np.zeros((12, 16, 3), np.uint8)
    stored[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "o.jpg", exif=exif, quality=100)
    pixels, _ = stored_pixels(tmp_path / "o.jpg")
    assert pixels.shape == (16, 12, 3) and pixels[0, -1].mean() > 200


def test_an_unreadable_file_is_an_image_error(tmp_path, monkeypatch):
    import restore.images
    write_image(tmp_path / "a.png", Picture(_gradient()))

    def denied(*args, **kwargs):                # as root, chmod cannot make a file unreadable
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(restore.images.np, "fromfile", denied)
    with pytest.raises(ImageError, match=r"a\.png: cannot read it \(Permission denied\); check its permissions"):
        read_image(tmp_path / "a.png")


def test_to_integer_converts_integers_exactly_as_their_values():
    from restore.images import to_integer
    eight, sixteen = np.arange(256, dtype=np.uint8), np.arange(65536, dtype=np.uint16)
    assert np.array_equal(to_integer(eight, 16), to_integer(eight / 255, 16))
    assert np.array_equal(to_integer(sixteen, 8), to_integer(sixteen / 65535, 8))
    assert to_integer(eight, 8) is eight
    floats = np.array([-0.2, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.0, 1.3], np.float32)
    assert to_integer(floats, 8).tolist() == [0, 0, 0, 2, 128, 255, 255]


def test_restore_applies_its_own_size_limit_not_pillows(tmp_path, monkeypatch, recwarn):
    """Pillow warns of a "decompression bomb" over 89 MP and refuses one over 179 as it opens a
    file's header (two lines of warning before restore's own one-line error at 120 MP); restore
    reads the header without Pillow's limit, applies its own, and leaves Pillow's as it was."""
    from restore.jpeg import Quantisation
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)          # 64x64 is "a bomb" over 2000
    write_image(tmp_path / "a.png", Picture(np.zeros((64, 64, 3), np.float32)))
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "a.jpg", quality=50)
    assert read_image(tmp_path / "a.png").pixels.shape == (64, 64, 3)
    assert Quantisation.from_file(tmp_path / "a.jpg").tables
    with pytest.raises(ImageError, match="over the limit of 0.001 megapixels"):
        read_image(tmp_path / "a.png", max_pixels=1000)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_a_mask_saved_as_a_jpeg_marks_only_its_white_strokes(tmp_path):
    """A JPEG rings around a mask's strokes a few levels above black: those pixels are kept."""
    from restore.masks import missing_pixels
    mask = np.zeros((64, 64), np.uint8)
    mask[20:30, 10:50] = 255
    Image.fromarray(mask).save(tmp_path / "m.jpg", quality=50)
    decoded = np.asarray(Image.open(tmp_path / "m.jpg"))
    assert ((decoded > 0) & (mask == 0)).sum() > 20            # the ringing is there ...
    assert np.array_equal(missing_pixels(read_image(tmp_path / "m.jpg")), mask > 0)   # ... and is no hole


def test_grey_with_alpha_stays_grey_with_alpha(tmp_path):
    """OpenCV decodes a grey PNG with alpha as four channels; it is read as grey and written back so."""
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((12, 16, 2)) * 255).astype(np.uint8), "LA").save(tmp_path / "la.png")
    picture = read_image(tmp_path / "la.png")
    assert picture.pixels.shape == (12, 16, 1) and picture.alpha is not None
    write_image(tmp_path / "back.png", picture)
    with Image.open(tmp_path / "back.png") as back, Image.open(tmp_path / "la.png") as given:
        assert back.mode == "LA" and np.array_equal(np.asarray(back), np.asarray(given))
    write_image(tmp_path / "back.tif", picture)          # no grey with alpha there: three equal channels
    again = read_image(tmp_path / "back.tif")
    assert np.array_equal(again.pixels, np.repeat(picture.pixels, 3, axis=2)) and again.alpha is not None


def test_sixteen_bit_grey_with_alpha_stays_so_with_its_profile(tmp_path):
    """Neither OpenCV nor Pillow writes a PNG of 16-bit grey with alpha (it came back 16-bit RGBA),
    and Pillow reads one as RGBA: written and read as what it is, its colour profile kept."""
    rng = np.random.default_rng(1)
    grey, alpha = (rng.integers(0, 65536, shape).astype(np.float32) / 65535 for shape in ((10, 6, 1), (10, 6)))
    write_image(tmp_path / "la16.png", Picture(grey, alpha=alpha, bit_depth=16, icc_profile=b"a profile"))
    with open(tmp_path / "la16.png", "rb") as f:
        assert f.read(26)[24:26] == bytes([16, 4])               # depth 16, colour type 4: grey and alpha
    back = read_image(tmp_path / "la16.png")
    assert back.pixels.shape == (10, 6, 1) and back.bit_depth == 16 and back.icc_profile == b"a profile"
    assert np.array_equal(back.pixels, grey) and np.array_equal(back.alpha, alpha)


def _profiled(tmp_path, suffix, orientation=6):
    """A file with a colour profile and EXIF (maker, copyright, an orientation), as a camera writes one."""
    from PIL import ImageCms
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F], exif[0x8298], exif[0x0112] = "Acme", "(c) A. Photographer", orientation
    path = tmp_path / f"camera{suffix}"
    Image.fromarray((_gradient(24, 40) * 255).astype(np.uint8)).save(path, icc_profile=icc, exif=exif)
    return path, icc


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_the_colour_profile_and_exif_go_with_the_pixels(tmp_path, suffix):
    source, icc = _profiled(tmp_path, ".jpg")
    picture = read_image(source)
    assert picture.pixels.shape[:2] == (40, 24) and picture.icc_profile == icc     # upright
    data = encode_image(picture, suffix)
    plain = encode_image(Picture(picture.pixels), suffix)
    (tmp_path / f"out{suffix}").write_bytes(data)
    with Image.open(tmp_path / f"out{suffix}") as out:
        exif = out.getexif()
        assert out.info["icc_profile"] == icc and exif[0x010F] == "Acme" and exif[0x8298] == "(c) A. Photographer"
        assert exif.get(0x0112, 1) == 1 and out.size == (24, 40)     # written upright: no second turn in a viewer
    # The same pixels as without them.
    (tmp_path / f"plain{suffix}").write_bytes(plain)
    assert np.array_equal(read_image(tmp_path / f"out{suffix}").pixels, read_image(tmp_path / f"plain{suffix}").pixels)


def test_a_large_profile_is_split_over_jpeg_segments(tmp_path):
    picture = Picture(_gradient(), icc_profile=bytes(range(256)) * 600)     # 153600 bytes: three segments
    path = tmp_path / "big.jpg"
    path.write_bytes(encode_image(picture, ".jpg"))
    with Image.open(path) as out:
        assert out.info["icc_profile"] == picture.icc_profile


def test_an_exif_no_jpeg_segment_holds_is_said_to_be_dropped():
    small, large = (Picture(_gradient(), exif=b"Exif\0\0" + bytes(n)) for n in (1000, 70000))
    assert dropped_by(small, ".jpg") == [] and dropped_by(large, ".png") == []
    assert dropped_by(large, ".jpg") == ["EXIF data (over the 64 KB a JPEG's EXIF segment holds)"]
    assert b"\xff\xe1" not in encode_image(large, ".jpg")[:100]      # and no broken segment is written


def test_a_files_pages_are_counted(tmp_path):
    pages = [Image.fromarray((_gradient() * k * 255).astype(np.uint8)) for k in (1.0, 0.5, 0.25)]
    pages[0].save(tmp_path / "scan.tif", save_all=True, append_images=pages[1:])
    assert read_image(tmp_path / "scan.tif").read_notes == ("only the first of its 3 pages or frames is restored",)
    assert read_image(_profiled(tmp_path, ".png")[0]).read_notes == ()


def test_a_cmyk_jpeg_says_it_is_read_as_rgb(tmp_path):
    Image.fromarray((_gradient() * 255).astype(np.uint8)).convert("CMYK").save(tmp_path / "print.jpg")
    picture = read_image(tmp_path / "print.jpg")
    assert picture.pixels.shape[2] == 3 and any("CMYK" in said for said in picture.read_notes)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_the_resolution_goes_with_the_pixels(tmp_path, suffix):
    Image.fromarray((_gradient(8, 12) * 255).astype(np.uint8)).save(tmp_path / "scan.tif", dpi=(600, 300))
    picture = read_image(tmp_path / "scan.tif")
    assert picture.dpi == (600, 300) and picture.exif is None       # a TIFF's layout tags are no EXIF
    (tmp_path / f"out{suffix}").write_bytes(encode_image(picture, suffix))
    with Image.open(tmp_path / f"out{suffix}") as out:
        assert np.allclose(out.info["dpi"], (600, 300), atol=0.01)
    # A picture read turned (EXIF orientation 6) has its resolutions turned too.
    turned = Image.Exif()
    turned[0x0112] = 6
    Image.fromarray((_gradient(8, 12) * 255).astype(np.uint8)).save(tmp_path / "turned.jpg", dpi=(600, 300),
                                                                      exif=turned)
    assert read_image(tmp_path / "turned.jpg").dpi == (300, 600)


def test_a_cameras_own_directories_go_with_the_pixels_but_not_its_makers_note(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "Acme"
    exif[0x8769] = {0x829A: (1, 125), 0x927C: b"\x00" * 64, 0xA002: 12}
    Image.fromarray((_gradient(8, 12) * 255).astype(np.uint8)).save(tmp_path / "c.jpg", exif=exif)
    (tmp_path / "o.png").write_bytes(encode_image(read_image(tmp_path / "c.jpg"), ".png"))
    with Image.open(tmp_path / "o.png") as out:
        camera = out.getexif().get_ifd(0x8769)
        assert out.getexif()[0x010F] == "Acme" and camera[0x829A] == (1, 125)
        assert 0x927C not in camera and 0xA002 not in camera


def test_a_webp_keeps_the_colour_under_transparent_pixels(tmp_path):
    """Lossless WebP is lossless for every pixel: libwebp's default drops the colour where alpha is 0."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (48, 40, 3)).astype(np.float32) / 255
    alpha = np.ones((48, 40), np.float32)
    alpha[:10] = 0
    write_image(tmp_path / "x.webp", Picture(pixels, alpha=alpha))
    back = read_image(tmp_path / "x.webp")
    assert np.array_equal(back.pixels, pixels) and np.array_equal(back.alpha, alpha)


def test_a_float_file_in_other_units_is_refused_not_clipped(tmp_path):
    """A float TIFF of 0..255 clipped into [0, 1] would be white nearly everywhere, its kept pixels
    lost: refused, naming its range and the fix; one within the margin of [0, 1] is read."""
    values = np.random.default_rng(0).random((12, 10)).astype(np.float32)
    Image.fromarray(values * 255, "F").save(tmp_path / "levels.tif")
    with pytest.raises(ImageError, match=r"levels.tif: floating-point pixels from .* to 25\d.*, outside \[0, 1\]"):
        read_image(tmp_path / "levels.tif")
    Image.fromarray(values * 1.005, "F").save(tmp_path / "unit.tif")
    assert np.allclose(read_image(tmp_path / "unit.tif").pixels[:, :, 0], np.clip(values * 1.005, 0, 1))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_float_file_with_a_non_finite_pixel_is_refused(tmp_path, bad):
    """NaN came through to the restoration (which then failed on its way), infinity was clipped
    to white without a word."""
    values = np.full((12, 10), 0.5, np.float32)
    values[3, 4] = bad
    Image.fromarray(values, "F").save(tmp_path / "bad.tif")
    with pytest.raises(ImageError, match=r"bad.tif: its floating-point pixels hold NaN or infinite values"):
        read_image(tmp_path / "bad.tif")


#: An XMP packet as a photo manager writes one: a caption with an accent, keywords, and the
#: layout of a camera file turned a quarter (an orientation attribute, a width element).
_XMP = ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
        'xmlns:exif="http://ns.adobe.com/exif/1.0/" tiff:Orientation="6" exif:PixelXDimension = \'40\'>'
        '<tiff:ImageWidth>40</tiff:ImageWidth><exif:PixelYDimension\n>24</exif:PixelYDimension><tiff:XResolution/>'
        '<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Grandmother at the café, 1952</rdf:li></rdf:Alt>'
        '</dc:title><dc:subject><rdf:Bag><rdf:li>family</rdf:li></rdf:Bag></dc:subject>'
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def _captioned(tmp_path, suffix):
    from PIL import PngImagePlugin
    path = tmp_path / f"captioned{suffix}"
    image = Image.fromarray((_gradient(24, 40) * 255).astype(np.uint8))
    if suffix == ".png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", _XMP)
        info.add_text("Title", "Grandmother")
        info.add_itxt("Description", "at the café, 1952")
        image.save(path, pnginfo=info)
    else:
        image.save(path, xmp=_XMP.encode())
    return path


@pytest.mark.parametrize("source", [".png", ".jpg"])
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_xmp_and_png_text_go_with_the_pixels(tmp_path, source, suffix):
    """Captions, keywords and rights (XMP) are written into PNG and JPEG outputs, without what the
    packet said of the layout (the orientation, the sizes); a PNG's text goes into a PNG."""
    picture = read_image(_captioned(tmp_path, source))
    (tmp_path / f"out{suffix}").write_bytes(encode_image(picture, suffix))
    with Image.open(tmp_path / f"out{suffix}") as out:
        xmp = out.info["xmp"].decode("utf-8")
        text = dict(out.text) if suffix == ".png" else {}
    assert "Grandmother at the café, 1952" in xmp and "<rdf:li>family</rdf:li>" in xmp
    for layout in ("Orientation", "ImageWidth", "PixelXDimension", "PixelYDimension", "XResolution"):
        assert layout not in xmp
    assert xmp.startswith("<?xpacket") and xmp.endswith('<?xpacket end="w"?>')
    if source == suffix == ".png":
        assert text["Title"] == "Grandmother" and text["Description"] == "at the café, 1952"
    # A PNG's text a JPEG cannot hold is said to be dropped; the XMP is not.
    assert dropped_by(picture, suffix) == (["PNG text (Title, Description)"] if source == ".png" and suffix == ".jpg"
                                           else [])
    assert dropped_by(picture, ".tif") == ["XMP data (captions, keywords, rights)"] + (
        ["PNG text (Title, Description)"] if source == ".png" else [])


def test_an_xmp_no_jpeg_segment_holds_is_said_to_be_dropped(tmp_path):
    large = Picture(_gradient(), xmp=b"<x:xmpmeta>" + b" " * 70000 + b"</x:xmpmeta>")
    assert dropped_by(large, ".png") == []
    assert dropped_by(large, ".jpg") == ["XMP data (over the 64 KB a JPEG's XMP segment holds)"]
    (tmp_path / "big.jpg").write_bytes(encode_image(large, ".jpg"))
    with Image.open(tmp_path / "big.jpg") as out:
        assert "xmp" not in out.info
    assert read_image(tmp_path / "big.jpg").pixels.shape == large.pixels.shape


def test_an_image_is_read_in_a_process_without_a_standard_error(tmp_path):
    """A daemon's process may have no file descriptor 2; listening to the decoders must not need one."""
    import subprocess
    import sys
    write_image(tmp_path / "a.png", Picture(np.zeros((8, 8, 3), np.float32)))
    code = ("import os, sys; os.close(2); sys.stderr = None; from restore.images import read_image; "
            f"print(read_image({str(tmp_path / 'a.png')!r}).shape)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "(8, 8)", done


def test_pillows_warnings_of_a_damaged_header_are_not_shown(tmp_path, capfd):
    """A TIFF of four bytes and junk: Pillow warned "Corrupt EXIF data" in two lines naming its own source."""
    import warnings
    (tmp_path / "t.tif").write_bytes(b"II*\0junk")
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with pytest.raises(ImageError, match=r"t\.tif: "):
            read_image(tmp_path / "t.tif")
    assert not warned and capfd.readouterr().err == ""
