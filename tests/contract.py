"""The layer contract every reclayers layer meets, as reusable checks and a test base class.

A family's test module declares its configurations once::

    from tests.contract import Case, LayerContract

    class TestDCNContract(LayerContract):
        cases = [
            Case("vector", lambda **kw: DCN(layer_num=2, dcn_type="vector", **kw),
                 lambda rng, b: rng.normal(size=(b, 12)).astype("float32")),
        ]

and inherits one test per contract item and case: config round trip, ``.keras`` round trip,
unknown batch size and batch size 1, compiled prediction, ``mixed_bfloat16`` (global policy and an
explicit ``dtype=``, every sub-layer included), finite non-zero
gradients for every trainable weight, and a float64 finite-difference check of the weight
gradients. Reference-math and bad-input tests stay in the family's own module.

``Case.inputs(rng, batch)`` returns what the layer is called with as its first argument: an
array, or a list/tuple/dict of arrays. ``call_kwargs`` are extra static call arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import pytest
from keras import ops

BACKEND = keras.backend.backend()
# JAX runs without x64, so its scalar losses are float32; the others accumulate in float64.
_LOSS_DTYPE = "float32" if BACKEND == "jax" else "float64"


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------


def to_numpy(x: Any) -> Any:
    """Convert a (nested) backend tensor structure to NumPy."""
    return keras.tree.map_structure(
        lambda t: None if t is None else np.asarray(ops.convert_to_numpy(t)), x
    )


def _np(t: Any) -> np.ndarray:
    if isinstance(t, (np.ndarray, np.generic, float, int)):
        return np.asarray(t)
    return np.asarray(ops.convert_to_numpy(t))


def flat_numpy(x: Any) -> list[np.ndarray]:
    return [_np(t) for t in keras.tree.flatten(x)]


def assert_allclose(actual: Any, expected: Any, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Compare (nested) tensors/arrays with NumPy's ``assert_allclose``."""
    a, e = flat_numpy(actual), flat_numpy(expected)
    assert len(a) == len(e), f"structure differs: {len(a)} vs {len(e)} tensors"
    for x, y in zip(a, e):
        assert x.shape == y.shape, f"shape {x.shape} != expected {y.shape}"
        np.testing.assert_allclose(x.astype("float64"), y.astype("float64"), rtol=rtol, atol=atol)


def weights_by_name(layer: keras.layers.Layer) -> dict[str, np.ndarray]:
    """``{variable.path: value}`` for every weight of a built layer."""
    return {w.path: np.asarray(ops.convert_to_numpy(w)) for w in layer.weights}


def weight(layer: keras.layers.Layer, suffix: str) -> np.ndarray:
    """The value of the unique weight whose path ends with ``suffix``."""
    found = [w for w in layer.weights if w.path.endswith(suffix)]
    assert len(found) == 1, f"{len(found)} weights end with {suffix!r}: {[w.path for w in layer.weights]}"
    return np.asarray(ops.convert_to_numpy(found[0]))


def randomize_weights(layer: keras.layers.Layer, seed: int = 1, scale: float = 0.5) -> None:
    """Give every float weight random values (so zero-initialised biases matter in math tests)."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        if "float" in str(w.dtype):
            w.assign(rng.normal(scale=scale, size=tuple(w.shape)).astype(str(w.dtype)))


def symbolic_inputs(example: Any) -> Any:
    """``keras.Input`` placeholders with unknown batch size, mirroring an example input."""
    return keras.tree.map_structure(
        lambda a: keras.Input(shape=np.shape(a)[1:], dtype=str(np.asarray(a).dtype)), example
    )


def functional_model(layer: keras.layers.Layer, example: Any, call_kwargs: dict | None = None):
    """A Functional model ``inputs -> layer(inputs, **call_kwargs)`` with unknown batch size."""
    inputs = symbolic_inputs(example)
    outputs = layer(inputs, **(call_kwargs or {}))
    return keras.Model(inputs, outputs)


def projections(outputs: Any, seed: int = 123) -> list[np.ndarray]:
    """Fixed random weights to turn outputs into a scalar loss without symmetric cancellations."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=tuple(np.shape(o))).astype("float64") for o in flat_numpy(outputs)]


def _scalar_loss(outputs: Any, proj: Sequence[np.ndarray]) -> Any:
    flat = keras.tree.flatten(outputs)
    total = 0.0
    for o, p in zip(flat, proj):
        total = total + ops.sum(ops.cast(o, _LOSS_DTYPE) * ops.cast(p, _LOSS_DTYPE))
    return total


