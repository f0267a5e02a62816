"""Mirror images of face descriptors, for fitting face scores that read a mirrored face as the face.

``mirrored_descriptor`` turns the descriptor of a face (``aupipe.signal.appearance.face_descriptor``)
into that of its mirror image without the picture: the fit (``calibration_fit.fit_appearance``)
adds a mirror copy of every frame, whose reference codes are the same.
"""

from __future__ import annotations

import functools

import numpy as np

from aupipe.signal.appearance import FHOG_CELLS, FHOG_CHANNELS, FHOG_ORIENTATIONS, HOG_DIMS, N_MESH_POINTS
from aupipe.signal.landmarks import BLENDSHAPE_NAMES
from aupipe.signal.normalize import canonical_face

#: The mirror partners of MediaPipe's iris landmarks 468-477 (each eye: centre, then the ring).
_IRIS_PARTNERS = (473, 476, 475, 474, 477, 468, 471, 470, 469, 472)


@functools.lru_cache(maxsize=1)
def _mirror_orders() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each descriptor part's values come from in the mirror image: mesh points (478,)
    (each point's partner across the midline of the canonical face), blendshapes (52,) (Left and
    Right swapped) and FHOG channels (31,) (orientation theta -> 180 - theta; left and right
    normalising blocks swapped)."""
    vertices = canonical_face().vertices[:, :3]
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    partner = ((mirrored[:, None, :] - vertices[None, :, :]) ** 2).sum(axis=-1).argmin(axis=1)
    points = np.concatenate([partner, _IRIS_PARTNERS])
    names = list(BLENDSHAPE_NAMES)
    swapped = [n.replace("Left", "\0").replace("Right", "Left").replace("\0", "Right") for n in names]
    shapes = np.array([names.index(n) for n in swapped])
    half = FHOG_ORIENTATIONS // 2
    channels = np.array([*((half - o) % FHOG_ORIENTATIONS for o in range(FHOG_ORIENTATIONS)),
                         *(FHOG_ORIENTATIONS + (half - o) % half for o in range(half)),
                         *(FHOG_ORIENTATIONS + half + np.array([2, 3, 0, 1]))])  # fmt: skip
    return points, shapes, channels


def mirrored_descriptor(descriptor: np.ndarray) -> np.ndarray:
    """(n, DESCRIPTOR_DIMS) descriptor of the mirror image of the faces of descriptor (n,
    DESCRIPTOR_DIMS), without redoing the image: HOG cells flipped left-right with their
    orientations mirrored, mesh points swapped with their partners and x negated (the normalised
    mesh's midline is x = 0), blendshapes' sides swapped. Equal to the descriptor of a flipped
    picture up to gradients that fall exactly between two orientations."""
    points, shapes, channels = _mirror_orders()
    n, cells = len(descriptor), FHOG_CELLS
    values = np.asarray(descriptor, dtype=np.float32)
    hog = values[:, :HOG_DIMS].reshape(n, cells, cells, FHOG_CHANNELS)[:, :, ::-1][..., channels].reshape(n, HOG_DIMS)
    mesh = values[:, HOG_DIMS : HOG_DIMS + 2 * N_MESH_POINTS].reshape(n, N_MESH_POINTS, 2)[:, points]
    mesh = mesh * np.array([-1.0, 1.0], dtype=np.float32)
    return np.hstack([hog, mesh.reshape(n, 2 * N_MESH_POINTS), values[:, HOG_DIMS + 2 * N_MESH_POINTS :][:, shapes]])
