"""``--data`` specifications of the command line: ``synthetic`` or ``FORMAT:PATH``.

=================  ==========================================================================
spec               data
=================  ==========================================================================
synthetic[:N]      built-in generator with planted interactions and a known Bayes-optimal AUC
                   (a behaviour history is added for sequence models, a second label for
                   multi-task ones)
criteo:PATH        Criteo CSV/TSV (``reclayers.data.criteo``)
avazu:PATH         Avazu CSV
movielens:PATH     MovieLens-1M joined CSV (label: rating >= 4)
ml100k:FOLDER      MovieLens-100K in RecBole's atomic format
frappe:PATH        Frappe_x1 CSV
sequences:PATH     DIN text format ``hist_items;hist_cates;item;cate;label``
amazon:PATH        raw ``user_id,item_id,time,cate_id`` logs → DIN samples
alimama:PATH       Alimama DMR format
census:PATH        census-income (two labels: income, marital status)
aliccp:PATH        Ali-CCP CSV (two labels: click, purchase)
=================  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMATS = (
    "criteo",
    "avazu",
    "movielens",
    "ml100k",
    "frappe",
    "sequences",
    "amazon",
    "alimama",
    "census",
    "aliccp",
)


class UsageError(ValueError):
    """A bad command-line argument (reported in one line, exit code 2)."""


@dataclass
class Prepared:
    """Encoded splits of a data spec plus what a run directory records."""

    spec: str
    schema: Any
    preprocessor: Any
    splits: dict
    bayes: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def parse_spec(spec: str) -> tuple[str, str | None]:
    spec = str(spec).strip()
    if spec == "synthetic" or spec.startswith("synthetic:"):
        rest = spec.partition(":")[2]
        if rest and not rest.isdigit():
            raise UsageError(f"--data synthetic:N needs an integer row count; got {spec!r}")
        return "synthetic", rest or None
    fmt, sep, path = spec.partition(":")
    if not sep or fmt not in FORMATS:
        raise UsageError(
            f"--data must be 'synthetic' or one of {', '.join(f + ':PATH' for f in FORMATS)}; got {spec!r}"
        )
    if not path:
        raise UsageError(f"--data {fmt}: needs a path; got {spec!r}")
    if not Path(path).exists():
        raise UsageError(f"--data {fmt}: file not found: {path}")
    return fmt, path


def source_for(fmt: str, path: str):
    """The :class:`reclayers.data.Source` of a ``FORMAT:PATH`` spec."""
    from reclayers import data

    readers = {
        "criteo": data.criteo,
        "avazu": data.avazu,
        "movielens": data.movielens,
        "ml100k": data.movielens_atomic,
        "frappe": data.frappe,
        "sequences": data.din,
        "amazon": data.amazon_logs,
        "alimama": data.alimama_dmr,
        "census": data.census_income,
        "aliccp": data.ali_ccp,
    }
    try:
        return readers[fmt](path)
    except (OSError, data.DataFormatError) as e:
        raise UsageError(f"--data {fmt}:{path}: {e}") from e


def synthetic_kwargs(rows: int, needs_sequence: bool, multi_task: bool, seed: int) -> dict:
    return {
        "n_rows": int(rows),
        "n_dense": 4,
        "n_categorical": 8,
        "vocab_size": 20,
        "sequence_length": 10 if needs_sequence else 0,
        "second_task": bool(multi_task),
        "seed": seed,
    }


def prepare(
    spec: str,
    *,
    ratios=(0.8, 0.1, 0.1),
    seed: int = 0,
    examples: int = 20000,
    needs_sequence: bool = False,
    multi_task: bool = False,
) -> Prepared:
    """Reads, splits (``ratios``: train/valid/test), fits the preprocessor on train, encodes."""
    from reclayers import data

    fmt, path = parse_spec(spec)
    if fmt == "synthetic":
        kw = synthetic_kwargs(int(path or examples), needs_sequence, multi_task, seed)
        ds = data.make_synthetic(ratios=tuple(ratios), **kw)
        bayes = {split: {lab: m["auc"] for lab, m in per.items()} for split, per in ds.bayes.items()}
        return Prepared(spec, ds.schema, ds.preprocessor, ds.splits, bayes, {"synthetic": kw})
    source = source_for(fmt, path)
    try:
        pre, parts = data.prepare(source, ratios=tuple(ratios), seed=seed)
    except data.DataFormatError as e:
        raise UsageError(f"--data {spec}: {e}") from e
    names = ["train", "valid", "test"][: len(parts)]
    return Prepared(
        spec, pre.output_schema(), pre, dict(zip(names, parts)), {}, {"format": fmt, "path": path}
    )


def encode_with(spec: str, preprocessor, run_config: dict):
    """Every row of ``spec`` encoded with a run's fitted preprocessor (``evaluate``/``predict``).

    ``synthetic`` regenerates the run's synthetic data and returns its test split (with the
    Bayes-optimal AUC)."""
    from reclayers import data

    fmt, path = parse_spec(spec)
    if fmt == "synthetic":
        kw = dict(run_config.get("data_info", {}).get("synthetic") or {})
        if not kw:
            raise UsageError(
                "--data synthetic: this run was not trained on synthetic data; "
                f"got a run trained on {run_config.get('data')!r}"
            )
        if path:
            kw["n_rows"] = int(path)
        ds = data.make_synthetic(ratios=tuple(run_config.get("split", (0.8, 0.1, 0.1))), **kw)
        return ds.splits["test"], {lab: m["auc"] for lab, m in ds.bayes["test"].items()}
    source = source_for(fmt, path)
    try:
        return data.encode(source, preprocessor), {}
    except data.DataFormatError as e:
        raise UsageError(f"--data {spec}: {e}") from e
