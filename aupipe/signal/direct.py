"""The ``direct`` landmark backend: the three networks inside ``face_landmarker.task`` run
without MediaPipe's graph, with aupipe's own face-region tracking and head pose.

Per frame and face (docs/backends.md):
1. Region: the previous frame's landmarks give the next region (their box's centre; its long side
   x 1.5; rotated so the eye corners 33 and 263 are level), as MediaPipe does. Only when a face
   is lost (presence below ``min_face_presence_confidence``), or while fewer than ``num_faces``
   faces are followed, does the face detector (BlazeFace short range, 128 x 128, letterboxed)
   run on the whole frame; its boxes (weighted non-maximum suppression) give new regions.
2. Mesh: the region is warped to 256 x 256 (bilinear, edge pixels repeated outside the image) and the mesh network gives 478
   points (x, y in crop pixels, z on the x scale) and a presence logit; points are mapped back
   to image pixels with the same affine map.
3. Blendshapes: the blendshape network reads 146 of the points (x, y in image pixels).
4. Head pose: MediaPipe's face geometry redone in numpy (``face_geometry``): the points on a
   pinhole camera's near plane (63 degrees vertical field of view), depth from two rounds of
   scale estimation, unprojected, and a weighted similarity fit of the canonical face on
   MediaPipe's Procrustes landmarks; the 4 x 4 ``transform`` (centimetres) matches MediaPipe's.

The networks run on LiteRT (``ai-edge-litert``, XNNPACK on the CPU, the default) or on ONNX
Runtime (``runtime="onnx"``: the converted models in ``aupipe/models/onnx``, sha256-checked;
with ``device="cuda"`` its CUDA provider, extra ``aupipe[gpu]``). Several faces of a frame go to
the mesh network in one call. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from aupipe.errors import AupipeError, SettingsError

__all__ = [
    "BLENDSHAPE_POINTS", "DirectLandmarker", "FaceFound", "detector_anchors", "decode_detections",
    "region_from_landmarks", "region_affine", "face_geometry",
]  # fmt: skip

MESH_INPUT_PX = 256
DETECTOR_INPUT_PX = 128
REGION_SCALE = 1.5
#: Landmarks whose line sets a region's rotation (the outer eye corners), as in MediaPipe.
EYE_CORNERS = (33, 263)

#: The 146 landmarks the blendshape network reads, in its input order.
BLENDSHAPE_POINTS: tuple[int, ...] = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65,
    66, 67, 70, 78, 80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136,
    144, 145, 146, 148, 149, 150, 152, 153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172,
    173, 176, 178, 181, 185, 191, 195, 197, 234, 246, 249, 251, 263, 267, 269, 270, 276, 282, 283,
    284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312, 314, 317, 318, 321, 323, 324,
    332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382, 384, 385,
    386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472,
    473, 474, 475, 476, 477,
)  # fmt: skip

_BLENDSHAPE_INDEX = np.array(BLENDSHAPE_POINTS)

NETWORKS = ("face_detector", "face_landmarks_detector", "face_blendshapes")


# ---------------------------------------------------------------- pure geometry (numpy)


@lru_cache(maxsize=1)
def detector_anchors() -> np.ndarray:
    """The 896 SSD anchor centres (896, 2) of the short-range face detector, in 0..1 of its
    128-px input: a 16 x 16 grid (stride 8) and an 8 x 8 grid (strides 16, 16, 16 share it), two
    anchors per cell for the first and six for the second, as MediaPipe's SsdAnchorsCalculator."""
    centres = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.meshgrid((np.arange(grid) + 0.5) / grid, (np.arange(grid) + 0.5) / grid, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def letterbox_affine(width_px: int, height_px: int, size_px: int = DETECTOR_INPUT_PX) -> np.ndarray:
    """The (2, 3) map from a ``size_px`` square (the image fitted in, centred, padded) to image pixels."""
    scale = max(width_px, height_px) / size_px
    return np.array([[scale, 0.0, (width_px - size_px * scale) / 2], [0.0, scale, (height_px - size_px * scale) / 2]])


def decode_detections(
    regressors: np.ndarray, logits: np.ndarray, to_image: np.ndarray, min_score: float = 0.5,
    min_suppression_iou: float = 0.3,
) -> list[tuple[float, np.ndarray, np.ndarray]]:  # fmt: skip
    """Faces from the detector's raw outputs of one image: ``regressors`` (896, 16), ``logits``
    (896,), ``to_image`` the (2, 3) letterbox map. Returns (score, box (x0, y0, x1, y1) px,
    keypoints (6, 2) px) per face, best first, after weighted non-maximum suppression (boxes that
    overlap the best by IoU > ``min_suppression_iou`` are averaged with their scores as weights)."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
    keep = np.flatnonzero(scores >= min_score)
    if not len(keep):
        return []
    anchors = detector_anchors()[keep].astype(np.float64)
    raw = regressors[keep].astype(np.float64) / DETECTOR_INPUT_PX
    centre = raw[:, :2] + anchors
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1) * DETECTOR_INPUT_PX
    keypoints = (raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None]) * DETECTOR_INPUT_PX
    boxes = np.concatenate([boxes[:, :2] @ to_image[:, :2].T + to_image[:, 2], boxes[:, 2:] @ to_image[:, :2].T + to_image[:, 2]], axis=1)
    keypoints = keypoints @ to_image[:, :2].T + to_image[:, 2]
    order = list(np.argsort(-scores[keep]))
    faces = []
    while order:
        best = order[0]
        overlap = box_iou(boxes[best], boxes[order])
        group = [order[i] for i in np.flatnonzero(overlap > min_suppression_iou)]
        weights = scores[keep][group]
        faces.append((
            float(scores[keep][best]),
            (weights @ boxes[group]) / weights.sum(),
            np.einsum("k,kij->ij", weights, keypoints[group]) / weights.sum(),
        ))  # fmt: skip
        order = [i for i in order if i not in group]
    return faces


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU (n,) of one box (x0, y0, x1, y1) with (n, 4) boxes."""
    low = np.maximum(box[:2], boxes[:, :2])
    high = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    union = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def region_from_detection(box_px: np.ndarray, keypoints_px: np.ndarray) -> np.ndarray:
    """A square region (centre x, centre y, side px, rotation rad) around a detection: its box's
    centre, its long side x 1.5, rotated so its eye keypoints (0, 1) are level."""
    centre = (box_px[:2] + box_px[2:]) / 2
    side = float(np.max(box_px[2:] - box_px[:2])) * REGION_SCALE
    eye_vector = keypoints_px[1] - keypoints_px[0]
    return np.array([centre[0], centre[1], side, np.arctan2(eye_vector[1], eye_vector[0])])


def region_from_landmarks(points_px: np.ndarray) -> np.ndarray:
    """Regions (n, 4) for the next frame from (n, 478, 3) pixel landmarks: the centre of their
    box, its long side x 1.5, rotated so the outer eye corners are level (MediaPipe's rule)."""
    xy = np.ascontiguousarray(points_px[:, :, :2])
    low, high = xy.min(axis=1), xy.max(axis=1)
    centre = (low + high) / 2
    side = (high - low).max(axis=1) * REGION_SCALE
    eye_vector = points_px[:, EYE_CORNERS[1], :2] - points_px[:, EYE_CORNERS[0], :2]
    angle = np.arctan2(eye_vector[:, 1], eye_vector[:, 0])
    return np.column_stack([centre, side, angle]).astype(np.float64)


def region_affine(regions: np.ndarray, size_px: int = MESH_INPUT_PX) -> np.ndarray:
    """(n, 2, 3) maps from the ``size_px`` crop of each region (n, 4) to image pixels: crop
    corner (0, 0) is the region's top-left corner (rotated), (size, size) its bottom-right."""
    cx, cy, side, angle = regions.T
    cos, sin = np.cos(angle), np.sin(angle)
    k = side / size_px
    out = np.empty((len(regions), 2, 3))
    out[:, 0, 0], out[:, 0, 1] = cos * k, -sin * k
    out[:, 1, 0], out[:, 1, 1] = sin * k, cos * k
    out[:, 0, 2] = cx - (cos - sin) * side / 2
    out[:, 1, 2] = cy - (sin + cos) * side / 2
    return out


def crop(rgb: np.ndarray, affine: np.ndarray, size_px: int, replicate_border: bool) -> np.ndarray:
    """The (size, size, 3) uint8 crop of ``rgb`` under a crop-to-image ``affine`` (bilinear); outside
    the image: the edge pixels repeated (the mesh's crops, as MediaPipe) or black (the detector's)."""
    import cv2

    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    border = cv2.BORDER_REPLICATE if replicate_border else cv2.BORDER_CONSTANT
    return cv2.warpAffine(rgb, affine, (size_px, size_px), flags=flags, borderMode=border)


def project(points_crop: np.ndarray, affines: np.ndarray, size_px: int = MESH_INPUT_PX) -> np.ndarray:
    """Mesh output (n, 478, 3) in crop pixels -> image pixels; z is scaled like x."""
    x, y, z = points_crop[:, :, 0], points_crop[:, :, 1], points_crop[:, :, 2]
    a = affines[:, :, :, None]  # (n, 2, 3, 1): broadcast over the points
    out = np.empty(points_crop.shape, dtype=np.float32)
    out[:, :, 0] = a[:, 0, 0] * x + a[:, 0, 1] * y + a[:, 0, 2]
    out[:, :, 1] = a[:, 1, 0] * x + a[:, 1, 1] * y + a[:, 1, 2]
    out[:, :, 2] = z * np.hypot(affines[:, 0, 0], affines[:, 1, 0])[:, None]
    return out


@lru_cache(maxsize=1)
def canonical_metric_face() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's canonical face on its Procrustes landmarks: their ids (k,), vertices (k, 3) in
    centimetres and weights (k,), from ``aupipe/models/canonical_face.npz``."""
    with resources.files("aupipe").joinpath("models", "canonical_face.npz").open("rb") as handle:
        data = np.load(handle)
        ids = data["basis_ids"].astype(np.int64)
        return ids, data["vertices"].astype(np.float64)[ids], data["basis_weights"].astype(np.float64)


def weighted_similarity(source: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n, 4, 4) similarity transforms (scale x rotation, translation) taking ``source`` (k, 3)
    onto each of ``targets`` (n, k, 3) in the weighted least-squares sense (weights (k,))."""
    total = weights.sum()
    centre = weights @ source / total
    centred = source - centre
    target_centre = np.einsum("k,nkd->nd", weights, targets) / total
    cross = np.einsum("k,nki,kj->nij", weights, targets - target_centre[:, None], centred)
    u, _, vt = np.linalg.svd(cross)
    flip = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    u[:, :, 2] *= flip[:, None]
    rotation = u @ vt
    scale = np.einsum("nij,kj,k,nki->n", rotation, centred, weights, targets) / np.einsum("k,kd,kd->", weights, centred, centred)
    out = np.zeros((len(targets), 4, 4))
    out[:, :3, :3] = rotation * scale[:, None, None]
    out[:, :3, 3] = target_centre - np.einsum("nij,j->ni", out[:, :3, :3], centre)
    out[:, 3, 3] = 1.0
    return out


def face_geometry(points_px: np.ndarray, width_px: int, height_px: int, fov_deg: float = 63.0, near: float = 1.0) -> np.ndarray:
    """(n, 4, 4) canonical-face -> camera transforms (centimetres) of (n, 478, 3) pixel landmarks,
    as MediaPipe's face geometry computes them: the landmarks are put on the near plane of a
    pinhole camera (vertical field of view ``fov_deg``), given depth by two rounds of scale
    estimation against the canonical face, unprojected, and fitted by a weighted similarity on
    MediaPipe's Procrustes landmarks. Matches MediaPipe's matrix to about 0.01 degree."""
    ids, vertices, weights = canonical_metric_face()
    height_near = 2 * near * np.tan(np.radians(fov_deg) / 2)
    width_near = width_px * height_near / height_px
    points = points_px.astype(np.float64)
    screen = np.stack([
        points[:, :, 0] / width_px * width_near - width_near / 2,
        (1 - points[:, :, 1] / height_px) * height_near - height_near / 2,
        points[:, :, 2] / width_px * width_near,
    ], axis=-1)  # fmt: skip
    depth_offset = screen[:, :, 2].mean(axis=1)  # over every landmark, as MediaPipe
    screen = screen[:, ids]

    def metric(scale: np.ndarray) -> np.ndarray:
        out = screen.copy()
        out[:, :, 2] = (screen[:, :, 2] - depth_offset[:, None] + near) / scale[:, None]
        out[:, :, :2] *= out[:, :, 2:3] / near
        out[:, :, 2] *= -1
        return out

    def scale_of(landmarks: np.ndarray) -> np.ndarray:
        return np.linalg.norm(weighted_similarity(vertices, landmarks, weights)[:, :3, 0], axis=1)

    first = scale_of(screen * np.array([1.0, 1.0, -1.0]))
    second = scale_of(metric(first))
    return weighted_similarity(vertices, metric(first * second), weights).astype(np.float32)


@dataclass
class SmoothingState:
    """A one-euro filter's state over one face's (478, 3) pixel landmarks (``smooth``)."""

    filtered: np.ndarray | None = None  # last output, px
    raw: np.ndarray | None = None  # last input, px
    derivative: np.ndarray | None = None  # last filtered derivative, object sizes per second
    last_time_ms: float = 0.0
    frequency_hz: float = 30.0


def one_euro_alpha(cutoff_hz: np.ndarray | float, frequency_hz: float) -> np.ndarray | float:
    """The exponential-smoothing weight of a one-euro filter at ``cutoff_hz``."""
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff_hz))
    return 1.0 / (1.0 + tau * frequency_hz)


