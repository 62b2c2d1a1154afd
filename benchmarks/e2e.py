"""End-to-end training throughput: ``reclayers train`` against the peers of each backend's framework.

``python -m benchmarks --e2e`` (see ``benchmarks/README.md``). For each model (``dcn_v2``, ``din``)
and batch size:

1. **Data**: the command line's own synthetic data (``--data synthetic:N``, seed 0) is generated once
   per model by :func:`reclayers.cli.datasets.prepare`, exactly as ``reclayers train`` does, and written
   encoded to ``<model>.npz`` (+ ``<model>.json``: fields, table sizes, Bayes-optimal AUC) for the
   peers. ``din`` gets the behaviour history ``hist_C1`` (10 ids, shares ``C1``'s table) that the CLI adds
   for sequence models; ``dcn_v2`` gets the same generator without it (the CLI adds no history there).
2. **Ours**: ``reclayers train --model M --data synthetic:N --epochs E --batch-size B --quiet
   --checkpoint-every 10**9`` in its own process per backend (``KERAS_BACKEND`` set). Epoch times come
   from the run directory: the CLI writes ``checkpoint/ckpt-*/state.json`` after every epoch with the
   cumulative ``train_seconds`` (time inside ``model.fit`` only: validation and saving excluded); this
   driver polls that file, so each epoch's time is read, not guessed. The first epoch (tracing/XLA
   compilation) is reported separately; examples/s is over epochs 2..E.
3. **Peers**, each in its own virtualenv (``python -m benchmarks.e2e peer ...``), paired with ours on
   their framework (PyTorch: DeepCTR-Torch, FuxiCTR; TensorFlow: DeepCTR; JAX: keras-rs). DeepCTR-Torch's
   ``DCN(cross_parameterization="matrix")`` and ``DIN`` trained by the library's own ``model.fit``
   (epoch times from a ``deepctr_torch.callbacks.Callback``); FuxiCTR's ``DCNv2`` and ``DIN`` trained
   by the library's own ``BaseModel.train_epoch`` (what its ``fit`` calls per epoch; gradient clipping
   at its default norm 10). DeepCTR's (TensorFlow) ``DCN`` / ``DIN`` through its own tf-keras ``fit``;
   keras-rs's ``FeatureCross`` composed into DCN-V2 (keras-rs has no model class and no DIN) and
   trained by Keras's ``fit`` on JAX. Evaluation happens outside the timed epochs.
4. **Sanity**: AUC on the validation split after the last epoch, for everybody (plus our test AUC and
   the data's Bayes-optimal AUC): the point is that every library learns the same problem.

Shapes follow our zoo's defaults: embedding 16 for every field, MLP 128-64 (ReLU), 2 matrix cross
layers (DCN-V2), DIN attention MLP 32-16-1 (ReLU, no softmax), Adam(1e-3), no regularisation.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import PEER_FRAMEWORK, malloc_env

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = ["dcn_v2", "din"]
E2E_PEERS = ["deepctr_torch", "fuxictr", "deepctr", "keras_rs"]
EMB = 16
HIDDEN = [128, 64]
CROSS_LAYERS = 2
ATT_HIDDEN = [32, 16]
LR = 1e-3
# Ours on each backend is paired with the peers of its framework (benchmarks.common.PEER_FRAMEWORK).
PEER_LABELS = {"deepctr_torch": "DeepCTR-Torch", "fuxictr": "FuxiCTR", "deepctr": "DeepCTR (TF)",
               "keras_rs": "keras-rs (JAX)"}
# Models a peer has no equivalent of (the run records the reason instead of a number).
PEER_ABSENT = {("keras_rs", "din"): "keras-rs ships no DIN (no attention-sequence pooling layer)"}
SHORT = {"jax": "jax", "tensorflow": "tf", "torch": "torch"}
# ``--e2e-plain``: ours also runs with the towers and input the peers build (see ``PLAIN_NOTE``).
PLAIN_SET = ["weight_norm=false", "raw_numeric=false"]
PLAIN_SUFFIX = " plain"
PLAIN_NOTE = (
    "`plain` rows: ours with `" + " ".join(f"--set {item}" for item in PLAIN_SET) + "`: deep towers of plain "
    "Dense layers (no weight-norm gains) and the numeric fields as embeddings only, as FuxiCTR builds "
    "them. DCN-V2 then has FuxiCTR's architecture (192-wide cross input, plain MLP; ours keeps one "
    "extra scalar bias in the head). DIN still differs: our flat input keeps the mean-pooled history "
    "as a field (224 wide against 208) and the reference DIN layer's attention MLP stays "
    "weight-normalised (it is the layer's definition)."
)


# --------------------------------------------------------------------------------------------- data
def write_data(out_dir: str, model: str, rows: int, seed: int) -> None:
    """``python -m benchmarks.e2e data OUT_DIR MODEL ROWS SEED`` (main venv, ``PYTHONPATH=src``)."""
    import numpy as np

    from reclayers import models
    from reclayers.cli.datasets import prepare

    spec = models.MODELS[model]
    prepared = prepare(f"synthetic:{rows}", seed=seed, needs_sequence=spec.needs_sequence)
    arrays, meta = (
        {},
        {
            "model": model,
            "rows": rows,
            "seed": seed,
            "info": prepared.info,
            "bayes_auc": prepared.bayes,
            "fields": [],
            "splits": {},
        },
    )
    for f in prepared.schema.features:
        meta["fields"].append(
            {
                "name": f.name,
                "kind": f.kind,
                "num_buckets": getattr(f, "num_buckets", None),
                "table": getattr(f, "table_name", None),
            }
        )
    for split, data in prepared.splits.items():
        meta["splits"][split] = len(data)
        for key, value in data.features.items():
            arrays[f"{split}/{key}"] = np.asarray(value)
            if key.endswith("_mask"):  # the peers take lengths: the mask must be a prefix
                v = np.asarray(value, bool)
                n = v.sum(1)
                if not (v == (np.arange(v.shape[1])[None, :] < n[:, None])).all():
                    raise ValueError(
                        f"{key}: mask is not a prefix mask; the peers' length inputs would differ"
                    )
        for key, value in data.labels.items():
            arrays[f"{split}/label_{key}"] = np.asarray(value, np.float32).reshape(-1)
    np.savez(Path(out_dir) / f"{model}.npz", **arrays)
    (Path(out_dir) / f"{model}.json").write_text(json.dumps(meta, indent=1))


# --------------------------------------------------------------------------------------------- ours
def _poll_state(run_parent: Path, seen: dict) -> None:
    for path in glob.glob(str(run_parent / "*" / "checkpoint" / "ckpt-*" / "state.json")):
        try:
            state = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue  # being rewritten
        if state.get("batch", 0) == 0 and state.get("epoch", 0) > 0:
            seen.setdefault(state["epoch"], (state["train_seconds"], state["train_examples"]))


def thread_env(threads: int) -> dict:
    """Environment limiting every framework to ``threads`` CPU threads (0: leave the defaults).

    On a loaded machine PyTorch's intra-op threads wait for each other at every op (a 2-thread
    DCN step took 8x longer than a 1-thread one at load average 6 on 2 cores), so runs there
    should use ``--e2e-threads 1``; on a quiet machine the defaults (all cores) are right."""
    if threads <= 0:
        return {}
    env = {
        k: str(threads)
        for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "RECLAYERS_BENCH_THREADS")
    }
    env["TF_NUM_INTEROP_THREADS"] = "1"
    xla = os.environ.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = (xla + f" --xla_cpu_multi_thread_eigen={'false' if threads == 1 else 'true'}").strip()
    return env


def cpu_limit(threads: int, jax: bool) -> list:
    """A command prefix allowing a JAX process only ``threads`` CPUs (``taskset``): jaxlib 0.10's
    CPU client sizes its thread pool from the CPUs it may use and ignores the thread flags of
    :func:`thread_env` (a 2048² matmul ran on both cores with them). Empty for other processes."""
    if threads <= 0 or not jax or shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"):
        return []
    return ["taskset", "-c", ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:threads])]


def wait_measured(proc: subprocess.Popen, timeout: float, tick=None) -> float | None:
    """Waits for ``proc`` (killed after ``timeout`` s, then ``proc.returncode`` stays ``None``),
    calling ``tick()`` every 50 ms; returns the process's peak resident memory in MiB.

    The peak is the kernel's own account (``wait4``'s ``ru_maxrss``, Linux: KiB) of the child
    itself, so nothing between two samples is missed; ``nice`` and the CLI's re-execution keep the
    process id, so it is the trainer's. ``None`` where ``wait4`` is not available.
    """
    t0 = time.perf_counter()
    while True:
        if tick is not None:
            tick()
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            os.waitpid(proc.pid, 0)
            return None
        if not hasattr(os, "wait4"):  # pragma: no cover - not Linux/macOS
            if proc.poll() is not None:
                return None
        else:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return round(usage.ru_maxrss / 1024, 1)
        time.sleep(0.05)


def run_ours(
    backend: str,
    model: str,
    rows: int,
    batch: int,
    epochs: int,
    work: Path,
    timeout: int,
    threads: int = 0,
    tag: str = "",
    overrides: list | None = None,
) -> dict:
    """``reclayers train`` in its own process; ``overrides``: ``KEY=VALUE`` model config keys
    (each passed as ``--set``)."""
    run_parent = work / f"ours-{model}-{backend}-{batch}{tag}"
    cmd = [
        sys.executable,
        "-c",
        "import sys; from reclayers.cli import main; sys.exit(main())",
        "train",
        "--model",
        model,
        "--data",
        f"synthetic:{rows}",
        "--epochs",
        str(epochs),
        "--batch-size",
        str(batch),
        "--seed",
        "0",
        "--quiet",
        "--checkpoint-every",
        str(10**9),
        "--backend",
        backend,
        "--run-dir",
        str(run_parent),
    ]
    for item in overrides or []:
        cmd += ["--set", item]
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT / "src"),
        KERAS_BACKEND=backend,
        TF_CPP_MIN_LOG_LEVEL="3",
        **thread_env(threads),
        **malloc_env(backend),
        # Every run compiles its steps, as the peers' do: no programs from an earlier round's run.
        RECLAYERS_COMPILATION_CACHE="0",
    )
    res: dict = {"who": f"reclayers/{backend}", "cmd": " ".join(cmd[3:]), "loadavg_before": os.getloadavg()}
    seen: dict = {}
    t0 = time.perf_counter()
    log = work / f"ours-{model}-{backend}-{batch}{tag}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            ["nice", "-n", "19", *cpu_limit(threads, backend == "jax"), *cmd], cwd=ROOT, env=env,
            stdout=fh, stderr=subprocess.STDOUT,
        )
        peak = wait_measured(proc, timeout, lambda: _poll_state(run_parent, seen))
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    res["peak_rss_mib"] = peak
    if proc.returncode is None:
        res["error"] = f"timeout after {timeout}s"
    res["rc"] = proc.returncode
    _poll_state(run_parent, seen)
    runs = sorted(run_parent.glob("*/metrics.json"))
    if proc.returncode != 0 or not runs:
        res.setdefault("error", f"rc={proc.returncode}: {log.read_text()[-600:]}")
        return res
    metrics = json.loads(runs[-1].read_text())
    history = json.loads((runs[-1].parent / "history.json").read_text())
    res["params"] = metrics["parameters"]
    res["test_auc"] = metrics["test"]["click"]["auc"]
    res["bayes_test_auc"] = metrics.get("bayes_optimal_auc", {}).get("click")
    res["valid_auc"] = history[-1]["valid_auc"]
    res["cli_examples_per_s_all_epochs"] = metrics["examples_per_second"]
    if len(history) == epochs and all("train_seconds" in h and "train_examples" in h for h in history):
        # a CLI that records each epoch's own time in history.json: use it directly
        res["epoch_times_from"] = "history.json"
        res.update(_rates([h["train_seconds"] for h in history], [h["train_examples"] for h in history]))
        return res
    res["epoch_times_from"] = "checkpoint/ckpt-*/state.json (polled)"
    cum = [seen.get(e) for e in range(1, epochs + 1)]
    if any(c is None for c in cum):
        res["error"] = (
            f"missed per-epoch state for epochs {[e + 1 for e, c in enumerate(cum) if c is None]}; "
            f"only the CLI's all-epoch figure is valid"
        )
        return res
    secs = [cum[0][0]] + [cum[i][0] - cum[i - 1][0] for i in range(1, epochs)]
    n = [cum[0][1]] + [cum[i][1] - cum[i - 1][1] for i in range(1, epochs)]
    res.update(_rates(secs, n))
    return res


def _rates(secs: list, n: list) -> dict:
    out = {"epoch_s": [round(s, 3) for s in secs], "first_epoch_s": round(secs[0], 3)}
    if len(secs) > 1:
        out["examples_per_s"] = round(sum(n[1:]) / sum(secs[1:]), 1)
        out["best_epoch_examples_per_s"] = round(max(k / s for k, s in zip(n[1:], secs[1:])), 1)
    else:
        out["examples_per_s"] = round(n[0] / secs[0], 1)
    out["first_epoch_examples_per_s"] = round(n[0] / secs[0], 1)
    return out


# -------------------------------------------------------------------------------------------- peers
def _load(data_dir: str, model: str):
    import numpy as np

    meta = json.loads((Path(data_dir) / f"{model}.json").read_text())
    with np.load(Path(data_dir) / f"{model}.npz") as z:
        arrays = {k: z[k] for k in z.files}
    splits = {}
    for key, v in arrays.items():
        split, name = key.split("/", 1)
        splits.setdefault(split, {})[name] = v
    return meta, splits


def _auc(y, p) -> float:
    """ROC AUC (Mann-Whitney, tied scores share their mean rank): the peers' venvs need no sklearn."""
    import numpy as np

    y, p = np.asarray(y).reshape(-1) > 0.5, np.asarray(p, np.float64).reshape(-1)
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    ranks = (upper - (counts - 1) / 2.0)[inverse]  # 1-based mean rank of each score's tie group
    pos = int(y.sum())
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * (len(y) - pos)))


