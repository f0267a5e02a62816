"""Per-clip feature cache and fixed-length window tensors for training.

Cache: the pipeline runs once per clip (``aupipe.analyze``) and its per-frame table (AUs,
blendshapes, head pose, 478 landmarks) is kept as one compressed NPZ file per clip under
``CACHE/<pipeline version>/<sha256[:2]>/<sha256>.npz``. The key is the clip's content hash
(two files with the same bytes share one entry; labels and subjects come from the dataset,
never from the cache) and the pipeline version: aupipe's version, the frame-stage settings and
a hash of the frame-stage source files (video, landmarks, normalize, aus, pipeline,
pyfeat_backend), so a changed AU estimator never reuses stale features. Files are written to a temporary name and renamed, so
an interrupted run resumes where it stopped. Clips are processed in parallel (one process and
one landmarker per core); a corrupt clip is reported and skipped, never fatal; a faceless clip
is cached (its result is certain) and reported as skipped.

Segments: the windows of ``aupipe run`` (``window_ms``/``stride_ms``), each resampled to
``n_steps`` time steps by linear interpolation in time over the frames with a face inside the
window -> tensors ``(n_windows, n_steps, n_channels)`` (float32). Channels are the per-frame
columns matching fnmatch patterns (``AU*_r`` AU intensities 0-5, ``AU*_c`` presence 0/1 when
the AU stage writes it, optionally ``bs_*`` blendshape scores 0-1 and ``g_*`` landmark
geometry in face widths). Windows whose face
coverage is below ``min_coverage`` are dropped.

numpy/pandas only at import; no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aupipe.errors import AupipeError, AupipeWarning, SettingsError

if TYPE_CHECKING:
    from aupipe.learning.datasets import Clip
    from aupipe.rules.mapping import Mapping
    from aupipe.chain.settings import PipelineSettings

__all__ = [
    "CACHE_FORMAT",
    "CacheReport",
    "SegmentSettings",
    "cache_path",
    "channel_columns",
    "clip_segments",
    "default_cache_dir",
    "extract_features",
    "file_sha256",
    "load_frames",
    "pipeline_version",
    "resample_windows",
]

#: Bump when the layout of a cache file changes.
CACHE_FORMAT = 1
#: Source files whose code shapes the per-frame table (hashed into the pipeline version).
_STAGE_FILES = (
    "signal/video.py", "signal/landmarks.py", "signal/normalize.py", "signal/appearance.py", "signal/aus.py",
    "signal/calibration.py", "signal/pyfeat_backend.py", "signal/direct.py", "signal/multiface.py", "chain/frames.py",
)  # fmt: skip
_BOOKKEEPING = ("frame", "time_ms", "face_found")


def default_cache_dir() -> Path:
    """``$AUPIPE_CACHE_DIR`` or ``$XDG_CACHE_HOME/aupipe/features`` (``~/.cache/aupipe/features``)."""
    if os.environ.get("AUPIPE_CACHE_DIR"):
        return Path(os.environ["AUPIPE_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "aupipe" / "features"


def _frame_settings(settings: PipelineSettings | None) -> PipelineSettings:
    """The settings that shape frame rows: windows and chunking set to defaults, landmarks kept."""
    from aupipe.chain.settings import PipelineSettings
    from aupipe.signal.windows import WindowSettings

    base = settings or PipelineSettings()
    return dataclasses.replace(base, windows=WindowSettings(), chunk_frames=64, include_landmarks=True)


def stage_fingerprint() -> str:
    """sha256 (16 hex) of the frame-stage source files: changes whenever the AU estimator changes."""
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parents[1]  # the aupipe package
    for name in _STAGE_FILES:
        try:
            digest.update(name.encode() + b"\0" + (here / name).read_bytes())
        except OSError:
            digest.update(name.encode() + b"\0missing")
    return digest.hexdigest()[:16]


def pipeline_version(settings: PipelineSettings | None = None) -> str:
    """The cache key part that is not the clip: ``<aupipe version>-<16 hex of settings + stage code>``."""
    from aupipe.version import __version__

    text = json.dumps(
        {"aupipe": __version__, "format": CACHE_FORMAT, "settings": repr(_frame_settings(settings)),
         "stages": stage_fingerprint()},
        sort_keys=True,
    )  # fmt: skip
    return f"{__version__}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cache_path(cache_dir: str | Path, sha256: str, version: str) -> Path:
    """Where the features of the clip with content hash ``sha256`` live for pipeline ``version``."""
    return Path(cache_dir) / version / sha256[:2] / f"{sha256}.npz"


# --------------------------------------------------------------------------------------------
# Writing and reading one cache file
# --------------------------------------------------------------------------------------------


def _save(target: Path, frames: pd.DataFrame, info: dict[str, Any]) -> None:
    """Write the frame table to ``target`` (NPZ, atomically). Landmarks (n, 478, 3) stored apart."""
    landmark_cols = [c for c in frames.columns if c[:2] in ("x_", "y_", "z_") and c[2:].isdigit()]
    n_points = len(landmark_cols) // 3
    values_cols = [c for c in frames.columns if c not in landmark_cols and c not in _BOOKKEEPING]
    arrays: dict[str, np.ndarray] = {
        "frame": frames["frame"].to_numpy(dtype=np.int64),
        "time_ms": frames["time_ms"].to_numpy(dtype=np.float64),
        "face_found": frames["face_found"].to_numpy(dtype=bool),
        "columns": np.array(values_cols, dtype=str),
        "values": frames[values_cols].to_numpy(dtype=np.float32),
        "landmarks": np.stack(
            [frames[[f"{axis}_{i}" for i in range(n_points)]].to_numpy(dtype=np.float32) for axis in "xyz"], axis=-1
        ) if n_points else np.zeros((len(frames), 0, 3), np.float32),
        "info": np.array(json.dumps(info, sort_keys=True)),
    }  # fmt: skip
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.stem}.{os.getpid()}.part.npz")
    try:
        np.savez_compressed(partial, allow_pickle=False, **arrays)  # type: ignore[arg-type]
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def read_info(path: str | Path) -> dict[str, Any]:
    """The JSON header of a cache file (source name, frames, faces, seconds...)."""
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data["info"]))


def load_frames(path: str | Path, columns: Sequence[str] | None = None, landmarks: bool = False) -> pd.DataFrame:
    """The cached frame table: ``frame time_ms face_found`` + ``columns`` (all when None) [+ x_i y_i z_i].

    Values are float32 as stored (AU intensities 0-5, blendshapes 0-1, pose in degrees, pixels).
    Raises AupipeError when the file is not a readable cache file.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            names = [str(c) for c in data["columns"]]
            values = data["values"]
            table: dict[str, np.ndarray] = {k: data[k] for k in _BOOKKEEPING}
            wanted = names if columns is None else list(columns)
            index = {name: i for i, name in enumerate(names)}
            for name in wanted:
                if name in index:
                    table[name] = values[:, index[name]]
            if landmarks:
                points = data["landmarks"]
                for axis, letter in enumerate("xyz"):
                    for i in range(points.shape[1]):
                        table[f"{letter}_{i}"] = points[:, i, axis]
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise AupipeError(f"{path}: unreadable feature cache file ({err}); delete it to recompute") from err
    return pd.DataFrame(table)


