"""Several faces, each seen as if it were alone: one one-face FaceLandmarker per face.

MediaPipe's own ``num_faces`` N re-runs its face detector on every frame with fewer than N faces
tracked and re-crops the tracked faces from the detections, which moves their blendshapes
(by about 0.2 on the 0-1 scale here, so the AUs of a face next to an empty seat differ from the
same face's in a one-face run). Here instead each face gets its own *slot*: a FaceLandmarker
with ``num_faces`` 1 in VIDEO mode that follows it exactly as a one-face run would, fed the
frame with the other slots' faces blacked out. The bundled model's own face detector
(``face_detector.tflite`` inside ``face_landmarker.task``) looks for faces no slot follows, only
while fewer than N slots are open (every ``search_every``-th frame while some are; 1, the
default: every frame — searching less often is cheaper, but a returning face is picked up
later than a one-face run would, and its first frames then differ from that run's). A slot whose face is not found for ``lost_frames`` frames is
closed; a slot that finds a face another slot already follows is closed as well.

``MaskedLandmarkers.detect_for_video`` answers like ``FaceLandmarker.detect_for_video`` (lists
``face_landmarks``, ``face_blendshapes``, ``facial_transformation_matrixes``) plus
``face_slots``: each face's slot number, stable while the slot lives (``LandmarkBatch.face_slot``).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["MaskedLandmarkers", "MultiFaceResult"]


@dataclass
class MultiFaceResult:
    """One frame's faces, in slot order (the fields of MediaPipe's FaceLandmarkerResult)."""

    face_landmarks: list[Any] = field(default_factory=list)
    face_blendshapes: list[Any] = field(default_factory=list)
    facial_transformation_matrixes: list[Any] = field(default_factory=list)
    face_slots: list[int] = field(default_factory=list)


@dataclass
class _Slot:
    number: int
    landmarker: Any
    box_px: np.ndarray | None = None  # x0, y0, x1, y1 of its face last frame
    misses: int = 0


def _box(points: Any, width: int, height: int) -> np.ndarray:
    xy = np.array([(p.x * width, p.y * height) for p in points], dtype=np.float64)
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return float(inter / union) if union > 0 else 0.0


def _grow(box: np.ndarray, factor: float) -> np.ndarray:
    centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2 * factor
    return np.concatenate([centre - half, centre + half])


class MaskedLandmarkers:
    """Up to ``max_faces`` slots (module doc). ``mp``: the imported mediapipe module;
    ``make_landmarker()`` opens one one-face FaceLandmarker (VIDEO mode); ``model`` is the
    bundled ``.task`` (its face detector is used)."""

    def __init__(
        self, mp: Any, make_landmarker: Any, model: bytes, max_faces: int, min_detection_confidence: float = 0.5,
        lost_frames: int = 15, mask_scale: float = 1.4, search_every: int = 1,
    ) -> None:  # fmt: skip
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        detector_model = zipfile.ZipFile(io.BytesIO(model)).read("face_detector.tflite")
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=detector_model), running_mode=vision.RunningMode.VIDEO,
            min_detection_confidence=min_detection_confidence,
        )  # fmt: skip
        self._detector = vision.FaceDetector.create_from_options(options)
        self._make = make_landmarker
        self._max = max_faces
        self._lost = lost_frames
        self._mask_scale = mask_scale
        self._slots: list[_Slot] = []
        self._next = 0
        self._search_every = search_every
        self._calls = 0

    def close(self) -> None:
        """Close every slot's landmarker and the detector."""
        for slot in self._slots:
            slot.landmarker.close()
        self._slots = []
        self._detector.close()

    def __enter__(self) -> MaskedLandmarkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _masked(self, rgb: np.ndarray, keep: _Slot) -> np.ndarray:
        """``rgb`` with every other slot's face (its box grown by ``mask_scale``) black."""
        others = [s.box_px for s in self._slots if s is not keep and s.box_px is not None]
        if not others:
            return rgb
        out = rgb.copy()
        height, width = rgb.shape[:2]
        for box in others:
            x0, y0, x1, y1 = np.round(_grow(box, self._mask_scale)).astype(int)
            out[max(y0, 0) : max(min(y1, height), 0), max(x0, 0) : max(min(x1, width), 0)] = 0
        return out

    def _open_new(self, mp: Any, rgb: np.ndarray, timestamp_ms: int) -> None:
        """Open a slot for each face the detector finds that no slot follows (up to ``max_faces``)."""
        self._calls += 1
        if len(self._slots) >= self._max or (self._slots and self._calls % self._search_every):
            return  # all slots busy, or some open and this is not a search frame
        height, width = rgb.shape[:2]
        found = self._detector.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb), timestamp_ms)
        for detection in found.detections:
            b = detection.bounding_box
            box = np.array([b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height], dtype=np.float64)
            followed = [s.box_px for s in self._slots if s.box_px is not None]
            if any(_iou(box, other) > 0.2 for other in followed) or len(self._slots) >= self._max:
                continue
            if not (0 <= (box[0] + box[2]) / 2 < width and 0 <= (box[1] + box[3]) / 2 < height):
                continue
            self._slots.append(_Slot(self._next, self._make(), box_px=box, misses=-1))  # -1: not run yet
            self._next += 1

    def detect_for_video(self, image: Any, timestamp_ms: int) -> MultiFaceResult:
        """The faces of one frame (``mediapipe.Image``, SRGB), one per open slot that found its face."""
        mp = self._mp
        rgb = image.numpy_view()
        height, width = rgb.shape[:2]
        self._open_new(mp, rgb, timestamp_ms)
        result = MultiFaceResult()
        boxes: dict[int, np.ndarray] = {}
        for slot in self._slots:
            view = self._masked(rgb, slot)
            answer = slot.landmarker.detect_for_video(
                mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(view)), timestamp_ms
            )  # fmt: skip
            if not answer.face_landmarks:
                slot.misses = max(slot.misses, 0) + 1
                continue
            box = _box(answer.face_landmarks[0], width, height)
            if any(_iou(box, other) > 0.5 for other in boxes.values()):
                slot.misses = self._lost + 1  # it found a face another slot follows: close it
                continue
            slot.box_px, slot.misses = box, 0
            boxes[slot.number] = box
            result.face_landmarks.append(answer.face_landmarks[0])
            result.face_blendshapes.append(answer.face_blendshapes[0] if answer.face_blendshapes else [])
            matrices = answer.facial_transformation_matrixes
            result.facial_transformation_matrixes.append(matrices[0] if matrices else np.full((4, 4), np.nan))
            result.face_slots.append(slot.number)
        for slot in [s for s in self._slots if s.misses > self._lost]:
            slot.landmarker.close()
            self._slots.remove(slot)
        for slot in self._slots:
            if slot.misses > 0:
                slot.box_px = None  # a lost face masks nothing
        return result
