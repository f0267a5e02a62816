"""FACS vocabulary shared by the signal stages: the AUs aupipe reports, their blendshapes, and the
geometric measures on the normalised mesh (landmark sets, AU -> measure, displacement at E)."""

from __future__ import annotations

__all__ = [
    "AU_DESCRIPTIONS", "AU_NAMES", "AU_NUMBERS", "BLENDSHAPE_AUS", "GEOMETRY_AUS", "MEASURES", "SIDED_AUS", "SIDES",
]  # fmt: skip

#: The AUs aupipe reports, as two-digit numbers.
AU_NUMBERS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26, 28, 43)
AU_NAMES: tuple[str, ...] = tuple(f"AU{n:02d}" for n in AU_NUMBERS)
#: AUs that can act on one side of the face; they get ``_left_r`` / ``_right_r`` columns.
SIDED_AUS: tuple[str, ...] = ("AU01", "AU02", "AU04", "AU06", "AU07", "AU12", "AU14", "AU15", "AU20")

AU_DESCRIPTIONS: dict[str, str] = {
    "AU01": "Inner Brow Raiser", "AU02": "Outer Brow Raiser", "AU04": "Brow Lowerer",
    "AU05": "Upper Lid Raiser", "AU06": "Cheek Raiser", "AU07": "Lid Tightener",
    "AU09": "Nose Wrinkler", "AU10": "Upper Lip Raiser", "AU12": "Lip Corner Puller",
    "AU14": "Dimpler", "AU15": "Lip Corner Depressor", "AU17": "Chin Raiser",
    "AU20": "Lip Stretcher", "AU23": "Lip Tightener", "AU24": "Lip Pressor",
    "AU25": "Lips Part", "AU26": "Jaw Drop", "AU28": "Lip Suck", "AU43": "Eyes Closed",
}  # fmt: skip

#: AU -> (blendshapes of the person's left side, of the right side, of the midline).
#: MediaPipe names sides from the person's point of view (``mouthSmileLeft`` = own left).
BLENDSHAPE_AUS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "AU01": ((), (), ("browInnerUp",)),  # frontalis, pars medialis
    "AU02": (("browOuterUpLeft",), ("browOuterUpRight",), ()),  # frontalis, pars lateralis
    "AU04": (("browDownLeft",), ("browDownRight",), ()),  # corrugator, depressor supercilii
    "AU05": (("eyeWideLeft",), ("eyeWideRight",), ()),  # levator palpebrae superioris
    "AU06": (("cheekSquintLeft",), ("cheekSquintRight",), ()),  # orbicularis oculi, orbital
    "AU07": (("eyeSquintLeft",), ("eyeSquintRight",), ()),  # orbicularis oculi, palpebral
    "AU09": (("noseSneerLeft",), ("noseSneerRight",), ()),  # levator labii sup. alaeque nasi
    "AU10": (("mouthUpperUpLeft",), ("mouthUpperUpRight",), ()),  # levator labii superioris
    "AU12": (("mouthSmileLeft",), ("mouthSmileRight",), ()),  # zygomaticus major
    "AU14": (("mouthDimpleLeft",), ("mouthDimpleRight",), ()),  # buccinator
    "AU15": (("mouthFrownLeft",), ("mouthFrownRight",), ()),  # depressor anguli oris
    "AU17": ((), (), ("mouthShrugLower",)),  # mentalis
    "AU20": (("mouthStretchLeft",), ("mouthStretchRight",), ()),  # risorius, platysma
    "AU23": (("mouthPressLeft",), ("mouthPressRight",), ("mouthRollUpper", "mouthRollLower")),  # orb. oris
    "AU24": (("mouthPressLeft",), ("mouthPressRight",), ()),  # orbicularis oris (pressing)
    "AU25": (("mouthLowerDownLeft",), ("mouthLowerDownRight",), ("jawOpen",)),  # lips apart
    "AU26": ((), (), ("jawOpen",)),  # masseter relaxed, jaw drops
    "AU28": ((), (), ("mouthRollUpper", "mouthRollLower")),  # orbicularis oris (sucking lips in)
    "AU43": (("eyeBlinkLeft",), ("eyeBlinkRight",), ()),  # levator relaxed, eyes closed
}


