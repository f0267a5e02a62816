"""``aupipe import {openface,pyfeat} FILE.csv``: another tool's per-frame AUs through windows, mapping and
spotting (docs/import.md). Parses arguments and calls ``aupipe.run_frames``; errors are handled by
``aupipe.cli.main`` (one line, exit code)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import aupipe
from aupipe.cli.args import add_min_confidence, number, positive_ms, spotting_settings

EXIT_INTERRUPTED = 130


_frame_rate = number("frames per second", above=0, unit="frames/s")


def add_import_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``import`` sub-command."""
    parser = commands.add_parser(
        "import", help="windows, emotions and events from OpenFace / py-feat per-frame AU CSVs (docs/import.md)"
    )
    parser.add_argument("kind", choices=("openface", "pyfeat"), help="the tool that wrote the CSV")
    parser.add_argument("file", metavar="FILE.csv", help="OpenFace FeatureExtraction CSV, or py-feat Fex.to_csv")
    parser.add_argument("-o", "--output", help="window table (default: FILE_STEM.windows.csv here)")
    parser.add_argument("--frames", metavar="FRAMES.csv", help="also write the imported frame table")
    parser.add_argument("--events", metavar="EVENTS.csv", help="also write the spotted expression events")
    parser.add_argument("--summary", metavar="SUMMARY.csv", help="also write the clip summary (per --segment-s)")
    parser.add_argument("--segment-s", type=float, default=60.0, help="segment length of --summary in s (default 60)")
    parser.add_argument("--mapping", metavar="NAME_OR_FILE", help="emotion mapping: shipped name or YAML file")
    parser.add_argument("--window-ms", type=positive_ms, default=500.0, help="window length in ms (default 500)")
    parser.add_argument("--stride-ms", type=positive_ms, default=100.0, help="step between windows in ms (default 100)")
    parser.add_argument(
        "--fps", type=_frame_rate,
        help="the video's frame rate, for a table without frame times (py-feat): time = frame / fps",
    )  # fmt: skip
    parser.add_argument("--face-id", type=int, help="OpenFace face_id to keep (default: the lowest)")
    parser.add_argument("--blinks", action="store_true", help="spot blinks (AU43, py-feat only) as events too")
    add_min_confidence(parser)
    parser.add_argument("--no-spotting", action="store_true", help="no event spotting (and no in_event column)")
    parser.add_argument(
        "--format", choices=("csv", "parquet"), help="table format of every output (default: from the file names)"
    )
    parser.add_argument("--quiet", action="store_true", help="no note on what the imported table lacks")


def cmd_import(args: argparse.Namespace) -> int:
    """Run ``aupipe import``; returns the exit code (errors propagate to ``aupipe.cli.main``)."""
    from aupipe.chain.settings import PipelineSettings

    if args.events and args.no_spotting:
        raise aupipe.SettingsError("--events needs spotting; leave out --no-spotting")
    output = args.output or f"{Path(args.file).stem}.windows.{args.format or 'csv'}"
    settings = PipelineSettings(include_landmarks=False, spotting=None if args.no_spotting else spotting_settings(args))
    summary = aupipe.run_frames(
        args.file, output, args.frames, mapping=args.mapping, kind=args.kind, window_ms=args.window_ms,
        stride_ms=args.stride_ms, events_out=args.events, summary_out=args.summary, fps=args.fps,
        face_id=args.face_id, settings=settings, output_format=args.format, summary_segment_s=args.segment_s,
    )  # fmt: skip
    if not args.quiet:
        print(f"aupipe: note: {summary.note}", file=sys.stderr)
    written = ", ".join(str(p) for p in (summary.windows_path, summary.frames_path, summary.events_path,
                                         summary.summary_path) if p is not None)  # fmt: skip
    if summary.interrupted:
        print(f"aupipe: interrupted after {summary.n_frames} frames; {written} hold everything up to there",
              file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    events = f", {summary.n_events} events" if summary.events_path is not None else ""
    print(f"aupipe: {summary.n_frames} frames ({summary.n_face_frames} with a face), {summary.n_windows} windows"
          f"{events} -> {written}", file=sys.stderr)  # fmt: skip
    return 0
