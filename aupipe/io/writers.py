"""Atomic table writers (CSV, Parquet): rows go to a temporary file beside the target, renamed on success.

A crash leaves no half-written output (the temporary file is removed); an interrupted run
that is committed leaves a complete file holding every row computed so far.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Self

import pandas as pd

from aupipe.errors import OutputError

FLOAT_FORMAT = "%.6g"
FORMATS = ("csv", "parquet")
PARQUET_SUFFIXES = (".parquet", ".pq")


def format_of(path: str | Path, output_format: str | None = None) -> str:
    """The table format for ``path``: ``output_format`` if given (the name must agree), else by suffix."""
    inferred = "parquet" if Path(path).suffix.lower() in PARQUET_SUFFIXES else "csv"
    if output_format is None:
        return inferred
    if output_format not in FORMATS:
        raise OutputError(f"unknown output format {output_format!r}; choose one of {', '.join(FORMATS)}")
    if output_format != inferred:
        wanted = ".parquet" if output_format == "parquet" else ".csv"
        raise OutputError(f"{path}: format {output_format} needs a {wanted} file name")
    return output_format


def _identity(path: Path) -> tuple[object, ...]:
    """What makes two names the same file: (device, inode) when it exists, else the resolved,
    case-folded path (symlinks followed; case folded as the file system would)."""
    with contextlib.suppress(OSError):
        stat = path.stat()
        return ("inode", stat.st_dev, stat.st_ino)
    resolved = path.resolve()
    with contextlib.suppress(OSError):  # a case-insensitive folder: compare names case-folded
        parent = resolved.parent
        if parent.exists() and os.path.samefile(parent, Path(str(parent).swapcase())):
            return ("name", os.path.normcase(str(resolved)).casefold())
    return ("name", os.path.normcase(str(resolved)))


def check_outputs(inputs: Sequence[str | Path], outputs: dict[str, str | Path | None]) -> None:
    """Refuse (OutputError, exit 4) before any work an output that is an input, or two outputs
    that are one file: names are compared after following symlinks, by inode for files that
    exist (hard links) and case-folded on case-insensitive folders. ``outputs``: option -> path."""
    seen: dict[tuple[object, ...], str] = {}
    for path in inputs:
        seen[_identity(Path(path))] = f"the input {path}"
    for option, path in outputs.items():
        if path is None:
            continue
        key = _identity(Path(path))
        if key in seen:
            raise OutputError(
                f"{path}: the {option} output would overwrite {seen[key]}; give each output its own "
                "file name, different from the input"
            )
        seen[key] = f"the {option} output"


def suffix_for(output_format: str) -> str:
    """File suffix of a format: ``.csv`` or ``.parquet``."""
    return ".parquet" if output_format == "parquet" else ".csv"


def open_writer(path: str | Path, output_format: str | None = None) -> AtomicCsvWriter | AtomicParquetWriter:
    """An atomic writer for ``path`` in its format (``format_of``)."""
    if format_of(path, output_format) == "parquet":
        return AtomicParquetWriter(path)
    return AtomicCsvWriter(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _DropUnlessCommitted:
    """The writers' ``with`` block: leaving it without ``commit`` (an error, Ctrl-C, or no commit)
    drops the file (``abort``, which does nothing after a commit)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def abort(self) -> None:
        raise NotImplementedError


