"""``--data`` specifications of the command line: ``synthetic`` or ``FORMAT:PATH``.

=================  ==========================================================================
spec               data
=================  ==========================================================================
synthetic[:N]      built-in generator with planted interactions and a known Bayes-optimal AUC
                   (a behaviour history is added for sequence models, a second label for
                   multi-task ones); ``synthetic:N,days=D`` is D days of logs with new ids
                   every day (time column ``day``), ``...,day=K`` only day K of them
csv:PATH           your own comma-separated file with a header, described by ``--schema FILE``
tsv:PATH           the same, tab-separated
parquet:PATH       the same, a Parquet file
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

Files are never loaded whole: :func:`prepare` encodes them into an on-disk cache
(:func:`reclayers.data.build_cache`, two streaming passes, reused by later runs) and training
streams batches from it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Formats that read any file described by a ``--schema`` file.
SCHEMA_FORMATS = ("csv", "tsv", "parquet")

#: The formats whose PATH is a folder of files (the others read one file).
FOLDER_FORMATS = ("ml100k",)

FORMATS = SCHEMA_FORMATS + (
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
        synthetic_spec(rest)  # checked here: every caller gets a valid spec
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
    if Path(path).is_dir() != (fmt in FOLDER_FORMATS):
        wanted = "a folder" if fmt in FOLDER_FORMATS else "a file"
        raise UsageError(f"--data {fmt}: PATH must be {wanted}; got {path}")
    return fmt, path


_SYNTHETIC_KEYS = ("rows", "days", "day", "tail")


def synthetic_spec(rest: str | None) -> dict:
    """The options of ``synthetic[:ITEM,...]`` where an item is ``N`` or ``rows=N`` (rows in
    all), ``days=D`` (``D`` days of logs with new ids every day), ``day=K`` (only day ``K`` of
    those ``D`` days) or ``tail=P`` (``P`` percent of the ids replaced by a long tail of rare ids;
    see :func:`reclayers.data.make_synthetic`). Returns ``{"rows": N | None, "days": D, "day": K |
    None}`` (and ``"tail": P`` when given)."""
    out: dict = {"rows": None, "days": 1, "day": None}
    for item in filter(None, (rest or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            key, value = "rows", key
        if key not in _SYNTHETIC_KEYS or not value.strip().isdigit() or int(value) < 1:
            raise UsageError("--data synthetic[:N][,days=D][,day=K][,tail=P] needs positive integers (N "
                             f"rows, D days, day K of them, P percent of rare ids); got 'synthetic:{rest}'")
        if key == "tail" and int(value) >= 100:
            raise UsageError(f"--data synthetic: tail={value} must be a percentage below 100")
        out[key] = int(value)
    if out["day"] is not None and out["day"] > out["days"]:
        raise UsageError(f"--data synthetic: day={out['day']} must be at most days={out['days']}")
    return out


def default_cache_dir() -> Path:
    """``RECLAYERS_CACHE_DIR``, else ``$XDG_CACHE_HOME/reclayers`` (``~/.cache/reclayers``)."""
    if os.environ.get("RECLAYERS_CACHE_DIR"):
        return Path(os.environ["RECLAYERS_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reclayers"


def cache_folder(cache_dir: str | None = None) -> Path:
    """The commands' cache folder: ``--cache-dir`` when given, else :func:`default_cache_dir`."""
    return Path(cache_dir) if cache_dir else default_cache_dir()


def load_schema_file(path: str):
    """A schema file (the shape of a run directory's ``schema.json``; JSON or YAML)."""
    from reclayers.data import Schema

    p = Path(path)
    if not p.exists():
        raise UsageError(f"--schema: file not found: {path}")
    try:
        return Schema.load(p)
    except Exception as e:  # noqa: BLE001 - any parse/validation error is a usage error
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"--schema {path}: not a valid schema file ({msg})") from e


def _header(fmt: str, path: str) -> list:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_schema(path).names
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"--data parquet:{path}: not a Parquet file ({e})") from e
    with open(path, "rb") as fh:
        line = fh.readline().decode("utf-8", errors="replace").rstrip("\r\n")
    return [c.strip().strip('"') for c in line.split("\t" if fmt == "tsv" else ",")]


