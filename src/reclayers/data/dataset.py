"""Encoded data in memory, splits, and reproducible batches for ``model.fit`` on every backend.

* :class:`Arrays` — encoded features and labels (``{name: np.ndarray}``) plus an optional time
  column; :func:`encode` builds it from a :class:`~reclayers.data.readers.Source`.
* :func:`split_indices` — train/validation/test by ratio (seeded permutation) or by time.
* :func:`prepare` — the usual recipe: read, split, fit the preprocessor on the training split only,
  encode every split.
* :meth:`Arrays.batches` — a deterministic batch order: epoch ``e`` with ``seed`` always gives the
  same permutation, and ``start_batch`` resumes inside an epoch.
* :func:`keras_dataset` — the same order as a ``keras.utils.PyDataset`` (works with jax, tensorflow
  and torch ``model.fit``; ``workers`` > 1 prefetches in threads).
* :func:`stream_batches` / :func:`split_stream` — constant-memory batches straight from a file,
  with a reproducible per-row split assignment, for data larger than memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from reclayers.data.preprocess import Preprocessor
from reclayers.data.readers import Source, concat_chunks, take_chunk

__all__ = ["Arrays", "BatchOrder", "BatchReader", "BatchedSplit", "block_ranges", "encode",
           "split_indices", "prepare", "keras_dataset", "stream_batches",
           "split_stream", "epoch_permutation"]


#: Rows per block of the batch order (the unit read from an on-disk cache).
BLOCK_ROWS = 4096
#: Blocks per shuffle window (rows are shuffled inside a window of ``BLOCK_ROWS * WINDOW_BLOCKS``).
WINDOW_BLOCKS = 64


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The row order of epoch ``epoch``: a function of ``(n, seed, epoch)`` only.

    Rows are cut into blocks of :data:`BLOCK_ROWS`; the blocks are permuted, consecutive permuted
    blocks form windows of :data:`WINDOW_BLOCKS`, and the rows inside each window are permuted
    (a full uniform permutation when ``n`` fits one window). This is the order every split —
    in memory or in an on-disk cache — is batched in; :class:`BatchOrder` computes it one window
    at a time (memory ~ one window), this function materialises it (small ``n``).

    Args:
        n: number of rows.
        seed: the run's seed.
        epoch: epoch number (0-based).

    Example:
        >>> p = epoch_permutation(6, seed=0, epoch=1)
        >>> sorted(p.tolist()), bool((p == epoch_permutation(6, seed=0, epoch=1)).all())
        ([0, 1, 2, 3, 4, 5], True)
    """
    order = BatchOrder(n, seed, epoch)
    return np.concatenate([order.window_rows(w) for w in range(order.num_windows)]) if n else \
        np.zeros(0, np.int64)


