"""Shared fixtures: real sample clips analysed once per test session with the real model."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
CREMAD = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


def clip(emotion: str) -> Path:
    """Path of the CREMA-D sample clip of actor 1001 with ``emotion`` (ANG, HAP, NEU ...)."""
    return SAMPLES / f"1001_DFA_{emotion}_XX.flv"


@pytest.fixture(scope="session")
def analysed() -> dict[str, object]:
    """``aupipe.analyze`` of every sample clip, keyed by emotion code, 'single_face', 'no_face'."""
    import warnings

    import aupipe

    results: dict[str, object] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", aupipe.AupipeWarning)
        for emotion in CREMAD:
            results[emotion] = aupipe.analyze(clip(emotion))
        results["single_face"] = aupipe.analyze(SAMPLES / "single_face.mp4")
        results["no_face"] = aupipe.analyze(SAMPLES / "no_face.mp4")
    return results