def source_for(fmt: str, path: str, schema=None, labeled: bool | None = True, keep=()):
    """The :class:`reclayers.data.Source` of a ``FORMAT:PATH`` spec.

    ``schema`` (a :class:`~reclayers.data.Schema`) is required by ``csv``/``tsv``/``parquet`` and
    refused by the built-in formats; ``labeled=None`` reads files with or without the label
    columns (prediction); ``keep`` names raw columns passed through for the output."""
    from reclayers import data

    if fmt in SCHEMA_FORMATS:
        if schema is None:
            raise UsageError(f"--data {fmt}:PATH needs --schema FILE (start from: reclayers schema infer "
                             f"{fmt}:{path}); got none")
        header = _header(fmt, path)
        wanted = [f.source for f in schema.features] + \
            ([schema.time_column] if schema.time_column else [])
        labels = [lab.source for lab in schema.labels]
        missing = [c for c in wanted + (labels if labeled else []) if c not in header]
        if missing:
            raise UsageError(f"--schema does not match the columns of {path}: missing {missing[:8]}; "
                             f"the file has {header[:8]}{'...' if len(header) > 8 else ''}")
        absent = [c for c in keep if c not in header]
        if absent:
            raise UsageError(f"--keep-columns {','.join(keep)}: not in {path}: {absent}; the file has "
                             f"{header[:8]}{'...' if len(header) > 8 else ''}")
        if fmt == "parquet":
            return data.read_parquet(path, schema, labeled=labeled, keep=keep)
        return data.read_csv(path, schema, delimiter="\t" if fmt == "tsv" else ",", labeled=labeled,
                             keep=keep)
    if schema is not None:
        raise UsageError(f"--schema only applies to csv:, tsv: and parquet: data; got --data {fmt}:{path} "
                         "(a built-in format with its own schema)")
    if keep and fmt != "criteo":
        raise UsageError(f"--keep-columns applies to csv:, tsv:, parquet: and criteo: data; got {fmt}:")
    if keep:
        from reclayers.data.readers import CRITEO_DENSE, CRITEO_SPARSE

        absent = [c for c in keep if c not in ("label",) + CRITEO_DENSE + CRITEO_SPARSE]
        if absent:
            raise UsageError(f"--keep-columns: not a Criteo column: {absent} (label, I1..I13, C1..C26)")
        return data.criteo(path, keep=keep)
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


