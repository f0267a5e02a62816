"""Landmarks: the bundled face_landmarker.task's networks on a stream of frames, run by aupipe
(the ``direct`` backend, the default; ``aupipe.signal.direct``) or by MediaPipe Tasks'
FaceLandmarker in VIDEO mode (``backend="mediapipe"``); docs/backends.md.

Per frame: 478 landmarks (x, y, z in pixels; z on the x scale, negative towards the camera),
52 blendshape scores (0..1), the 4x4 facial transformation matrix (canonical face -> camera),
the face box (px) and whether a face was found. Frames without a face hold NaN.
The model is bundled in the package and its sha256 is checked before use.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from types import ModuleType

import numpy as np

from aupipe.signal.native import quiet_native_stderr
from aupipe.errors import AupipeError
from aupipe.signal.video import Frame

MODEL_FILE = "face_landmarker.task"
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
N_LANDMARKS = 478

#: MediaPipe's 52 blendshape names, in the order the model returns them.
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)  # fmt: skip


@dataclass(frozen=True)
class LandmarkSettings:
    """Landmark-stage options; confidences in 0..1. ``model_path`` None = the bundled model.

    ``backend``: "direct" (the bundled networks run by aupipe, ``aupipe.signal.direct``) or
    "mediapipe" (MediaPipe Tasks' FaceLandmarker). With "direct": ``runtime`` "litert" (default)
    or "onnx", ``device`` "cpu" or "cuda" (onnx only), ``threads`` per network (1: one core per
    process, as the parallel workers expect)."""

    num_faces: int = 1
    min_face_detection_confidence: float = 0.5
    min_face_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    model_path: str | None = None
    backend: str = "direct"
    runtime: str = "litert"
    device: str = "cpu"
    threads: int = 1

    def __post_init__(self) -> None:
        from aupipe.errors import SettingsError

        if self.backend not in ("direct", "mediapipe"):
            raise SettingsError(f"unknown landmark backend {self.backend!r}; use direct or mediapipe")
        if self.runtime not in ("litert", "onnx") or self.device not in ("cpu", "cuda"):
            raise SettingsError(f"unknown runtime {self.runtime!r} or device {self.device!r}; use litert/onnx, cpu/cuda")
        if self.backend == "mediapipe" and (self.runtime, self.device) != ("litert", "cpu"):
            raise SettingsError("runtime and device are for the direct backend")
        if self.device == "cuda" and self.runtime != "onnx":
            raise SettingsError("device cuda needs runtime onnx")
        if self.runtime == "onnx" and self.model_path is not None:
            raise SettingsError("runtime onnx runs the shipped conversions of the bundled model; a model_path needs runtime litert")
        if self.threads < 1:
            raise SettingsError(f"threads must be >= 1, got {self.threads}")


@dataclass(frozen=True)
class LandmarkBatch:
    """Landmarks of n consecutive frames (arrays share the first axis).

    frame (n,) int; time_ms (n,) float; face_found (n,) bool;
    landmarks_px (n, 478, 3) float32; blendshapes (n, 52) float32;
    transform (n, 4, 4) float32; face_box_px (n, 4) float32 as x, y, width, height;
    appearance (n, len(appearance.NAMES)) float32 region textures (None: not measured);
    hog (n, appearance.HOG_DIMS) float32 the face's HOG (``appearance.face_hog``; None: not measured).

    One row per face found in a frame, in slot order (``face_slot`` (n,) int: 0, 1, ...),
    and one row with ``face_found`` False for a frame without a face; with ``num_faces`` 1 that
    is one row per frame. ``shot_change`` (n,) float32: how much the frame's colours differ from
    the previous frame's (``shot_change_score``, 0 = same, 1 = nothing in common; None: not
    measured); a frame's rows share it.
    """

    frame: np.ndarray
    time_ms: np.ndarray
    face_found: np.ndarray
    landmarks_px: np.ndarray
    blendshapes: np.ndarray
    transform: np.ndarray
    face_box_px: np.ndarray
    appearance: np.ndarray | None = None
    hog: np.ndarray | None = None
    face_slot: np.ndarray | None = None
    shot_change: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.frame)


def empty_batch() -> LandmarkBatch:
    """A batch of no frames (every array with a first axis of 0)."""
    return LandmarkBatch(
        frame=np.zeros(0, np.int64), time_ms=np.zeros(0), face_found=np.zeros(0, bool),
        landmarks_px=np.zeros((0, N_LANDMARKS, 3), np.float32),
        blendshapes=np.zeros((0, len(BLENDSHAPE_NAMES)), np.float32),
        transform=np.zeros((0, 4, 4), np.float32), face_box_px=np.zeros((0, 4), np.float32),
    )  # fmt: skip


def model_bytes(settings: LandmarkSettings = LandmarkSettings()) -> bytes:
    """The landmarker model; the bundled one must match its published sha256."""
    if settings.model_path is not None:
        try:
            with open(settings.model_path, "rb") as handle:
                return handle.read()
        except OSError as err:
            raise AupipeError(f"{settings.model_path}: cannot read the landmark model ({err.strerror})") from None
    data = resources.files("aupipe").joinpath("models", MODEL_FILE).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise AupipeError(
            f"bundled {MODEL_FILE} has sha256 {digest[:12]}..., expected {MODEL_SHA256[:12]}...; reinstall aupipe"
        )
    return data


def import_mediapipe() -> ModuleType:
    """Import mediapipe without letting it load TensorFlow.

    mediapipe's tasks package tries ``from tensorflow.tools.docs import doc_controls`` (for
    its API docs only) and falls back when TensorFlow is absent; where TensorFlow is
    installed (the training extra) that import alone costs seconds and ~800 MB. Holding
    ``sys.modules["tensorflow"] = None`` during the import makes mediapipe take its fallback.
    """
    if "mediapipe" in sys.modules or "tensorflow" in sys.modules:
        import mediapipe

        return mediapipe
    sys.modules["tensorflow"] = None  # type: ignore[assignment]
    try:
        import mediapipe
    finally:
        if "tensorflow" in sys.modules and sys.modules["tensorflow"] is None:
            del sys.modules["tensorflow"]
    return mediapipe


@contextlib.contextmanager
def open_landmarker(settings: LandmarkSettings = LandmarkSettings()) -> Iterator[object]:
    """The landmark stage's landmarker, closed on exit; native log lines are silenced.

    ``backend`` "direct": a ``direct.DirectLandmarker`` (MediaPipe is not imported). "mediapipe":
    a MediaPipe FaceLandmarker in VIDEO mode; with ``num_faces`` > 1 ``multiface.MaskedLandmarkers``,
    one one-face FaceLandmarker per face (each face's landmarks as in a one-face run)."""
    if settings.backend == "direct":
        from aupipe.signal.direct import DirectLandmarker

        with quiet_native_stderr():
            direct = DirectLandmarker(
                model_bytes(settings), settings.num_faces, settings.min_face_detection_confidence,
                settings.min_face_presence_confidence, settings.runtime, settings.threads, settings.device,
            )  # fmt: skip
        with direct:
            yield direct
        return
    with quiet_native_stderr():
        mp = import_mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        model = model_bytes(settings)

        def one_face() -> object:
            options = vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_buffer=model),
                running_mode=vision.RunningMode.VIDEO,
                num_faces=1,
                min_face_detection_confidence=settings.min_face_detection_confidence,
                min_face_presence_confidence=settings.min_face_presence_confidence,
                min_tracking_confidence=settings.min_tracking_confidence,
                output_face_blendshapes=True,
                output_facial_transformation_matrixes=True,
            )
            return vision.FaceLandmarker.create_from_options(options)

        if settings.num_faces > 1:
            from aupipe.signal.multiface import MaskedLandmarkers

            with MaskedLandmarkers(
                mp, one_face, model, settings.num_faces, settings.min_face_detection_confidence
            ) as landmarkers:  # fmt: skip
                yield landmarkers
            return
        with one_face() as landmarker:  # type: ignore[attr-defined]
            yield landmarker


