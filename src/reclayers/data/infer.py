"""A starting :class:`~reclayers.data.schema.Schema` guessed from a file's header and first rows.

Rules (the result is meant to be read and edited):

* labels: the columns named in ``labels``, else those with a usual label name (``label``,
  ``click``, ``is_click``, ``target``, ``y``, ``conversion``, ``purchase``...);
* text columns → categorical (a text column whose values contain ``|`` or ``;`` → a sequence
  split at that separator); integer columns whose name looks like an id (``id``, ``*_id``, ``*id``,
  ``C12``) or with at most 1,000 distinct values among the rows read → categorical;
* other numbers → dense (``log1p`` when every value is non-negative and the largest exceeds
  100, as for counts); a column named ``time``/``timestamp``/``date`` becomes ``time_column``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reclayers.data.schema import CategoricalFeature, DenseFeature, Label, Schema, SequenceFeature

__all__ = ["infer_schema", "LABEL_NAMES"]

#: Column names taken as labels when none are given.
LABEL_NAMES = ("label", "labels", "click", "clicked", "is_click", "target", "y", "conversion",
               "converted", "purchase", "buy", "like")
_TIME_NAMES = ("time", "timestamp", "ts", "date", "datetime", "event_time")
_ID = re.compile(r"(^id$|_id$|id$|^[a-z]\d+$)", re.IGNORECASE)


def _head(path: Path, fmt: str, rows: int) -> pa.Table:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        f = pq.ParquetFile(path)
        return pa.Table.from_batches([next(f.iter_batches(batch_size=rows))])
    import pyarrow.csv as pacsv

    delim = "\t" if fmt == "tsv" else ","
    with open(path, "rb") as fh:
        head = b"".join(fh.readline() for _ in range(rows + 1))
    return pacsv.read_csv(pa.BufferReader(head), parse_options=pacsv.ParseOptions(
        delimiter=delim, invalid_row_handler=lambda row: "skip"))


def infer_schema(path, fmt: str = "csv", rows: int = 10_000, labels=None) -> Schema:
    """Guess a schema from the header and the first ``rows`` rows (see the module docstring).

    Args:
        path: the file.
        fmt: ``"csv"``, ``"tsv"`` (with a header) or ``"parquet"``.
        rows: rows looked at.
        labels: label column names (default: guessed from the names).

    Example:
        >>> from pathlib import Path
        >>> _ = Path("log.csv").write_text("click,user_id,price,tags\\n1,7,12.5,a|b\\n0,8,300,c\\n")
        >>> s = infer_schema("log.csv")
        >>> [(f.name, f.kind) for f in s.features], s.label_names
        ([('user_id', 'categorical'), ('price', 'dense'), ('tags', 'sequence')], ('click',))
    """
    table = _head(Path(path), fmt, rows)
    names = table.column_names
    if labels is None:
        labels = [c for c in names if c.lower() in LABEL_NAMES]
    missing = [c for c in labels if c not in names]
    if missing:
        raise ValueError(f"infer_schema: label columns {missing} are not in the file; got {names}")
    time_col = next((c for c in names if c.lower() in _TIME_NAMES and c not in labels), None)
    feats = []
    for c in names:
        if c in labels or c == time_col:
            continue
        col = table.column(c)
        typ = col.type
        if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_null(typ):
            text = pc.drop_null(col)
            sep = next((s for s in ("|", ";") if len(text) and pc.any(pc.match_substring(text, s)).as_py()),
                       None)
            if sep:
                lengths = pc.list_value_length(pc.split_pattern(text, sep)).to_numpy()
                max_len = int(min(max(np.percentile(lengths, 95), 1), 200))
                feats.append(SequenceFeature(c, separator=sep, max_len=max_len))
            else:
                feats.append(CategoricalFeature(c))
        elif pa.types.is_integer(typ) and (_ID.search(c) or pc.count_distinct(col).as_py() <= 1000):
            feats.append(CategoricalFeature(c))
        elif pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ):
            x = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
            x = x[np.isfinite(x)]
            log = bool(x.size and x.min() >= 0 and x.max() > 100)
            feats.append(DenseFeature(c, fill="mean", log=log, standardize=not log))
        else:
            feats.append(CategoricalFeature(c))
    return Schema(features=tuple(feats), labels=tuple(Label(c) for c in labels),
                  name=Path(path).stem, time_column=time_col)
