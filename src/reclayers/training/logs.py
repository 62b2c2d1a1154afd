"""What a run leaves to read: ``train.log``, ``history.csv``, TensorBoard events and ``curves.png``.

The TensorBoard writer needs neither TensorFlow nor the ``tensorboard`` package: it writes the
event-file format itself (TFRecord framing with masked CRC-32C, ``Event``/``Summary`` protocol
buffers with scalar values), which TensorBoard reads like its own.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import re
import socket
import struct
import sys
import time
from pathlib import Path

__all__ = ["EventWriter", "Tee", "plot_curves", "read_events", "write_history_csv"]

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")


def clean_line(text: str) -> str:
    """One printed line as a reader sees it: escape codes dropped, a line redrawn after carriage
    returns and backspaces kept in its last state.

    Args:
        text: a line (without its newline) as written to a terminal.

    Example:
        >>> clean_line("\\x1b[1m 1/8\\x1b[0m\\r\\x08\\x08 8/8 done")
        ' 8/8 done'
    """
    text = _ESCAPE.sub("", text).replace("\b", "")
    return text.rsplit("\r", 1)[-1]


class Tee(io.TextIOBase):
    """A text stream that writes to ``stream`` and appends the cleaned lines to ``path``.

    Args:
        stream: the terminal stream (``sys.stdout``).
        path: the log file (appended to: a resumed run continues it).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "train.log"
        >>> tee = Tee(io.StringIO(), p)
        >>> _ = tee.write("\\x1b[1m1/2\\x1b[0m\\r2/2 done\\n"); tee.close()
        >>> p.read_text()
        '2/2 done\\n'
    """

    def __init__(self, stream, path):
        self.stream = stream
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.pending = ""

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.file.write(clean_line(line) + "\n")
        if lines:
            self.file.flush()
        return len(text)

    def log_only(self, line: str) -> None:
        """Writes ``line`` to the log file only (what ``--quiet`` keeps off the terminal).

        Args:
            line: one line, without its newline.
        """
        self.file.write(clean_line(line) + "\n")
        self.file.flush()

    def flush(self) -> None:
        self.stream.flush()
        self.file.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def close(self) -> None:
        if self.pending:
            self.file.write(clean_line(self.pending) + "\n")
            self.pending = ""
        self.file.close()

    @classmethod
    @contextlib.contextmanager
    def capture(cls, path):
        """Tees ``sys.stdout`` into ``path`` for the duration of the block.

        Args:
            path: the log file.
        """
        tee = cls(sys.stdout, path)
        saved, sys.stdout = sys.stdout, tee
        try:
            yield tee
        finally:
            sys.stdout = saved
            tee.close()


def write_history_csv(history: list, path) -> None:
    """One row per epoch, one column per number of the history rows (nested per-label values
    flattened as ``valid_auc:LABEL``).

    Args:
        history: the trainer's history rows.
        path: the CSV file.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "history.csv"
        >>> write_history_csv([{"epoch": 1, "loss": 0.5, "valid": {"click": {"auc": 0.7}}}], p)
        >>> p.read_text().splitlines()
        ['epoch,loss,valid_auc:click', '1,0.5,0.7']
    """
    rows = [_flat(h) for h in history]
    columns: list[str] = []
    for r in rows:
        columns += [c for c in r if c not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    Path(path).write_text(buf.getvalue())


def _flat(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if k == "valid" and isinstance(v, dict):
            for lab, m in v.items():
                for name, value in m.items():
                    if isinstance(value, (int, float)) or value is None:
                        out[f"valid_{name}:{lab}"] = value
        elif not isinstance(v, (dict, list)):
            out[k] = v
    return out


# --- TensorBoard event files ------------------------------------------------------------------------
def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def _masked_crc(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # length-delimited field
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(step: int, wall_time: float, *, scalars: dict | None = None, version: bool = False) -> bytes:
    msg = _varint(1 << 3 | 1) + struct.pack("<d", wall_time) + _varint(2 << 3) + _varint(step)
    if version:
        return msg + _field(3, b"brain.Event:2")
    summary = b"".join(
        _field(1, _field(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", value))
        for tag, value in (scalars or {}).items()
    )
    return msg + _field(5, summary)


class EventWriter:
    """Appends scalar summaries to a TensorBoard event file in ``logdir``.

    Args:
        logdir: the folder (created); TensorBoard's ``--logdir`` points at it or a parent.

    Example:
        >>> import tempfile
        >>> w = EventWriter(tempfile.mkdtemp())
        >>> w.scalars(1, {"valid/auc": 0.75}); w.close()
        >>> read_events(w.path)
        [(1, 'valid/auc', 0.75)]
    """

    def __init__(self, logdir):
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        self.path = logdir / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
        n = 1
        while self.path.exists():  # a resumed run writes a new file next to the old one
            n += 1
            self.path = logdir / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{n}"
        self.file = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        self._record(_event(0, time.time(), version=True))

    def _record(self, data: bytes) -> None:
        header = struct.pack("<Q", len(data))
        self.file.write(header + struct.pack("<I", _masked_crc(header)) + data
                        + struct.pack("<I", _masked_crc(data)))
        self.file.flush()

    def scalars(self, step: int, values: dict) -> None:
        """Writes the finite numbers of ``values`` (``{tag: number}``) at ``step``.

        Args:
            step: the x-axis value (the epoch).
            values: ``{tag: number}``; ``None``/``nan`` values are skipped.
        """
        finite = {k: float(v) for k, v in values.items()
                  if isinstance(v, (int, float)) and math.isfinite(float(v))}
        if finite:
            self._record(_event(int(step), time.time(), scalars=finite))

    def close(self) -> None:
        """Closes the file."""
        self.file.close()


def read_events(path) -> list[tuple[int, str, float]]:
    """``(step, tag, value)`` of every scalar in an event file written by :class:`EventWriter`
    (CRCs checked).

    Args:
        path: the event file.

    Example:
        >>> import tempfile
        >>> w = EventWriter(tempfile.mkdtemp()); w.scalars(2, {"loss": 0.5}); w.close()
        >>> read_events(w.path)
        [(2, 'loss', 0.5)]
    """
    data, out, i = Path(path).read_bytes(), [], 0
    while i < len(data):
        (n,) = struct.unpack_from("<Q", data, i)
        if struct.unpack_from("<I", data, i + 8)[0] != _masked_crc(data[i:i + 8]):
            raise ValueError(f"{path}: bad record length CRC at byte {i}")
        record = data[i + 12:i + 12 + n]
        if struct.unpack_from("<I", data, i + 12 + n)[0] != _masked_crc(record):
            raise ValueError(f"{path}: bad record CRC at byte {i}")
        i += 16 + n
        fields = dict(_parse(record))
        if 5 in fields:
            for number, value in _parse(fields[5]):
                if number == 1:
                    v = dict(_parse(value))
                    out.append((int(fields.get(2, 0)), v[1].decode(), round(struct.unpack("<f", v[2])[0], 6)))
    return out


def _parse(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            n, i = _read_varint(buf, i)
            value, i = buf[i:i + n], i + n
        yield number, value


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, i


# --- curves --------------------------------------------------------------------------------------
def plot_curves(history: list, path, title: str, best_epoch: int | None = None,
                progressive: list | None = None) -> bool:
    """Learning curves as a PNG: a loss panel, then one panel per label (validation AUC, and
    logloss on the right axis), integer epoch ticks, the best epoch marked. ``False`` without
    matplotlib or history.

    Args:
        history: the trainer's history rows.
        path: the PNG file.
        title: the figure title (model, data, backend).
        best_epoch: the epoch to mark.
        progressive: per-block progressive-validation rows (a last panel: each label's AUC of
            each block, scored before training on it).

    Example:
        >>> import tempfile, pathlib
        >>> rows = [{"epoch": e, "loss": 1 / e, "valid": {"click": {"auc": 0.6 + e / 100,
        ...          "logloss": 0.5}}} for e in (1, 2)]
        >>> plot_curves(rows, pathlib.Path(tempfile.mkdtemp()) / "c.png", "demo", best_epoch=2)
        True
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return False
    if not history:
        return False
    epochs = [h["epoch"] for h in history]
    labels = list(history[-1].get("valid", {}))
    extra = 1 if progressive else 0
    fig, axes = plt.subplots(1, 1 + len(labels) + extra, figsize=(4.2 * (1 + len(labels) + extra), 3.6),
                             squeeze=False)
    if extra:
        ax = axes[0][-1]
        blocks = [r["block"] for r in progressive]
        for lab in progressive[0]["scores"]:
            ax.plot(blocks, [r["scores"][lab]["auc"] for r in progressive], "o-", ms=3, label=f"AUC {lab}")
        ax.set_title("progressive validation (before training)")
        ax.set_xlabel("block")
        ax.set_ylabel("AUC")
        ax.legend(fontsize=8)
        axes = [list(axes[0][:-1])]
    loss_ax = axes[0][0]
    loss_ax.plot(epochs, [h.get("loss") for h in history], "o-", label="train loss")
    for lab in labels:
        loss_ax.plot(epochs, [_get(h, lab, "logloss") for h in history], "s--", label=f"valid logloss {lab}")
    loss_ax.set_title("loss")
    loss_ax.legend(fontsize=8)
    for ax, lab in zip(axes[0][1:], labels):
        ax.plot(epochs, [_get(h, lab, "auc") for h in history], "o-", color="tab:green", label="valid AUC")
        ax.set_ylabel("AUC")
        ax.set_title(f"label {lab}")
        right = ax.twinx()
        right.plot(epochs, [_get(h, lab, "logloss") for h in history], "s--", color="tab:orange",
                   label="valid logloss")
        right.set_ylabel("logloss")
        ax.legend(fontsize=8, loc="lower left")
        right.legend(fontsize=8, loc="lower right")
    for ax in axes[0]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(min(epochs) - 0.3, max(epochs) + 0.3)
        if best_epoch:
            ax.axvline(best_epoch, color="gray", ls=":", lw=1.5)
            ax.annotate(f"best epoch {best_epoch} ", (best_epoch, 0.98), xycoords=("data", "axes fraction"),
                        ha="right" if best_epoch == max(epochs) else "center", va="top", fontsize=8,
                        color="gray")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _get(row: dict, label: str, name: str):
    value = row.get("valid", {}).get(label, {}).get(name)
    return float("nan") if value is None else value
