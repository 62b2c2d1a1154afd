"""Synthetic Criteo-shaped click data with a known ground truth (the demo's default data set).

Rows have ``n_dense`` count features ``I1..`` (log-normal integers, some missing),
``n_categorical`` fields ``C1..`` whose ids follow a Zipf law, optionally a behaviour history
``hist_C1`` (ids of field ``C1``'s table, variable length) and a second task. The click
probability comes from a hidden logistic model

    logit = b + Σ_i β_i·log1p(I_i) + Σ_j w_j[c_j]                          (first order)
              + s2 Σ_{(a,b) ∈ pairs} ⟨v_a[c_a], v_b[c_b]⟩                    (planted pairs)
              + s3 Σ_{(a,b,c) ∈ triples} Σ_r u_a[c_a]_r u_b[c_b]_r u_c[c_c]_r  (planted triples)
              + s_seq · mean_t ⟨q[h_t], q[c_1]⟩                             (history–target affinity)

with ``b`` solved so that the mean click rate is ``ctr``. With ``second_task=True`` a purchase
happens after a click with probability ``σ(b' + Σ_j w'_j[c_j] + s2' ⟨v_a, v_b⟩)`` (ESMM-style:
``P(purchase) = P(click)·P(purchase | click)``). Since every row's true probability is known,
:func:`make_synthetic` reports the **Bayes-optimal AUC and logloss** of each split: no model can
do better in expectation, and a model that reaches them has learnt the truth.

Everything is a function of ``seed``: the ground truth from ``seed``, the rows of chunk ``k``
from ``(seed, k)``, so a file written in chunks (:func:`write_criteo`) is reproducible too.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from reclayers.data.dataset import encode, split_indices
from reclayers.data.preprocess import Preprocessor
from reclayers.data.readers import take_chunk
from reclayers.data.schema import CategoricalFeature, DenseFeature, Label, Schema, SequenceFeature
from reclayers.metrics import auc, logloss  # re-exported: reclayers.data.auc / logloss

__all__ = ["GroundTruth", "SyntheticData", "make_synthetic", "write_criteo", "auc", "logloss"]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class GroundTruth:
    """The hidden model's parameters (see the module docstring)."""

    vocab_sizes: list
    zipf: float
    dense_beta: np.ndarray
    dense_mu: np.ndarray
    first: list
    pairs: list
    pair_vecs: list
    triples: list
    triple_vecs: list
    seq_vecs: np.ndarray | None
    s2: float
    s3: float
    s_seq: float
    bias: float = 0.0
    cvr_first: list = field(default_factory=list)
    cvr_bias: float = 0.0
    missing_rate: float = 0.0
    seq_len: int = 0
    zipf_cdf: list = field(default_factory=list)

    def logit_parts(self, dense_raw, cats, hist, hist_len) -> tuple:
        """``(click logit without bias, purchase-given-click logit without bias)``."""
        n = cats.shape[0]
        z = np.log1p(np.nan_to_num(dense_raw, nan=0.0))
        logit = (z - self.dense_mu) @ self.dense_beta
        for j, w in enumerate(self.first):
            logit += w[cats[:, j]]
        for (a, b), (va, vb) in zip(self.pairs, self.pair_vecs):
            logit += self.s2 * np.einsum("nr,nr->n", va[cats[:, a]], vb[cats[:, b]])
        for (a, b, c), (ua, ub, uc) in zip(self.triples, self.triple_vecs):
            logit += self.s3 * np.einsum("nr,nr,nr->n", ua[cats[:, a]], ub[cats[:, b]], uc[cats[:, c]])
        if self.seq_vecs is not None and hist is not None:
            mask = np.arange(hist.shape[1])[None, :] < hist_len[:, None]
            tgt = self.seq_vecs[cats[:, 0]]
            aff = np.einsum("ntr,nr->nt", self.seq_vecs[hist], tgt)
            logit += self.s_seq * (aff * mask).sum(1) / np.maximum(hist_len, 1)
        cvr = np.zeros(n)
        for j, w in enumerate(self.cvr_first):
            cvr += w[cats[:, j]]
        if self.cvr_first and self.pairs:
            (a, b), (va, vb) = self.pairs[0], self.pair_vecs[0]
            cvr += self.s2 * np.einsum("nr,nr->n", va[cats[:, a]], vb[cats[:, b]])
        return logit, cvr


