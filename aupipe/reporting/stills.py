"""Face stills for the report: frames read by seeking (never the whole video again), cropped to the
face box, with the regions of an event's AUs marked, and a difference image of the apex against
the onset. Images are small JPEGs inlined as ``data:`` URIs (the page loads nothing).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aupipe.errors import InputError
from aupipe.reporting.tables import REGION_LANDMARKS
from aupipe.signal import facs, video
from aupipe.signal.normalize import canonical_face

__all__ = ["AU_REGIONS", "Crop", "StillSettings", "crop_of", "data_uri", "difference", "mark_regions", "read_frames",
           "region_points", "still"]  # fmt: skip

_LIPS = (facs.UPPER_LIP_OUTER, facs.UPPER_LIP_INNER, facs.LOWER_LIP_INNER, facs.LOWER_LIP_OUTER)
#: AU -> landmark groups whose area the AU moves (one group per side for sided sets), from the
#: geometric measures' landmark sets (``aupipe.signal.facs``).
AU_REGIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "AU01": facs.BROW_INNER, "AU02": facs.BROW_OUTER, "AU04": facs.BROW_ALL, "AU05": facs.UPPER_LID,
    "AU06": facs.CHEEK, "AU07": facs.LOWER_LID, "AU09": facs.NOSE_WING, "AU10": facs.UPPER_LIP_SIDE,
    "AU12": facs.LIP_CORNER, "AU14": facs.LIP_CORNER, "AU15": facs.LIP_CORNER, "AU20": facs.LIP_CORNER,
    "AU17": (facs.CHIN_BOSS,), "AU23": (_LIPS,), "AU24": (_LIPS,), "AU28": (_LIPS,),
    "AU25": ((facs.UPPER_LIP_INNER, facs.LOWER_LIP_INNER),), "AU26": (facs.JAW,),
    "AU43": (facs.UPPER_LID[0] + facs.LOWER_LID[0], facs.UPPER_LID[1] + facs.LOWER_LID[1]),
}  # fmt: skip
# One colour per region family (RGB): brows, lids, cheeks and nose, mouth, chin and jaw.
_FAMILY = {"AU01": 0, "AU02": 0, "AU04": 0, "AU05": 1, "AU07": 1, "AU43": 1, "AU06": 2, "AU09": 2, "AU10": 3,
           "AU12": 3, "AU14": 3, "AU15": 3, "AU20": 3, "AU23": 3, "AU24": 3, "AU25": 3, "AU28": 3, "AU17": 4,
           "AU26": 4}  # fmt: skip
_COLOURS = ((255, 214, 0), (0, 229, 255), (255, 99, 255), (98, 255, 98), (255, 150, 40))


@dataclass(frozen=True)
class StillSettings:
    """size_px: side of a square still (px); quality: JPEG quality 1-100; margin: the crop's margin
    around the face box, as a share of the box; gain: contrast of the difference image (x grey levels)."""

    size_px: int = 128
    quality: int = 80
    margin: float = 0.18
    gain: float = 4.0


@dataclass(frozen=True)
class Crop:
    """A square in image pixels: left, top, side (px); the whole frame when no face box is known."""

    x: int
    y: int
    side: int


def read_frames(path: str | Path, indices: Iterable[int], settings: video.VideoSettings | None = None,
                run_gap: int = 45) -> dict[int, np.ndarray]:  # fmt: skip
    """The RGB frames ``indices`` of ``path``, read by seeking: frames closer than ``run_gap`` are
    decoded in one run from the first of them, anything further starts a new seek. A frame the
    video does not have is left out."""
    wanted = sorted({int(i) for i in indices if int(i) >= 0})
    runs: list[list[int]] = []
    for index in wanted:
        if runs and index - runs[-1][-1] <= run_gap:
            runs[-1].append(index)
        else:
            runs.append([index])
    found: dict[int, np.ndarray] = {}
    for run in runs:
        keep = set(run)
        try:
            for frame in video.iter_frames(path, settings or video.VideoSettings(), start=run[0], stop=run[-1] + 1):
                if frame.index in keep:
                    found[frame.index] = frame.rgb
        except InputError:
            continue  # past the end of this video: no still
    return found


def _row(frames: pd.DataFrame | None, index: int) -> pd.Series | None:
    """The frame-table row of frame ``index`` with a face, or the nearest one within 15 frames."""
    if frames is None or not len(frames) or "box_x_px" not in frames:
        return None
    numbers = frames["frame"].to_numpy()
    face = frames["face_found"].to_numpy(dtype=bool) & np.isfinite(frames["box_w_px"].to_numpy(dtype=float))
    if not face.any():
        return None
    distance = np.where(face, np.abs(numbers - index), np.iinfo(np.int64).max)
    best = int(np.argmin(distance))
    return frames.iloc[best] if distance[best] <= 15 else None


def crop_of(frames: pd.DataFrame | None, indices: Sequence[int], shape: tuple[int, ...], margin: float) -> Crop:
    """One square around the face boxes of frames ``indices`` (their union, plus ``margin``), inside
    an image of ``shape``; the whole (centred, square) frame when no box is known."""
    height, width = shape[:2]
    boxes = [r for r in (_row(frames, i) for i in indices) if r is not None]
    if not boxes:
        side = min(height, width)
        return Crop((width - side) // 2, (height - side) // 2, side)
    left = min(float(r["box_x_px"]) for r in boxes)
    top = min(float(r["box_y_px"]) for r in boxes)
    right = max(float(r["box_x_px"] + r["box_w_px"]) for r in boxes)
    bottom = max(float(r["box_y_px"] + r["box_h_px"]) for r in boxes)
    side = max(right - left, bottom - top) * (1.0 + 2.0 * margin)
    side = int(round(min(side, height, width)))
    x = int(round((left + right - side) / 2.0))
    y = int(round((top + bottom - side) / 2.0))
    return Crop(min(max(x, 0), width - side), min(max(y, 0), height - side), max(side, 1))


def still(rgb: np.ndarray, crop: Crop, size_px: int) -> np.ndarray:
    """The ``crop`` of ``rgb``, resized to ``size_px`` square (RGB uint8)."""
    import cv2

    patch = rgb[crop.y : crop.y + crop.side, crop.x : crop.x + crop.side]
    interpolation = cv2.INTER_AREA if crop.side > size_px else cv2.INTER_LINEAR
    return cv2.resize(patch, (size_px, size_px), interpolation=interpolation)


def region_points(frames: pd.DataFrame | None, index: int) -> dict[int, tuple[float, float]]:
    """Image positions (px) of the region landmarks at frame ``index``: the frame table's own
    landmarks when it has them, else the canonical face fitted to the frame's face box (exact for
    a frontal face, approximate when the head is turned). Empty without a face box."""
    row = _row(frames, index)
    if row is None:
        return {}
    if f"x_{REGION_LANDMARKS[0]}" in row.index:
        points = {i: (float(row[f"x_{i}"]), float(row[f"y_{i}"])) for i in REGION_LANDMARKS}
        if all(np.isfinite(p).all() for p in points.values()):
            return points
    mesh = canonical_face().vertices
    low, high = mesh[:, :2].min(axis=0), mesh[:, :2].max(axis=0)
    x0, y0, w, h = (float(row[c]) for c in ("box_x_px", "box_y_px", "box_w_px", "box_h_px"))
    return {
        i: (x0 + (mesh[i, 0] - low[0]) / (high[0] - low[0]) * w, y0 + (high[1] - mesh[i, 1]) / (high[1] - low[1]) * h)
        for i in REGION_LANDMARKS
    }


def mark_regions(
    image: np.ndarray, points: dict[int, tuple[float, float]], aus: Sequence[str], crop: Crop
) -> np.ndarray:
    """``image`` (a still of ``crop``) with a ring around the area each AU of ``aus`` moves and its
    number beside it; ``points``: landmark image positions (``region_points``)."""
    import cv2

    if not points:
        return image
    out = image.copy()
    scale = out.shape[0] / crop.side
    min_radius = 0.05 * out.shape[0]
    label_at: list[tuple[int, int]] = []
    for au in aus:
        colour = _COLOURS[_FAMILY.get(au, 3)]
        for group in AU_REGIONS.get(au, ()):
            xy = np.array([points[i] for i in group if i in points], dtype=float)
            if not len(xy):
                continue
            xy = (xy - (crop.x, crop.y)) * scale
            centre = xy.mean(axis=0)
            radius = max(float(np.max(np.linalg.norm(xy - centre, axis=1))) + 3.0, min_radius)
            cv2.circle(out, (int(round(centre[0])), int(round(centre[1]))), int(round(radius)), colour, 1, cv2.LINE_AA)
            spot = (int(round(centre[0] + radius * 0.7)), int(round(centre[1] - radius * 0.7)))
            if all(abs(spot[0] - a) + abs(spot[1] - b) > 12 for a, b in label_at):
                label_at.append(spot)
                cv2.putText(out, au[2:].lstrip("0"), spot, cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 2, cv2.LINE_AA)
                cv2.putText(out, au[2:].lstrip("0"), spot, cv2.FONT_HERSHEY_SIMPLEX, 0.33, colour, 1, cv2.LINE_AA)
    return out


def difference(onset: np.ndarray, apex: np.ndarray, gain: float) -> np.ndarray:
    """Where the face changed from ``onset`` to ``apex`` (stills of one crop): the apex in grey with
    the absolute grey-level change, times ``gain``, in red over it."""
    import cv2

    grey_onset = cv2.GaussianBlur(cv2.cvtColor(onset, cv2.COLOR_RGB2GRAY).astype(np.float32), (3, 3), 0)
    grey_apex = cv2.cvtColor(apex, cv2.COLOR_RGB2GRAY).astype(np.float32)
    change = np.clip(np.abs(cv2.GaussianBlur(grey_apex, (3, 3), 0) - grey_onset) * gain, 0, 255) / 255.0
    base = 0.55 * grey_apex[..., None] * np.ones(3, np.float32)
    red = np.array([255.0, 40.0, 40.0], np.float32)
    return np.clip(base * (1 - change[..., None]) + red * change[..., None], 0, 255).astype(np.uint8)


def data_uri(rgb: np.ndarray, quality: int) -> str:
    """``rgb`` as a JPEG ``data:`` URI (deterministic for the same pixels)."""
    import cv2

    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise InputError("could not encode a still as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")
