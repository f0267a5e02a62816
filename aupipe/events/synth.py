"""Synthetic expressions: inject AU-driven face-mesh motion into real footage, with ground truth.

``synthesize`` reads real footage of one face (a video or a folder of images), finds its
landmarks with aupipe's landmark stage, and for each injected event moves the face mesh the way
the event's Action Units move it (``AU_MOTIONS``: e.g. AU12 lifts the lip corners up and out,
AU04 pulls the brows down and together), following an onset-apex-offset profile (raised-cosine
rise, hold, raised-cosine fall). The image is warped with a dense displacement field that is
non-zero only on the face (Gaussian-weighted interpolation of the landmark displacements, then
``cv2.remap``), so the background stays still. A clip shorter than the requested duration is
looped back and forth (ping-pong: 0 1 ... n-1 n-2 ... 1 0 1 ...) so there is no jump.

Writes the video (``.avi`` = MJPG, ``.mp4`` = mp4v) and returns the ground-truth events table
(the columns ``aupipe.events.spot_eval`` reads: ``onset_ms, offset_ms, kind`` plus frames, apex, AUs).

Limits: geometry only. The warp moves skin and features as a whole; it adds no wrinkles, furrows,
bulges, shading or colour changes, and it cannot open or close an eye realistically (AU43 squeezes
the lid over the eye instead of covering the iris). Amplitudes are in face widths (the
cheek-to-cheek distance, see ``aupipe.signal.normalize``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aupipe.errors import InputError, OutputError, SettingsError

#: Most memory (bytes) a short source that must be looped may take (held to play it back and forth).
MAX_LOOP_BYTES = 2_000_000_000

#: Columns of the ground-truth table (``spot_eval`` needs onset_ms, offset_ms and kind).
TRUTH_COLUMNS: tuple[str, ...] = (
    "event", "onset_ms", "apex_ms", "offset_ms", "duration_ms", "onset_frame", "apex_frame", "offset_frame",
    "kind", "aus", "amplitude_fw", "within_macro",
)  # fmt: skip


@dataclass(frozen=True)
class AuMotion:
    """How one AU moves the mesh.

    right / left: anchor landmarks on the person's right / left side (or the midline);
    direction: unit-ish displacement (canonical axes: x = towards the person's left, y = up,
    z = towards the camera) of the person's LEFT-side anchors; right-side anchors get x mirrored;
    sigma_fw: Gaussian fall-off (face widths) of the motion around the anchors over the mesh;
    gain: anchor displacement per unit amplitude (1 = the amplitude itself, in face widths).
    """

    right: tuple[int, ...]
    left: tuple[int, ...]
    direction: tuple[float, float, float]
    sigma_fw: float = 0.05
    gain: float = 1.0


#: AU -> mesh motion. Anchor sets follow ``aupipe.signal.aus`` (BROW_INNER, LIP_CORNER, ...).
AU_MOTIONS: dict[str, AuMotion] = {
    "AU01": AuMotion((107, 55, 65), (336, 285, 295), (0.0, 1.0, 0.0), 0.05),  # inner brow up
    "AU02": AuMotion((70, 46, 105, 63), (300, 276, 334, 293), (0.0, 1.0, 0.0), 0.05),  # outer brow up
    "AU04": AuMotion((107, 55, 66, 105, 65, 52), (336, 285, 296, 334, 295, 282), (-0.45, -0.9, 0.0), 0.05),
    "AU05": AuMotion((159, 158, 160, 157, 161), (386, 385, 387, 384, 388), (0.0, 1.0, 0.0), 0.025),  # lid up
    "AU06": AuMotion((50, 101, 118, 117), (280, 330, 347, 346), (0.0, 1.0, 0.0), 0.06),  # cheek up
    "AU07": AuMotion((145, 144, 153, 163, 154), (374, 373, 380, 390, 381), (0.0, 1.0, 0.0), 0.025),  # lower lid up
    "AU09": AuMotion((64, 129, 98, 48), (294, 358, 327, 278), (0.0, 1.0, 0.0), 0.045),  # nose wings up
    "AU10": AuMotion((37, 39, 40, 0), (267, 269, 270, 0), (0.0, 1.0, 0.0), 0.045),  # upper lip up
    "AU12": AuMotion((61, 76, 62), (291, 306, 292), (0.55, 0.85, 0.0), 0.055),  # corners up and out
    "AU15": AuMotion((61, 76, 62), (291, 306, 292), (0.1, -1.0, 0.0), 0.055),  # corners down
    "AU17": AuMotion((18, 200, 17, 199), (18, 200, 17, 199), (0.0, 1.0, 0.0), 0.06),  # chin boss up
    "AU20": AuMotion((61, 76, 62), (291, 306, 292), (1.0, 0.0, 0.0), 0.055),  # corners outwards
    "AU43": AuMotion((159, 158, 160, 157, 161), (386, 385, 387, 384, 388), (0.0, -1.0, 0.0), 0.022),  # lid down
}

#: Default apex amplitude (face widths) per AU: visible on a 480x360 clip, within what faces do.
DEFAULT_AMPLITUDE: dict[str, float] = {
    "AU01": 0.08, "AU02": 0.08, "AU04": 0.07, "AU05": 0.025, "AU06": 0.05, "AU07": 0.025, "AU09": 0.05,
    "AU10": 0.06, "AU12": 0.08, "AU15": 0.06, "AU17": 0.06, "AU20": 0.07, "AU43": 0.05,
}  # fmt: skip

#: AU combinations drawn for random events (prototypical expressions the warp can show).
DEFAULT_COMBOS: tuple[tuple[str, ...], ...] = (
    ("AU06", "AU12"), ("AU01", "AU02"), ("AU04", "AU07"), ("AU15", "AU17"), ("AU01", "AU04", "AU15"),
    ("AU09", "AU10"), ("AU12",), ("AU04",), ("AU20",), ("AU01", "AU02", "AU05"),
)  # fmt: skip


@dataclass(frozen=True)
class SynthEvent:
    """One injected event: onset and duration (ms), AU amplitudes (face widths at the apex).

    kind: ``micro`` / ``macro`` (by duration when empty), or ``blink`` (AU43; not a spotting target).
    rise / hold: shares of the duration spent rising to the apex and holding it; the fall takes
    the rest.
    """

    onset_ms: float
    duration_ms: float
    aus: tuple[tuple[str, float], ...]
    kind: str = ""
    rise: float = 0.35
    hold: float = 0.3

    def __post_init__(self) -> None:
        if self.duration_ms <= 0 or self.onset_ms < 0:
            raise SettingsError(f"event at {self.onset_ms} ms: duration must be > 0 and onset >= 0")
        if not (self.rise > 0 and self.hold >= 0 and self.rise + self.hold < 1):
            raise SettingsError(f"event at {self.onset_ms} ms: need rise > 0, hold >= 0, rise + hold < 1")
        for au, _ in self.aus:
            if au not in AU_MOTIONS:
                raise SettingsError(f"{au}: synth cannot inject it; use one of {' '.join(AU_MOTIONS)}")

    @property
    def offset_ms(self) -> float:
        """Offset time (ms): the displacement is back to zero."""
        return self.onset_ms + self.duration_ms

    @property
    def apex_ms(self) -> float:
        """Apex time (ms): the middle of the hold."""
        return self.onset_ms + (self.rise + self.hold / 2) * self.duration_ms


@dataclass(frozen=True)
class SynthSettings:
    """micro_ms / macro_ms: duration ranges (ms) of random events; gap_ms: least gap between them;
    margin_ms: no event this close to either end; micro_max_ms: longest micro event (kind by duration);
    amplitude: per-AU apex amplitude (face widths), scaled by a random factor in ``amplitude_jitter``;
    field_sigma_fw: smoothness of the image displacement field (face widths);
    fps: frame rate of an image-folder source's output."""

    micro_ms: tuple[float, float] = (100.0, 400.0)
    macro_ms: tuple[float, float] = (1000.0, 3000.0)
    gap_ms: float = 1000.0
    margin_ms: float = 1500.0
    micro_max_ms: float = 500.0
    amplitude: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_AMPLITUDE))
    amplitude_jitter: tuple[float, float] = (0.9, 1.2)
    combos: tuple[tuple[str, ...], ...] = DEFAULT_COMBOS
    field_sigma_fw: float = 0.035
    fps: float = 30.0


