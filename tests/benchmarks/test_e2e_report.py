"""The end-to-end benchmark's own arithmetic: the peers' AUC and the per-framework pairing table."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from benchmarks import e2e

pytestmark = pytest.mark.one_backend


def _pairwise_auc(y, p) -> float:
    pos, neg = p[y], p[~y]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.3
    p = np.round(rng.random(400) + 0.4 * y, 1)  # many tied scores
    assert e2e._auc(y, p) == pytest.approx(_pairwise_auc(y, p), abs=1e-12)
    assert e2e._auc(y, y.astype(float)) == pytest.approx(1.0)


def test_framework_pairing_rows():
    def run(eps, rss, first, auc):
        return {"examples_per_s": eps, "peak_rss_mib": rss, "first_epoch_s": first, "valid_auc": auc}

    results = {"models": {
        "dcn_v2": {"runs": {"1024": {
            "reclayers/jax": run(150.0, 1000.0, 4.0, 0.8),
            "keras-rs (JAX)": run(200.0, 800.0, 2.0, 0.8),
            "reclayers/tensorflow": run(90.0, 700.0, 3.0, 0.8),
            "DeepCTR (TF)": run(60.0, 900.0, 3.0, 0.8),
            "reclayers/torch": run(50.0, 600.0, 1.0, 0.8),
        }}},
        "din": {"runs": {"1024": {
            "reclayers/jax": run(100.0, 1000.0, 5.0, 0.8),
            "keras-rs (JAX)": {"who": "keras-rs (JAX)", "absent": e2e.PEER_ABSENT[("keras_rs", "din")]},
        }}},
    }}
    lines = e2e._framework_pairing(results)
    rows = [ln for ln in lines if ln.startswith("| dcn_v2") or ln.startswith("| din")]
    assert rows[0].startswith("| dcn_v2 | 1024 | jax | keras-rs (JAX) | 150 / 200 (0.75) | "
                              "1,000 / 800 (1.25) | 4.00 / 2.00 (2.00) |")
    assert "| din | 1024 | jax | keras-rs (JAX) | keras-rs ships no DIN" in rows[1]
    assert rows[2].startswith("| dcn_v2 | 1024 | tf | DeepCTR (TF) | 90 / 60 (1.50) | 700 / 900 (0.78) |")
    assert len(rows) == 3  # torch is paired in its own table; no TensorFlow DIN run here
    assert e2e._framework_pairing({"models": {}}) == []


def test_report_of_a_json_is_written_next_to_it_under_its_own_name(tmp_path, monkeypatch):
    """``python -m benchmarks.e2e report X.json`` writes ``X.md`` (it once wrote ``e2e.md``,
    overwriting the committed report of another run)."""
    import shutil
    from pathlib import Path

    src = Path(e2e.HERE) / "results" / "e2e_torch.json"
    shutil.copy(src, tmp_path / "e2e_torch.json")
    monkeypatch.setattr(sys, "argv", ["e2e", "report", str(tmp_path / "e2e_torch.json")])
    e2e.main()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e2e_torch.json", "e2e_torch.md"]
    assert (tmp_path / "e2e_torch.md").read_text() == src.with_suffix(".md").read_text()


def test_torch_pairing_has_a_row_per_runner_plain_included():
    """``--e2e-plain``: ours in the zoo's architecture and in the peers' (``plain``), each ÷ FuxiCTR
    and the fastest peer; the run passes the plain config as ``--set`` options."""
    def run(eps, rss, first):
        return {"examples_per_s": eps, "peak_rss_mib": rss, "first_epoch_s": first}

    runs = {"reclayers/torch": run(90.0, 600.0, 3.0), "reclayers/torch plain": run(110.0, 550.0, 2.5),
            "FuxiCTR": run(100.0, 500.0, 2.0), "DeepCTR-Torch": run(80.0, 400.0, 1.5)}
    lines = e2e._torch_pairing({"models": {"dcn_v2": {"runs": {"1024": runs}}}}, ["DeepCTR-Torch", "FuxiCTR"])
    rows = [ln for ln in lines if ln.startswith("| dcn_v2")]
    assert rows == ["| dcn_v2 | 1024 | torch | 0.90 | 0.90 (FuxiCTR) | 1.20 | torch 2.00, torch plain 1.67 |",
                    "| dcn_v2 | 1024 | torch plain | 1.10 | 1.10 (FuxiCTR) | 1.10 | (above) |"]
    assert e2e.PLAIN_SET == ["weight_norm=false", "raw_numeric=false"]


def test_per_layer_report_pairs_each_backend_with_its_framework_peers():
    from benchmarks import report

    def cell(ms):
        return {"median_s": ms / 1e3, "peak_rss_mib": 100.0}

    table = {
        "DIN": {"ours": {"jax": cell(50.0), "tensorflow": cell(20.0), "torch": cell(40.0)},
                "peers": {"DeepCTR (TF)": cell(25.0), "DeepCTR-Torch": cell(44.0), "FuxiCTR": cell(30.0)}},
        "CAN": {"ours": {"jax": cell(3.0), "tensorflow": cell(5.0), "torch": cell(4.0)}, "peers": {}},
    }
    lines = report._same_framework_speed(table, ["jax", "tensorflow", "torch"])
    din = next(ln for ln in lines if ln.startswith("| DIN"))
    # JAX has no same-framework peer for DIN (keras-rs has none); TF vs DeepCTR; torch vs FuxiCTR
    assert din == "| DIN | — | 20.0 / 25.0 (DeepCTR (TF), 1.25) | 40.0 / 30.0 (FuxiCTR, 0.75) |"
    assert not any(ln.startswith("| CAN") for ln in lines)
    assert lines[-1] == "Below 1.0: DIN (torch vs FuxiCTR: 0.75)."
