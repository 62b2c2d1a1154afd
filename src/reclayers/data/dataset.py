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

__all__ = ["Arrays", "encode", "split_indices", "prepare", "keras_dataset", "stream_batches",
           "split_stream", "epoch_permutation"]


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The row order of epoch ``epoch``: a function of ``(seed, epoch)`` only."""
    return np.random.default_rng([seed, epoch]).permutation(n)


@dataclass
class Arrays:
    """Encoded features and labels of one split (all arrays share their first dimension)."""

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

    def num_batches(self, batch_size: int, drop_remainder: bool = False) -> int:
        n = len(self)
        return n // batch_size if drop_remainder else -(-n // batch_size)

    def batches(self, batch_size: int, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                start_batch: int = 0, drop_remainder: bool = False) -> Iterator[tuple]:
        """Yield ``(features, labels)`` batches in the reproducible order of ``(seed, epoch)``,
        starting at batch ``start_batch`` (to resume a run)."""
        order = epoch_permutation(len(self), seed, epoch) if shuffle else np.arange(len(self))
        for b in range(start_batch, self.num_batches(batch_size, drop_remainder)):
            idx = order[b * batch_size:(b + 1) * batch_size]
            yield ({k: v[idx] for k, v in self.features.items()},
                   {k: v[idx] for k, v in self.labels.items()})


def encode(source: Source | dict, preprocessor: Preprocessor) -> Arrays:
    """Transform every chunk of ``source`` (or one raw chunk) into :class:`Arrays`."""
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
    encode each split. Returns ``(preprocessor, [Arrays per split])``."""
    raw = concat_chunks(list(source.chunks()))
    n = len(next(iter(raw.values())))
    if by_time and "_time" not in raw:
        raise ValueError(f"prepare: by_time needs a source with a time column; got {source.name!r}")
    parts = split_indices(n, ratios, seed, time=raw["_time"] if by_time else None)
    pre = preprocessor or Preprocessor(source.schema, seed=seed)
    if not pre.fitted:
        pre.fit([take_chunk(raw, parts[0])])
    return pre, [encode(take_chunk(raw, p), pre) for p in parts]


def keras_dataset(arrays: Arrays, batch_size: int = 256, shuffle: bool = True, seed: int = 0,
                  start_epoch: int = 0, start_batch: int = 0, workers: int = 1, label_format: str = "auto",
                  drop_remainder: bool = False):
    """A ``keras.utils.PyDataset`` over ``arrays`` for ``model.fit``/``evaluate``/``predict``.

    Batch ``i`` of epoch ``e`` is the same on every backend and run. ``start_batch`` skips the
    first batches of ``start_epoch`` (resume). Labels come as one array when the schema has one
    label and ``label_format="auto"``, else as a dict keyed by label name.
    """
    import keras

    class _Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=workers, use_multiprocessing=False)
            self.epoch = start_epoch
            self.offset = start_batch
            self._order()

        def _order(self):
            n = len(arrays)
            self.order = epoch_permutation(n, seed, self.epoch) if shuffle else np.arange(n)

        def __len__(self):
            return arrays.num_batches(batch_size, drop_remainder) - self.offset

        def __getitem__(self, i):
            b = i + self.offset
            idx = self.order[b * batch_size:(b + 1) * batch_size]
            x = {k: v[idx] for k, v in arrays.features.items()}
            y = {k: v[idx] for k, v in arrays.labels.items()}
            if label_format == "auto" and len(y) == 1:
                y = next(iter(y.values()))
            return x, y

        def on_epoch_end(self):
            self.epoch += 1
            self.offset = 0
            self._order()

    return _Batches()


def split_stream(chunks, split: int, ratios=(0.8, 0.1, 0.1), seed: int = 0) -> Iterator[dict]:
    """Keep the rows of split number ``split`` from a stream of raw chunks. Each row's split is a
    seeded draw made in file order, so every pass (and every split) agrees without storing
    anything."""
    cum = np.cumsum(np.asarray(ratios, np.float64))
    rng = np.random.default_rng(seed)
    for chunk in chunks:
        n = len(next(iter(chunk.values())))
        which = np.searchsorted(cum, rng.random(n), side="right")
        keep = which == split
        if keep.any():
            yield take_chunk(chunk, keep)


def stream_batches(chunks, preprocessor: Preprocessor, batch_size: int = 4096,
                   start_batch: int = 0) -> Iterator[tuple]:
    """Constant-memory ``(features, labels)`` batches, in file order, from a stream of raw chunks;
    the last batch may be short. ``start_batch`` skips batches (resume)."""
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
