"""Preprocessing fitted on the training split and applied unchanged to eval/predict data.

:class:`Preprocessor` takes *raw chunks* — ``{column: values}`` as the readers yield them: dense
columns as float arrays with ``NaN`` for missing, categorical columns as text (pyarrow string
arrays or anything ``pyarrow.array`` accepts), sequence columns as pyarrow list-of-string arrays,
labels as floats — and turns them into model batches ``({feature: np.ndarray}, {label: np.ndarray})``:

* dense: fill missing (``mean``/``median``/``zero``/``constant``), optional ``sign(x)·log1p(|x|)``,
  then optional standardisation or quantile bucketisation (ids ``1..num_bins``);
* categorical: vocabulary (values seen ``>= min_freq`` times, most frequent first, ids from 2;
  anything else → OOV id 1) or stable hashing (CRC32 of the UTF-8 text into ``1..num_buckets-1``);
  features that share a ``table`` share one vocabulary;
* sequences: each item encoded like a categorical value, empty items dropped, padded/truncated to
  ``max_len`` (``0`` = padding) with a boolean mask.

Fitting streams over chunks (memory: the vocabulary counts plus a fixed-size uniform sample per
dense column for medians/quantiles). The fitted statistics are plain JSON (:meth:`save`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reclayers.data.schema import FIRST_ID, OOV_ID, PAD_ID, Schema

__all__ = ["Preprocessor", "growth_step", "pad_sequences", "hash_bucket"]

_SAMPLE = 100_000
_MERGE_SLACK = 50_000  # per-chunk value counts held before merging (memory ~ 2 x distinct + this)
#: smallest growth step of a growing vocabulary table, in rows (see :func:`growth_step`)
GROWTH_FLOOR = 64
#: a growing table's step is about this fraction of its size (rounded up to a power of two)
GROWTH_FRACTION = 8
_OPTIONAL_ARRAYS = ("last", "pending_last")  # per-value clocks of a vocabulary with expiry


def growth_step(used: int, block: int | None = None, admitted: int = 0) -> int:
    """Rows a growing vocabulary table grows by: ``block`` when given, else adaptive — the
    smallest power of two that is ``>= 64``, ``>= used / 8`` and, on an update, ``>= 4 ×
    admitted`` (room for about four more updates at this one's rate). A small table is not
    padded to a large fixed block (1,040 ids in use: 1,280 rows rather than 2,048 with 1024-row
    blocks), and a table that grows every day changes shape only every few days: a model whose
    shapes did not change reuses its compiled step (e.g. JAX's persistent compilation cache).

    Args:
        used: ids in use (the table must hold ``0 .. used - 1``).
        block: a fixed step (``Preprocessor(block=...)``), or ``None``.
        admitted: ids this update admitted (0 on a first fit).

    Example:
        >>> growth_step(1040), growth_step(100), growth_step(100, block=1024), growth_step(1040, admitted=125)
        (256, 64, 1024, 512)
    """
    if block:
        return int(block)
    want = max(GROWTH_FLOOR, max(used, 1) / GROWTH_FRACTION, 4 * admitted)
    return 1 << int(np.ceil(np.log2(want)))


def _as_text(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(np.asarray(values).astype(str) if not isinstance(values, list) else values)
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        values = pc.cast(values, pa.string())
    return pc.fill_null(values, "")


def _as_list(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(values, type=pa.list_(pa.string()))
    if not pa.types.is_string(values.type.value_type):
        values = pc.cast(values, pa.list_(pa.string()))
    return values


def _bytes_of(text: pa.Array) -> tuple:
    """``(offsets int64 [n + 1], data uint8)`` of a (large_)string array."""
    if pa.types.is_large_string(text.type):
        text = pc.cast(text, pa.string())
    _, off_buf, data_buf = text.buffers()
    offsets = np.frombuffer(off_buf, np.int32)[text.offset:text.offset + len(text) + 1].astype(np.int64)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return offsets, data


def _by_byte(text: pa.Array, state: np.ndarray, step) -> np.ndarray:
    """Fold ``step(state, byte)`` over the bytes of every string, one byte position at a time
    (vectorised over the strings; the loop runs over positions, up to the longest string)."""
    offsets, data = _bytes_of(text)
    starts, lengths = offsets[:-1], np.diff(offsets)
    longest = int(lengths.max()) if lengths.size else 0
    live = np.arange(lengths.size)
    for j in range(longest):
        if lengths[live].min() <= j:
            live = live[lengths[live] > j]
        state[live] = step(state[live], data[starts[live] + j])
    return state


def _crc_table() -> np.ndarray:
    table = np.zeros(256, np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table[i] = c
    return table


_CRC_TABLE = _crc_table()


def _crc32(text: pa.Array) -> np.ndarray:
    """``zlib.crc32`` of each string's UTF-8 bytes, vectorised."""
    def step(crc, byte):
        return _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> np.uint32(8))

    crc = _by_byte(text, np.full(len(text), 0xFFFFFFFF, np.uint32), step)
    return crc ^ np.uint32(0xFFFFFFFF)


def _fnv64(text: pa.Array) -> np.ndarray:
    """64-bit FNV-1a of each string's bytes, vectorised."""
    def step(h, byte):
        return (h ^ byte.astype(np.uint64)) * np.uint64(0x100000001B3)

    with np.errstate(over="ignore"):
        return _by_byte(text, np.full(len(text), 0xCBF29CE484222325, np.uint64), step)


class _VocabLookup:
    """Text → vocabulary id (``ids[position]``, default ``FIRST_ID + position``), vectorised.

    A vocabulary of up to ``small`` values is looked up by Arrow's ``index_in`` (a hash table of
    the vocabulary built per chunk: the fastest for small tables, measured 2-4 ms per 64k-row chunk
    at 10k-30k values against 7 ms below). A larger one would cost that build on every chunk, so
    each chunk's distinct values are hashed (64-bit FNV-1a), found by binary search among the
    vocabulary's sorted hashes and confirmed by comparing the text (so a hash collision never maps
    a value to another's id): built once per table, the cost per chunk grows with its distinct
    values, not with the vocabulary. Values not in the vocabulary get ``OOV_ID``, or with
    ``oov_buckets = K > 0`` (a growing vocabulary) one of the ``K`` fallback ids
    ``oov_base + crc32(value) % K``."""

    def __init__(self, vocab: list, ids: np.ndarray | None = None, oov_base: int = OOV_ID,
                 oov_buckets: int = 0, small: int = 1 << 15):
        self.vocab = pa.array(vocab, pa.string())
        self.plain = ids is None and not oov_buckets
        self.ids = np.arange(FIRST_ID, FIRST_ID + len(vocab), dtype=np.int32) if ids is None \
            else np.asarray(ids, np.int32)
        self.oov_base, self.oov_buckets = oov_base, oov_buckets
        self.small = small
        self._dict = None
        if len(self.vocab) > small:
            h = _fnv64(self.vocab)
            self.order = np.argsort(h, kind="stable")
            self.hashes = h[self.order]

    def __call__(self, values: pa.Array) -> np.ndarray:
        if len(self.vocab) <= self.small and self.plain:
            pos = pc.index_in(values, value_set=self.vocab)
            ids = pc.fill_null(pc.add(pos, pa.scalar(FIRST_ID, pos.type)), pa.scalar(OOV_ID, pos.type))
            return ids.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
        arr = values.dictionary_encode()
        uniq = arr.dictionary
        pos = np.full(len(uniq), -1, np.int64)
        if len(self.vocab) <= self.small:
            found_at = pc.fill_null(pc.index_in(uniq, value_set=self.vocab), -1)
            pos = np.asarray(found_at.to_numpy(zero_copy_only=False), np.int64)
        elif len(uniq) and len(self.vocab):
            h = _fnv64(uniq)
            at = np.minimum(np.searchsorted(self.hashes, h), len(self.hashes) - 1)
            cand = self.order[at]
            hit = np.flatnonzero(self.hashes[at] == h)
            same = np.asarray(pc.equal(self.vocab.take(pa.array(cand[hit])),
                                       uniq.take(pa.array(hit))).to_numpy(zero_copy_only=False), bool)
            pos[hit[same]] = cand[hit[same]]
            clash = hit[~same]
            if clash.size:  # two texts with one hash: look those few up exactly
                if self._dict is None:
                    self._dict = {v: i for i, v in enumerate(self.vocab.to_pylist())}
                pos[clash] = [self._dict.get(u, -1) for u in uniq.take(pa.array(clash)).to_pylist()]
        ids = np.full(len(uniq), OOV_ID, np.int32)
        found = pos >= 0
        ids[found] = self.ids[pos[found]]
        miss = np.flatnonzero(~found)
        if self.oov_buckets and miss.size:  # (missing values, "", stay OOV_ID)
            miss = miss[np.asarray(pc.not_equal(uniq.take(pa.array(miss)), "").to_numpy(
                zero_copy_only=False), bool)]
        if self.oov_buckets and miss.size:
            codes = _crc32(uniq.take(pa.array(miss))).astype(np.int64) % self.oov_buckets
            ids[miss] = self.oov_base + codes
        return ids[arr.indices.to_numpy(zero_copy_only=False)]


def hash_bucket(values, num_buckets: int) -> np.ndarray:
    """Stable (process-independent) hash of text values into ``1 .. num_buckets - 1``.

    The hash is CRC32 of the UTF-8 text (computed vectorised over each chunk's distinct values),
    so ids are the same in every process and on every machine (Python's ``hash`` is salted per
    process).

    Args:
        values: text values (a list, a NumPy or pyarrow array; numbers are hashed as text).
        num_buckets: table size, ``>= 2`` (id 0 is padding and never produced).

    Example:
        >>> ids = hash_bucket(["apple", "pear", "apple"], num_buckets=100)
        >>> bool(ids[0] == ids[2]), bool(((ids >= 1) & (ids <= 99)).all())
        (True, True)
    """
    arr = _as_text(values).dictionary_encode()
    codes = _crc32(arr.dictionary).astype(np.int64)
    ids = 1 + codes % (num_buckets - 1)
    return ids[arr.indices.to_numpy(zero_copy_only=False)].astype(np.int32)


def pad_sequences(flat_ids: np.ndarray, offsets: np.ndarray, max_len: int, truncate: str = "pre",
                  pad: str = "post") -> tuple:
    """Ragged ids (``flat_ids`` split at ``offsets``) → ``(ids [n, max_len], mask [n, max_len])``.

    ``truncate="pre"`` keeps the last ``max_len`` items; ``pad="post"`` left-aligns the items.

    Args:
        flat_ids: all rows' ids, concatenated.
        offsets: ``n + 1`` row boundaries into ``flat_ids`` (row ``i`` is
            ``flat_ids[offsets[i]:offsets[i + 1]]``).
        max_len: output length.
        truncate: ``"pre"`` (keep the last items) or ``"post"`` (keep the first).
        pad: ``"post"`` (items first, then zeros) or ``"pre"`` (zeros first).

    Example:
        >>> import numpy as np
        >>> ids, mask = pad_sequences(np.array([5, 6, 7, 8]), np.array([0, 3, 4]), max_len=2)
        >>> ids.tolist(), mask.tolist()
        ([[6, 7], [8, 0]], [[True, True], [True, False]])
    """
    offsets = np.asarray(offsets, np.int64)
    lengths = np.diff(offsets)
    n_keep = np.minimum(lengths, max_len)
    start = offsets[:-1] + (np.maximum(lengths - max_len, 0) if truncate == "pre" else 0)
    j = np.arange(max_len)[None, :]
    if pad == "post":
        mask = j < n_keep[:, None]
        idx = start[:, None] + j
    else:
        shift = (max_len - n_keep)[:, None]
        mask = j >= shift
        idx = start[:, None] + j - shift
    if flat_ids.size == 0:
        return np.zeros(mask.shape, np.int32), mask
    idx = np.clip(idx, 0, flat_ids.size - 1)
    ids = np.where(mask, flat_ids[idx], PAD_ID).astype(np.int32)
    return ids, mask


def _merge_counts(tables: list, last: bool = False) -> pa.Table:
    """Sum the counts of equal values over several ``{v, c}`` tables (``last``: ``{v, c, t}``
    tables, keeping the latest ``t`` of each value)."""
    if not tables:
        return pa.table({"v": pa.array([], pa.string()), "c": pa.array([], pa.int64())})
    t = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    out = t.group_by("v").aggregate([("c", "sum")] + ([("t", "max")] if last else []))
    return pa.table({"v": out["v"], "c": out["c_sum"], **({"t": out["t_max"]} if last else {})})


def _last_seen(values: pa.Array, days: np.ndarray) -> pa.Table:
    """``{v, t}``: the latest of ``days`` (one per value occurrence) of each distinct value."""
    out = pa.table({"v": values, "t": pa.array(days, pa.float64())}).group_by("v").aggregate([("t", "max")])
    return pa.table({"v": out["v"], "t": out["t_max"]})


def _merge_last(tables: list) -> pa.Table:
    """The latest time of each value over several :func:`_last_seen` tables."""
    if not tables:
        return pa.table({"v": pa.array([], pa.string()), "t": pa.array([], pa.float64())})
    out = pa.concat_tables(tables).group_by("v").aggregate([("t", "max")])
    return pa.table({"v": out["v"], "t": out["t_max"]})


def _check_expiry(expire_by, time_unit) -> None:
    if expire_by not in ("runs", "time"):
        raise ValueError(f"Preprocessor: expire_by must be 'runs' or 'time'; got {expire_by!r}")
    if not (isinstance(time_unit, int | float) and time_unit > 0):
        raise ValueError(f"Preprocessor: time_unit must be > 0 seconds; got {time_unit!r}")


def _transform_dense(x: np.ndarray, log: bool) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x)) if log else x