# --------------------------------------------------------------------------------------------
# Extraction (parallel, resumable)
# --------------------------------------------------------------------------------------------


def _extract_one(path: str, target: str, settings: PipelineSettings, sha256: str, version: str) -> dict[str, Any]:
    """Worker: analyse one clip and write its cache file. Never raises; returns a status record."""
    start = time.perf_counter()
    try:
        from aupipe.chain.stream import frames_of
        from aupipe.signal.landmarks import import_mediapipe

        import_mediapipe()  # without TensorFlow: it is installed with the training extra
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AupipeWarning)
            frames = frames_of(path, settings)
        faces = int(frames["face_found"].sum())
        seconds = time.perf_counter() - start
        info = {"source": Path(path).name, "sha256": sha256, "version": version, "n_frames": len(frames),
                "faces": faces, "seconds": round(seconds, 3)}  # fmt: skip
        _save(Path(target), frames, info)
        return {"status": "ok", **info}
    except AupipeError as err:
        return {"status": "failed", "reason": str(err), "seconds": time.perf_counter() - start}
    except Exception as err:  # noqa: BLE001 - one bad clip must not stop a dataset
        detail = str(err).splitlines()[0] if str(err) else ""
        return {"status": "failed", "reason": f"{type(err).__name__}: {detail}", "seconds": time.perf_counter() - start}