def profile(time_ms: np.ndarray, event: SynthEvent) -> np.ndarray:
    """Activation 0..1 of ``event`` at ``time_ms`` (n,): raised-cosine rise, hold, raised-cosine fall."""
    u = (np.asarray(time_ms, dtype=np.float64) - event.onset_ms) / event.duration_ms
    fall = 1.0 - event.rise - event.hold
    up = 0.5 - 0.5 * np.cos(np.pi * np.clip(u / event.rise, 0.0, 1.0))
    down = 0.5 - 0.5 * np.cos(np.pi * np.clip((1.0 - u) / fall, 0.0, 1.0))
    return np.where((u > 0) & (u < 1), np.minimum(up, down), 0.0)


def activation(events: Sequence[SynthEvent], time_ms: np.ndarray) -> tuple[list[str], np.ndarray]:
    """AU names and their amplitudes (n, k) in face widths at ``time_ms`` (n,), summed over events."""
    names = sorted({au for event in events for au, _ in event.aus})
    out = np.zeros((len(time_ms), len(names)))
    for event in events:
        weight = profile(time_ms, event)
        for au, amplitude in event.aus:
            out[:, names.index(au)] += weight * amplitude
    return names, out


def mesh_displacement(mesh: np.ndarray, aus: Mapping[str, float]) -> np.ndarray:
    """Displacement (n, 478, 3) in face widths (canonical axes) of normalised meshes (n, 478, 3)
    for AU amplitudes ``aus`` (face widths): each anchor moves by amplitude * direction, the rest
    of the mesh by a Gaussian fall-off of its distance to the nearest anchor of that side."""
    mesh = np.asarray(mesh, dtype=np.float64)
    out = np.zeros_like(mesh)
    for au, amplitude in aus.items():
        motion = AU_MOTIONS[au]
        for anchors, mirror in ((motion.right, -1.0), (motion.left, 1.0)):
            direction = np.array(motion.direction) * np.array([mirror, 1.0, 1.0])
            if motion.right == motion.left and mirror < 0:
                continue  # midline anchors: one set, no mirror
            d2 = ((mesh[:, :, None, :] - mesh[:, None, list(anchors), :]) ** 2).sum(-1).min(-1)  # (n, 478)
            weight = np.exp(-d2 / (2 * motion.sigma_fw**2))
            out += (amplitude * motion.gain * weight)[..., None] * direction
    return np.nan_to_num(out)