#: Geometric measures on the normalised mesh (canonical frame: x towards the person's left,
#: y up; units of face width). Landmark sets per side: (person's right, person's left).
SIDES = ("right", "left")
BROW_INNER = ((107, 55), (336, 285))
BROW_OUTER = ((70, 46, 105), (300, 276, 334))
BROW_ALL = ((107, 55, 66, 105), (336, 285, 296, 334))
UPPER_LID = ((159, 158, 160), (386, 385, 387))
LOWER_LID = ((145, 144, 153), (374, 373, 380))
CHEEK = ((50, 101, 118), (280, 330, 347))
NOSE_WING = ((64, 129, 98), (294, 358, 327))
UPPER_LIP_SIDE = ((37, 39), (267, 269))
LIP_CORNER = ((61,), (291,))
UPPER_LIP_OUTER, UPPER_LIP_INNER, LOWER_LIP_INNER, LOWER_LIP_OUTER = 0, 13, 14, 17
CHIN_BOSS = (18, 200)
JAW = (152, 175)

#: Raw geometric signals (n frames) computed by ``geometric_measures``; all in face widths.
MEASURES: tuple[str, ...] = tuple(
    [f"{name}_{side}" for name in ("brow_inner_y", "brow_outer_y", "brow_y", "brow_inner_x", "upper_lid_y",
                                   "lower_lid_y", "eye_aperture", "cheek_y", "nose_wing_y", "upper_lip_y",
                                   "corner_y", "corner_x") for side in SIDES]
    + ["lip_thickness", "lip_gap", "chin_y", "jaw_y"]
)  # fmt: skip

#: AU -> (measure stem, sign, displacement in face widths that reaches FACS E = 5).
#: Sided stems are evaluated per side; ``None`` means the AU has no geometric signal.
GEOMETRY_AUS: dict[str, tuple[str, float, float] | None] = {
    "AU01": ("brow_inner_y", +1.0, 0.06),  # inner brow moves up
    "AU02": ("brow_outer_y", +1.0, 0.06),  # outer brow moves up
    "AU04": ("brow_y", -1.0, 0.06),  # brow moves down (and together, see brow_inner_x)
    "AU05": ("upper_lid_y", +1.0, 0.04),  # upper lid moves up
    "AU06": ("cheek_y", +1.0, 0.04),  # infraorbital cheek moves up
    "AU07": ("lower_lid_y", +1.0, 0.03),  # lower lid moves up (tightens)
    "AU09": ("nose_wing_y", +1.0, 0.04),  # nose wings move up
    "AU10": ("upper_lip_y", +1.0, 0.05),  # upper lip moves up
    "AU12": ("corner_y", +1.0, 0.08),  # lip corners move up
    "AU14": None,  # dimpling is a depth/texture change the mesh barely shows: blendshape only
    "AU15": ("corner_y", -1.0, 0.05),  # lip corners move down
    "AU17": ("chin_y", +1.0, 0.06),  # chin boss pushes up
    "AU20": ("corner_x", +1.0, 0.05),  # lip corners move outwards (minus any rise, see code)
    "AU23": ("lip_thickness", -1.0, 0.06),  # red of the lips narrows
    "AU24": ("lip_thickness", -1.0, 0.06),  # lips pressed (thinner) while closed
    "AU25": ("lip_gap", +1.0, 0.08),  # lips apart (gap beyond the neutral gap; lips at rest count as closed)
    "AU26": ("jaw_y", -1.0, 0.15),  # jaw drops
    "AU28": None,  # lips sucked in: blendshape only
    "AU43": ("eye_aperture", -1.0, 1.0),  # relative closure: 1 - aperture / neutral aperture
}