class BatchOrder:
    """The epoch order of :func:`epoch_permutation`, one shuffle window at a time.

    Args:
        n: number of rows.
        seed: the run's seed.
        epoch: epoch number (0-based).
        shuffle: ``False`` gives file order (blocks and rows in place).

    Attributes:
        blocks: the block ids in epoch order.
        window_starts: the position of each window's first row in the epoch order (plus ``n``).

    Example:
        >>> order = BatchOrder(10_000, seed=0, epoch=0)
        >>> order.num_windows, sorted(order.window_rows(0).tolist()) == list(range(10_000))
        (1, True)
        >>> BatchOrder(5, seed=0, epoch=0, shuffle=False).window_rows(0).tolist()
        [0, 1, 2, 3, 4]
    """

    def __init__(self, n: int, seed: int = 0, epoch: int = 0, shuffle: bool = True):
        self.n, self.seed, self.epoch, self.shuffle = int(n), int(seed), int(epoch), bool(shuffle)
        num_blocks = -(-self.n // BLOCK_ROWS)
        rng = np.random.default_rng([self.seed, self.epoch])
        self.blocks = rng.permutation(num_blocks) if shuffle else np.arange(num_blocks)
        sizes = np.minimum(BLOCK_ROWS, self.n - self.blocks * BLOCK_ROWS)
        per_window = np.add.reduceat(sizes, np.arange(0, num_blocks, WINDOW_BLOCKS)) if num_blocks \
            else np.zeros(0, np.int64)
        self.window_starts = np.concatenate([[0], np.cumsum(per_window)]).astype(np.int64)

    @property
    def num_windows(self) -> int:
        return len(self.window_starts) - 1

    def window_blocks(self, w: int) -> np.ndarray:
        """Block ids of window ``w`` (in the order they are read)."""
        return self.blocks[w * WINDOW_BLOCKS:(w + 1) * WINDOW_BLOCKS]

    def window_permutation(self, w: int) -> np.ndarray:
        """Positions inside window ``w``'s concatenated blocks, in epoch order."""
        size = int(self.window_starts[w + 1] - self.window_starts[w])
        if not self.shuffle:
            return np.arange(size)
        return np.random.default_rng([self.seed, self.epoch, w + 1]).permutation(size)

    def window_rows(self, w: int) -> np.ndarray:
        """Row ids of window ``w`` in epoch order."""
        rows = np.concatenate([np.arange(b * BLOCK_ROWS, min((b + 1) * BLOCK_ROWS, self.n))
                               for b in self.window_blocks(w)])
        return rows[self.window_permutation(w)]

    def window_of(self, position: int) -> int:
        """The window holding epoch position ``position``."""
        return int(np.searchsorted(self.window_starts, position, side="right") - 1)


def block_ranges(blocks, n: int) -> list:
    """``[(start, stop)]`` row ranges of ``blocks`` (ids of :data:`BLOCK_ROWS`-row blocks).

    Args:
        blocks: block ids.
        n: number of rows (the last block may be short).

    Example:
        >>> block_ranges([1, 0], n=5000), block_ranges([0, 1], n=5000)
        ([(4096, 5000), (0, 4096)], [(0, 5000)])
    """
    out: list = []
    for b in blocks:
        start, stop = int(b) * BLOCK_ROWS, min((int(b) + 1) * BLOCK_ROWS, n)
        if out and out[-1][1] == start:  # adjacent blocks read as one range
            out[-1] = (out[-1][0], stop)
        else:
            out.append((start, stop))
    return out


class BatchReader:
    """Batches of one epoch of a split (:class:`Arrays` or a cached split), in the order of
    :class:`BatchOrder`; the one batching implementation for data in memory and on disk.

    Each window's rows are read once (``arrays.read_ranges``: contiguous blocks), permuted once,
    and batches are slices of it; the next window is read ahead by a background thread while the
    current one is consumed. Memory: about two windows. Thread-safe (Keras ``PyDataset`` workers).

    Args:
        arrays: the split; it provides ``read_ranges([(start, stop)]) -> (features, labels)``.
        batch_size: rows per batch.
        shuffle: epoch order (else file order).
        seed: seed of the order.
        epoch: the epoch whose order to use.
        drop_remainder: drop a last, short batch.

    Example:
        >>> import numpy as np
        >>> a = Arrays({"x": np.arange(10)}, {"y": np.zeros(10, "float32")})
        >>> reader = BatchReader(a, batch_size=4, shuffle=False)
        >>> len(reader), reader[2][0]["x"].tolist()
        (3, [8, 9])
    """

    def __init__(self, arrays, batch_size: int, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                 drop_remainder: bool = False):
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.arrays, self.batch_size, self.drop_remainder = arrays, int(batch_size), drop_remainder
        self.order = BatchOrder(len(arrays), seed, epoch, shuffle)
        self._windows: dict = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="reclayers-prefetch")

    def __len__(self) -> int:
        return self.arrays.num_batches(self.batch_size, self.drop_remainder)

    def _load(self, w: int) -> tuple:
        feats, labs = self.arrays.read_ranges(block_ranges(self.order.window_blocks(w), self.order.n))
        if not self.order.shuffle:
            return feats, labs
        perm = self.order.window_permutation(w)
        return {k: v[perm] for k, v in feats.items()}, {k: v[perm] for k, v in labs.items()}

    def _window(self, w: int) -> tuple:
        with self._lock:
            fut = self._windows.get(w)
            if fut is None:
                fut = self._windows[w] = self._pool.submit(self._load, w)
            if w + 1 < self.order.num_windows and w + 1 not in self._windows:
                self._windows[w + 1] = self._pool.submit(self._load, w + 1)  # read ahead
            for old in [k for k in self._windows if k < w - 1]:
                del self._windows[old]
        return fut.result()

    def __getitem__(self, b: int) -> tuple:
        if not 0 <= b < len(self):
            raise IndexError(f"BatchReader: batch must be in [0, {len(self)}); got {b}")
        lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, self.order.n)
        parts = []
        w = self.order.window_of(lo)
        while lo < hi:
            start, stop = self.order.window_starts[w], self.order.window_starts[w + 1]
            feats, labs = self._window(w)
            sl = slice(lo - start, min(hi, stop) - start)
            parts.append(({k: v[sl] for k, v in feats.items()}, {k: v[sl] for k, v in labs.items()}))
            lo, w = min(hi, stop), w + 1
        if len(parts) == 1:
            return parts[0]
        return ({k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]},
                {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]})

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._windows = {}