def synthetic_kwargs_of(rest: str | None, defaults: dict) -> dict:
    """``make_synthetic`` arguments of a ``synthetic:...`` spec over ``defaults`` (rows, days, day)."""
    sp = synthetic_spec(rest)
    out = {"n_rows": sp["rows"] or defaults.get("n_rows", 20000)}
    if sp["days"] > 1:
        out.update(days=sp["days"], day=sp["day"])
    if sp.get("tail"):
        out["tail"] = sp["tail"] / 100
    return out


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
    valid: str | None = None,
    test: str | None = None,
    schema: str | None = None,
    split_by: str = "random",
    cache_dir: str | None = None,
    growth: dict | None = None,
) -> Prepared:
    """Reads, splits, fits the preprocessor on train and encodes — for files, into the on-disk
    cache (two streaming passes, or none when the cache already holds this data).

    Args:
        spec: ``--data``.
        ratios: train/valid/test fractions of a random or time split.
        seed: seed of the split and the preprocessor.
        examples: rows of ``synthetic`` data.
        needs_sequence: add a behaviour history to ``synthetic`` data.
        multi_task: add a second label to ``synthetic`` data.
        valid: ``--valid FORMAT:PATH``, a separate validation file (the splits are then files).
        test: ``--test FORMAT:PATH``, a separate test file.
        schema: ``--schema FILE`` for ``csv:``/``tsv:``/``parquet:`` data.
        split_by: ``"random"`` (a seeded hash of each row) or ``"time"`` (earliest rows train).
        cache_dir: parent folder of the caches (default :func:`default_cache_dir`).
        growth: a growing vocabulary: ``{"parent": fitted Preprocessor or None, "min_count": N,
            "oov_buckets": K}`` (``--warm-start``, ``--min-count``, ``--oov-buckets``); the parent's
            preprocessing is continued with the new training rows (see
            :meth:`reclayers.data.Preprocessor.update`).
    """
    from reclayers import data

    fmt, path = parse_spec(spec)
    if split_by not in ("random", "time"):
        raise UsageError(f"--split-by must be 'random' or 'time'; got {split_by!r}")
    if fmt == "synthetic":
        if valid or test or schema or split_by != "random":
            raise UsageError("--valid, --test, --schema and --split-by time apply to files; "
                             "got --data synthetic")
        kw = synthetic_kwargs(examples, needs_sequence, multi_task, seed)
        kw.update(synthetic_kwargs_of(path, kw))
        ds = data.make_synthetic(ratios=tuple(ratios), **kw)
        bayes = {split: {lab: m["auc"] for lab, m in per.items()} for split, per in ds.bayes.items()}
        info = {"synthetic": kw}
        if ds.bayes_by_day:
            info["bayes_by_day"] = {d: {lab: m["auc"] for lab, m in per.items()}
                                    for d, per in ds.bayes_by_day.items()}
        if not growth:
            return Prepared(spec, ds.schema, ds.preprocessor, ds.splits, bayes, info)
        pre = _growing(growth, ds.preprocessor.schema, seed, spec).fit([ds.raw_split("train")])
        return Prepared(spec, pre.output_schema(), pre, ds.encode_with(pre), bayes,
                        {**info, "tables": pre.report})
    user_schema = load_schema_file(schema) if schema else None
    source = source_for(fmt, path, user_schema)
    extra = {}
    for flag, other in (("valid", valid), ("test", test)):
        if other:
            ofmt, opath = parse_spec(other)
            if ofmt != fmt:
                raise UsageError(f"--{flag} must have the format of --data ({fmt}:PATH); got {other!r}")
            extra[flag] = source_for(ofmt, opath, user_schema)
    if split_by == "time" and not extra and not source.schema.time_column:
        raise UsageError(f"--split-by time needs data with a time column; got {fmt}: without one "
                         "(formats with one: avazu, movielens, amazon, ml100k; or time_column in --schema)")
    folder = cache_folder(cache_dir)
    key: dict = {"spec_format": fmt}
    grow = None
    if growth:
        grow = _growing(growth, source.schema, seed, spec)
        key["growth"] = _growth_key(grow)
    try:
        pre, splits, info = data.build_cache(source, folder, ratios=tuple(ratios), seed=seed,
                                             by_time=split_by == "time", key=key, preprocessor=grow,
                                             **extra)
    except data.DataFormatError as e:
        raise UsageError(f"--data {spec}: {e}") from e
    except data.CacheError as e:
        raise UsageError(f"--cache-dir: {e}") from e
    except ValueError as e:
        if "split" in str(e):
            raise UsageError(f"--split: {e}") from e
        raise
    _report(info)
    if not any(len(s) for s in splits.values()) or not len(splits["train"]):
        raise UsageError(f"--data {spec}: no well-formed training rows ({_skipped(info)})")
    return Prepared(
        spec, pre.output_schema(), pre, splits, {},
        {**({"tables": pre.report} if growth else {}),
         "format": fmt, "path": path, "cache": info["folder"], "cache_reused": info["reused"],
         "rows": info["rows"], "data_report": info["report"], "prepare_seconds": info["seconds"]},
    )


def _growing(growth: dict, schema, seed: int, spec: str):
    """The unfitted preprocessor of a growing vocabulary: the parent's continued, or a new one."""
    from reclayers.data import Preprocessor

    parent = growth.get("parent")
    opts = {"min_count": growth.get("min_count"), "oov_buckets": growth.get("oov_buckets")}
    expire = growth.get("expire_after")
    if expire is not None:
        opts.update(expire_after=expire, **_expiry_clock(schema, spec, parent))
    if parent is None:
        return Preprocessor(schema, seed, min_count=opts.pop("min_count"),
                            oov_buckets=opts.pop("oov_buckets") or 0, **opts)
    if _features_of(parent.schema) != _features_of(schema):
        raise UsageError(f"--warm-start: the data {spec!r} has another schema than the parent run's "
                         f"(features {_names(schema)} vs {_names(parent.schema)})")
    try:
        return parent.continued(**opts)
    except ValueError as e:
        raise UsageError(f"--warm-start: {e}") from e


