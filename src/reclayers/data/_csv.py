"""Streaming delimited-text reading on pyarrow, with malformed-row accounting.

Every column is read as text; numeric columns are validated with one vectorised regular
expression per block, so a bad value costs one skipped (and reported) row, never the run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

__all__ = ["DataFormatError", "RowErrors", "read_delimited", "to_float", "LOG"]

LOG = logging.getLogger("reclayers.data")

#: prefix of the float64 copies of the ``floats`` columns in :func:`read_delimited`'s chunks
FLOAT_PREFIX = "_float/"
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_SUB_BLOCK = 1 << 20  # bytes per parallel parsing task inside a block
_DELIM_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", " ": "space"}


class DataFormatError(ValueError):
    """The file is not in the declared format (wrong header, wrong field count on its first line)."""


@dataclass
class RowErrors:
    """Counts and first examples of skipped rows, per reason.

    ``counts`` maps a reason (``"field count"``, ``"bad number"``, ``"empty label"``) to a count;
    ``examples`` keeps the first ``max_examples`` as ``(path, line, reason, text)``; ``rows_read``
    counts every data row met, skipped ones included.

    Attributes:
        max_examples: how many examples to keep.
        counts: ``{reason: count}``.
        examples: ``[(path, line, reason, text)]``, the first ``max_examples`` skipped rows.
        rows_read: data rows met.

    Example:
        >>> from pathlib import Path
        >>> from reclayers.data import frappe
        >>> header = "label,user,item,daytime,weekday,isweekend,homework,cost,weather,country,city"
        >>> _ = Path("f.csv").write_text(header + "\\n1,1,2,3,4,5,6,7,8,9,10\\n1,2,3\\n")
        >>> src = frappe("f.csv")
        >>> len(src.read_all()["label"]), src.errors.counts, src.errors.rows_read
        (1, {'field count': 1}, 2)
    """

    max_examples: int = 5
    counts: dict = field(default_factory=dict)
    examples: list = field(default_factory=list)
    rows_read: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, path, line, reason: str, text: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.examples) < self.max_examples:
            self.examples.append((str(path), line, reason, text[:200]))

    def report(self) -> str:
        if not self.total:
            return f"{self.rows_read} rows read, none skipped"
        parts = ", ".join(f"{n} {r}" for r, n in sorted(self.counts.items()))
        ex = "; ".join(f"{Path(p).name}:{ln}: {r}: {t!r}" for p, ln, r, t in self.examples)
        return f"{self.rows_read} rows read, {self.total} malformed rows skipped ({parts}); first: {ex}"

    def to_dict(self) -> dict:
        """JSON-ready summary: rows read, rows skipped per reason, first examples."""
        return {"rows_read": self.rows_read, "skipped": self.total, "reasons": dict(self.counts),
                "examples": [{"file": p, "line": ln, "reason": r, "text": t}
                             for p, ln, r, t in self.examples]}

    def log(self) -> None:
        if self.total:
            LOG.warning("reclayers.data: %s", self.report())


def _first_line(path: Path, skip: int = 0) -> str:
    with open(path, "rb") as fh:
        for _ in range(skip):
            fh.readline()
        return fh.readline().decode("utf-8", errors="replace").rstrip("\r\n")


def _line_numbers(rows: np.ndarray, first_line: int, invalid_lines: list) -> np.ndarray:
    """File line numbers of good data rows ``rows`` (0-based among good rows)."""
    lines = first_line + rows
    for bad in sorted(invalid_lines):
        lines = lines + (lines >= bad)
    return lines


def _line_blocks(path: Path, block_size: int, skip_first: bool) -> Iterator[tuple]:
    """``(bytes, line)``: the file cut into blocks of about ``block_size`` bytes that end at a line
    end, with the file line number of each block's first line (1-based; the header line skipped
    when ``skip_first``). Read here rather than by pyarrow's streaming reader, whose background
    read-ahead holds up to 32 blocks (512 MiB at 16 MiB blocks) whatever the consumer's pace;
    compressed files (``.gz``, ``.bz2``, ...) are decompressed by the suffix, as pyarrow does."""
    line = 1
    with pa.input_stream(str(path)) as fh:
        carry = b""
        if skip_first:
            while b"\n" not in carry:
                more = fh.read(block_size)
                if not more:
                    return
                carry += more
            cut = carry.index(b"\n") + 1
            carry, line = carry[cut:], 2
        while True:
            more = fh.read(block_size)
            buf = carry + more if carry else more
            if not more:
                if buf:
                    yield buf, line
                return
            cut = buf.rfind(b"\n") + 1
            if cut == 0:
                carry = buf
                continue
            block, carry = (buf[:cut], buf[cut:]) if cut < len(buf) else (buf, b"")
            yield block, line
            line += block.count(b"\n")


def _parse_block(block: bytes, columns: list, delimiter: str, quote, conv_opts) -> tuple:
    """Parse one block on all cores: ``(table, [(line in block, report text)])``. Rows with the
    wrong field count are skipped; the multi-threaded parser does not know their line numbers, so
    a block that had any is parsed again on one thread to find them (only such blocks pay)."""
    def parse(threads: bool) -> tuple:
        invalid: list = []

        def on_invalid(row):
            invalid.append((row.number if row.number is not None else -1,
                            f"expected {row.expected_columns} fields, got {row.actual_columns}: {row.text}"))
            return "skip"

        table = pacsv.read_csv(
            pa.py_buffer(block),
            read_options=pacsv.ReadOptions(use_threads=threads, block_size=_SUB_BLOCK, column_names=columns),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid,
                                             quote_char=quote),
            convert_options=conv_opts)
        return table, invalid

    table, invalid = parse(True)
    if invalid:
        table, invalid = parse(False)  # exact line numbers (1-based within the block)
    return table, invalid


def read_delimited(path, *, delimiter: str = ",", names=None, header: bool = True,
                   required_columns=(), numeric=(), labels=(), text_labels=(), include=None,
                   block_size: int = 1 << 22, errors: RowErrors | None = None,
                   strip: bool = False, floats=()) -> Iterator[dict]:
    """Yield blocks of a delimited text file as ``{column: pyarrow string array}``.

    Args:
        path: the file.
        delimiter: field separator.
        names: column names when the file has no header (its field count is then checked on the
            first line); with ``header=True`` they are the expected header when given.
        header: the first line names the columns.
        required_columns: columns a header must contain.
        numeric: columns that must parse as numbers (empty = missing is allowed).
        labels: columns that must be non-empty numbers.
        text_labels: (text) label columns that must be non-empty.
        include: columns to return (default: all).
        block_size: bytes per parsed block (memory stays O(block_size)).
        errors: accumulates skipped rows; a fresh one is created when ``None``.
        strip: strip surrounding whitespace from every value.
        floats: validated columns (of ``numeric``/``labels``) also yielded as float64 NumPy arrays
            (empty = NaN, as :func:`to_float` gives), named :data:`FLOAT_PREFIX` + column: the
            float cast that validated them is reused, so each value is parsed once.

    Raises:
        DataFormatError: the header or the first line does not match the declared format.
    """
    path = Path(path)
    errors = errors if errors is not None else RowErrors()
    dname = _DELIM_NAMES.get(delimiter, repr(delimiter))
    first = _first_line(path)
    if header:
        got = [c.strip().strip('"') for c in first.split(delimiter)]
        want = list(names) if names is not None else list(required_columns)
        missing = [c for c in want if c not in got]
        if missing or len(got) < 2:
            raise DataFormatError(
                f"{path}:1: not the declared format: expected a {dname}-separated header with "
                f"columns {want[:6]}{'...' if len(want) > 6 else ''}; missing {missing[:6]}; "
                f"line starts {first[:80]!r}")
        columns = got
    else:
        columns = list(names)
        n = len(first.split(delimiter))
        if n != len(columns):
            raise DataFormatError(
                f"{path}:1: not the declared format: expected {len(columns)} {dname}-separated fields, "
                f"found {n}; line starts {first[:80]!r}")
    wanted = list(include) if include is not None else columns
    conv_opts = pacsv.ConvertOptions(column_types={c: pa.string() for c in columns},
                                     include_columns=wanted, strings_can_be_null=False,
                                     quoted_strings_can_be_null=False)
    quote = '"' if delimiter == "," else False
    for block, block_line in _line_blocks(path, block_size, skip_first=header):
        table, invalid = _parse_block(block, columns, delimiter, quote, conv_opts)
        invalid_lines = [block_line - 1 + number for number, _ in invalid]
        for line, (_, text) in zip(invalid_lines, invalid):
            errors.rows_read += 1
            errors.add(path, line, "field count", text)
        n = table.num_rows
        if n == 0:
            continue
        cols = {name: table.column(i).combine_chunks() for i, name in enumerate(table.column_names)}
        if strip:
            cols = {k: pc.utf8_trim_whitespace(v) for k, v in cols.items()}
        bad = np.zeros(n, dtype=bool)
        reasons = np.empty(n, dtype=object)
        cast: dict = {}  # float casts of the columns that validated by the fast path
        for c in labels:
            x = _all_numbers(cols[c], allow_empty=False)
            if x is not None:
                cast[c] = x
                continue
            v = cols[c]
            b = ~np.asarray(pc.match_substring_regex(v, _NUMBER).to_numpy(zero_copy_only=False), bool)
            empty = np.asarray(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(v)), 0).to_numpy(
                zero_copy_only=False), bool)
            reasons[b & ~bad] = np.where(empty[b & ~bad], "empty label", "bad number")
            bad |= b
        for c in text_labels:
            b = np.asarray(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(cols[c])), 0).to_numpy(
                zero_copy_only=False), bool)
            reasons[b & ~bad] = "empty label"
            bad |= b
        for c in numeric:
            if c in labels or c not in cols:
                continue
            x = _all_numbers(cols[c], allow_empty=True)
            if x is not None:
                cast[c] = x
                continue
            v = cols[c]
            ok = pc.or_(pc.match_substring_regex(v, _NUMBER),
                        pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(v)), 0))
            b = ~np.asarray(ok.to_numpy(zero_copy_only=False), bool)
            reasons[b & ~bad] = "bad number"
            bad |= b
        if bad.any():
            idx = np.flatnonzero(bad)
            lines = _line_numbers(idx, block_line, invalid_lines)
            for i, ln in zip(idx, lines):
                text = delimiter.join(str(cols[c][i].as_py()) for c in wanted[:12])
                errors.add(path, int(ln), reasons[i], text)
            keep = pa.array(~bad)
            cols = {k: pc.filter(v, keep) for k, v in cols.items()}
            cast = {k: pc.filter(v, keep) for k, v in cast.items()}
        errors.rows_read += n
        if n - int(bad.sum()):
            for c in floats:  # next to the text, which time columns and derived columns read
                cols[FLOAT_PREFIX + c] = (cast[c].to_numpy(zero_copy_only=False).astype(np.float64)
                           if c in cast else to_float(cols[c]))
            yield cols
    errors.log()


def _cast_numbers(arr) -> pa.Array | None:
    """Text → float64 (empty = null) in one cast, or ``None`` when some value does not cast."""
    arr = pc.if_else(pc.equal(pc.binary_length(arr), 0), pa.scalar(None, pa.string()), arr)
    try:
        return pc.cast(arr, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _all_numbers(arr, allow_empty: bool) -> pa.Array | None:
    """The float64 cast of a text column (empty = null) when every value is a number by
    :data:`_NUMBER` (and, unless ``allow_empty``, none is empty), else ``None``: the fast path of
    the validation, one cast that :func:`read_delimited` also keeps as the column's values.

    A cast that fails, or that yields a non-finite value (``nan``, ``inf``, an overflow), answers
    ``None`` and the caller falls back to the exact regular expression, so the cast never accepts
    what the expression rejects; values with surrounding spaces take the slow path too."""
    if not allow_empty and pc.any(pc.equal(pc.binary_length(arr), 0)).as_py():
        return None
    x = _cast_numbers(arr)
    if x is None:
        return None
    return x if pc.all(pc.is_finite(x), skip_nulls=True).as_py() is not False else None


def to_float(arr) -> np.ndarray:
    """Text column (validated) → float64 numpy, empty = NaN."""
    x = _cast_numbers(arr)  # fast path: no surrounding whitespace
    if x is None:
        arr = pc.utf8_trim_whitespace(arr)
        arr = pc.if_else(pc.equal(pc.utf8_length(arr), 0), pa.scalar(None, pa.string()), arr)
        x = pc.cast(arr, pa.float64())
    return x.to_numpy(zero_copy_only=False).astype(np.float64)
