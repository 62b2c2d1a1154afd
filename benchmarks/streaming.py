"""Streaming benchmark: a large synthetic Criteo-shaped file through the reader in constant memory.

    python -m benchmarks.streaming --rows 10000000 --dir /tmp/criteo-bench   # from the repository root

Phases run in separate processes so each reports its own peak resident memory (``ru_maxrss``):
``write`` (generate the TSV), ``read`` (parse + validate every row), ``fit`` (vocabulary and dense
statistics over the whole file), ``batches`` (encode and cut 4096-row batches with the fitted
statistics). Prints one JSON line per phase.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _phase(phase: str, path: Path, rows: int, vocab: int, min_freq: int) -> dict:
    from reclayers.data import Preprocessor, criteo, stream_batches, write_criteo
    from reclayers.data.readers import criteo_schema

    t0 = time.perf_counter()
    out: dict = {"phase": phase}
    stats = path.with_suffix(".stats.json")
    if phase == "write":
        out.update(write_criteo(path, rows, vocab_size=vocab, seed=0))
    elif phase == "read":
        src = criteo(path)
        n = sum(len(c["label"]) for c in src.chunks())
        out.update(rows=n, skipped=src.errors.total)
    elif phase == "fit":
        src = criteo(path, schema=criteo_schema(min_freq=min_freq))
        pre = Preprocessor(src.schema).fit(src.chunks())
        pre.save(stats)
        out.update(vocab_sizes=sum(len(v) for v in pre.vocabs.values()))
    elif phase == "batches":
        pre = Preprocessor.load(stats)
        src = criteo(path, schema=pre.schema)
        n = b = 0
        for _, y in stream_batches(src.chunks(), pre, batch_size=4096):
            n += len(y["label"])
            b += 1
        out.update(rows=n, batches=b)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["peak_rss_mib"] = round(_peak_mib(), 1)
    if phase != "write":
        out["rows_per_second"] = round(out.get("rows", rows) / max(out["seconds"], 1e-9))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--vocab", type=int, default=100_000, help="ids per categorical field")
    ap.add_argument("--min-freq", type=int, default=10)
    ap.add_argument("--dir", default="/tmp/reclayers-criteo-bench")
    ap.add_argument("--phase", choices=["write", "read", "fit", "batches"], default=None)
    ap.add_argument("--keep", action="store_true", help="keep an existing file of the right size")
    args = ap.parse_args(argv)
    path = Path(args.dir) / f"criteo_synth_{args.rows}.tsv"
    if args.phase:
        print(json.dumps(_phase(args.phase, path, args.rows, args.vocab, args.min_freq)), flush=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    phases = ["write", "read", "fit", "batches"]
    if args.keep and path.exists():
        phases = phases[1:]
    for phase in phases:
        subprocess.run([sys.executable, "-m", "benchmarks.streaming", "--rows", str(args.rows),
                        "--vocab", str(args.vocab), "--min-freq", str(args.min_freq), "--dir", args.dir,
                        "--phase", phase], check=True)


if __name__ == "__main__":
    main()