def image_map(mesh: np.ndarray, landmarks_px: np.ndarray) -> np.ndarray:
    """Per-frame linear map (n, 3, 2) from canonical-mesh displacements (face widths) to image
    displacements (px): least-squares affine fit of image points on the normalised mesh."""
    n = len(mesh)
    ones = np.ones((n, mesh.shape[1], 1))
    design = np.concatenate([np.nan_to_num(mesh.astype(np.float64)), ones], axis=2)  # (n, 478, 4)
    target = np.nan_to_num(landmarks_px[..., :2].astype(np.float64))
    gram = np.einsum("npi,npj->nij", design, design) + 1e-9 * np.eye(4)
    rhs = np.einsum("npi,npj->nij", design, target)
    coef = np.linalg.solve(gram, rhs)  # (n, 4, 2)
    return coef[:, :3, :]


def dense_field(
    points_px: np.ndarray, disp_px: np.ndarray, shape: tuple[int, int], sigma_px: float
) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """Dense displacement (h, w, 2) px over the face's box (x0, y0, x1, y1) from landmark points
    (478, 2) and their displacements (478, 2): the Gaussian-weighted average of the landmarks'
    displacements, sum_i K_i d_i / (sum_i K_i + 0.3), which fades to zero a few ``sigma_px``
    outside the face. Computed by splatting the points (bilinear) and blurring. None when nothing
    moves."""
    import cv2

    if not np.isfinite(points_px).all() or np.abs(disp_px).max() < 0.05:
        return None
    height, width = shape
    pad = 4 * sigma_px
    x0, y0 = (max(int(np.floor(v - pad)), 0) for v in points_px.min(axis=0))
    x1 = int(min(np.ceil(points_px[:, 0].max() + pad), width))
    y1 = int(min(np.ceil(points_px[:, 1].max() + pad), height))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    h, w = y1 - y0, x1 - x0
    local = points_px - [x0, y0]
    base = np.floor(local).astype(np.int64)
    frac = local - base
    layers = np.zeros((3, h, w), np.float64)  # splatted weight, dx, dy
    values = np.column_stack([np.ones(len(local)), disp_px]).T  # (3, 478)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        weight = (frac[:, 0] if dx else 1 - frac[:, 0]) * (frac[:, 1] if dy else 1 - frac[:, 1])
        cx, cy = np.clip(base[:, 0] + dx, 0, w - 1), np.clip(base[:, 1] + dy, 0, h - 1)
        for k in range(3):
            np.add.at(layers[k], (cy, cx), weight * values[k])
    scale = 2 * np.pi * sigma_px**2  # GaussianBlur normalises its kernel; undo that for sum_i K_i
    blurred = [cv2.GaussianBlur(layer, (0, 0), sigma_px) * scale for layer in layers]
    denominator = blurred[0] + 0.3
    return (x0, y0, x1, y1), np.stack([blurred[1] / denominator, blurred[2] / denominator], axis=-1).astype(np.float32)


