"""Argument types the sub-commands share: numbers with bounds, each refused with one clear line."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from aupipe.events.spotting import SpottingSettings
    from aupipe.signal.landmarks import LandmarkSettings

Number = TypeVar("Number", int, float)


def number(
    expected: str,
    convert: Callable[[str], Number] = float,  # type: ignore[assignment]
    *,
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    unit: str = "",
    note: str = "",
) -> Callable[[str], Number]:
    """An argparse type: ``convert(text)`` (``float`` or ``int``), which must be > ``above``, or
    within ``at_least``..``at_most`` (either may be None). Messages: "expected <expected>, got
    'x'" and "must be > 0 <unit> <note>, got x"."""

    def parse(text: str) -> Number:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if above is not None and not value > above:
            bound = f"> {above:g}"
        elif at_least is not None and at_most is not None and not at_least <= value <= at_most:
            bound = f"within {at_least:g}..{at_most:g}"
        elif at_least is not None and at_most is None and value < at_least:
            bound = f">= {at_least:g}"
        elif at_most is not None and at_least is None and value > at_most:
            bound = f"<= {at_most:g}"
        else:
            return value
        raise argparse.ArgumentTypeError(f"must be {' '.join(filter(None, (bound, unit, note)))}, got {text}")

    return parse


positive_ms = number("milliseconds", above=0, unit="ms")
positive_s = number("seconds", above=0, unit="s")


def add_faces(parser: argparse.ArgumentParser) -> None:
    """``--faces N``: follow up to N faces (``LandmarkSettings.num_faces``; docs/faces.md)."""
    parser.add_argument(
        "--faces", type=number("a whole number", int, at_least=1, at_most=64), default=1, metavar="N",
        help="follow up to N faces, each with a stable face_id and its own baseline (default 1; docs/faces.md)",
    )  # fmt: skip


def add_backend(parser: argparse.ArgumentParser) -> None:
    """``--backend``, ``--runtime``, ``--device``: how the landmark stage runs (docs/backends.md)."""
    parser.add_argument(
        "--backend", choices=("direct", "mediapipe"), default="direct",
        help="landmark stage: direct (default: the bundled networks run by aupipe) or mediapipe (MediaPipe Tasks)",
    )  # fmt: skip
    parser.add_argument(
        "--runtime", choices=("litert", "onnx"), default="litert",
        help="networks of the direct backend on LiteRT (default) or ONNX Runtime (pip install onnxruntime)",
    )  # fmt: skip
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu",
        help="cuda: ONNX Runtime's CUDA provider (with --runtime onnx; extra aupipe[gpu])",
    )  # fmt: skip


def landmark_settings(args: argparse.Namespace, base: LandmarkSettings) -> LandmarkSettings:
    """``base`` with the choices of ``add_faces`` and ``add_backend``."""
    import dataclasses

    from aupipe.errors import SettingsError

    if args.device != "cpu" and args.runtime != "onnx":
        raise SettingsError(f"--device {args.device} needs --runtime onnx")
    if args.backend == "mediapipe" and (args.runtime != "litert" or args.device != "cpu"):
        raise SettingsError("--runtime and --device are for --backend direct")
    return dataclasses.replace(
        base, num_faces=args.faces, backend=args.backend, runtime=args.runtime, device=args.device
    )  # fmt: skip


def add_min_confidence(parser: argparse.ArgumentParser) -> None:
    """``--min-confidence C`` (events below it are not reported; None keeps the settings' default)."""
    parser.add_argument(
        "--min-confidence", type=float, metavar="C",
        help="report events whose confidence (0-1, docs/spotting.md) reaches C (default 0.3; 0 = all)",
    )  # fmt: skip


def spotting_settings(args: argparse.Namespace) -> SpottingSettings:
    """The spotting settings of ``--blinks`` and ``--min-confidence``."""
    from aupipe.events.spotting import SpottingSettings

    if args.min_confidence is None:
        return SpottingSettings(blinks=args.blinks)
    return SpottingSettings(blinks=args.blinks, min_confidence=args.min_confidence)