def _zipf_ids(rng, cdf: np.ndarray, n: int) -> np.ndarray:
    return np.searchsorted(cdf, rng.random(n), side="right").clip(0, cdf.size - 1)


def _truth(seed, n_dense, vocab_sizes, zipf, n_pairs, n_triples, seq_len, second_task, rank,
           strength, missing_rate) -> GroundTruth:
    rng = np.random.default_rng([seed, 1_000_003])
    n_cat = len(vocab_sizes)
    cdfs = []
    for v in vocab_sizes:
        p = 1.0 / np.arange(1, v + 1) ** zipf
        cdfs.append(np.cumsum(p / p.sum()))
    all_pairs = list(itertools.combinations(range(n_cat), 2))
    pairs = [all_pairs[i] for i in rng.permutation(len(all_pairs))[:n_pairs]] if n_cat >= 2 else []
    all_triples = list(itertools.combinations(range(n_cat), 3))
    triples = [all_triples[i] for i in rng.permutation(len(all_triples))[:n_triples]] if n_cat >= 3 else []

    def vec(v):
        return rng.normal(0, 1 / np.sqrt(rank), (v, rank)) * np.sqrt(strength)

    return GroundTruth(
        vocab_sizes=list(vocab_sizes), zipf=zipf,
        dense_beta=rng.normal(0, 0.3, n_dense), dense_mu=np.full(n_dense, 1.5),
        first=[rng.normal(0, 0.5, v) for v in vocab_sizes],
        pairs=pairs, pair_vecs=[(vec(vocab_sizes[a]), vec(vocab_sizes[b])) for a, b in pairs],
        triples=triples,
        triple_vecs=[tuple(rng.normal(0, 1 / rank ** (1 / 3), (vocab_sizes[i], rank)) * strength ** (1 / 3)
                           for i in t) for t in triples],
        seq_vecs=vec(vocab_sizes[0]) if seq_len else None,
        s2=1.0, s3=1.0, s_seq=1.5 if seq_len else 0.0,
        cvr_first=[rng.normal(0, 0.5, v) for v in vocab_sizes] if second_task else [],
        missing_rate=missing_rate, seq_len=seq_len, zipf_cdf=cdfs)


def _rows(truth: GroundTruth, n: int, seed, chunk: int, n_dense: int) -> dict:
    """Raw columns + true probabilities of ``n`` rows (chunk ``chunk``)."""
    rng = np.random.default_rng([seed, chunk])
    dense = np.floor(rng.lognormal(1.0, 1.2, (n, n_dense)))
    if truth.missing_rate:
        dense[rng.random((n, n_dense)) < truth.missing_rate] = np.nan
    cats = np.stack([_zipf_ids(rng, cdf, n) for cdf in truth.zipf_cdf], 1) if truth.zipf_cdf \
        else np.zeros((n, 0), np.int64)
    hist = hist_len = None
    if truth.seq_len:
        hist_len = rng.integers(0, truth.seq_len + 1, n)
        hist = _zipf_ids(rng, truth.zipf_cdf[0], n * truth.seq_len).reshape(n, truth.seq_len)
    logit, cvr = truth.logit_parts(dense, cats, hist, hist_len)
    p = _sigmoid(logit + truth.bias)
    out = {"dense": dense, "cats": cats, "hist": hist, "hist_len": hist_len, "p_click": p}
    out["click"] = (rng.random(n) < p).astype(np.float32)
    if truth.cvr_first:
        pc_ = _sigmoid(cvr + truth.cvr_bias)
        out["p_purchase"] = p * pc_
        out["purchase"] = (out["click"] * (rng.random(n) < pc_)).astype(np.float32)
    return out


