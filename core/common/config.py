"""Every option of a reconstruction, with its default, and the one list of each choice, in one place.

The quality presets only change numbers here; the pipeline reads nothing
else, so a run is fully described by (photo, ReconstructConfig). The CLI,
the Blender panel and the operators read their choices (qualities, devices,
lighting presets, photo types) from the tuples below, so a new choice is
added once. Nothing here imports torch: the add-on reads it at registration.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .errors import FaceStageError

QUALITIES = ("fast", "default", "high")
N_LIGHTS = 20  # lights of the light stage, one per face of an icosahedron
DEVICES = ("auto", "cpu", "cuda")
STAGES = ("landmarks", "lighting", "full")  # where a run stops: after stage 0, stage 1, or all
# Named light-stage settings of core.apps.relight (plus ENV_ROTATE, which turns the fitted environment instead).
LIGHTING_PRESETS = ("three-point", "rembrandt", "butterfly", "split", "rim", "soft-box")
ENV_ROTATE = "env-rotate"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".heic", ".heif", ".hif", ".avif")


@dataclass(frozen=True)
class StageSteps:
    """Iterations of each optimisation stage."""

    landmarks: int = 300
    # 115/90 (was 150/150) with two world samples: the sample at default quality took 116.8 s, then 130.9-140.5 s on
    # the slower machines of 2026-11-28, and 77.7 s since the fit's renders shade only the pixels their loss reads
    # (bench/results/pipeline.json). 150/150 with that mask (96.2 s) was tried and left: accuracy scene 2's albedo
    # came back 25 % dark at seed 0, a scene whose fit also swings with the seed (README, Accuracy).
    lighting: int = 115
    maps: int = 90


@dataclass(frozen=True)
class ReconstructConfig:
    """Options of one reconstruction (see `preset`)."""

    quality: str = "default"
    device: str = "auto"
    seed: int = 0
    face_index: int | None = None
    stages: str = "full"  # one of STAGES
    steps: StageSteps = field(default_factory=StageSteps)
    sh_bands: int = 3
    render_size: int = 256  # longest side of the face crop rendered during stage 1/2 (coarse-to-fine up to it)
    texture_size: int = 1024  # diffuse/specular/roughness maps (high: 2048 when the face fills it, see texture_size_for)
    fit_texture_size: int = 512  # stage 2's per-texel maps (its renders resolve no finer); resized to texture_size
    spp: int = 1
    shadow_samples: int = 1
    learning_rate: float = 0.01
    # Regulariser weights.
    w_landmarks: float = 1.0
    w_identity: float = 1e-3
    w_expression: float = 1e-3
    w_light_sparsity: float = 1e-3  # on L1/L2 of the stage intensities
    w_light_colour: float = 1.0  # grey-light prior (stage and SH DC)
    w_sh_prior: float = 1e-2
    w_symmetry: float = 1e-1
    w_consistency: float = 1e-1
    w_smoothness: float = 1e-1
    w_skin_prior: float = 1e-1
    w_brightness: float = 1e-2  # pulls the albedo's level to the chromophore model's (its colour fixes lightness loosely)
    w_white_reference: float = 1.0  # sclera/teeth albedo references, when the eye and mouth fit supplies them
    w_detail: float = 1e-2  # stage 2's grey detail layer towards 0
    # world (SH) directions per shading point, diffuse and glossy each, with shadow rays, in the fit's renders. The
    # loss is taken in gamma space, where noise is biased, so one sample is too few where the world is bright:
    # fringe_shorthair_yaw (high-key) lost 1.1 dB in the inner face and 3.8 dB in the skin mask with 1 against 4;
    # 2 gave 21.7 dB there, as 4 did. Costs on the sample photo: 4 → 182 s, 2 → 125 s, 1 → 110 s (150/100 steps).
    world_samples: int = 2
    # samples per pixel, and shadow samples per light, of the sclera and teeth reference renders (fit/references.py):
    # four settles of stage 1 render the eyes once each, few pixels are used, and their shading's median is read
    reference_samples: int = 4


PRESETS: dict[str, dict[str, object]] = {
    "fast": {"steps": StageSteps(landmarks=200, lighting=60, maps=40), "render_size": 128, "texture_size": 256,
             "reference_samples": 2},
    "default": {},
    "high": {"steps": StageSteps(landmarks=400, lighting=300, maps=300), "render_size": 384, "texture_size": 2048,
             "fit_texture_size": 1024,
             "spp": 2, "shadow_samples": 2},
}


def preset(quality: str = "default", **overrides: object) -> ReconstructConfig:
    """The config of a quality preset, with explicit overrides applied last."""
    if quality not in PRESETS:
        raise FaceStageError(f"Unknown quality {quality!r}; use one of {', '.join(QUALITIES)}.")
    return replace(ReconstructConfig(quality=quality), **{**PRESETS[quality], **overrides})  # type: ignore[arg-type]


MIN_DETAIL_TEXTURE = 1024  # texture_size_for never goes below this (nor above the preset's size)
FACE_PX_PER_TEXEL = 0.35  # the face's width in photo pixels per texel of the map's side for it to carry the detail


def texture_size_for(config: ReconstructConfig, face_width_px: float) -> ReconstructConfig:
    """The config with its texture size halved (not below MIN_DETAIL_TEXTURE) while the face in the photo is too
    small to fill it: the face takes about half the map's side, so a 2048² map wants a face ~700 px wide."""
    size = config.texture_size
    while size > MIN_DETAIL_TEXTURE and face_width_px < FACE_PX_PER_TEXEL * size:
        size //= 2
    return config if size == config.texture_size else replace(config, texture_size=size)