def trainable_gradients(
    layer: keras.layers.Layer, args: tuple, kwargs: dict | None = None, proj: Any = None
) -> tuple[list[np.ndarray], Any]:
    """Gradients of ``Σ proj ⊙ layer(*args)`` w.r.t. ``layer.trainable_variables`` (NumPy)."""
    kwargs = kwargs or {}
    if not layer.built:
        layer(*args, **kwargs)
    if proj is None:
        proj = projections(layer(*args, **kwargs))
    variables = layer.trainable_variables
    if BACKEND == "jax":
        import jax

        trainable = [v.value for v in variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def f(tv):
            out, _ = layer.stateless_call(tv, non_trainable, *args, **kwargs)
            return _scalar_loss(out, proj)

        # jit: eager jax.grad dispatches op by op and dominated the JAX suite's time.
        grads = jax.jit(jax.grad(f))(trainable)
        value = jax.jit(f)(trainable)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = _scalar_loss(layer(*args, **kwargs), proj)
        grads = tape.gradient(value, variables)
    else:
        import torch

        for v in variables:
            v.value.grad = None
        with torch.enable_grad():
            value = _scalar_loss(layer(*args, **kwargs), proj)
            value.backward()
        grads = [v.value.grad for v in variables]
    out = [None if g is None else np.asarray(ops.convert_to_numpy(g)) for g in grads]
    return out, float(ops.convert_to_numpy(value))


def as_tensors(x: Any) -> Any:
    return keras.tree.map_structure(lambda a: ops.convert_to_tensor(a), x)


# ----------------------------------------------------------------------------------------------
# The contract
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    """One layer configuration exercised by :class:`LayerContract`.

    Attributes:
        id: short name shown in test ids.
        factory: ``factory(**overrides) -> layer``; must forward ``**overrides`` (``dtype``) to
            the layer constructor.
        inputs: ``inputs(rng, batch) -> first call argument`` (array or list/tuple/dict).
        call_kwargs: extra call arguments, e.g. ``{"data_format": "channels_first"}``.
        grad_kwargs: extra call arguments for gradient checks (e.g. ``{"training": True}``).
        zero_grad_ok: substrings of weight paths allowed a zero (or missing) gradient.
        fd_check: run the float64 finite-difference check for this case.
        keras_save: run the ``.keras`` round trip for this case.
        rtol: tolerance for round-trip comparisons.
    """

    id: str
    factory: Callable[..., keras.layers.Layer]
    inputs: Callable[[np.random.Generator, int], Any]
    call_kwargs: dict = dataclasses.field(default_factory=dict)
    grad_kwargs: dict = dataclasses.field(default_factory=dict)
    zero_grad_ok: tuple = ()
    fd_check: bool = True
    keras_save: bool = True
    rtol: float = 1e-6

    def example(self, batch: int = 4, seed: int = 0) -> Any:
        return self.inputs(np.random.default_rng(seed), batch)


def _cast_floats(x: Any, dtype: str) -> Any:
    return keras.tree.map_structure(
        lambda a: np.asarray(a).astype(dtype) if np.asarray(a).dtype.kind == "f" else a, x
    )


def _check_bfloat16(layer: keras.layers.Layer, out: Any) -> None:
    for t in keras.tree.flatten(out):
        assert "bfloat16" in str(t.dtype), f"expected bfloat16 output, got {t.dtype}"
        assert np.all(np.isfinite(np.asarray(ops.convert_to_numpy(ops.cast(t, "float32")))))
    for sub in layer._flatten_layers(include_self=True, recursive=True):
        assert sub.compute_dtype == "bfloat16", f"{sub.path} computes in {sub.compute_dtype}"


class LayerContract:
    """Base class: subclasses set ``cases``; every ``test_*`` runs once per case."""

    cases: list[Case] = []

    # The parametrisation comes from ``pytest_generate_tests`` below (``case`` fixture).

    def test_config_round_trip(self, case: Case) -> None:
        x = case.example()
        layer = case.factory()
        out = layer(x, **case.call_kwargs)
        config = layer.get_config()
        clone = type(layer).from_config(config)
        clone(x, **case.call_kwargs)
        clone.set_weights(layer.get_weights())
        assert_allclose(clone(x, **case.call_kwargs), out, rtol=case.rtol, atol=1e-6)
        # The config survives JSON (what .keras files store).
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))

    def test_keras_file_round_trip(self, case: Case, tmp_path) -> None:
        if not case.keras_save:
            pytest.skip("case opts out of the .keras round trip")
        x = case.example()
        model = functional_model(case.factory(), x, case.call_kwargs)
        expected = model(x)
        path = tmp_path / "model.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        # Eager calls: the compiled path has its own test, and compiling twice here doubled the
        # JAX suite's time.
        assert_allclose(loaded(x), expected, rtol=case.rtol, atol=1e-6)

    def test_unknown_batch_and_batch_one(self, case: Case) -> None:
        x = case.example(batch=3)
        layer = case.factory()
        model = functional_model(layer, x, case.call_kwargs)
        for out in keras.tree.flatten(model.outputs):
            assert out.shape[0] is None, f"batch axis should stay unknown, got {out.shape}"
        eager = layer(x, **case.call_kwargs)
        assert_allclose(model(x), eager, rtol=1e-5, atol=1e-5)
        one = case.example(batch=1, seed=3)
        assert_allclose(model(one), layer(one, **case.call_kwargs), rtol=1e-5, atol=1e-5)

    def test_compiled(self, case: Case) -> None:
        x = case.example(batch=5)
        layer = case.factory()
        eager = layer(x, **case.call_kwargs)
        model = functional_model(layer, x, case.call_kwargs)
        model.compile(jit_compile=BACKEND != "torch")
        assert_allclose(model.predict(x, verbose=0, batch_size=5), eager, rtol=1e-5, atol=1e-5)

    def test_mixed_bfloat16(self, case: Case) -> None:
        """The global ``mixed_bfloat16`` policy: bfloat16 outputs, every sub-layer in bfloat16."""
        keras.config.set_dtype_policy("mixed_bfloat16")
        try:
            layer = case.factory()
            out = layer(case.example(), **case.call_kwargs)
        finally:
            keras.config.set_dtype_policy("float32")
        _check_bfloat16(layer, out)

    def test_mixed_bfloat16_explicit_dtype(self, case: Case) -> None:
        """``dtype="mixed_bfloat16"`` on the layer alone (global policy float32) does the same."""
        layer = case.factory(dtype="mixed_bfloat16")
        _check_bfloat16(layer, layer(case.example(), **case.call_kwargs))

    def test_gradients_reach_every_weight(self, case: Case) -> None:
        x = as_tensors(case.example(batch=6))
        layer = case.factory()
        layer(x, **{**case.call_kwargs, **case.grad_kwargs})
        grads, _ = trainable_gradients(layer, (x,), {**case.call_kwargs, **case.grad_kwargs})
        assert grads, "layer has no trainable weights"
        for v, g in zip(layer.trainable_variables, grads):
            allowed = any(s in v.path for s in case.zero_grad_ok)
            if g is None:
                assert allowed, f"no gradient reaches {v.path}"
                continue
            assert np.all(np.isfinite(g)), f"non-finite gradient for {v.path}"
            if not allowed:
                assert np.any(g != 0), f"zero gradient for {v.path}"

    def test_gradients_match_finite_differences(self, case: Case) -> None:
        """Directional derivative of a random projection of the outputs, analytic vs numeric.

        float64 with a central difference of step 1e-6 on TensorFlow. On JAX, Keras promotes
        ``float64`` to ``float32`` inside several ops (``tanh(x64)`` is ``float32``), and on
        PyTorch float64 forward passes measured only float32 precision, so those two run the
        check in float32 with step 1e-3 and a looser tolerance.
        """
        if not case.fd_check:
            pytest.skip("case opts out of the finite-difference check")
        dtype = "float64" if BACKEND == "tensorflow" else "float32"
        eps, rtol = (1e-3, 2e-2) if dtype == "float32" else (1e-6, 1e-4)
        keras.config.set_dtype_policy(dtype)
        keras.config.set_floatx(dtype)
        try:
            x = as_tensors(_cast_floats(case.example(batch=3), dtype))
            layer = case.factory()
            kwargs = {**case.call_kwargs, **case.grad_kwargs}
            layer(x, **kwargs)
            proj = projections(layer(x, **kwargs))
            grads, _ = trainable_gradients(layer, (x,), kwargs, proj)
            rng = np.random.default_rng(7)
            variables = layer.trainable_variables
            base = [_np(v).astype("float64") for v in variables]
            direction = [rng.normal(size=b.shape) for b in base]
            analytic = sum(
                float(np.sum(g * d)) for g, d in zip(grads, direction) if g is not None
            )

            def loss_at(sign: float) -> float:
                for v, b, d in zip(variables, base, direction):
                    v.assign((b + sign * eps * d).astype(dtype))
                return float(_np(_scalar_loss(layer(x, **kwargs), proj)))

            numeric = (loss_at(1.0) - loss_at(-1.0)) / (2 * eps)
            for v, b in zip(variables, base):
                v.assign(b.astype(dtype))
        finally:
            keras.config.set_floatx("float32")
            keras.config.set_dtype_policy("float32")
        np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=1e-4)


