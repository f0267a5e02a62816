"""``aupipe live (--camera N | --url URL | --file PATH [--realtime]) [--jsonl] [--out DIR]``: AUs,
labels and events as they happen (docs/live.md). Parses arguments and calls ``aupipe.live``;
errors are handled by ``aupipe.cli.main`` (one line, exit code)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import aupipe
from aupipe.cli.args import add_backend, add_faces, add_min_confidence, landmark_settings, number, positive_s

_minutes = number("minutes", above=0, unit="minutes")


def add_live_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``live`` sub-command."""
    parser = commands.add_parser(
        "live", help="AUs, labels and events from a camera, a stream or a file, as they happen"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--camera", type=number("a camera index", int, at_least=0), metavar="N", help="camera index")
    source.add_argument("--url", metavar="URL", help="a stream (RTSP, HTTP, ... anything OpenCV/FFmpeg opens)")
    source.add_argument("--file", metavar="VIDEO", help="a video file (with --realtime: at its own pace)")
    parser.add_argument(
        "--realtime", action="store_true", help="play --file at its own pace (default: as fast as it goes)"
    )
    parser.add_argument(
        "--jsonl", action="store_true", help="print one JSON object per record on stdout (docs/live.md)"
    )
    parser.add_argument("--out", metavar="DIR", help="also write the window and event tables into DIR (must exist)")
    parser.add_argument("--frames", action="store_true", help="with --out: also write the frame table")
    parser.add_argument("--rotate-min", type=_minutes, metavar="M", help="with --out: start new files every M minutes")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv", help="with --out: table format")
    parser.add_argument("--no-frame-records", action="store_true", help="leave the per-frame records out of --jsonl")
    parser.add_argument("--mapping", metavar="NAME_OR_FILE", help="emotion mapping: shipped name or YAML file")
    parser.add_argument(
        "--calibration-s", type=positive_s, default=5.0, metavar="S",
        help="the neutral baseline comes from the first S seconds; nothing comes out before (default 5)",
    )  # fmt: skip
    parser.add_argument(
        "--no-drop", action="store_true",
        help="--file only: never drop a frame when processing falls behind (latency grows instead)",
    )  # fmt: skip
    parser.add_argument("--no-spotting", action="store_true", help="no event spotting")
    parser.add_argument("--blinks", action="store_true", help="spot blinks (AU43) as events too")
    add_min_confidence(parser)
    add_faces(parser)
    add_backend(parser)
    parser.add_argument("--preview", action="store_true", help="show the face, AU bars and the label in a window")


class _Preview:
    """An OpenCV window: the frame, each face's box and its strongest AUs as bars, its label."""

    def __init__(self) -> None:
        self.labels: dict[int, str] = {}

    def __call__(self, rgb: Any, records: list[dict[str, Any]]) -> None:
        import cv2

        image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        for record in records:
            if record["type"] == "window":
                self.labels[int(record["face_id"])] = str(record["emotion"])
        for record in records:
            if record["type"] != "frame" or not record.get("face_found"):
                continue
            x, y, w, h = (int(record[k] or 0) for k in ("box_x_px", "box_y_px", "box_w_px", "box_h_px"))
            cv2.rectangle(image, (x, y), (x + w, y + h), (0, 200, 0), 2)
            label = self.labels.get(int(record["face_id"]), "")
            cv2.putText(image, f"{record['face_id']}: {label}", (x, max(y - 8, 12)), 0, 0.6, (0, 200, 0), 2)
            aus = sorted(((v or 0.0, k[:4]) for k, v in record.items() if k.endswith("_r")), reverse=True)[:5]
            for row, (value, name) in enumerate(aus):
                top = y + h + 8 + row * 14
                cv2.rectangle(image, (x, top), (x + int(20 * value), top + 10), (0, 160, 255), -1)
                cv2.putText(image, name, (x + int(20 * value) + 4, top + 10), 0, 0.4, (255, 255, 255), 1)
        try:
            cv2.imshow("aupipe live", image)
            cv2.waitKey(1)
        except cv2.error:
            raise aupipe.SettingsError("--preview needs a display (OpenCV could not open a window)") from None


def cmd_live(args: argparse.Namespace) -> int:
    """Run live until the source ends or Ctrl-C; one line on stderr at the end."""
    import dataclasses

    from aupipe.cli.args import spotting_settings
    from aupipe.running.live import live_pipeline_settings
    from aupipe.running.run import StopFlag

    if not (args.jsonl or args.out or args.preview):
        raise aupipe.SettingsError("nothing to show or write: give --jsonl, --out DIR and/or --preview")
    if (
        args.preview
        and sys.platform.startswith("linux")
        and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    ):  # OpenCV's window toolkit aborts the process without one
        raise aupipe.SettingsError("--preview needs a display (neither DISPLAY nor WAYLAND_DISPLAY is set)")
    if args.realtime and args.file is None:
        raise aupipe.SettingsError("--realtime paces a --file; cameras and streams are live already")
    if args.no_drop and args.file is None:
        raise aupipe.SettingsError("--no-drop is for --file: a camera or a stream cannot wait")
    source = args.camera if args.camera is not None else (args.url or args.file)
    settings = live_pipeline_settings(args.calibration_s)
    settings = dataclasses.replace(
        settings, spotting=None if args.no_spotting else spotting_settings(args),
        landmarks=landmark_settings(args, settings.landmarks),
    )  # fmt: skip
    end: dict[str, Any] = {}
    with StopFlag("aupipe: stopping after this frame (Ctrl-C again to abort)") as stop:
        records = aupipe.live(
            source, args.mapping, faces=args.faces, realtime=args.realtime or args.file is None,
            drop=not args.no_drop and (args.file is None or args.realtime), calibration_s=args.calibration_s, out_dir=args.out, rotate_min=args.rotate_min,
            table_format=args.format, frame_table=args.frames, frames=not args.no_frame_records,
            settings=settings, stop=lambda: stop.requested, preview=_Preview() if args.preview else None,
        )  # fmt: skip
        try:
            for record in records:
                if record["type"] == "end":
                    end = record
                if args.jsonl:
                    sys.stdout.write(json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n")
                    sys.stdout.flush()
        except BrokenPipeError:  # the reader of stdout went away: stop cleanly, keep the tables
            records.close()
            sys.stdout = None  # type: ignore[assignment]  # nothing more to flush there
            end = {"reason": "stdout was closed"}
    tables = end.get("tables") or []
    written = f" -> {', '.join(tables)}" if tables else ""
    print(
        f"aupipe: live: {end.get('reason', 'stopped')} after {end.get('frames', 0)} frames "
        f"({end.get('dropped', 0)} dropped), {end.get('windows', 0)} windows, {end.get('events', 0)} events{written}",
        file=sys.stderr,
    )
    return 0
