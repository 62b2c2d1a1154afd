"""PyTorch peers on the data of ``benchmarks.sparse_embeddings``: DCN-V2 and DeepFM of DeepCTR-Torch
and FuxiCTR, trained with dense ``nn.Embedding`` + Adam and with sparse gradients + ``SparseAdam``.

Run by ``python -m benchmarks.sparse_embeddings --peers ...`` in each peer's own venv::

    python -m benchmarks.sparse_peers PEER DATA.npz MODELS BATCH WARMUP STEPS [REPEATS]

``DATA.npz`` holds the Criteo-shaped rows that ``sparse_embeddings`` trains our models on (13
counts ``I*``, 26 ids ``C*``, ``click``; the last ``n_test`` rows are the test split) and ``vocab``,
the rows of each table. Prints one JSON line per (model, mode), as ``sparse_embeddings`` does.

The models match the zoo's defaults: embedding width 16, MLP [128, 64], two full-rank cross layers
(DCN-V2); Adam(1e-3), binary cross-entropy, no L2 (the zoo's ``embedding_l2`` is 0).

- DeepCTR-Torch: its own ``DCN(cross_parameterization="matrix")`` and ``DeepFM`` models, trained
  by a plain loop over their ``forward`` (their ``fit`` adds a ``DataLoader`` and a progress bar
  per batch). Its models always build ``nn.Embedding(sparse=False)``; the ``sparse`` mode sets the
  modules' ``sparse`` flag after construction (not an option of its API) and steps the tables with
  ``torch.optim.SparseAdam``, the other weights with Adam.
- FuxiCTR: the package ships layers, not the model zoo, so the two models are composed as its zoo
  composes them: ``FeatureEmbedding`` (``nn.Embedding`` per field, ``Linear(1, 16)`` per count),
  then ``CrossNetV2`` ∥ ``MLP_Block`` → ``Linear`` (DCN-V2), or ``FactorizationMachine`` (first
  order + FM) + ``MLP_Block`` (DeepFM). ``sparse`` as for DeepCTR-Torch.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

from benchmarks.sparse_embeddings import auc  # stdlib-only at import: loads in the peers' venvs

N_CAT, N_DENSE, DIM, HIDDEN = 26, 13, 16, [128, 64]
DENSE_NAMES = [f"I{i + 1}" for i in range(N_DENSE)]
CAT_NAMES = [f"C{i + 1}" for i in range(N_CAT)]


# --- DeepCTR-Torch ---------------------------------------------------------------------------------
def _deepctr_torch(name: str, vocab: int):
    from deepctr_torch.inputs import DenseFeat, SparseFeat, get_feature_names
    from deepctr_torch.models import DCN, DeepFM

    columns = [SparseFeat(c, vocabulary_size=vocab, embedding_dim=DIM) for c in CAT_NAMES] + [
        DenseFeat(d, 1) for d in DENSE_NAMES
    ]
    common = dict(dnn_hidden_units=HIDDEN, l2_reg_linear=0.0, l2_reg_embedding=0.0, l2_reg_dnn=0.0,
                  device="cpu", seed=0)
    if name == "dcn_v2":
        model = DCN(columns, columns, cross_num=2, cross_parameterization="matrix", l2_reg_cross=0.0,
                    **common)
    else:
        model = DeepFM(columns, columns, **common)
    names = get_feature_names(columns)

    def inputs(x: dict, rows: slice):
        return (torch.from_numpy(np.stack([x[n][rows].astype("float32") for n in names], axis=1)),)

    return model, inputs


# --- FuxiCTR ---------------------------------------------------------------------------------------
class _FuxiModel(torch.nn.Module):
    def __init__(self, name: str, vocab: int):
        from fuxictr.features import FeatureMap
        from fuxictr.pytorch.layers import CrossNetV2, FactorizationMachine, FeatureEmbedding, MLP_Block

        super().__init__()
        fmap = FeatureMap("criteo_shaped", "/tmp")
        for d in DENSE_NAMES:
            fmap.features[d] = {"type": "numeric", "source": ""}
        for c in CAT_NAMES:
            fmap.features[c] = {"type": "categorical", "source": "", "vocab_size": vocab}
        fmap.num_fields = fmap.get_num_fields()
        self.name = name
        self.embedding = FeatureEmbedding(fmap, DIM)
        width = fmap.num_fields * DIM
        if name == "dcn_v2":
            self.cross = CrossNetV2(width, 2)
            self.mlp = MLP_Block(width, output_dim=None, hidden_units=HIDDEN, hidden_activations="ReLU")
            self.out = torch.nn.Linear(width + HIDDEN[-1], 1)
        else:
            self.fm = FactorizationMachine(fmap)
            self.mlp = MLP_Block(width, output_dim=1, hidden_units=HIDDEN, hidden_activations="ReLU")

    def forward(self, x: dict):
        emb = self.embedding(x)  # [B, fields, D]
        flat = emb.flatten(start_dim=1)
        if self.name == "dcn_v2":
            logit = self.out(torch.cat([self.cross(flat), self.mlp(flat)], dim=-1))
        else:
            logit = self.fm(x, emb) + self.mlp(flat)
        return torch.sigmoid(logit)


def _fuxictr(name: str, vocab: int):
    model = _FuxiModel(name, vocab)

    def inputs(x: dict, rows: slice):
        return ({n: torch.from_numpy(x[n][rows]) for n in DENSE_NAMES + CAT_NAMES},)

    return model, inputs


BUILDERS = {"deepctr_torch": _deepctr_torch, "fuxictr": _fuxictr}


# --- training --------------------------------------------------------------------------------------
def _optimizers(model: torch.nn.Module, mode: str) -> list:
    tables = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    if mode == "dense":
        return [torch.optim.Adam(model.parameters(), lr=1e-3)]
    for m in tables:
        m.sparse = True
    table_params = {id(m.weight) for m in tables}
    rest = [p for p in model.parameters() if id(p) not in table_params]
    return [torch.optim.SparseAdam([m.weight for m in tables], lr=1e-3), torch.optim.Adam(rest, lr=1e-3)]


def _steps(model: torch.nn.Module, opts: list, batches: list) -> None:
    loss_fn = torch.nn.BCELoss()
    for feats, label in batches:
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss = loss_fn(model(*feats), label)
        loss.backward()
        for o in opts:
            o.step()


def run(peer: str, path: str, names: list, batch: int, warmup: int, steps: int, repeats: int = 1) -> None:
    data = np.load(path)
    x = {k: data[k] for k in DENSE_NAMES + CAT_NAMES}
    y = data["click"].astype("float32").reshape(-1, 1)
    vocab, n_test, target = int(data["vocab"]), int(data["n_test"]), int(data["target_rows"])
    n_train = len(y) - n_test
    for name in names:
        for mode in ("sparse", "dense"):
            torch.manual_seed(0)
            model, inputs = BUILDERS[peer](name, vocab)
            opts = _optimizers(model, mode)
            batches = [(inputs(x, slice(i * batch, (i + 1) * batch)),
                        torch.from_numpy(y[i * batch:(i + 1) * batch])) for i in range(n_train // batch)]
            model.train()
            _steps(model, opts, batches[:warmup])
            walls = []
            for repeat in range(repeats):  # the fastest pass counts, as in sparse_embeddings
                t0 = time.perf_counter()
                _steps(model, opts, batches[warmup:warmup + steps])
                walls.append(time.perf_counter() - t0)
                if repeat == 0:
                    model.eval()
                    with torch.no_grad():
                        pred = torch.cat([model(*inputs(x, slice(i, min(i + 8192, len(y)))))
                                          for i in range(n_train, len(y), 8192)]).numpy()
                    model.train()
            seconds = min(walls)
            tables = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
            print(json.dumps({
                "backend": f"peer:{peer}", "model": name, "mode": mode,
                "embedding_optimizer": "SparseAdam (sparse grads)" if mode == "sparse" else "adam (dense)",
                "target_rows": target, "table_rows": sum(int(m.weight.shape[0]) for m in tables),
                "params": sum(p.numel() for p in model.parameters()),
                "rows_per_s": steps * batch / seconds, "seconds": seconds, "repeat_seconds": walls,
                "test_auc": auc(y[n_train:], pred), "load_avg": os.getloadavg()[0],
            }), flush=True)
            del model, opts, batches


if __name__ == "__main__":
    peer, path, names, batch, warmup, steps = sys.argv[1:7]
    repeats = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    run(peer, path, names.split(","), int(batch), int(warmup), int(steps), repeats)
