"""The ``aupipe train`` and ``aupipe evaluate`` sub-commands: argument parsing and printing over ``aupipe.learning.training``."""

from __future__ import annotations


import argparse
import sys
from typing import Any

from aupipe.cli.args import number
from aupipe.learning.training import LEVELS, TrainConfig, evaluate, train


def _folds(text: str) -> int | str:
    if text.lower() in ("loao", "loso"):
        return "loao"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of folds or 'loao', got {text!r}") from None
    if value < 0 or value == 1:
        raise argparse.ArgumentTypeError(f"folds must be 0 (none), >= 2, or 'loao'; got {value}")
    return value


_positive_int = number("a positive integer", int, at_least=1)


_fraction = number("a number within 0..1", at_least=0, at_most=1)


def _common_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--label-source",
        choices=("intended", "face_vote"),
        default="intended",
        help="CREMA-D label: the intended emotion (default) or the crowd's face-only vote",
    )
    parser.add_argument(
        "--mapping",
        metavar="NAME_OR_FILE",
        help="emotion mapping (train default: micro_emotions; evaluate default: the model's)",
    )
    parser.add_argument("--cache-dir", metavar="DIR", help="feature cache (default ~/.cache/aupipe/features)")
    parser.add_argument("--workers", type=_positive_int, help="parallel clips (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")  # fmt: skip


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``aupipe train DATASET -o MODEL_DIR``."""
    parser.add_argument("dataset", help="CREMA-D folder (VideoFlash/), folder of LABEL/ sub-folders, or CSV")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL_DIR", help="model folder to write")
    parser.add_argument(
        "--level",
        choices=LEVELS,
        default="core",
        help="core: clip labels; micro: the mapping's window labels (default core)",
    )
    parser.add_argument("--epochs", type=_positive_int, default=30, help="maximum epochs (default 30)")
    parser.add_argument(
        "--folds",
        type=_folds,
        default=5,
        help="subject-grouped folds for the estimate: k, 'loao', or 0 for none (default 5)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--select", type=_positive_int, default=24, help="channels ReliefF keeps (default 24)")
    parser.add_argument(
        "--relief-rows",
        type=_positive_int,
        default=2000,
        help="training windows ReliefF is fit on, drawn per class (default 2000; cost grows as rows^2)",
    )
    parser.add_argument("--blendshapes", action="store_true", help="also offer the 52 blendshape scores as channels")
    parser.add_argument(
        "--geometry",
        action="store_true",
        help="also offer the landmark geometry measures (g_* columns, face widths) as channels",
    )
    parser.add_argument("--window-ms", type=float, default=500.0, help="window length in ms (default 500)")
    parser.add_argument("--stride-ms", type=float, default=100.0, help="step between windows in ms (default 100)")
    parser.add_argument("--steps", type=_positive_int, default=16, help="time steps per window (default 16)")
    parser.add_argument("--min-coverage", type=_fraction, default=0.5,
                        help="drop windows with a smaller share of face frames (default 0.5)")  # fmt: skip
    _common_data_arguments(parser)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``aupipe evaluate MODEL_DIR DATASET -o REPORT_DIR``."""
    parser.add_argument("model", metavar="MODEL_DIR", help="model folder written by aupipe train")
    parser.add_argument("dataset", help="CREMA-D folder, folder of LABEL/ sub-folders, or CSV (unseen subjects)")
    parser.add_argument("-o", "--output", required=True, metavar="REPORT_DIR", help="folder for metrics.json + PNG")
    parser.add_argument(
        "--rule-weight", type=_fraction, help="weight of the rule in the fused label (default: model's)"
    )
    _common_data_arguments(parser)


def _print_scores(label: str, block: dict[str, Any] | None) -> None:
    if block and block.get("n"):
        print(f"aupipe: {label}: accuracy {block['accuracy']:.3f}, macro-F1 {block['macro_f1']:.3f}, "
              f"UAR {block['uar']:.3f} ({block['n']})", file=sys.stderr)  # fmt: skip


def _print_skipped(report: dict[str, Any]) -> None:
    skipped = report.get("skipped_clips", {})
    if skipped:
        first = next(iter(skipped.values()))
        print(f"aupipe: warning: {len(skipped)} clips skipped (e.g. {first}); see metrics.json", file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> int:
    """Handler of ``aupipe train``; returns the exit code (errors propagate as AupipeError)."""
    from aupipe.learning.features import SegmentSettings

    channels = ("AU*_r", "AU*_c") + (("bs_*",) if args.blendshapes else ()) + (("g_*",) if args.geometry else ())
    segment = SegmentSettings(window_ms=args.window_ms, stride_ms=args.stride_ms, n_steps=args.steps,
                              min_coverage=args.min_coverage, channels=channels)  # fmt: skip
    config = TrainConfig(n_select=args.select, relief_max_rows=args.relief_rows)
    metrics = train(args.dataset, args.output, level=args.level, label_source=args.label_source, mapping=args.mapping,
                    epochs=args.epochs, folds=args.folds, seed=args.seed, cache_dir=args.cache_dir,
                    workers=args.workers, segment=segment, config=config, progress=not args.quiet)  # fmt: skip
    _print_skipped(metrics["data"])
    cv = metrics["cross_validation"]
    if cv:
        _print_scores(f"{cv['scheme']}, window level", cv["pooled"]["window"])
        _print_scores(f"{cv['scheme']}, clip level", cv["pooled"].get("clip"))
    print(f"aupipe: {metrics['data']['windows']} windows of {metrics['data']['usable_clips']} clips -> "
          f"{args.output} (metrics.json{', confusion.png' if cv else ''})", file=sys.stderr)  # fmt: skip
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``aupipe evaluate``; returns the exit code."""
    metrics = evaluate(args.model, args.dataset, args.output, label_source=args.label_source, mapping=args.mapping,
                       cache_dir=args.cache_dir, workers=args.workers, rule_weight=args.rule_weight,
                       progress=not args.quiet)  # fmt: skip
    _print_skipped(metrics["data"])
    _print_scores("window level", metrics["scores"]["window"])
    _print_scores("window level, fused with the rule", metrics["scores"].get("window_fused"))
    _print_scores("clip level", metrics["scores"].get("clip"))
    seen = metrics["subjects_seen_in_training"]
    if seen:
        print(f"aupipe: warning: {len(seen)} subjects were in the training data; these scores are optimistic",
              file=sys.stderr)  # fmt: skip
    print(f"aupipe: report -> {args.output}/metrics.json, confusion.png", file=sys.stderr)
    return 0