class AtomicCsvWriter(_DropUnlessCommitted):
    """Append DataFrame chunks to ``path`` through a temporary file; ``commit`` or ``abort`` once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        fd, self._tmp = temporary_beside(self.path)
        self._handle: IO[str] | None = os.fdopen(fd, "w", newline="", encoding="utf-8")
        self._columns: list[str] | None = None

    def write(self, table: pd.DataFrame) -> None:
        """Append rows; the first non-empty table fixes the header (later ones must have its columns)."""
        if self._handle is None:
            raise OutputError(f"{self.path}: writer already closed")
        if table.empty:
            return
        if self._columns is None:
            self._columns = list(table.columns)
            table.to_csv(self._handle, index=False, float_format=FLOAT_FORMAT)
        else:
            table[self._columns].to_csv(self._handle, index=False, header=False, float_format=FLOAT_FORMAT)

    def commit(self, empty: pd.DataFrame | Sequence[str] | None = None) -> Path:
        """Finish the file and move it into place. ``empty``: the table (or header) if nothing was written."""
        if self._handle is None:
            raise OutputError(f"{self.path}: writer already closed")
        if self._columns is None:
            columns = list(empty.columns) if isinstance(empty, pd.DataFrame) else list(empty or [])
            pd.DataFrame(columns=columns).to_csv(self._handle, index=False)
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        move_into_place(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target is left as it was (nothing happens after ``commit``)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._tmp.unlink(missing_ok=True)


def temporary_beside(path: Path) -> tuple[int, Path]:
    """A new, empty temporary file ``.NAME.<random>.part`` in ``path``'s folder: (open descriptor,
    its path). OutputError (exit 4) when ``path`` is a folder, its folder is missing or unwritable."""
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name for the output")
    if not directory.is_dir():
        raise OutputError(f"{path}: cannot write output, folder {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    except OSError as err:
        raise OutputError(f"{path}: cannot write output ({err.strerror})") from None
    return fd, Path(tmp)


def move_into_place(tmp: Path, path: Path) -> None:
    """Rename the finished temporary file ``tmp`` to ``path`` with the usual permissions (0666
    minus the umask); on failure drop ``tmp`` and raise OutputError."""
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write output ({err.strerror})") from None


class AtomicParquetWriter(_DropUnlessCommitted):
    """``AtomicCsvWriter`` for Parquet (pyarrow): one row group per written chunk, schema fixed by the first."""

    def __init__(self, path: str | Path) -> None:
        self._csv = AtomicCsvWriter(path)  # the same checks and temporary file
        if self._csv._handle is not None:  # pyarrow reopens the temporary file by name
            self._csv._handle.close()
            self._csv._handle = None
        self.path = self._csv.path
        self._tmp = self._csv._tmp
        self._writer: Any = None
        self._schema: Any = None
        self._closed = False

    def write(self, table: pd.DataFrame) -> None:
        """Append rows as a row group; later tables are cast to the first one's schema."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._closed:
            raise OutputError(f"{self.path}: writer already closed")
        if table.empty:
            return
        if self._writer is None:
            self._schema = _schema_of(table)
            self._writer = pq.ParquetWriter(self._tmp, self._schema)
        try:
            arrow = pa.Table.from_pandas(table[self._schema.names], schema=self._schema, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as err:
            raise OutputError(f"{self.path}: rows do not fit the table's columns ({err})") from None
        self._writer.write_table(arrow)

    def commit(self, empty: pd.DataFrame | Sequence[str] | None = None) -> Path:
        """Finish the file and move it into place. ``empty``: the table (or column names) if nothing was written."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._closed:
            raise OutputError(f"{self.path}: writer already closed")
        self._closed = True
        if self._writer is None:
            if isinstance(empty, pd.DataFrame):
                arrow = pa.Table.from_pandas(empty.iloc[:0], schema=_schema_of(empty), preserve_index=False)
            else:
                arrow = pa.table({name: pa.array([], pa.string()) for name in empty or []})
            pq.write_table(arrow, self._tmp)
        else:
            self._writer.close()
        with open(self._tmp, "rb") as handle:
            os.fsync(handle.fileno())
        move_into_place(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target is left as it was (nothing happens after ``commit``)."""
        if self._closed and not self._tmp.exists():
            return
        if self._writer is not None and not self._closed:
            with contextlib.suppress(Exception):  # the file is dropped anyway
                self._writer.close()
        self._closed = True
        self._tmp.unlink(missing_ok=True)


def _schema_of(table: pd.DataFrame) -> Any:
    """Arrow schema of a pandas table; columns with no values yet (all None) become strings."""
    import pyarrow as pa

    schema = pa.Schema.from_pandas(table, preserve_index=False)
    for i, field in enumerate(schema):
        if pa.types.is_null(field.type):
            schema = schema.set(i, field.with_type(pa.string()))
    return schema
