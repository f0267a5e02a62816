"""Command line: parses arguments and calls the public API; errors become one line and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aupipe
from aupipe.cli.args import (
    add_backend, add_faces, add_min_confidence, landmark_settings, number, positive_ms, positive_s, spotting_settings,
)

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70


_workers = number("a number of processes", int, at_least=0, note="(0 = every core)")


def _add_workers(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--workers", type=_workers, default=0, metavar="N", help=f"{help_text} (default 0 = every core)"
    )


def _add_au_calibration(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--au-calibration", metavar="DIR",
        help="AU calibration written by aupipe calibrate, or 'hand' for the hand scales (default: the shipped one)",
    )  # fmt: skip


def _add_calibrate(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    calibrate = commands.add_parser(
        "calibrate", help="fit aupipe's AU intensities to your own reference codes (FACS codes, OpenFace, py-feat)"
    )
    calibrate.add_argument("videos", nargs="+", metavar="VIDEO", help="videos, folders or glob patterns")
    calibrate.add_argument(
        "--reference", required=True, metavar="REF",
        help="folder with one CSV per video (same file stem), or one CSV for one video",
    )  # fmt: skip
    calibrate.add_argument(
        "-o", "--output", required=True, metavar="OUT_DIR", help="folder for au_calibration.json and agreement.csv"
    )
    calibrate.add_argument(
        "--kind", choices=("auto", "facs", "openface", "pyfeat"), default="auto",
        help="reference format (default: detected from the columns)",
    )  # fmt: skip
    calibrate.add_argument(
        "--groups", metavar="GROUPS.csv",
        help="CSV video,person: videos of the same person (held-out agreement is person-grouped; default: one person per video)",
    )  # fmt: skip
    calibrate.add_argument("--cache", metavar="DIR", help="keep the landmark stage's tables here for refits")
    calibrate.add_argument(
        "--keep-hand", metavar="AU,AU", default="",
        help="AUs whose reference you do not trust: reported, but kept on the hand scales (e.g. AU04)",
    )  # fmt: skip
    calibrate.add_argument("--quiet", action="store_true", help="print only the agreement table")


def build_parser() -> argparse.ArgumentParser:
    """The ``aupipe`` argument parser with its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="aupipe",
        description="Facial Action Units and fine-grained emotions from video (MediaPipe face mesh -> FACS AUs -> emotions).",
    )
    parser.add_argument("--version", action="version", version=f"aupipe {aupipe.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="analyse one video: per-window AUs and emotions as CSV")
    run.add_argument("video", help="video file (.mp4 .mov .avi .flv .webm ...) or a folder of images")
    run.add_argument("-o", "--output", help="window table CSV (default: VIDEO_STEM.windows.csv here)")
    run.add_argument("--frames", metavar="FRAMES.csv", help="also write the per-frame table")
    run.add_argument("--mapping", metavar="NAME_OR_FILE", help="emotion mapping: shipped name or YAML file")
    run.add_argument("--window-ms", type=positive_ms, default=500.0, help="window length in ms (default 500)")
    run.add_argument("--stride-ms", type=positive_ms, default=100.0, help="step between windows in ms (default 100)")
    run.add_argument(
        "--neutral", metavar="RANGE_OR_FILE",
        help="the person's neutral face: a time range of this video (e.g. 0-2s) or a neutral clip/image "
        "(default: estimated from the least expressive frames of the first 30 s)",
    )  # fmt: skip
    run.add_argument("--baseline-out", metavar="BASELINE.csv", help="also write the neutral baseline used")
    _add_au_calibration(run)
    run.add_argument(
        "--au-backend", choices=("mediapipe", "pyfeat"), default="mediapipe",
        help="AU estimator: mediapipe (default, offline) or pyfeat (extra aupipe[pyfeat], GPU if torch sees one)",
    )  # fmt: skip
    run.add_argument(
        "--model", metavar="MODEL_DIR",
        help="add a trained model's class probabilities and a fused label per window (see aupipe train)",
    )  # fmt: skip
    run.add_argument(
        "--rule-weight", type=float, metavar="W",
        help="weight 0..1 of the mapping's rule scores in the fused label (default: the model's own, 0.25)",
    )  # fmt: skip
    run.add_argument(
        "--events", metavar="EVENTS.csv", action="append",
        help="also write the spotted expression events (micro / macro): a table (.csv, .parquet) or, named .eaf, "
        "an ELAN file linked to the video; give it again for more than one",
    )  # fmt: skip
    run.add_argument(
        "--boris", metavar="BORIS.csv", help="also write the events as a BORIS import sheet (.csv, or .xlsx: openpyxl)"
    )
    run.add_argument(
        "--summary", metavar="SUMMARY.csv",
        help="also write the clip summary: dominant emotion, its share of time, the AUs behind it and the events, "
        "for the clip and for every --segment-s seconds",
    )  # fmt: skip
    run.add_argument("--segment-s", type=positive_s, default=60.0, help="segment length of --summary in s (default 60)")
    run.add_argument(
        "--report", metavar="REPORT.html",
        help="also write the report: one self-contained HTML page of this run's tables (docs/report.md)",
    )  # fmt: skip
    run.add_argument("--png", metavar="SUMMARY.png", help="also write the report's timeline and top events as a PNG")
    run.add_argument(
        "--interaction", metavar="INTERACTION.csv",
        help="with --faces 2 or more: also write AU synchrony and mimicry between faces (docs/faces.md)",
    )  # fmt: skip
    run.add_argument("--blinks", action="store_true", help="spot blinks (AU43) as events too")
    add_min_confidence(run)
    run.add_argument("--no-spotting", action="store_true", help="no event spotting (and no in_event window column)")
    run.add_argument("--no-landmarks", action="store_true", help="leave the 478x3 landmark columns out of --frames")
    add_faces(run)
    add_backend(run)
    run.add_argument(
        "--format", choices=("csv", "parquet"),
        help="table format of every output (default: from the file names; .parquet is Parquet, else CSV)",
    )  # fmt: skip
    _add_workers(run, "processes for the landmark stage, each on a span of a long video")
    run.add_argument(
        "--quiet", action="store_true", help="no progress bar (there is none when stderr is not a terminal)"
    )

    batch = commands.add_parser(
        "batch", help="analyse many videos: one output set each, a manifest, resumable (docs/performance.md)"
    )
    batch.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="folders, glob patterns ('clips/*.mp4'), list files (.txt) or videos"
    )
    batch.add_argument(
        "-o", "--output", required=True, metavar="OUT_DIR", help="folder for the outputs and manifest.csv"
    )
    batch.add_argument(
        "--format", choices=("csv", "parquet"), default="csv", help="per-video tables as csv (default) or parquet"
    )
    batch.add_argument("--frames", action="store_true", help="also write each video's per-frame table")
    batch.add_argument("--events", action="store_true", help="also write each video's spotted events")
    batch.add_argument(
        "--events-format", choices=("table", "eaf"), default="table",
        help="--events as a table in --format (default) or as an ELAN file (.events.eaf) linked to the video",
    )  # fmt: skip
    batch.add_argument("--mapping", metavar="NAME_OR_FILE", help="emotion mapping: shipped name or YAML file")
    batch.add_argument("--window-ms", type=positive_ms, default=500.0, help="window length in ms (default 500)")
    batch.add_argument("--stride-ms", type=positive_ms, default=100.0, help="step between windows in ms (default 100)")
    _add_au_calibration(batch)
    batch.add_argument("--model", metavar="MODEL_DIR", help="add a trained model's probabilities per window")
    batch.add_argument(
        "--rule-weight", type=float, metavar="W", help="weight 0..1 of the rule scores in the fused label"
    )
    batch.add_argument("--blinks", action="store_true", help="spot blinks (AU43) as events too")
    add_min_confidence(batch)
    batch.add_argument("--no-spotting", action="store_true", help="no event spotting (and no in_event window column)")
    batch.add_argument("--no-landmarks", action="store_true", help="leave the 478x3 landmark columns out of --frames")
    add_faces(batch)
    add_backend(batch)
    _add_workers(batch, "videos processed at once, one process each")
    batch.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="local processes (default) or Ray (aupipe[ray])"
    )
    batch.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    batch.add_argument("--retry-errors", action="store_true", help="retry videos that failed in an earlier run")
    batch.add_argument("--quiet", action="store_true", help="no progress bars")

    from aupipe.cli import train as training  # light: numpy, pandas and Keras load only when a command runs

    train = commands.add_parser("train", help="train the emotion CNN on CREMA-D or labelled clips (docs/training.md)")
    training.add_train_arguments(train)
    evaluate = commands.add_parser(
        "evaluate", help="score a trained model on labelled clips: metrics.json + confusion.png"
    )
    training.add_evaluate_arguments(evaluate)

    _add_calibrate(commands)
    from aupipe.cli import imports  # light: pandas loads only when the command runs

    imports.add_import_parser(commands)
    from aupipe.cli import report  # light: the report's libraries load only when the command runs

    report.add_report_parser(commands)
    from aupipe.cli import live  # light: the chain loads only when the command runs

    live.add_live_parser(commands)

    mapping = commands.add_parser("mapping", help="check or show an emotion mapping YAML file")
    mapping_commands = mapping.add_subparsers(dest="mapping_command", metavar="ACTION", required=True)
    validate = mapping_commands.add_parser("validate", help="validate a mapping file (errors and warnings)")
    validate.add_argument("file", help="mapping name or YAML file")
    show = mapping_commands.add_parser("show", help="print a readable table of categories and rules")
    show.add_argument("file", help="mapping name or YAML file")
    spot_eval = commands.add_parser("spot-eval", help="score spotted events against ground truth (MEGC protocol)")
    spot_eval.add_argument("pred", metavar="PRED.csv", help="predicted events (aupipe run --events)")
    spot_eval.add_argument(
        "truth", metavar="TRUTH.csv", help="ground-truth events: onset_ms, offset_ms, kind (or frames)"
    )
    spot_eval.add_argument("--iou", type=float, default=0.5, help="IoU that makes a true positive (default 0.5)")
    spot_eval.add_argument(
        "--unit", choices=("auto", "frame", "ms"), default="auto",
        help="compare frame or millisecond intervals (default: frames when both files have them)",
    )  # fmt: skip
    synth = commands.add_parser("synth", help="make test footage: inject AU-driven expressions into a real face clip")
    synth.add_argument("input", help="video file or folder of images of one face")
    synth.add_argument("-o", "--output", required=True, help="video to write: .avi (MJPG) or .mp4 (mp4v)")
    synth.add_argument("--truth", metavar="TRUTH.csv", help="ground-truth events (default: OUTPUT_STEM.truth.csv)")
    synth.add_argument("--micro", type=int, default=10, help="micro events to inject, 100-400 ms (default 10)")
    synth.add_argument("--macro", type=int, default=3, help="macro events to inject, 1-3 s (default 3)")
    synth.add_argument("--blinks", type=int, default=0, help="blinks to inject (default 0)")
    synth.add_argument(
        "--seconds", type=float,
        help="length of the output (default: the input's); a shorter input is played back and forth",
    )  # fmt: skip
    synth.add_argument("--seed", type=int, default=0, help="seed of the random event schedule (default 0)")
    return parser