def _expiry_clock(schema, spec: str, parent) -> dict:
    """``--expire-after``'s clock: days of the rows' time column where the format has one in
    known units (synthetic ``day`` numbers; Unix seconds of amazon, movielens, ml100k and files
    with a ``time_column``), else warm starts (which need a parent run)."""
    fmt = spec.split(":", 1)[0]
    if parent is not None and (parent.growth or {}).get("expire_after"):
        return {}  # the parent's clock goes on
    if schema.time_column and fmt != "avazu":  # avazu's time is YYMMDDHH, not a count of seconds
        return {"expire_by": "time", "time_unit": 86400.0 if fmt == "synthetic" else 1.0}
    if parent is None:
        raise UsageError(f"--expire-after needs --warm-start (it counts warm starts) or data with a time "
                         f"column in seconds or days (it counts days); got {spec!r} without either")
    return {"expire_by": "runs"}


def _features_of(schema) -> list:
    return [{k: v for k, v in f.items() if k != "num_buckets"} for f in schema.to_dict()["features"]] + \
        [schema.to_dict()["labels"]]


def _names(schema) -> str:
    names = [f.name for f in schema.features]
    return ",".join(names[:6]) + (",..." if len(names) > 6 else "")


def _growth_key(pre) -> str:
    import hashlib
    import json

    # a new growing preprocessor is not fitted yet: its options and schema are what it will do
    state = pre.to_dict() if pre.fitted or pre._parent else \
        {"schema": pre.schema.to_dict(), "growth": pre.growth}
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _skipped(info: dict) -> str:
    parts = [f"{p}: {r['rows_read']} rows read, {r['skipped']} malformed skipped"
             for p, r in info["report"].items()]
    return "; ".join(parts) or "cache reused"


def _report(info: dict) -> None:
    """One line per pass with skipped rows (the data report is also kept in the run directory)."""
    import logging

    for phase, r in info["report"].items():
        if r["skipped"] and not info["reused"]:
            logging.getLogger("reclayers.data").warning(
                "reclayers.data: %s pass: %d rows read, %d malformed rows skipped %s", phase,
                r["rows_read"], r["skipped"], r["reasons"])


def data_options(args) -> dict:
    """The data options of a ``train`` command line, as recorded in the run config (``--resume``,
    ``evaluate`` and ``predict`` reuse them)."""
    opts = {
        "valid": getattr(args, "valid", None),
        "test": getattr(args, "test", None),
        "schema": str(Path(args.schema).resolve()) if getattr(args, "schema", None) else None,
        "split_by": getattr(args, "split_by", None) or "random",
        "cache_dir": str(Path(args.cache_dir).resolve()) if getattr(args, "cache_dir", None) else None,
    }
    return {k: v for k, v in opts.items() if v not in (None, "random")}


def write_data_report(prepared: Prepared, run_dir) -> Path | None:
    """Write ``data_report.json`` (rows read and malformed rows skipped, per pass and file, with
    the first examples; the cache folder) into ``run_dir``; returns its path (``None`` for
    synthetic data)."""
    import json

    if "data_report" not in prepared.info:
        return None
    out = Path(run_dir) / "data_report.json"
    out.write_text(json.dumps({k: prepared.info.get(k) for k in
                               ("format", "path", "cache", "cache_reused", "rows", "data_report",
                                "prepare_seconds")}, indent=2))
    return out