class Preprocessor:
    """Fits and applies the schema's preprocessing (see the module docstring).

    Args:
        schema: the data set's :class:`~reclayers.data.schema.Schema`.
        seed: seed of the uniform value samples used for medians and quantiles.
        min_count: with a value, vocabularies *grow* (see :meth:`update`): an id is admitted once
            seen this often in total over every fit and update (default: the features'
            ``min_freq``); counts of all values seen are kept.
        oov_buckets: growing vocabularies only: values not admitted share this many hashed
            fallback ids (``0``: the single ``OOV_ID``).
        block: growing vocabularies only: table sizes grow in whole blocks of this many rows
            (default: adaptive, about 1/8 of the table with a floor of 64 rows; see
            :func:`growth_step`), so that a table need not change shape every day.
        expire_after: growing vocabularies only: an id not seen in the last ``expire_after``
            fits/updates (``expire_by="runs"``) or days (``expire_by="time"``: by the rows'
            ``_time``) is dropped: its value and counts are forgotten and its id is free for a
            later admission (its row is then re-initialised by the warm start; see
            :meth:`recycled_ids`). Pending values unseen that long are dropped too.
        expire_by: ``"runs"`` or ``"time"`` (see ``expire_after``).
        time_unit: seconds per unit of the ``_time`` values (1: Unix seconds; 86400: a day
            number, as the synthetic days' ``day`` column).

    Methods: ``fit(chunks)`` (one streaming pass over the training chunks; returns ``self``),
    ``transform(chunk) -> (features, labels)``, ``output_schema()`` (the schema with fitted table
    sizes), ``num_buckets(name)``, ``save(path)`` / ``load(path)`` and ``to_dict()`` /
    ``from_dict(d)`` (JSON statistics).

    Example:
        >>> import numpy as np
        >>> from reclayers.data import CategoricalFeature, DenseFeature, Label, Schema
        >>> schema = Schema(features=(CategoricalFeature("city"), DenseFeature("age", fill="mean")),
        ...                 labels=(Label("click"),))
        >>> chunk = {"city": np.array(["paris", "rome", "paris"]),
        ...          "age": np.array([20.0, np.nan, 40.0]), "click": np.array([1.0, 0.0, 1.0])}
        >>> pre = Preprocessor(schema).fit([chunk])
        >>> x, y = pre.transform({"city": np.array(["paris", "oslo"]), "age": np.array([np.nan, 25.0]),
        ...                       "click": np.array([0.0, 1.0])})
        >>> x["city"].tolist(), x["age"].tolist(), pre.num_buckets("city")   # 1 = unseen, mean age 30
        ([2, 1], [30.0, 25.0], 4)
    """

    def __init__(self, schema: Schema, seed: int = 0, *, min_count: int | None = None,
                 oov_buckets: int = 0, block: int | None = None, expire_after: int | None = None,
                 expire_by: str = "runs", time_unit: float = 1.0):
        for name, value, low in (("min_count", min_count, 1), ("oov_buckets", oov_buckets, 0),
                                 ("block", block, 1), ("expire_after", expire_after, 1)):
            if value is not None and (not isinstance(value, int | np.integer) or value < low):
                raise ValueError(f"Preprocessor: {name} must be an int >= {low}; got {value!r}")
        _check_expiry(expire_by, time_unit)
        self.schema = schema
        self.seed = seed
        self.dense_stats: dict = {}
        self.vocabs: dict = {}
        self.fitted = False
        self._lookup: dict = {}
        growing = min_count is not None or oov_buckets or block is not None or expire_after is not None
        #: growth options (``None``: a plain, frozen vocabulary fitted once)
        self.growth: dict | None = {"min_count": min_count, "oov_buckets": int(oov_buckets),
                                    "block": block, "expire_after": expire_after,
                                    "expire_by": expire_by, "time_unit": float(time_unit)} \
            if growing else None
        #: fits so far after the first (0: the first fit; each :meth:`update` adds one), and the
        #: clock of the last fit (that number, or the last row's time in days)
        self.generation, self.now = 0, None
        #: per vocabulary table: ``ids`` (one per vocabulary value), ``counts`` (sightings of each),
        #: ``last`` (the clock when each was last seen), ``pending``/``pending_counts``/
        #: ``pending_last`` (values seen too rarely to be admitted yet), ``oov_base``,
        #: ``oov_buckets``, ``capacity`` (the table size), ``next_id`` (the first id never given),
        #: ``free`` (ids given back by expiry), ``reset`` (ids whose rows this fit recycled)
        self.tables_state: dict = {}
        #: per table: size, ids in use, ids admitted and values pending in the last fit/update
        self.report: dict = {}
        self._parent = False  # fit() continues the fitted statistics (see update)

    # --- fitting ----------------------------------------------------------------------------
    def fit(self, chunks) -> Preprocessor:
        """Fit on an iterable of raw chunks (the training split only)."""
        rng = np.random.default_rng(self.seed)
        acc = {f.name: {"n": 0, "missing": 0, "sum": 0.0, "sumsq": 0.0, "raw_sum": 0.0,
                        "keys": np.empty(0), "raw": np.empty(0), "vals": np.empty(0)}
               for f in self.schema.dense}
        counts: dict[str, list] = {t: [] for t in self.schema.tables()}
        pending = dict.fromkeys(counts, 0)
        base = dict.fromkeys(counts, 0)
        g = self.growth or {}
        by_time = bool(g.get("expire_after")) and g.get("expire_by") == "time"
        lasts: dict[str, list] = {t: [] for t in counts}  # by_time: each value's last time (days)
        now = None
        for chunk in chunks:
            days = None
            if by_time:
                if "_time" not in chunk:
                    raise ValueError("Preprocessor: expire_by='time' needs rows with a time column "
                                     "(_time); got a chunk without one")
                days = np.asarray(chunk["_time"], np.float64) * g["time_unit"] / 86400.0
                if days.size:
                    now = float(days.max()) if now is None else max(now, float(days.max()))
            for f in self.schema.dense:
                x = np.asarray(chunk[f.source], np.float64)
                ok = np.isfinite(x)
                a = acc[f.name]
                a["missing"] += int((~ok).sum())
                raw = x[ok]
                t = _transform_dense(raw, f.log)
                a["n"] += raw.size
                a["raw_sum"] += float(raw.sum())
                a["sum"] += float(t.sum())
                a["sumsq"] += float((t * t).sum())
                draws = rng.random(raw.size)  # drawn even when unused: the other samples stay the same
                if not (f.num_bins or f.fill == "median"):
                    continue  # no quantile needed: no value sample kept
                keys = np.concatenate([a["keys"], draws])
                rawv = np.concatenate([a["raw"], raw])
                vals = np.concatenate([a["vals"], t])
                if keys.size > _SAMPLE:
                    sel = np.argpartition(keys, _SAMPLE)[:_SAMPLE]
                    keys, rawv, vals = keys[sel], rawv[sel], vals[sel]
                a["keys"], a["raw"], a["vals"] = keys, rawv, vals
            for f in self.schema.categorical + self.schema.sequence:
                if f.encoding != "vocab":
                    continue
                if f.kind == "sequence":
                    vals = pc.list_flatten(_as_list(chunk[f.source]))
                else:
                    vals = _as_text(chunk[f.source])
                vc = pc.value_counts(vals)
                t = f.table_name
                counts[t].append(pa.table({"v": vc.field("values"), "c": vc.field("counts")}))
                if days is not None:
                    rows = pc.list_parent_indices(_as_list(chunk[f.source])) if f.kind == "sequence" \
                        else None
                    when = days if rows is None else days[rows.to_numpy(zero_copy_only=False)]
                    lasts[t].append(_last_seen(vals, when))
                pending[t] += len(vc)
                if pending[t] > 2 * base[t] + _MERGE_SLACK:  # merge now and then: memory ~ distinct values
                    counts[t] = [_merge_counts(counts[t])]
                    base[t] = pending[t] = len(counts[t][0])
        for f in self.schema.dense:
            if self._parent:  # dense statistics stay those of the first fit
                break
            a = acc[f.name]
            n = max(a["n"], 1)
            mean_raw = a["raw_sum"] / n
            if f.fill == "mean":
                fill = mean_raw
            elif f.fill == "median":
                fill = float(np.median(a["raw"])) if a["raw"].size else 0.0
            elif f.fill == "zero":
                fill = 0.0
            else:
                fill = float(f.fill_value)
            mean = a["sum"] / n
            std = float(np.sqrt(max(a["sumsq"] / n - mean * mean, 0.0)))
            stats = {"fill": fill, "mean": mean, "std": std if std > 0 else 1.0,
                     "count": a["n"], "missing": a["missing"]}
            if f.num_bins:
                b = np.quantile(a["vals"], np.linspace(0, 1, f.num_bins + 1)[1:-1]) if a["vals"].size \
                    else np.zeros(0)
                stats["boundaries"] = [float(v) for v in np.unique(b)]
            self.dense_stats[f.name] = stats
        for table, names in self.schema.tables().items():
            feats = [self.schema[n] for n in names]
            if feats[0].encoding != "vocab":
                continue
            merged = _merge_counts(counts[table])
            if self._parent or self.growth is not None:
                if by_time:
                    clock = now if now is not None else self.now
                    last = _merge_last(lasts[table])
                else:
                    clock, last = float(self.generation), None
                self._grow_vocab(table, merged, feats, clock, last)
                continue
            min_freq = max(f.min_freq for f in feats)
            cap = max((f.num_buckets for f in feats), default=0)
            keep = pc.and_(pc.greater_equal(merged["c"], min_freq), pc.not_equal(merged["v"], ""))
            merged = merged.filter(keep)
            order = pc.sort_indices(merged, sort_keys=[("c", "descending"), ("v", "ascending")])
            kept = merged["v"].take(order).to_pylist()
            if cap:
                kept = kept[: max(cap - FIRST_ID, 0)]
            self.vocabs[table] = kept
        if self.growth is not None:
            self.now = (now if now is not None else self.now) if by_time else float(self.generation)
        self.fitted = True
        self._parent = False
        self._lookup = {}
        return self

    def _grow_vocab(self, table: str, merged: pa.Table, feats: list, clock: float,
                    last: pa.Table | None) -> None:
        """Adds this fit's counts to the carried-over ones; with expiry, forgets the values (and
        frees the ids) not seen since ``clock - expire_after``; admits every value seen
        ``min_count`` times in total (most frequent first) into freed ids first (lowest first),
        then new ids after the ones in use; keeps the rest pending; sizes the table in whole
        blocks. ``last``: this fit's ``{v, t}`` last time of each value (expiry by time), else
        every value seen now gets ``clock``."""
        g = self.growth or {}
        min_count = g.get("min_count") or max(f.min_freq for f in feats)
        st = self.tables_state.get(table)
        vocab = self.vocabs.get(table, []) if st is not None or self._parent else []
        if st is None:  # first growing fit, or a parent fitted without growth: ids FIRST_ID + position
            st = {"ids": np.arange(FIRST_ID, FIRST_ID + len(vocab), dtype=np.int64),
                  "counts": np.zeros(len(vocab), np.int64), "pending": [],
                  "pending_counts": np.zeros(0, np.int64), "oov_base": OOV_ID, "oov_buckets": 0,
                  "capacity": FIRST_ID + len(vocab)}
        if "next_id" not in st:  # a state saved before expiry existed: ids were never freed
            st["next_id"] = int(max(st["ids"].max(initial=FIRST_ID - 1),
                                    st["oov_base"] + st["oov_buckets"] - 1)) + 1
        n_old = len(vocab) + len(st["pending"])
        old_last = np.concatenate([st.get("last", np.full(len(vocab), clock)),
                                   st.get("pending_last", np.full(len(st["pending"]), clock))])
        old = pa.table({"v": pa.array(list(vocab) + list(st["pending"]), pa.string()),
                        "c": pa.array(np.concatenate([st["counts"], st["pending_counts"]]), pa.int64()),
                        "t": pa.array(old_last[:n_old], pa.float64())})
        now = merged.append_column("t", pa.array(np.full(merged.num_rows, clock), pa.float64())) \
            if last is None else merged.join(last, "v")
        merged = _merge_counts([old, now.select(["v", "c", "t"])], last=True)
        merged = merged.filter(pc.not_equal(merged["v"], ""))
        free = [int(i) for i in st.get("free", [])]
        expired = np.zeros(0, np.int64)
        d = g.get("expire_after")
        if d:
            gone = pc.less_equal(merged["t"], clock - d)
            expired_values = merged.filter(pc.and_(gone, pc.is_in(merged["v"], value_set=pa.array(
                vocab, pa.string()))))["v"]
            if len(expired_values):
                keep = np.asarray(pc.invert(pc.is_in(pa.array(vocab, pa.string()),
                                                     value_set=expired_values)).to_numpy(zero_copy_only=False),
                                  bool)
                expired = st["ids"][~keep]
                vocab = [v for v, k in zip(vocab, keep) if k]
                st["ids"] = st["ids"][keep]
            merged = merged.filter(pc.invert(gone))
        vocab_arr = pa.array(vocab, pa.string())
        at = np.asarray(pc.index_in(vocab_arr, value_set=merged["v"]).to_numpy(zero_copy_only=False),
                        np.int64) if len(vocab) else np.zeros(0, np.int64)
        counts = np.asarray(merged["c"].to_numpy(), np.int64)
        times = np.asarray(merged["t"].to_numpy(), np.float64)
        st["counts"], st["last"] = counts[at], times[at]
        new = merged.filter(pc.invert(pc.is_in(merged["v"], value_set=vocab_arr)))
        admit = pc.greater_equal(new["c"], min_count)
        fresh = new.filter(admit)
        order = pc.sort_indices(fresh, sort_keys=[("c", "descending"), ("v", "ascending")])
        fresh = fresh.take(order)
        rest = new.filter(pc.invert(admit))
        next_id = int(st["next_id"])
        k = int(g.get("oov_buckets", 0))
        if k and not st["oov_buckets"]:  # the fallback buckets: one block of ids, placed once
            st["oov_base"], st["oov_buckets"] = next_id, k
            next_id += k
        elif k and k != st["oov_buckets"]:
            raise ValueError(f"Preprocessor: oov_buckets of table {table!r} is {st['oov_buckets']}; "
                             f"got {k} (the fallback buckets cannot be resized)")
        pool = sorted(free + expired.tolist())
        reused = pool[:len(fresh)]
        new_ids = np.concatenate([np.asarray(reused, np.int64),
                                  np.arange(next_id, next_id + len(fresh) - len(reused), dtype=np.int64)])
        next_id += len(fresh) - len(reused)
        self.vocabs[table] = list(vocab) + fresh["v"].to_pylist()
        st["ids"] = np.concatenate([st["ids"], new_ids])
        st["counts"] = np.concatenate([st["counts"], np.asarray(fresh["c"].to_numpy(), np.int64)])
        st["last"] = np.concatenate([st["last"], np.asarray(fresh["t"].to_numpy(), np.float64)])
        st["pending"] = rest["v"].to_pylist()
        st["pending_counts"] = np.asarray(rest["c"].to_numpy(), np.int64)
        st["pending_last"] = np.asarray(rest["t"].to_numpy(), np.float64)
        st["free"] = pool[len(fresh):]
        # rows to re-initialise at the next warm start: ids freed now, and older free ids given again
        st["reset"] = sorted(set(expired.tolist()) | set(reused))
        st["next_id"] = next_id
        if next_id > st["capacity"]:
            step = growth_step(next_id, g.get("block"), len(fresh) if self._parent else 0)
            st["capacity"] = -(-next_id // step) * step
        self.tables_state[table] = st
        self.report[table] = {"size": int(st["capacity"]), "used": int(next_id - len(st["free"])),
                              "ids": len(self.vocabs[table]), "admitted": len(fresh),
                              "expired": int(expired.size), "recycled": len(reused),
                              "pending": len(st["pending"]), "oov_buckets": int(st["oov_buckets"]),
                              "min_count": int(min_count)}

    def recycled_ids(self) -> dict:
        """``{table: ids}`` whose rows the last fit/update recycled (ids freed by expiry, and free
        ids given to newly admitted values): a warm start re-initialises those rows and resets
        their optimizer slots (:func:`reclayers.training.warm_start.transfer`, ``reset=``).

        Example:
            >>> import numpy as np
            >>> from reclayers.data import CategoricalFeature, Schema
            >>> pre = Preprocessor(Schema(features=(CategoricalFeature("item"),)), expire_after=1)
            >>> pre = pre.fit([{"item": np.array(["a", "b"])}]).update([{"item": np.array(["b", "c"])}])
            >>> pre.vocabs["item"], pre.vocab_ids("item").tolist(), pre.recycled_ids()["item"].tolist()
            (['b', 'c'], [3, 2], [2])
        """
        return {t: np.asarray(st.get("reset", []), np.int64) for t, st in self.tables_state.items()}

    def update(self, chunks, *, min_count: int | None = None, oov_buckets: int | None = None,
               block: int | None = None, expire_after: int | None = None) -> Preprocessor:
        """A copy of this fitted preprocessor grown with more raw rows (the next day's training
        split): the counts of every vocabulary table continue from this one's; values seen
        ``min_count`` times in total (over every fit and update so far) get new ids after those in
        use; values still below it share the ``oov_buckets`` hashed fallback ids (or ``OOV_ID``).
        Every id already given keeps its value, so existing rows keep their meaning; dense
        statistics and hashed features are not refitted. Table sizes grow in whole blocks
        (``block`` rows); :attr:`report` gives each table's size, ids in use and ids admitted.

        Args:
            chunks: raw chunks of the new rows.
            min_count: admission threshold (default: this preprocessor's, else the features'
                ``min_freq``).
            oov_buckets: fallback buckets (default: this preprocessor's); fixed once placed.
            block: table growth step in rows (default: this preprocessor's).
            expire_after: expiry (default: this preprocessor's; see the class).

        Example:
            >>> import numpy as np
            >>> from reclayers.data import CategoricalFeature, Label, Schema
            >>> schema = Schema(features=(CategoricalFeature("item"),), labels=(Label("click"),))
            >>> day1 = {"item": np.array(["a", "b", "a"]), "click": np.zeros(3)}
            >>> pre = Preprocessor(schema, min_count=2, block=8).fit([day1])
            >>> day2 = {"item": np.array(["b", "c"]), "click": np.zeros(2)}
            >>> grown = pre.update([day2])
            >>> pre.transform(day2)[0]["item"].tolist(), grown.transform(day2)[0]["item"].tolist()
            ([1, 1], [3, 1])
            >>> grown.report["item"]["admitted"], grown.num_buckets("item")
            (1, 8)
        """
        child = self.continued(min_count=min_count, oov_buckets=oov_buckets, block=block,
                               expire_after=expire_after)
        return child.fit(chunks)

    def continued(self, *, min_count: int | None = None, oov_buckets: int | None = None,
                  block: int | None = None, expire_after: int | None = None,
                  expire_by: str | None = None, time_unit: float | None = None) -> Preprocessor:
        """An unfitted copy whose :meth:`fit` continues this one's statistics (see :meth:`update`);
        for callers that run the fit themselves (e.g. :func:`reclayers.data.build_cache`).

        Args:
            min_count: as in :meth:`update`.
            oov_buckets: as in :meth:`update`.
            block: table growth step in rows (default: this preprocessor's, else adaptive).
            expire_after: expiry after this many fits or days (default: this preprocessor's).
            expire_by: ``"runs"`` or ``"time"`` (default: this preprocessor's, else runs).
            time_unit: seconds per ``_time`` unit (default: this preprocessor's, else 1).

        Example:
            >>> import numpy as np
            >>> from reclayers.data import CategoricalFeature, Schema
            >>> pre = Preprocessor(Schema(features=(CategoricalFeature("item"),))).fit(
            ...     [{"item": np.array(["a"])}])
            >>> child = pre.continued(block=4)
            >>> child.fitted, child.fit([{"item": np.array(["b"])}]).vocabs["item"]
            (False, ['a', 'b'])
        """
        self._check_fitted()
        child = Preprocessor.from_dict(json.loads(json.dumps(self.to_dict())))  # shares nothing
        g = {"min_count": None, "oov_buckets": 0, "block": None, "expire_after": None, "expire_by": "runs",
             "time_unit": 1.0, **(self.growth or {})}
        for key, value, low in (("min_count", min_count, 1), ("oov_buckets", oov_buckets, 0),
                                ("block", block, 1), ("expire_after", expire_after, 1)):
            if value is not None:
                if not isinstance(value, int | np.integer) or value < low:
                    raise ValueError(f"Preprocessor: {key} must be an int >= {low}; got {value!r}")
                g[key] = int(value)
        if expire_by is not None or time_unit is not None:
            _check_expiry(expire_by or g["expire_by"], time_unit or g["time_unit"])
            g["expire_by"], g["time_unit"] = expire_by or g["expire_by"], float(time_unit or g["time_unit"])
        child.growth = g
        child.generation, child.now = self.generation + 1, self.now
        child.fitted = False
        child._parent = True
        child.report = {}
        return child

    # --- results ----------------------------------------------------------------------------
    def num_buckets(self, name: str) -> int:
        """Embedding-table size of a categorical/sequence feature (or ``num_bins + 1`` of a bucketised
        dense feature)."""
        f = self.schema[name]
        if f.kind == "dense":
            return len(self.dense_stats[name].get("boundaries", [])) + 2
        if f.encoding == "vocab":
            st = self.tables_state.get(f.table_name)
            return int(st["capacity"]) if st is not None else FIRST_ID + len(self.vocabs[f.table_name])
        return f.num_buckets

    def vocab_ids(self, table: str) -> np.ndarray:
        """The id of each value of ``self.vocabs[table]`` (``FIRST_ID + position`` unless the
        vocabulary grew with fallback buckets placed before some of its ids)."""
        st = self.tables_state.get(table)
        if st is not None:
            return np.asarray(st["ids"], np.int64)
        return np.arange(FIRST_ID, FIRST_ID + len(self.vocabs[table]), dtype=np.int64)

    def output_schema(self) -> Schema:
        """The schema with every vocabulary feature's ``num_buckets`` set to its fitted size."""
        self._check_fitted()
        schema = self.schema
        for f in self.schema.categorical + self.schema.sequence:
            if f.encoding == "vocab":
                schema = schema.replace_feature(f.name, num_buckets=self.num_buckets(f.name))
        return schema

    # --- transform --------------------------------------------------------------------------
    def _check_fitted(self):
        if not self.fitted:
            raise ValueError("Preprocessor: fit() or load() must run before transform(); got an unfitted one")

    def _encode(self, f, values: pa.Array) -> np.ndarray:
        if f.encoding == "hash":
            return hash_bucket(values, f.num_buckets)
        table = f.table_name
        if table not in self._lookup:
            st = self.tables_state.get(table) or {}
            self._lookup[table] = _VocabLookup(self.vocabs[table], st.get("ids"),
                                               st.get("oov_base", OOV_ID), st.get("oov_buckets", 0))
        return self._lookup[table](values)

    def transform(self, chunk: dict) -> tuple:
        """Raw chunk → ``(features, labels)``, two dicts of numpy arrays (see the schema's
        :meth:`~reclayers.data.schema.Schema.batch_spec`)."""
        self._check_fitted()
        feats: dict = {}
        for f in self.schema.features:
            if f.kind == "dense":
                st = self.dense_stats[f.name]
                x = np.asarray(chunk[f.source], np.float64)
                x = np.where(np.isfinite(x), x, st["fill"])
                x = _transform_dense(x, f.log)
                if f.num_bins:
                    feats[f.name] = (np.searchsorted(np.asarray(st["boundaries"]), x, side="right")
                                     + 1).astype(np.int32)
                elif f.standardize:
                    feats[f.name] = ((x - st["mean"]) / st["std"]).astype(np.float32)
                else:
                    feats[f.name] = x.astype(np.float32)
            elif f.kind == "categorical":
                feats[f.name] = self._encode(f, _as_text(chunk[f.source]))
            else:
                lists = _as_list(chunk[f.source])
                flat = pc.list_flatten(lists)
                offsets = lists.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
                offsets = offsets - offsets[0]
                keep = np.asarray(pc.not_equal(flat, "").to_numpy(zero_copy_only=False), bool)
                ids = self._encode(f, flat)[keep] if flat.__len__() else np.zeros(0, np.int32)
                cs = np.concatenate([[0], np.cumsum(keep)])
                ids_m, mask = pad_sequences(ids, cs[offsets], f.max_len, f.truncate, f.pad)
                feats[f.name] = ids_m
                feats[f.name + "_mask"] = mask
        labels = {lab.name: np.asarray(chunk[lab.source], np.float32) for lab in self.schema.labels
                  if lab.source in chunk}  # unlabeled data (prediction) has none
        return feats, labels

    # --- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        if not self._parent:  # a continued copy holds its parent's fitted statistics
            self._check_fitted()
        d = {"schema": self.schema.to_dict(), "seed": self.seed, "dense": self.dense_stats,
             "vocabularies": self.vocabs}
        if self.growth is not None:
            d["growth"] = self.growth
            d["clock"] = {"generation": self.generation, "now": self.now}
            d["tables"] = {t: {"ids": np.asarray(st["ids"]).tolist(),
                               "counts": np.asarray(st["counts"]).tolist(),
                               "pending": list(st["pending"]),
                               "pending_counts": np.asarray(st["pending_counts"]).tolist(),
                               "oov_base": int(st["oov_base"]), "oov_buckets": int(st["oov_buckets"]),
                               "capacity": int(st["capacity"]),
                               **{k: np.asarray(st[k]).tolist() for k in _OPTIONAL_ARRAYS if k in st},
                               **{k: [int(i) for i in st[k]] for k in ("free", "reset") if k in st},
                               **({"next_id": int(st["next_id"])} if "next_id" in st else {})}
                           for t, st in self.tables_state.items()}
            d["report"] = self.report
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessor:
        p = cls(Schema.from_dict(d["schema"]), seed=d.get("seed", 0))
        p.dense_stats = d["dense"]
        p.vocabs = d["vocabularies"]
        p.growth = d.get("growth")
        p.tables_state = {t: {**st, "ids": np.asarray(st["ids"], np.int64),
                              "counts": np.asarray(st["counts"], np.int64),
                              "pending_counts": np.asarray(st["pending_counts"], np.int64),
                              **{k: np.asarray(st[k], np.float64) for k in _OPTIONAL_ARRAYS if k in st}}
                          for t, st in d.get("tables", {}).items()}
        clock = d.get("clock", {})
        p.generation, p.now = int(clock.get("generation", 0)), clock.get("now")
        p.report = d.get("report", {})
        p.fitted = True
        return p

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path) -> Preprocessor:
        return cls.from_dict(json.loads(Path(path).read_text()))
