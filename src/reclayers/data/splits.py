"""Streaming split assignment: which split each row of a file belongs to, decided row by row.

* :class:`RandomSplit` — a seeded hash of the row's position in the file (among well-formed rows)
  cut by the ratios: every pass over the file, and every chunking of it, agrees, nothing is stored.
* :class:`TimeSplit` — the earliest rows go to the first split (train), the latest to the last
  (test), ties broken by file order: exactly :func:`~reclayers.data.dataset.split_indices` with
  ``time=``, found from the value counts of the time column (memory grows with the number of
  distinct times, not rows).

Both are used as ``assign = splitter.start_pass()`` then ``assign(chunk) -> int8 split per row`` on
the chunks of one pass, in file order.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["RandomSplit", "TimeSplit", "row_uniform", "check_ratios"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def check_ratios(ratios) -> np.ndarray:
    """``ratios`` as a float array, checked (non-negative, summing to 1).

    Args:
        ratios: split fractions, e.g. ``(0.8, 0.1, 0.1)``.

    Example:
        >>> check_ratios([0.5, 0.5]).tolist()
        [0.5, 0.5]
    """
    r = np.asarray(ratios, np.float64)
    if r.ndim != 1 or r.size < 1 or (r < 0).any() or not np.isclose(r.sum(), 1.0):
        raise ValueError(f"split: ratios must be non-negative and sum to 1; got {r.tolist()}")
    return r


def row_uniform(rows: np.ndarray, seed: int) -> np.ndarray:
    """A uniform draw in ``[0, 1)`` per row number: the SplitMix64 hash of ``(seed, row)``.

    Args:
        rows: row numbers (non-negative integers).
        seed: the split's seed.

    Example:
        >>> import numpy as np
        >>> u = row_uniform(np.arange(100_000), seed=0)
        >>> bool((u >= 0).all() and (u < 1).all()), round(float(u.mean()), 2)
        (True, 0.5)
    """
    with np.errstate(over="ignore"):
        z = np.asarray(rows, np.uint64) + np.uint64(seed & 0xFFFFFFFF) * _GOLDEN + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _rows_in(chunk: dict) -> int:
    return len(next(iter(chunk.values())))


class RandomSplit:
    """Row ``i`` of the file goes to split ``k`` when its hash draw falls in the ``k``-th ratio.

    Args:
        ratios: split fractions (train, valid, test).
        seed: seed of the draws.

    Example:
        >>> import numpy as np
        >>> assign = RandomSplit((0.8, 0.1, 0.1), seed=0).start_pass()
        >>> parts = np.concatenate([assign({"x": np.zeros(5000)}), assign({"x": np.zeros(5000)})])
        >>> np.bincount(parts).tolist()[0] > 7500
        True
    """

    def __init__(self, ratios=(0.8, 0.1, 0.1), seed: int = 0):
        self.ratios = check_ratios(ratios)
        self.seed = int(seed)
        self._cum = np.cumsum(self.ratios)[:-1]

    def key(self) -> dict:
        return {"by": "random", "ratios": self.ratios.tolist(), "seed": self.seed}

    def start_pass(self):
        seen = [0]

        def assign(chunk: dict) -> np.ndarray:
            n = _rows_in(chunk)
            u = row_uniform(np.arange(seen[0], seen[0] + n), self.seed)
            seen[0] += n
            return np.searchsorted(self._cum, u, side="right").astype(np.int8)

        return assign


class TimeSplit:
    """Rows ordered by their ``_time`` (ties by file order) and cut by ``ratios``.

    :meth:`fit` takes one pass over the chunks' ``_time`` column; then each pass assigns rows in
    file order.

    Args:
        ratios: split fractions (earliest first).

    Example:
        >>> import numpy as np
        >>> split = TimeSplit((0.6, 0.4)).fit([{"_time": np.array([50., 10, 40, 20, 30])}])
        >>> split.start_pass()({"_time": np.array([50., 10, 40, 20, 30])}).tolist()
        [1, 0, 1, 0, 0]
    """

    def __init__(self, ratios=(0.8, 0.1, 0.1)):
        self.ratios = check_ratios(ratios)
        self.cuts: list = []  # (time value, rows at that value that go to the earlier split)

    def key(self) -> dict:
        return {"by": "time", "ratios": self.ratios.tolist()}

    def fit(self, chunks) -> TimeSplit:
        tables = []
        for chunk in chunks:
            if "_time" not in chunk:
                raise ValueError("split by time: the data has no time column; got a chunk without '_time'")
            vc = pc.value_counts(pa.array(np.asarray(chunk["_time"], np.float64)))
            tables.append(pa.table({"t": vc.field("values"), "c": vc.field("counts")}))
            if len(tables) > 8:
                tables = [pa.concat_tables(tables).group_by("t").aggregate([("c", "sum")])
                          .rename_columns(["t", "c"])]
        if not tables:
            raise ValueError("split by time: the data has no rows")
        t = pa.concat_tables(tables).group_by("t").aggregate([("c", "sum")]).rename_columns(["t", "c"])
        t = t.sort_by("t")
        times = t["t"].to_numpy()
        counts = t["c"].to_numpy().astype(np.int64)
        before = np.concatenate([[0], np.cumsum(counts)])
        n = int(before[-1])
        self.cuts = []
        for c in np.round(np.cumsum(self.ratios)[:-1] * n).astype(np.int64):
            i = min(int(np.searchsorted(before, c, side="right") - 1), len(times) - 1)
            self.cuts.append((float(times[i]), int(c - before[i])))
        return self

    def start_pass(self):
        seen = [0] * len(self.cuts)

        def assign(chunk: dict) -> np.ndarray:
            t = np.asarray(chunk["_time"], np.float64)
            out = np.zeros(t.size, np.int8)
            for k, (value, earlier) in enumerate(self.cuts):
                eq = t == value
                rank = seen[k] + np.cumsum(eq) - 1
                seen[k] += int(eq.sum())
                out += (t > value) | (eq & (rank >= earlier))
            return out

        return assign