def run_split(run_config: dict, split: str = "test", preprocessor=None) -> tuple:
    """A run's own split (default: its test split), from the run's cache (built again, in two
    passes, if it was deleted) or regenerated for synthetic data. Returns ``(arrays, bayes)``.

    ``preprocessor``: the run's own (needed for runs whose vocabulary grew: ``--warm-start``,
    ``--min-count``, ``--oov-buckets``)."""
    from reclayers import data

    fmt, path = parse_spec(run_config["data"])
    ratios = tuple(run_config.get("split", (0.8, 0.1, 0.1)))
    grown = bool(run_config.get("growth")) and preprocessor is not None
    if fmt == "synthetic":
        kw = dict(run_config.get("data_info", {}).get("synthetic") or {})
        ds = data.make_synthetic(ratios=ratios, **kw)
        if split not in ds.splits:
            raise UsageError(f"this run has no {split} split (--split {','.join(map(str, ratios))})")
        arrays = ds.encode_with(preprocessor)[split] if grown else ds.splits[split]
        return arrays, {lab: m["auc"] for lab, m in ds.bayes[split].items()}
    if grown:  # the cache this run wrote (its preprocessor grew from the parent's)
        folder = Path(run_config.get("data_info", {}).get("cache") or "")
        if not (folder / split).is_dir():
            raise UsageError(f"this run's cache {folder} is gone (its vocabulary grew from a parent run); "
                             "score a file with --data FORMAT:PATH")
        return data.CachedSplit(folder / split), {}
    prepared = prepare(run_config["data"], ratios=ratios, seed=run_config.get("seed", 0),
                       **run_config.get("data_options", {}))
    if split not in prepared.splits:
        raise UsageError(f"this run has no {split} split; score a file with --data FORMAT:PATH")
    return prepared.splits[split], {}


def encode_with(spec: str, preprocessor, run_config: dict, cache_dir: str | None = None):
    """Every row of ``spec`` encoded with a run's fitted preprocessor (``evaluate --data``), into
    the cache (one streaming pass, reused next time). Returns ``(arrays, bayes)``.

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
        kw.update(synthetic_kwargs_of(path, kw))
        ds = data.make_synthetic(ratios=tuple(run_config.get("split", (0.8, 0.1, 0.1))), **kw)
        return ds.encode_with(preprocessor)["test"], {lab: m["auc"] for lab, m in ds.bayes["test"].items()}
    opts = run_config.get("data_options", {})
    schema = preprocessor.schema if fmt in SCHEMA_FORMATS else None
    source = source_for(fmt, path, schema)
    folder = cache_folder(cache_dir or opts.get("cache_dir"))
    try:
        _, splits, info = data.build_cache(source, folder, preprocessor=preprocessor, seed=preprocessor.seed,
                                           name="all", key={"spec_format": fmt})
    except data.DataFormatError as e:
        raise UsageError(f"--data {spec}: {e}") from e
    except data.CacheError as e:
        raise UsageError(f"--cache-dir: {e}") from e
    _report(info)
    return splits["all"], {}


def schema_infer(args) -> int:
    """``reclayers schema infer FORMAT:PATH``: print (or write) a starting schema file."""
    import json

    from reclayers.data.infer import infer_schema

    fmt, path = parse_spec(args.data)
    if fmt not in SCHEMA_FORMATS:
        raise UsageError(f"schema infer reads csv:PATH, tsv:PATH or parquet:PATH; got {args.data!r} "
                         "(built-in formats have their own schema)")
    labels = [c.strip() for c in args.label.split(",") if c.strip()] if args.label else None
    if args.rows < 1:
        raise UsageError(f"--rows must be >= 1; got {args.rows}")
    try:
        schema = infer_schema(path, fmt, rows=args.rows, labels=labels)
    except ValueError as e:
        raise UsageError(f"schema infer {args.data}: {e}") from e
    except Exception as e:  # noqa: BLE001 - an unreadable file is bad input
        raise UsageError(f"schema infer {args.data}: cannot read the file ({type(e).__name__}: {e})") from e
    if not schema.labels:
        print(f"reclayers: note: no label column recognised in {path}; add one under 'labels' "
              "(or pass --label NAME)", file=sys.stderr)
    if args.out:
        schema.save(args.out)
        print(f"wrote a schema of {len(schema.features)} features and {len(schema.labels)} labels to "
              f"{args.out}")
        return 0
    try:
        import yaml

        print(yaml.safe_dump(schema.to_dict(), sort_keys=False), end="")
    except ImportError:
        print(json.dumps(schema.to_dict(), indent=2))
    return 0