def smooth(
    points_px: np.ndarray, time_ms: float, state: SmoothingState, min_cutoff_hz: float = 0.05, beta: float = 80.0,
    derivative_cutoff_hz: float = 1.0,
) -> np.ndarray:  # fmt: skip
    """One frame of MediaPipe's landmark smoothing (VIDEO mode, one face): a one-euro filter on
    every coordinate of (478, 3) pixel landmarks; its speed is measured in object sizes (the mean
    of the landmarks' box width and height) per second, so the filter follows a head turn at any
    distance. Updates ``state``; returns the smoothed (478, 3) landmarks."""
    points = points_px.astype(np.float64)
    if state.raw is None or state.filtered is None or state.derivative is None:
        state.filtered, state.raw, state.derivative = points, points, np.zeros_like(points)
        state.last_time_ms = time_ms
        return points_px
    if time_ms <= state.last_time_ms:
        return points_px
    if state.last_time_ms != 0:
        state.frequency_hz = 1000.0 / (time_ms - state.last_time_ms)
    state.last_time_ms = time_ms
    extent = points[:, :2].max(axis=0) - points[:, :2].min(axis=0)
    object_scale = float(extent.mean())
    if object_scale < 1e-6:
        return points_px
    change = (points - state.raw) / object_scale * state.frequency_hz
    alpha_derivative = one_euro_alpha(derivative_cutoff_hz, state.frequency_hz)
    state.derivative = alpha_derivative * change + (1 - alpha_derivative) * state.derivative
    alpha = one_euro_alpha(min_cutoff_hz + beta * np.abs(state.derivative), state.frequency_hz)
    state.filtered = alpha * points + (1 - alpha) * state.filtered
    state.raw = points
    return state.filtered.astype(np.float32)