def _deepctr_columns(meta: dict, SparseFeat, DenseFeat, VarLenSparseFeat) -> tuple[list, dict | None]:
    """DeepCTR's feature columns (DeepCTR and DeepCTR-Torch share the API; their classes are
    passed in) for the data's fields, and the sequence field (``None`` without one)."""
    cols, seq = [], None
    for f in meta["fields"]:
        if f["kind"] == "categorical":
            cols.append(SparseFeat(f["name"], f["num_buckets"], embedding_dim=EMB))
        elif f["kind"] == "dense":
            # DeepCTR feeds numeric fields raw into the DNN/cross input; ours embeds each as x·v
            # (16 wide). A 16-wide DenseFeat holding the value 16 times gives the same input width.
            cols.append(DenseFeat(f["name"], EMB))
        elif f["kind"] == "sequence":
            seq = f
            cols.append(VarLenSparseFeat(
                SparseFeat(f["name"], f["num_buckets"], embedding_dim=EMB, embedding_name=f["table"]),
                maxlen=10, length_name="seq_length"))
    return cols, seq


def _deepctr_inputs(meta: dict, seq: dict | None, part: dict) -> dict:
    """One split as DeepCTR's ``fit`` takes it: numeric values repeated 16 wide, sequence lengths."""
    import numpy as np

    x = {}
    for f in meta["fields"]:
        v = part[f["name"]]
        if f["kind"] == "dense":
            v = np.repeat(v.astype(np.float32)[:, None], EMB, axis=1)
        x[f["name"]] = v
    if seq is not None:
        x["seq_length"] = part[seq["name"] + "_mask"].sum(1).astype(np.int64)
    return x


