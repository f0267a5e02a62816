"""Normalisation: face-width scaling and removal of head rotation and translation.

The method (seed 002, Eq. 1) scales every face by its width, the distance between the left and
right cheek landmarks (MediaPipe 234 and 454). On top of that each frame's mesh is rigidly aligned
(Kabsch) to MediaPipe's canonical face on landmarks that facial muscles barely move: upper
forehead, nose bridge and tip, eye corners, temples and the face's sides at ear level. (MediaPipe's
own Procrustes basis also holds cheek and jaw points, which smiles and speech move: aligning on
them would turn a jaw drop into a head tilt.) The result is in the canonical frame (x towards the
person's left, y up, z out of the face), in units of face width, so AU measures compare across
people, camera distances and head poses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

#: Cheek landmarks whose distance is the face width (seed 002, Eq. 1).
RIGHT_CHEEK, LEFT_CHEEK = 234, 454


#: Landmarks that expressions barely move: upper forehead, nose bridge and tip, eye corners,
#: temples, face sides at ear level.
RIGID_LANDMARKS: tuple[int, ...] = (
    10, 109, 338, 67, 297, 151, 168, 6, 197, 195, 5, 4, 33, 263, 133, 362, 127, 356, 234, 454,
)  # fmt: skip


@dataclass(frozen=True)
class NormalizeSettings:
    """rigid_landmarks: the landmarks the rigid alignment fits (equal weights)."""

    rigid_landmarks: tuple[int, ...] = RIGID_LANDMARKS


@dataclass(frozen=True)
class CanonicalFace:
    """MediaPipe's canonical face: vertices (468, 3) in face widths; MediaPipe's own Procrustes
    basis ids and weights (kept for reference; aupipe aligns on ``RIGID_LANDMARKS``)."""

    vertices: np.ndarray
    basis_ids: np.ndarray
    basis_weights: np.ndarray


@lru_cache(maxsize=1)
def canonical_face() -> CanonicalFace:
    """The canonical mesh shipped in ``aupipe/models/canonical_face.npz``, scaled to face width 1."""
    with resources.files("aupipe").joinpath("models", "canonical_face.npz").open("rb") as handle:
        data = np.load(handle)
        vertices = data["vertices"].astype(np.float64)
        basis_ids = data["basis_ids"].astype(np.int64)
        basis_weights = data["basis_weights"].astype(np.float64)
    width = np.linalg.norm(vertices[LEFT_CHEEK] - vertices[RIGHT_CHEEK])
    return CanonicalFace(vertices / width, basis_ids, basis_weights)


def face_width(landmarks_px: np.ndarray) -> np.ndarray:
    """Cheek-to-cheek distance (n,) in pixels of (n, 478, 3) landmarks; NaN where no face."""
    return np.linalg.norm(landmarks_px[:, LEFT_CHEEK] - landmarks_px[:, RIGHT_CHEEK], axis=-1)


def head_pose_deg(transform: np.ndarray) -> np.ndarray:
    """Pitch, yaw, roll (n, 3) in degrees from (n, 4, 4) facial transformation matrices.

    Rotation R = Rz(roll) @ Ry(yaw) @ Rx(pitch) about the camera axes (x right, y up,
    z towards the viewer), as MediaPipe's matrix defines them: pitch > 0 = head tilted down
    (forehead towards the camera), yaw > 0 = face turned towards the image's right (the
    person's left), roll > 0 = head tilted anticlockwise in the image.
    """
    rotation = transform[:, :3, :3].astype(np.float64)
    pitch = np.arctan2(rotation[:, 2, 1], rotation[:, 2, 2])
    yaw = np.arctan2(-rotation[:, 2, 0], np.hypot(rotation[:, 2, 1], rotation[:, 2, 2]))
    roll = np.arctan2(rotation[:, 1, 0], rotation[:, 0, 0])
    return np.degrees(np.stack([pitch, yaw, roll], axis=1))


def normalize_mesh(landmarks_px: np.ndarray, settings: NormalizeSettings = NormalizeSettings()) -> np.ndarray:
    """Align (n, 478, 3) pixel landmarks to the canonical face; returns (n, 478, 3) in face widths.

    Image axes (x right, y down, z away from the camera) become canonical ones (x right in the
    image = the person's left, y up, z towards the camera). Per frame: subtract the centroid
    of the rigid landmarks, divide by the face width, rotate by the Kabsch rotation onto the
    canonical face's rigid landmarks, and move to their canonical centroid.
    Frames without a face (NaN) stay NaN.
    """
    canon = canonical_face()
    out = np.full(landmarks_px.shape, np.nan, dtype=np.float32)
    valid = np.isfinite(landmarks_px).all(axis=(1, 2))
    if not valid.any():
        return out
    points = landmarks_px[valid].astype(np.float64) * np.array([1.0, -1.0, -1.0])
    points /= face_width(landmarks_px[valid]).astype(np.float64)[:, None, None]
    ids = np.asarray(settings.rigid_landmarks, dtype=np.int64)
    weights = np.full(len(ids), 1.0 / len(ids))
    target = canon.vertices[ids]
    target_centre = weights @ target
    source = points[:, ids]
    source_centre = np.einsum("k,nkd->nd", weights, source)
    cross = np.einsum("k,nki,kj->nij", weights, source - source_centre[:, None], target - target_centre)
    u, _, vt = np.linalg.svd(cross)
    det = np.sign(np.linalg.det(np.einsum("nij,njk->nik", u, vt)))
    correction = np.ones((len(det), 3))
    correction[:, 2] = det
    rotation = np.einsum("nij,nj,njk->nik", u, correction, vt)  # maps source onto target: x @ R
    aligned = np.einsum("npi,nij->npj", points - source_centre[:, None], rotation) + target_centre
    out[valid] = aligned
    return out
