"""Streaming readers of the common recommendation data formats.

Each reader returns a :class:`Source`: the format's default :class:`~reclayers.data.schema.Schema`
plus :meth:`Source.chunks`, a re-iterable stream of *raw chunks* (``{column: values}``; dense as
float64 with ``NaN`` for missing, categorical as pyarrow text, sequences as pyarrow
list-of-text, labels as float, and ``"_time"`` when the format has a timestamp) that a
:class:`~reclayers.data.preprocess.Preprocessor` fits on and transforms. Files are read in blocks
of about ``block_size`` bytes cut at line ends, each parsed by pyarrow's multi-threaded CSV reader,
one block at a time, so memory does not grow with the file (except :func:`amazon_logs`, which
must group a whole log by user, and the small side tables of :func:`movielens_atomic`).

Malformed rows — wrong field count, an unparsable number, an empty label — are skipped, counted
in ``source.errors`` (a :class:`~reclayers.data._csv.RowErrors`: counts and the first examples
with file and line) and logged once per pass on the ``reclayers.data`` logger. A file that is not
in the declared format (missing header columns, wrong field count on its first line) raises
:class:`~reclayers.data._csv.DataFormatError` naming the file and line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reclayers.data._csv import (
    FLOAT_PREFIX,
    DataFormatError,
    RowErrors,
    _first_line,
    read_delimited,
    to_float,
)
from reclayers.data.schema import CategoricalFeature, DenseFeature, Label, Schema, SequenceFeature

__all__ = [
    "Source",
    "read_csv",
    "read_parquet",
    "criteo",
    "avazu",
    "movielens",
    "movielens_atomic",
    "frappe",
    "din",
    "amazon_logs",
    "alimama_dmr",
    "ali_ccp",
    "census_income",
    "concat_chunks",
    "take_chunk",
]

_BLOCK = 1 << 24


class Source:
    """A data set in some file format: its default ``schema`` and a stream of raw chunks.

    ``chunks()`` may be called any number of times (each call re-reads the files and resets
    ``errors``); ``errors`` describes the last pass.

    Readers (:func:`criteo`, :func:`frappe`, ...) build these; a raw chunk is a dict of columns
    (NumPy or pyarrow arrays) keyed by the schema's source columns, with ``label`` columns and
    ``_time`` where the format has a timestamp.

    Args:
        name: the format's name (``"criteo"``).
        schema: the default :class:`~reclayers.data.schema.Schema` of the format.
        chunk_fn: ``chunk_fn(errors) -> iterator of raw chunks``; it records skipped rows in the
            :class:`~reclayers.data._csv.RowErrors` it is given.
        paths: the files read (for messages).

    Example:
        >>> import numpy as np
        >>> from reclayers.data import CategoricalFeature, Label, Schema
        >>> schema = Schema(features=(CategoricalFeature("user"),), labels=(Label("click"),))
        >>> chunk = {"user": np.array(["a", "b"]), "click": np.array([1.0, 0.0], "float32")}
        >>> src = Source("memory", schema, lambda errors: iter([chunk, chunk]))
        >>> len(src.read_all()["click"])
        4
    """

    def __init__(self, name: str, schema: Schema, chunk_fn: Callable, paths=()):
        self.name = name
        self.schema = schema
        self._chunk_fn = chunk_fn
        self.paths = tuple(str(p) for p in paths)
        self.errors = RowErrors()

    def chunks(self):
        self.errors = RowErrors()
        yield from self._chunk_fn(self.errors)

    def read_all(self) -> dict:
        """Every raw chunk concatenated (small files only)."""
        return concat_chunks(list(self.chunks()))

    def __repr__(self):
        return f"Source({self.name!r}, paths={self.paths})"


# --- raw-chunk helpers ----------------------------------------------------------------------------
def concat_chunks(chunks: list) -> dict:
    """Concatenate raw chunks column-wise (numpy or pyarrow columns).

    Args:
        chunks: a list of raw chunks with the same keys.

    Example:
        >>> import numpy as np
        >>> both = concat_chunks([{"a": np.array([1, 2])}, {"a": np.array([3])}])
        >>> both["a"].tolist()
        [1, 2, 3]
    """
    if not chunks:
        return {}
    out = {}
    for k, v in chunks[0].items():
        parts = [c[k] for c in chunks]
        if isinstance(v, pa.Array | pa.ChunkedArray):
            out[k] = pa.chunked_array(parts).combine_chunks() if len(parts) > 1 else v
        else:
            out[k] = np.concatenate(parts)
    return out


def take_chunk(chunk: dict, index) -> dict:
    """Rows ``index`` (int positions or a boolean mask) of a raw chunk.

    Args:
        chunk: a raw chunk.
        index: int positions or a boolean mask over its rows.

    Example:
        >>> import numpy as np
        >>> take_chunk({"a": np.array([10, 20, 30])}, np.array([True, False, True]))["a"].tolist()
        [10, 30]
    """
    index = np.asarray(index)
    if index.dtype == bool:  # a mask: pyarrow filters (faster than a take of the same rows)
        mask = pa.array(index)
        return {k: v.filter(mask) if isinstance(v, pa.Array | pa.ChunkedArray) else v[index]
                for k, v in chunk.items()}
    out = {}
    for k, v in chunk.items():
        is_arrow = isinstance(v, pa.Array | pa.ChunkedArray)
        out[k] = v.take(pa.array(index, pa.int64())) if is_arrow else v[index]
    return out


def _split_list(text: pa.Array, sep: str) -> pa.Array:
    """Text column → list-of-text column (empty text → empty list)."""
    lists = pc.split_pattern(text, sep)
    flat = pc.list_flatten(lists)
    keep = np.asarray(pc.not_equal(pc.utf8_trim_whitespace(flat), "").to_numpy(zero_copy_only=False), bool)
    offsets = lists.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    offsets -= offsets[0]
    cs = np.concatenate([[0], np.cumsum(keep)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(cs[offsets]), pc.filter(flat, pa.array(keep)))


def _label_ge(text, threshold: float) -> np.ndarray:
    return (to_float(text) >= threshold).astype(np.float32)


# --- generic --------------------------------------------------------------------------------------
KEEP_PREFIX = "_keep/"


@dataclass(frozen=True)
class _Layout:
    """How one delimited format maps to raw columns (the data that distinguishes the readers).

    ``numbers``/``labels`` (and ``checked``) are validated (a bad number or an empty label skips
    the row) and read as floats; ``text`` columns pass through; ``lists`` are split at their
    separator; ``time`` becomes
    ``_time``; ``derive(cols)`` adds format-specific columns computed from the text columns;
    ``keep`` columns pass through as ``"_keep/" + name``.
    """

    delimiter: str = ","
    header: bool = True
    names: tuple | None = None
    required: tuple = ()
    numbers: tuple = ()
    checked: tuple = ()  # validated as numbers, not converted (``derive`` reads them)
    labels: tuple = ()
    text_labels: tuple = ()
    text: tuple = ()
    lists: tuple = ()  # (column, separator) pairs
    time: str | None = None
    derive: Callable | None = None
    strip: bool = False
    include: tuple | None = None
    keep: tuple = ()


def _delimited(name: str, path, schema: Schema, layout: _Layout, block_size: int) -> Source:
    """The :class:`Source` of a file in ``layout`` (the one body of the delimited readers)."""
    path = Path(path)
    time_col = (layout.time,) if layout.time else ()
    validated = tuple(dict.fromkeys(layout.numbers + layout.checked + time_col))
    floats = tuple(dict.fromkeys(layout.labels + layout.numbers))

    def gen(errors):
        for cols in read_delimited(path, delimiter=layout.delimiter, header=layout.header,
                                   names=layout.names, required_columns=layout.required,
                                   numeric=validated, labels=layout.labels, text_labels=layout.text_labels,
                                   include=layout.include, strip=layout.strip, block_size=block_size,
                                   errors=errors, floats=floats):
            raw = {c: cols.pop(FLOAT_PREFIX + c) for c in floats}  # float64, each value parsed once
            raw.update({c: cols[c] for c in layout.text})
            raw.update({c: _split_list(cols[c], sep) for c, sep in layout.lists})
            if layout.time:
                raw["_time"] = to_float(cols[layout.time])
            if layout.derive is not None:
                raw.update(layout.derive(cols))
            raw.update({KEEP_PREFIX + c: cols[c] for c in layout.keep})
            yield raw

    return Source(name, schema, gen, [path])


def read_csv(path, schema: Schema, *, delimiter: str = ",", header: bool = True, names=None,
             block_size: int = _BLOCK, labeled: bool | None = True, keep=()) -> Source:
    """Any delimited file described by ``schema`` (columns found by the features' ``source``).

    Args:
        path: the file.
        schema: what to read; each feature's raw column is its ``column`` (default: its name).
        delimiter: field separator.
        header: the first line names the columns.
        names: the column names when there is no header.
        block_size: bytes read per block.
        labeled: ``True``: the label columns must be there; ``False``: they are not read;
            ``None``: read them when the header has them (prediction files without labels).
        keep: other raw columns to pass through as text, keyed ``"_keep/" + column``
            (e.g. an id to write next to predictions).

    Example:
        >>> from pathlib import Path
        >>> from reclayers.data import CategoricalFeature, DenseFeature, Label, Schema
        >>> _ = Path("any.tsv").write_text("y\\tu\\tage\\n1\\ta\\t3.5\\n0\\tb\\t\\n")
        >>> schema = Schema(features=(CategoricalFeature("u"), DenseFeature("age")), labels=(Label("y"),))
        >>> raw = read_csv("any.tsv", schema, delimiter="\\t").read_all()
        >>> sorted(raw), [float(v) for v in raw["age"]]
        (['age', 'u', 'y'], [3.5, nan])
    """
    path = Path(path)
    numeric = [f.source for f in schema.dense]
    labels = [lab.source for lab in schema.labels]
    if labeled is None:
        present = [c.strip().strip('"') for c in _first_line(path).split(delimiter)] if header \
            else list(names or ())
        labeled = all(c in present for c in labels)
    if not labeled:
        labels = []
    keep = tuple(keep)
    needed = numeric + [f.source for f in schema.categorical + schema.sequence] + labels + list(keep)
    if schema.time_column:
        needed.append(schema.time_column)
    return _delimited(schema.name or path.stem, path, schema, _Layout(
        delimiter=delimiter, header=header, names=names, required=tuple(needed) if header else (),
        numbers=tuple(numeric), labels=tuple(labels), text=tuple(f.source for f in schema.categorical),
        lists=tuple((f.source, f.separator) for f in schema.sequence), time=schema.time_column,
        include=tuple(sorted(set(needed))), keep=keep), block_size)


def read_parquet(path, schema: Schema, *, labeled: bool | None = True, keep=(),
                 batch_rows: int = 1 << 16) -> Source:
    """A Parquet file described by ``schema``, streamed by row groups.

    Dense columns are read as numbers (null = missing), categorical ones as text (numbers are
    written in decimal), sequence columns as lists (or as text split at the feature's
    ``separator``). A row whose label is null is skipped and counted (``"empty label"``).

    Args:
        path: the file.
        schema: what to read (each feature's raw column is its ``source``).
        labeled: as in :func:`read_csv`.
        keep: other columns to pass through as text, keyed ``"_keep/" + column``.
        batch_rows: rows per chunk.

    Example:
        >>> import pyarrow as pa, pyarrow.parquet as pq
        >>> from reclayers.data import CategoricalFeature, DenseFeature, Label, Schema
        >>> pq.write_table(pa.table({"u": [7, 8], "age": [3.5, None], "y": [1, None]}), "t.parquet")
        >>> schema = Schema(features=(CategoricalFeature("u"), DenseFeature("age")), labels=(Label("y"),))
        >>> src = read_parquet("t.parquet", schema)
        >>> raw = src.read_all()
        >>> raw["u"].to_pylist(), src.errors.counts
        (['7'], {'empty label': 1})
    """
    import pyarrow.parquet as pq

    path = Path(path)
    present = pq.read_schema(path).names
    labels = [lab.source for lab in schema.labels]
    if labeled is None:
        labeled = all(c in present for c in labels)
    if not labeled:
        labels = []
    needed = [f.source for f in schema.features] + labels + list(keep) + \
        ([schema.time_column] if schema.time_column else [])
    missing = [c for c in needed if c not in present]
    if missing:
        raise DataFormatError(f"{path}: not the declared format: missing columns {missing[:6]}; "
                              f"the file has {present[:8]}{'...' if len(present) > 8 else ''}")

    def number(col) -> np.ndarray:
        return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)

    def text(col):
        return col if pa.types.is_string(col.type) else pc.cast(col, pa.string())

    def gen(errors):
        line = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows,
                                                        columns=sorted(set(needed))):
            cols = {n: batch.column(i) for i, n in enumerate(batch.schema.names)}
            n = batch.num_rows
            errors.rows_read += n
            bad = np.zeros(n, bool)
            for c in labels:
                bad |= np.asarray(cols[c].is_null().to_numpy(zero_copy_only=False), bool)
            if bad.any():
                for i in np.flatnonzero(bad)[:errors.max_examples]:
                    errors.add(path, line + int(i) + 1, "empty label", f"row {line + int(i) + 1}")
                errors.counts["empty label"] += int(bad.sum()) - min(int(bad.sum()), errors.max_examples)
                keep_rows = pa.array(~bad)
                cols = {k: pc.filter(v, keep_rows) for k, v in cols.items()}
            line += n
            raw = {c: number(cols[c]) for c in [f.source for f in schema.dense] + labels}
            for f in schema.categorical:
                raw[f.source] = text(cols[f.source])
            for f in schema.sequence:
                col = cols[f.source]
                raw[f.source] = _split_list(text(col), f.separator) if not pa.types.is_list(col.type) \
                    else pc.cast(col, pa.list_(pa.string()))
            if schema.time_column:
                raw["_time"] = number(cols[schema.time_column])
            for c in keep:
                raw[KEEP_PREFIX + c] = text(cols[c])
            if len(next(iter(raw.values()))):
                yield raw
        errors.log()

    return Source(schema.name or path.stem, schema, gen, [path])


# --- Criteo ---------------------------------------------------------------------------------------
CRITEO_DENSE = tuple(f"I{i}" for i in range(1, 14))
CRITEO_SPARSE = tuple(f"C{i}" for i in range(1, 27))


def criteo_schema(min_freq: int = 1, embedding_dim: int = 8, num_bins: int = 0) -> Schema:
    """Criteo's usual preprocessing: dense counts filled with 0 and ``log1p``-ed (or bucketised),
    categorical hex ids by vocabulary."""
    return Schema(
        features=tuple(DenseFeature(c, fill="zero", log=True, num_bins=num_bins) for c in CRITEO_DENSE)
        + tuple(CategoricalFeature(c, min_freq=min_freq, embedding_dim=embedding_dim) for c in CRITEO_SPARSE),
        labels=(Label("label"),), name="criteo")


def criteo(path, fmt: str = "auto", schema: Schema | None = None, block_size: int = _BLOCK,
           keep=()) -> Source:
    """Criteo display-ads data.

    Args:
        path: the file.
        fmt: ``"tsv"`` — the Kaggle/terabyte layout (label, 13 integer, 26 hex columns, tab
            separated, no header); ``"csv"`` — DeepCTR's sample layout (comma separated, header
            ``label,I1..I13,C1..C26``); ``"auto"`` picks from the first line. Empty = missing.
            A TSV file with 39 fields (the Kaggle test layout) or a CSV header without ``label``
            is read without labels (for prediction).
        schema: override the default :func:`criteo_schema`.
        block_size: bytes read per block (each block becomes one chunk).
        keep: raw columns (``label``, ``I1``.., ``C1``..) to pass through as text, keyed
            ``"_keep/" + column``.

    Example:
        >>> from reclayers import data as rd
        >>> _ = rd.write_criteo("train.txt", n_rows=50)      # Kaggle layout
        >>> src = criteo("train.txt")
        >>> len(src.schema.features), src.schema.label_names, len(src.read_all()["label"])
        (39, ('label',), 50)
    """
    path = Path(path)
    first = _first_line(path)
    if fmt == "auto":
        fmt = "csv" if first.startswith(("label,", "I1,")) else "tsv"
    if fmt not in ("csv", "tsv"):
        raise ValueError(f"criteo: fmt must be 'auto', 'csv' or 'tsv'; got {fmt!r}")
    if fmt == "csv":
        labeled = "label" in [c.strip() for c in first.split(",")]
    else:
        labeled = len(first.split("\t")) != len(CRITEO_DENSE + CRITEO_SPARSE)
    labels = ("label",) if labeled else ()
    names = labels + CRITEO_DENSE + CRITEO_SPARSE
    schema = schema or criteo_schema()

    return _delimited("criteo", path, schema, _Layout(
        delimiter="," if fmt == "csv" else "\t", header=fmt == "csv", names=names, numbers=CRITEO_DENSE,
        labels=labels, text=CRITEO_SPARSE, keep=tuple(keep)), block_size)


# --- Avazu ----------------------------------------------------------------------------------------
AVAZU_SPARSE = ("C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id", "app_domain",
                "app_category", "device_id", "device_ip", "device_model", "device_type",
                "device_conn_type", "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21")


def avazu(path, schema: Schema | None = None, block_size: int = _BLOCK) -> Source:
    """Avazu CSV (header ``id,click,hour,...``). ``hour`` (``YYMMDDHH``) becomes the categorical
    ``hour_of_day`` (0-23) and ``weekday`` (0 = Monday); ``id`` is dropped; label ``click``;
    ``_time`` = ``YYMMDDHH`` as a number (for a time split).

    Args:
        path: an Avazu CSV file (the competition's ``train`` file or a sample of it).
        schema: replaces the default schema (the categorical ``hour_of_day``, ``weekday`` and
            :data:`AVAZU_SPARSE` columns, label ``click``, time column ``hour``), e.g. to set
            ``min_freq`` or ``embedding_dim``. Default ``None``.
        block_size: bytes read at a time, each block parsed into one chunk. Default 16 MiB.

    Example:
        >>> from pathlib import Path
        >>> from reclayers.data.readers import AVAZU_SPARSE
        >>> header = ",".join(("id", "click", "hour") + AVAZU_SPARSE)
        >>> row = ",".join(["7", "1", "14102213"] + ["x"] * len(AVAZU_SPARSE))
        >>> _ = Path("avazu.csv").write_text(header + "\\n" + row + "\\n")
        >>> raw = avazu("avazu.csv").read_all()
        >>> raw["hour_of_day"].to_pylist(), raw["weekday"].to_pylist()   # 2014-10-22 was a Wednesday
        (['13'], ['2'])
    """
    path = Path(path)
    feats = [CategoricalFeature(c) for c in ("hour_of_day", "weekday") + AVAZU_SPARSE]
    schema = schema or Schema(features=tuple(feats), labels=(Label("click"),), name="avazu",
                              time_column="hour")

    return _delimited("avazu", path, schema, _Layout(
        required=("click", "hour") + AVAZU_SPARSE, labels=("click",), text=AVAZU_SPARSE, time="hour",
        derive=_avazu_hour), block_size)


def _avazu_hour(cols: dict) -> dict:
    """``hour`` (``YYMMDDHH``) → ``hour_of_day`` and ``weekday`` (0 = Monday) as text ids."""
    hour = to_float(cols["hour"]).astype(np.int64)
    yymmdd, hh = hour // 100, hour % 100
    yy, mm, dd = yymmdd // 10000, (yymmdd // 100) % 100, yymmdd % 100
    day = ((yy + 30).astype("datetime64[Y]").astype("datetime64[M]") + (mm - 1)).astype(
        "datetime64[D]") + (dd - 1)
    weekday = (day.astype(np.int64) + 3) % 7
    return {"hour_of_day": pa.array(hh.astype(str)), "weekday": pa.array(weekday.astype(str))}


# --- MovieLens ------------------------------------------------------------------------------------
def movielens(path, schema: Schema | None = None, block_size: int = _BLOCK) -> Source:
    """MovieLens-1M joined CSV (DeepCTR layout: ``user_id,movie_id,rating,timestamp,title,genres,
    gender,age,occupation,zip``). Label ``label`` = ``rating >= 4``; ``genres`` (``|``-separated)
    is a sequence feature of up to 6 items; ``title`` is dropped; ``_time`` = ``timestamp``.

    Args:
        path: a joined MovieLens-1M CSV (as DeepCTR's ``movielens_sample.txt``).
        schema: replaces the default schema (categorical ``user_id``, ``movie_id``, ``gender``,
            ``age``, ``occupation`` and ``zip``, the ``genres`` sequence, label ``label``, time
            column ``timestamp``). Default ``None``.
        block_size: bytes read at a time, each block parsed into one chunk. Default 16 MiB.

    Example:
        >>> from pathlib import Path
        >>> _ = Path("ml.csv").write_text(
        ...     "user_id,movie_id,rating,timestamp,title,genres,gender,age,occupation,zip\\n"
        ...     "3299,235,4,968035345,Ed Wood (1994),Comedy|Drama,F,25,4,19119\\n"
        ...     "3630,3256,3,966536874,Patriot Games (1992),Action|Thriller,M,18,4,77005\\n")
        >>> raw = movielens("ml.csv").read_all()
        >>> [float(v) for v in raw["label"]], raw["genres"].to_pylist()[0]
        ([1.0, 0.0], ['Comedy', 'Drama'])
    """
    path = Path(path)
    cats = ("user_id", "movie_id", "gender", "age", "occupation", "zip")
    schema = schema or Schema(
        features=tuple(CategoricalFeature(c) for c in cats)
        + (SequenceFeature("genres", max_len=6, separator="|"),),
        labels=(Label("label"),), name="movielens", time_column="timestamp")

    return _delimited("movielens", path, schema, _Layout(
        required=cats + ("rating", "timestamp", "genres"), labels=("rating",), text=cats,
        lists=(("genres", "|"),), time="timestamp",
        derive=lambda cols: {"label": _label_ge(cols["rating"], 4)}), block_size)


def _atomic_table(path: Path, key: str) -> dict:
    chunks = list(read_delimited(path, delimiter="\t", required_columns=(key,), errors=RowErrors()))
    cols = concat_chunks(chunks)
    return {k.split(":")[0]: v for k, v in cols.items()}


def movielens_atomic(folder, name: str = "ml-100k", schema: Schema | None = None,
                     block_size: int = _BLOCK) -> Source:
    """MovieLens in RecBole's atomic files (``<name>.inter``, ``.user``, ``.item``; TSV with typed
    headers such as ``user_id:token``). Interactions are streamed and joined with the (small) user
    and item tables. Label ``label`` = ``rating >= 4``; the item's ``class`` (space-separated
    genres) is a sequence feature; ``movie_title`` is dropped; ``_time`` = ``timestamp``.

    Args:
        folder: the folder holding the three files.
        name: their common stem.
        schema: a schema to use instead of the default one.
        block_size: bytes read per block of the interaction file.

    Example:
        >>> from pathlib import Path
        >>> d = Path("ml-100k"); d.mkdir()
        >>> _ = (d / "ml-100k.inter").write_text(
        ...     "user_id:token\\titem_id:token\\trating:float\\ttimestamp:float\\n"
        ...     "196\\t242\\t5\\t881250949\\n")
        >>> _ = (d / "ml-100k.user").write_text(
        ...     "user_id:token\\tage:token\\tgender:token\\toccupation:token\\tzip_code:token\\n"
        ...     "196\\t49\\tM\\twriter\\t55105\\n")
        >>> _ = (d / "ml-100k.item").write_text(
        ...     "item_id:token\\tmovie_title:token_seq\\trelease_year:token\\tclass:token_seq\\n"
        ...     "242\\tKolya\\t1996\\tComedy\\n")
        >>> raw = movielens_atomic("ml-100k").read_all()
        >>> [float(v) for v in raw["label"]], raw["occupation"].to_pylist()
        ([1.0], ['writer'])
    """
    folder = Path(folder)
    inter = folder / f"{name}.inter"
    user_cats = ("age", "gender", "occupation", "zip_code")
    schema = schema or Schema(
        features=tuple(CategoricalFeature(c) for c in ("user_id", "item_id") + user_cats + ("release_year",))
        + (SequenceFeature("class", max_len=6, separator=" "),),
        labels=(Label("label"),), name=name, time_column="timestamp")

    def gen(errors):
        users = _atomic_table(folder / f"{name}.user", "user_id:token")
        items = _atomic_table(folder / f"{name}.item", "item_id:token")
        items["class"] = _split_list(items["class"], " ")
        for cols in read_delimited(inter, delimiter="\t",
                                   required_columns=("user_id:token", "item_id:token", "rating:float",
                                                     "timestamp:float"),
                                   numeric=("timestamp:float",), labels=("rating:float",),
                                   block_size=block_size, errors=errors):
            uid, iid = cols["user_id:token"], cols["item_id:token"]
            raw = {"user_id": uid, "item_id": iid, "label": _label_ge(cols["rating:float"], 4),
                   "_time": to_float(cols["timestamp:float"])}
            ui = pc.index_in(uid, value_set=users["user_id"])
            ii = pc.index_in(iid, value_set=items["item_id"])
            for c in user_cats:
                raw[c] = pc.fill_null(users[c].take(ui), "")
            raw["release_year"] = pc.fill_null(items["release_year"].take(ii), "")
            cls = items["class"].take(ii)
            raw["class"] = pc.if_else(pc.is_null(cls), pa.scalar([], pa.list_(pa.string())), cls) \
                if cls.null_count else cls
            yield raw

    return Source(name, schema, gen, [inter])


# --- Frappe ---------------------------------------------------------------------------------------
FRAPPE_FIELDS = ("user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather",
                 "country", "city")


def frappe(path, schema: Schema | None = None, block_size: int = _BLOCK) -> Source:
    """Frappe_x1 / BARS CSV: header ``label,user,item,...``, every field a categorical id.

    Args:
        path: a Frappe CSV with a header (BARS' ``Frappe_x1`` split files).
        schema: replaces the default schema (the ten :data:`FRAPPE_FIELDS` as categorical ids,
            label ``label``). Default ``None``.
        block_size: bytes read at a time, each block parsed into one chunk. Default 16 MiB.

    Example:
        >>> from pathlib import Path
        >>> header, row = ("label",) + FRAPPE_FIELDS, ["1", "266", "1244"] + ["5042"] * 8
        >>> _ = Path("frappe.csv").write_text(",".join(header) + "\\n" + ",".join(row) + "\\n")
        >>> src = frappe("frappe.csv")
        >>> len(src.schema.features), [float(v) for v in src.read_all()["label"]]
        (10, [1.0])
    """
    schema = schema or Schema(features=tuple(CategoricalFeature(c) for c in FRAPPE_FIELDS),
                              labels=(Label("label"),), name="frappe")
    return read_csv(path, schema, block_size=block_size)


# --- behaviour sequences --------------------------------------------------------------------------
def _din_schema(max_len: int, name: str, with_user: bool = False) -> Schema:
    feats = (SequenceFeature("hist_item", table="item", max_len=max_len),
             SequenceFeature("hist_cate", table="cate", max_len=max_len),
             CategoricalFeature("item", table="item"), CategoricalFeature("cate", table="cate"))
    if with_user:
        feats = (CategoricalFeature("user"),) + feats
    return Schema(features=feats, labels=(Label("label"),), name=name)


def din(path, max_len: int = 50, schema: Schema | None = None, block_size: int = _BLOCK) -> Source:
    """The DIN text format ``hist_items;hist_cates;target_item;target_cate;label`` (lists
    space-separated, oldest first). ``hist_item``/``item`` share table ``item``, ``hist_cate``/
    ``cate`` share table ``cate``; histories keep their last ``max_len`` items.

    Args:
        path: the file.
        max_len: history length kept (the most recent items).
        schema: a schema to use instead of the default one.
        block_size: bytes read per block.

    Example:
        >>> from pathlib import Path
        >>> _ = Path("din.txt").write_text("3737 19450;288 196;18486;674;1\\n")
        >>> src = din("din.txt", max_len=2)
        >>> [f.name for f in src.schema.features], src.schema["hist_item"].table_name
        (['hist_item', 'hist_cate', 'item', 'cate'], 'item')
    """
    path = Path(path)
    names = ("hist_item", "hist_cate", "item", "cate", "label")
    schema = schema or _din_schema(max_len, "din")

    return _delimited("din", path, schema, _Layout(
        delimiter=";", header=False, names=names, labels=("label",), text=("item", "cate"),
        lists=(("hist_item", " "), ("hist_cate", " "))), block_size)


def amazon_logs(path, max_len: int = 50, negatives: int = 1, seed: int = 0, min_history: int = 1,
                schema: Schema | None = None) -> Source:
    """Raw behaviour logs ``user_id,item_id,time,cate_id`` → DIN-style samples.

    Per user, events are ordered by time (ties by file order); every event with at least
    ``min_history`` earlier events gives a positive sample (target = that event, history = the
    earlier ones, last ``max_len`` kept) and ``negatives`` negative samples whose target item is
    drawn uniformly from the log's events (so popular items are drawn more often), re-drawn when it
    equals the positive item; the draw uses ``seed`` only, so the samples are reproducible.
    ``_time`` = the target event's time. The whole log is held in memory (grouping by user).

    Args:
        path: the log (CSV with a header).
        max_len: history length kept (the most recent events).
        negatives: negative samples per positive one.
        seed: seed of the negative draws.
        min_history: events a user must have before one becomes a sample.
        schema: a schema to use instead of the default one.

    Example:
        >>> from pathlib import Path
        >>> _ = Path("log.csv").write_text(
        ...     "user_id,item_id,time,cate_id\\n0,11,100,5\\n0,12,200,6\\n0,13,300,5\\n")
        >>> raw = amazon_logs("log.csv", max_len=5, negatives=1, seed=0).read_all()
        >>> [float(v) for v in raw["label"]], raw["hist_item"].to_pylist()
        ([1.0, 0.0, 1.0, 0.0], [['11'], ['11'], ['11', '12'], ['11', '12']])
    """
    path = Path(path)
    # the target event's time is the rows' time column (``--split-by time``, progressive days, expiry)
    schema = schema or replace(_din_schema(max_len, "amazon", with_user=True), time_column="time")

    def gen(errors):
        cols = concat_chunks(list(read_delimited(path, required_columns=("user_id", "item_id", "time",
                                                                         "cate_id"),
                                                 numeric=("time",), labels=(), errors=errors)))
        user = np.asarray(cols["user_id"].to_numpy(zero_copy_only=False))
        item = np.asarray(cols["item_id"].to_numpy(zero_copy_only=False))
        cate = np.asarray(cols["cate_id"].to_numpy(zero_copy_only=False))
        t = to_float(cols["time"])
        order = np.lexsort((np.arange(t.size), t, user))
        user, item, cate, t = user[order], item[order], cate[order], t[order]
        n = user.size
        new = np.ones(n, bool)
        new[1:] = user[1:] != user[:-1]
        group_start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
        pos_in_group = np.arange(n) - group_start
        rows = np.flatnonzero(pos_in_group >= min_history)
        hist_len = np.minimum(pos_in_group[rows], max_len)
        offsets = np.concatenate([[0], np.cumsum(hist_len)]).astype(np.int32)
        # history of row r: positions r - hist_len .. r - 1 (oldest first)
        flat_pos = np.repeat(rows - hist_len, hist_len) + (np.arange(offsets[-1]) - np.repeat(offsets[:-1],
                                                                                             hist_len))
        hist_item = pa.ListArray.from_arrays(pa.array(offsets), pa.array(item[flat_pos]))
        hist_cate = pa.ListArray.from_arrays(pa.array(offsets), pa.array(cate[flat_pos]))
        rng = np.random.default_rng(seed)
        reps = 1 + negatives
        neg = rng.integers(0, n, size=(rows.size, negatives))
        for _ in range(10):
            clash = item[neg] == item[rows][:, None]
            if not clash.any():
                break
            neg[clash] = rng.integers(0, n, size=int(clash.sum()))
        tgt = np.concatenate([rows[:, None], neg], axis=1).reshape(-1)
        label = np.tile(np.r_[1.0, np.zeros(negatives)], rows.size).astype(np.float32)
        src = np.repeat(np.arange(rows.size), reps)
        yield {"user": pa.array(user[rows][src].astype(str)), "hist_item": hist_item.take(pa.array(src)),
               "hist_cate": hist_cate.take(pa.array(src)), "item": pa.array(item[tgt].astype(str)),
               "cate": pa.array(cate[tgt].astype(str)), "label": label,
               "_time": np.repeat(t[rows], reps)}

    return Source("amazon", schema, gen, [path])


ALIMAMA_SEQ = ("btag_his", "cate_his", "brand_his")
ALIMAMA_USER = ("user", "cms_segid", "cms_group_id", "final_gender_code", "age_level", "pvalue_level",
                "shopping_level", "occupation", "new_user_class_level")
ALIMAMA_ITEM = ("adgroup_id", "cate_id", "campaign_id", "customer", "brand")


def alimama_dmr(path, schema: Schema | None = None, block_size: int = _BLOCK) -> Source:
    """The Alimama display-ads format used by DMR: 267 comma-separated numbers per row —
    ``btag``, ``cate`` and ``brand`` histories (50 each, right-aligned, most recent last), the
    history mask (50) and the auxiliary-match mask (50), then the user features
    (user, cms_segid, cms_group_id, final_gender_code, age_level, pvalue_level, shopping_level,
    occupation, new_user_class_level), the ad features (adgroup_id, cate_id, campaign_id, customer,
    brand), ``price`` (dense), ``pid`` and the label.

    Histories keep only masked-in positions and are re-padded on the left (``pad="pre"``) so the
    most recent item stays last; ``cate_his``/``cate_id`` share table ``cate``, ``brand_his``/
    ``brand`` share ``brand``. The auxiliary-match mask is not exposed: in the sample it equals the
    history mask at 99.99% of positions, and models can rebuild it from ``*_mask``.

    Args:
        path: a file of 267-number rows (DMR's ``alimama_sampled.txt`` layout).
        schema: replaces the default schema (the three histories as ``pad="pre"`` sequences of
            up to 50 items, the user and ad ids, dense ``price``, ``pid``; label ``label``).
            Default ``None``.
        block_size: bytes read at a time, each block parsed into one chunk. Default 16 MiB.

    Example:
        >>> from pathlib import Path
        >>> histories = ["3"] * 50 + ["4"] * 50 + ["5"] * 50 + ["1"] * 100   # 3 histories + 2 masks
        >>> row = histories + ["7"] * 9 + ["8"] * 5 + ["9.5", "2", "1"]       # user, ad, price, pid, label
        >>> _ = Path("alimama.txt").write_text(",".join(row) + "\\n")
        >>> src = alimama_dmr("alimama.txt")
        >>> len(row), src.schema.label_names, [float(v) for v in src.read_all()["price"]]
        (267, ('label',), [9.5])
    """
    path = Path(path)
    T = 50
    names = tuple(f"{s}{i}" for s in ALIMAMA_SEQ + ("mask", "match_mask") for i in range(T)) \
        + ALIMAMA_USER + ALIMAMA_ITEM + ("price", "pid", "label")
    tables = {"btag_his": "btag", "cate_his": "cate", "brand_his": "brand"}
    schema = schema or Schema(
        features=tuple(SequenceFeature(s, table=tables[s], max_len=T, pad="pre") for s in ALIMAMA_SEQ)
        + tuple(CategoricalFeature(c) for c in ALIMAMA_USER)
        + tuple(CategoricalFeature(c, table={"cate_id": "cate", "brand": "brand"}.get(c))
                for c in ALIMAMA_ITEM)
        + (DenseFeature("price"), CategoricalFeature("pid")),
        labels=(Label("label"),), name="alimama")

    return _delimited("alimama", path, schema, _Layout(
        header=False, names=names, numbers=("price",), checked=names[:-1], labels=("label",),
        text=ALIMAMA_USER + ALIMAMA_ITEM + ("pid",), derive=_alimama_histories), block_size)


def _alimama_histories(cols: dict, T: int = 50) -> dict:
    """The three histories, keeping the masked-in positions (most recent last)."""
    mask = np.stack([to_float(cols[f"mask{i}"]) for i in range(T)], 1) == 1
    offsets = pa.array(np.concatenate([[0], np.cumsum(mask.sum(1))]).astype(np.int32))
    raw = {}
    for s in ALIMAMA_SEQ:
        mat = np.stack([cols[f"{s}{i}"].to_numpy(zero_copy_only=False) for i in range(T)], 1)
        raw[s] = pa.ListArray.from_arrays(offsets, pa.array(mat[mask]))
    return raw


# --- two-task data --------------------------------------------------------------------------------
def ali_ccp(path, schema: Schema | None = None, block_size: int = _BLOCK) -> Source:
    """Ali-CCP sample CSV (click + purchase, ESMM-style): labels ``click`` and ``purchase``
    (purchase implies click); columns starting with ``D`` are dense, every other column is a
    categorical id. The schema is built from the file's header.

    Args:
        path: an Ali-CCP CSV with a header naming ``click``, ``purchase`` and the features.
        schema: replaces the schema built from that header (``D...`` columns dense, the others
            categorical; labels ``click`` and ``purchase``). Default ``None``.
        block_size: bytes read at a time, each block parsed into one chunk. Default 16 MiB.

    Example:
        >>> from pathlib import Path
        >>> _ = Path("ccp.csv").write_text("click,purchase,101,121,D508\\n1,0,7,3,0.25\\n0,0,8,3,0.0\\n")
        >>> src = ali_ccp("ccp.csv")
        >>> [(f.name, f.kind) for f in src.schema.features], src.schema.label_names
        ([('101', 'categorical'), ('121', 'categorical'), ('D508', 'dense')], ('click', 'purchase'))
    """
    path = Path(path)
    if schema is None:
        header = [c.strip() for c in _first_line(path).split(",")]
        if "click" not in header or "purchase" not in header:
            raise DataFormatError(f"{path}:1: not the declared format: an Ali-CCP header needs 'click' and "
                                  f"'purchase'; line starts {','.join(header)[:80]!r}")
        feats = tuple(DenseFeature(c) if c.startswith("D") else CategoricalFeature(c)
                      for c in header if c not in ("click", "purchase"))
        schema = Schema(features=feats, labels=(Label("click"), Label("purchase")), name="ali_ccp")
    return read_csv(path, schema, block_size=block_size)


CENSUS_COLUMNS = (
    "age", "class_worker", "det_ind_code", "det_occ_code", "education", "wage_per_hour", "hs_college",
    "marital_stat", "major_ind_code", "major_occ_code", "race", "hisp_origin", "sex", "union_member",
    "unemp_reason", "full_or_part_emp", "capital_gains", "capital_losses", "stock_dividends",
    "tax_filer_stat", "region_prev_res", "state_prev_res", "det_hh_fam_stat", "det_hh_summ",
    "instance_weight", "mig_chg_msa", "mig_chg_reg", "mig_move_reg", "mig_same", "mig_prev_sunbelt",
    "num_emp", "fam_under_18", "country_father", "country_mother", "country_self", "citizenship",
    "own_or_self", "vet_question", "vet_benefits", "weeks_worked", "year", "income_50k")
CENSUS_DENSE = ("age", "wage_per_hour", "capital_gains", "capital_losses", "stock_dividends", "num_emp",
                "weeks_worked")


def census_income(path, schema: Schema | None = None, block_size: int = _BLOCK) -> Source:
    """Census-income (KDD) as in DeepCTR's MMoE example: comma-separated, no header, a leading row
    index then the 42 standard columns. Two labels: ``income`` (``income_50k`` is ``50000+.``) and
    ``marital`` (``marital_stat`` is ``Never married``); ``marital_stat`` is then not a feature.
    The continuous columns are dense (``log1p``), the others categorical; ``instance_weight`` (a
    sampling weight) is dropped.

    Args:
        path: a census-income file (``census-income.data``, ``.test`` or a sample).
        schema: replaces the default schema (the seven :data:`CENSUS_DENSE` columns ``log1p``-ed,
            32 categorical ones, labels ``income`` and ``marital``). Default ``None``.
        block_size: bytes read at a time, each block parsed into one chunk. Default 16 MiB.

    Example:
        >>> src = census_income("census-income.sample")   # the file is only read by chunks()
        >>> src.schema.label_names, len(src.schema.features)
        (('income', 'marital'), 39)
    """
    path = Path(path)
    names = ("_index",) + CENSUS_COLUMNS
    cats = tuple(c for c in CENSUS_COLUMNS
                 if c not in CENSUS_DENSE + ("marital_stat", "income_50k", "instance_weight"))
    schema = schema or Schema(
        features=tuple(DenseFeature(c, log=True) for c in CENSUS_DENSE)
        + tuple(CategoricalFeature(c) for c in cats),
        labels=(Label("income"), Label("marital")), name="census_income")

    return _delimited("census_income", path, schema, _Layout(
        header=False, names=names, numbers=CENSUS_DENSE, text_labels=("income_50k", "marital_stat"),
        text=cats, strip=True, derive=_census_labels), block_size)


def _census_labels(cols: dict) -> dict:
    """The two labels: income above 50k, never married."""
    def is_(col, value):
        return np.asarray(pc.equal(cols[col], value).to_numpy(zero_copy_only=False), np.float32)

    return {"income": is_("income_50k", "50000+."), "marital": is_("marital_stat", "Never married")}
