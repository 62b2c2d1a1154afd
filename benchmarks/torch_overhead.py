"""Where a PyTorch per-layer row's time goes: Keras's host work against the arithmetic.

For the rows where our PyTorch backend trails the fastest PyTorch peer, each step (forward,
``loss = mean(out**2)``, backward, ``torch.optim.Adam``; one CPU thread) is timed in four forms,
in one process, alternating, so the differences are not machine noise:

* ``ours, keras.Model``: the per-layer benchmark's step through a functional ``keras.Model``
  (``run_keras.lean_step`` without ``call``; the benchmark itself now calls the layer);
* ``ours, layer``: the same layer called directly, without the functional ``keras.Model``;
* ``our math, plain torch``: the layer's exact arithmetic written as a ``torch.nn.Module``
  (weight-normalised kernels with their gains and biases where ours has them);
* ``peer's math, plain torch``: the peer's arithmetic (FuxiCTR's ``SqueezeExcitation``: Linear
  layers without bias and ReLU gates; TorchRec's MLP of ``nn.Linear`` layers; FuxiCTR's
  ``CrossNet`` / ``CrossNetV2`` with ``nn.Linear``) as a module.

``ours, layer`` − ``our math`` is what Keras costs on the host (its ``Layer.__call__``, the
``keras.ops`` conversions and dtype checks); ``our math`` − ``peer's math`` is what the
definition costs (weight normalisation, the sigmoid gate, biases).

    python -m benchmarks.torch_overhead --batch 1024 --out benchmarks/results/torch_overhead
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from reclayers.allocator import tune_malloc

# This one process is every arm: the allocator setting `reclayers train` gives PyTorch, applied
# before torch starts its threads (``--no-malloc-tuning`` is not offered: one setting for all arms).
MALLOC = tune_malloc("torch")
os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import torch  # noqa: E402

from benchmarks import common as C  # noqa: E402
from benchmarks import run_keras as RK  # noqa: E402

ROWS = ("SeNet", "MLP", "DCN-vector", "DCN-matrix")
FORMS = ("ours, keras.Model", "ours, layer", "our math, plain torch", "peer's math, plain torch")


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


class _WeightNormDense(torch.nn.Module):
    """Our ``Dense``: ``act(x @ (V · g · rsqrt(max(Σ V², 1e-6))) + b)``."""

    def __init__(self, fan_in: int, units: int, activation) -> None:
        super().__init__()
        self.kernel = torch.nn.Parameter(torch.randn(fan_in, units, generator=_generator()) * 0.05)
        self.gain = torch.nn.Parameter(torch.ones(units))
        self.bias = torch.nn.Parameter(torch.zeros(units))
        self.activation = activation

    def forward(self, x):
        factor = torch.rsqrt(torch.clamp_min((self.kernel ** 2).sum(0, keepdim=True), 1e-6)) * self.gain
        return self.activation(x @ (self.kernel * factor) + self.bias)


class _OurSeNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.squeeze = _WeightNormDense(C.F, 4, torch.relu)
        self.excite = _WeightNormDense(4, C.F, torch.sigmoid)

    def forward(self, x):
        return (x * self.excite(self.squeeze(x.mean(2)))[:, :, None]).reshape(x.shape[0], -1)


class _PeerSeNet(torch.nn.Module):
    """FuxiCTR's ``SqueezeExcitation`` (reduction ratio F/4): mean, Linear, ReLU, Linear, ReLU."""

    def __init__(self) -> None:
        super().__init__()
        reduced = max(1, int(C.F / (C.F // 4)))
        self.excite = torch.nn.Sequential(
            torch.nn.Linear(C.F, reduced, bias=False), torch.nn.ReLU(),
            torch.nn.Linear(reduced, C.F, bias=False), torch.nn.ReLU())

    def forward(self, x):
        return (x * self.excite(x.mean(-1)).unsqueeze(-1)).reshape(x.shape[0], -1)


class _OurMLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        dims = [C.D, *C.MLP_UNITS]
        self.layers = torch.nn.ModuleList(
            [_WeightNormDense(i, o, torch.relu) for i, o in zip(dims[:-1], dims[1:])])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def _peer_mlp() -> torch.nn.Module:
    dims, parts = [C.D, *C.MLP_UNITS], []
    for i, o in zip(dims[:-1], dims[1:]):
        parts += [torch.nn.Linear(i, o), torch.nn.ReLU()]
    return torch.nn.Sequential(*parts)


class _Cross(torch.nn.Module):
    """Ours: ``x_{l+1} = x0 ⊙ (x_l W + b) + x_l`` (matrix) or ``x0 · (x_l · w) + b + x_l``
    (vector), kernels not normalised (the layer's default)."""

    def __init__(self, vector: bool) -> None:
        super().__init__()
        width = 1 if vector else C.D
        self.vector = vector
        self.kernels = torch.nn.ParameterList([
            torch.nn.Parameter(torch.randn(C.D, width, generator=_generator()) * 0.05)
            for _ in range(C.LAYERS)])
        self.biases = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(C.D)) for _ in range(C.LAYERS)])

    def forward(self, x0):
        h = x0
        for w, b in zip(self.kernels, self.biases):
            h = (x0 * (h @ w) + b + h) if self.vector else (x0 * (h @ w + b) + h)
        return h


