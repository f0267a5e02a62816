"""The batch's dataset-level table: every video's windows in one Parquet file, rewritten only when a video changed, and read back in chunks."""

from __future__ import annotations


from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from aupipe.rules import mapping as mapping_module
from aupipe.io.writers import AtomicParquetWriter
from aupipe.running.batch_job import DATASET, JOURNAL, BatchJob, output_paths


def dataset_current(out: Path, keys: Sequence[str]) -> bool:
    """Whether ``windows.parquet`` holds exactly the videos ``keys`` and is newer than the journal."""
    import pyarrow.parquet as pq

    dataset, journal = out / DATASET, out / JOURNAL
    if not dataset.exists() or (journal.exists() and journal.stat().st_mtime_ns > dataset.stat().st_mtime_ns):
        return False
    try:
        videos = pq.read_table(dataset, columns=["video"]).column("video").unique().to_pylist()
    except Exception:  # noqa: BLE001 - unreadable: write it again
        return False
    return sorted(videos) == sorted(keys)


def write_dataset(out: Path, keys: Sequence[str], job: BatchJob) -> Path:
    """``out/windows.parquet``: the window tables of ``keys`` one after another, with a ``video``
    column (the key) first; streamed one video at a time (a row group each), written atomically."""
    from aupipe.running.run import load_predictor
    from aupipe.chain.stream import window_table_empty

    emotion_map = job.emotion_map or mapping_module.load_mapping()
    predictor = load_predictor(job.model, emotion_map, job.settings)
    empty = window_table_empty(emotion_map, job.settings, predictor, job.rule_weight)
    empty.insert(0, "video", pd.Series(dtype=object))
    text = [c for c in empty.columns if not (is_numeric_dtype(empty[c]) or is_bool_dtype(empty[c]))]
    with AtomicParquetWriter(out / DATASET) as writer:  # dropped unless committed
        for key in keys:
            path = output_paths(out, key, job)["windows"]
            table = (
                pd.read_parquet(path)
                if path.suffix == ".parquet"
                else pd.read_csv(path, dtype=dict.fromkeys(text, object))
            )
            if len(table):
                table = pd.concat([pd.DataFrame({"video": key}, index=table.index), table], axis=1)
                # the first table fixes the Parquet schema: text columns stay text even where all empty
                for column in (c for c in text if c in table.columns):
                    table[column] = table[column].astype(object).where(table[column].notna(), None)
                # a CSV column of whole numbers reads back as int64 (e.g. all-neutral windows: emotion_score 0)
                counts = {c for c in empty.columns if empty[c].dtype.kind == "i"}
                floats = [c for c in table.columns if table[c].dtype.kind == "i" and c not in counts]
                table[floats] = table[floats].astype(np.float64)
                writer.write(table)
        return writer.commit(empty)


def iter_dataset(path: str | Path) -> Iterator[pd.DataFrame]:
    """The dataset Parquet one row group (one video chunk) at a time, for tables larger than memory."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    for index in range(parquet.num_row_groups):
        yield parquet.read_row_group(index).to_pandas()