@dataclass
class CacheReport:
    """Outcome of :func:`extract_features`.

    files: clip_id -> cache file of every usable clip; failed: clip_id -> one-line reason
    (corrupt, unreadable, no face in any frame); computed / reused: clips analysed now / found
    in the cache; seconds: wall time; frames_computed and clip_seconds: frames and per-clip
    worker seconds of the clips analysed now (for throughput figures).
    """

    files: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    computed: int = 0
    reused: int = 0
    seconds: float = 0.0
    frames_computed: int = 0
    clip_seconds: list[float] = field(default_factory=list)
    version: str = ""

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures: counts, failures, seconds per clip and frames per second."""
        busy = float(sum(self.clip_seconds))
        return {
            "version": self.version,
            "usable_clips": len(self.files),
            "failed_clips": dict(sorted(self.failed.items())),
            "computed": self.computed,
            "reused": self.reused,
            "wall_seconds": round(self.seconds, 3),
            "seconds_per_clip": round(busy / len(self.clip_seconds), 3) if self.clip_seconds else None,
            "frames_per_second_per_worker": round(self.frames_computed / busy, 2) if busy > 0 else None,
        }


def _usable(target: Path) -> tuple[bool, str]:
    """Whether a cache file has frames with a face, and if not, why."""
    info = read_info(target)
    if info.get("faces", 0) == 0:
        return False, f"no face found in any of {info.get('n_frames', 0)} frames"
    return True, ""


def extract_features(
    clips: Sequence[Clip],
    cache_dir: str | Path | None = None,
    *,
    settings: PipelineSettings | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> CacheReport:
    """Make sure every clip's per-frame features are cached; return where they are.

    Clips already cached (same content hash and pipeline version) are not analysed again, so an
    interrupted run resumes. ``workers`` processes (default: all cores, at most one per clip)
    each run their own landmarker; ``workers=1`` runs in this process. Corrupt and faceless
    clips end up in ``failed`` with a one-line reason. Ctrl-C stops the pool; finished clips stay.
    """
    import concurrent.futures as cf
    import multiprocessing

    from tqdm import tqdm

    frame_settings = _frame_settings(settings)
    version = pipeline_version(settings)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    report = CacheReport(version=version)
    start = time.perf_counter()
    try:
        (root / version).mkdir(parents=True, exist_ok=True)
        stamp = root / version / "VERSION.json"
        if not stamp.exists():
            stamp.write_text(json.dumps({"version": version, "settings": repr(frame_settings)}, indent=1) + "\n")
    except OSError as err:
        raise AupipeError(f"{root}: cannot write the feature cache ({err.strerror or err}); use --cache-dir") from err

    pending: dict[str, list[str]] = {}  # target path -> clip ids with that content
    sources: dict[str, tuple[str, str]] = {}  # target -> (clip path, sha256)
    for clip in clips:
        try:
            digest = file_sha256(clip.path)
        except OSError as err:
            report.failed[clip.clip_id] = f"{clip.path}: cannot read ({err.strerror or err})"
            continue
        target = cache_path(root, digest, version)
        if target.exists():
            try:
                ok, why = _usable(target)
            except (OSError, ValueError, KeyError, EOFError):
                target.unlink(missing_ok=True)  # a damaged cache file: recompute
            else:
                report.reused += 1
                if ok:
                    report.files[clip.clip_id] = target
                else:
                    report.failed[clip.clip_id] = f"{clip.path.name}: {why}"
                continue
        pending.setdefault(str(target), []).append(clip.clip_id)
        sources.setdefault(str(target), (str(clip.path), digest))

    def record(target: str, result: dict[str, Any]) -> None:
        ids = pending[target]
        report.computed += len(ids)
        report.clip_seconds.append(float(result.get("seconds", 0.0)))
        if result["status"] == "ok":
            report.frames_computed += int(result["n_frames"])
            for clip_id in ids:
                if result["faces"] > 0:
                    report.files[clip_id] = Path(target)
                else:
                    report.failed[clip_id] = f"{result['source']}: no face found in any of {result['n_frames']} frames"
        else:
            for clip_id in ids:
                report.failed[clip_id] = result["reason"]

    n_workers = max(1, min(workers or os.cpu_count() or 1, len(pending)))
    bar = tqdm(total=len(pending), unit="clip", desc="features", disable=not progress or not pending,
               file=sys.stderr, dynamic_ncols=True, mininterval=0.5)  # fmt: skip
    with bar:
        if n_workers == 1:
            for key, (path, digest) in sources.items():
                record(key, _extract_one(path, key, frame_settings, digest, version))
                bar.update(1)
        else:
            context = multiprocessing.get_context("spawn")  # fork is unsafe with TensorFlow/MediaPipe threads
            pool = cf.ProcessPoolExecutor(max_workers=n_workers, mp_context=context)
            try:
                futures = {
                    pool.submit(_extract_one, path, target, frame_settings, digest, version): target
                    for target, (path, digest) in sources.items()
                }
                for future in cf.as_completed(futures):
                    record(futures[future], future.result())
                    bar.update(1)
                    bar.set_postfix(failed=len(report.failed), refresh=False)
            except cf.process.BrokenProcessPool as err:
                pool.shutdown(wait=False, cancel_futures=True)
                raise AupipeError(
                    "feature worker processes died; a script that calls aupipe training must run it under "
                    "`if __name__ == '__main__':` (or pass workers=1)"
                ) from err
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
    report.seconds = time.perf_counter() - start
    return report


# --------------------------------------------------------------------------------------------
# Segments: fixed-length window tensors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentSettings:
    """How windows become tensors.

    window_ms / stride_ms: the windows of ``aupipe run`` (ms); n_steps: time steps per window
    after resampling; min_coverage: windows with a smaller share of face frames are dropped
    (0..1); channels: fnmatch patterns of per-frame columns used as input channels.
    """

    window_ms: float = 500.0
    stride_ms: float = 100.0
    n_steps: int = 16
    min_coverage: float = 0.5
    channels: tuple[str, ...] = ("AU*_r", "AU*_c")

    def __post_init__(self) -> None:
        if self.n_steps < 2:
            raise SettingsError(f"n_steps must be at least 2 (got {self.n_steps})")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise SettingsError(f"min_coverage must be within 0..1 (got {self.min_coverage})")


def channel_columns(columns: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """Columns matching any fnmatch pattern, in table order (``AU*_r`` excludes ``AU*_c``)."""
    return [c for c in columns if c not in _BOOKKEEPING and any(fnmatch.fnmatchcase(c, p) for p in patterns)]


def resample_windows(
    frames: pd.DataFrame, starts_ms: np.ndarray, ends_ms: np.ndarray, columns: Sequence[str], n_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resample each window [start, end) to ``n_steps`` points by linear interpolation in time.

    Targets are the centres of ``n_steps`` equal parts of the window; only frames inside the
    window with a face and finite values are used; before the first / after the last such
    frame the value is held. Returns X (n_windows, n_steps, len(columns)) float32 and ok
    (n_windows,) bool, False for windows without any usable frame (their rows are 0).
    """
    starts = np.asarray(starts_ms, dtype=np.float64)
    ends = np.asarray(ends_ms, dtype=np.float64)
    n_windows = len(starts)
    out = np.zeros((n_windows, n_steps, len(columns)), dtype=np.float32)
    if n_windows == 0 or len(frames) == 0 or not columns:
        return out, np.zeros(n_windows, dtype=bool)
    values = frames[list(columns)].to_numpy(dtype=np.float64)
    times = frames["time_ms"].to_numpy(dtype=np.float64)
    valid = frames["face_found"].to_numpy(dtype=bool) & np.isfinite(values).all(axis=1)
    vt, vv = times[valid], values[valid]
    order = np.argsort(vt, kind="stable")
    vt, vv = vt[order], vv[order]
    lo = np.searchsorted(vt, starts, side="left")
    hi = np.searchsorted(vt, ends, side="left")  # exclusive
    ok = hi > lo
    if not ok.any():
        return out, ok
    fractions = (np.arange(n_steps) + 0.5) / n_steps
    targets = starts[:, None] + fractions[None, :] * (ends - starts)[:, None]  # (n, T)
    lo_b = np.broadcast_to(lo[:, None], targets.shape)
    last = np.broadcast_to(np.maximum(hi - 1, lo)[:, None], targets.shape)
    left = np.clip(np.searchsorted(vt, targets, side="right") - 1, lo_b, last)
    right = np.minimum(left + 1, last)
    t_left, t_right = vt[np.minimum(left, len(vt) - 1)], vt[np.minimum(right, len(vt) - 1)]
    span = t_right - t_left
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(span > 0, np.clip((targets - t_left) / span, 0.0, 1.0), 0.0)
    left_v = vv[np.minimum(left, len(vv) - 1)]
    right_v = vv[np.minimum(right, len(vv) - 1)]
    resampled = left_v * (1.0 - weight[..., None]) + right_v * weight[..., None]
    out[ok] = resampled[ok].astype(np.float32)
    return out, ok