class _PeerCross(torch.nn.Module):
    """FuxiCTR's ``CrossNetV2`` (matrix: ``x_l + x0 ⊙ Linear(x_l)``, the bias fused into the
    matmul by ``nn.Linear``) or ``CrossNet`` (vector: ``x_l + x0 · Linear(x_l, 1, no bias) + b``)."""

    def __init__(self, vector: bool) -> None:
        super().__init__()
        self.vector = vector
        self.layers = torch.nn.ModuleList(
            [torch.nn.Linear(C.D, 1 if vector else C.D, bias=not vector) for _ in range(C.LAYERS)])
        self.biases = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.zeros(C.D)) for _ in range(C.LAYERS if vector else 0)])

    def forward(self, x0):
        h = x0
        for i, layer in enumerate(self.layers):
            h = h + (layer(h) * x0 + self.biases[i] if self.vector else x0 * layer(h))
        return h


def _step(forward, parameters, x: torch.Tensor):
    """One timed step: ``forward(x)``, ``mean(out**2)``, backward, ``torch.optim.Adam``."""
    opt = torch.optim.Adam(parameters, lr=1e-3)
    x = x.clone().requires_grad_(True)

    def step():
        opt.zero_grad(set_to_none=True)
        x.grad = None
        loss = (forward(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def _plain_step(module: torch.nn.Module, x: torch.Tensor):
    return _step(module, list(module.parameters()), x)


def _keras_steps(name: str, batch: int) -> tuple:
    """(step through the functional keras.Model, step calling the layer itself)."""
    keras.utils.clear_session()
    ins, out, data, _ = RK.ours(name, batch)
    model = keras.Model(ins, RK._flat(out))
    through_model, _ = RK.lean_step(model, data)  # no ``call``: through the functional model
    layer = model.layers[-1]
    direct = _step(lambda x: layer(x, training=True), [v.value for v in layer.trainable_variables],
                   torch.as_tensor(data[0]))
    return through_model, direct


def arms(name: str, batch: int) -> dict:
    fields = torch.randn(batch, C.F, C.E, generator=_generator())
    flat = torch.randn(batch, C.D, generator=_generator())
    ours_model, ours_layer = _keras_steps(name, batch)
    ours, peer, x = {
        "SeNet": (_OurSeNet, _PeerSeNet, fields),
        "MLP": (_OurMLP, _peer_mlp, flat),
        "DCN-vector": (lambda: _Cross(True), lambda: _PeerCross(True), flat),
        "DCN-matrix": (lambda: _Cross(False), lambda: _PeerCross(False), flat),
    }[name]
    return dict(zip(FORMS, (ours_model, ours_layer, _plain_step(ours(), x), _plain_step(peer(), x))))


def main(argv: list | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--rounds", type=int, default=8, help="alternating rounds; the fastest is reported")
    p.add_argument("--steps", type=int, default=20, help="timed steps per form and round (median)")
    p.add_argument("--out", default=None, help="folder for torch_overhead_<batch>.{json,md}")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    table = []
    for name in args.rows.split(","):
        steps = arms(name, args.batch)
        for step in steps.values():
            for _ in range(10):
                step()
        times = {k: [] for k in steps}
        for _ in range(args.rounds):
            for k, step in steps.items():
                ts = []
                for _ in range(args.steps):
                    t0 = time.perf_counter()
                    step()
                    ts.append(time.perf_counter() - t0)
                times[k].append(1e3 * statistics.median(ts))
        # The least disturbed round of each form: this shared machine's speed swings by 20-40 %
        # over seconds, more than most of the differences measured here.
        row = {"row": name, "batch": args.batch, **{k: round(min(v), 3) for k, v in times.items()},
               "rounds_ms": {k: [round(t, 3) for t in v] for k, v in times.items()}}
        table.append(row)
        print(json.dumps(row), flush=True)
    malloc = f"glibc malloc set by `tune_malloc('torch')`: {MALLOC}" if MALLOC else "glibc malloc's defaults"
    lines = [
        f"# PyTorch step time by form, batch {args.batch} (ms: each round's median step, the fastest of "
        f"{args.rounds} rounds)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, one CPU thread, {malloc} "
        f"(`python -m benchmarks.torch_overhead {' '.join(argv if argv is not None else sys.argv[1:])}`).",
        "",
        "| row | ours, keras.Model | ours, layer | our math, plain torch | peer's math, plain torch "
        "| Keras host share of `ours, layer` | definition's share of `our math` |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table:
        model, layer, ours, peer = (r[k] for k in FORMS)
        lines.append(f"| {r['row']} | {model:.2f} | {layer:.2f} | {ours:.2f} | {peer:.2f} | "
                     f"{1 - ours / layer:.0%} | {1 - peer / ours:.0%} |")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"torch_overhead_{args.batch}.json").write_text(json.dumps(table, indent=1))
        (out / f"torch_overhead_{args.batch}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