def _cmd_spot_eval(args: argparse.Namespace) -> int:
    from aupipe.events import spot_eval

    print(spot_eval.evaluate_files(args.pred, args.truth, iou=args.iou, unit=args.unit))
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from aupipe.events import synth

    truth_path = args.truth or f"{Path(args.output).with_suffix('')}.truth.csv"
    truth = synth.synthesize(
        args.input, args.output, n_micro=args.micro, n_macro=args.macro, n_blinks=args.blinks,
        seed=args.seed, duration_s=args.seconds, truth_path=truth_path,
    )  # fmt: skip
    counts = ", ".join(f"{n} {kind}" for kind, n in truth["kind"].value_counts().items()) or "no events"
    print(f"aupipe: {args.output}: injected {counts}; ground truth -> {truth_path}", file=sys.stderr)
    return 0


def _show_warning(message: Warning | str, category: type[Warning], *_args: object, **_kwargs: object) -> None:
    print(f"aupipe: warning: {message}", file=sys.stderr)


def _pipeline_settings(args: argparse.Namespace) -> aupipe.PipelineSettings:
    """Pipeline settings from the options ``run`` and ``batch`` share."""
    import dataclasses

    from aupipe.chain.settings import PipelineSettings

    if args.events and args.no_spotting:
        raise aupipe.SettingsError("--events needs spotting; leave out --no-spotting")
    if getattr(args, "boris", None) and args.no_spotting:
        raise aupipe.SettingsError("--boris needs spotting; leave out --no-spotting")
    base = PipelineSettings()
    if args.au_calibration is not None:
        from aupipe.signal.calibration import load_calibration

        load_calibration(args.au_calibration)  # a missing or broken calibration fails before any work
        base = dataclasses.replace(base, aus=dataclasses.replace(base.aus, calibration=args.au_calibration))
    return dataclasses.replace(
        base, include_landmarks=not args.no_landmarks, au_backend=getattr(args, "au_backend", "mediapipe"),
        spotting=None if args.no_spotting else spotting_settings(args),
        landmarks=landmark_settings(args, base.landmarks),
    )  # fmt: skip