def clip_segments(
    frames: pd.DataFrame, mapping: Mapping, settings: SegmentSettings, channels: Sequence[str] | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """Windows of one clip as tensors, with their rule labels.

    frames: a frame table (cached or from ``aupipe.analyze``). Windows are those of ``aupipe
    run`` (``aupipe.signal.windows.compute_windows``), labelled by ``mapping`` exactly as ``aupipe run``
    labels them; windows under ``min_coverage`` or without a face frame are dropped.
    channels: the input columns (default: those matching ``settings.channels``).
    Returns X (n, n_steps, n_channels) float32 and the kept window rows (index reset).
    """
    from aupipe.chain.stream import label_windows
    from aupipe.signal.windows import WindowSettings, compute_windows

    columns = list(channels) if channels is not None else channel_columns(list(frames.columns), settings.channels)
    window_table = compute_windows(frames, WindowSettings(settings.window_ms, settings.stride_ms))
    labelled = label_windows(window_table, mapping)
    X, ok = resample_windows(
        frames, labelled["start_ms"].to_numpy(), labelled["end_ms"].to_numpy(), columns, settings.n_steps
    )
    keep = ok & (labelled["face_coverage"].to_numpy(dtype=np.float64) >= settings.min_coverage)
    return X[keep], labelled.loc[keep].reset_index(drop=True)