def _solve_bias(logit: np.ndarray, rate: float) -> float:
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if _sigmoid(logit + mid).mean() < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


_TOKENS: dict = {}


def _token(field: int, ids: np.ndarray, vocab: int) -> pa.Array:
    """Criteo-like 8-hex-digit tokens (distinct per field) of ids ``< vocab``, as a pyarrow array."""
    key = (field, vocab)
    if key not in _TOKENS:
        if len(_TOKENS) > 64:
            _TOKENS.clear()
        codes = (np.arange(vocab, dtype=np.int64) * 2654435761 + field * 40503) % (1 << 32)
        _TOKENS[key] = pa.array(np.char.mod("%08x", codes))
    return _TOKENS[key].take(pa.array(np.asarray(ids, np.int64)))


@dataclass
class SyntheticData:
    """Result of :func:`make_synthetic`.

    ``report()`` formats the Bayes-optimal AUC and logloss of every split.

    Attributes:
        schema: the fitted schema (``num_buckets`` set).
        preprocessor: fitted on the training split.
        splits: ``{"train"|"valid"|"test": Arrays}`` ready for ``keras_dataset``.
        probabilities: ``{split: {label: true probability per row}}``.
        bayes: ``{split: {label: {"auc": ..., "logloss": ...}}}`` of the true probabilities.
        truth: the hidden :class:`GroundTruth`.
        raw: every row before preprocessing, ``{column: values}`` as a reader yields them.
        indices: ``{split: row positions in raw}`` (``raw_split(name)`` gives a split's raw rows,
            ``encode_with(preprocessor)`` every split encoded with another preprocessor).
        bayes_by_day: with ``days > 1``: ``{day: {label: {"auc", "logloss", "rows", "new_ids"}}}``.

    Example:
        >>> ds = make_synthetic(n_rows=500, seed=0)
        >>> ds.schema.label_names, len(ds.probabilities["train"]["click"])
        (('click',), 400)
        >>> print(ds.report().splitlines()[0])      # doctest: +ELLIPSIS
        train click: Bayes-optimal AUC 0.9..., logloss ... (n=400, positive rate ...)
    """

    schema: Schema
    preprocessor: Preprocessor
    splits: dict
    probabilities: dict
    bayes: dict
    truth: GroundTruth
    raw: dict | None = field(default=None, repr=False)  # every row before preprocessing
    indices: dict = field(default_factory=dict, repr=False)  # split -> row positions in ``raw``
    bayes_by_day: dict = field(default_factory=dict)  # day -> label -> Bayes-optimal metrics

    def raw_split(self, name: str) -> dict:
        """The raw rows of split ``name`` (to fit or grow another preprocessor on)."""
        return take_chunk(self.raw, self.indices[name])

    def encode_with(self, preprocessor: Preprocessor) -> dict:
        """Every split encoded with another fitted ``preprocessor`` (e.g. a grown one)."""
        return {name: encode(take_chunk(self.raw, idx), preprocessor) for name, idx in self.indices.items()}

    def report(self) -> str:
        lines = []
        for split, per in self.bayes.items():
            for lab, m in per.items():
                lines.append(f"{split:5s} {lab}: Bayes-optimal AUC {m['auc']:.4f}, "
                             f"logloss {m['logloss']:.4f} "
                             f"(n={len(self.splits[split])}, positive rate {m['rate']:.3f})")
        for day, per in self.bayes_by_day.items():
            for lab, m in per.items():
                lines.append(f"day {day} {lab}: Bayes-optimal AUC {m['auc']:.4f}, logloss {m['logloss']:.4f} "
                             f"(n={m['rows']}, {m['new_ids']} new ids that day)")
        return "\n".join(lines)


