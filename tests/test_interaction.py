"""Between-face synchrony and mimicry on numpy-built AU series: known lags, chance levels,
rises, streaming in any chunking and delivery order."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from aupipe.errors import SettingsError
from aupipe.events import interaction as it

FPS = 30.0
STEP_MS = 1000.0 / FPS


def smooth(n: int, rng: np.random.Generator, sigma_frames: float = 4.0) -> np.ndarray:
    """Gaussian-smoothed noise (n,) around 2.5 with std 1 (the 0-5 AU scale)."""
    kernel = np.exp(-0.5 * (np.arange(-20, 21) / sigma_frames) ** 2)
    y = np.convolve(rng.normal(size=n + 60), kernel / kernel.sum(), mode="same")[30 : 30 + n]
    return 2.5 + (y - y.mean()) / y.std()


def face_rows(face: int, values: dict[str, np.ndarray]) -> pd.DataFrame:
    n = len(next(iter(values.values())))
    data = {"frame": np.arange(n), "face_id": face, "time_ms": np.arange(n) * STEP_MS, "face_found": True}
    return pd.DataFrame(data | {f"{au}_r": v for au, v in values.items()})


def video(*faces: dict[str, np.ndarray]) -> pd.DataFrame:
    """All faces' rows, interleaved frame by frame."""
    table = pd.concat([face_rows(i, v) for i, v in enumerate(faces)], ignore_index=True)
    return table.sort_values(["frame", "face_id"], kind="stable").reset_index(drop=True)


def step_up(n: int, at_frame: int, level: float = 2.0) -> np.ndarray:
    x = np.full(n, 0.2)
    x[at_frame:] = level
    return x


def test_a_delayed_copy_is_synchronous_at_its_lag() -> None:
    rng = np.random.default_rng(1)
    n, delay = 900, 9  # 30 s; b follows a by 9 frames = 300 ms
    x = smooth(n + delay, rng)
    table = it.interaction(video({"AU12": x[delay:]}, {"AU12": x[:n]}))
    sync = table[table["kind"] == "synchrony"]
    assert list(table.columns) == list(it.INTERACTION_COLUMNS)
    assert len(sync) == 14 and (sync["au"] == "AU12").all()  # windows [0, 4) .. [26, 30) s
    assert (sync["r"] > 0.9).all()
    assert np.allclose(sync["lag_ms"], 300.0, atol=STEP_MS)
    assert (sync["face_a"] == 0).all() and (sync["face_b"] == 1).all()
    assert (sync["n_frames"] >= 100).all()


def test_independent_noise_gives_small_r() -> None:
    rng = np.random.default_rng(2)
    n = 1800
    table = it.interaction(video({"AU06": rng.uniform(0, 5, n)}, {"AU06": rng.uniform(0, 5, n)}))
    r = table.loc[table["kind"] == "synchrony", "r"]
    assert len(r) == 29
    assert r.mean() < 0.3 and (r.abs() < 0.5).all()  # the lag-maximised null: ~0.2 on average


def test_a_rise_followed_by_a_rise_is_one_mimicry_row() -> None:
    n = 150
    table = it.interaction(video({"AU12": step_up(n, 60)}, {"AU12": step_up(n, 72)}))  # 2000 ms, 2400 ms
    mimicry = table[table["kind"] == "mimicry"]
    assert len(mimicry) == 1
    row = mimicry.iloc[0]
    assert (row["face_a"], row["face_b"], row["au"]) == (0, 1, "AU12")
    assert row["start_ms"] == pytest.approx(2000.0) and row["end_ms"] == pytest.approx(2400.0)
    assert abs(row["lag_ms"] - 400.0) <= STEP_MS and row["n_frames"] == 12 and np.isnan(row["r"])


def test_no_mimicry_without_a_preceding_rise_or_a_rest() -> None:
    n = 150
    quiet = np.full(n, 0.2)
    assert it.interaction(video({"AU12": quiet}, {"AU12": step_up(n, 72)})).query("kind == 'mimicry'").empty
    late = step_up(n, 60), step_up(n, 60 + 45)  # 1.5 s later: beyond max_lag_ms
    assert it.interaction(video({"AU12": late[0]}, {"AU12": late[1]})).query("kind == 'mimicry'").empty
    blip = np.full(n, 0.2)
    blip[66:68] = 2.0  # 2 frames = 67 ms < hold_ms: no rise
    assert it.interaction(video({"AU12": step_up(n, 60)}, {"AU12": blip})).query("kind == 'mimicry'").empty
    restless = step_up(n, 72)
    restless[66:68] = 2.0  # above 133 ms before its rise: no rest of 500 ms
    assert it.interaction(video({"AU12": step_up(n, 60)}, {"AU12": restless})).query("kind == 'mimicry'").empty


