"""The camera's focal length from a photo's EXIF, as the 35 mm-equivalent the fit uses.

Landmarks cannot tell a long lens far away from a short lens close up (the
face's depth trades against the distance), so a focal length the camera wrote
down is worth more than any estimate. Two sources are read, in this order:

* ``FocalLengthIn35mmFilm`` (tag 0xA405): what phones and most cameras write.
  Cameras derive it from the sensor *diagonal* (crop factor = 43.27 mm / sensor
  diagonal); it is converted here to the project's convention, where 35 mm
  equivalent means a 36 mm sensor across the image's *longer side*
  (core/model/camera.py). The two agree for 3:2 photos; a 4:3 phone photo's
  26 mm becomes 27.0 mm.
* ``FocalLength`` (0x920A) with the crop factor from ``FocalPlaneXResolution``
  / ``FocalPlaneYResolution`` and ``FocalPlaneResolutionUnit`` (0xA20E, 0xA20F,
  0xA210): the sensor's pixels per inch/cm/mm, which give the focal length in
  pixels of the image the camera wrote (``PixelXDimension``, 0xA002, when
  present; else the stored width), hence in pixels of this photo.

Nothing else is guessed (no table of camera models): a photo without either
gets ``None`` and the fit estimates the focal length. A value outside
``PLAUSIBLE_MM`` is ignored (edited or broken EXIF).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from PIL import Image

log = logging.getLogger(__name__)

EXIF_IFD = 0x8769
FOCAL_LENGTH = 0x920A
FOCAL_35MM = 0xA405
FOCAL_PLANE_X_RES = 0xA20E
FOCAL_PLANE_Y_RES = 0xA20F
FOCAL_PLANE_UNIT = 0xA210
PIXEL_X_DIMENSION = 0xA002
PIXEL_Y_DIMENSION = 0xA003
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
LONG_SIDE_MM = 36.0
UNIT_MM = {1: 25.4, 2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # EXIF: 1 none (read as inch), 2 inch, 3 cm, 4 mm, 5 µm
PLAUSIBLE_MM = (8.0, 800.0)

SOURCE_35MM = "exif-35mm"
SOURCE_CROP_FACTOR = "exif-crop-factor"
SOURCE_ESTIMATED = "estimated"
SOURCES = (SOURCE_35MM, SOURCE_CROP_FACTOR, SOURCE_ESTIMATED)


@dataclass(frozen=True)
class ExifFocal:
    """A 35 mm-equivalent focal length (36 mm across the longer image side) and the EXIF tags it came from."""

    focal_35mm: float
    source: str  # SOURCE_35MM or SOURCE_CROP_FACTOR


def _number(value: object) -> float | None:
    """An EXIF rational/short as a positive finite float, else None."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def focal_from_exif(image: Image.Image) -> ExifFocal | None:
    """The focal length the camera recorded, converted to the project's 35 mm equivalent; None when absent.

    `image` is the opened (not yet rotated) picture: the focal-plane resolution refers to its stored axes.
    """
    try:
        tags = image.getexif().get_ifd(EXIF_IFD)
    except Exception:  # noqa: BLE001 - any malformed EXIF block just means "no focal length"
        return None
    stored_w, stored_h = image.size
    long_px = max(stored_w, stored_h)
    found: ExifFocal | None = None
    f35 = _number(tags.get(FOCAL_35MM))
    if f35 is not None:
        diagonal_px = math.hypot(stored_w, stored_h)
        found = ExifFocal(f35 * diagonal_px / FULL_FRAME_DIAGONAL_MM * LONG_SIDE_MM / long_px, SOURCE_35MM)
    else:
        found = _from_focal_plane(tags, stored_w, stored_h)
    if found is None:
        return None
    if not PLAUSIBLE_MM[0] <= found.focal_35mm <= PLAUSIBLE_MM[1]:
        log.info("Ignoring the EXIF focal length (%.1f mm 35 mm-equivalent is implausible).", found.focal_35mm)
        return None
    return found


def _from_focal_plane(tags: dict, stored_w: int, stored_h: int) -> ExifFocal | None:  # type: ignore[type-arg]
    """FocalLength × the sensor's pixel density: the focal length in pixels, then in the 35 mm equivalent."""
    focal_mm = _number(tags.get(FOCAL_LENGTH))
    unit = UNIT_MM.get(int(tags.get(FOCAL_PLANE_UNIT, 2) or 2))
    if focal_mm is None or unit is None:
        return None
    candidates = []  # focal length in pixels of this photo, from each axis the camera described
    for res_tag, dim_tag, stored in ((FOCAL_PLANE_X_RES, PIXEL_X_DIMENSION, stored_w),
                                     (FOCAL_PLANE_Y_RES, PIXEL_Y_DIMENSION, stored_h)):
        per_unit = _number(tags.get(res_tag))
        if per_unit is None:
            continue
        recorded = _number(tags.get(dim_tag)) or float(stored)
        candidates.append(focal_mm * per_unit / unit * stored / recorded)
    if not candidates:
        return None
    focal_px = candidates[0]  # X first: the axis cameras fill in; Y only when X is missing
    return ExifFocal(focal_px * LONG_SIDE_MM / max(stored_w, stored_h), SOURCE_CROP_FACTOR)