def _schema(n_dense, vocab_sizes, seq_len, second_task, embedding_dim, time_column=None) -> Schema:
    feats = [DenseFeature(f"I{i + 1}", fill="zero", log=True) for i in range(n_dense)]
    feats += [CategoricalFeature(f"C{j + 1}", embedding_dim=embedding_dim) for j in range(len(vocab_sizes))]
    if seq_len:
        feats.append(SequenceFeature("hist_C1", table="C1", max_len=seq_len, embedding_dim=embedding_dim))
    labels = (Label("click"), Label("purchase")) if second_task else (Label("click"),)
    return Schema(features=tuple(feats), labels=labels, name="synthetic", time_column=time_column)


def _raw_chunk(rows: dict, n_dense: int, vocab_sizes: list, second_task: bool) -> dict:
    n_cat = len(vocab_sizes)
    raw = {f"I{i + 1}": rows["dense"][:, i] for i in range(n_dense)}
    for j in range(n_cat):
        raw[f"C{j + 1}"] = _token(j, rows["cats"][:, j], vocab_sizes[j])
    if rows["hist"] is not None:
        L = rows["hist"].shape[1]
        mask = np.arange(L)[None, :] < rows["hist_len"][:, None]
        offsets = np.concatenate([[0], np.cumsum(rows["hist_len"])]).astype(np.int32)
        items = _token(0, rows["hist"][mask], vocab_sizes[0])
        raw["hist_C1"] = pa.ListArray.from_arrays(pa.array(offsets), items)
    raw["click"] = rows["click"]
    if second_task:
        raw["purchase"] = rows["purchase"]
    return raw


