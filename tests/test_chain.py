"""The Stage contract and the one chain builder: a stage plugs in without editing the chain."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aupipe.chain import PipelineSettings, build_chain, stream
from aupipe.chain.stages import default_frame_stages
from aupipe.rules.mapping import load_mapping

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "1001_DFA_HAP_XX.flv"
SETTINGS = dataclasses.replace(PipelineSettings(), include_landmarks=False, spotting=None)


@dataclass(frozen=True)
class NoSmile:
    """A stand-in AU backend stage: it sets AU12 to 0 and counts the rows it saw in its state."""

    name: str = "no_smile"

    def start(self) -> int:
        return 0

    def step(self, state: int, rows: pd.DataFrame | None, final: bool) -> tuple[pd.DataFrame, int]:
        if rows is None or not len(rows):
            return rows if rows is not None else pd.DataFrame(), state
        rows = rows.copy()
        for column in [c for c in rows.columns if c.startswith("AU12_") and c != "AU12_c"]:
            rows[column] = np.where(rows["face_found"], 0.0, np.nan)
        return rows, state + len(rows)


def _collect(chain: object | None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    mapping = load_mapping("basic_emotions")
    frames, windows, last = [], [], None
    for chunk, last in stream(SAMPLE, mapping, SETTINGS, chain=chain):  # type: ignore[arg-type]  # noqa: B007
        frames.append(chunk.frames)
        windows.append(chunk.windows)
    assert last is not None
    return pd.concat(frames, ignore_index=True), pd.concat(windows, ignore_index=True), dict(last.stages)


def test_default_chain_is_the_one_stream_uses() -> None:
    frames, windows, states = _collect(None)
    chosen, _, _ = _collect(build_chain(SETTINGS, load_mapping("basic_emotions")))
    pd.testing.assert_frame_equal(frames, chosen)
    assert set(states) == {"aus", "speech", "columns", "windows"}
    assert (windows["core_emotion"] == "happiness").any()  # the smile is there without the extra stage


def test_a_frame_stage_plugs_in_without_editing_the_chain() -> None:
    mapping = load_mapping("basic_emotions")
    chain = build_chain(SETTINGS, mapping, frame_stages=(*default_frame_stages(SETTINGS), NoSmile()))
    frames, windows, states = _collect(chain)
    assert states["no_smile"] == len(frames)  # the stage saw every frame, and kept its own state
    assert (frames.loc[frames["face_found"], "AU12_r"] == 0).all()
    assert (windows["AU12_peak"].fillna(0) == 0).all()  # windows and labels read the stage's output
    assert not (windows["core_emotion"] == "happiness").any()
