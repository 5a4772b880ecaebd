"""core.io.image: every kind of photo loads upright as float RGB, every bad file fails in one sentence."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from facestage.core.common.errors import FaceStageError
from facestage.core.io.image import MAX_SIDE, linear_to_srgb, load_photo, load_png, save_png, srgb_to_linear


def _gradient(width: int = 96, height: int = 80) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), np.full_like(x, 128)], -1).astype(np.uint8)


@pytest.mark.parametrize("ext,fmt", [("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP"), ("tif", "TIFF"), ("bmp", "BMP")])
def test_supported_formats_load_as_float_rgb(tmp_path, ext, fmt):
    path = tmp_path / f"photo.{ext}"
    Image.fromarray(_gradient()).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    photo = load_photo(path)
    assert photo.pixels.shape == (80, 96, 3) and photo.pixels.dtype == np.float32
    tolerance = 12 / 255 if fmt == "JPEG" else 1e-6
    assert np.abs(photo.pixels - _gradient() / 255.0).max() <= tolerance + 1e-6


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


def test_huge_photo_is_downscaled_with_a_warning(tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (9000, 3000), (10, 20, 30)).save(path, quality=50)
    photo = load_photo(path)
    assert max(photo.pixels.shape[:2]) == MAX_SIDE
    assert photo.original_size == (9000, 3000) and photo.scale == pytest.approx(MAX_SIDE / 9000)
    assert "downscaled" in photo.warnings[0]


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
