"""Atomic table writers: rows go to a temporary file beside the target, renamed on success.

A crash leaves no half-written output (the temporary file is removed); an interrupted run
that is committed leaves a complete file holding every row computed so far.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO

import pandas as pd

from .errors import OutputError

FLOAT_FORMAT = "%.6g"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AtomicCsvWriter:
    """Append DataFrame chunks to ``path`` through a temporary file; ``commit`` or ``abort`` once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        directory = self.path.parent if str(self.path.parent) else Path(".")
        if self.path.is_dir():
            raise OutputError(f"{self.path}: is a folder; give a file name for the output")
        if not directory.is_dir():
            raise OutputError(f"{self.path}: cannot write output, folder {directory} does not exist")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=directory)
        except OSError as err:
            raise OutputError(f"{self.path}: cannot write output ({err.strerror})") from None
        self._tmp = Path(tmp)
        self._handle: IO[str] | None = os.fdopen(fd, "w", newline="", encoding="utf-8")
        self._columns: list[str] | None = None

    def write(self, table: pd.DataFrame) -> None:
        """Append rows; the first non-empty table fixes the header (later ones must have its columns)."""
        assert self._handle is not None, "writer already closed"
        if table.empty:
            return
        if self._columns is None:
            self._columns = list(table.columns)
            table.to_csv(self._handle, index=False, float_format=FLOAT_FORMAT)
        else:
            table[self._columns].to_csv(self._handle, index=False, header=False, float_format=FLOAT_FORMAT)

    def commit(self, empty_columns: list[str] | None = None) -> Path:
        """Finish the file and move it into place. ``empty_columns``: header if nothing was written."""
        assert self._handle is not None, "writer already closed"
        if self._columns is None:
            pd.DataFrame(columns=empty_columns or []).to_csv(self._handle, index=False)
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        try:
            os.chmod(self._tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
            os.replace(self._tmp, self.path)
        except OSError as err:
            self._tmp.unlink(missing_ok=True)
            raise OutputError(f"{self.path}: cannot write output ({err.strerror})") from None
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target is left as it was."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._tmp.unlink(missing_ok=True)