def _chosen_mapping(args: argparse.Namespace) -> str | None:
    if args.model and args.mapping is None:
        from aupipe.learning.model import model_mapping

        return model_mapping(args.model)  # the model's own mapping by default
    return args.mapping


def _cmd_batch(args: argparse.Namespace) -> int:
    summary = aupipe.batch(
        args.inputs, args.output, mapping=_chosen_mapping(args), window_ms=args.window_ms, stride_ms=args.stride_ms,
        model=args.model, rule_weight=args.rule_weight, settings=_pipeline_settings(args), output_format=args.format,
        frames=args.frames, events=args.events, events_format=args.events_format, workers=args.workers or None,
        engine=args.engine, address=args.address, retry_errors=args.retry_errors, progress=not args.quiet,
    )  # fmt: skip
    counts = summary.manifest["status"].value_counts()
    states = ", ".join(f"{counts[s]} {s}" for s in ("ok", "error", "interrupted", "pending") if s in counts)
    print(
        f"aupipe: {len(summary.manifest)} video{'s' if len(summary.manifest) != 1 else ''} ({summary.n_processed} processed now, {summary.n_skipped} done before):"
        f" {states} -> {summary.manifest_path}"
        + (f"; all windows in {summary.dataset_path}" if summary.dataset_path else ""),
        file=sys.stderr,
    )
    if summary.interrupted:
        print("aupipe: interrupted; run the same command again to process the rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    if summary.n_failed:
        failed = summary.manifest[summary.manifest["status"] == "error"].iloc[0]
        more = f" (and {summary.n_failed - 1} more)" if summary.n_failed > 1 else ""
        print(f"aupipe: error: {failed['error']}{more}; see {summary.manifest_path}", file=sys.stderr)
        return 1
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    output = args.output or f"{Path(args.video).stem}.windows.{args.format or 'csv'}"
    if args.au_backend == "pyfeat":
        from aupipe.signal.pyfeat_backend import require_pyfeat

        require_pyfeat()
    settings = _pipeline_settings(args)
    chosen_mapping = _chosen_mapping(args)
    summary = aupipe.run(
        args.video,
        output,
        args.frames,
        mapping=chosen_mapping,
        window_ms=args.window_ms,
        stride_ms=args.stride_ms,
        neutral=args.neutral,
        baseline_out=args.baseline_out,
        model=args.model,
        rule_weight=args.rule_weight,
        events_out=args.events,
        settings=settings,
        progress=not args.quiet,
        workers=args.workers or None,
        output_format=args.format,
        summary_out=args.summary,
        summary_segment_s=args.segment_s,
        boris_out=args.boris,
        report_out=args.report,
        png_out=args.png,
        interaction_out=args.interaction,
    )
    written = str(summary.windows_path) + (f" and {summary.frames_path}" if summary.frames_path else "")
    if summary.summary_path is not None:
        written += f" and {summary.summary_path}"
    if summary.events_paths:
        written += f" and {' and '.join(map(str, summary.events_paths))} ({summary.n_events} events)"
    if summary.boris_path is not None:
        written += f" and {summary.boris_path}"
    if summary.interaction_path is not None:
        written += f" and {summary.interaction_path}"
    for page in (summary.report_path, summary.png_path):
        written += f" and {page}" if page is not None else ""
    if summary.interrupted:
        print(
            f"aupipe: interrupted after {summary.n_frames} frames; {written} hold everything up to there",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if summary.baseline is not None:
        print(
            f"aupipe: neutral baseline: {summary.baseline.source} ({summary.baseline.n_frames} frames)", file=sys.stderr
        )
    faces = f", {len(summary.face_ids)} faces" if len(summary.face_ids) > 1 else ""
    print(f"aupipe: {summary.n_frames} frames{faces}, {summary.n_windows} windows -> {written}", file=sys.stderr)
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from aupipe.learning.calibration_fit import agreement_text

    log = None if args.quiet else (lambda line: print(f"aupipe: {line}", file=sys.stderr))
    keep_hand = tuple(au.strip().upper() for au in args.keep_hand.split(",") if au.strip())
    result = aupipe.calibrate(
        args.videos, args.reference, args.output, kind=args.kind, groups=args.groups, cache_dir=args.cache,
        keep_hand=keep_hand, log=log,
    )  # fmt: skip
    print(agreement_text(result.agreement))
    print(f"aupipe: calibration -> {result.out_dir}; use it with: aupipe run VIDEO --au-calibration {result.out_dir}",
          file=sys.stderr)  # fmt: skip
    return 0


def _cmd_mapping(args: argparse.Namespace) -> int:
    from aupipe.rules import mapping

    loaded = mapping.load_mapping(args.file)
    if args.mapping_command == "validate":
        for line in mapping.validation_warnings(loaded):
            print(f"aupipe: warning: {line}", file=sys.stderr)
        print(f"{args.file}: valid ({len(loaded.categories)} categories, {len(loaded.parents)} parents)")
    else:
        print(mapping.describe(loaded))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aupipe`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    warnings.showwarning = _show_warning  # type: ignore[assignment]
    warnings.simplefilter("default", aupipe.AupipeWarning)
    sys.unraisablehook = _quiet_interrupted_native_objects
    return _dispatch(args)


def _quiet_interrupted_native_objects(unraisable: Any) -> None:
    """Drop the "Exception ignored in __del__" of a MediaPipe object whose constructor a Ctrl-C cut
    short (its ``__del__`` then finds no native pointer): the user sees only aupipe's lines. Any
    other unraisable exception is printed as Python would."""
    owner = type(unraisable.object).__module__ if unraisable.object is not None else ""
    if owner.startswith("mediapipe") or getattr(unraisable.object, "__module__", "").startswith("mediapipe"):
        return
    sys.__unraisablehook__(unraisable)


def entry() -> None:
    """The ``aupipe`` console script and ``python -m aupipe``: ``main``, then exit with its code.

    Once ``main`` has returned, the work is done (or given up), so a late Ctrl-C is ignored rather
    than turned into a traceback while the process exits (worker pools are joined at exit)."""
    import signal

    try:
        code = main()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the chosen command; errors become one line and an exit code."""
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "batch":
            return _cmd_batch(args)
        if args.command == "spot-eval":
            return _cmd_spot_eval(args)
        if args.command == "synth":
            return _cmd_synth(args)
        if args.command == "calibrate":
            return _cmd_calibrate(args)
        if args.command == "import":
            from aupipe.cli.imports import cmd_import

            return cmd_import(args)
        if args.command == "report":
            from aupipe.cli.report import cmd_report

            return cmd_report(args)
        if args.command == "live":
            from aupipe.cli.live import cmd_live

            return cmd_live(args)
        if args.command == "train":
            from aupipe.learning.training import cmd_train

            return cmd_train(args)
        if args.command == "evaluate":
            from aupipe.learning.training import cmd_evaluate

            return cmd_evaluate(args)
        return _cmd_mapping(args)
    except aupipe.AupipeError as err:
        print(f"aupipe: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("aupipe: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the CLI promises one line, never a traceback
        if os.environ.get("AUPIPE_DEBUG"):
            raise
        detail = str(err).splitlines()[0] if str(err) else ""
        print(
            f"aupipe: internal error: {type(err).__name__}: {detail} (set AUPIPE_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
