"""An on-disk columnar cache of encoded splits, built in two streaming passes over the raw files.

:func:`build_cache` reads a :class:`~reclayers.data.readers.Source` twice, whatever its size:

1. **fit** — each row is assigned to a split as it streams by (:mod:`reclayers.data.splits`:
   seeded hash of the row number, time cut, or one split per file), and the preprocessor is
   fitted on the training rows only;
2. **encode** — every row is transformed once and appended to its split's column files.

The cache folder is named by a hash of what determines its content — each file's path, size and
modification time, the schema, the split, the preprocessor's seed — so a later run, ``evaluate``
and ``predict`` reuse it, and a changed file or schema builds a new one. A folder is written under
a temporary name and renamed when complete, so an interrupted build is never reused.

Each column is a flat little-endian binary file (``{split}/{key}.bin``) described by ``meta.json``:
rows are read back as whole :data:`~reclayers.data.dataset.BLOCK_ROWS`-row blocks with one
``preadv`` per column and block, straight into the batch buffers. :class:`CachedSplit` has the
interface of :class:`~reclayers.data.dataset.Arrays` (``len``, ``num_batches``, ``batches``,
``features``/``labels`` as memory-mapped arrays), so training, scoring and resuming use the same
batch order (:class:`~reclayers.data.dataset.BatchOrder`) in memory and on disk. Memory stays
bounded by a few parsed blocks, the vocabularies and the shuffle window, not the number of rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import threading
import time
from pathlib import Path

import numpy as np

from reclayers.data.dataset import Arrays, BatchedSplit
from reclayers.data.preprocess import Preprocessor
from reclayers.data.readers import Source, take_chunk

__all__ = ["CACHE_VERSION", "CacheError", "CachedSplit", "build_cache", "file_identity", "prefetch",
           "split_names"]

#: Bumped whenever the cache layout or the encoding changes (old folders are then not reused).
CACHE_VERSION = 1


class CacheError(OSError):
    """The cache folder cannot be created or written."""


def split_names(k: int) -> list:
    """Names of ``k`` ratio splits: ``train``/``valid``/``test`` (3), ``train``/``test`` (2), ...

    Args:
        k: number of splits.

    Example:
        >>> split_names(3), split_names(2)
        (['train', 'valid', 'test'], ['train', 'test'])
    """
    return {1: ["train"], 2: ["train", "test"], 3: ["train", "valid", "test"]}.get(
        k, [f"split{i}" for i in range(k)])


def file_identity(path) -> dict:
    """What identifies a file's content for the cache: resolved path, size, modification time.

    Args:
        path: a file or folder.

    Example:
        >>> from pathlib import Path
        >>> _ = Path("f.txt").write_text("x")
        >>> sorted(file_identity("f.txt")), file_identity("f.txt")["size"]
        (['mtime_ns', 'path', 'size'], 1)
    """
    p = Path(path).resolve()
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def prefetch(iterable, depth: int = 2):
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead (parsing overlaps the
    work done on the previous chunk; pyarrow releases the GIL while it parses).

    Args:
        iterable: any iterable (e.g. ``source.chunks()``).
        depth: items read ahead.

    Example:
        >>> list(prefetch(range(5)))
        [0, 1, 2, 3, 4]
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run():
        try:
            for item in iterable:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            q.put(e)

    thread = threading.Thread(target=run, name="reclayers-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


class CachedSplit(BatchedSplit):
    """One encoded split in a cache folder, with the interface of
    :class:`~reclayers.data.dataset.Arrays`.

    Args:
        folder: the split's folder (``CACHE/{split}``) holding ``meta.json`` and the column files.

    Attributes:
        features: ``{key: read-only memory-mapped array}``.
        labels: ``{label: read-only memory-mapped float32 array}`` (empty when unlabeled).
        time: the raw time column (memory-mapped) or ``None``.

    Example:
        >>> from reclayers import data as rd
        >>> _ = rd.write_criteo("sample.txt", n_rows=300, vocab_size=20)
        >>> pre, splits, info = build_cache(rd.criteo("sample.txt"), "cache", ratios=(0.8, 0.2))
        >>> train = splits["train"]
        >>> len(train) + len(splits["test"]), train.features["C1"].dtype.name, info["reused"]
        (300, 'int32', False)
        >>> x, y = next(train.batches(64, seed=0))
        >>> x["C1"].shape, build_cache(rd.criteo("sample.txt"), "cache", ratios=(0.8, 0.2))[2]["reused"]
        ((64,), True)
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        meta = json.loads((self.folder / "meta.json").read_text())
        self.rows = int(meta["rows"])
        self._columns = meta["columns"]
        self._fds: dict = {}
        self._maps: dict = {}

    def __len__(self) -> int:
        return self.rows

    def __repr__(self):
        return f"CachedSplit({str(self.folder)!r}, rows={self.rows})"

    def _spec(self, key: str) -> tuple:
        c = self._columns[key]
        return np.dtype(c["dtype"]), tuple(c["shape"])

    def _map(self, key: str) -> np.ndarray:
        if key not in self._maps:
            dtype, shape = self._spec(key)
            path = self.folder / self._columns[key]["file"]
            self._maps[key] = np.zeros((0,) + shape, dtype) if self.rows == 0 else \
                np.memmap(path, dtype=dtype, mode="r", shape=(self.rows,) + shape)
        return self._maps[key]

    def _group(self, group: str) -> dict:
        return {k: self._map(k) for k, c in self._columns.items() if c["group"] == group}

    @property
    def features(self) -> dict:
        return self._group("features")

    @property
    def labels(self) -> dict:
        return self._group("labels")

    @property
    def time(self):
        return self._map("_time") if "_time" in self._columns else None

    def take(self, index) -> Arrays:
        """Rows ``index`` as in-memory :class:`~reclayers.data.dataset.Arrays`."""
        t = self.time
        return Arrays({k: np.asarray(v[index]) for k, v in self.features.items()},
                      {k: np.asarray(v[index]) for k, v in self.labels.items()},
                      None if t is None else np.asarray(t[index]))

    def _fd(self, key: str) -> int:
        if key not in self._fds:
            self._fds[key] = os.open(self.folder / self._columns[key]["file"], os.O_RDONLY)
        return self._fds[key]

    def _read(self, key: str, ranges) -> np.ndarray:
        dtype, shape = self._spec(key)
        row_bytes = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        out = np.empty((sum(b - a for a, b in ranges),) + shape, dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        fd, pos = self._fd(key), 0
        for a, b in ranges:
            size = (b - a) * row_bytes
            got = os.preadv(fd, [view[pos:pos + size]], a * row_bytes)
            if got != size:
                raise OSError(f"cache: short read in {self.folder / self._columns[key]['file']}; "
                              "the cache folder was changed while in use")
            pos += size
        return out

    def read_ranges(self, ranges) -> tuple:
        """``(features, labels)`` of the rows of ``ranges`` (``[(start, stop)]``), read from disk."""
        feats = {k: self._read(k, ranges) for k, c in self._columns.items() if c["group"] == "features"}
        labs = {k: self._read(k, ranges) for k, c in self._columns.items() if c["group"] == "labels"}
        return feats, labs

    def __del__(self):
        for fd in getattr(self, "_fds", {}).values():
            try:
                os.close(fd)
            except OSError:
                pass


class _SplitWriter:
    """Appends encoded chunks of one split to its column files."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True)
        self.rows = 0
        self.columns: dict = {}
        self._files: dict = {}

    def append(self, feats: dict, labels: dict, time_col) -> None:
        groups = [("features", feats), ("labels", labels)]
        if time_col is not None:
            groups.append(("time", {"_time": np.asarray(time_col, np.float64)}))
        n = None
        for group, cols in groups:
            for k, v in cols.items():
                v = np.ascontiguousarray(v)
                if v.dtype == bool:
                    v = v.astype(np.bool_)
                if k not in self._files:
                    if self.rows:
                        raise ValueError(f"cache: column {k!r} appeared after the first chunk")
                    name = f"{len(self._files):03d}.bin"
                    self._files[k] = open(self.folder / name, "wb")  # noqa: SIM115 - closed in close()
                    self.columns[k] = {"file": name, "group": group, "dtype": v.dtype.str,
                                       "shape": list(v.shape[1:]), "name": k}
                self._files[k].write(memoryview(v.reshape(-1).view(np.uint8)))
                n = len(v)
        self.rows += n or 0

    def close(self, spec: dict) -> None:
        for f in self._files.values():
            f.close()
        if not self._files:  # no rows at all: record the columns' shapes from the batch spec
            self.columns = spec
        (self.folder / "meta.json").write_text(json.dumps({"rows": self.rows, "columns": self.columns}))


def _empty_columns(pre: Preprocessor, labeled: bool) -> dict:
    cols = {}
    for i, (k, (shape, dtype)) in enumerate(pre.schema.batch_spec().items()):
        cols[k] = {"file": f"{i:03d}.bin", "group": "features", "dtype": np.dtype(dtype).str,
                   "shape": list(shape), "name": k}
    if labeled:
        for j, lab in enumerate(pre.schema.label_names):
            cols[lab] = {"file": f"l{j:03d}.bin", "group": "labels", "dtype": np.dtype("float32").str,
                         "shape": [], "name": lab}
    return cols


def _writable(cache_dir: Path) -> None:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        probe = cache_dir / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise CacheError(f"cache folder {cache_dir} cannot be written ({e.strerror or e})") from e


def _key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_cache(source: Source, cache_dir, *, ratios=(0.8, 0.1, 0.1), seed: int = 0,
                by_time: bool = False, valid: Source | None = None, test: Source | None = None,
                preprocessor: Preprocessor | None = None, name: str | None = None,
                key: dict | None = None) -> tuple:
    """Fit (unless given a fitted preprocessor) and encode ``source`` into a cache folder, or reuse
    the folder a previous call built. Returns ``(preprocessor, {split: CachedSplit}, info)``.

    Splits: with ``valid``/``test`` sources each file is one split (``train`` is all of
    ``source``); otherwise ``ratios`` split ``source`` by a seeded hash of the row number
    (``by_time=False``) or by its ``_time`` column (``by_time=True``: a third, light pass reads the
    time column first). A fitted ``preprocessor`` (evaluate/predict on new data) makes a single
    split named ``name`` (default ``"all"``) holding every row, encoded in one pass.

    ``info`` holds ``folder``, ``reused`` (``True`` when nothing was read), per-split ``rows``,
    per-phase ``seconds`` and ``report``: for each pass, the rows read and the malformed rows
    skipped per reason with the first examples (file and line).

    Args:
        source: the (training) data.
        cache_dir: parent folder of the cache folders.
        ratios: split fractions (ignored with ``valid``/``test`` or a fitted ``preprocessor``).
        seed: seed of the random split and of the preprocessor's value samples.
        by_time: split by time instead of at random.
        valid: a separate validation file.
        test: a separate test file.
        preprocessor: an unfitted one to fit (default ``Preprocessor(source.schema, seed)``) or a
            fitted one to encode with.
        name: the split name when encoding with a fitted preprocessor.
        key: more values that identify the content (e.g. the reader's options).

    Raises:
        CacheError: ``cache_dir`` cannot be written.

    Example:
        >>> from reclayers import data as rd
        >>> _ = rd.write_criteo("sample.txt", n_rows=500, vocab_size=20)
        >>> pre, splits, info = build_cache(rd.criteo("sample.txt"), "cache", seed=1)
        >>> {k: len(v) for k, v in splits.items()} == info["rows"], sum(info["rows"].values())
        (True, 500)
        >>> info["report"]["fit"]["rows_read"], info["report"]["encode"]["skipped"]
        (500, 0)
    """
    from reclayers.data.splits import RandomSplit, TimeSplit

    cache_dir = Path(cache_dir)
    fitted = preprocessor is not None and preprocessor.fitted
    pre = preprocessor if preprocessor is not None else Preprocessor(source.schema, seed=seed)
    files = [("train", source)] + [(n, s) for n, s in (("valid", valid), ("test", test)) if s is not None]
    if fitted:
        files = [(name or "all", source)]
        splitter = None
    elif len(files) > 1:
        splitter = None
    else:
        splitter = TimeSplit(ratios) if by_time else RandomSplit(ratios, seed)
    names = split_names(len(splitter.ratios)) if splitter is not None else [n for n, _ in files]
    ident = {
        "version": CACHE_VERSION,
        "files": [{"split": n, "format": s.name, "files": [file_identity(p) for p in s.paths]}
                  for n, s in files],
        "schema": source.schema.to_dict(),
        "split": splitter.key() if splitter is not None else [n for n, _ in files],
        "seed": int(seed),
        "preprocessor": _key_hash(pre.to_dict()) if fitted else None,
        "extra": key or {},
    }
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(source.paths[0]).name
                   ) if source.paths else source.name
    folder = cache_dir / f"{source.name}-{stem[:40]}-{_key_hash(ident)}"
    done = folder / "cache.json"
    if done.exists():
        info = json.loads(done.read_text())
        pre = Preprocessor.load(folder / "preprocessor.json")
        splits = {n: CachedSplit(folder / n) for n in info["splits"]}
        return pre, splits, {**info, "folder": str(folder), "reused": True}
    _writable(cache_dir)
    tmp = cache_dir / f".{folder.name}.tmp-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(tmp, ignore_errors=True)
    report: dict = {}
    seconds: dict = {}
    timeline: dict = {}  # wall-clock [start, end] of each pass (benchmarks match memory samples to it)
    try:
        tmp.mkdir()
        if splitter is not None and by_time:
            t0, wall0 = time.perf_counter(), time.time()
            splitter.fit(prefetch(source.chunks()))
            report["time"] = source.errors.to_dict()
            seconds["time"] = round(time.perf_counter() - t0, 3)
            timeline["time"] = [wall0, time.time()]
        if not fitted:
            t0, wall0 = time.perf_counter(), time.time()
            assign = splitter.start_pass() if splitter is not None else None

            def train_rows():
                for chunk in prefetch(source.chunks()):
                    yield chunk if assign is None else take_chunk(chunk, assign(chunk) == 0)

            pre.fit(train_rows())
            report["fit"] = source.errors.to_dict()
            seconds["fit"] = round(time.perf_counter() - t0, 3)
            timeline["fit"] = [wall0, time.time()]
        t0, wall0 = time.perf_counter(), time.time()
        writers = {n: _SplitWriter(tmp / n) for n in names}
        labeled = {}
        for i, (fname, src) in enumerate(files):
            assign = splitter.start_pass() if splitter is not None else None
            for chunk in prefetch(src.chunks()):
                feats, labs = pre.transform(chunk)
                labeled[fname] = bool(labs)
                t = chunk.get("_time")
                if assign is None:
                    writers[fname].append(feats, labs, t)
                    continue
                which = assign(chunk)
                for k, n in enumerate(names):
                    idx = np.flatnonzero(which == k)
                    if idx.size:
                        writers[n].append({c: v[idx] for c, v in feats.items()},
                                          {c: v[idx] for c, v in labs.items()},
                                          None if t is None else np.asarray(t)[idx])
            report["encode" if i == 0 else f"encode_{fname}"] = src.errors.to_dict()
        for n, w in writers.items():
            w.close(_empty_columns(pre, labeled.get(n, labeled.get("train", True))))
        seconds["encode"] = round(time.perf_counter() - t0, 3)
        timeline["encode"] = [wall0, time.time()]
        pre.save(tmp / "preprocessor.json")
        info = {"splits": names, "rows": {n: w.rows for n, w in writers.items()}, "report": report,
                "seconds": seconds, "timeline": timeline, "key": ident}
        (tmp / "cache.json").write_text(json.dumps(info, indent=1))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same cache first: use theirs
            if not done.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, CacheError):
            raise
        raise CacheError(f"cache folder {cache_dir} cannot be written ({e.strerror or e})") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    splits = {n: CachedSplit(folder / n) for n in names}
    return pre, splits, {**info, "folder": str(folder), "reused": False}
