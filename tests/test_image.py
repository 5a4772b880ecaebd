"""core.io.image: every kind of photo loads upright at full resolution, every bad file fails in one sentence."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from facestage.core.common.errors import FaceStageError
from facestage.core.io import exif
from facestage.core.io.image import (Window, area_reduce, linear_to_srgb, load_photo, load_png, save_png, srgb_to_linear,
                                     to_uint8, window)


def _gradient(width: int = 96, height: int = 80) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), np.full_like(x, 128)], -1).astype(np.uint8)


LOSSY = {"JPEG": 12 / 255, "HEIF": 16 / 255, "AVIF": 16 / 255}


@pytest.mark.parametrize("ext,fmt", [("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP"), ("tif", "TIFF"), ("bmp", "BMP"),
                                     ("heic", "HEIF"), ("avif", "AVIF")])
def test_supported_formats_load_as_uint8_rgb(tmp_path, ext, fmt):
    """HEIC (pillow-heif) and AVIF (Pillow's own) round-trip like the others: written here, read back close."""
    if fmt == "HEIF":
        pytest.importorskip("pillow_heif").register_heif_opener()
    path = tmp_path / f"photo.{ext}"
    options = {"lossless": True} if fmt == "WEBP" else {"quality": 95} if fmt in ("HEIF", "AVIF") else {}
    Image.fromarray(_gradient()).save(path, format=fmt, **options)
    photo = load_photo(path)
    assert photo.data.shape == (80, 96, 3) and photo.data.dtype == np.uint8
    assert photo.pixels.dtype == np.float32
    error = np.abs(photo.pixels - _gradient() / 255.0)
    assert error.mean() <= LOSSY.get(fmt, 0) / 3 + 1e-6 and np.median(error) <= LOSSY.get(fmt, 0) + 1e-6
    if fmt not in LOSSY:
        assert np.array_equal(photo.data, _gradient())


def test_grayscale_becomes_three_equal_channels(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(_gradient()[..., 0]).save(path)
    pixels = load_photo(path).pixels
    assert pixels.shape[-1] == 3 and np.array_equal(pixels[..., 0], pixels[..., 2])


def test_rgba_is_composited_on_black(tmp_path):
    rgba = np.zeros((70, 70, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:, :35, 3] = 255
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(path)
    pixels = load_photo(path).pixels
    assert pixels[0, 0, 0] == pytest.approx(200 / 255) and pixels[0, 69].max() == 0.0


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_sixteen_bit_colour_keeps_its_precision(tmp_path, ext):
    """48-bit PNG and TIFF: Pillow alone would cut them to 8 bits; they load as uint16, not clipped."""
    import cv2

    rgb = np.random.default_rng(2).integers(0, 65536, (70, 90, 3), dtype=np.uint16)
    rgb[0, 0] = (65535, 0, 40000)
    path = tmp_path / f"deep.{ext}"
    assert cv2.imwrite(str(path), rgb[..., ::-1])
    photo = load_photo(path)
    assert photo.data.dtype == np.uint16 and np.array_equal(photo.data, rgb)
    assert tuple(photo.data[0, 0]) == (65535, 0, 40000)


def test_sixteen_bit_png_keeps_precision(tmp_path):
    grey = (np.linspace(0, 65535, 80 * 96).reshape(80, 96)).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(grey).save(path)
    pixels = load_photo(path).pixels
    assert pixels[..., 1] == pytest.approx(grey / 65535.0, abs=1e-6)
    assert len(np.unique(pixels[..., 0])) > 256


def test_palette_and_cmyk_convert_to_rgb(tmp_path):
    palette = tmp_path / "palette.png"
    Image.fromarray(_gradient()).convert("P").save(palette)
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(_gradient()).convert("CMYK").save(cmyk)
    for path in (palette, cmyk):
        pixels = load_photo(path).pixels
        assert pixels.shape == (80, 96, 3)
    assert load_photo(cmyk).pixels[0, -1, 0] > 0.8  # red ramp survives the CMYK round trip


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(_gradient(120, 80))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes())
    photo = load_photo(path)
    assert photo.pixels.shape[:2] == (120, 80)
    # After a 90° CW turn the old left column (dark red) is at the top.
    assert photo.pixels[0, :, 0].mean() < 0.1 and photo.pixels[-1, :, 0].mean() > 0.9


def test_a_large_photo_keeps_its_full_resolution_as_uint8(tmp_path):
    path = tmp_path / "large.jpg"
    Image.new("RGB", (9000, 3000), (10, 20, 30)).save(path, quality=50)
    photo = load_photo(path)
    assert photo.data.shape == (3000, 9000, 3) and photo.data.dtype == np.uint8 and not photo.warnings
    assert photo.original_size == (9000, 3000) and abs(int(photo.data[1500, 4500, 2]) - 30) <= 2
    preview, factor = photo.preview(2048)
    assert factor == 5 and preview.shape == (600, 1800, 3) and abs(preview[300, 900, 2] - 30 / 255) < 3 / 255


def test_non_ascii_and_space_paths_work(tmp_path):
    folder = tmp_path / "fotos von Zoë 写真"
    folder.mkdir()
    path = folder / "mein Gesicht ✓.png"
    Image.fromarray(_gradient()).save(path)
    assert load_photo(path).pixels.shape == (80, 96, 3)


@pytest.mark.parametrize("case,expected", [
    ("missing", "does not exist"),
    ("directory", "is a folder"),
    ("empty", "is empty"),
    ("text", "not an image"),
    ("truncated", "damaged or truncated"),
    ("unsupported", "GIF images are not supported"),
    ("too-small", "at least 64x64"),
    ("aspect", "extreme aspect ratio"),
])
def test_bad_files_fail_with_one_sentence_naming_the_file(tmp_path, case, expected, bad_file):
    path = bad_file(case, tmp_path, Image.fromarray(_gradient(300, 300)))
    with pytest.raises(FaceStageError) as info:
        load_photo(path)
    message = str(info.value)
    assert expected in message and str(path) in message
    assert message.endswith(".") and "\n" not in message


def test_srgb_transfer_functions_invert_each_other():
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    assert np.abs(linear_to_srgb(srgb_to_linear(x)) - x).max() < 1e-5
    assert srgb_to_linear(np.array([0.5], np.float32))[0] == pytest.approx(0.21404, abs=1e-4)


def test_png_round_trip_in_8_and_16_bit(tmp_path):
    data = np.random.default_rng(0).random((20, 30)).astype(np.float32)
    save_png(tmp_path / "a.png", data, bits=16)
    assert np.abs(load_png(tmp_path / "a.png") - data).max() <= 0.5 / 65535 + 1e-7
    rgb = np.random.default_rng(1).random((20, 30, 3)).astype(np.float32)
    save_png(tmp_path / "b.png", rgb)
    assert np.abs(load_png(tmp_path / "b.png") - rgb).max() <= 0.5 / 255 + 1e-7


def test_an_unsupported_format_names_the_ones_that_work(tmp_path):
    path = tmp_path / "anim.gif"
    Image.fromarray(_gradient()).save(path)
    with pytest.raises(FaceStageError) as info:
        load_photo(path)
    assert "GIF images are not supported" in str(info.value) and "HEIC" in str(info.value) and "AVIF" in str(info.value)


def _exif_photo(path, size, tags):  # type: ignore[no-untyped-def]
    exif = Image.Exif()
    ifd = exif.get_ifd(exif_module.EXIF_IFD)
    ifd.update(tags)
    Image.new("RGB", size, (90, 80, 70)).save(path, exif=exif.tobytes())
    return load_photo(path)


exif_module = exif


def test_exif_35mm_focal_length_is_read_in_the_projects_convention(tmp_path):
    """A 4:3 phone photo's "26 mm" (diagonal-based) is 27.0 mm with 36 mm across the longer side; 3:2 is unchanged."""
    phone = _exif_photo(tmp_path / "phone.jpg", (400, 300), {exif.FOCAL_35MM: 26})
    assert phone.focal_source == "exif-35mm"
    assert phone.exif_focal_35mm == pytest.approx(26 * 500 / exif.FULL_FRAME_DIAGONAL_MM * 36 / 400)
    assert phone.exif_focal_35mm == pytest.approx(27.0, abs=0.05)
    camera = _exif_photo(tmp_path / "camera.jpg", (300, 200), {exif.FOCAL_35MM: 85})
    assert camera.exif_focal_35mm == pytest.approx(85.0, abs=1e-6)


def test_exif_focal_length_with_the_focal_plane_resolution_gives_the_crop_factor(tmp_path):
    """50 mm on an APS-C-like sensor 24 mm wide: 6000 px over 24 mm = 250 px/mm; written at 600 px wide -> 75 mm."""
    photo = _exif_photo(tmp_path / "apsc.jpg", (600, 400), {
        exif.FOCAL_LENGTH: 50.0, exif.FOCAL_PLANE_X_RES: 2500.0, exif.FOCAL_PLANE_UNIT: 3,  # 2500 px per cm
        exif.PIXEL_X_DIMENSION: 6000})
    assert photo.focal_source == "exif-crop-factor" and photo.exif_focal_35mm == pytest.approx(75.0)
    bare = _exif_photo(tmp_path / "bare.jpg", (600, 400), {exif.FOCAL_LENGTH: 50.0})  # no sensor size: not guessed
    assert bare.exif_focal_35mm is None and bare.focal_source == "estimated"
    silly = _exif_photo(tmp_path / "silly.jpg", (600, 400), {exif.FOCAL_35MM: 3})
    assert silly.exif_focal_35mm is None


def test_area_reduce_averages_blocks_in_linear_light_when_asked():
    image = np.zeros((4, 6, 3), np.uint8)
    image[:, ::2] = 255  # alternating black and white columns
    assert area_reduce(image, 2).shape == (2, 3, 3)
    assert np.allclose(area_reduce(image, 2), 0.5)
    assert np.allclose(area_reduce(image, 2, linear=True), 0.5)  # linear mean of 0 and 1
    grey = np.full((4, 4, 3), 128, np.uint8)
    assert np.allclose(area_reduce(grey, 2, linear=True), srgb_to_linear(np.array([128], np.uint8))[0])


def test_window_covers_the_box_in_whole_steps_and_clips_to_the_photo():
    image = np.arange(100 * 120, dtype=np.float32).reshape(100, 120) / (100 * 120)
    win = window(image, (10.4, -5.0, 50.2, 30.0), step=4)
    assert isinstance(win, Window) and (win.x0, win.y0, win.step) == (10, 0, 4)
    assert win.pixels.shape == (8, 11)  # rows 0..32 and columns 10..54: whole blocks of 4 covering the box
    assert win.pixels[0, 0] == pytest.approx(image[0:4, 10:14].mean())


def test_uint8_conversion_rounds_and_encodes_in_chunks():
    linear = np.random.default_rng(3).random((300, 200, 3)).astype(np.float32)
    assert np.array_equal(to_uint8(linear, encode_srgb=True), np.round(linear_to_srgb(linear) * 255).astype(np.uint8))
    assert np.array_equal(to_uint8(np.array([[0, 257, 65535]], np.uint16)), np.array([[0, 1, 255]], np.uint8))
    lut = srgb_to_linear(np.arange(256, dtype=np.uint8))
    assert np.allclose(lut, srgb_to_linear(np.arange(256, dtype=np.float32) / 255), atol=1e-7)
