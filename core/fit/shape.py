"""How far the photometric stages may move the head's shape, and how the final shape is held to the prior.

Stage 0 (fit/solver.py) gets the shape from landmarks, which on their own barely beat the mean head:
MediaPipe's points scatter by ~6 % of the eye distance around where they belong on our renders. Stage 1
refines identity and expression photometrically (shading, and the outline of fit/silhouette.py) and does
most of the shape recovery. Stage 2 may keep refining them together with the per-texel maps
(`STAGE2_GEOMETRY`), at its own learning rate and held to the stage-1 shape by `anchor_prior`, so that the
maps' freedom cannot drag the shape away.

The last step, `shrink`, pulls the final identity towards the mean head by a factor calibrated on
validation heads (tools/learn_landmarks.py): a noisy estimate of a deviation is better shrunk than taken at
face value, and shrinking is what keeps the fit from doing worse than the unfitted mean head.
"""

from __future__ import annotations

import torch

STAGE2_GEOMETRY = False  # stage 2 refines identity and expression with the maps
STAGE2_LR_SCALE = 0.3  # their learning rate, relative to the maps'
STAGE2_W_ANCHOR = 1e-2  # Σ (coefficient − stage-1 value)², against the photometric loss
IDENTITY_SHRINK = 1.0  # final identity = this × fitted identity


def anchor_prior(identity: torch.Tensor, expression: torch.Tensor, anchor_identity: torch.Tensor,
                 anchor_expression: torch.Tensor) -> torch.Tensor:
    """Quadratic pull of the coefficients towards where stage 1 left them."""
    return STAGE2_W_ANCHOR * (((identity - anchor_identity) ** 2).sum() + ((expression - anchor_expression) ** 2).sum())


def shrink(identity: torch.Tensor) -> torch.Tensor:
    """The final identity: the fitted one pulled towards the mean head by IDENTITY_SHRINK."""
    return IDENTITY_SHRINK * identity
