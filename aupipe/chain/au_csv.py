"""Reading other tools' per-frame AU tables (CSV text): the parsing shared by ``aupipe calibrate``'s
reference codes (``aupipe.learning.references``) and ``aupipe import`` (``aupipe.chain.imported``).

Every problem with a file is one ``InputError`` line naming the file (and, for a cell, its line
and column; the header is line 1). Cells are read as text and turned into numbers here, so a
stray word is reported where it is rather than turning a column into ``object``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aupipe.errors import InputError
from aupipe.signal.aus import AU_NAMES

__all__ = [
    "AU_COLUMN", "FACS_LETTERS", "NAN_TEXT", "PRESENCE_COLUMN", "PYFEAT_MARKERS", "TIME_COLUMNS", "CsvHead",
    "au_column_map", "check_range", "detect_kind", "first_line", "numbers", "read_text", "sniff",
]  # fmt: skip

#: ``AU12``, ``AU 12``, ``AU1``, ``AU12_r`` (group 1: the AU number; group 2: ``_r`` when given).
AU_COLUMN = re.compile(r"^AU\s*0*(\d{1,2})(_r)?$", re.IGNORECASE)
#: OpenFace's presence columns, ``AU12_c`` (0 / 1).
PRESENCE_COLUMN = re.compile(r"^AU\s*0*(\d{1,2})_c$", re.IGNORECASE)
#: Cells read as "not coded" (NaN), compared lower case.
NAN_TEXT: tuple[str, ...] = ("", "nan", "na", "n/a")
FACS_LETTERS: dict[str, float] = {"A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0, "E": 5.0}
#: Time columns (lower case) -> seconds per unit; tried in this order.
TIME_COLUMNS: dict[str, float] = {"time_s": 1.0, "time_ms": 1e-3, "timestamp": 1.0}
#: Columns (lower case) that only py-feat's ``Fex.to_csv`` writes.
PYFEAT_MARKERS: tuple[str, ...] = ("facerectx", "facescore", "input")


@dataclass(frozen=True)
class CsvHead:
    """What a file's first line says: the separator and every column name (stripped, in file order)."""

    sep: str
    names: tuple[str, ...]


def sniff(path: str | Path, noun: str = "reference") -> CsvHead:
    """Check that ``path`` is a readable CSV text file and read its header (``,`` ``;`` or tab).

    ``noun`` names the file in messages (``no such reference file``). Raises InputError for a
    missing path, a folder, an unreadable, empty or binary file, a one-column text and a column
    name given twice.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such {noun} file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a CSV file")
    try:
        with path.open("rb") as handle:
            head = handle.read(65536)
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not head.strip():
        raise InputError(f"{path}: file is empty")
    if b"\0" in head:
        raise InputError(f"{path}: not a CSV text file (binary content)")
    first = head.decode("utf-8-sig", errors="replace").lstrip("\r\n").splitlines()[0]
    sep = "," if "," in first else ";" if ";" in first else "\t" if "\t" in first else ","
    names = tuple(name.strip() for name in next(csv.reader([first], delimiter=sep)))
    if len(names) < 2:
        raise InputError(f"{path}: not a CSV table (one column; expected comma-separated columns: frame,AU01,...)")
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise InputError(f"{path}: column {repeated[0]} appears more than once in the header")
    return CsvHead(sep, names)


def read_text(
    path: str | Path, head: CsvHead, usecols: Callable[[str], bool], chunk_rows: int | None = None
) -> Iterator[pd.DataFrame]:
    """The columns ``usecols`` accepts, as text (blank = NaN), names stripped, all-blank rows dropped.

    Yields the whole table once (``chunk_rows`` None) or pieces of ``chunk_rows`` file rows; the
    index is the data row (0-based, counting blank lines), so ``first_line`` finds a cell's line.
    A chunk may come out empty (only blank lines). Errors, wherever in the file, are one InputError.
    """
    path = Path(path)
    try:
        reader = pd.read_csv(
            path, sep=head.sep, dtype=str, keep_default_na=False, na_values=[""], skipinitialspace=True,
            skip_blank_lines=False, index_col=False, encoding="utf-8-sig", usecols=usecols, chunksize=chunk_rows,
        )  # fmt: skip
        pieces = iter([reader]) if chunk_rows is None else iter(reader)
        while True:
            try:
                table = next(pieces)
            except StopIteration:
                return
            table.columns = [str(column).strip() for column in table.columns]
            yield table.dropna(how="all")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; save the CSV as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: file is empty") from None
    except (pd.errors.ParserError, ValueError, OSError) as err:
        message = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: not a readable CSV file ({message})") from None


def detect_kind(lower: set[str]) -> str:
    """``openface``, ``pyfeat`` or ``facs`` from a file's column names (lower case)."""
    if {"success", "confidence"} <= lower and any(re.fullmatch(r"au\d+_r", c) for c in lower):
        return "openface"
    return "pyfeat" if any(marker in lower for marker in PYFEAT_MARKERS) else "facs"