def test_one_face_gives_an_empty_typed_table() -> None:
    rng = np.random.default_rng(3)
    table = it.interaction(video({"AU12": smooth(300, rng)}))
    assert table.empty and list(table.columns) == list(it.INTERACTION_COLUMNS)
    assert table.dtypes.to_dict() == it.empty_interaction().dtypes.to_dict()


def _deliver(rows: pd.DataFrame, delays: dict[int, int], rng: np.random.Generator) -> list[pd.DataFrame]:
    """Rows in the order they would arrive when face f's stage holds delays[f] frames, cut into
    random chunks."""
    arrival = rows["frame"].to_numpy() + rows["face_id"].map(delays).to_numpy()
    ordered = rows.iloc[np.argsort(arrival, kind="stable")].reset_index(drop=True)
    cuts = np.sort(rng.choice(np.arange(1, len(ordered)), size=40, replace=False))
    bounds = [0, *cuts.tolist(), len(ordered)]
    return [ordered.iloc[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _stream(chunks: list[pd.DataFrame], settings: it.InteractionSettings) -> tuple[pd.DataFrame, int]:
    state, out, largest = it.InteractionState(), [], 0
    for chunk in chunks:
        found, state = it.step(state, chunk, settings)
        out.append(found)
        largest = max(largest, 0 if state.rows is None else len(state.rows))
    found, state = it.step(state, None, settings, final=True)
    return pd.concat([*out, found], ignore_index=True), largest


@pytest.mark.parametrize(("late_s", "delay_2"), [(2.0, 20), (40.0, 1000)])
def test_streaming_in_any_chunking_and_delivery_equals_whole(late_s: float, delay_2: int) -> None:
    rng = np.random.default_rng(4)
    n = 1800  # 60 s, three faces with copies, rises and noise; face 2 from 10 s on
    x = smooth(n + 12, rng)
    faces = [
        {"AU12": x[12:], "AU06": step_up(n, 300), "AU04": rng.uniform(0, 5, n)},
        {"AU12": x[6 : 6 + n], "AU06": step_up(n, 312), "AU04": rng.uniform(0, 5, n)},
        {"AU12": x[:n], "AU06": step_up(n, 900), "AU04": rng.uniform(0, 5, n)},
    ]
    faces[1]["AU12"][600:700] = np.nan  # face 1 lost for 3 s
    rows = video(*faces)
    rows = rows[(rows["face_id"] != 2) | (rows["frame"] >= 300)].reset_index(drop=True)
    settings = it.InteractionSettings(late_s=late_s)
    whole = it.interaction(rows, settings)
    assert set(whole["kind"]) == {"synchrony", "mimicry"} and set(whole["face_b"]) == {1, 2}
    # face 1's stage holds 1.5 s; face 2's 0.7 s, or (calibrating) 33 s
    streamed, largest = _stream(_deliver(rows, {0: 0, 1: 45, 2: delay_2}, rng), settings)
    pd.testing.assert_frame_equal(streamed, whole, check_exact=False, rtol=1e-9)
    if late_s < 10:  # the buffer holds late_s + window + lag + rest (+ a stride), never the video
        assert largest < 3 * FPS * (late_s + 4.0 + 1.0 + 0.5 + 2.0 + 2.0)


def test_step_leaves_the_state_it_was_given_unchanged() -> None:
    rng = np.random.default_rng(5)
    rows = video({"AU12": smooth(600, rng)}, {"AU12": smooth(600, rng)})
    settings = it.InteractionSettings(late_s=1.0)
    _, state = it.step(it.InteractionState(), rows.iloc[:500], settings)
    kept = copy.deepcopy(state)
    it.step(state, rows.iloc[500:], settings, final=True)
    pd.testing.assert_frame_equal(state.rows, kept.rows)
    assert (state.next_window, state.rises_done_ms, state.newest_ms) == (
        kept.next_window, kept.rises_done_ms, kept.newest_ms,
    )  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [{"window_s": 0}, {"stride_s": -1.0}, {"max_lag_ms": -5.0}, {"rise_level": 0.0}, {"rise_level": 6.0},
     {"rest_ms": float("nan")}, {"hold_ms": -1.0}, {"late_s": -1.0}, {"min_frames": 1}, {"aus": ()},
     {"aus": ("AU12", "AU12")}, {"aus": ("smile",)}, {"window_s": float("inf")}],
)  # fmt: skip
def test_bad_settings_raise_settings_error(bad: dict) -> None:
    with pytest.raises(SettingsError):
        it.InteractionSettings(**bad)
