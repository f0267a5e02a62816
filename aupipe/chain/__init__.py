"""The stage chain, one wiring for every source: settings, frame tables and the streamed stages.

``aupipe.chain.stream`` wires AUs -> speech -> windows -> emotions (and events) over chunks of raw
frame rows; ``aupipe.chain.frames`` makes those rows (in this process or, via
``aupipe.chain.parallel``, in several). The names below are re-exported for convenience.
"""

from aupipe.chain.frames import (
    batched, frame_table, frame_table_empty, order_columns, stream_frames, warn_coverage,
)  # fmt: skip
from aupipe.chain.parallel import raw_frames
from aupipe.chain.settings import ParallelSettings, PipelineSettings
from aupipe.chain.stages import Chain, Stage, build_chain
from aupipe.chain.stream import (
    Chunk, StreamState, advance, initial_state, label_windows, mapping_input, neutral_baseline, stream,
    window_table_empty,
)  # fmt: skip

__all__ = [
    "Chain", "Chunk", "ParallelSettings", "Stage", "build_chain", "PipelineSettings", "StreamState", "advance", "batched", "frame_table",
    "frame_table_empty", "initial_state", "label_windows", "mapping_input", "neutral_baseline", "order_columns",
    "raw_frames", "stream", "stream_frames", "warn_coverage", "window_table_empty",
]  # fmt: skip