def au_column_map(path: str | Path, columns: list[str], kind: str) -> tuple[dict[str, str], list[str]]:
    """AU name (``AU01``) -> its intensity column, in ``AU_NAMES`` order; and the AU columns aupipe
    does not report (e.g. ``AU45_r``). OpenFace (``kind="openface"``) intensities are the ``_r``
    columns only. No column of aupipe's AUs is an InputError."""
    found: dict[str, str] = {}
    ignored: list[str] = []
    for column in columns:
        match = AU_COLUMN.match(column)
        if not match or (kind == "openface" and not match.group(2)):
            continue
        name = f"AU{int(match.group(1)):02d}"
        if name not in AU_NAMES:
            ignored.append(column)
        elif name in found:
            raise InputError(f"{path}: columns {found[name]} and {column} both code {name}")
        else:
            found[name] = column
    if not found:
        seen = f" (only {', '.join(ignored)}, which aupipe does not report)" if ignored else ""
        wanted = "AU01_r, AU02_r ..." if kind == "openface" else "AU1, AU01, AU01_r ..."
        raise InputError(f"{path}: no AU column of aupipe's AUs ({wanted}){seen}")
    return {au: found[au] for au in AU_NAMES if au in found}, ignored


def numbers(
    path: str | Path, table: pd.DataFrame, column: str, letters: bool = False, required: bool = False
) -> np.ndarray:
    """A text column as floats, shape (n,) (NaN = blank); a cell that is no number (nor FACS
    letter A-E with ``letters``), or a blank where ``required``, is an InputError."""
    values = pd.to_numeric(table[column], errors="coerce")  # plain numbers: no text handling needed
    if values.isna().sum() != table[column].isna().sum():
        text = table[column].astype(str).str.strip().where(table[column].notna())
        text = text.where(~text.str.lower().isin(NAN_TEXT))
        values = pd.to_numeric(text, errors="coerce")
        if letters:
            values = values.fillna(text.str.upper().map(FACS_LETTERS))
        bad = text.notna() & values.isna()
        if bad.any():
            row = bad.idxmax()
            what = "a number or FACS letter A-E" if letters else "a number"
            raise InputError(f"{path}: line {int(row) + 2}, column {column}: {text[row]!r} is not {what}")
    if required and values.isna().any():
        raise InputError(f"{path}: line {first_line(table, values.isna().to_numpy())}, column {column}: empty")
    return values.to_numpy(dtype=np.float64)


def first_line(table: pd.DataFrame, mask: np.ndarray) -> int:
    """File line (the header is line 1) of the first row of ``table`` where ``mask`` ((n,) bool) is True."""
    return int(table.index[int(np.argmax(mask))]) + 2


def check_range(
    path: str | Path, table: pd.DataFrame, column: str, values: np.ndarray, top: float, scale: str | None = None
) -> None:
    """Every non-NaN value in [0, ``top``], else an InputError naming the line; ``scale`` says what the
    range is (default: py-feat's 0-1 for ``top`` 1, FACS codes' 0-5 otherwise)."""
    out = ~np.isnan(values) & ~((values >= 0) & (values <= top))
    if out.any():
        scale = scale or ("py-feat scores are 0-1" if top == 1.0 else "AU codes are 0-5 or FACS letters A-E")
        line = first_line(table, out)
        raise InputError(f"{path}: line {line}, column {column}: {values[out][0]:g} is out of range ({scale})")
