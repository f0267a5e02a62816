"""Window labels: what the mapping scores (each AU's window peak and the window's evidence) and
the labelled window table."""

from __future__ import annotations

import pandas as pd

from aupipe.rules import mapping, scoring
from aupipe.signal import aus

__all__ = ["label_windows", "mapping_input"]


def mapping_input(window_table: pd.DataFrame) -> pd.DataFrame:
    """What the mapping scores: each AU's window peak, named ``AU12``, ``AU12_left``..., and the
    window's evidence columns (``speaking``, ``face_coverage``, ``head_turn_deg``,
    ``baseline_confidence``) where the table has them."""
    peaks = [c for c in window_table.columns if c.startswith("AU") and c.endswith("_peak")]
    evidence = [c for c in scoring.EVIDENCE_COLUMNS if c in window_table.columns]
    return window_table[peaks + evidence].rename(columns=lambda c: c.removesuffix("_peak"))


def label_windows(window_table: pd.DataFrame, emotion_map: mapping.Mapping) -> pd.DataFrame:
    """Window table plus the mapping's scores, winner, core emotion and explanation."""
    if window_table.empty:
        scores = mapping.score(pd.DataFrame(columns=list(aus.AU_NAMES), dtype=float), emotion_map)
        return pd.concat([window_table, scores], axis=1)
    scores = mapping.score(mapping_input(window_table), emotion_map)
    return pd.concat([window_table.reset_index(drop=True), scores.reset_index(drop=True)], axis=1)
