"""The photo's teeth in the light fit (fit/teeth.py TeethLight): their loss moves the lights, never the face."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_the_teeth_loss_reaches_the_lights_and_not_the_geometry(sample_after_stage0):
    """On the sample (a smile with teeth) after stage 0: the teeth's photometric loss has a gradient on the light
    stage and the SH, and none on pose, shape or expression. With one, stage 1 closed dark_man_smile's mouth
    over teeth it rendered too dark (jawOpen 0.48 -> 0.09)."""
    from facestage.core.fit.teeth import TeethLight

    run, points, *_ = sample_after_stage0
    teeth = TeethLight.measure(run, points)
    assert teeth is not None
    assert 40 <= int(teeth.mask.sum()) <= teeth.mask.numel() // 4  # the smile's teeth, not the whole crop
    loss = teeth.loss(run, run.statistical_maps())
    assert float(loss.detach()) > 0
    loss.backward()
    assert float(run.sh.grad.abs().sum()) > 0
    assert float(sum(v.grad.abs().sum() for v in run.light_raw.values() if v.grad is not None)) > 0
    for name in ("identity", "expression", "omega", "shift", "log_focal"):
        grad = getattr(run, name).grad
        assert grad is None or float(grad.abs().sum()) == 0.0, name


def _mouth(teeth: tuple[float, float, float], skin: tuple[float, float, float]):  # type: ignore[no-untyped-def]
    """A 32-px sRGB crop of skin with a lip polygon and its teeth mask, the teeth (the polygon's inside) coloured."""
    import numpy as np

    from facestage.core.fit.teeth import polygon_mask

    lips = np.array([[6.0, 12.0], [26.0, 12.0], [26.0, 20.0], [6.0, 20.0]])
    inside = polygon_mask(lips, 32)
    photo = np.where(inside[..., None], np.array(teeth, np.float32), np.array(skin, np.float32))
    return photo, lips, inside


def test_teeth_stand_out_from_the_skin_and_pale_lips_do_not():
    """Measured on the real smiles and the accuracy scenes (teeth.STAND_OUT_*): teeth are more neutral than skin, or
    far brighter than a dark skin; pale lips are neither."""
    from facestage.core.fit.teeth import stand_out

    skin = (0.80, 0.62, 0.52)  # light skin, saturation 0.35
    assert stand_out(*_mouth((0.90, 0.86, 0.80), skin))  # teeth: saturation 0.11
    assert not stand_out(*_mouth((0.85, 0.62, 0.58), skin))  # pale pink lips: saturation 0.32, as bright
    dark = (0.30, 0.22, 0.20)  # dark skin, saturation 0.33
    assert stand_out(*_mouth((0.70, 0.58, 0.50), dark))  # warm teeth (saturation 0.29) 2.3x brighter
    assert not stand_out(*_mouth((0.40, 0.28, 0.26), dark))  # lips a little brighter than the skin