class BatchedSplit:
    """What every split provides on top of ``__len__`` and ``read_ranges``: ``num_batches`` and
    ``batches`` in the order of :class:`BatchOrder` (mixin of :class:`Arrays` and cached splits)."""

    def num_batches(self, batch_size: int, drop_remainder: bool = False) -> int:
        n = len(self)
        return n // batch_size if drop_remainder else -(-n // batch_size)

    def batches(self, batch_size: int, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                start_batch: int = 0, drop_remainder: bool = False) -> Iterator[tuple]:
        """Yield ``(features, labels)`` batches in the reproducible order of ``(seed, epoch)``,
        starting at batch ``start_batch`` (to resume a run)."""
        reader = BatchReader(self, batch_size, shuffle, seed, epoch, drop_remainder)
        try:
            for b in range(start_batch, len(reader)):
                yield reader[b]
        finally:
            reader.close()


@dataclass
class Arrays(BatchedSplit):
    """Encoded features and labels of one split (all arrays share their first dimension).

    ``features`` maps each batch key of the schema (``schema.batch_spec()``) to an array, ``labels``
    each label name to a float32 array ``[n]`` (empty for unlabeled data); ``time`` is the raw time
    column when the source has one. ``len(arrays)`` is the number of rows; ``take(index)`` selects
    rows; ``batches(...)`` iterates ``(features, labels)`` batches in a reproducible order (the
    same order as a cached split of the same size: :class:`BatchOrder`).

    Attributes:
        features: ``{key: array [n, ...]}`` (int32 ids, float32 values, bool masks).
        labels: ``{label: float32 [n]}``.
        time: ``[n]`` or ``None``.

    Example:
        >>> import numpy as np
        >>> a = Arrays({"user": np.arange(5, dtype="int32")}, {"click": np.zeros(5, "float32")})
        >>> len(a), len(a.take(np.array([0, 2])))
        (5, 2)
        >>> [len(y["click"]) for _, y in a.batches(2, shuffle=False)]
        [2, 2, 1]
    """

    features: dict
    labels: dict
    time: np.ndarray | None = None

    def __len__(self) -> int:
        return len(next(iter(self.labels.values()))) if self.labels else \
            len(next(iter(self.features.values())))

    def take(self, index) -> Arrays:
        return Arrays({k: v[index] for k, v in self.features.items()},
                      {k: v[index] for k, v in self.labels.items()},
                      None if self.time is None else self.time[index])

    def read_ranges(self, ranges) -> tuple:
        """``(features, labels)`` of the rows of ``ranges`` (``[(start, stop)]``), concatenated."""
        if len(ranges) == 1:  # one contiguous range: views, no copy
            sl = slice(*ranges[0])
            return ({k: v[sl] for k, v in self.features.items()}, {k: v[sl] for k, v in self.labels.items()})
        idx = np.concatenate([np.arange(a, b) for a, b in ranges]) if ranges else np.zeros(0, np.int64)
        return ({k: v[idx] for k, v in self.features.items()},
                {k: v[idx] for k, v in self.labels.items()})


