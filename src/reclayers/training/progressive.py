"""Progressive validation: one ordered pass over the training rows in blocks, each block scored
by the model *before* it trains on it.

This is the standard online metric of a model that keeps learning from a log: every row is
predicted by a model that has seen only earlier rows, as in production, so no held-out split is
spent and the per-block AUC/logloss curve shows how fast the model adapts (to new ids, to drift).
Blocks are a number of rows, or a duration over the rows' time values (``1d``: one block per
day); rows must be in time order.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["block_bounds", "write_progressive_csv"]


def block_bounds(n: int, block) -> list[tuple[int, int]]:
    """``[(start, stop)]`` row ranges of the blocks of ``n`` ordered rows.

    Args:
        n: rows.
        block: a row count, or ``(seconds, times)``: blocks of that duration over ``times`` (one
            value per row, non-decreasing; empty durations give no block).

    Raises:
        ValueError: a block below 1 row or 0 seconds, or times out of order.

    Example:
        >>> block_bounds(5, 2)
        [(0, 2), (2, 4), (4, 5)]
        >>> block_bounds(4, (10.0, np.array([0, 5, 12, 31])))
        [(0, 2), (2, 3), (3, 4)]
    """
    if isinstance(block, tuple):
        seconds, times = block
        times = np.asarray(times, np.float64)
        if seconds <= 0 or len(times) != n:
            raise ValueError(f"progressive: a duration > 0 and one time per row are needed; got {seconds} "
                             f"and {len(times)} times for {n} rows")
        if n and (np.diff(times) < 0).any():
            raise ValueError("progressive: the rows must be in time order; got times that go back "
                             "(split the data by time, --split-by time)")
        ids = np.floor((times - (times[0] if n else 0)) / seconds).astype(np.int64)
        cuts = np.flatnonzero(np.diff(ids)) + 1
        edges = np.concatenate([[0], cuts, [n]]) if n else np.zeros(1, np.int64)
        return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    block = int(block)
    if block < 1:
        raise ValueError(f"progressive: a block must be >= 1 row; got {block}")
    return [(a, min(a + block, n)) for a in range(0, n, block)]


def write_progressive_csv(rows: list, path) -> None:
    """Writes the per-block rows (``block``, ``start``, ``rows``, ``train_loss`` and per label
    ``auc``/``logloss`` of the block scored before training on it) as CSV.

    Args:
        rows: the trainer's ``state["progressive"]``.
        path: the CSV file.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "p.csv"
        >>> write_progressive_csv([{"block": 1, "start": 0, "rows": 10, "train_loss": 0.6,
        ...                         "scores": {"click": {"auc": 0.7, "logloss": 0.5}}}], p)
        >>> p.read_text().splitlines()[0]
        'block,start,rows,train_loss,click_auc,click_logloss'
    """
    labels = list(rows[0]["scores"]) if rows else []
    with open(Path(path), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["block", "start", "rows", "train_loss"] + [f"{lab}_{m}" for lab in labels
                                                                for m in ("auc", "logloss")])
        for r in rows:
            w.writerow([r["block"], r["start"], r["rows"], r.get("train_loss")]
                       + [r["scores"][lab].get(m) for lab in labels for m in ("auc", "logloss")])