def pytest_generate_tests_for_contract(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``case`` from the test class's ``cases`` (hooked in ``conftest.py``)."""
    if "case" in metafunc.fixturenames and metafunc.cls is not None:
        cases = getattr(metafunc.cls, "cases", [])
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


# ----------------------------------------------------------------------------------------------
# Layers without weights: gradient checks with respect to the inputs
# ----------------------------------------------------------------------------------------------


def input_gradients(fn: Any, args: list[np.ndarray]) -> list[np.ndarray]:
    """Gradients of the scalar ``fn(*tensors)`` w.r.t. each input array (NumPy in, NumPy out)."""
    if BACKEND == "jax":
        import jax

        grads = jax.grad(lambda *a: fn(*a), argnums=tuple(range(len(args))))(
            *[ops.convert_to_tensor(a) for a in args]
        )
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(a) for a in args]
        with tf.GradientTape() as tape:
            for t in tensors:
                tape.watch(t)
            value = fn(*tensors)
        grads = tape.gradient(value, tensors)
    else:
        import torch

        tensors = [ops.convert_to_tensor(a).detach().requires_grad_(True) for a in args]
        with torch.enable_grad():
            value = fn(*tensors)
            value.backward()
        grads = [t.grad for t in tensors]
    return [np.asarray(ops.convert_to_numpy(g)) for g in grads]