def encode(source: Source | dict, preprocessor: Preprocessor) -> Arrays:
    """Transform every chunk of ``source`` (or one raw chunk) into :class:`Arrays`.

    Args:
        source: a :class:`~reclayers.data.readers.Source` (every chunk is read) or one raw chunk
            (a dict of columns).
        preprocessor: a fitted :class:`~reclayers.data.preprocess.Preprocessor`.

    Example:
        >>> from reclayers import data as rd
        >>> rd.write_criteo("sample.txt", n_rows=200, vocab_size=20)["rows"]
        200
        >>> src = rd.criteo("sample.txt")
        >>> pre = rd.Preprocessor(src.schema).fit(src.chunks())
        >>> arrays = encode(src, pre)
        >>> len(arrays), arrays.features["C1"].dtype.name
        (200, 'int32')
    """
    chunks = [source] if isinstance(source, dict) else source.chunks()
    feats, labs, times = [], [], []
    for chunk in chunks:
        f, lab = preprocessor.transform(chunk)
        feats.append(f)
        labs.append(lab)
        if "_time" in chunk:
            times.append(np.asarray(chunk["_time"]))
    if not feats:
        raise ValueError(f"encode: the source must yield at least one row; got none from {source!r}")
    return Arrays({k: np.concatenate([f[k] for f in feats]) for k in feats[0]},
                  {k: np.concatenate([x[k] for x in labs]) for k in labs[0]},
                  np.concatenate(times) if times else None)


def split_indices(n: int, ratios=(0.8, 0.1, 0.1), seed: int = 0, time=None) -> list:
    """Row indices of each split.

    ``time=None``: a seeded random permutation cut by ``ratios``; otherwise rows are ordered by
    ``time`` (ties by position) so the earliest go to the first split (train), the latest to the
    last (test).

    Args:
        n: number of rows.
        ratios: split fractions (they are normalised to sum to 1).
        seed: seed of the random permutation.
        time: ``None`` or one sortable value per row.

    Example:
        >>> [idx.tolist() for idx in split_indices(5, ratios=(0.6, 0.4), time=[50, 10, 40, 20, 30])]
        [[1, 3, 4], [2, 0]]
    """
    ratios = np.asarray(ratios, np.float64)
    if ratios.ndim != 1 or ratios.size < 1 or (ratios < 0).any() or not np.isclose(ratios.sum(), 1.0):
        raise ValueError(f"split_indices: ratios must be non-negative and sum to 1; got {ratios.tolist()}")
    if time is None:
        order = np.random.default_rng(seed).permutation(n)
    else:
        order = np.argsort(np.asarray(time), kind="stable")
    cuts = np.round(np.cumsum(ratios)[:-1] * n).astype(int)
    return [np.sort(part) if time is None else part for part in np.split(order, cuts)]


def prepare(source: Source, ratios=(0.8, 0.1, 0.1), seed: int = 0, by_time: bool = False,
            preprocessor: Preprocessor | None = None) -> tuple:
    """Read ``source`` into memory, split it, fit a preprocessor on the training split only and
    encode each split. Returns ``(preprocessor, [Arrays per split])``.

    Args:
        source: the data (read completely into memory).
        ratios: split fractions, e.g. ``(0.8, 0.1, 0.1)`` for train / validation / test.
        seed: seed of the random split.
        by_time: split by the source's ``_time`` column instead (earliest rows first).
        preprocessor: an unfitted preprocessor to use (default: ``Preprocessor(source.schema)``).

    Example:
        >>> from reclayers import data as rd
        >>> _ = rd.write_criteo("sample.txt", n_rows=300, vocab_size=20)
        >>> pre, (train, valid, test) = prepare(rd.criteo("sample.txt"), ratios=(0.8, 0.1, 0.1))
        >>> len(train), len(valid), len(test), pre.output_schema()["C1"].num_buckets > 2
        (240, 30, 30, True)
    """
    raw = concat_chunks(list(source.chunks()))
    n = len(next(iter(raw.values())))
    if by_time and "_time" not in raw:
        raise ValueError(f"prepare: by_time needs a source with a time column; got {source.name!r}")
    parts = split_indices(n, ratios, seed, time=raw["_time"] if by_time else None)
    pre = preprocessor or Preprocessor(source.schema, seed=seed)
    if not pre.fitted:
        pre.fit([take_chunk(raw, parts[0])])
    return pre, [encode(take_chunk(raw, p), pre) for p in parts]


