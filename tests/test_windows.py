"""Window statistics on synthetic frame tables: brief events must survive."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aupipe.signal import windows


def frame_table(values: np.ndarray, fps: float = 30.0, face: np.ndarray | None = None) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame(
        {
            "frame": np.arange(n),
            "time_ms": np.arange(n) * 1000.0 / fps,
            "face_found": np.ones(n, bool) if face is None else face,
            "AU12_r": values,
        }
    )


def test_a_two_frame_spike_is_kept_by_peak_and_rise() -> None:
    values = np.zeros(60)
    values[31:33] = 3.0  # 2 frames at 30 fps = 67 ms
    table = windows.compute_windows(frame_table(values))
    holding = table[(table["start_ms"] <= 31 * 1000 / 30) & (table["end_ms"] > 33 * 1000 / 30)]
    assert len(holding) >= 3
    assert (holding["AU12_peak"] == 3.0).all()
    assert (holding["AU12_rise"] == 3.0).all()
    assert (holding["AU12_mean"] < 0.5).all()


def test_windows_do_not_depend_on_frame_rate() -> None:
    slow = windows.compute_windows(frame_table(np.zeros(30), fps=15))  # 2 s
    fast = windows.compute_windows(frame_table(np.zeros(120), fps=60))  # 2 s
    assert list(slow["start_ms"]) == list(fast["start_ms"])
    assert slow["n_frames"].iloc[0] == 8 and fast["n_frames"].iloc[0] == 30


def test_frames_without_face_are_left_out() -> None:
    values = np.full(30, 2.0)
    face = np.ones(30, bool)
    values[:15] = np.nan
    face[:15] = False
    table = windows.compute_windows(frame_table(values, face=face))
    first = table.iloc[0]
    assert first["face_coverage"] == 0.0
    assert np.isnan(first["AU12_peak"])
    last = table.iloc[-1]
    assert last["face_coverage"] == 1.0 and last["AU12_mean"] == 2.0


def test_a_clip_shorter_than_one_window_gets_one_window() -> None:
    table = windows.compute_windows(frame_table(np.arange(5, dtype=float)))
    assert len(table) == 1
    assert table["n_frames"].iloc[0] == 5
    assert table["AU12_peak"].iloc[0] == 4.0