def warp_frame(bgr: np.ndarray, points_px: np.ndarray, disp_px: np.ndarray, sigma_px: float) -> np.ndarray:
    """``bgr`` (H, W, 3) with its face moved by landmark displacements ``disp_px`` (478, 2) at
    ``points_px`` (478, 2); pixels away from the face are unchanged."""
    import cv2

    found = dense_field(points_px, disp_px, bgr.shape[:2], sigma_px)
    if found is None:
        return bgr
    (x0, y0, x1, y1), flow = found
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    map_x = xs - flow[..., 0]  # backward map: each output pixel reads from where its content came from
    map_y = ys - flow[..., 1]
    out = bgr.copy()
    out[y0:y1, x0:x1] = cv2.remap(bgr, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out


def schedule(
    duration_ms: float, n_micro: int, n_macro: int, seed: int = 0, settings: SynthSettings = SynthSettings(),
    n_blinks: int = 0,
) -> list[SynthEvent]:  # fmt: skip
    """Random, non-overlapping events: ``n_micro`` micro (``micro_ms``), ``n_macro`` macro
    (``macro_ms``) and ``n_blinks`` blinks, at least ``gap_ms`` apart, onsets on a 1 ms grid.
    Micro durations are spread evenly over ``micro_ms`` (then shuffled) so both ends are tested."""
    rng = np.random.default_rng(seed)
    micro = np.linspace(*settings.micro_ms, n_micro) if n_micro > 1 else np.full(n_micro, np.mean(settings.micro_ms))
    macro = rng.uniform(*settings.macro_ms, n_macro)
    blink = rng.uniform(150.0, 300.0, n_blinks)
    kinds = ["micro"] * n_micro + ["macro"] * n_macro + ["blink"] * n_blinks
    lengths = np.round(np.concatenate([micro, macro, blink]))
    order = rng.permutation(len(kinds))
    free = duration_ms - 2 * settings.margin_ms - lengths.sum() - settings.gap_ms * max(len(kinds) - 1, 0)
    if free < 0:
        raise SettingsError(
            f"{len(kinds)} events do not fit in {duration_ms / 1000:.1f} s with {settings.gap_ms:g} ms gaps; "
            "ask for fewer events or a longer duration"
        )
    slack = np.diff(np.concatenate([[0.0], np.sort(rng.uniform(0, free, len(kinds)))]))
    events, t = [], settings.margin_ms
    for k, i in enumerate(order):
        t += slack[k]
        kind = kinds[i]
        if kind == "blink":
            aus: tuple[tuple[str, float], ...] = (("AU43", float(settings.amplitude.get("AU43", 0.03))),)
            rise, hold = 0.4, 0.2
        else:
            combo = settings.combos[int(rng.integers(len(settings.combos)))]
            jitter = rng.uniform(*settings.amplitude_jitter)
            aus = tuple((au, round(float(settings.amplitude[au]) * jitter, 4)) for au in combo)
            rise, hold = (0.35, 0.3) if kind == "micro" else (0.25, 0.5)
        events.append(SynthEvent(float(np.round(t)), float(lengths[i]), aus, kind, rise, hold))
        t = np.round(t) + lengths[i] + settings.gap_ms
    return events


def truth_table(events: Sequence[SynthEvent], fps: float, micro_max_ms: float = 500.0) -> pd.DataFrame:
    """Ground truth of ``events`` (``TRUTH_COLUMNS``); onset / apex / offset frames are the frames
    (time = frame / fps) nearest to those times."""
    if not events:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TRUTH_COLUMNS})
    onset = np.array([e.onset_ms for e in events])
    offset = np.array([e.offset_ms for e in events])
    apex = np.array([e.apex_ms for e in events])
    step = 1000.0 / fps
    kinds = [e.kind or ("micro" if e.duration_ms <= micro_max_ms else "macro") for e in events]
    table = pd.DataFrame(
        {
            "event": np.arange(len(events)),
            "onset_ms": onset,
            "apex_ms": apex,
            "offset_ms": offset,
            "duration_ms": offset - onset,
            "onset_frame": np.round(onset / step).astype(np.int64),
            "apex_frame": np.round(apex / step).astype(np.int64),
            "offset_frame": np.round(offset / step).astype(np.int64),
            "kind": kinds,
            "aus": [" ".join(au for au, _ in e.aus) for e in events],
            "amplitude_fw": [max(a for _, a in e.aus) for e in events],
        }
    )
    macro = table[table["kind"] == "macro"]
    inside = [
        bool(((macro["onset_ms"] <= on) & (macro["offset_ms"] >= off) & (macro["event"] != i)).any()) and k != "macro"
        for i, on, off, k in zip(table["event"], onset, offset, kinds, strict=True)
    ]
    table["within_macro"] = inside
    return table[list(TRUTH_COLUMNS)]


