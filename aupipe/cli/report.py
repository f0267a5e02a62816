"""``aupipe report VIDEO --from DIR_OR_TABLES -o REPORT.html [--png SUMMARY.png]``: the report page
of a video from the tables ``aupipe run`` already wrote (docs/report.md). Parses arguments and
calls ``aupipe.report``; errors are handled by ``aupipe.cli.main`` (one line, exit code)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import aupipe
from aupipe.cli.args import number


_count = number("a number of events", int, at_least=0)


def add_report_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``report`` sub-command."""
    parser = commands.add_parser(
        "report", help="one self-contained HTML page (and a summary PNG) from a video's tables (docs/report.md)"
    )
    parser.add_argument("video", help="the video the tables were made from (stills are read from it)")
    parser.add_argument(
        "--from", dest="sources", nargs="+", required=True, metavar="DIR_OR_TABLE",
        help="a folder holding VIDEO_STEM.windows.csv (.frames, .events, .summary, .baseline; CSV or Parquet), "
        "and/or table files, each told apart by its columns; only the window table is required",
    )  # fmt: skip
    parser.add_argument("-o", "--output", help="the HTML page (default: VIDEO_STEM.report.html here)")
    parser.add_argument("--png", metavar="SUMMARY.png", help="also write the timeline and the top events as one PNG")
    parser.add_argument(
        "--mapping", metavar="NAME_OR_FILE",
        help="the mapping that labelled the windows, for its rules (default: the shipped one that fits)",
    )  # fmt: skip
    parser.add_argument(
        "--partial", action="store_true", help="accept tables shorter than the video (an interrupted run)"
    )
    parser.add_argument(
        "--max-stills", type=_count, default=200, metavar="N",
        help="events with face stills, the most confident first (default 200; about 18 kB each)",
    )  # fmt: skip
    parser.add_argument(
        "--face", type=number("a face id", int, at_least=0), metavar="ID",
        help="tables of several faces (--faces): the face to show (default: the lowest face_id)",
    )  # fmt: skip


def cmd_report(args: argparse.Namespace) -> int:
    """Build and write the report; one line on stderr says where."""
    import dataclasses

    from aupipe.reporting.cards import CardSettings
    from aupipe.reporting.page import ReportSettings

    output = args.output or f"{Path(args.video).stem}.report.html"
    settings = ReportSettings(cards=dataclasses.replace(CardSettings(), max_stills=args.max_stills), face_id=args.face)
    built = aupipe.report(args.video, args.sources, output, args.png, mapping=args.mapping, partial=args.partial,
                          settings=settings)  # fmt: skip
    written = str(built.html_path) + (f" and {built.png_path}" if built.png_path else "")
    print(f"aupipe: report of {len(built.cards)} events, {built.size_bytes / 1e6:.1f} MB -> {written}", file=sys.stderr)
    return 0
