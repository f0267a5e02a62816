"""Report benchmark (prints its figures; not a test): how long the report of an hour-long video takes
to build, as a share of the run that made its tables, and how big the page is (issue 17: under
10 % of the run, about 10 MB at most for an hour).

How (default, about 5 minutes here):

1. A 1-minute clip from a sample clip (``aupipe.events.synth``, ping-pong) with synth's usual
   schedule of 10 micro and 3 macro events a minute, many more than real footage has (a
   handful a minute), so the page carries many event cards.
2. ``aupipe.run`` on it (every core, as the CLI) gives the run time of a minute; the run time
   of an hour is taken as 60 times that (the pipeline is linear in the video's length: 100
   frames/s at 1 and at 60 minutes, docs/spotting.md).
3. The hour: ``aupipe.analyze``'s in-memory tables of the minute (full precision, as ``run``
   holds them) tiled 60 times with shifted frames, times and numbers, and the minute's video
   looped 60 times into one MJPG file (so the stills are read by seeking in a real hour-long
   file). The report is built from these as ``aupipe run --report`` builds it at the end of its
   pass (``RunCollector.tables`` then ``page.build``), page and PNG written.

``--full`` instead runs ``aupipe run --report`` on the hour-long video itself and times the
report's part inside it: keeping the rows while streaming, the tables, the page and writing it
(about 15 minutes on 2 cores).

Usage: python benchmarks/report.py [--clip data/samples/1001_DFA_NEU_XX.flv] [--minutes 60] [--full]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def tiled(table: object, copies: int, shifts: dict[str, float]) -> object:
    """``table`` repeated ``copies`` times, column ``c`` of copy k shifted by k * ``shifts[c]``."""
    import pandas as pd

    parts = []
    for k in range(copies):
        part = table.copy()
        for column, step in shifts.items():
            if column in part:
                part[column] = part[column] + k * step
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def loop_video(clip: Path, copies: int, out: Path) -> int:
    """``clip`` ``copies`` times over into ``out`` (MJPG AVI at the clip's fps); returns its frames."""
    import cv2

    capture = cv2.VideoCapture(str(clip))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.release()
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    written = 0
    for _ in range(copies):
        capture = cv2.VideoCapture(str(clip))
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            writer.write(frame)
            written += 1
        capture.release()
    writer.release()
    return written


def timed_run(video: Path, folder: Path, report: bool) -> tuple[float, object]:
    import aupipe

    start = time.perf_counter()
    summary = aupipe.run(video, folder / "w.csv", events_out=folder / "e.csv", progress=False, workers=None,
                         report_out=folder / "r.html" if report else None)  # fmt: skip
    return time.perf_counter() - start, summary


def extrapolated(clip: Path, minutes: int, folder: Path) -> None:
    import aupipe
    from aupipe.events import synth
    from aupipe.reporting import page
    from aupipe.reporting.collect import RunCollector
    from aupipe.signal import video

    minute = folder / "minute.avi"
    synth.synthesize(clip, minute, n_micro=10, n_macro=3, seed=1, duration_s=60)
    run_s, summary = timed_run(minute, folder, report=False)
    print(f"run of 1 minute ({summary.n_frames} frames, {summary.n_windows} windows, {summary.n_events} events): "
          f"{run_s:.1f} s -> {minutes} minutes: {run_s * minutes:.0f} s (x{minutes})")  # fmt: skip
    result = aupipe.analyze(minute, settings=aupipe.PipelineSettings(include_landmarks=False), workers=None)
    info = video.probe(minute)
    length_ms = info.frame_count * 1000.0 / info.fps
    n, w, e = len(result.frames), len(result.windows), len(result.events)
    frame_shift = {"frame": n, "time_ms": length_ms}
    window_shift = {"window": w, "start_ms": length_ms, "end_ms": length_ms, "start_frame": n, "end_frame": n}
    event_shift = {"event": e, "onset_ms": length_ms, "apex_ms": length_ms, "offset_ms": length_ms, "onset_frame": n,
                   "apex_frame": n, "offset_frame": n}  # fmt: skip
    hour = folder / "hour.avi"
    start = time.perf_counter()
    frames_written = loop_video(minute, minutes, hour)
    print(f"{minutes}-minute video: {frames_written} frames, {hour.stat().st_size / 1e9:.1f} GB MJPG "
          f"(looped in {time.perf_counter() - start:.0f} s)")  # fmt: skip
    one = RunCollector()
    one.add(result.frames, result.windows, result.events)
    start = time.perf_counter()
    minute_page = page.build(minute, one.tables(result.windows.iloc[:0], result.baseline.table(), None), info,
                             aupipe.load_mapping(result.mapping_name))  # fmt: skip
    print(f"report of the minute: {time.perf_counter() - start:.1f} s, {minute_page.size_bytes / 1e6:.2f} MB "
          f"(timeline data {_data_bytes(minute_page.html) / 1e6:.3f} MB)")  # fmt: skip
    collector = RunCollector()
    collector.add(tiled(result.frames, minutes, frame_shift), tiled(result.windows, minutes, window_shift),
                  tiled(result.events, minutes, event_shift))  # fmt: skip
    emotion_map = aupipe.load_mapping(result.mapping_name)
    timings = {}
    start = time.perf_counter()
    tables = collector.tables(result.windows.iloc[:0], result.baseline.table(), None)
    timings["tables (rounded as written)"] = time.perf_counter() - start
    start = time.perf_counter()
    built = page.build(hour, tables, video.probe(hour), emotion_map)
    timings["page (stills, data, HTML)"] = time.perf_counter() - start
    start = time.perf_counter()
    page.write_report(built, folder / "hour.html")
    timings["write the page"] = time.perf_counter() - start
    start = time.perf_counter()
    png = built.png()
    timings["summary PNG"] = time.perf_counter() - start
    total = sum(timings.values())
    run_hour = run_s * minutes
    print(f"report of {minutes} minutes ({len(tables.frames)} frames, {len(tables.windows)} windows, "
          f"{len(tables.events)} events, {sum(1 for c in built.cards if c['stills'])} with stills):")  # fmt: skip
    for name, seconds in timings.items():
        print(f"  {name:<28} {seconds:6.1f} s")
    print(
        f"  {'total':<28} {total:6.1f} s = {100 * total / run_hour:.1f} % of the run ({run_hour:.0f} s, extrapolated)"
    )
    _sizes(built, png, minutes, _data_bytes(minute_page.html) * minutes)


def _data_bytes(html: str) -> int:
    """Characters of the page's timeline data (the JSON script)."""
    return len(html[html.index('<script type="application/json"') :].split("</script>", 1)[0])


def _sizes(built: object, png: bytes, minutes: int, real_data: int) -> None:
    import re

    html = built.html
    images = sum(len(m) for m in re.findall(r"data:image/jpeg;base64,[A-Za-z0-9+/=]+", html))
    data = _data_bytes(html)
    print(f"page: {built.size_bytes / 1e6:.2f} MB for {minutes} minutes: timeline data {data / 1e6:.2f} MB, stills "
          f"{images / 1e6:.2f} MB, the rest (cards, panels, script) {(built.size_bytes - data - images) / 1e6:.2f} MB; "
          f"summary PNG {len(png) / 1e6:.2f} MB")  # fmt: skip
    # the tiled hour repeats one minute, which deflate packs far better than an hour of real footage
    real = built.size_bytes - data + real_data
    print(f"with the timeline data of {minutes} different minutes ({minutes} x the minute's, "
          f"{real_data / 1e6:.2f} MB): page {real / 1e6:.2f} MB")  # fmt: skip


def full(clip: Path, minutes: int, folder: Path) -> None:
    from aupipe.events import synth
    from aupipe.reporting import collect, page

    minute = folder / "minute.avi"
    synth.synthesize(clip, minute, n_micro=10, n_macro=3, seed=1, duration_s=60)
    hour = folder / "hour.avi"
    loop_video(minute, minutes, hour)
    spent: dict[str, float] = {}

    def timed(owner: object, name: str) -> None:  # the run's own calls, timed
        original = getattr(owner, name)

        def wrapper(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            out = original(*args, **kwargs)
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
            return out

        setattr(owner, name, wrapper)

    timed(collect.RunCollector, "add")
    timed(collect.RunCollector, "tables")
    timed(page, "build")
    timed(page, "fill_pages")
    run_s, summary = timed_run(hour, folder, report=True)
    html = (folder / "r.html").read_text(encoding="utf-8")
    total = sum(spent.values())
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in spent.items())
    print(f"aupipe run --report on {minutes} minutes ({summary.n_frames} frames, {summary.n_events} events): "
          f"{run_s:.0f} s, of which the report {total:.1f} s = {100 * total / run_s:.1f} % ({parts}); "
          f"page {len(html.encode()) / 1e6:.2f} MB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=ROOT / "data" / "samples" / "1001_DFA_NEU_XX.flv")
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--full", action="store_true", help="run the whole pipeline on the hour-long video")
    args = parser.parse_args()
    import aupipe

    warnings.simplefilter("ignore", aupipe.AupipeWarning)
    with tempfile.TemporaryDirectory(prefix="aupipe-report-bench-") as tmp:
        (full if args.full else extrapolated)(args.clip, args.minutes, Path(tmp))


if __name__ == "__main__":
    main()