def _writer(tmp_path: Path, out_path: Path, fps: float, size: tuple[int, int]) -> object:
    """An OpenCV video writer on ``tmp_path``; messages name ``out_path``, the file asked for."""
    import cv2

    codecs = {".avi": "MJPG", ".mp4": "mp4v"}
    codec = codecs.get(out_path.suffix.lower())
    if codec is None:
        raise OutputError(f"{out_path}: write synthetic video as .avi (MJPG) or .mp4 (mp4v)")
    if not out_path.parent.is_dir():
        raise OutputError(f"{out_path}: folder {out_path.parent} does not exist")
    writer = cv2.VideoWriter(str(tmp_path), cv2.VideoWriter_fourcc(*codec), fps, size)
    if not writer.isOpened():
        tmp_path.unlink(missing_ok=True)
        raise OutputError(f"{out_path}: OpenCV cannot write {codec} video here")
    if codec == "MJPG":
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    return writer


def _frames(
    source: Path, n_out: int, loop: bool, settings: SynthSettings, chunk: int = 64
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (rgb (H, W, 3), landmarks_px (478, 3), NaN without a face) for up to ``n_out`` output
    frames: the source played forwards, then, with ``loop``, back and forth (ping-pong). Only a
    looped source is held in memory (at most ``MAX_LOOP_BYTES``)."""
    from aupipe.signal import landmarks
    from aupipe.signal import video
    from aupipe.signal.native import quiet_native_stderr

    frames_in = video.iter_frames(source, video.VideoSettings(image_fps=settings.fps))
    cache: list[tuple[np.ndarray, np.ndarray]] = []
    produced = held = 0
    with quiet_native_stderr(), landmarks.open_landmarker() as landmarker:
        for batch_frames, batch in landmarks.detect_batches(landmarker, frames_in, chunk):
            for frame, points in zip(batch_frames, batch.landmarks_px, strict=True):
                if produced >= n_out:
                    return
                if loop:
                    cache.append((frame.rgb, points))
                    held += frame.rgb.nbytes
                    if held > MAX_LOOP_BYTES:
                        raise InputError(
                            f"{source}: too long to loop in memory; ask for at most its own length, or cut it shorter"
                        )
                produced += 1
                yield frame.rgb, points
    if not loop or produced >= n_out:
        return
    period = max(2 * len(cache) - 2, 1)
    while produced < n_out:
        k = produced % period
        yield cache[k if k < len(cache) else period - k]
        produced += 1


def synthesize(
    source: str | Path,
    out_path: str | Path,
    events: Sequence[SynthEvent] | None = None,
    *,
    n_micro: int = 10,
    n_macro: int = 3,
    n_blinks: int = 0,
    seed: int = 0,
    duration_s: float | None = None,
    truth_path: str | Path | None = None,
    settings: SynthSettings = SynthSettings(),
) -> pd.DataFrame:
    """Write ``out_path``: ``source`` (a clip or image folder of one face) with injected events.

    events: explicit ``SynthEvent`` list; None draws ``n_micro`` micro, ``n_macro`` macro and
    ``n_blinks`` blink events at random (``seed``, ``schedule``). duration_s: output length (s);
    a shorter source is ping-pong looped, None keeps the source's length. Frames without a face
    are copied unchanged. Returns the ground-truth table (``TRUTH_COLUMNS``), also written to
    ``truth_path`` as CSV when given.
    """
    from aupipe.signal import normalize
    from aupipe.signal import video
    import contextlib
    import os
    import secrets

    from aupipe.io.writers import AtomicCsvWriter, check_outputs

    source, out_path = Path(source), Path(out_path)
    if out_path.suffix.lower() not in (".avi", ".mp4"):
        raise OutputError(f"{out_path}: write synthetic video as .avi (MJPG) or .mp4 (mp4v)")
    check_outputs([source], {"video": out_path, "truth": truth_path})
    info = video.probe(source, video.VideoSettings(image_fps=settings.fps))
    fps = info.fps if info.fps > 0 and not info.is_image_folder else settings.fps
    n_out = int(round(duration_s * fps)) if duration_s is not None else info.frame_count
    if n_out <= 0:
        raise InputError(f"{source}: no frames to write (duration {duration_s} s, {info.frame_count} frames)")
    if events is None:
        events = schedule(n_out * 1000.0 / fps, n_micro, n_macro, seed, settings, n_blinks)
    events = list(events)
    truth = truth_table(events, fps, settings.micro_max_ms)
    # the video goes to a temporary name beside the target (OpenCV picks the codec by suffix) and
    # is renamed when complete; the truth table is committed only after the video is written
    tmp_video = out_path.with_name(f".{out_path.stem}.{secrets.token_hex(4)}.part{out_path.suffix}")
    writer = _writer(tmp_video, out_path, fps, (info.width, info.height))
    with contextlib.ExitStack() as stack:
        stack.callback(tmp_video.unlink, missing_ok=True)  # runs last: after an error, nothing is left
        stack.callback(writer.release)  # type: ignore[attr-defined]
        truth_writer = stack.enter_context(AtomicCsvWriter(truth_path)) if truth_path is not None else None
        import cv2

        names, amplitudes = activation(events, np.arange(n_out) * 1000.0 / fps)
        loop = duration_s is not None and info.frame_count < n_out
        for index, (rgb, points) in enumerate(_frames(source, n_out, loop, settings)):
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            active = {au: float(a) for au, a in zip(names, amplitudes[index], strict=True) if a > 0}
            if active and np.isfinite(points).all():
                mesh = normalize.normalize_mesh(points[None])
                delta = mesh_displacement(mesh, active)  # (1, 478, 3) face widths
                disp_px = np.einsum("npi,nij->npj", delta, image_map(mesh, points[None]))[0]
                width_px = float(normalize.face_width(points[None])[0])
                bgr = warp_frame(bgr, points[:, :2].astype(np.float64), disp_px, settings.field_sigma_fw * width_px)
            writer.write(bgr)  # type: ignore[attr-defined]
        writer.release()  # type: ignore[attr-defined]
        try:
            os.replace(tmp_video, out_path)
        except OSError as err:
            raise OutputError(f"{out_path}: cannot write output ({err.strerror})") from None
        if truth_writer is not None:
            truth_writer.write(truth)
            truth_writer.commit(list(TRUTH_COLUMNS))
    return truth