def keras_dataset(arrays: BatchedSplit, batch_size: int = 256, shuffle: bool = True, seed: int = 0,
                  start_epoch: int = 0, start_batch: int = 0, workers: int = 1, label_format: str = "auto",
                  drop_remainder: bool = False):
    """A ``keras.utils.PyDataset`` over ``arrays`` for ``model.fit``/``evaluate``/``predict``.

    Batch ``i`` of epoch ``e`` is the same on every backend and run, and ``model.fit(ds,
    epochs=3, shuffle=False)`` trains epochs ``start_epoch``, ``start_epoch + 1``, ... in the
    order of :class:`BatchReader` (with ``fit``'s default ``shuffle=True``, Keras permutes the
    batches of each epoch among themselves). ``start_batch`` skips the first batches of
    ``start_epoch`` (resume). Labels come as one array when the schema has one label and
    ``label_format="auto"``, else as a dict keyed by label name.

    The data set moves to the next epoch at ``on_epoch_end`` only when the pass since
    ``on_epoch_begin`` served every batch, and not when Keras's epoch iterator resets as ``fit``
    starts (after peeking at a batch to build the model): neither must advance the order or drop
    the resume offset. Keras keeps the number of steps it read at the start of ``fit``, so a
    resumed epoch (``start_batch > 0``) should be fitted alone (``epochs=1``), then the next epochs
    from ``keras_dataset(..., start_epoch=start_epoch + 1)``, as
    :class:`reclayers.training.Trainer` does; a second epoch in the same ``fit`` would be cut to
    the resumed epoch's length, and a warning says so.

    Args:
        arrays: the split to iterate (:class:`Arrays`).
        batch_size: rows per batch. Default 256.
        shuffle: a new seeded order every epoch (else file order). Default ``True``.
        seed: seed of the order (with the epoch number). Default 0.
        start_epoch: the epoch the first ``fit`` epoch corresponds to (resume). Default 0.
        start_batch: batches of ``start_epoch`` to skip (resume inside an epoch). Default 0.
        workers: threads preparing batches ahead (``keras.utils.PyDataset`` workers). Default 1,
            which keeps ``fit``'s order exact (:class:`BatchReader` reads the next window ahead on
            its own thread). With more, Keras 3.15's thread pool carries the batches it read
            ahead during ``fit``'s model-building peek into the first epoch, so ``fit`` trains
            the batches shifted by one (batches 1.. of an epoch, then batch 0 of the next).
        label_format: ``"auto"``, ``"array"`` or ``"dict"``. Default ``"auto"``.
        drop_remainder: drop a last, short batch. Default ``False``.

    Example:
        >>> from reclayers import data as rd
        >>> ds = rd.make_synthetic(n_rows=500, seed=0)
        >>> batches = keras_dataset(ds.splits["train"], batch_size=128, shuffle=False)
        >>> x, y = batches[0]
        >>> len(batches), y.shape, x["C1"].shape
        (4, (128,), (128,))
    """
    import warnings

    import keras

    class _Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=workers, use_multiprocessing=False)
            self.epoch = start_epoch
            self.offset = start_batch
            self.reader = BatchReader(arrays, batch_size, shuffle, seed, self.epoch, drop_remainder)
            self._served: set = set()  # batch indices served since the last on_epoch_end
            self._in_pass = False
            self._resumed_steps = None  # the resumed epoch's length, once it is done

        def __len__(self):
            return len(self.reader) - self.offset

        def __getitem__(self, i):
            x, y = self.reader[i + self.offset]
            self._served.add(i)
            if label_format == "auto" and len(y) == 1:
                y = next(iter(y.values()))
            return x, y

        def on_epoch_begin(self):
            self._in_pass = True

        def on_epoch_end(self):
            served, in_pass = len(self._served), self._in_pass
            self._served, self._in_pass = set(), False
            complete = in_pass and served >= len(self) and not _keras_reset()
            if in_pass and not complete and self._resumed_steps is not None \
                    and served >= self._resumed_steps:  # fit kept the resumed epoch's step count
                warnings.warn(
                    f"keras_dataset: epoch {self.epoch} ran in the fit call that resumed epoch "
                    f"{self.epoch - 1} at batch {start_batch}, so Keras stopped it after that epoch's "
                    f"{self._resumed_steps} steps, {len(self) - served} batches early. Fit a resumed "
                    f"epoch alone (epochs=1) and continue with keras_dataset(..., "
                    f"start_epoch={self.epoch}).", stacklevel=2)
                complete = True
            if not complete:  # a peek at a batch, or Keras's reset before the first epoch
                return
            self._resumed_steps = len(self) if self.offset else self._resumed_steps
            self.epoch += 1
            self.offset = 0
            self.reader.close()
            self.reader = BatchReader(arrays, batch_size, shuffle, seed, self.epoch, drop_remainder)

    return _Batches()