def frame_histogram(rgb: np.ndarray) -> np.ndarray:
    """Colour signature of a frame for shot-change detection: a hue x saturation histogram
    (16 x 8 bins) of the frame shrunk to 64 px wide, float32 summing to 1."""
    import cv2

    height, width = rgb.shape[:2]
    small = cv2.resize(rgb, (64, max(1, round(64 * height / max(width, 1)))), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]).ravel().astype(np.float32)
    return hist / max(float(hist.sum()), 1.0)


def shot_change_score(previous: np.ndarray | None, current: np.ndarray) -> float:
    """Bhattacharyya distance (0..1) between two ``frame_histogram``s; 0 without a previous one.
    Consecutive frames of one shot score about 0.05-0.15, a cut 0.4 and more."""
    if previous is None:
        return 0.0
    overlap = float(np.sqrt(previous * current).sum())
    return float(np.sqrt(max(0.0, 1.0 - min(overlap, 1.0))))


def detect(
    landmarker: object, frames: Iterable[Frame], last_timestamp_ms: int = -1,
    previous_histogram: np.ndarray | None = None, shot_changes: bool = False, hog: bool = True,
) -> LandmarkBatch:  # fmt: skip
    """Run the landmarker on ``frames`` (in time order) and stack the results (one row per face
    found, one empty row for a frame without a face; see ``LandmarkBatch``).

    ``last_timestamp_ms`` is the integer timestamp given for the previous frame; MediaPipe
    needs strictly increasing ones, so equal milliseconds are nudged forward by 1. With
    ``shot_changes`` each frame's ``shot_change`` score is measured against the frame before
    (``previous_histogram``: the histogram of the frame before the first one). ``hog``: measure
    each face's HOG (``appearance.face_hog``, ~0.5 ms a face); off, ``LandmarkBatch.hog`` is None
    (nothing reads it without a calibration's face scores: ``--au-calibration hand``).
    """
    from aupipe.signal.appearance import NAMES as APPEARANCE_NAMES
    from aupipe.signal.appearance import HOG_DIMS, face_hog, region_texture
    from aupipe.signal.normalize import face_width

    direct = hasattr(landmarker, "detect_rgb")
    mp = None if direct else import_mediapipe()
    frame_list = list(frames)
    n_appearance = len(APPEARANCE_NAMES)
    index: list[int] = []  # the frame (position in frame_list) of each row
    slots: list[int] = []
    points_rows: list[np.ndarray | None] = []
    blend_rows: list[np.ndarray | None] = []
    transform_rows: list[np.ndarray | None] = []
    texture_rows: list[np.ndarray | None] = []
    hog_rows: list[np.ndarray | None] = []
    frame_scores: list[float] = []
    histogram = previous_histogram
    timestamp = last_timestamp_ms
    for position, frame in enumerate(frame_list):
        timestamp = max(int(round(frame.time_ms)), timestamp + 1)
        if shot_changes:
            current = frame_histogram(frame.rgb)
            frame_scores.append(shot_change_score(histogram, current))
            histogram = current
        faces = face_rows(landmarker, mp, frame.rgb, timestamp) if mp is not None else [
            (f.slot, f.points_px, f.blendshapes, None) for f in landmarker.detect_rgb(frame.rgb, timestamp, pose=False)  # type: ignore[attr-defined]
        ]  # fmt: skip
        if not faces:
            index.append(position)
            slots.append(0)
            points_rows.append(None)
            blend_rows.append(None)
            transform_rows.append(None)
            continue
        for slot, points, shapes, matrix in faces:
            index.append(position)
            slots.append(slot)
            points_rows.append(points)
            blend_rows.append(shapes)
            transform_rows.append(matrix)
    n = len(index)
    rows = np.asarray(index, dtype=np.int64)
    # Appearance after the networks have seen the whole chunk: one pass over the faces keeps the
    # crops and tables in cache (interleaved with the networks, the HOG took twice as long).
    for position, points in zip(index, points_rows, strict=True):
        rgb = frame_list[position].rgb
        found_here = points is not None
        texture_rows.append(region_texture(rgb, points, float(face_width(points[None])[0])) if found_here else None)
        hog_rows.append(face_hog(rgb, points) if hog and found_here else None)

    def stack(values: list[np.ndarray | None], shape: tuple[int, ...]) -> np.ndarray:
        out = np.full((n, *shape), np.nan, dtype=np.float32)
        for row, value in enumerate(values):
            if value is not None:
                out[row] = value
        return out

    landmarks = stack(points_rows, (N_LANDMARKS, 3))
    found = np.array([p is not None for p in points_rows], dtype=bool)
    face_box = np.full((n, 4), np.nan, dtype=np.float32)
    if found.any():
        lo = landmarks[found, :, :2].min(axis=1)
        hi = landmarks[found, :, :2].max(axis=1)
        face_box[found] = np.concatenate([lo, hi - lo], axis=1)
    transform = stack(transform_rows, (4, 4))
    if direct and found.any():  # the head pose of every face of the chunk at once (per image size)
        from aupipe.signal.direct import face_geometry

        sizes = np.array([frame_list[i].rgb.shape[:2] for i in index])
        for height, width in {tuple(size) for size in sizes[found]}:
            same = found & (sizes[:, 0] == height) & (sizes[:, 1] == width)
            transform[same] = face_geometry(landmarks[same], int(width), int(height))
    frame_index = np.array([f.index for f in frame_list], dtype=np.int64)
    frame_time = np.array([f.time_ms for f in frame_list], dtype=np.float64)
    return LandmarkBatch(
        frame=frame_index[rows],
        time_ms=frame_time[rows],
        face_found=found,
        landmarks_px=landmarks,
        blendshapes=stack(blend_rows, (len(BLENDSHAPE_NAMES),)),
        transform=transform,
        face_box_px=face_box,
        appearance=stack(texture_rows, (n_appearance,)),
        hog=stack(hog_rows, (HOG_DIMS,)) if hog else None,
        face_slot=np.asarray(slots, dtype=np.int64),
        shot_change=np.asarray(frame_scores, dtype=np.float32)[rows] if shot_changes else None,
    )


