"""Landmarks: MediaPipe Tasks FaceLandmarker (VIDEO mode) on a stream of frames.

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
    """FaceLandmarker options; confidences in 0..1. ``model_path`` None = the bundled model."""

    num_faces: int = 1
    min_face_detection_confidence: float = 0.5
    min_face_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    model_path: str | None = None


@dataclass(frozen=True)
class LandmarkBatch:
    """Landmarks of n consecutive frames (arrays share the first axis).

    frame (n,) int; time_ms (n,) float; face_found (n,) bool;
    landmarks_px (n, 478, 3) float32; blendshapes (n, 52) float32;
    transform (n, 4, 4) float32; face_box_px (n, 4) float32 as x, y, width, height;
    appearance (n, len(appearance.NAMES)) float32 region textures (None: not measured).
    """

    frame: np.ndarray
    time_ms: np.ndarray
    face_found: np.ndarray
    landmarks_px: np.ndarray
    blendshapes: np.ndarray
    transform: np.ndarray
    face_box_px: np.ndarray
    appearance: np.ndarray | None = None

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
    """A MediaPipe FaceLandmarker in VIDEO mode, closed on exit; native log lines are silenced."""
    with quiet_native_stderr():
        import_mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=model_bytes(settings)),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=settings.num_faces,
            min_face_detection_confidence=settings.min_face_detection_confidence,
            min_face_presence_confidence=settings.min_face_presence_confidence,
            min_tracking_confidence=settings.min_tracking_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        with vision.FaceLandmarker.create_from_options(options) as landmarker:
            yield landmarker


def detect(landmarker: object, frames: Iterable[Frame], last_timestamp_ms: int = -1) -> LandmarkBatch:
    """Run the landmarker on ``frames`` (in time order) and stack the results.

    ``last_timestamp_ms`` is the integer timestamp given for the previous frame; MediaPipe
    needs strictly increasing ones, so equal milliseconds are nudged forward by 1.
    """
    from aupipe.signal.appearance import NAMES as APPEARANCE_NAMES
    from aupipe.signal.appearance import region_texture
    from aupipe.signal.normalize import face_width

    mp = import_mediapipe()
    frame_list = list(frames)
    n = len(frame_list)
    landmarks = np.full((n, N_LANDMARKS, 3), np.nan, dtype=np.float32)
    blendshapes = np.full((n, len(BLENDSHAPE_NAMES)), np.nan, dtype=np.float32)
    transform = np.full((n, 4, 4), np.nan, dtype=np.float32)
    found = np.zeros(n, dtype=bool)
    appearance = np.full((n, len(APPEARANCE_NAMES)), np.nan, dtype=np.float32)
    timestamp = last_timestamp_ms
    for row, frame in enumerate(frame_list):
        timestamp = max(int(round(frame.time_ms)), timestamp + 1)
        height, width = frame.rgb.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=frame.rgb)
        result = landmarker.detect_for_video(image, timestamp)  # type: ignore[attr-defined]
        if not result.face_landmarks:
            continue
        found[row] = True
        points = result.face_landmarks[0]
        landmarks[row] = [(p.x * width, p.y * height, p.z * width) for p in points]
        appearance[row] = region_texture(frame.rgb, landmarks[row], float(face_width(landmarks[row][None])[0]))
        if result.face_blendshapes:
            blendshapes[row] = [c.score for c in result.face_blendshapes[0]]
        if result.facial_transformation_matrixes:
            transform[row] = np.asarray(result.facial_transformation_matrixes[0], dtype=np.float32)
    face_box = np.full((n, 4), np.nan, dtype=np.float32)
    if found.any():
        lo = landmarks[found, :, :2].min(axis=1)
        hi = landmarks[found, :, :2].max(axis=1)
        face_box[found] = np.concatenate([lo, hi - lo], axis=1)
    return LandmarkBatch(
        frame=np.array([f.index for f in frame_list], dtype=np.int64),
        time_ms=np.array([f.time_ms for f in frame_list], dtype=np.float64),
        face_found=found,
        landmarks_px=landmarks,
        blendshapes=blendshapes,
        transform=transform,
        face_box_px=face_box,
        appearance=appearance,
    )


def detect_batches(
    landmarker: object, frames: Iterable[Frame], chunk_frames: int
) -> Iterator[tuple[list[Frame], LandmarkBatch]]:
    """The landmark stage over a stream of frames: ``detect`` on consecutive chunks of
    ``chunk_frames`` frames, carrying MediaPipe's increasing timestamps from chunk to chunk.
    Yields (the chunk's frames, its LandmarkBatch); used by every frame source (one process,
    the parallel workers, synthetic footage)."""
    from aupipe.signal.video import batched

    timestamp = -1
    for chunk in batched(iter(frames), chunk_frames):
        batch = detect(landmarker, chunk, timestamp)
        timestamp = max(int(round(batch.time_ms[-1])), timestamp + len(batch))
        yield chunk, batch
