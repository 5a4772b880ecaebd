"""Find the face and its 478 MediaPipe landmarks in a photo.

Two MediaPipe models run offline from files shipped in the wheel: the
full-range face detector finds every face (FaceMesh alone misses small or
off-centre ones), then FaceMesh with refined landmarks runs on a square crop
around the chosen face, so the landmark quality does not depend on where the
face sits in a large photo. The detector looks at the photo area-averaged to
at most DETECT_MAX_SIDE pixels (it works at 192 px inside; more only costs
time), the mesh at the full-resolution crop resized to CROP_SIZE: neither
grows with the photo's pixel count.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..common.errors import FaceStageError
from ..common.quiet import native_stderr_silenced
from ..io.image import area_reduce, to_uint8

log = logging.getLogger(__name__)

N_LANDMARKS = 478
# Ordered MediaPipe FaceMesh loops (checked against mediapipe's FACEMESH_* edge sets).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
             149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_BROW = (276, 283, 282, 295, 285, 336, 296, 334, 293, 300)
RIGHT_BROW = (46, 53, 52, 65, 55, 107, 66, 105, 63, 70)
OUTER_LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
INNER_LIPS = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
# Eye corners: the eye centres define the inter-ocular distance used for normalisation.
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)
MIN_FACE_PX = 64
CROP_SCALE = 2.2
CROP_SIZE = 512
DETECT_MAX_SIDE = 1920


@dataclass
class Landmarks:
    """478x2 pixel coordinates (x right, y down, pixel centres at +0.5) of one face."""

    points: np.ndarray
    confidence: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    face_count: int = 1
    warnings: list[str] = field(default_factory=list)

    @property
    def size_px(self) -> float:
        """Face width across its landmarks, the measure the 'too small' rule uses."""
        return float(np.ptp(self.points[:, 0]))


def interocular_px(points: np.ndarray) -> float:
    """Distance between the eye centres (mid-points of the eye corners) of 478 landmarks (pixels)."""
    right = points[list(RIGHT_EYE_CORNERS)].mean(0)
    left = points[list(LEFT_EYE_CORNERS)].mean(0)
    return float(np.linalg.norm(left - right))


@contextlib.contextmanager
def _quiet_mediapipe():  # type: ignore[no-untyped-def]
    """MediaPipe's C++ logs (TFLite, absl, glog) go to file descriptor 2; keep the user's terminal clean (core/common/quiet.py)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_stderr_silenced():
        import mediapipe as mp  # heavy (and absent until installed): loaded at the first detection

        yield mp


def _detection_image(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """(uint8 image, factor) for the face detector: area-averaged by an integer factor to at most DETECT_MAX_SIDE
    (an 8-bit photo by Pillow's box reduction, 7x faster than area_reduce's float path at 48 MP: 0.19 vs 1.3 s)."""
    factor = max(1, -(-max(pixels.shape[:2]) // DETECT_MAX_SIDE))
    if factor > 1 and pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3:
        return np.ascontiguousarray(np.asarray(Image.fromarray(pixels).reduce(factor))), factor
    return np.ascontiguousarray(to_uint8(pixels if factor == 1 else area_reduce(pixels, factor))), factor


def _region(pixels: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """pixels[y0:y1, x0:x1] as uint8, black where the rectangle leaves the image (like Image.crop)."""
    out = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    height, width = pixels.shape[:2]
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if ix1 > ix0 and iy1 > iy0:
        out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = to_uint8(pixels[iy0:iy1, ix0:ix1, :3])
    return out


def _detect_faces(mp, image: np.ndarray) -> list[tuple[float, tuple[float, float, float, float]]]:  # type: ignore[no-untyped-def]
    """(score, box) of every face, largest first."""
    height, width = image.shape[:2]
    with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as detector:
        result = detector.process(image)
    faces = []
    for detection in result.detections or []:
        box = detection.location_data.relative_bounding_box
        x0, y0 = box.xmin * width, box.ymin * height
        faces.append((float(detection.score[0]), (x0, y0, x0 + box.width * width, y0 + box.height * height)))
    faces.sort(key=lambda f: -(f[1][2] - f[1][0]) * (f[1][3] - f[1][1]))
    return faces


def _mesh_in_crop(mp, pixels: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:  # type: ignore[no-untyped-def]
    """Run FaceMesh on a square crop around box (full-resolution pixels); return landmarks in full-image pixels."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = CROP_SCALE * max(box[2] - box[0], box[3] - box[1]) / 2
    x0, y0 = cx - half, cy - half
    left, top = round(x0), round(y0)
    region = _region(pixels, left, top, round(x0 + 2 * half), round(y0 + 2 * half))
    side = region.shape[1]
    crop = Image.fromarray(region).resize((CROP_SIZE, CROP_SIZE), Image.Resampling.BILINEAR)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                         min_detection_confidence=0.3) as mesh:
        result = mesh.process(np.asarray(crop))
    if not result.multi_face_landmarks:
        return None
    normalised = np.array([(p.x, p.y) for p in result.multi_face_landmarks[0].landmark], dtype=np.float64)
    return (normalised * side + [left, top]).astype(np.float32)


def detect(pixels: np.ndarray, source: str = "the photo", face_index: int | None = None) -> Landmarks:
    """Landmarks of one face of an sRGB (H, W, 3) image: float in [0, 1], uint8 or uint16, any size.

    Several faces: the largest is used (or ``face_index``, 0 = largest) and a
    warning says so. No face, a face too small, or a bad index raise
    FaceStageError naming ``source``.
    """
    image, factor = _detection_image(pixels)
    with _quiet_mediapipe() as mp:
        faces = [(score, (box[0] * factor, box[1] * factor, box[2] * factor, box[3] * factor))
                 for score, box in _detect_faces(mp, image)]
        if not faces:
            raise FaceStageError(f"No face found in {source}.")
        index = 0 if face_index is None else face_index
        if not 0 <= index < len(faces):
            raise FaceStageError(f"Face index {index} was requested but {source} has {len(faces)} face(s).")
        score, box = faces[index]
        points = _mesh_in_crop(mp, pixels, box)
    if points is None:
        raise FaceStageError(f"No face found in {source} (a face was detected but its landmarks could not be placed).")
    warnings = []
    if len(faces) > 1 and face_index is None:
        warnings.append(f"{len(faces)} faces found in {source}; using the largest (choose another with --face-index).")
    landmarks = Landmarks(points=points, confidence=score, box=box, face_count=len(faces), warnings=warnings)
    if landmarks.size_px < MIN_FACE_PX:
        raise FaceStageError(f"The face in {source} is only {landmarks.size_px:.0f} pixels wide; at least {MIN_FACE_PX} are needed.")
    for message in warnings:
        log.warning(message)
    return landmarks