def _deepctr_torch(model: str, meta: dict, splits: dict, batch: int, epochs: int, tmp: str) -> dict:
    import torch
    from deepctr_torch.callbacks import Callback
    from deepctr_torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat
    from deepctr_torch.models import DCN, DIN

    cols, seq = _deepctr_columns(meta, SparseFeat, DenseFeat, VarLenSparseFeat)

    def inputs(part: dict) -> dict:
        return _deepctr_inputs(meta, seq, part)

    common = {
        "dnn_hidden_units": tuple(HIDDEN),
        "dnn_activation": "relu",
        "l2_reg_embedding": 0.0,
        "l2_reg_dnn": 0.0,
        "seed": 0,
        "task": "binary",
        "device": "cpu",
    }
    if model == "dcn_v2":
        net = DCN(
            [],
            cols,
            cross_num=CROSS_LAYERS,
            cross_parameterization="matrix",
            l2_reg_linear=0.0,
            l2_reg_cross=0.0,
            **common,
        )
        how = "deepctr_torch.models.DCN(cross_parameterization='matrix', linear part empty)"
    else:
        net = DIN(
            cols,
            [seq["table"]],
            att_hidden_size=tuple(ATT_HIDDEN),
            att_activation="relu",
            att_weight_normalization=False,
            **common,
        )
        how = "deepctr_torch.models.DIN(att_activation='relu', att_weight_normalization=False)"
    net.compile(torch.optim.Adam(net.parameters(), lr=LR), "binary_crossentropy", metrics=[])
    x_train, y_train = inputs(splits["train"]), splits["train"]["label_click"]
    x_valid = inputs(splits["valid"])
    times: list = []

    class Timer(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    net.fit(x_train, y_train, batch_size=batch, epochs=epochs, verbose=0, shuffle=True, callbacks=[Timer()])
    p = net.predict(x_valid, batch_size=4096).reshape(-1)
    res = {
        "how": how + "; model.fit(x, y, batch_size, epochs, shuffle=True, verbose=0), "
        "Adam(lr=1e-3), loss binary_crossentropy (reduction='sum', as its fit does)",
        "params": int(sum(q.numel() for q in net.parameters())),
        "valid_auc": _auc(splits["valid"]["label_click"], p),
    }
    res.update(_rates(times, [len(y_train)] * len(times)))
    return res


def fuxictr_dcn_v2(fmap, **kw):
    """FuxiCTR's DCNv2 with our zoo's shapes (parallel, 2 full-rank CrossNetV2 layers, MLP 128-64
    ReLU); ``kw`` are FuxiCTR's ``BaseModel`` options. The pip package ships the LongCTR DCNv2
    (which also pools a behaviour sequence); without a sequence its forward is FuxiCTR's plain
    DCNv2: embeddings → CrossNetV2 ∥ MLP → Linear."""
    import torch
    from model_zoo.LongCTR.DCNv2.DCNv2 import DCNv2

    class FlatDCNv2(DCNv2):
        def forward(self, inputs):
            batch_dict, _, _ = self.get_inputs(inputs)
            emb = self.embedding_layer(batch_dict, flatten_emb=True)
            out = torch.cat([self.crossnet(emb), self.parallel_dnn(emb)], dim=-1)
            return {"y_pred": self.output_activation(self.fc(out))}

    return FlatDCNv2(fmap, model_structure="parallel", use_low_rank_mixture=False,
                     parallel_dnn_hidden_units=HIDDEN, dnn_activations="ReLU",
                     num_cross_layers=CROSS_LAYERS, **kw)


def _fuxictr(model: str, meta: dict, splits: dict, batch: int, epochs: int, tmp: str) -> dict:
    import numpy as np
    import torch
    from fuxictr.features import FeatureMap

    fmap = FeatureMap("e2e_synthetic", tmp)
    seq = next((f for f in meta["fields"] if f["kind"] == "sequence"), None)
    item = seq["table"] if seq else None
    for f in meta["fields"]:
        if f["kind"] == "dense":
            fmap.features[f["name"]] = {"type": "numeric", "source": ""}
        elif f["kind"] == "categorical":
            # DIN: the target item is FuxiCTR's "item" feature (its history shares the table)
            fmap.features[f["name"]] = {
                "type": "categorical",
                "vocab_size": f["num_buckets"],
                "source": "item" if f["name"] == item else "",
            }
    fmap.labels = ["click"]
    fmap.default_emb_dim = EMB
    fmap.num_fields = fmap.get_num_fields()
    kw = {
        "gpu": -1,
        "learning_rate": LR,
        "embedding_dim": EMB,
        "net_dropout": 0,
        "batch_norm": False,
        "embedding_regularizer": None,
        "net_regularizer": None,
        "optimizer": "adam",
        "loss": "binary_crossentropy",
        "verbose": 0,
        "model_root": tmp,
        "metrics": ["AUC"],
    }
    if model == "dcn_v2":
        net = fuxictr_dcn_v2(fmap, **kw)
        how = "model_zoo.LongCTR.DCNv2 (parallel, CrossNetV2, forward without the sequence part)"
    else:
        from model_zoo.LongCTR.DIN.DIN import DIN

        net = DIN(
            fmap,
            dnn_hidden_units=HIDDEN,
            dnn_activations="ReLU",
            attention_hidden_units=ATT_HIDDEN,
            attention_hidden_activations="ReLU",
            attention_output_activation=None,
            din_use_softmax=False,
            **kw,
        )
        how = "model_zoo.LongCTR.DIN (attention ReLU, no softmax)"

    def batches(part: dict, shuffle: bool, rng):
        n = len(part["label_click"])
        order = rng.permutation(n) if shuffle else np.arange(n)
        for s in range(0, n, batch):
            idx = order[s : s + batch]
            bd = {
                f["name"]: torch.from_numpy(part[f["name"]][idx])
                for f in meta["fields"]
                if f["kind"] != "sequence" and f["name"] != item
            }
            bd["click"] = torch.from_numpy(part["label_click"][idx])
            items, mask = {}, torch.zeros(len(idx), 0)
            if seq is not None:
                ids = np.concatenate([part[seq["name"]][idx], part[item][idx][:, None]], axis=1)
                items = {item: torch.from_numpy(ids.astype(np.int64))}
                mask = torch.from_numpy(part[seq["name"] + "_mask"][idx].astype(np.float32))
            yield bd, items, mask

    class Epoch:
        """What FuxiCTR's data loaders give ``fit``: an iterable of batches with a length."""

        def __init__(self, part, shuffle, rng):
            self.part, self.shuffle, self.rng = part, shuffle, rng

        def __len__(self):
            return -(-len(self.part["label_click"]) // batch)

        def __iter__(self):
            return batches(self.part, self.shuffle, self.rng)

    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    # what BaseModel.fit sets up before its epoch loop (no evaluation inside the timed epochs)
    train = Epoch(splits["train"], True, rng)
    net._max_gradient_norm, net._total_steps, net._batch_index = 10.0, 0, 0
    net._stop_training, net._steps_per_epoch, net._eval_steps = False, len(train), 10**12
    times = []
    for epoch in range(epochs):
        net._epoch_index = epoch
        t = time.perf_counter()
        net.train_epoch(train)
        times.append(time.perf_counter() - t)
    net.eval()
    with torch.no_grad():
        p = np.concatenate([net(b)["y_pred"].numpy().reshape(-1) for b in Epoch(splits["valid"], False, rng)])
    n_train = len(splits["train"]["label_click"])
    res = {
        "how": how + "; BaseModel.train_epoch per epoch (as its fit runs it: Adam(lr=1e-3), "
        "binary_crossentropy, clip_grad_norm 10), batches of torch tensors from numpy",
        "params": int(sum(q.numel() for q in net.parameters())),
        "valid_auc": _auc(splits["valid"]["label_click"], p),
    }
    res.update(_rates(times, [n_train] * len(times)))
    return res


def _deepctr(model: str, meta: dict, splits: dict, batch: int, epochs: int, tmp: str) -> dict:
    """DeepCTR (TensorFlow, tf-keras 2): its ``DCN(cross_parameterization="matrix")`` / ``DIN``
    trained by its own ``model.fit`` (tf-keras's default graph mode, as the library is used)."""
    import tensorflow as tf
    from deepctr.feature_column import DenseFeat, SparseFeat, VarLenSparseFeat
    from deepctr.models import DCN, DIN

    tf.random.set_seed(0)
    cols, seq = _deepctr_columns(meta, SparseFeat, DenseFeat, VarLenSparseFeat)

    def inputs(part: dict) -> dict:
        return _deepctr_inputs(meta, seq, part)

    common = {"dnn_hidden_units": tuple(HIDDEN), "dnn_activation": "relu", "l2_reg_embedding": 0.0,
              "l2_reg_dnn": 0.0, "seed": 0, "task": "binary"}
    if model == "dcn_v2":
        net = DCN([], cols, cross_num=CROSS_LAYERS, cross_parameterization="matrix", l2_reg_linear=0.0,
                  l2_reg_cross=0.0, **common)
        how = "deepctr.models.DCN(cross_parameterization='matrix', linear part empty)"
    else:
        net = DIN(cols, [seq["table"]], att_hidden_size=tuple(ATT_HIDDEN), att_activation="relu",
                  att_weight_normalization=False, **common)
        how = "deepctr.models.DIN(att_activation='relu', att_weight_normalization=False)"
    net.compile(tf.keras.optimizers.Adam(LR), "binary_crossentropy")
    times: list = []

    class Timer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    y_train = splits["train"]["label_click"]
    net.fit(inputs(splits["train"]), y_train, batch_size=batch, epochs=epochs, verbose=0, shuffle=True,
            callbacks=[Timer()])
    p = net.predict(inputs(splits["valid"]), batch_size=4096, verbose=0).reshape(-1)
    res = {
        "how": how + "; model.fit(x, y, batch_size, epochs, shuffle=True) of tf-keras 2 (its default "
        "tf.function graph, no XLA), Adam(1e-3), binary_crossentropy",
        "params": int(net.count_params()),
        "valid_auc": _auc(splits["valid"]["label_click"], p),
        "framework": f"tensorflow {tf.__version__}",
    }
    res.update(_rates(times, [len(y_train)] * len(times)))
    return res


def _keras_rs(model: str, meta: dict, splits: dict, batch: int, epochs: int, tmp: str) -> dict:
    """keras-rs on JAX: it ships the DCN-V2 cross layer (``keras_rs.layers.FeatureCross``), not a
    model, so the model is composed as its DCN example composes it, with our zoo's shapes: one
    ``Embedding(16)`` per categorical field, ``x·v`` (a bias-free ``Dense(16)``) per numeric field
    plus the raw values (ours' 196-wide input), 2 full-rank ``FeatureCross`` ∥ MLP 128-64 ReLU →
    ``Dense(1, sigmoid)``; Keras's ``model.fit`` (``jax.jit``)."""
    import keras
    import keras_rs
    import numpy as np

    if model != "dcn_v2":
        raise ValueError(PEER_ABSENT[("keras_rs", model)])
    keras.utils.set_random_seed(0)
    ins, parts, raw = {}, [], []
    for f in meta["fields"]:
        if f["kind"] == "categorical":
            ins[f["name"]] = keras.Input((), dtype="int32", name=f["name"])
            parts.append(keras.layers.Embedding(f["num_buckets"], EMB)(ins[f["name"]]))
        elif f["kind"] == "dense":
            ins[f["name"]] = keras.Input((1,), name=f["name"])
            parts.append(keras.layers.Dense(EMB, use_bias=False)(ins[f["name"]]))
            raw.append(ins[f["name"]])
    x0 = keras.layers.Concatenate()(parts + raw)
    cross = x0
    for _ in range(CROSS_LAYERS):
        cross = keras_rs.layers.FeatureCross()(x0, cross)
    deep = x0
    for units in HIDDEN:
        deep = keras.layers.Dense(units, activation="relu")(deep)
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Concatenate()([cross, deep]))
    net = keras.Model(ins, out)
    net.compile(keras.optimizers.Adam(LR), "binary_crossentropy")
    times: list = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    def inputs(part: dict) -> dict:
        return {f["name"]: (part[f["name"]].astype(np.int32) if f["kind"] == "categorical"
                            else part[f["name"]].astype(np.float32)[:, None])
                for f in meta["fields"] if f["name"] in ins}

    y_train = splits["train"]["label_click"]
    net.fit(inputs(splits["train"]), y_train, batch_size=batch, epochs=epochs, verbose=0, shuffle=True,
            callbacks=[Timer()])
    p = np.asarray(net.predict(inputs(splits["valid"]), batch_size=4096, verbose=0)).reshape(-1)
    res = {
        "how": "keras_rs.layers.FeatureCross x2 (full rank) ∥ MLP 128-64 ReLU, Embedding(16) per "
        "categorical field, x·v + raw value per numeric field; keras.Model.fit on JAX (jax.jit), "
        "Adam(1e-3), binary_crossentropy",
        "params": int(net.count_params()),
        "valid_auc": _auc(splits["valid"]["label_click"], p),
        "framework": f"keras {keras.__version__} on {keras.backend.backend()}, "
        f"keras-rs {keras_rs.__version__}",
    }
    res.update(_rates(times, [len(y_train)] * len(times)))
    return res


def peer_main(peer: str, model: str, data_dir: str, out: str, batch: int, epochs: int) -> None:
    """``python -m benchmarks.e2e peer PEER MODEL DATA_DIR OUT.json BATCH EPOCHS`` (in the peer's venv)."""
    framework = PEER_FRAMEWORK[peer]
    if framework == "tensorflow":
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # DeepCTR is written for tf.keras 2
    elif framework == "jax":
        os.environ["KERAS_BACKEND"] = "jax"
    meta, splits = _load(data_dir, model)
    extra = {}
    if framework == "torch":
        import torch

        torch.set_num_threads(int(os.environ.get("RECLAYERS_BENCH_THREADS", torch.get_num_threads())))
        torch.manual_seed(0)
        extra = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        fn = {"deepctr_torch": _deepctr_torch, "fuxictr": _fuxictr, "deepctr": _deepctr,
              "keras_rs": _keras_rs}[peer]
        res = fn(model, meta, splits, batch, epochs, tmp)
    res.update(extra)
    Path(out).write_text(json.dumps(res, indent=1))


def run_peer(
    peer: str, model: str, data_dir: Path, batch: int, epochs: int, work: Path, timeout: int, threads: int = 0
) -> dict:
    from benchmarks import peers_setup

    res: dict = {"who": PEER_LABELS[peer], "loadavg_before": os.getloadavg()}
    if (peer, model) in PEER_ABSENT:
        res["absent"] = PEER_ABSENT[(peer, model)]
        return res
    py = peers_setup.venv_python(peer)
    if not py.exists():
        res["error"] = "not installed: run python -m benchmarks --setup-peers"
        return res
    out = work / f"{peer}-{model}-{batch}.json"  # rewritten by each round
    out.unlink(missing_ok=True)
    cmd = [
        str(py),
        "-m",
        "benchmarks.e2e",
        "peer",
        peer,
        model,
        str(data_dir),
        str(out),
        str(batch),
        str(epochs),
    ]
    t0 = time.perf_counter()
    log = work / f"{peer}-{model}-{batch}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            ["nice", "-n", "19", *cpu_limit(threads, peer == "keras_rs"), *cmd],
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=str(ROOT), **thread_env(threads),
                     **malloc_env(PEER_FRAMEWORK[peer])),
        )
        res["peak_rss_mib"] = wait_measured(proc, timeout)
    rc = "timeout" if proc.returncode is None else proc.returncode
    tail = f"timeout after {timeout}s" if rc == "timeout" else log.read_text()[-800:]
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    res["rc"] = rc
    if rc == 0 and out.exists():
        res.update(json.loads(out.read_text()))
    else:
        res["error"] = f"rc={rc}: {tail}"
    return res


