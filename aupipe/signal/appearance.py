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

The whole face's appearance (``face_hog``): the face warped by a similarity (fitted on rigid
landmarks: eye corners, nose, temples, forehead) onto MediaPipe's canonical face, ``FACE_PX`` x
``FACE_PX`` colour pixels, zero outside the face from the brows down (``aligned_face``), described
by Felzenszwalb's histogram of oriented gradients (``fhog``: 8-pixel cells, 31 channels, ``HOG_DIMS``
values). That is what OpenFace's AU models read (dlib's FHOG of its masked 112-pixel face), and on
the corpus's unseen people it agrees with OpenFace far better than a 64-pixel Dalal-Triggs HOG of
the unmasked face (docs/aus.md). About 0.5 ms per face (crop 0.2, FHOG 0.3).

``face_descriptor`` joins it with the normalised mesh's x, y and the blendshape scores: the
vector that the calibration projects onto a fitted direction per AU (``aupipe.signal.calibration``,
columns ``a_face_AUxx`` / ``a_faced_AUxx``).
"""

from __future__ import annotations

import functools
from typing import Any

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


def region_patches(rgb: np.ndarray, landmarks_px: np.ndarray, face_width_px: float) -> np.ndarray:
    """The ``REGIONS``' patches of one frame, each cut by its own bilinear warp (aligned with the
    eye line, edge pixels repeated outside the image), stacked: (len(REGIONS) * PATCH_PX,
    PATCH_PX, 3) uint8, patch k in rows k * PATCH_PX onwards."""
    import cv2

    right, left = landmarks_px[RIGHT_EYE_OUTER, :2], landmarks_px[LEFT_EYE_OUTER, :2]
    angle = np.arctan2(left[1] - right[1], left[0] - right[0])
    cos, sin = np.cos(angle), np.sin(angle)
    half = np.array([PATCH_PX / 2.0, PATCH_PX / 2.0])
    patches = np.empty((len(REGIONS) * PATCH_PX, PATCH_PX, 3), dtype=np.uint8)
    for k, (ids, (width, height)) in enumerate(zip(_CENTRES, _SIZES, strict=True)):
        centre = landmarks_px[ids, :2].sum(axis=0) / len(ids)
        scale_x, scale_y = width * face_width_px / PATCH_PX, height * face_width_px / PATCH_PX
        affine = np.array([[cos * scale_x, -sin * scale_y, 0.0], [sin * scale_x, cos * scale_y, 0.0]])
        affine[:, 2] = centre - affine[:, :2] @ half  # patch (u, v) -> image (x, y)
        cv2.warpAffine(rgb, affine, (PATCH_PX, PATCH_PX), dst=patches[k * PATCH_PX:(k + 1) * PATCH_PX],
                       flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return patches


def region_texture(rgb: np.ndarray, landmarks_px: np.ndarray, face_width_px: float) -> np.ndarray:
    """Texture (len(NAMES),) of one frame: rgb (h, w, 3) uint8, landmarks_px (478, 2+) pixels.

    Grey levels and the 3 x 3 Sobel gradients (edges reflected, as OpenCV's default) of all
    ``region_patches`` at once. Grey levels are integers, so every sum is exact and equals
    OpenCV's ``Sobel`` / ``norm`` per patch."""
    import cv2

    patches = region_patches(rgb, landmarks_px, face_width_px)
    grey = cv2.cvtColor(patches, cv2.COLOR_RGB2GRAY).astype(np.float32).reshape(len(REGIONS), PATCH_PX, PATCH_PX)
    padded = np.pad(grey, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    across_x = padded[:, :, 2:] - padded[:, :, :-2]  # [-1, 0, 1] along x, then [1, 2, 1] along y
    gx = across_x[:, :-2] + 2 * across_x[:, 1:-1] + across_x[:, 2:]
    across_y = padded[:, 2:] - padded[:, :-2]
    gy = across_y[:, :, :-2] + 2 * across_y[:, :, 1:-1] + across_y[:, :, 2:]
    area = float(PATCH_PX * PATCH_PX)
    level = (grey.sum(axis=(1, 2), dtype=np.float64) / area + 1.0) * area  # (mean grey level + 1) x area
    out = np.empty(len(NAMES), dtype=np.float32)
    out[0::2] = np.abs(gx).sum(axis=(1, 2), dtype=np.float64) / level
    out[1::2] = np.abs(gy).sum(axis=(1, 2), dtype=np.float64) / level
    return out


FACE_PX = 112
#: Landmarks that move little with expressions: eye corners, nose bridge and tip, temples, forehead.
RIGID_IDS: tuple[int, ...] = (33, 133, 362, 263, 1, 4, 5, 6, 168, 197, 195, 234, 454, 127, 356, 10, 151, 9, 8)
_RIGID = np.array(RIGID_IDS)
_FACE_SPAN = 1.24  # face widths across FACE_PX: the face from cheek to cheek fills about 80 % of the crop
_FACE_CENTRE = (0.0, -0.039)  # canonical x, -y (face widths) at the crop's centre, just above the nose tip
#: Upper-brow landmarks: the mask keeps the face from just above them down to the chin, as OpenFace's does.
_BROW_IDS = np.array([70, 63, 105, 66, 107, 336, 296, 334, 293, 300])
_BROW_MARGIN = 0.02  # crop widths kept above the highest brow landmark
CELL_PX = 8
_CELLS = FACE_PX // CELL_PX  # 14 x 14 histogram cells; the outer ring only normalises
FHOG_ORIENTATIONS = 18  # contrast-sensitive orientations over 360 degrees
FHOG_CHANNELS = 31  # 18 contrast-sensitive + 9 insensitive orientations + 4 gradient energies
FHOG_CELLS = _CELLS - 2  # cells across the descriptor
HOG_DIMS = FHOG_CELLS**2 * FHOG_CHANNELS  # 12 x 12 cells x 31 = 4464, as OpenFace's
_TRUNCATE = 0.2


@functools.lru_cache(maxsize=1)
def _cell_shares() -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's bilinear share among its 4 nearest cells: (4, FACE_PX**2) histogram index of
    orientation 0 in that cell (cells off the grid go to a spare slot) and (4, FACE_PX**2) weight."""
    centres = (np.arange(FACE_PX) + 0.5) / CELL_PX - 0.5  # pixel centres in cell units
    low = np.floor(centres).astype(np.int64)
    fraction = centres - low
    spare = _CELLS * _CELLS * FHOG_ORIENTATIONS
    index, weight = [], []
    for cell_y, weight_y in ((low, 1.0 - fraction), (low + 1, fraction)):
        for cell_x, weight_x in ((low, 1.0 - fraction), (low + 1, fraction)):
            inside = ((cell_y >= 0) & (cell_y < _CELLS))[:, None] & ((cell_x >= 0) & (cell_x < _CELLS))[None, :]
            base = (cell_y[:, None] * _CELLS + cell_x[None, :]) * FHOG_ORIENTATIONS
            index.append(np.where(inside, base, spare).ravel())
            weight.append((weight_y[:, None] * weight_x[None, :]).ravel())
    return np.stack(index), np.stack(weight).astype(np.float32)


def plane_gradient(plane: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central differences (dx, dy) of one (h, w) channel and their power dx^2 + dy^2; the border
    pixels get none. ``exact``: uint8 input, computed in int16 / int32 (exact); else float32."""
    values = np.ascontiguousarray(plane, dtype=np.int16 if exact else np.float32)
    dx, dy = np.zeros_like(values), np.zeros_like(values)
    np.subtract(values[:, 2:], values[:, :-2], out=dx[:, 1:-1])
    np.subtract(values[2:], values[:-2], out=dy[1:-1])
    wide_dx, wide_dy = (dx.astype(np.int32), dy.astype(np.int32)) if exact else (dx, dy)
    return dx, dy, wide_dx * wide_dx + wide_dy * wide_dy


def fhog(face: np.ndarray) -> np.ndarray:
    """Felzenszwalb's HOG (as dlib's ``extract_fhog_features``, which OpenFace's AU models read) of
    face (FACE_PX, FACE_PX, 3) uint8 or float: (HOG_DIMS,) float32, 12 x 12 cells x 31 channels.

    Per pixel the central-difference gradient of the colour channel where it is strongest, snapped
    to one of 18 orientations and shared bilinearly among the 4 nearest 8-pixel cells; each cell's
    histogram divided by the energy of each of the 4 2 x 2-cell blocks around it, truncated at 0.2:
    the 18 orientations and the 9 of either sign summed over the 4 blocks (halved), and the 4 blocks'
    energies. Pixels on the crop's border have no gradient. About 0.3 ms.
    """
    image = np.asarray(face)
    planes = [image] if image.ndim == 2 else [image[..., channel] for channel in range(image.shape[2])]
    exact = image.dtype == np.uint8  # integer gradients (int16) and powers (int32): exact, and small in cache
    dx, dy, power = plane_gradient(planes[0], exact)
    for plane in planes[1:]:  # the strongest channel's gradient (the first on ties)
        plane_dx, plane_dy, plane_power = plane_gradient(plane, exact)
        stronger = plane_power > power
        dx, dy, power = np.where(stronger, plane_dx, dx), np.where(stronger, plane_dy, dy), np.where(stronger, plane_power, power)
    magnitude = np.sqrt(power.astype(np.float32))
    magnitude[[0, -1], :] = magnitude[:, [0, -1]] = 0.0
    angle = np.arctan2(dy.astype(np.float32), dx.astype(np.float32))
    orientation = np.rint(angle * (FHOG_ORIENTATIONS / (2 * np.pi))).astype(np.int64) % FHOG_ORIENTATIONS
    index, weight = _cell_shares()
    spare = _CELLS * _CELLS * FHOG_ORIENTATIONS
    hist = np.bincount((index + orientation.ravel()).ravel(), (weight * magnitude.ravel()).ravel(), spare + FHOG_ORIENTATIONS)
    hist = hist[:spare].reshape(_CELLS, _CELLS, FHOG_ORIENTATIONS)
    unsigned = hist[..., :9] + hist[..., 9:]
    energy = (unsigned**2).sum(axis=-1)
    block = energy[:-1, :-1] + energy[1:, :-1] + energy[:-1, 1:] + energy[1:, 1:]
    inverse = 1.0 / np.sqrt(block + 1e-4)
    blocks = (inverse[1:, 1:], inverse[:-1, 1:], inverse[1:, :-1], inverse[:-1, :-1])
    inner, inner_unsigned = hist[1:-1, 1:-1], unsigned[1:-1, 1:-1]
    signed = [np.minimum(inner * n[..., None], _TRUNCATE) for n in blocks]
    either = [np.minimum(inner_unsigned * n[..., None], _TRUNCATE) for n in blocks]
    texture = np.stack([0.2357 * t.sum(axis=-1) for t in signed], axis=-1)
    out = np.concatenate([0.5 * sum(signed), 0.5 * sum(either), texture], axis=-1)
    return out.astype(np.float32).reshape(-1)


@functools.lru_cache(maxsize=1)
def face_template_px() -> np.ndarray:
    """(len(RIGID_IDS), 2) where the rigid landmarks of MediaPipe's canonical face fall in the crop (pixels)."""
    from aupipe.signal.normalize import canonical_face

    vertices = canonical_face().vertices[_RIGID]
    canonical = np.stack([vertices[:, 0], -vertices[:, 1]], axis=1)  # image y points down
    return ((canonical - np.array(_FACE_CENTRE)) * (FACE_PX / _FACE_SPAN) + FACE_PX / 2.0).astype(np.float64)


def similarity_to(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity (rotation, one scale, shift) taking source (k, 2) onto target (k, 2).

    In closed form: with centred points a (source) and b (target), scale x rotation is
    [[p, -q], [q, p]], p = sum(a . b) / sum(|a|^2), q = sum(a x b) / sum(|a|^2) (Umeyama's
    solution without reflection, in two dimensions)."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    a, b = source - source_mean, target - target_mean
    norm = max(float((a**2).sum()), 1e-12)
    p = float((a * b).sum()) / norm
    q = float((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum()) / norm
    out = np.empty((2, 3))
    out[:, :2] = ((p, -q), (q, p))
    out[:, 2] = target_mean - out[:, :2] @ source_mean
    return out


def aligned_face(rgb: np.ndarray, landmarks_px: np.ndarray) -> np.ndarray:
    """(FACE_PX, FACE_PX, 3) uint8: the face warped onto the canonical face's rigid landmarks, zero
    outside the landmarks' hull from just above the brows down (hair, forehead and background
    carry identity, not AUs). rgb (h, w, 3) uint8, landmarks_px (478, 2+) pixels."""
    import cv2

    affine = similarity_to(landmarks_px[_RIGID, :2].astype(np.float64), face_template_px())
    face = cv2.warpAffine(rgb, affine, (FACE_PX, FACE_PX), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    points = landmarks_px[:, :2] @ affine[:, :2].T + affine[:, 2]
    top = points[_BROW_IDS, 1].min() - _BROW_MARGIN * FACE_PX
    hull = cv2.convexHull(points[points[:, 1] >= top].astype(np.float32)).astype(np.int32)
    mask = np.zeros((FACE_PX, FACE_PX), dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return face * mask[..., None]


def face_hog(rgb: np.ndarray, landmarks_px: np.ndarray) -> np.ndarray:
    """HOG (HOG_DIMS,) float32 of one face (``fhog`` of ``aligned_face``): rgb (h, w, 3) uint8,
    landmarks_px (478, 2+) pixels."""
    return fhog(aligned_face(rgb, landmarks_px))


N_MESH_POINTS = 478
N_BLENDSHAPES = 52
#: Length of ``face_descriptor``: the HOG, the mesh's x and y, the blendshape scores.
DESCRIPTOR_DIMS = HOG_DIMS + 2 * N_MESH_POINTS + N_BLENDSHAPES


def face_descriptor(hog: np.ndarray, mesh: np.ndarray, blendshapes: np.ndarray) -> np.ndarray:
    """(n, DESCRIPTOR_DIMS) float32 of hog (n, HOG_DIMS), the normalised mesh (n, 478, 3+, face
    widths; only x and y are used) and the blendshape scores (n, 52, 0..1). NaN rows stay NaN."""
    n = len(hog)
    return np.hstack([np.asarray(hog, dtype=np.float32), np.asarray(mesh[:, :, :2], dtype=np.float32).reshape(n, 2 * N_MESH_POINTS),
                      np.asarray(blendshapes, dtype=np.float32)])  # fmt: skip