# ---------------------------------------------------------------- network runtimes


def task_network(model: bytes, name: str) -> bytes:
    """One ``.tflite`` network (``name`` without extension) read from the ``.task`` bundle."""
    return zipfile.ZipFile(io.BytesIO(model)).read(f"{name}.tflite")


@lru_cache(maxsize=1)
def onnx_manifest() -> dict[str, str]:
    """{network name: sha256} of the converted ONNX models (``aupipe/models/onnx/manifest.json``)."""
    text = resources.files("aupipe").joinpath("models", "onnx", "manifest.json").read_text()
    return dict(json.loads(text)["sha256"])


def onnx_network(name: str) -> bytes:
    """A converted ONNX network, its sha256 checked against the manifest."""
    data = resources.files("aupipe").joinpath("models", "onnx", f"{name}.onnx").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != onnx_manifest()[name]:
        raise AupipeError(f"bundled {name}.onnx has sha256 {digest[:12]}..., expected {onnx_manifest()[name][:12]}...; reinstall aupipe")
    return data


class LiteRtNetwork:
    """One network on LiteRT (XNNPACK, ``threads`` CPU threads); ``run(x)`` takes a batch and
    calls the interpreter once per item (its tensors have batch 1)."""

    def __init__(self, content: bytes, threads: int) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise AupipeError("the direct backend needs ai-edge-litert: pip install ai-edge-litert") from None
        self._interpreter = Interpreter(model_content=content, num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._outputs = [d["index"] for d in self._interpreter.get_output_details()]

    def run(self, batch: np.ndarray, divisor: float = 1.0) -> list[np.ndarray]:
        """Outputs, each stacked over the batch's items (first axis); the network reads
        ``batch / divisor`` in float32, written straight into its input tensor (no copies)."""
        results: list[list[np.ndarray]] = [[] for _ in self._outputs]
        for item in batch:
            np.divide(item, np.float32(divisor), out=self._interpreter.tensor(self._input)()[0], casting="unsafe")
            self._interpreter.invoke()
            for slot, index in zip(results, self._outputs, strict=True):
                slot.append(self._interpreter.get_tensor(index).reshape(-1))
        return [np.stack(values) for values in results]


class OnnxNetwork:
    """One network on ONNX Runtime (CPU provider, or CUDA with ``device="cuda"``); the mesh
    network takes the whole batch in one call, the others one item a call."""

    def __init__(self, content: bytes, threads: int, device: str) -> None:
        try:
            import onnxruntime
        except ImportError:
            hint = "aupipe[gpu]" if device == "cuda" else "onnxruntime"
            raise AupipeError(f"runtime onnx needs ONNX Runtime: pip install {hint}") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise SettingsError("--device cuda: ONNX Runtime has no CUDA provider here (pip install aupipe[gpu])")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        self._session = onnxruntime.InferenceSession(content, options, providers=providers)
        self._input = self._session.get_inputs()[0].name
        self._batched = not isinstance(self._session.get_inputs()[0].shape[0], int)

    def run(self, batch: np.ndarray, divisor: float = 1.0) -> list[np.ndarray]:
        """Outputs, each (n, -1) over the batch's items; the network reads ``batch / divisor`` in float32."""
        batch = np.divide(batch, np.float32(divisor), dtype=np.float32)
        if self._batched:
            outputs = self._session.run(None, {self._input: batch})
            return [out.reshape(len(batch), -1) for out in outputs]
        per_item = [self._session.run(None, {self._input: item[None]}) for item in batch]
        return [np.stack([item[k].reshape(-1) for item in per_item]) for k in range(len(per_item[0]))]


def open_networks(model: bytes, runtime: str, threads: int, device: str) -> dict[str, Any]:
    """{network name: runner} for ``runtime`` "litert" (from the .task) or "onnx" (converted)."""
    if runtime == "litert":
        if device != "cpu":
            raise SettingsError(f"--device {device} needs --runtime onnx (LiteRT runs on the CPU here)")
        return {name: LiteRtNetwork(task_network(model, name), threads) for name in NETWORKS}
    if runtime == "onnx":
        return {name: OnnxNetwork(onnx_network(name), threads, device) for name in NETWORKS}
    raise SettingsError(f"unknown runtime {runtime!r}; use litert or onnx")


# ---------------------------------------------------------------- the stateful landmarker


@dataclass(frozen=True)
class FaceFound:
    """One face of a frame: ``slot`` (stable while followed), ``points_px`` (478, 3),
    ``blendshapes`` (52,) 0..1, ``transform`` (4, 4) (``face_geometry``), ``presence`` 0..1."""

    slot: int
    points_px: np.ndarray
    blendshapes: np.ndarray
    transform: np.ndarray
    presence: float


@dataclass
class FollowState:
    """The explicit state of a ``DirectLandmarker``: each followed face's slot number, region
    (centre x, centre y, side px, rotation rad) for the next frame and landmark smoothing."""

    slots: list[int] = field(default_factory=list)
    regions: list[np.ndarray] = field(default_factory=list)
    smoothing: list[SmoothingState] = field(default_factory=list)
    next_slot: int = 0


class DirectLandmarker:
    """Landmarks, blendshapes and pose of up to ``num_faces`` faces per frame (module doc).

    ``detect_rgb(rgb, time_ms)`` takes one stream's frames in time order. ``detect_lanes`` steps
    several independent streams (*lanes*: clips of a batch, spans of a long video) one frame each,
    with all their face regions in one mesh-network call (one batched call on ONNX Runtime; LiteRT,
    and the ONNX detector and blendshape networks, loop over the items inside the call); a lane's
    results equal those of stepping it alone. ``aupipe run``/``batch``/``live`` step one lane. ``states[lane]`` is each lane's explicit
    ``FollowState``. ``close()`` (or the context manager) frees the runtimes."""

    def __init__(
        self, model: bytes, num_faces: int = 1, min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5, runtime: str = "litert", threads: int = 1, device: str = "cpu",
    ) -> None:  # fmt: skip
        self._networks = open_networks(model, runtime, threads, device)
        self._num_faces = num_faces
        self._min_detection = min_detection_confidence
        self._min_presence = min_presence_confidence
        self.states: dict[int, FollowState] = {}

    def close(self) -> None:
        """Drop the runtimes (their memory is freed with them)."""
        self._networks = {}

    def __enter__(self) -> DirectLandmarker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _detect_new(self, rgb: np.ndarray, state: FollowState) -> None:
        """Open a slot for each detected face no followed region covers (while slots are free)."""
        height, width = rgb.shape[:2]
        to_image = letterbox_affine(width, height)
        square = crop(rgb, to_image, DETECTOR_INPUT_PX, replicate_border=False).astype(np.float32) / 127.5 - 1.0
        regressors, logits = self._networks["face_detector"].run(square[None])
        faces = decode_detections(regressors[0].reshape(-1, 16), logits[0], to_image, self._min_detection)
        for _, box, keypoints in faces:
            if len(state.slots) >= self._num_faces:
                break
            region = region_from_detection(box, keypoints)
            if any(_region_overlap(region, other) > 0.2 for other in state.regions):
                continue
            state.slots.append(state.next_slot)
            state.regions.append(region)
            state.smoothing.append(SmoothingState())
            state.next_slot += 1

    def detect_rgb(self, rgb: np.ndarray, time_ms: float, pose: bool = True) -> list[FaceFound]:
        """The faces of one RGB frame (uint8, (h, w, 3)) at ``time_ms`` (increasing), in slot order.
        The next regions come from the raw landmarks; the landmarks returned (and the blendshapes
        read from them) are smoothed (``smooth``), as MediaPipe's are in VIDEO mode."""
        return self.detect_lanes([(0, rgb, time_ms)], pose)[0]

    def detect_lanes(self, items: list[tuple[int, np.ndarray, float]], pose: bool = True) -> list[list[FaceFound]]:
        """One frame for each of several lanes: ``items`` (lane, rgb, time_ms), one per lane;
        returns each item's faces (as ``detect_rgb``), in the order given. ``pose`` False leaves
        the transforms NaN (``face_geometry`` is vectorised: a caller can run it over many frames)."""
        states = [self.states.setdefault(lane, FollowState()) for lane, _, _ in items]
        for (_, rgb, _), state in zip(items, states, strict=True):
            if len(state.slots) < self._num_faces:
                self._detect_new(rgb, state)
        owners = [k for k, state in enumerate(states) for _ in state.slots]  # the item of each region
        if not owners:
            return [[] for _ in items]
        affines = region_affine(np.stack([r for state in states for r in state.regions]))
        crops = np.stack([
            crop(items[k][1], affine, MESH_INPUT_PX, replicate_border=True) for k, affine in zip(owners, affines, strict=True)
        ])  # fmt: skip
        raw, presence_logit = self._networks["face_landmarks_detector"].run(crops, divisor=255.0)[:2]
        presence = 1.0 / (1.0 + np.exp(-presence_logit[:, 0].astype(np.float64)))
        points = project(raw.reshape(len(crops), -1, 3), affines)
        kept_rows: list[list[int]] = []
        start = 0
        for k, state in enumerate(states):
            rows = range(start, start + len(state.slots))
            start += len(state.slots)
            kept_rows.append(_drop_duplicates(points, [i for i in rows if presence[i] >= self._min_presence]))
            first = rows.start
            state.slots = [state.slots[i - first] for i in kept_rows[k]]
            state.smoothing = [state.smoothing[i - first] for i in kept_rows[k]]
            state.regions = list(region_from_landmarks(points[kept_rows[k]])) if kept_rows[k] else []
        flat = [i for rows in kept_rows for i in rows]
        if not flat:
            return [[] for _ in items]
        smoothed = np.stack([
            smooth(points[i], items[k][2], smoothing)
            for k, (rows, state) in enumerate(zip(kept_rows, states, strict=True))
            for i, smoothing in zip(rows, state.smoothing, strict=True)
        ])  # fmt: skip
        shapes = self._networks["face_blendshapes"].run(smoothed[:, _BLENDSHAPE_INDEX, :2])[0]
        sizes = np.array([items[k][1].shape[:2] for k, rows in enumerate(kept_rows) for _ in rows])  # (height, width)
        transforms = np.full((len(smoothed), 4, 4), np.nan, np.float32)
        for height, width in {tuple(size) for size in sizes} if pose else ():
            same = (sizes[:, 0] == height) & (sizes[:, 1] == width)
            transforms[same] = face_geometry(smoothed[same], int(width), int(height))
        out: list[list[FaceFound]] = []
        row = 0
        for rows, state in zip(kept_rows, states, strict=True):
            faces = []
            for i, slot in zip(rows, state.slots, strict=True):
                faces.append(FaceFound(slot, smoothed[row], shapes[row].astype(np.float32), transforms[row], float(presence[i])))
                row += 1
            out.append(faces)
        return out


def _region_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two regions' axis-aligned squares."""
    box_a = np.array([a[0] - a[2] / 2, a[1] - a[2] / 2, a[0] + a[2] / 2, a[1] + a[2] / 2])
    box_b = np.array([[b[0] - b[2] / 2, b[1] - b[2] / 2, b[0] + b[2] / 2, b[1] + b[2] / 2]])
    return float(box_iou(box_a, box_b)[0])


def _drop_duplicates(points: np.ndarray, kept: list[int]) -> list[int]:
    """Of faces whose landmark boxes overlap by IoU > 0.5 (two slots on one face), keep the first."""
    if len(kept) < 2:
        return list(kept)
    out: list[int] = []
    boxes = np.concatenate([points[:, :, :2].min(axis=1), points[:, :, :2].max(axis=1)], axis=1)
    for i in kept:
        if out and (box_iou(boxes[i], boxes[out]) > 0.5).any():
            continue
        out.append(i)
    return out
