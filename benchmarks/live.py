"""Live mode latency and drops (a benchmark that prints its figures; not a test).

Source: ``data/samples/single_face.mp4`` (640x360, 30 fps, 72 frames, one real person)
ping-pong looped to ``--duration-s`` seconds (D, default 60) and written as an MJPG .avi in a
temporary folder; with ``--events``, ``aupipe.events.synth.synthesize`` of
``1001_DFA_NEU_XX.flv`` instead (480x360, ~30 fps, with injected micro / macro expressions), so
that event records come out. The clip is then run through ``aupipe.live(clip, realtime=True)``
(``drop`` on, as for a camera): a reader thread releases each frame when the wall clock reaches
its time (a 30 fps file comes at 30 fps) and drops the oldest waiting frame when processing
falls behind. aupipe and MediaPipe are imported before the clock starts, not the landmarker:
``live`` opens it after the reader has started, as with a camera.

Figures:
- how far the reader fell behind the file's own pace (from the processed frames: release time
  minus schedule): 0 when the source really came at 30 fps; more means the reader was held back
  and the file played slower than real time, so fewer frames were dropped than a real 30 fps
  camera would lose (the run's wall time then exceeds the video's length);
- frames read (by the reader), processed (``end`` record's ``frames``: face 0's rows), dropped
  and the drop rate (dropped / read);
- capture -> frame-record latency (the ``frame`` records' ``latency_ms``: wall clock from the
  moment the reader released the frame to the moment its record was made) median / p95 / p99 /
  max, over all frames and over the frames after the calibration span. The first
  ``--calibration-s`` seconds (5) are held until the neutral baseline is known, so their
  latency is up to that span by design; the targets are for the frames after it. A frame's
  record also waits for the two frames after it (the AU stage's two-frame filter): at least
  66.7 ms at 30 fps before any processing;
- window close -> window-record latency (``window`` records: from the capture of the first frame
  at or after the window's end) median / p95, all windows and those ending after calibration
  (a window also waits for the speech stage's 1 s of look-ahead: at least ~1 s);
- event records (if any): ``delay_ms`` (video time past the event's offset) and ``latency_ms``
  (wall clock from the capture of the frame at its offset);
- per span of video time (``--span-s``, 10 s): frames processed, dropped, latency median / p95
  (does latency settle, or grow?);
- breakdown of the live loop per batch (the frames waiting at each moment), by timing the calls
  the loop makes (wrappers around ``LiveSource.batches``, ``landmarks.detect``,
  ``chain.frames.frame_table`` and ``chain.stream.advance``; aupipe itself is not changed):
  wait for frames, detect, frame_table, advance, and the rest (records, yield), before and after
  the calibration span; "busy ms/frame" above 33.3 means 30 fps cannot be kept up
  (``--no-breakdown`` runs without the wrappers).

Targets (issue 19), printed beside the figures: median capture -> frame-record latency <= 100 ms,
p95 <= 250 ms, drop rate 0, at 30 fps 640x360 on 2 cores. The CPU count is that of
``os.sched_getaffinity``; run it with nothing else heavy running. Takes D plus however far the
reader fell behind, plus a few seconds to build the clip (D = 60: about 65 s on 2 cores).

Usage: python benchmarks/live.py [--duration-s 60] [--faces 1] [--calibration-s 5]
       [--events [--n-micro 6 --n-macro 2 --seed 1]] [--span-s 10] [--no-breakdown]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_MEDIAN_MS = 100.0
TARGET_P95_MS = 250.0


def ping_pong_clip(clip: Path, duration_s: float, out: Path) -> tuple[int, int, float, int]:
    """Write ``clip`` looped forwards then backwards (no jump at the seams) for ``duration_s`` s
    as an MJPG .avi at the clip's fps; returns (width, height, fps, frames)."""
    import cv2

    from benchmarks.faces_footage import ping_pong
    from benchmarks.throughput import read_clip

    frames, fps = read_clip(clip)
    if not frames:
        raise SystemExit(f"{clip}: no frames")
    n = int(round(duration_s * fps))
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for i in range(n):
        writer.write(frames[ping_pong(i / fps, fps, len(frames))])
    writer.release()
    return width, height, fps, n


def probe(path: Path) -> tuple[int, int, float, int]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    info = (
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
    )  # fmt: skip
    capture.release()
    return info


