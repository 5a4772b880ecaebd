"""The eyes and the mouth (teeth, cavity, tongue) of a finished reconstruction, as meshes the renderer draws.

render.png, relit.png and the caricature render all show what Blender shows, so
every re-render of a Result adds the same parts: the model's eyeballs for the
fitted identity, turned by the fitted gaze, and its mouth for the fitted
identity and expression, moved with the face if the face was edited
(model/head/parts.py follow_face), with the recovered eyes.png / mouth.png or
the model's defaults when a result has none.
"""

from __future__ import annotations

import numpy as np
import torch

from ..io.result import Result
from ..model.head import HeadModel, load_head_model
from ..model.head import parts as head_parts
from ..render import Material, Part
from ..render.raytrace import Bvh

EYE_TEXTURE_SIZE = 512
MOUTH_TEXTURE_SIZE = 512
TUCK_MARGIN_M = 0.001  # how far inside the skin a tucked mouth vertex lands


def coefficients(result: Result, model: HeadModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(identity, expression) of a result as float32 tensors, the expression in the model's unit order."""
    names = list(model.expression_names)
    expression = np.zeros(len(names), np.float32)
    for name, weight in zip(result.expression_names, result.expression):
        if name in names:
            expression[names.index(name)] = weight
    return (torch.as_tensor(np.asarray(result.identity, np.float32)), torch.as_tensor(expression))


def part_vertices(result: Result, model: HeadModel, vertices: np.ndarray | None = None,
                  turned: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Model-space (eye vertices (E, 3), mouth vertices (M, 3)) of a result whose face is `vertices` (world space,
    default: result.vertices); the eyes turned by the result's gaze unless not `turned`."""
    identity, expression = coefficients(result, model)
    rotation = np.asarray(result.rotation, np.float64)
    translation = np.asarray(result.translation, np.float64)
    with torch.no_grad():
        eyes = model.eye_evaluate(identity)
        gaze = np.zeros((2, 2)) if result.gaze is None or not turned else np.asarray(result.gaze)
        eyes = head_parts.turned_eyes(model, eyes, torch.as_tensor(gaze, dtype=eyes.dtype)).double().numpy()
        mouth = mouth_shape(model, identity, expression, result.teeth_shift, result.tongue_shift).double().numpy()
        fitted = model.evaluate(identity, expression).double().numpy()
    face = np.asarray(result.vertices if vertices is None else vertices, np.float64)
    return head_parts.follow_face(model, fitted, (face - translation) @ rotation, eyes, mouth)


def mouth_shape(model: HeadModel, identity: torch.Tensor, expression: torch.Tensor,
                shift: np.ndarray | None = None, tongue_shift: np.ndarray | None = None) -> torch.Tensor:
    """Model-space mouth vertices (M, 3) for the coefficients, as every renderer and the Blender scene show them:
    the model's, the teeth moved up by `shift` (head_parts.shift_teeth) and the tongue by `tongue_shift`
    (head_parts.shift_tongue), then kept behind the skin (tucked_mouth)."""
    with torch.no_grad():
        mouth = head_parts.shift_teeth(model, model.mouth_evaluate(identity, expression), shift)
        mouth = head_parts.shift_tongue(model, mouth, tongue_shift)
        return tucked_mouth(model, model.evaluate(identity, expression), mouth)


def tucked_mouth(model: HeadModel, face: torch.Tensor, mouth: torch.Tensor) -> torch.Tensor:
    """Mouth vertices (M, 3) with those that stand out of the face (V, 3) pulled back behind its skin.

    The mouth follows identity by hm08's own deltas, which do not keep it inside the face: summed over a strong
    identity the cavity or the lower teeth come out through the chin (33 of 108 sampled synthetic heads by over
    1 mm, up to 76 mm below the jaw): a dark spot or white specks on the skin, which moved MediaPipe's lips by
    14 px. A vertex whose segment from the cavity's centroid crosses the skin is moved along it to TUCK_MARGIN_M
    inside; the rim, which is the lips' own vertices, stays. The mean head moves no vertex.
    """
    part = torch.as_tensor(head_parts.mouth_vertex_parts(model), device=mouth.device)
    centre = mouth[part == list(model.mouth_part_names).index("cavity")].mean(0)
    out = mouth - centre
    reach = out.norm(dim=1)
    hits = Bvh(face, model.faces).intersect(centre, out, t_max=reach)
    hits.hit[torch.as_tensor(head_parts.mouth_rim(model)[0], device=mouth.device)] = False
    inside = (hits.t - TUCK_MARGIN_M).clamp(min=0).to(mouth.dtype) / reach.clamp(min=1e-9)
    return torch.where(hits.hit[:, None], centre + out * inside[:, None], mouth)


def textures(result: Result, model: HeadModel) -> tuple[np.ndarray, np.ndarray]:
    """(eye texture, mouth texture), linear: the result's, or the model's defaults."""
    eyes = result.eye_texture
    if eyes is None:
        with torch.no_grad():
            radius = float(head_parts.eye_radius(model, model.eye_evaluate(coefficients(result, model)[0])).mean())
        eyes = head_parts.default_eye_texture(EYE_TEXTURE_SIZE, head_parts.iris_angle_deg(head_parts.IRIS_RADIUS_M, radius))
    mouth = result.mouth_texture
    if mouth is None:
        mouth = head_parts.default_mouth_texture(model, MOUTH_TEXTURE_SIZE)
    return eyes, mouth


def material(texture: np.ndarray, values: head_parts.PartMaterial, device: torch.device,
             coat: np.ndarray | None = None) -> Material:
    """A render Material from a texture and a part's Principled values (`coat` (S, S): a coat weight map)."""
    def constant(x: float) -> torch.Tensor:
        return torch.full((1, 1, 1), float(x), device=device)

    coat_map = None if coat is None else torch.as_tensor(np.asarray(coat, np.float32)[..., None], device=device)
    return Material(torch.as_tensor(np.asarray(texture, np.float32), device=device), constant(values.specular),
                    constant(values.roughness), values.coat, values.coat_roughness, values.coat_ior, coat_map)


def mouth_part(model: HeadModel, mouth: torch.Tensor, texture: np.ndarray, teeth: bool) -> Part:
    """The teeth (`teeth`) or the mouth interior of world-space mouth vertices, with its material and `texture`."""
    device = mouth.device
    faces = torch.as_tensor(head_parts.teeth_faces(model), device=device)
    if not teeth:
        faces = ~faces
    values = head_parts.TEETH_MATERIAL if teeth else head_parts.MOUTH_MATERIAL
    return Part(mouth, model.mouth_faces.to(device)[faces], model.mouth_uvs.to(device),
                model.mouth_face_uvs.to(device)[faces], material(texture, values, device))


def render_parts(model: HeadModel, eyes: torch.Tensor, mouth: torch.Tensor, eye_texture: np.ndarray,
                 mouth_texture: np.ndarray, eye_coat: np.ndarray | None = None) -> list[Part]:
    """The renderer's parts from world-space eye and mouth vertices: eyes, teeth, mouth interior (in this order);
    `eye_coat` (S, S): the cornea's coat weight in the eye texture's layout (None: full everywhere)."""
    device = eyes.device
    return [
        Part(eyes, model.eye_faces.to(device), model.eye_uvs.to(device), model.eye_face_uvs.to(device),
             material(eye_texture, head_parts.EYE_MATERIAL, device, eye_coat)),
        mouth_part(model, mouth, mouth_texture, teeth=True),
        mouth_part(model, mouth, mouth_texture, teeth=False),
    ]


def result_parts(result: Result, device: str | torch.device = "cpu", vertices: np.ndarray | None = None) -> list[Part]:
    """The eyes, teeth and mouth interior of a result (its face: `vertices`, default result.vertices)."""
    model = load_head_model()
    rotation, translation = np.asarray(result.rotation, np.float64), np.asarray(result.translation, np.float64)
    eyes, mouth = (v @ rotation.T + translation for v in part_vertices(result, model, vertices))
    eye_texture, mouth_texture = textures(result, model)
    dev = torch.device(device)
    return render_parts(model, torch.as_tensor(eyes, dtype=torch.float32, device=dev),
                        torch.as_tensor(mouth, dtype=torch.float32, device=dev), eye_texture, mouth_texture,
                        result.eye_coat)
