"""Frame tables: frames -> landmarks -> normalised mesh -> measures and appearance, per chunk.

``stream_frames`` decodes and detects in this process; ``raw_frames`` picks it or the parallel
landmark stage (``aupipe.chain.parallel``). The frame table's columns are in docs/outputs.md.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from aupipe.chain.settings import PipelineSettings
from aupipe.errors import AupipeWarning
from aupipe.signal.calibration import load_calibration
from aupipe.signal import appearance, aus, landmarks, normalize, speech, tracking, video
from aupipe.signal.native import quiet_native_stderr
from aupipe.signal.video import batched

__all__ = [
    "batched", "frame_table", "frame_table_empty", "frame_table_empty_cached", "needs_face_hog", "order_columns",
    "stream_frames", "warn_coverage",
]  # fmt: skip


def needs_face_hog(settings: PipelineSettings) -> bool:
    """Whether anything reads the faces' HOG: the calibration's face scores or the descriptor
    columns. Under ``--au-calibration hand`` neither does, and the landmark stage skips it."""
    return load_calibration(settings.aus.calibration).appearance is not None or settings.include_descriptor


def frame_table(batch: landmarks.LandmarkBatch, settings: PipelineSettings = PipelineSettings()) -> pd.DataFrame:
    """The raw per-frame table of one batch: ids, face box, pose, geometric measures, blendshapes
    and (optionally) landmarks. The AU stage adds the AU columns (docs/outputs.md)."""
    pose = normalize.head_pose_deg(batch.transform)
    mesh = normalize.normalize_mesh(batch.landmarks_px, settings.normalize)
    measures = aus.geometric_measures(mesh)
    data: dict[str, np.ndarray] = {
        "frame": batch.frame,
        "time_ms": batch.time_ms,
        "face_found": batch.face_found,
        "box_x_px": batch.face_box_px[:, 0],
        "box_y_px": batch.face_box_px[:, 1],
        "box_w_px": batch.face_box_px[:, 2],
        "box_h_px": batch.face_box_px[:, 3],
        "face_width_px": normalize.face_width(batch.landmarks_px),
        "pitch_deg": pose[:, 0],
        "yaw_deg": pose[:, 1],
        "roll_deg": pose[:, 2],
    }
    for name in aus.MEASURES:
        data[f"g_{name}"] = measures[name].to_numpy()
    for j, name in enumerate(landmarks.BLENDSHAPE_NAMES):
        data[f"bs_{name}"] = batch.blendshapes[:, j]
    texture = batch.appearance if batch.appearance is not None else np.full((len(batch), len(appearance.NAMES)), np.nan)
    for j, name in enumerate(appearance.NAMES):
        data[f"a_{name}"] = texture[:, j]
    if needs_face_hog(settings):
        directions = load_calibration(settings.aus.calibration).appearance
        hog = batch.hog if batch.hog is not None else np.full((len(batch), appearance.HOG_DIMS), np.nan, np.float32)
        descriptor = appearance.face_descriptor(hog, mesh, batch.blendshapes)
        if directions is not None:
            data.update(directions.scores(descriptor))
        if settings.include_descriptor:
            data.update({f"desc_{j:04d}": descriptor[:, j] for j in range(appearance.DESCRIPTOR_DIMS)})
    if settings.landmarks.num_faces > 1:  # the tracker's inputs (aupipe.signal.tracking), removed by it
        n = len(batch)
        data["face_slot"] = batch.face_slot if batch.face_slot is not None else np.zeros(n, np.int64)
        data["shot_change"] = batch.shot_change if batch.shot_change is not None else np.zeros(n, np.float32)
        signature = tracking.identity_signature(mesh)
        for j, name in enumerate(tracking.SIGNATURE_COLUMNS):
            data[name] = signature[:, j]
    if settings.include_landmarks:
        for axis, letter in enumerate("xyz"):
            for i in range(landmarks.N_LANDMARKS):
                data[f"{letter}_{i}"] = batch.landmarks_px[:, i, axis]
    return pd.DataFrame(data)


def order_columns(frames: pd.DataFrame) -> pd.DataFrame:
    """Frame table in documented order: ids and pose, AUs (``_r``, sided, ``_c``), the rest."""
    au_first = [c for c in (*aus.au_columns(), *aus.presence_columns()) if c in frames.columns]
    head = [c for c in frames.columns if not (c.startswith(("g_", "bs_", "a_", "desc_")) or c[:2] in ("x_", "y_", "z_"))]
    head = [c for c in head if c not in au_first]
    tail = [c for c in frames.columns if c not in head and c not in au_first]
    return frames[head + au_first + tail]


def stream_frames(
    path: str | Path, settings: PipelineSettings = PipelineSettings(), progress: bool = False
) -> Iterator[pd.DataFrame]:
    """Yield the raw frame table of ``path`` chunk by chunk (``settings.chunk_frames`` rows each).

    Frames -> landmarks -> normalised mesh -> geometric measures; the landmarker is closed when
    the generator ends or is closed. Native log lines are kept off stderr throughout.
    """
    from tqdm import tqdm

    info = video.probe(path, settings.video)
    faces = total = 0
    with quiet_native_stderr(), landmarks.open_landmarker(settings.landmarks) as landmarker:
        bar = tqdm(
            total=info.frame_count or None, unit="frame", disable=None if progress else True, file=sys.stderr,
            desc=Path(path).name, mininterval=0.5, dynamic_ncols=True, leave=False,
        )  # fmt: skip
        with bar:
            for _, batch in landmarks.detect_batches(
                landmarker,
                video.iter_frames(path, settings.video),
                settings.chunk_frames,
                shot_changes=settings.landmarks.num_faces > 1,
                hog=needs_face_hog(settings),
            ):
                faces += len(np.unique(batch.frame[batch.face_found]))
                total += len(np.unique(batch.frame))
                bar.update(len(np.unique(batch.frame)))
                yield frame_table(batch, settings)
    warn_coverage(path, faces, total)


@functools.lru_cache(maxsize=4)
def frame_table_empty_cached(settings: PipelineSettings) -> pd.DataFrame:
    """``frame_table_empty``, made once per settings (streaming asks for it at every held chunk); not to be modified."""
    return frame_table_empty(settings)


def frame_table_empty(settings: PipelineSettings = PipelineSettings()) -> pd.DataFrame:
    """A frame table with all columns (AUs included) and no rows."""
    raw = frame_table(landmarks.empty_batch(), settings)
    au_columns = pd.DataFrame(columns=[*aus.au_columns(), *aus.presence_columns(), *speech.OUTPUT_COLUMNS], dtype=float)
    return order_columns(pd.concat([raw, au_columns], axis=1))


def warn_coverage(path: str | Path, faces: int, total: int) -> None:
    if total and faces == 0:
        warnings.warn(f"{path}: no face found in any of {total} frames; AU columns are empty", AupipeWarning, 2)
    elif total and faces < total:
        warnings.warn(
            f"{path}: no face in {total - faces} of {total} frames ({100 * (total - faces) / total:.0f}%); "
            "those frames have face_found = false and empty AUs",
            AupipeWarning,
            2,
        )
