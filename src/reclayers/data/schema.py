"""Declarative description of a data set: features, their preprocessing, and labels.

A :class:`Schema` lists

* :class:`DenseFeature` — one float per row (missing-value fill, optional ``log1p``, optional
  quantile bucketisation, optional standardisation);
* :class:`CategoricalFeature` — one id per row, encoded by a fitted vocabulary (with a minimum
  frequency and an out-of-vocabulary bucket) or by hashing into ``num_buckets``; features that
  name the same ``table`` share one vocabulary (and, in a model, one embedding table);
* :class:`SequenceFeature` — a variable-length list of ids per row (behaviour history, or a
  multi-valued field such as genres), padded/truncated to ``max_len`` with an explicit mask; it
  shares the table of the target it is compared with through ``table``;
* :class:`Label` — one or several binary (or real) targets.

Encoded ids follow one convention everywhere: ``0`` is padding, ``1`` is the out-of-vocabulary
bucket, known values get ``2 .. num_buckets - 1``. Hashed features map into ``1 .. num_buckets - 1``
(``0`` stays padding). ``num_buckets`` (the embedding table size) is therefore known once the
preprocessor is fitted (vocabulary) or given up front (hashing).

The schema is plain data: :meth:`Schema.to_json` / :meth:`Schema.from_json` (and YAML when PyYAML
is installed) record exactly what a run used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

__all__ = [
    "PAD_ID",
    "OOV_ID",
    "FIRST_ID",
    "DenseFeature",
    "CategoricalFeature",
    "SequenceFeature",
    "Label",
    "Schema",
]

#: Id of padding positions (sequences) — never a real value.
PAD_ID = 0
#: Id of values unseen when the vocabulary was fitted, or rarer than ``min_freq``.
OOV_ID = 1
#: First id given to a vocabulary value.
FIRST_ID = 2

_FILLS = ("mean", "median", "zero", "constant")
_ENCODINGS = ("vocab", "hash")


def _err(owner: str, arg: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{owner}: {arg} must be {expected}; got {value!r}")


def _check_name(owner: str, name: Any) -> None:
    """Raise unless ``name`` (a feature's or label's output key) is a non-empty string."""
    if not isinstance(name, str) or not name:
        raise _err(owner, "name", "a non-empty string", name)


def _check_min_int(owner: str, arg: str, value: Any, minimum: int) -> None:
    """Raise unless ``value`` is an ``int >= minimum``."""
    if not isinstance(value, int) or value < minimum:
        raise _err(owner, arg, f"an int >= {minimum}", value)


@dataclass(frozen=True)
class DenseFeature:
    """A numeric feature.

    Args:
        name: output key (and, by default, the raw column read).
        column: raw column name when it differs from ``name``.
        fill: missing-value fill: ``"mean"``, ``"median"``, ``"zero"`` or ``"constant"``
            (uses ``fill_value``); statistics are fitted on the training split.
        fill_value: the value used when ``fill="constant"``.
        log: apply ``sign(x) * log1p(|x|)`` after filling (heavy-tailed counts such as Criteo's).
        num_bins: if > 0, quantile-bucketise into ``num_bins`` buckets; the feature is then
            emitted as an int id in ``1 .. num_bins`` (``0`` is never used) instead of a float.
        standardize: subtract the fitted mean and divide by the fitted standard deviation (after
            ``log``); ignored when bucketising.

    Example:
        >>> f = DenseFeature("I1", fill="median", log=True)
        >>> f.kind, f.source, f.fill
        ('dense', 'I1', 'median')
    """

    name: str
    column: str | None = None
    fill: str = "mean"
    fill_value: float = 0.0
    log: bool = False
    num_bins: int = 0
    standardize: bool = False
    kind: str = field(default="dense", init=False)

    def __post_init__(self):
        _check_name("DenseFeature", self.name)
        if self.fill not in _FILLS:
            raise _err("DenseFeature", "fill", f"one of {_FILLS}", self.fill)
        if not isinstance(self.num_bins, int) or self.num_bins < 0 or self.num_bins == 1:
            raise _err("DenseFeature", "num_bins", "0 (no bucketising) or an int >= 2", self.num_bins)

    @property
    def source(self) -> str:
        return self.column or self.name


@dataclass(frozen=True)
class CategoricalFeature:
    """A single-valued categorical feature.

    Args:
        name: output key (and, by default, the raw column read).
        column: raw column name when it differs from ``name``.
        encoding: ``"vocab"`` (fitted vocabulary) or ``"hash"`` (stable CRC32 hash into
            ``num_buckets``).
        num_buckets: table size; required for ``"hash"``, filled in by fitting for
            ``"vocab"`` (``2 + number of kept values``); with ``"vocab"`` a given value caps the
            vocabulary to the ``num_buckets - 2`` most frequent values.
        min_freq: ``"vocab"`` keeps values seen at least this often in the training split.
        embedding_dim: suggested embedding width for models (not used by the data pipeline).
        table: name of the vocabulary/embedding table; features with the same ``table`` share it
            (e.g. ``item`` and the history ``hist_item``). Defaults to ``name``.

    Example:
        >>> f = CategoricalFeature("hist_item_id", column="item", table="item")
        >>> f.kind, f.source, f.table_name, f.encoding
        ('categorical', 'item', 'item', 'vocab')
    """

    name: str
    column: str | None = None
    encoding: str = "vocab"
    num_buckets: int = 0
    min_freq: int = 1
    embedding_dim: int = 8
    table: str | None = None
    kind: str = field(default="categorical", init=False)

    def __post_init__(self):
        _check_name("CategoricalFeature", self.name)
        if self.encoding not in _ENCODINGS:
            raise _err("CategoricalFeature", "encoding", f"one of {_ENCODINGS}", self.encoding)
        if self.encoding == "hash" and (not isinstance(self.num_buckets, int)
                                                       or self.num_buckets < 2):
            raise _err("CategoricalFeature", "num_buckets", f"an int >= 2 for encoding={self.encoding!r}",
                       self.num_buckets)
        _check_min_int("CategoricalFeature", "num_buckets", self.num_buckets, 0)
        _check_min_int("CategoricalFeature", "min_freq", self.min_freq, 1)
        _check_min_int("CategoricalFeature", "embedding_dim", self.embedding_dim, 1)

    @property
    def source(self) -> str:
        return self.column or self.name

    @property
    def table_name(self) -> str:
        return self.table or self.name


@dataclass(frozen=True)
class SequenceFeature(CategoricalFeature):
    """A variable-length list of categorical ids per row, padded/truncated to ``max_len``.

    Args:
        name, column, encoding, num_buckets, min_freq, embedding_dim, table: as in
            :class:`CategoricalFeature` (the vocabulary counts every item of every row).
        max_len: length after padding (with ``0``) / truncation.
        truncate: ``"pre"`` keeps the last ``max_len`` items (the most recent behaviours, the
            default) and ``"post"`` the first ones.
        pad: ``"post"`` puts the items first then padding (default), ``"pre"`` right-aligns them.
        separator: separator of the items inside one raw field (readers that get lists already
            split ignore it).

    The batch holds ``name`` (``int32 [batch, max_len]``) and ``name + "_mask"``
    (``bool [batch, max_len]``, true on real items).

    Example:
        >>> f = SequenceFeature("hist_item", table="item", max_len=50)
        >>> f.kind, f.table_name, f.max_len, f.truncate
        ('sequence', 'item', 50, 'pre')
    """

    max_len: int = 20
    truncate: str = "pre"
    pad: str = "post"
    separator: str = " "
    kind: str = field(default="sequence", init=False)

    def __post_init__(self):
        super().__post_init__()
        _check_min_int("SequenceFeature", "max_len", self.max_len, 1)
        if self.truncate not in ("pre", "post"):
            raise _err("SequenceFeature", "truncate", "'pre' or 'post'", self.truncate)
        if self.pad not in ("pre", "post"):
            raise _err("SequenceFeature", "pad", "'pre' or 'post'", self.pad)


@dataclass(frozen=True)
class Label:
    """A training target. ``name`` is the output key; ``column`` the raw column when different.

    Args:
        name: the output key (the model output of the same name predicts it).
        column: the raw column read, when it differs from ``name``.

    Example:
        >>> Label("click", column="is_click").source
        'is_click'
    """

    name: str
    column: str | None = None
    kind: str = field(default="label", init=False)

    def __post_init__(self):
        _check_name("Label", self.name)

    @property
    def source(self) -> str:
        return self.column or self.name


_KINDS = {"dense": DenseFeature, "categorical": CategoricalFeature, "sequence": SequenceFeature,
          "label": Label}


def _to_dict(obj) -> dict:
    d = asdict(obj)
    defaults = {f.name: f.default for f in fields(obj) if f.name not in ("name", "kind")}
    return {"kind": d["kind"], "name": d["name"],
            **{k: v for k, v in d.items() if k not in ("kind", "name") and defaults.get(k) != v}}


def _from_dict(d: dict):
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in _KINDS:
        raise ValueError(f"Schema: feature kind must be one of {tuple(_KINDS)}; got {kind!r}")
    return _KINDS[kind](**d)


@dataclass(frozen=True)
class Schema:
    """Features and labels of a data set (see the module docstring).

    Args:
        features: the input features, in the order batches list them.
        labels: one or several targets.
        name: a free-form name (e.g. ``"criteo"``).
        time_column: raw column usable for a time split (kept as the ``"_time"`` key when set).

    Example:
        >>> s = Schema(features=(DenseFeature("price"), CategoricalFeature("item", num_buckets=10)),
        ...            labels=(Label("click"),), name="toy")
        >>> [f.name for f in s.categorical], s.label_names, s.batch_spec()["item"]
        (['item'], ('click',), ((), 'int32'))
        >>> Schema.from_json(s.to_json()) == s
        True
    """

    features: tuple = ()
    labels: tuple = ()
    name: str = ""
    time_column: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "labels", tuple(self.labels))
        names = [f.name for f in self.features] + [lab.name for lab in self.labels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise _err("Schema", "feature and label names", "unique", dup)
        for f in self.features:
            if not isinstance(f, DenseFeature | CategoricalFeature):
                raise _err("Schema", "features", "DenseFeature/CategoricalFeature/SequenceFeature", f)
        for lab in self.labels:
            if not isinstance(lab, Label):
                raise _err("Schema", "labels", "Label instances", lab)
        tables: dict[str, tuple] = {}
        for f in self.categorical + self.sequence:
            key = (f.encoding, f.num_buckets if f.encoding != "vocab" else None)
            if tables.setdefault(f.table_name, key) != key:
                raise _err("Schema", f"features sharing table {f.table_name!r}",
                           "the same encoding and num_buckets", f.name)

    # --- views -------------------------------------------------------------------------------
    @property
    def dense(self) -> tuple:
        return tuple(f for f in self.features if f.kind == "dense")

    @property
    def categorical(self) -> tuple:
        return tuple(f for f in self.features if f.kind == "categorical")

    @property
    def sequence(self) -> tuple:
        return tuple(f for f in self.features if f.kind == "sequence")

    @property
    def label_names(self) -> tuple:
        return tuple(lab.name for lab in self.labels)

    def __getitem__(self, name: str):
        for f in self.features + self.labels:
            if f.name == name:
                return f
        raise KeyError(name)

    def tables(self) -> dict:
        """``{table: [feature names]}`` of every categorical and sequence feature."""
        out: dict[str, list] = {}
        for f in self.features:
            if f.kind != "dense":
                out.setdefault(f.table_name, []).append(f.name)
        return out

    def replace_feature(self, name: str, **changes) -> Schema:
        """A copy with feature/label ``name`` updated (e.g. a fitted ``num_buckets``)."""
        feats = tuple(replace(f, **changes) if f.name == name else f for f in self.features)
        labs = tuple(replace(f, **changes) if f.name == name else f for f in self.labels)
        return replace(self, features=feats, labels=labs)

    def batch_spec(self) -> dict:
        """``{key: (shape_without_batch, dtype)}`` of the feature dict a batch carries."""
        spec = {}
        for f in self.features:
            if f.kind == "dense":
                spec[f.name] = ((), "int32" if f.num_bins else "float32")
            elif f.kind == "categorical":
                spec[f.name] = ((), "int32")
            else:
                spec[f.name] = ((f.max_len,), "int32")
                spec[f.name + "_mask"] = ((f.max_len,), "bool")
        return spec

    # --- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"name": self.name, "time_column": self.time_column,
                "features": [_to_dict(f) for f in self.features],
                "labels": [_to_dict(lab) for lab in self.labels]}

    @classmethod
    def from_dict(cls, d: dict) -> Schema:
        return cls(features=tuple(_from_dict(f) for f in d.get("features", ())),
                   labels=tuple(_from_dict({"kind": "label", **lab}) for lab in d.get("labels", ())),
                   name=d.get("name", ""), time_column=d.get("time_column"))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Schema:
        return cls.from_dict(json.loads(text))

    def save(self, path) -> None:
        """Write to ``path``: YAML when it ends in ``.yaml``/``.yml`` (needs PyYAML), else JSON."""
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            path.write_text(self.to_json())

    @classmethod
    def load(cls, path) -> Schema:
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            return cls.from_dict(yaml.safe_load(path.read_text()))
        return cls.from_json(path.read_text())
