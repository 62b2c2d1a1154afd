"""PyTorch peers (DeepCTR-Torch, FuxiCTR, TorchRec): ``python -m benchmarks.run_torch_peers PEER OUT.json
BATCH WARMUP STEPS``, run with the peer's own venv. Step: forward, ``loss = mean(out**2)``,
backward, ``torch.optim.Adam`` step; eager (these libraries are written for eager mode),
``torch.compile`` when ``RECLAYERS_BENCH_TORCH_COMPILE=1``.
"""

from __future__ import annotations

import functools
import os
import sys
import types
from pathlib import Path

import torch

from benchmarks import common as C

PEER = sys.argv[1]


def _randn(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def _deepctr_torch(name, b):
    from deepctr_torch.layers import core, sequence
    from deepctr_torch.layers import interaction as I
    from deepctr_torch.models.dien import InterestEvolving, InterestExtractor

    flat, fields = [_randn(b, C.D)], [_randn(b, C.F, C.E)]
    seq = [_randn(b, 1, C.E), _randn(b, C.L, C.E), torch.full((b, 1), C.L, dtype=torch.long)]
    table = {
        "MLP": (lambda: core.DNN(C.D, C.MLP_UNITS, activation="relu"), flat),
        "DCN-vector": (lambda: I.CrossNet(C.D, C.LAYERS, "vector"), flat),
        "DCN-matrix": (lambda: I.CrossNet(C.D, C.LAYERS, "matrix"), flat),
        "DCN-mixed": (lambda: I.CrossNetMix(C.D, C.LOW_RANK, C.EXPERTS, C.LAYERS), flat),
        "CIN": (lambda: I.CIN(C.F, C.CIN_UNITS, activation="relu", split_half=False), fields),
        "AutoInt": (lambda: torch.nn.Sequential(*[I.InteractingLayer(C.E, head_num=1, use_res=False)
                                                  for _ in range(C.LAYERS)]), fields),
        "SeNet": (lambda: I.SENETLayer(C.F, reduction_ratio=C.F // 4), fields),
        "DIN": (lambda: sequence.AttentionSequencePoolingLayer(C.DIN_UNITS[:-1], "relu",
                                                               embedding_dim=C.E), seq),
        "DIEN-AUGRU": (lambda: _DIENInterest(InterestExtractor(C.E), InterestEvolving(C.E, gru_type="AUGRU")),
                       [seq[0][:, 0], seq[1], torch.full((b,), C.L, dtype=torch.long)]),
    }
    if name not in table:
        raise C.AbsentError(f"DeepCTR-Torch has no {name} layer")
    factory, inputs = table[name]
    return factory(), inputs


def _fuxictr(name, b):
    from fuxictr.pytorch.layers import (
        CompressedInteractionNet,
        CrossNet,
        CrossNetMix,
        CrossNetV2,
        DIN_Attention,
        MLP_Block,
        SqueezeExcitation,
    )

    flat, fields = [_randn(b, C.D)], [_randn(b, C.F, C.E)]
    seq = [_randn(b, C.E), _randn(b, C.L, C.E), torch.ones(b, C.L)]
    table = {
        "MLP": (lambda: MLP_Block(C.D, C.MLP_UNITS, "ReLU"), flat),
        "DCN-vector": (lambda: CrossNet(C.D, C.LAYERS), flat),
        "DCN-matrix": (lambda: CrossNetV2(C.D, C.LAYERS), flat),
        "DCN-mixed": (lambda: CrossNetMix(C.D, C.LAYERS, C.LOW_RANK, C.EXPERTS), flat),
        "CIN": (lambda: _CINFeatures(CompressedInteractionNet(C.F, C.CIN_UNITS, 1)), fields),
        "SeNet": (lambda: SqueezeExcitation(C.F, reduction_ratio=C.F // 4), fields),
        "DIN": (lambda: DIN_Attention(C.E, C.DIN_UNITS[:-1], "ReLU"), seq),
    }
    if name not in table:
        raise C.AbsentError(f"FuxiCTR has no {name} layer")
    factory, inputs = table[name]
    return factory(), inputs


class _DIENInterest(torch.nn.Module):
    """DeepCTR-Torch's DIEN interest part as its ``DIEN`` model composes it: ``InterestExtractor``
    (a GRU over the behaviour sequence) then ``InterestEvolving`` (attention + AUGRU), like our
    ``DIEN`` layer (GRU extractor, attention, AUGRU). No auxiliary loss (ours has none here)."""

    def __init__(self, extractor, evolving):
        super().__init__()
        self.extractor, self.evolving = extractor, evolving

    def forward(self, query, keys, keys_length):
        interests, _ = self.extractor(keys, keys_length)
        return self.evolving(query, interests, keys_length)


class _CINFeatures(torch.nn.Module):
    """FuxiCTR's CIN ends in a Linear to ``output_dim``; output_dim=1 keeps the extra cost tiny."""

    def __init__(self, cin):
        super().__init__()
        self.cin = cin

    def forward(self, x):
        return self.cin(x)


@functools.cache
def _torchrec_modules():
    """Load TorchRec's pure-PyTorch modules without ``torchrec/__init__`` (which needs fbgemm_gpu)."""
    import importlib.util

    spec = importlib.util.find_spec("torchrec")
    if spec is None:
        raise ImportError("torchrec is not installed")
    root = Path(spec.submodule_search_locations[0])
    for pkg, path in (("torchrec", root), ("torchrec.modules", root / "modules")):
        if pkg not in sys.modules:
            mod = types.ModuleType(pkg)
            mod.__path__ = [str(path)]
            sys.modules[pkg] = mod
    import torchrec.modules.crossnet as crossnet
    import torchrec.modules.mlp as mlp
    return crossnet, mlp


def _torchrec(name, b):
    crossnet, mlp = _torchrec_modules()
    flat = [_randn(b, C.D)]
    table = {
        "MLP": lambda: mlp.MLP(C.D, C.MLP_UNITS, activation=torch.relu),
        "DCN-vector": lambda: crossnet.VectorCrossNet(C.D, C.LAYERS),
        "DCN-matrix": lambda: crossnet.CrossNet(C.D, C.LAYERS),
        "DCN-mixed": lambda: crossnet.LowRankMixtureCrossNet(C.D, C.LAYERS, C.EXPERTS, C.LOW_RANK),
    }
    if name not in table:
        raise C.AbsentError(f"TorchRec has no {name} layer")
    return table[name](), flat


BUILDERS = {"deepctr_torch": _deepctr_torch, "fuxictr": _fuxictr, "torchrec": _torchrec}


def _float_leaves(obj):
    """Every floating-point tensor in ``obj`` (nested lists/tuples/dicts of tensors)."""
    if torch.is_tensor(obj):
        return [obj] if obj.is_floating_point() else []
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _float_leaves(item)]
    return []


def measure(name, b, warmup, steps):
    torch.manual_seed(0)
    module, inputs = BUILDERS[PEER](name, b)
    fwd = module
    mode = "eager"
    if os.environ.get("RECLAYERS_BENCH_TORCH_COMPILE") == "1":
        fwd, mode = torch.compile(module), "torch.compile"
    params = list(module.parameters())
    opt = torch.optim.Adam(params, lr=1e-3) if params else None
    floats = _float_leaves(inputs)
    for t in floats:  # input gradients too, as when embeddings feed the layer
        t.requires_grad_(True)

    def step():
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        for t in floats:
            t.grad = None
        out = fwd(*inputs)
        outs = out if isinstance(out, (list, tuple)) else [out]
        loss = sum(o.float().pow(2).mean() for o in outs if torch.is_tensor(o) and o.is_floating_point())
        loss.backward()
        if opt is not None:
            opt.step()
        return loss.item()

    res = C.time_steps(step, warmup, steps)
    res["compiled"] = mode
    res["params"] = sum(p.numel() for p in module.parameters())
    return res


def main():
    out_path, b, warmup, steps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(int(os.environ.get("RECLAYERS_BENCH_THREADS", torch.get_num_threads())))
    info = {"peer": PEER, "torch": torch.__version__, "batch": b, "rows": {}}
    C.measure_rows(PEER, info, out_path, lambda name: measure(name, b, warmup, steps))


if __name__ == "__main__":
    main()
