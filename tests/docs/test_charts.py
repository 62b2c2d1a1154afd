"""The documentation's generated tables and charts match the committed benchmark results."""

from __future__ import annotations

import importlib.util
import json
import sys

import keras
import pytest

from tests.conftest import REPO_ROOT

# Pure file processing, independent of the backend: run once.
CHART_BACKEND = "torch"


@pytest.fixture(scope="module")
def charts():
    if keras.backend.backend() != CHART_BACKEND:
        pytest.skip(f"backend-independent; runs under {CHART_BACKEND} only")
    spec = importlib.util.spec_from_file_location("make_charts", REPO_ROOT / "scripts" / "make_charts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_charts"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_tables_are_current(charts):
    assert charts.stale_tables() == [], "run python scripts/make_charts.py and commit the result"


def test_benchmark_table_holds_the_json_numbers(charts):
    results = json.loads(charts.RESULTS.read_text(encoding="utf-8"))
    text = charts.BACKENDS_MD.read_text(encoding="utf-8")
    table = charts.current_block(text, "benchmark")
    for layer, row in results["backends"]["jax"]["rows"].items():
        ms = row["reclayers"]["median_s"] * 1e3
        line = next(ln for ln in table.splitlines() if ln.startswith(f"| {layer} |"))
        assert f"{ms:.1f}" in line, (layer, line)
    # the fastest-peer column agrees with a direct reading of the JSON for a layer with peers
    mlp = {p: d["rows"]["MLP"]["median_s"] for p, d in results["peers"].items() if "MLP" in d["rows"]}
    best = min(mlp, key=mlp.get)
    line = next(ln for ln in table.splitlines() if ln.startswith("| MLP |"))
    assert charts.PEER_LABELS[best] in line and f"{mlp[best] * 1e3:.1f}" in line


def test_leaderboard_table_is_ranked_by_auc(charts):
    board = json.loads(charts.LEADERBOARD.read_text(encoding="utf-8"))
    table = charts.leaderboard_table(board).splitlines()
    aucs = [float(ln.split("|")[3]) for ln in table[2:] if not ln.startswith("| —")]
    assert aucs == sorted(aucs, reverse=True) and len(aucs) == len(board["rows"])
    assert "Bayes-optimal" in table[-1]


def test_replace_block_keeps_the_rest_of_the_page(charts):
    text = "intro\n<!-- generated:t:start -->\nold\n<!-- generated:t:end -->\noutro\n"
    new = charts.replace_block(text, "t", "| a |")
    assert new == "intro\n<!-- generated:t:start -->\n| a |\n<!-- generated:t:end -->\noutro\n"
    assert charts.current_block(new, "t") == "| a |"
    with pytest.raises(ValueError, match="markers"):
        charts.replace_block("no markers", "t", "x")


def test_committed_charts_exist_and_are_referenced(charts):
    for name, page in (("benchmark.png", charts.BACKENDS_MD), ("leaderboard.png", charts.CLI_MD)):
        path = REPO_ROOT / "docs" / "assets" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"../assets/{name}" in page.read_text(encoding="utf-8")


def test_charts_redraw(charts, tmp_path):
    pytest.importorskip("matplotlib")  # optional ('plots' extra); the committed PNGs are used without it
    paths = charts.draw_charts(tmp_path)
    assert [p.name for p in paths] == ["benchmark.png", "leaderboard.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_import_leaderboard_converts_a_compare_run(charts, tmp_path):
    run = tmp_path / "compare-20260101-000000" / "run-lr"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"best_epoch": 2, "epochs": 3}))
    (run / "config.json").write_text(json.dumps({
        "data": "synthetic", "backend": "jax", "epochs": 3, "batch_size": 64, "seed": 0,
        "split": [0.8, 0.1, 0.1], "data_info": {"synthetic": {"n_rows": 1000}},
        "model_config": {"learning_rate": 0.01, "embedding_dim": 4, "hidden_units": [8]}}))
    lb = run.parent / "leaderboard.json"
    lb.write_text(json.dumps({"rows": [{"model": "lr", "auc": 0.7, "logloss": 0.5, "parameters": 10,
                                        "train_seconds": 1.0, "examples_per_second": 800.0,
                                        "run_dir": str(run)}], "bayes_optimal_auc": 0.8}))
    out = tmp_path / "board.json"
    board = charts.import_leaderboard(lb, out)
    assert json.loads(out.read_text()) == board
    assert board["rows"][0]["best_epoch"] == 2 and board["data"]["n_rows"] == 1000
    assert board["config"]["hidden_units"] == [8]
    assert "| 1 | lr | 0.7000 |" in charts.leaderboard_table(board)