def face_rows(
    landmarker: object, mp: ModuleType, rgb: np.ndarray, timestamp_ms: int
) -> list[tuple[int, np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """One frame through a MediaPipe FaceLandmarker (or ``MaskedLandmarkers``): per face (slot,
    points (478, 3) px, blendshapes (52,) or None, transform (4, 4) or None)."""
    height, width = rgb.shape[:2]
    image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
    result = landmarker.detect_for_video(image, timestamp_ms)  # type: ignore[attr-defined]
    faces = result.face_landmarks or []
    slot_numbers = getattr(result, "face_slots", None) or range(len(faces))
    rows = []
    for k, (slot, face) in enumerate(zip(slot_numbers, faces, strict=True)):
        points = np.array([(p.x * width, p.y * height, p.z * width) for p in face], dtype=np.float32)
        shapes = result.face_blendshapes
        blend = np.array([c.score for c in shapes[k]], np.float32) if len(shapes) > k and len(shapes[k]) else None
        matrices = result.facial_transformation_matrixes
        rows.append((slot, points, blend, np.asarray(matrices[k], np.float32) if len(matrices) > k else None))
    return rows


def detect_batches(
    landmarker: object, frames: Iterable[Frame], chunk_frames: int, shot_changes: bool = False, hog: bool = True
) -> Iterator[tuple[list[Frame], LandmarkBatch]]:
    """The landmark stage over a stream of frames: ``detect`` on consecutive chunks of
    ``chunk_frames`` frames, carrying MediaPipe's increasing timestamps (and, with
    ``shot_changes``, the last frame's histogram) from chunk to chunk. Yields (the chunk's
    frames, its LandmarkBatch); used by every frame source (one process, the parallel workers,
    synthetic footage). ``hog`` as for ``detect``."""
    from aupipe.signal.video import batched

    timestamp = -1
    histogram: np.ndarray | None = None
    for chunk in batched(iter(frames), chunk_frames):
        batch = detect(landmarker, chunk, timestamp, histogram, shot_changes, hog)
        timestamp = max(int(round(chunk[-1].time_ms)), timestamp + len(chunk))
        if shot_changes:
            histogram = frame_histogram(chunk[-1].rgb)
        yield chunk, batch