def _setup(n_dense, n_categorical, vocab_size, zipf, n_pairs, n_triples, sequence_length, second_task,
           rank, interaction_strength, missing_rate, ctr, cvr, seed):
    if isinstance(vocab_size, list | tuple):
        vocab_sizes = list(vocab_size)
    else:
        vocab_sizes = [int(vocab_size)] * n_categorical
    if len(vocab_sizes) != n_categorical:
        raise ValueError(f"make_synthetic: vocab_size must be an int or {n_categorical} ints; "
                         f"got {vocab_size!r}")
    if n_categorical < 1 or any(v < 1 for v in vocab_sizes):
        raise ValueError(f"make_synthetic: n_categorical and vocab sizes must be >= 1; got {n_categorical}, "
                         f"{vocab_sizes}")
    if not 0 < ctr < 1:
        raise ValueError(f"make_synthetic: ctr must be in (0, 1); got {ctr}")
    n_pairs = max(1, n_categorical // 2) if n_pairs is None else n_pairs
    n_triples = (1 if n_categorical >= 3 else 0) if n_triples is None else n_triples
    truth = _truth(seed, n_dense, vocab_sizes, zipf, n_pairs, n_triples, sequence_length, second_task,
                   rank, interaction_strength, missing_rate)
    calib = _rows(truth, 20000, seed, 1_000_000_007, n_dense)  # calibration rows, never emitted
    logit, cvr_logit = truth.logit_parts(calib["dense"], calib["cats"], calib["hist"], calib["hist_len"])
    truth.bias = _solve_bias(logit, ctr)
    if second_task:
        truth.cvr_bias = _solve_bias(cvr_logit, cvr)
    return truth, vocab_sizes


def _day_cdfs(seed: int, base_sizes: list, days: int, new_ids: float, drift: float, zipf: float) -> tuple:
    """Per day and field, the id distribution over the field's whole id universe: ``base`` ids
    exist on day 1, ``ceil(new_ids · base)`` more are born every later day; an id's weight is a
    Zipf weight of its popularity slot (the base ids keep their order, a new id draws a slot),
    times ``exp(-drift · age in days)``, and 0 before its birth. Returns ``(universe sizes,
    cdfs[day][field], birth[field])``."""
    rng = np.random.default_rng([seed, 2_000_003])
    sizes, births, slots = [], [], []
    for v in base_sizes:
        born = int(np.ceil(new_ids * v))
        u = v + born * (days - 1)
        birth = np.concatenate([np.zeros(v, np.int64), 1 + np.arange(u - v) // max(born, 1)])
        slot = np.concatenate([np.arange(1, v + 1), rng.integers(1, v + 1, u - v)])
        sizes.append(u)
        births.append(birth)
        slots.append(slot)
    cdfs = []
    for d in range(days):
        per = []
        for birth, slot in zip(births, slots):
            w = np.where(birth <= d, slot ** -zipf * np.exp(-drift * (d - birth)), 0.0)
            per.append(np.cumsum(w / w.sum()))
        cdfs.append(per)
    return sizes, cdfs, births


def _long_tail(raw: dict, day_of: np.ndarray, n_categorical: int, tail: float, seed: int) -> None:
    """Replaces a ``tail`` fraction of each categorical column's values by rare ids, in place
    (see :func:`make_synthetic`); drawn per day and field, so one day alone gets the same ids."""
    if not 0 < tail < 1:
        raise ValueError(f"make_synthetic: tail must be in [0, 1); got {tail!r}")
    for j in range(n_categorical):
        col = np.asarray(raw[f"C{j + 1}"].to_numpy(zero_copy_only=False), dtype=object)
        for d in np.unique(day_of):
            at = np.flatnonzero(day_of == d)
            rng = np.random.default_rng([seed, 3_000_017, int(d), j])
            hit = at[rng.random(at.size) < tail]
            pool = max(1, int(tail * at.size / 1.5))
            k = rng.integers(0, pool, hit.size)
            col[hit] = np.char.add(f"r{j + 1}-{int(d)}-", k.astype(str)).astype(object)
        raw[f"C{j + 1}"] = pa.array(col, pa.string())


def make_synthetic(n_rows: int = 20000, n_dense: int = 4, n_categorical: int = 8, vocab_size=200,
                   zipf: float = 1.1, n_pairs: int | None = None, n_triples: int | None = None,
                   sequence_length: int = 0, second_task: bool = False, rank: int = 4,
                   interaction_strength: float = 2.0, missing_rate: float = 0.05, ctr: float = 0.25,
                   cvr: float = 0.2, ratios=(0.8, 0.1, 0.1), embedding_dim: int = 8,
                   seed: int = 0, days: int = 1, new_ids: float = 0.25, drift: float = 0.3,
                   day: int | None = None, tail: float = 0.0) -> SyntheticData:
    """Generate, split, preprocess and score a synthetic click data set (see the module docstring).

    Args:
        n_rows: total rows over all splits.
        n_dense, n_categorical: numbers of count and categorical fields.
        vocab_size: ids per categorical field (an int, or one per field); ids are Zipf(``zipf``).
        n_pairs, n_triples: planted second-/third-order interactions (defaults:
            ``n_categorical // 2`` pairs and one triple); 0 gives a purely additive (logistic) truth.
        sequence_length: if > 0, add ``hist_C1`` (up to that many past ``C1`` ids, shares the ``C1``
            table) and a history-target affinity term.
        second_task: add a ``purchase`` label (after a click, with a conversion rate ≈ ``cvr``).
        rank: width of the planted interaction vectors; ``interaction_strength`` scales them.
        missing_rate: fraction of dense values missing (empty in files, ``NaN`` raw).
        ctr: target mean click rate (the bias is solved for it).
        ratios: split ratios (seeded random split), named ``train``/``valid``/``test`` (three),
            ``train``/``test`` (two) or ``split0..`` (more).
        embedding_dim: the ``embedding_dim`` written into the schema's categorical features.
        seed: everything is a function of it.
        days: with ``days > 1`` the ``n_rows`` rows are ``days`` days of logs (``n_rows // days``
            each, in day order, a ``day`` time column ``1..days``): every day after the first
            brings ``ceil(new_ids · vocab_size)`` new ids per field and popularity drifts towards
            the young ids (weights decay by ``exp(-drift)`` per day of age). The hidden truth
            covers every id of every day; ``bayes_by_day`` holds each day's Bayes-optimal AUC
            and logloss over its rows.
        new_ids: ids born per field and day, as a fraction of ``vocab_size``.
        drift: popularity decay per day of an id's age.
        day: only this day's rows (``1..days``; same ids and truth as in the whole series), split
            by ``ratios`` — one day of a daily-retraining run.
        tail: a long tail of rare ids: this fraction of every categorical value is replaced by
            an id of the day's tail (``r<field>-<day>-<k>``), drawn uniformly from
            ``tail · rows of the day / 1.5`` ids per field, so a tail id is seen about 1.5 times
            (most once or twice) and never again on another day — the one-off users and items of
            real logs. Labels still follow the hidden id (the Bayes-optimal AUC knows it; a model
            cannot), so a tail id carries no signal a model could learn from its few rows.

    Example:
        >>> ds = make_synthetic(n_rows=1000, seed=0)
        >>> {k: len(v) for k, v in ds.splits.items()}
        {'train': 800, 'valid': 100, 'test': 100}
        >>> 0.5 < ds.bayes["test"]["click"]["auc"] <= 1.0
        True
    """
    if not isinstance(days, int | np.integer) or days < 1:
        raise ValueError(f"make_synthetic: days must be an int >= 1; got {days!r}")
    if day is not None and not 1 <= day <= days:
        raise ValueError(f"make_synthetic: day must be in 1..{days}; got {day!r}")
    if days == 1:
        truth, vocab_sizes = _setup(n_dense, n_categorical, vocab_size, zipf, n_pairs, n_triples,
                                    sequence_length, second_task, rank, interaction_strength, missing_rate,
                                    ctr, cvr, seed)
        rows = _rows(truth, n_rows, seed, 0, n_dense)
        schema = _schema(n_dense, vocab_sizes, sequence_length, second_task, embedding_dim)
        raw = _raw_chunk(rows, n_dense, vocab_sizes, second_task)
        by_day: dict = {}
    else:
        base = vocab_size if isinstance(vocab_size, list | tuple) else [int(vocab_size)] * n_categorical
        sizes, cdfs, births = _day_cdfs(seed, list(base), days, new_ids, drift, zipf)
        truth, vocab_sizes = _setup(n_dense, n_categorical, sizes, zipf, n_pairs, n_triples,
                                    sequence_length, second_task, rank, interaction_strength, missing_rate,
                                    ctr, cvr, seed)
        schema = _schema(n_dense, vocab_sizes, sequence_length, second_task, embedding_dim, "day")
        per_day = max(n_rows // days, 1)
        parts_rows, by_day = [], {}
        for d in range(days) if day is None else [day - 1]:
            r = _rows(replace(truth, zipf_cdf=cdfs[d]), per_day, seed, d, n_dense)
            r["day"] = np.full(per_day, d + 1, np.int64)
            parts_rows.append(r)
            first = sum(int((births[j] == d).sum()) for j in range(n_categorical))
            by_day[d + 1] = {k: {"auc": auc(r[k], r["p_" + k]), "logloss": logloss(r[k], r["p_" + k]),
                                 "rows": per_day, "new_ids": first}
                             for k in (("click", "purchase") if second_task else ("click",))}
        rows = {k: None if parts_rows[0][k] is None else np.concatenate([p[k] for p in parts_rows])
                for k in parts_rows[0]}
        n_rows = len(rows["click"])
        raw = _raw_chunk(rows, n_dense, vocab_sizes, second_task)
        raw["day"] = rows["day"]
        raw["_time"] = rows["day"]
    if tail:
        _long_tail(raw, rows["day"] if days > 1 else np.ones(n_rows, np.int64), n_categorical, tail, seed)
    names = {1: ["train"], 2: ["train", "test"], 3: ["train", "valid", "test"]}.get(
        len(ratios), [f"split{i}" for i in range(len(ratios))])
    parts = split_indices(n_rows, ratios, seed)
    pre = Preprocessor(schema, seed=seed).fit([take_chunk(raw, parts[0])])
    probs = {"click": rows["p_click"]}
    if second_task:
        probs["purchase"] = rows["p_purchase"]
    splits, probabilities, bayes, indices = {}, {}, {}, {}
    for name, idx in zip(names, parts):
        indices[name] = idx
        splits[name] = encode(take_chunk(raw, idx), pre)
        probabilities[name] = {k: v[idx] for k, v in probs.items()}
        bayes[name] = {}
        for k, p in probabilities[name].items():
            y = splits[name].labels[k]
            bayes[name][k] = {"auc": auc(y, p), "logloss": logloss(y, p), "rate": float(y.mean())}
    return SyntheticData(pre.output_schema(), pre, splits, probabilities, bayes, truth, raw, indices, by_day)


_FILE_BLOCK = 1 << 16


def write_criteo(path, n_rows: int, n_dense: int = 13, n_categorical: int = 26, vocab_size=100_000,
                 zipf: float = 1.1, seed: int = 0, **kwargs) -> dict:
    """Write Criteo-shaped synthetic rows as a Kaggle-layout TSV (``label``, ``n_dense`` integer and
    ``n_categorical`` hex columns, no header; missing dense values empty), generated and written in
    blocks of 65,536 rows (constant memory; block ``k`` is drawn from ``(seed, k)``, so the first
    ``n`` rows do not depend on ``n_rows``). Other keyword arguments are those of
    :func:`make_synthetic` (``n_pairs``, ``n_triples``, ``rank``, ``interaction_strength``,
    ``missing_rate``, ``ctr``). Returns ``{"rows": n, "bytes": size, "positive_rate": r}``. With the
    default 13/26 fields the file reads back with :func:`reclayers.data.readers.criteo`.

    Args:
        path: the output file.
        n_rows: rows to write.
        n_dense: integer columns.
        n_categorical: hexadecimal id columns.
        vocab_size: ids per categorical column (Zipf-distributed).
        zipf: Zipf exponent of the ids.
        seed: seed of everything.
        **kwargs: the planted-truth options of :func:`make_synthetic`.

    Example:
        >>> info = write_criteo("train.txt", n_rows=100, vocab_size=50)
        >>> info["rows"], len(open("train.txt").readline().split("\\t"))
        (100, 40)
    """
    import pyarrow.csv as pacsv

    truth, _ = _setup(n_dense, n_categorical, vocab_size, zipf, kwargs.pop("n_pairs", None),
                      kwargs.pop("n_triples", None), 0, False, kwargs.pop("rank", 4),
                      kwargs.pop("interaction_strength", 2.0), kwargs.pop("missing_rate", 0.05),
                      kwargs.pop("ctr", 0.25), 0.2, seed)
    if kwargs:
        raise ValueError(f"write_criteo: unknown arguments {sorted(kwargs)}")
    path = Path(path)
    positives = 0
    opts = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    writer = None
    try:
        for k, start in enumerate(range(0, n_rows, _FILE_BLOCK)):
            n = min(_FILE_BLOCK, n_rows - start)
            full = _rows(truth, _FILE_BLOCK, seed, k, n_dense)  # always a whole block: prefix-stable
            rows = {key: None if v is None else v[:n] for key, v in full.items()}
            positives += int(rows["click"].sum())
            cols = {"label": pa.array(rows["click"].astype(np.int8))}
            for i in range(n_dense):
                d = rows["dense"][:, i]
                cols[f"I{i + 1}"] = pa.array(np.nan_to_num(d).astype(np.int64), mask=np.isnan(d))
            for j in range(n_categorical):
                cols[f"C{j + 1}"] = _token(j, rows["cats"][:, j], truth.vocab_sizes[j])
            table = pa.table(cols)
            if writer is None:
                writer = pacsv.CSVWriter(path, table.schema, write_options=opts)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return {"rows": n_rows, "bytes": path.stat().st_size, "positive_rate": positives / max(n_rows, 1)}
