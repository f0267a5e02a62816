"""Appearance: local texture of the face regions where FACS AUs are appearance changes.

FACS describes several AUs by what they do to the skin, not by how landmarks move: AU04 bunches
the skin between the brows into furrows, AU10 deepens the nasolabial fold, AU14 dimples the lip
corners, AU17 wrinkles the chin. The mesh barely sees these. For each region (``REGIONS``, placed
on landmarks and sized in face widths) a small patch is cut from the frame, aligned with the eye
line and resampled to ``PATCH_PX`` x ``PATCH_PX``; its texture is the mean absolute Sobel
gradient across x (``gx``: vertical edges, furrows) and across y (``gy``: horizontal edges,
folds) divided by the patch's mean grey level, so lighting and contrast changes mostly cancel.

Columns ``a_gx_<region>`` / ``a_gy_<region>`` (dimensionless, >= 0; NaN without face). Sided
regions end in ``_left`` / ``_right``, the person's own sides, like the geometric measures.
About 0.2 ms per frame (10 patches of 24 x 24 pixels): 2-3 % of the landmark stage at 720p.
"""

from __future__ import annotations

import numpy as np

#: region -> (landmarks whose mean is the patch centre, width and height in face widths).
REGIONS: dict[str, tuple[tuple[int, ...], float, float]] = {
    "glabella": ((9, 8, 168), 0.16, 0.12),  # AU04: furrows between the brows
    "nasal_root": ((6, 197, 168), 0.14, 0.10),  # AU09: wrinkles across the nose root
    "forehead": ((151, 9, 10), 0.40, 0.14),  # AU01/AU02: horizontal forehead wrinkles
    "chin": ((199, 175, 18), 0.22, 0.12),  # AU17: chin boss wrinkling
    "nasolabial_left": ((426, 423, 410), 0.12, 0.14),  # AU10/AU12: the nasolabial fold
    "nasolabial_right": ((206, 203, 186), 0.12, 0.14),
    "corner_left": ((291, 375, 409), 0.10, 0.10),  # AU14/AU15: lip-corner dimple and pull
    "corner_right": ((61, 146, 185), 0.10, 0.10),
    "lower_lid_left": ((374, 380, 373), 0.14, 0.06),  # AU06/AU07: bulge and lines under the eye
    "lower_lid_right": ((145, 153, 144), 0.14, 0.06),
}  # fmt: skip
PATCH_PX = 24
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263

#: Appearance column names (without the ``a_`` prefix), in order.
NAMES: tuple[str, ...] = tuple(f"{kind}_{region}" for region in REGIONS for kind in ("gx", "gy"))
_CENTRES = [np.array(ids) for ids, _, _ in REGIONS.values()]
_SIZES = [(width, height) for _, width, height in REGIONS.values()]


def region_texture(rgb: np.ndarray, landmarks_px: np.ndarray, face_width_px: float) -> np.ndarray:
    """Texture (len(NAMES),) of one frame: rgb (h, w, 3) uint8, landmarks_px (478, 2+) pixels."""
    import cv2

    right, left = landmarks_px[RIGHT_EYE_OUTER, :2], landmarks_px[LEFT_EYE_OUTER, :2]
    angle = np.arctan2(left[1] - right[1], left[0] - right[0])
    cos, sin = np.cos(angle), np.sin(angle)
    out = np.empty(len(NAMES), dtype=np.float32)
    half = np.array([PATCH_PX / 2.0, PATCH_PX / 2.0])
    area = float(PATCH_PX * PATCH_PX)
    for k, (ids, (width, height)) in enumerate(zip(_CENTRES, _SIZES, strict=True)):
        centre = landmarks_px[ids, :2].sum(axis=0) / len(ids)
        scale_x, scale_y = width * face_width_px / PATCH_PX, height * face_width_px / PATCH_PX
        affine = np.array([[cos * scale_x, -sin * scale_y, 0.0], [sin * scale_x, cos * scale_y, 0.0]])
        affine[:, 2] = centre - affine[:, :2] @ half  # patch (u, v) -> image (x, y)
        patch = cv2.warpAffine(rgb, affine, (PATCH_PX, PATCH_PX), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        grey = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY).astype(np.float32)
        level = (cv2.norm(grey, cv2.NORM_L1) / area + 1.0) * area  # (mean grey level + 1) x area
        out[2 * k] = cv2.norm(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.NORM_L1) / level
        out[2 * k + 1] = cv2.norm(cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3), cv2.NORM_L1) / level
    return out