def projected_sum(out: Any, proj: np.ndarray) -> Any:
    """``Σ proj ⊙ out`` as a backend scalar."""
    return ops.sum(out * ops.convert_to_tensor(proj.astype("float32")))


class WeightlessContract:
    """Replaces the contract's weight-gradient checks for layers without weights.

    Mix in before :class:`tests.contract.LayerContract`. Gradients w.r.t. the *inputs* must be
    finite and non-zero, and match a central finite difference of a random projection.
    """

    def _input_grads(self, case: Any, batch: int = 3) -> tuple[Any, Any, Any, list[np.ndarray]]:
        example = case.example(batch=batch)
        flat = [np.asarray(a, "float32") for a in keras.tree.flatten(example)]
        layer = case.factory()

        def run(*tensors: Any) -> Any:
            return layer(keras.tree.pack_sequence_as(example, list(tensors)), **case.call_kwargs)

        proj = [np.random.default_rng(11).normal(size=tuple(o.shape)).astype("float32")
                for o in keras.tree.flatten(run(*flat))]

        def loss(*tensors: Any) -> Any:
            outs = keras.tree.flatten(run(*tensors))
            return sum(projected_sum(o, p) for o, p in zip(outs, proj))

        return layer, loss, flat, input_gradients(loss, flat)

    def test_gradients_reach_every_weight(self, case: Any) -> None:
        layer, _, _, grads = self._input_grads(case)
        assert not layer.trainable_weights, "use LayerContract for layers with weights"
        for i, g in enumerate(grads):
            assert np.all(np.isfinite(g)), f"non-finite gradient for input {i}"
            assert np.any(g != 0), f"zero gradient for input {i}"

    def test_gradients_match_finite_differences(self, case: Any) -> None:
        if not case.fd_check:
            pytest.skip("case opts out of the finite-difference check (kinks near the inputs)")
        _, loss, flat, grads = self._input_grads(case)
        rng = np.random.default_rng(7)
        direction = [rng.normal(size=a.shape).astype("float32") for a in flat]
        analytic = sum(float(np.sum(g * d)) for g, d in zip(grads, direction))
        eps = 1e-2

        def at(sign: float) -> float:
            moved = [a + sign * eps * d for a, d in zip(flat, direction)]
            return float(ops.convert_to_numpy(loss(*moved)))

        numeric = (at(1.0) - at(-1.0)) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=1e-3)