# ------------------------------------------------------------------------------------------- driver
def run(args, machine: dict) -> dict:
    """Runs the whole end-to-end benchmark; writes ``e2e.json`` and ``e2e.md`` into ``args.out``."""
    t_start = time.perf_counter()
    models = [m for m in args.e2e_models.split(",") if m]
    backends = [b for b in args.backends.split(",") if b]
    # --peers as given; by default the peers of the selected backends' frameworks
    peers = ([p for p in args.peers.replace("keras-rs", "keras_rs").split(",") if p in E2E_PEERS]
             if args.peers else [p for p in E2E_PEERS if PEER_FRAMEWORK[p] in backends])
    batches = [int(b) for b in str(args.e2e_batch).split(",") if b]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "machine": machine,
        "threads": args.e2e_threads,
        "repeats": args.e2e_repeats,
        "plain": bool(getattr(args, "e2e_plain", False)),
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
        "rows": args.e2e_rows,
        "epochs": args.e2e_epochs,
        "batches": batches,
        "models": {},
        "order": [],
    }
    with tempfile.TemporaryDirectory(prefix="reclayers-e2e-") as tmp:
        work = Path(tmp)
        for model in models:
            t = time.perf_counter()
            print(f"== e2e data: {model}, synthetic:{args.e2e_rows}", flush=True)
            proc = subprocess.run(
                [
                    "nice",
                    "-n",
                    "19",
                    sys.executable,
                    "-m",
                    "benchmarks.e2e",
                    "data",
                    str(work),
                    model,
                    str(args.e2e_rows),
                    "0",
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env=dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}:{ROOT}", TF_CPP_MIN_LOG_LEVEL="3"),
            )
            entry = results["models"].setdefault(model, {"runs": {}})
            if proc.returncode:
                entry["error"] = f"data generation failed: {(proc.stdout + proc.stderr)[-800:]}"
                print(f"   {entry['error']}", flush=True)
                continue
            meta = json.loads((work / f"{model}.json").read_text())
            entry["data"] = {k: meta[k] for k in ("info", "splits", "bayes_auc")}
            entry["data"]["fields"] = [f["name"] for f in meta["fields"]]
            entry["data"]["seconds"] = round(time.perf_counter() - t, 1)
            for batch in batches:
                runs = entry["runs"].setdefault(str(batch), {})
                tries: dict = {}
                # ours and the peers alternate (and whole rounds repeat), so a load change hits both sides
                ours_runs = [("ours", b) for b in backends]
                if results["plain"]:
                    ours_runs += [("plain", b) for b in backends]
                order = _interleave(ours_runs, [("peer", p) for p in peers])
                for rep, (kind, name) in [(r, o) for r in range(args.e2e_repeats) for o in order]:
                    plain = kind == "plain"
                    label = f"{model} b{batch} {name}{PLAIN_SUFFIX if plain else ''}" + (
                        f" (round {rep + 1})" if args.e2e_repeats > 1 else ""
                    )
                    print(f"== e2e {label}", flush=True)
                    if kind in ("ours", "plain"):
                        r = run_ours(
                            name,
                            model,
                            args.e2e_rows,
                            batch,
                            args.e2e_epochs,
                            work,
                            args.timeout,
                            args.e2e_threads,
                            tag=f"r{rep}" + ("-plain" if plain else ""),
                            overrides=PLAIN_SET if plain else None,
                        )
                        key = f"reclayers/{name}" + (PLAIN_SUFFIX if plain else "")
                        bayes = meta["bayes_auc"].get("test", {}).get("click")
                        if (
                            "bayes_test_auc" in r
                            and bayes is not None
                            and abs(r["bayes_test_auc"] - bayes) > 1e-9
                        ):
                            r["error"] = (
                                f"the CLI's data differs from the peers' file (Bayes test AUC "
                                f"{r['bayes_test_auc']} vs {bayes})"
                            )
                    else:
                        r = run_peer(
                            name, model, work, batch, args.e2e_epochs, work, args.timeout, args.e2e_threads
                        )
                        r["round"] = rep + 1
                        key = PEER_LABELS[name]
                    tries.setdefault(key, []).append(r)
                    results["order"].append(label)
                    print(f"   {_summary(r)}", flush=True)
                for key, rs in tries.items():
                    runs[key] = _median_run(rs)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["total_s"] = round(time.perf_counter() - t_start, 1)
    (out_dir / "e2e.json").write_text(json.dumps(results, indent=1))
    write_report(results, out_dir)
    print(f"wrote {out_dir / 'e2e.md'} (end-to-end run took {results['total_s']} s)", flush=True)
    return results