def _keras_reset() -> bool:
    """Whether ``on_epoch_end`` is being called by Keras's ``EpochIterator.reset``.

    ``fit``/``evaluate``/``predict`` call it as they start, after peeking at a batch or two to
    build the model: never at the end of a pass. Keras passes no argument that tells the two
    calls apart, and a peek serves every batch of a data set with one batch left (a resume at an
    epoch's last batch), so the caller is looked up: the epoch iterator's ``reset``, two or three
    frames up (through the data adapter's ``on_epoch_end``).
    """
    import sys

    frame = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            return False
        code = frame.f_code
        if code.co_name == "reset" and code.co_filename.endswith("epoch_iterator.py"):
            return True
        frame = frame.f_back
    return False


def split_stream(chunks, split: int, ratios=(0.8, 0.1, 0.1), seed: int = 0) -> Iterator[dict]:
    """Keep the rows of split number ``split`` from a stream of raw chunks. Each row's split is a
    seeded hash of its row number (:class:`~reclayers.data.splits.RandomSplit`, as in the data
    cache), so every pass (and every split) agrees without storing anything.

    Args:
        chunks: an iterable of raw chunks (``source.chunks()``).
        split: the index of the split to keep (0 = train with the default ratios).
        ratios: split fractions.
        seed: seed of the per-row draws.

    Example:
        >>> from reclayers import data as rd
        >>> _ = rd.write_criteo("sample.txt", n_rows=400, vocab_size=20)
        >>> src = rd.criteo("sample.txt")
        >>> sizes = [sum(len(c["label"]) for c in split_stream(src.chunks(), k)) for k in range(3)]
        >>> sum(sizes)
        400
    """
    from reclayers.data.splits import RandomSplit

    assign = RandomSplit(ratios, seed).start_pass()
    for chunk in chunks:
        keep = assign(chunk) == split
        if keep.any():
            yield take_chunk(chunk, keep)


def stream_batches(chunks, preprocessor: Preprocessor, batch_size: int = 4096,
                   start_batch: int = 0) -> Iterator[tuple]:
    """Constant-memory ``(features, labels)`` batches, in file order, from a stream of raw chunks;
    the last batch may be short. ``start_batch`` skips batches (resume).

    Args:
        chunks: an iterable of raw chunks (``source.chunks()``), read lazily.
        preprocessor: a fitted preprocessor.
        batch_size: rows per batch.
        start_batch: number of batches to skip.

    Example:
        >>> from reclayers import data as rd
        >>> _ = rd.write_criteo("sample.txt", n_rows=250, vocab_size=20)
        >>> src = rd.criteo("sample.txt")
        >>> pre = rd.Preprocessor(src.schema).fit(src.chunks())
        >>> [len(y["label"]) for _, y in stream_batches(src.chunks(), pre, batch_size=100)]
        [100, 100, 50]
    """
    carry_f: dict | None = None
    carry_l: dict | None = None
    b = 0
    for chunk in chunks:
        f, lab = preprocessor.transform(chunk)
        if carry_f is not None:
            f = {k: np.concatenate([carry_f[k], v]) for k, v in f.items()}
            lab = {k: np.concatenate([carry_l[k], v]) for k, v in lab.items()}
        n = len(next(iter(lab.values()))) if lab else len(next(iter(f.values())))
        full = n // batch_size
        for i in range(full):
            if b >= start_batch:
                sl = slice(i * batch_size, (i + 1) * batch_size)
                yield {k: v[sl] for k, v in f.items()}, {k: v[sl] for k, v in lab.items()}
            b += 1
        rest = slice(full * batch_size, n)
        carry_f = {k: v[rest] for k, v in f.items()}
        carry_l = {k: v[rest] for k, v in lab.items()}
    if carry_l is not None and len(next(iter(carry_l.values()), [])) and b >= start_batch:
        yield carry_f, carry_l
