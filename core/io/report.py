"""report.png and landmarks.png: the pictures that show whether a reconstruction worked.

Photo, re-render, their difference, the three recovered maps, shading-only,
shadows-only, the light stage seen from the front and the fitted mesh over
the photo: a glance tells if the geometry sits, if the light explains the
shading and if the albedo is clean.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

TILE = 256
LABEL_HEIGHT = 18


def _tile(image: np.ndarray, label: str) -> Image.Image:
    data = np.clip(np.nan_to_num(image), 0, 1)
    if data.ndim == 2:
        data = np.repeat(data[..., None], 3, axis=2)
    picture = Image.fromarray((data * 255).round().astype(np.uint8))
    picture.thumbnail((TILE, TILE), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (TILE, TILE + LABEL_HEIGHT), (24, 24, 24))
    canvas.paste(picture, ((TILE - picture.width) // 2, LABEL_HEIGHT + (TILE - picture.height) // 2))
    ImageDraw.Draw(canvas).text((4, 3), label, fill=(235, 235, 235))
    return canvas


def light_diagram(directions: np.ndarray, colours: np.ndarray, size: int = TILE) -> np.ndarray:
    """Lights seen from the camera side: azimuth/elevation disc, dot area ∝ intensity, colour = light colour.

    directions: (20, 3) unit vectors from the head centre to each light (world, Z up, head faces −Y).
    colours: (20, 3) linear RGB perceived intensities.
    """
    canvas = Image.new("RGB", (size, size), (16, 16, 16))
    draw = ImageDraw.Draw(canvas)
    centre, radius = size / 2, size * 0.42
    draw.ellipse([centre - radius, centre - radius, centre + radius, centre + radius], outline=(90, 90, 90))
    peak = max(float(colours.max()), 1e-8)
    for j, (direction, colour) in enumerate(zip(directions, colours)):
        # Equal-area view from the front (−Y): the back hemisphere maps to the outer ring.
        polar = math.acos(float(np.clip(-direction[1], -1, 1)))
        azimuth = math.atan2(float(direction[2]), float(direction[0]))
        r = radius * math.sqrt(2) * math.sin(polar / 2) / math.sqrt(2)
        x, y = centre + r * math.cos(azimuth), centre - r * math.sin(azimuth)
        strength = float(colour.max()) / peak
        dot = 3 + 12 * math.sqrt(strength)
        rgb = tuple(int(255 * min(1.0, c / peak) ** (1 / 2.2)) for c in colour)
        draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=rgb, outline=(200, 200, 200))
        draw.text((x + dot + 1, y - 6), f"{j + 1:02d}", fill=(160, 160, 160))
    return np.asarray(canvas, np.float32) / 255.0


def make_report(tiles: list[tuple[str, np.ndarray]], columns: int = 5) -> np.ndarray:
    """Grid of labelled tiles as an sRGB float image."""
    rows = math.ceil(len(tiles) / columns)
    sheet = Image.new("RGB", (columns * TILE, rows * (TILE + LABEL_HEIGHT)), (24, 24, 24))
    for k, (label, image) in enumerate(tiles):
        sheet.paste(_tile(image, label), ((k % columns) * TILE, (k // columns) * (TILE + LABEL_HEIGHT)))
    return np.asarray(sheet, np.float32) / 255.0


def draw_landmarks(photo_srgb: np.ndarray, detected: np.ndarray, fitted: np.ndarray | None = None) -> np.ndarray:
    """The photo with detected (green) and fitted (magenta) landmarks, joined by a thin line; sRGB float (H, W, 3)."""
    image = Image.fromarray((np.clip(np.nan_to_num(photo_srgb[..., :3]), 0, 1) * 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(image)
    radius = max(1.0, max(image.size) / 400)
    green, magenta = (40, 230, 60), (255, 40, 220)
    if fitted is not None:
        for (x0, y0), (x1, y1) in zip(detected, fitted):
            draw.line([(x0, y0), (x1, y1)], fill=(255, 255, 255), width=1)
    for x, y in detected:
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=green)
    if fitted is not None:
        for x, y in fitted:
            draw.rectangle([x - radius * 0.8, y - radius * 0.8, x + radius * 0.8, y + radius * 0.8], fill=magenta)
    return np.asarray(image, dtype=np.float32) / 255.0