def _median_run(rs: list) -> dict:
    """The round whose examples/s is the median (lower median for an even count), with every
    round's figure attached; a single round is returned as is."""
    ok = sorted((r for r in rs if r.get("examples_per_s")), key=lambda r: r["examples_per_s"])
    if not ok:
        return rs[-1]
    best = dict(ok[(len(ok) - 1) // 2])
    if len(rs) > 1:
        best["rounds_examples_per_s"] = [r.get("examples_per_s") for r in rs]
    return best


def _interleave(a: list, b: list) -> list:
    out = []
    for i in range(max(len(a), len(b))):
        out += a[i : i + 1] + b[i : i + 1]
    return out


def _summary(r: dict) -> str:
    if "absent" in r:
        return f"absent: {r['absent']}"
    if "error" in r and "examples_per_s" not in r:
        return f"ERROR {r['error'][-300:]}"
    return (
        f"{r.get('examples_per_s')} ex/s (epochs {r.get('epoch_s')} s), params {r.get('params')}, "
        f"valid AUC {r.get('valid_auc', float('nan')):.4f}, wall {r.get('wall_s')} s"
        + (f"; NOTE {r['error']}" if "error" in r else "")
    )


# ------------------------------------------------------------------------------------------- report
def _f(v, nd=0) -> str:
    return "—" if v is None else f"{v:,.{nd}f}"


def _eps(r: dict) -> str:
    rounds = [v for v in r.get("rounds_examples_per_s", []) if v]
    if len(rounds) > 1:
        return f"{_f(r.get('examples_per_s'))} ({_f(min(rounds))}–{_f(max(rounds))})"
    return _f(r.get("examples_per_s"))


def _threads_text(threads: int) -> str:
    if not threads:
        return "each framework used its default CPU threads (all cores)"
    return (
        f"every framework limited to {threads} CPU thread(s) (`--e2e-threads {threads}`: OMP/MKL/TF "
        "intra-op threads, XLA's Eigen pool, `torch.set_num_threads` in the peers; JAX processes, "
        f"ours and keras-rs's, allowed {threads} CPU(s) by `taskset`, as jaxlib ignores the thread flags)"
    )


def write_report(results: dict, out_dir: Path, name: str = "e2e.md") -> None:
    """Writes the Markdown report of ``results`` to ``out_dir / name``."""
    m = results["machine"]
    epochs = results["epochs"]
    lines = [
        "# reclayers end-to-end training throughput (`reclayers train` against the peer libraries)",
        "",
        f"Run {m['date_utc']} UTC on {m['cpu']} ({m['cores']} cores, {m['memory']}), {m['platform']}; "
        f"load average {tuple(round(x, 2) for x in m['loadavg_start'])} at the start, "
        f"{tuple(round(x, 2) for x in m.get('loadavg_end', (0, 0, 0)))} at the end (1/5/15 min); "
        f"{_threads_text(results.get('threads', 0))}. Every process under `nice -n 19`, one at a time, "
        f"ours and the peers alternating. Whole run: {results.get('total_s')} s"
        + (f" (`{results['command']}`)." if results.get("command") else "."),
        "",
        f"Data: the CLI's `--data synthetic:{results['rows']}` (seed 0, split 0.8/0.1/0.1), the same rows "
        "for every library (written from `reclayers.cli.datasets.prepare`; our runs regenerate them and the "
        "Bayes-optimal test AUC is checked to match). Each model gets the data `reclayers train` gives it: "
        "4 numeric + 8 categorical fields (22 ids each), and for DIN a history `hist_C1` of up to 10 ids "
        "sharing `C1`'s table.",
        "",
        f"{epochs} epochs; **examples/s = training examples of epochs 2..{epochs} / their time** (the first "
        "epoch, which includes tracing/compilation, is listed separately). Ours: epoch times read from the "
        "run "
        "directory (`checkpoint/state.json`, rewritten by the CLI after every epoch with the cumulative time "
        "spent in `model.fit`; `--checkpoint-every 10**9` so no mid-epoch checkpoints are saved, validation "
        "and saving are outside `model.fit`). Peers: their own `fit`/`train_epoch`, timed per epoch.",
        "",
        f"Shapes: embedding {EMB}, MLP {'-'.join(map(str, HIDDEN))} ReLU, DCN-V2 {CROSS_LAYERS} matrix cross "
        f"layers, DIN attention {'-'.join(map(str, ATT_HIDDEN))}-1 ReLU without softmax, Adam(1e-3), "
        "no regularisation. `ratio` = our examples/s ÷ the peer's (>1: we are faster)."
        + (
            f" Every run was repeated {results['repeats']} times in alternating rounds; the round with the "
            "median examples/s (the lower one for an even count) is shown, with the range over the rounds "
            "in brackets."
            if results.get("repeats", 1) > 1
            else ""
        ),
        "",
        "## Summary: examples/s (epochs 2..N)",
        "",
    ]
    backends = [
        b
        for b in SHORT
        if any(
            f"reclayers/{b}" in runs
            for e in results["models"].values()
            for runs in e.get("runs", {}).values()
        )
    ]
    peer_names = [PEER_LABELS[p] for p in E2E_PEERS]
    plain = [b for b in backends if any(
        f"reclayers/{b}{PLAIN_SUFFIX}" in runs for e in results["models"].values()
        for runs in e.get("runs", {}).values())]
    lines += [
        "| model | batch | "
        + " | ".join([f"ours {SHORT[b]}" for b in backends]
                     + [f"ours {SHORT[b]}{PLAIN_SUFFIX}" for b in plain])
        + " | "
        + " | ".join(peer_names)
        + " | best ours ÷ best peer |"
        + (f" best ours{PLAIN_SUFFIX} ÷ best peer |" if plain else ""),
        "|---" * (3 + len(backends) + len(plain) + len(peer_names) + bool(plain)) + "|",
    ]
    for model, entry in results["models"].items():
        for batch, runs in entry.get("runs", {}).items():
            ours = [runs.get(f"reclayers/{b}", {}).get("examples_per_s") for b in backends]
            ours_plain = [runs.get(f"reclayers/{b}{PLAIN_SUFFIX}", {}).get("examples_per_s") for b in plain]
            peers = [runs.get(p, {}).get("examples_per_s") for p in peer_names]
            lines.append(
                f"| {model} | {batch} | " + " | ".join(_f(v) for v in ours + ours_plain + peers)
                + f" | {_best_ratio(ours, peers)} |"
                + (f" {_best_ratio(ours_plain, peers)} |" if plain else "")
            )
    lines.append("")
    if plain:
        lines += [PLAIN_NOTE, ""]
    lines += _torch_pairing(results, peer_names)
    lines += _framework_pairing(results)
    notes = []
    for model, entry in results["models"].items():
        if "error" in entry:
            lines += [f"## {model}", "", f"error: {entry['error']}", ""]
            continue
        for batch, runs in entry["runs"].items():
            ours = {k: v for k, v in runs.items() if k.startswith("reclayers/")}
            peers = {k: v for k, v in runs.items() if not k.startswith("reclayers/")}
            lines += [
                f"## {model}, batch {batch}",
                "",
                "| runner | examples/s | first epoch s | epoch s | peak RSS MiB | params | valid AUC | "
                + " | ".join(f"ratio vs {p}" for p in peers)
                + " |",
                "|---" * (7 + len(peers)) + "|",
            ]
            for who, r in runs.items():
                cells = [
                    who,
                    _eps(r),
                    _f(r.get("first_epoch_s"), 2),
                    ", ".join(f"{s:.2f}" for s in r.get("epoch_s", [])) or "—",
                    _f(r.get("peak_rss_mib")),
                    _f(r.get("params")),
                    _f(r.get("valid_auc"), 4),
                ]
                for pr in peers.values():
                    if who in ours and r.get("examples_per_s") and pr.get("examples_per_s"):
                        cells.append(f"{r['examples_per_s'] / pr['examples_per_s']:.2f}")
                    else:
                        cells.append("")
                lines.append("| " + " | ".join(cells) + " |")
                if "error" in r:
                    notes.append(f"- {model} b{batch} {who}: {r['error'][-400:]!r}")
            bayes = entry["data"]["bayes_auc"].get("valid", {}).get("click")
            lines += [
                "",
                f"Validation AUC after epoch {epochs} for everybody; Bayes-optimal validation AUC (true "
                f"probabilities): {_f(bayes, 4)}; our test AUC (best epoch, from the CLI's metrics.json): "
                + ", ".join(f"{k.split('/')[1]} {_f(v.get('test_auc'), 4)}" for k, v in ours.items()),
                "",
            ]
    lines += ["## How each runner trained", ""]
    seen = set()
    for model, entry in results["models"].items():
        for runs in entry.get("runs", {}).values():
            for who, r in runs.items():
                if "how" in r and (model, who) not in seen:
                    seen.add((model, who))
                    lines.append(f"- {model}, {who}: {r['how']}")
    lines += [
        "- reclayers/<backend>: `reclayers train` (the zoo model compiled by the CLI with Keras's "
        "`jit_compile='auto'`: JAX `jax.jit`; TensorFlow `tf.function` graph, Keras turns XLA off on "
        "CPU-only machines; PyTorch eager), one process per backend with `KERAS_BACKEND` set; data fed by "
        "the CLI's `keras_dataset` (shuffled every epoch).",
        "- DeepCTR-Torch has no numeric-field embedding (numeric values enter the DNN/cross input raw); "
        "each numeric field is given as a 16-wide `DenseFeat` holding the value 16 times, so the input "
        f"width matches ours (ours: {EMB}-wide x·v embeddings plus the 4 raw values). FuxiCTR embeds "
        "numeric fields itself (`Linear(1, 16)`), like ours.",
        "- Input widths: DCN-V2 ours 196 (12 fields × 16 + 4 raw), peers 192; DIN ours 228 (adds the "
        "mean-pooled history field and the 4 raw values), peers 208. The embedding tables are tiny "
        "(22 ids), so almost all parameters are the dense layers; ours also has the weight-norm scales.",
        "",
    ]
    if notes:
        lines += ["## Errors and notes", "", *notes, ""]
    lines += ["Raw numbers (per process, with the load average before each): `e2e.json`.", ""]
    (out_dir / name).write_text("\n".join(lines))


def _best_ratio(ours: list, peers: list) -> str:
    """The fastest of ``ours`` ÷ the fastest of ``peers`` (examples/s; ``None`` entries skipped)."""
    a, b = [v for v in ours if v], [v for v in peers if v]
    return f"{max(a) / max(b):.2f}" if a and b else "—"


def _torch_pairing(results: dict, peer_names: list) -> list:
    """Our PyTorch backend against the PyTorch peers (every peer of this benchmark is one):
    examples/s and peak RSS against FuxiCTR and the fastest peer, and every runner's first epoch
    against the fastest peer's first epoch."""
    rows = []
    for model, entry in results["models"].items():
        for batch, runs in entry.get("runs", {}).items():
            for who in ("reclayers/torch", f"reclayers/torch{PLAIN_SUFFIX}"):
                rows += _torch_row(model, batch, runs, who, peer_names)
    if not rows:
        return []
    return [
        "## PyTorch against the PyTorch peers",
        "",
        "`ours torch ÷ FuxiCTR` and `÷ fastest peer`: examples/s (above 1: we are faster); `RSS`: our "
        "PyTorch process's peak resident memory ÷ FuxiCTR's (below 1: we use less); `first epoch`: "
        "each of our backends' first epoch (compilation included) ÷ the fastest peer's first epoch.",
        "",
        "| model | batch | ours | ours ÷ FuxiCTR | ÷ fastest peer | RSS ÷ FuxiCTR | "
        "first epoch ÷ fastest peer's |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _torch_row(model: str, batch: str, runs: dict, who: str, peer_names: list) -> list:
    """One row of :func:`_torch_pairing` for our runner ``who`` (none if it or every peer is
    missing); the first-epoch cell lists each of our runners."""
    ours = runs.get(who, {})
    peers = {p: runs[p] for p in peer_names if runs.get(p, {}).get("examples_per_s")}
    if not ours.get("examples_per_s") or not peers:
        return []
    best = max(peers, key=lambda p: peers[p]["examples_per_s"])
    fux = peers.get(PEER_LABELS["fuxictr"], {})
    first = min((r["first_epoch_s"] for r in peers.values() if r.get("first_epoch_s")), default=None)

    def ratio(a, b, nd=2):
        return f"{a / b:.{nd}f}" if a and b else "—"

    firsts = ", ".join(
        f"{name.split('/')[1]} {ratio(r.get('first_epoch_s'), first)}"
        for name, r in runs.items() if name.startswith("reclayers/")
    ) if who == "reclayers/torch" or "reclayers/torch" not in runs else "(above)"
    return [
        f"| {model} | {batch} | {who.split('/')[1]} | "
        f"{ratio(ours['examples_per_s'], fux.get('examples_per_s'))} | "
        f"{ratio(ours['examples_per_s'], peers[best]['examples_per_s'])} ({best}) | "
        f"{ratio(ours.get('peak_rss_mib'), fux.get('peak_rss_mib'))} | {firsts} |"
    ]


def _framework_pairing(results: dict) -> list:
    """Our JAX and TensorFlow backends against the peers of their own framework (keras-rs on JAX,
    DeepCTR on TensorFlow): examples/s, peak RSS and first epoch (compilation included), each as
    ours ÷ theirs, with the absolute figures."""
    rows = []
    for backend in ("jax", "tensorflow"):
        names = [PEER_LABELS[p] for p, fw in PEER_FRAMEWORK.items() if fw == backend]
        for model, entry in results["models"].items():
            for batch, runs in entry.get("runs", {}).items():
                ours = runs.get(f"reclayers/{backend}")
                if not ours:
                    continue
                for name in names:
                    peer = runs.get(name)
                    if not peer:
                        continue
                    if "absent" in peer:
                        rows.append(f"| {model} | {batch} | {SHORT[backend]} | {name} | "
                                    f"{peer['absent']} | | | |")
                        continue

                    def pair(key, nd=0, ours=ours, peer=peer):
                        a, b = ours.get(key), peer.get(key)
                        return f"{_f(a, nd)} / {_f(b, nd)} ({a / b:.2f})" if a and b else "—"

                    rows.append(f"| {model} | {batch} | {SHORT[backend]} | {name} | "
                                f"{pair('examples_per_s')} | {pair('peak_rss_mib')} | "
                                f"{pair('first_epoch_s', 2)} | {pair('valid_auc', 4)} |")
    if not rows:
        return []
    return [
        "## JAX and TensorFlow against their framework's peers",
        "",
        "Each cell is ours / the peer's (ratio ours ÷ peer's): examples/s of epochs 2..N (above 1: we "
        "are faster), peak resident memory of the process in MiB (below 1: we use less), first epoch "
        "in seconds, compilation included (below 1: we start faster), validation AUC.",
        "",
        "| model | batch | ours | peer | examples/s | peak RSS MiB | first epoch s | valid AUC |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def main() -> None:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "data":
        write_data(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "report":  # rewrite X.md from X.json, next to it (e2e_torch.json -> e2e_torch.md)
        path = Path(sys.argv[2])
        write_report(json.loads(path.read_text()), path.parent, path.with_suffix(".md").name)
        print(f"wrote {path.with_suffix('.md')}")
    elif cmd == "peer":
        peer_main(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7]))
    else:
        sys.exit("usage: python -m benchmarks --e2e  (this module's 'data'/'peer' commands are internal)")


if __name__ == "__main__":
    main()