class Breakdown:
    """Per-batch timings of the live loop, from wrappers around the calls it makes."""

    def __init__(self) -> None:
        self.batches: list[dict[str, float]] = []
        self.flush: dict[str, float] = {}
        self._asked = 0.0
        self._after_advance: float | None = None
        self._ended = False

    def _current(self) -> dict[str, float]:
        return self.flush if self._ended or not self.batches else self.batches[-1]

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        import aupipe.running.live as live_module
        from aupipe.signal import landmarks

        probe_self = self
        plain_source, plain_detect = live_module.LiveSource, landmarks.detect
        plain_table, plain_advance = live_module.frame_table, live_module.advance

        class TimedSource(plain_source):  # type: ignore[misc, valid-type]
            def batches(self) -> Iterator[Any]:
                inner = super().batches()
                while True:
                    asked = time.perf_counter()
                    if probe_self._after_advance is not None and probe_self.batches:
                        probe_self.batches[-1]["rest"] = asked - probe_self._after_advance
                    try:
                        batch = next(inner)
                    except StopIteration:
                        probe_self._ended = True  # what follows is the final flush
                        return
                    got = time.perf_counter()
                    probe_self.batches.append({
                        "n": len(batch), "wait": got - asked, "last_ms": batch[-1].frame.time_ms,
                        "queued_ms": 1000 * (time.monotonic() - batch[0].captured_s),
                        "detect": 0.0, "table": 0.0, "advance": 0.0, "rest": np.nan,
                    })  # fmt: skip
                    probe_self._after_advance = None
                    yield batch

        def timed(name: str, fn: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    end = time.perf_counter()
                    probe_self._current()[name] = probe_self._current().get(name, 0.0) + end - start
                    if name == "advance":
                        probe_self._after_advance = end

            return wrapper

        live_module.LiveSource = TimedSource
        landmarks.detect = timed("detect", plain_detect)
        live_module.frame_table = timed("table", plain_table)
        live_module.advance = timed("advance", plain_advance)
        try:
            yield
        finally:
            live_module.LiveSource, landmarks.detect = plain_source, plain_detect
            live_module.frame_table, live_module.advance = plain_table, plain_advance


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def fmt_ms(values: list[float], qs: tuple[float, ...]) -> str:
    if not values:
        return "-"
    return " / ".join(f"{pct(values, q):7.1f}" if q < 100 else f"{max(values):7.1f}" for q in qs)


def verdict(value: float, target: float) -> str:
    if not np.isfinite(value):
        return "-"
    return "met" if value <= target else "NOT met"


def print_breakdown(breakdown: Breakdown, calibration_ms: float, wall_s: float) -> None:
    rows = breakdown.batches
    parts = ("wait", "detect", "table", "advance", "rest")
    print()
    print("live loop per batch (ms; median / p95 / max; batch = the frames waiting when the loop asked):")
    header = f"  {'span':<18} {'batches':>7} {'frames/batch':>12} " + " ".join(f"{p:>23}" for p in parts)
    print(header + f" {'busy ms/frame':>13}")
    for name, chosen in (
        ("calibration", [b for b in rows if b["last_ms"] < calibration_ms]),
        ("after calibration", [b for b in rows if b["last_ms"] >= calibration_ms]),
        ("all", rows),
    ):
        if not chosen:
            continue
        frames = sum(b["n"] for b in chosen)
        busy = sum(b["detect"] + b["table"] + b["advance"] + np.nan_to_num(b["rest"]) for b in chosen)
        cells = []
        for part in parts:
            values = [1000 * b[part] for b in chosen if np.isfinite(b.get(part, np.nan))]
            cells.append(f"{pct(values, 50):6.1f} /{pct(values, 95):6.1f} /{max(values):7.1f}" if values else "-")
        sizes = [b["n"] for b in chosen]
        print(f"  {name:<18} {len(chosen):>7} {np.mean(sizes):6.2f} (max {max(sizes):>2}) "
              + " ".join(f"{c:>23}" for c in cells) + f" {1000 * busy / frames:13.1f}")  # fmt: skip
    totals = {p: sum(np.nan_to_num(b.get(p, 0.0)) for b in breakdown.batches) for p in parts}
    busy = sum(v for k, v in totals.items() if k != "wait")
    print("  share of the run's wall time: " + ", ".join(
        f"{p} {100 * totals[p] / wall_s:.1f}%" for p in parts
    ) + f"; busy {100 * busy / wall_s:.1f}%")  # fmt: skip
    if breakdown.flush:
        flush = breakdown.flush
        print(f"  final flush (source ended): advance {1000 * flush.get('advance', 0.0):.1f} ms")
    queued = [b["queued_ms"] for b in breakdown.batches]
    print(f"  oldest frame of a batch had waited (capture -> picked up): median {pct(queued, 50):.1f}, "
          f"p95 {pct(queued, 95):.1f}, max {max(queued):.1f} ms")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=60.0, help="source length in seconds (default 60)")
    parser.add_argument("--faces", type=int, default=None, help="faces=N for aupipe.live (default: its own, 1)")
    parser.add_argument("--calibration-s", type=float, default=5.0, help="calibration_s for aupipe.live (default 5)")
    parser.add_argument("--events", action="store_true", help="source: synthetic events on 1001_DFA_NEU_XX.flv")
    parser.add_argument("--n-micro", type=int, default=6, help="micro-expressions injected with --events")
    parser.add_argument("--n-macro", type=int, default=2, help="macro-expressions injected with --events")
    parser.add_argument("--seed", type=int, default=1, help="seed of the injected events")
    parser.add_argument("--span-s", type=float, default=10.0, help="span of video time of the per-span table")
    parser.add_argument("--no-breakdown", action="store_true", help="run without the timing wrappers")
    args = parser.parse_args(argv)

    import warnings

    import aupipe
    from aupipe.rules import mapping
    from aupipe.signal import landmarks

    warnings.simplefilter("ignore", aupipe.AupipeWarning)
    began = time.perf_counter()
    cpus = len(os.sched_getaffinity(0))
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        if args.events:
            from aupipe.events import synth

            clip = Path(tmp) / "live_events.avi"
            synth.synthesize(ROOT / "data" / "samples" / "1001_DFA_NEU_XX.flv", clip, n_micro=args.n_micro,
                             n_macro=args.n_macro, seed=args.seed, duration_s=args.duration_s)  # fmt: skip
            width, height, fps, n_frames = probe(clip)
            described = (f"synthetic events ({args.n_micro} micro, {args.n_macro} macro, seed {args.seed}) on "
                         f"1001_DFA_NEU_XX.flv: {width}x{height} (not 640x360)")  # fmt: skip
        else:
            clip = Path(tmp) / "live_source.avi"
            width, height, fps, n_frames = ping_pong_clip(ROOT / "data" / "samples" / "single_face.mp4",
                                                          args.duration_s, clip)  # fmt: skip
            described = f"single_face.mp4 ping-pong looped: {width}x{height}"
        built_s = time.perf_counter() - began
        landmarks.import_mediapipe()  # imports are not the run's cost
        mapping.load_mapping()
        breakdown = Breakdown()
        records: list[dict[str, Any]] = []
        with contextlib.ExitStack() as stack:
            if not args.no_breakdown:
                stack.enter_context(breakdown.installed())
            start = time.perf_counter()
            for record in aupipe.live(clip, realtime=True, calibration_s=args.calibration_s, faces=args.faces):
                record["_received_s"] = time.monotonic()
                records.append(record)
            wall_s = time.perf_counter() - start
            started_s = time.monotonic() - wall_s

    calibration_ms = 1000.0 * args.calibration_s
    end = next(r for r in records if r["type"] == "end")
    frames = [r for r in records if r["type"] == "frame"]
    windows = [r for r in records if r["type"] == "window"]
    events = [r for r in records if r["type"] == "event"]
    face0 = [r for r in frames if r.get("face_id", 0) == 0]
    lat_all = [r["latency_ms"] for r in frames if r["latency_ms"] is not None]
    lat_after = [r["latency_ms"] for r in frames if r["latency_ms"] is not None and r["time_ms"] >= calibration_ms]
    no_latency = sum(r["latency_ms"] is None for r in frames)
    win_all = [r["latency_ms"] for r in windows if r["latency_ms"] is not None]
    win_after = [r["latency_ms"] for r in windows if r["latency_ms"] is not None and r["end_ms"] >= calibration_ms]
    read, dropped = end["read"], end["dropped"]
    drop_rate = dropped / read if read else float("nan")
    seen = {int(r["frame"]) for r in face0}
    dropped_times = [1000.0 * i / fps for i in range(read) if i not in seen]
    # when each processed frame was released by the reader (received - latency), against its schedule
    # (the first processed frame's release + its video time): > 0 means the source played slower than 30 fps
    released = [(r["time_ms"], r["_received_s"] - r["latency_ms"] / 1000) for r in face0 if r["latency_ms"] is not None]
    if released:
        t0_ms, c0_s = released[0]
        behind_ms = [1000 * (c - c0_s) - (t - t0_ms) for t, c in released]
    first_start = next(r for r in records if r["type"] == "start")["_received_s"] - started_s

    print()
    print(f"live benchmark: aupipe.live(clip, realtime=True, drop=True, calibration_s={args.calibration_s:g}"
          + (f", faces={args.faces}" if args.faces is not None else "") + ")")  # fmt: skip
    print(f"source: {described}, {fps:.2f} fps, {n_frames} frames ({n_frames / fps:.1f} s), MJPG .avi")
    print(f"CPUs (sched_getaffinity): {cpus}; load average before the run: "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip
    print(f"end: reason {end['reason']!r}; run wall time {wall_s:.1f} s for {n_frames / fps:.1f} s of video")
    if released:
        print(f"  start record after {first_start:.2f} s; first frame released {c0_s - started_s:.2f} s after the call; "
              f"reader behind the file's own pace (processed frames): median {pct(behind_ms, 50):.0f} ms, "
              f"at the end {behind_ms[-1]:.0f} ms, max {max(behind_ms):.0f} ms")  # fmt: skip
    print()
    print(f"frames read {read}, processed {end['frames']}, dropped {dropped}; drop rate {100 * drop_rate:.2f}%"
          f"   (target 0: {'met' if dropped == 0 else 'NOT met'})")  # fmt: skip
    if dropped_times:
        first_s = sum(t < 1000.0 for t in dropped_times)
        in_cal = sum(t < calibration_ms for t in dropped_times)
        print(f"  dropped frames by video time: {first_s} in the first second, {in_cal} in the calibration "
              f"span, {len(dropped_times) - in_cal} after it")  # fmt: skip
    print()
    print("capture -> frame-record latency (ms)    median /     p95 /     p99 /     max   frames")
    print(f"  all frames                          {fmt_ms(lat_all, (50, 95, 99, 100))}  {len(lat_all):>6}")
    print(f"  after calibration (t >= {args.calibration_s:g} s)       {fmt_ms(lat_after, (50, 95, 99, 100))}  "
          f"{len(lat_after):>6}")  # fmt: skip
    med, p95 = pct(lat_after, 50), pct(lat_after, 95)
    print(f"  targets (after calibration): median <= {TARGET_MEDIAN_MS:g} ms: {verdict(med, TARGET_MEDIAN_MS)}"
          f" ({med:.1f}); p95 <= {TARGET_P95_MS:g} ms: {verdict(p95, TARGET_P95_MS)} ({p95:.1f})")  # fmt: skip
    print(f"  (the first {args.calibration_s:g} s are held until the neutral baseline is known, so the "
          f"'all frames' figures include up to {args.calibration_s:g} s of wait by design)")  # fmt: skip
    if no_latency:
        print(f"  {no_latency} frame records had no latency (capture time no longer known)")
    print()
    print("window close -> window-record latency (ms)    median /     p95   windows")
    print(f"  all windows                                {fmt_ms(win_all, (50, 95))}  {len(win_all):>7}")
    print(f"  ending after calibration                   {fmt_ms(win_after, (50, 95))}  {len(win_after):>7}")
    print()
    if events:
        delays = [r["delay_ms"] for r in events]
        lat_events = [r["latency_ms"] for r in events if r["latency_ms"] is not None]
        print(f"events: {len(events)}; delay after offset (video time, ms) median {pct(delays, 50):.0f}, "
              f"max {max(delays):.0f}; latency from capture at offset (ms) median {pct(lat_events, 50):.0f}, "
              f"max {max(lat_events) if lat_events else float('nan'):.0f}")  # fmt: skip
    else:
        print("events: none came out" + ("" if args.events else " (use --events for a source with expressions)"))
    print()
    print(f"per {args.span_s:g} s of video time:   processed  dropped   latency median /     p95")
    span_ms = 1000.0 * args.span_s
    for k in range(int(np.ceil(n_frames / fps * 1000.0 / span_ms))):
        lo, hi = k * span_ms, (k + 1) * span_ms
        in_span = [r["latency_ms"] for r in face0 if lo <= r["time_ms"] < hi and r["latency_ms"] is not None]
        n_dropped = sum(lo <= t < hi for t in dropped_times)
        print(f"  {lo / 1000:5.0f}-{hi / 1000:<5.0f} s          {len(in_span):>6}   {n_dropped:>6}   "
              f"        {fmt_ms(in_span, (50, 95))}")  # fmt: skip
    if not args.no_breakdown and breakdown.batches:
        print_breakdown(breakdown, calibration_ms, wall_s)
    print()
    print(f"took {time.perf_counter() - began:.0f} s (clip built in {built_s:.0f} s)")


if __name__ == "__main__":
    main()
