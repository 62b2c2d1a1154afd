"""Embedding-size and feature search layers (differentiable NAS over embedding columns).

Every layer here multiplies the columns of a concatenated embedding ``[..., D]`` (or a list of
per-feature embeddings) by a gate learned from one flat trainable vector ``arch_weights``. The
layer never changes widths during the search; after it, :meth:`get_architecture` (or the
class method ``architecture_from_weights`` on flat values read from a checkpoint) tells which
columns of each feature to keep, and a smaller model is built with those sizes (see
``examples/nas_search_then_retrain.py`` and ``docs/guides/embedding_size_search.md``).

* :class:`NASSelectionLayer`: per feature, pick one embedding size out of a list of candidates
  whose columns are shared according to ``embedding_share_mode``.
* :class:`MixedNASLayer`: the same plus an automatic zero-size choice (feature selection).
* :class:`NASGatingLayer`: one keep/drop gate per segment, straight-through estimator.
* :class:`SimpleNasLayer`: per feature, a distribution over how many leading columns to keep,
  cut at a cumulative-probability threshold.

The original's kernels were never published; these layers reconstruct them from the
reference's documented behaviour: GDAS-style sampled one-hot gates with the gradient through
the chosen probability (Dong & Yang 2019, https://arxiv.org/abs/1910.04465), DARTS-style soft
mixing (Liu et al. 2019, https://arxiv.org/abs/1806.09055), Gumbel-max sampling and
straight-through estimators. Sampling happens once per call and per feature and is shared by the whole batch;
it only happens when ``training=True`` (``None``/``False`` give the deterministic forward).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from reclayers.layers._build import config_of
from reclayers.layers.utils import check_float, check_int, check_one_of, gumbel_keys, invalid

__all__ = ["MixedNASLayer", "NASGatingLayer", "NASSelectionLayer", "SimpleNasLayer"]

_SHARE_MODES = ("left", "diff", "random", "none")
_GRAD_MODES = ("discrete", "gumbel", "none")
_STE_TYPES = ("softplus", "clip", "none")
_NEG = -1e9  # logit of padded (non-existent) choices; the gate math runs in float32 or wider


# --------------------------------------------------------------------------------------------
# NumPy helpers (static structures and readout)
# --------------------------------------------------------------------------------------------


def _np_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype="float64")
    e = np.exp(z - np.max(z))
    return e / e.sum()


def _np_entropy(p: np.ndarray) -> float:
    p = np.asarray(p, dtype="float64")
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def selection_masks(
    choices: Sequence[int], mode: str, rng: np.random.RandomState | None = None
) -> np.ndarray:
    """The ``C × W`` binary choice mask of one feature (see :class:`NASSelectionLayer`).

    ``rng`` is the ``numpy.random.RandomState`` the ``'random'`` rows are drawn from (one
    ``randint(0, W, size=s_c)`` per row that is neither empty nor full, rows in order).
    """
    sizes = [int(s) for s in choices]
    width = sum(sizes) if mode == "none" else max(sizes)
    mask = np.zeros((len(sizes), width), dtype="float32")
    offset = 0
    prev = 0
    for c, s in enumerate(sizes):
        if mode == "left":
            mask[c, :s] = 1
        elif mode == "diff":
            mask[c, prev:s] = 1
        elif mode == "none":
            mask[c, offset : offset + s] = 1
        else:  # random
            if s == width:
                mask[c, :] = 1
            elif s > 0:
                mask[c, rng.randint(0, width, size=s)] = 1
        offset += s
        prev = s
    return mask


def _check_names(owner: str, names: Any, count: int) -> list[str]:
    if names is None:
        return [f"feature_{i}" for i in range(count)]
    if not isinstance(names, (list, tuple)) or len(names) != count or not all(
        isinstance(n, str) for n in names
    ):
        raise invalid(owner, "segment_names", f"None or a list of {count} strings (one per segment)",
                      names)
    return list(names)


def _check_bool(owner: str, arg: str, value: Any) -> bool:
    """``value`` as a ``bool``; ``ValueError`` unless it is a Python or NumPy bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise invalid(owner, arg, "a bool", value)
    return bool(value)


def _check_flat_sizes(owner: str, sizes: Any) -> list[int]:
    if not isinstance(sizes, (list, tuple)) or not sizes:
        raise invalid(owner, "segment_sizes", "a non-empty list of integers > 0", sizes)
    for s in sizes:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) or s <= 0:
            raise invalid(owner, "segment_sizes", "a non-empty list of integers > 0", sizes)
    return [int(s) for s in sizes]


def _check_choice_lists(owner: str, sizes: Any) -> list[list[int]]:
    expected = "a non-empty list of non-empty lists of strictly increasing integers > 0 (a leading 0 allowed)"
    if not isinstance(sizes, (list, tuple)) or not sizes:
        raise invalid(owner, "segment_sizes", expected, sizes)
    out = []
    for choices in sizes:
        if not isinstance(choices, (list, tuple)) or not choices:
            raise invalid(owner, "segment_sizes", expected, sizes)
        for i, s in enumerate(choices):
            if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
                raise invalid(owner, "segment_sizes", expected, sizes)
            if s < 0 or (s == 0 and i > 0) or (i > 0 and s <= choices[i - 1]):
                raise invalid(owner, "segment_sizes", expected, sizes)
        if max(choices) <= 0:
            raise invalid(owner, "segment_sizes", expected, sizes)
        out.append([int(s) for s in choices])
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype="float64")))


# --------------------------------------------------------------------------------------------
# Common base
# --------------------------------------------------------------------------------------------


class _NASBase(keras.layers.Layer):
    """Layout, input checks, ``arch_weights``, gating of the input and readout plumbing.

    Subclasses set ``self._widths`` (per-feature column counts) and ``self._num_logits`` in
    ``__init__`` and implement ``_column_gate(alpha, training)`` (→ ``[D]``), ``_readout``,
    ``_expected_and_entropy`` and ``_tag_type``.
    """

    _tag_type = ""

    #: ``compute_mask`` gives no mask when no input is masked (see ``_build.is_plain_layer``).
    _unmasked_in_unmasked_out = True

    def __init__(
        self,
        segment_names: Sequence[str] | None,
        seed: int | None,
        arch_lr_multiplier: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.seed = check_int(owner, "seed", seed, minimum=0, allow_none=True)
        self.arch_lr_multiplier = check_float(owner, "arch_lr_multiplier", arch_lr_multiplier, low=0.0)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.supports_masking = True
        self._segment_names_arg = segment_names

    # -- layout ------------------------------------------------------------------------------
    def _flat_layout(self, segment_sizes: Any) -> None:
        """Layout of a layer whose features are flat blocks of ``segment_sizes`` columns."""
        self.segment_sizes = _check_flat_sizes(type(self).__name__, segment_sizes)
        self._widths = list(self.segment_sizes)
        self._finish_layout(len(self.segment_sizes))

    def _padded_logits(self, alpha: Any) -> Any:
        """``alpha`` gathered into the padded ``[F, C_max]`` grid of a subclass that sets
        ``_pad_index`` and ``_pad_valid``; padding cells get a large negative logit."""
        gathered = ops.take(alpha, self._const(self._pad_index, "int32"), axis=0)
        neg = ops.full(ops.shape(gathered), _NEG, dtype=gathered.dtype)
        return ops.where(self._const(self._pad_valid, "bool"), gathered, neg)

    def _finish_layout(self, count: int) -> None:
        self.segment_names = _check_names(type(self).__name__, self._segment_names_arg, count)
        self._offsets = np.concatenate([[0], np.cumsum(self._widths)]).astype("int64")
        self.total_width = int(self._offsets[-1])

    @property
    def feature_widths(self) -> list[int]:
        """Columns of each feature's input block."""
        return list(self._widths)

    # -- build / shapes ----------------------------------------------------------------------
    @staticmethod
    def _is_list_shape(shape: Any) -> bool:
        return isinstance(shape, (list, tuple)) and len(shape) > 0 and isinstance(
            shape[0], (list, tuple)
        )

    def _check_shapes(self, input_shape: Any) -> None:
        owner = type(self).__name__
        if self._is_list_shape(input_shape):
            if len(input_shape) != len(self._widths):
                raise ValueError(
                    f"{owner}: inputs must be a list of {len(self._widths)} tensors (one per feature, "
                    f"widths {self._widths}); got {len(input_shape)} tensors"
                )
            for i, (shape, w) in enumerate(zip(input_shape, self._widths)):
                if len(shape) < 2 or shape[-1] != w:
                    raise ValueError(
                        f"{owner}: inputs[{i}] must be a tensor of rank >= 2 with last dimension {w}; "
                        f"got shape {tuple(shape)}"
                    )
            return
        shape = tuple(input_shape)
        if len(shape) < 2 or shape[-1] != self.total_width:
            raise ValueError(
                f"{owner}: inputs must be a tensor of rank >= 2 with last dimension "
                f"{self.total_width} (feature widths {self._widths}); got shape {shape}"
            )

    def build(self, input_shape: Any) -> None:
        self._check_shapes(input_shape)
        self.arch_weights = self.add_weight(
            name="arch_weights",
            shape=(self._num_logits,),
            initializer=keras.initializers.RandomUniform(-1e-3, 1e-3),
            autocast=False,
        )

    def compute_output_shape(self, input_shape: Any) -> Any:
        if self._is_list_shape(input_shape):
            return [tuple(s) for s in input_shape]
        return tuple(input_shape)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return mask

    # -- forward -----------------------------------------------------------------------------
    def _gate_dtype(self) -> str:
        dtype = str(self.arch_weights.dtype)
        return "float32" if dtype in ("float16", "bfloat16") else dtype

    def _alpha(self, use_multiplier: bool = True) -> Any:
        alpha = ops.cast(ops.convert_to_tensor(self.arch_weights.value), self._gate_dtype())
        m = self.arch_lr_multiplier
        if use_multiplier and m != 1.0:
            # value exactly alpha; gradient scaled by m  (= m·α + (1 − m)·sg(α))
            frozen = ops.stop_gradient(alpha)
            alpha = frozen + m * (alpha - frozen)
        return alpha

    def _const(self, array: np.ndarray, dtype: str | None = None) -> Any:
        return ops.convert_to_tensor(array, dtype=dtype or self._gate_dtype())

    def column_gate(self, training: bool | None = None) -> Any:
        """The ``[D]`` vector the input columns are multiplied by (one draw when training)."""
        return self._column_gate(self._alpha(), bool(training))

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        gate = self._column_gate(self._alpha(), bool(training))
        if isinstance(inputs, (list, tuple)):
            outs = []
            for i, x in enumerate(inputs):
                x = ops.cast(x, self.compute_dtype)
                g = ops.cast(gate[int(self._offsets[i]) : int(self._offsets[i + 1])], x.dtype)
                outs.append(x * g)
            return outs
        x = ops.cast(inputs, self.compute_dtype)
        return x * ops.cast(gate, x.dtype)

    # -- readout -----------------------------------------------------------------------------
    def _alpha_numpy(self) -> np.ndarray:
        if not self.built:
            raise ValueError(
                f"{type(self).__name__}: the layer must be built (called once) before reading "
                "its architecture; got an unbuilt layer"
            )
        return np.asarray(ops.convert_to_numpy(self.arch_weights), dtype="float64")

    def get_architecture(self) -> list[dict]:
        """Per feature: name, chosen index, chosen size, kept columns, probabilities, ….

        Every entry is a dict with keys ``name``, ``index`` (chosen choice / cut point),
        ``size`` (nominal chosen size; 0 means drop the feature), ``columns`` (column indices
        inside the feature's block to keep), ``effective_size`` (``len(columns)``),
        ``block_start`` (first column of the block in the concatenated input),
        ``probabilities``, ``expected_size`` and ``entropy``.
        """
        return self._readout(self._alpha_numpy())

    @classmethod
    def architecture_from_weights(cls, flat_values: Any, config: dict) -> list[dict]:
        """:meth:`get_architecture` computed from flat ``arch_weights`` values and a layer config.

        ``flat_values`` is any flat sequence of numbers (or strings, as a checkpoint reader
        returns them) in the order of ``arch_weights``; ``config`` is the layer's
        ``get_config()`` (at least its constructor arguments).
        """
        layer = cls.from_config(dict(config))
        values = np.asarray([float(v) for v in np.ravel(np.asarray(flat_values))], dtype="float64")
        if values.shape[0] != layer._num_logits:
            raise invalid(cls.__name__, "flat_values", f"a flat list of {layer._num_logits} values",
                          f"{values.shape[0]} values")
        return layer._readout(values)

    def chosen_sizes(self) -> list[int]:
        """The effective number of columns kept per feature (``0`` = feature dropped)."""
        return [a["effective_size"] for a in self.get_architecture()]

    def expected_size(self, per_feature: bool = False) -> Any:
        """Expected size ``Σ_c π_c·size_c``: a differentiable tensor, summed unless ``per_feature``."""
        exp, _ = self._expected_and_entropy(self._alpha(use_multiplier=False))
        return exp if per_feature else ops.sum(exp)

    def choice_entropy(self, per_feature: bool = False) -> Any:
        """Entropy of the architecture distribution: a tensor, summed over features unless ``per_feature``."""
        _, ent = self._expected_and_entropy(self._alpha(use_multiplier=False))
        return ent if per_feature else ops.sum(ent)

    def get_summary_metadata(self) -> dict:
        """The original's summary metadata: ``tag_type``, ``segment_names``, ``segment_sizes``."""
        return {
            "tag_type": self._tag_type,
            "segment_names": list(self.segment_names),
            "segment_sizes": self._metadata_sizes(),
        }

    def _metadata_sizes(self) -> list:
        return list(self.segment_sizes)

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(self, "segment_names", "seed", "arch_lr_multiplier")}


# --------------------------------------------------------------------------------------------
# Selection / Mixed
# --------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="reclayers")
class NASSelectionLayer(_NASBase):
    """Per feature, selects one embedding size from a list of candidates (differentiable NAS).

    Feature ``f`` has choices ``s_1 < … < s_C`` and a binary mask ``M_f ∈ {0,1}^{C×W_f}``
    saying which columns of its block each choice uses (``embedding_share_mode``):

    * ``'left'``: ``M[c, j] = 1 ⇔ j < s_c`` (nested prefixes), ``W_f = s_C``;
    * ``'diff'``: ``M[c, j] = 1 ⇔ s_{c-1} ≤ j < s_c`` (disjoint increments), ``W_f = s_C``;
    * ``'random'``: full rows for ``s_c = W_f``, else ``s_c`` columns drawn *with replacement*
      by ``numpy.random.RandomState(random_seed).randint(0, W_f, size=s_c)`` (features and rows
      in order; so a row has between 1 and ``s_c`` ones), ``W_f = s_C``;
    * ``'none'``: choice ``c`` owns its own block of ``s_c`` columns, ``W_f = Σ_c s_c``.

    For ``[2, 4, 6]``: ``'left'`` → ``[[1,1,0,0,0,0],[1,1,1,1,0,0],[1,1,1,1,1,1]]``,
    ``'diff'`` → ``[[1,1,0,0,0,0],[0,0,1,1,0,0],[0,0,0,0,1,1]]``, ``'none'`` → three
    consecutive blocks of 2, 4, 6 columns in a width of 12.

    With ``α_f`` the feature's slice of ``arch_weights`` and ``π = softmax(α_f / temperature)``,
    the choice gate ``g_f`` is (``weight_grad_mode``):

    * ``'discrete'``: training draws ``c* ~ Categorical(π)``;
      ``g = onehot(c*) ⊙ (1 + π − sg(π))`` (value: the exact one-hot; gradient through
      ``π_{c*}``: ``∂L/∂α = ∂L/∂g_{c*} · π_{c*}(e_{c*} − π) / temperature``);
    * ``'gumbel'``: training draws Gumbel noise ``γ``; ``π̃ = softmax((α_f + γ)/temperature)``,
      ``c* = argmax π̃`` (an exact sample of ``softmax(α_f)``); ``g = onehot(c*) ⊙ (1 + π̃ − sg(π̃))``;
    * ``'none'``: ``g = π`` (soft DARTS-style mixture, also at inference).

    Inference (``training`` false/None) for ``'discrete'``/``'gumbel'``: ``g = onehot(argmax α_f)``
    (ties → lowest index). The column gate is ``w_f = g_fᵀ M_f`` and the output block is
    ``x_f ⊙ w_f``. One draw per call and feature, shared by the whole batch.

    Shapes: a tensor ``[..., D]`` with ``D = Σ_f W_f`` (rank ≥ 2) → same shape; or a list of
    ``F`` tensors ``[..., W_f]`` → a list of the same shapes.

    Args:
        segment_sizes: one list of strictly increasing sizes per feature (a leading ``0`` is the
            zero choice).
        segment_names: feature names (``None`` → ``feature_0, …``). Default ``None``.
        temperature: softmax temperature (> 0). Default 1.0.
        embedding_share_mode: ``'left'``, ``'diff'``, ``'random'`` or ``'none'``.
            Default ``'none'``.
        weight_grad_mode: ``'discrete'``, ``'gumbel'`` or ``'none'``. Default ``'discrete'``.
        random_seed: seed of the ``'random'`` masks; ``None`` draws one (from NumPy's global
            RNG) at construction and stores it in the config. Default ``None``.
        masks: explicit per-feature ``C_f × W_f`` 0/1 masks overriding the generated ones.
            Default ``None``.
        seed: seed of the layer's sampling ``SeedGenerator`` (extension). Default ``None``.
        arch_lr_multiplier: scales the gradient reaching ``arch_weights`` (forward identity;
            ``α_used = m·α + (1 − m)·sg(α)``; extension standing in for the original's
            ``NasArchWeight`` schedule op, default 1 = no effect).

    Readout: :meth:`get_architecture` / :meth:`architecture_from_weights`: ``c*_f = argmax α_f``;
    the kept columns are mask row ``c*_f`` (for ``'diff'`` only the increment block, so
    ``effective_size`` is ``s_c − s_{c−1}`` while ``size`` is ``s_c``). :meth:`expected_size`
    and :meth:`choice_entropy` are differentiable tensors (not added as losses).

    Deviations / reconstruction: the original kernels are unpublished; this is the
    reconstruction described in the module docstring. Another reading of
    ``weight_grad_mode='none'`` ("no gradient to the gates", sampling from frozen logits) was
    rejected in favour of the soft mixture. The op attribute ``is_one_hot`` is fixed to the
    exact one-hot value.

    Example:
        >>> import numpy as np
        >>> layer = NASSelectionLayer([[2, 4, 6], [3, 6]], embedding_share_mode="left")
        >>> y = layer(np.ones((2, 12), "float32"))
        >>> tuple(y.shape), [a["choices"] for a in layer.get_architecture()]
        ((2, 12), [[2, 4, 6], [3, 6]])

    Papers: Liu et al., "DARTS", ICLR 2019; Dong & Yang, "GDAS", CVPR 2019; Zhao et al.,
    "AutoDim", WWW 2021; Jang et al. / Maddison et al. (Gumbel-softmax), ICLR 2017.
    """

    _tag_type = "selecting"
    _insert_zero = False

    def __init__(
        self,
        segment_sizes: Sequence[Sequence[int]],
        segment_names: Sequence[str] | None = None,
        temperature: float = 1.0,
        embedding_share_mode: str = "none",
        weight_grad_mode: str = "discrete",
        random_seed: int | None = None,
        masks: Sequence[Any] | None = None,
        seed: int | None = None,
        arch_lr_multiplier: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(segment_names, seed, arch_lr_multiplier, **kwargs)
        owner = type(self).__name__
        self.segment_sizes = _check_choice_lists(owner, segment_sizes)
        self.temperature = check_float(owner, "temperature", temperature, low=0.0, low_inclusive=False)
        self.embedding_share_mode = check_one_of(owner, "embedding_share_mode", embedding_share_mode,
                                                 _SHARE_MODES)
        self.weight_grad_mode = check_one_of(owner, "weight_grad_mode", weight_grad_mode, _GRAD_MODES)
        if random_seed is None:
            random_seed = int(np.random.randint(0, 2**31 - 1))
        self.random_seed = check_int(owner, "random_seed", random_seed, minimum=0)
        # Choices actually searched (MixedNASLayer inserts the zero choice).
        self.choices = [
            ([0] + c if self._insert_zero and c[0] != 0 else list(c)) for c in self.segment_sizes
        ]
        rng = np.random.RandomState(self.random_seed)
        generated = [selection_masks(c, self.embedding_share_mode, rng) for c in self.choices]
        self._widths = [m.shape[1] for m in generated]
        self.masks = self._check_masks(masks, generated) if masks is not None else None
        self._masks = generated if masks is None else [np.asarray(m, "float32") for m in masks]
        self._finish_layout(len(self.segment_sizes))

        counts = [len(c) for c in self.choices]
        self._num_logits = int(sum(counts))
        self._cmax = max(counts)
        f_count = len(self.choices)
        starts = np.concatenate([[0], np.cumsum(counts)])
        self._pad_index = np.zeros((f_count, self._cmax), "int32")
        self._pad_valid = np.zeros((f_count, self._cmax), bool)
        self._pad_sizes = np.zeros((f_count, self._cmax), "float32")
        big_mask = np.zeros((f_count * self._cmax, self.total_width), "float32")
        for f, (c, m) in enumerate(zip(self.choices, self._masks)):
            n = len(c)
            self._pad_index[f, :n] = np.arange(starts[f], starts[f] + n)
            self._pad_valid[f, :n] = True
            self._pad_sizes[f, :n] = c
            big_mask[f * self._cmax : f * self._cmax + n, self._offsets[f] : self._offsets[f + 1]] = m
        self._big_mask = big_mask

    def _check_masks(self, masks: Any, generated: list[np.ndarray]) -> list:
        owner = type(self).__name__
        shapes = [tuple(m.shape) for m in generated]
        expected = f"None or one 0/1 matrix per feature with shapes {shapes}"
        if not isinstance(masks, (list, tuple)) or len(masks) != len(generated):
            raise invalid(owner, "masks", expected, masks)
        out = []
        for m, shape in zip(masks, shapes):
            try:
                arr = np.asarray(m, dtype="float64")
            except (TypeError, ValueError):
                raise invalid(owner, "masks", expected, masks) from None
            if arr.shape != shape or not np.all((arr == 0) | (arr == 1)):
                raise invalid(owner, "masks", expected, masks)
            out.append(arr.astype(int).tolist())
        return out

    # -- math --------------------------------------------------------------------------------
    def choice_gates(self, alpha: Any, training: bool) -> Any:
        """The padded ``[F, C_max]`` choice gates ``g`` for logits ``alpha`` (see class doc)."""
        logits = self._padded_logits(alpha)
        t = self.temperature
        if self.weight_grad_mode == "none":
            return ops.softmax(logits / t, axis=-1)
        if not training:
            return ops.one_hot(ops.argmax(logits, axis=-1), self._cmax, dtype=logits.dtype)
        if self.weight_grad_mode == "discrete":
            probs = ops.softmax(logits / t, axis=-1)
            idx = keras.random.categorical(logits / t, 1, dtype="int32", seed=self.seed_generator)[:, 0]
        else:
            probs = ops.softmax(gumbel_keys(logits, seed=self.seed_generator) / t, axis=-1)
            idx = ops.argmax(probs, axis=-1)
        onehot = ops.one_hot(idx, self._cmax, dtype=logits.dtype)
        # Both modes send the gradient through the chosen choice's relaxed probability only
        # (value 1 forward, d/dp of p_chosen backward). The textbook straight-through
        # Gumbel-softmax ``onehot - sg(p) + p`` would also push every unchosen probability;
        # the reference's rule is kept.
        return onehot * (1.0 + (probs - ops.stop_gradient(probs)))

    def _column_gate(self, alpha: Any, training: bool) -> Any:
        g = ops.reshape(self.choice_gates(alpha, training), (1, -1))
        return ops.matmul(g, self._const(self._big_mask))[0]

    def _expected_and_entropy(self, alpha: Any) -> tuple[Any, Any]:
        probs = ops.softmax(self._padded_logits(alpha) / self.temperature, axis=-1)
        expected = ops.sum(probs * self._const(self._pad_sizes), axis=-1)
        safe = ops.where(probs > 0, probs, ops.ones_like(probs))
        entropy = -ops.sum(probs * ops.log(safe), axis=-1)
        return expected, entropy

    def _readout(self, alpha: np.ndarray) -> list[dict]:
        out = []
        start = 0
        for f, (c, m) in enumerate(zip(self.choices, self._masks)):
            a = alpha[start : start + len(c)]
            start += len(c)
            p = _np_softmax(a / self.temperature)
            k = int(np.argmax(a))
            cols = [int(j) for j in np.nonzero(np.asarray(m)[k])[0]]
            out.append(
                {
                    "name": self.segment_names[f],
                    "index": k,
                    "size": int(c[k]),
                    "columns": cols,
                    "effective_size": len(cols),
                    "block_start": int(self._offsets[f]),
                    "choices": list(c),
                    "probabilities": p.tolist(),
                    "expected_size": float(np.dot(p, c)),
                    "entropy": _np_entropy(p),
                }
            )
        return out

    def get_masks(self) -> list[np.ndarray]:
        """The per-feature ``C_f × W_f`` masks in use (copies)."""
        return [np.array(m, dtype="float32") for m in self._masks]

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "temperature", "embedding_share_mode", "weight_grad_mode", "random_seed", "masks",
            segment_sizes=[list(c) for c in self.segment_sizes],
        )}


@keras.saving.register_keras_serializable(package="reclayers")
class MixedNASLayer(NASSelectionLayer):
    """:class:`NASSelectionLayer` plus a zero-size choice per feature (feature selection).

    If a feature's first choice is not ``0``, a choice ``0`` is inserted in front (index 0 of the
    feature's logits, an all-zero mask row); a feature whose list already starts with ``0`` is
    left as is. Widths are those of the non-zero choices (``'none'``: the zero choice adds no
    column). For ``[2, 4, 6]`` and ``'left'`` the masks are
    ``[[0,0,0,0,0,0],[1,1,0,0,0,0],[1,1,1,1,0,0],[1,1,1,1,1,1]]``. An explicit ``masks=`` must
    describe the augmented list (zero row included). Readout ``index 0`` / ``size 0`` means
    "drop the feature". With ``weight_grad_mode='none'`` a large zero-choice probability scales
    the whole feature down (iRazor's soft mask).

    Gates, forward, inference and readout are those of :class:`NASSelectionLayer` on the
    augmented choice lists: with ``π = softmax(α_f / temperature)`` over the ``C_f + 1`` choices
    and ``M_f`` the augmented mask, the output block is ``x_f ⊙ (g_fᵀ M_f)``.

    Shapes: a tensor ``[..., D]`` with ``D = Σ_f W_f`` (rank ≥ 2) → same shape; or a list of
    ``F`` tensors ``[..., W_f]`` → a list of the same shapes. ``arch_weights`` holds
    ``Σ_f (C_f + 1)`` logits (one more per feature than the choices given, unless a list already
    starts with ``0``).

    Args:
        segment_sizes: one list of strictly increasing sizes per feature; a ``0`` choice is
            prepended where the list does not start with one.
        segment_names: feature names (``None`` → ``feature_0, …``).
        temperature: softmax temperature (> 0).
        embedding_share_mode: ``'left'``, ``'diff'``, ``'random'`` or ``'none'`` (see
            :class:`NASSelectionLayer`).
        weight_grad_mode: ``'discrete'``, ``'gumbel'`` or ``'none'``.
        random_seed: seed of the ``'random'`` masks (``None`` draws one and stores it).
        masks: explicit per-feature ``(C_f + 1) × W_f`` 0/1 masks, zero row included.
        seed: seed of the layer's sampling ``SeedGenerator``.
        arch_lr_multiplier: scales the gradient reaching ``arch_weights`` (forward identity).

    Not adopted (predecessor-only behaviour): a warm-up that pins the zero choice's probability
    at 0 for the first steps, and a pre-training phase with uniform choice probabilities; both
    need a step counter the reference does not mention.

    Example:
        >>> import numpy as np
        >>> layer = MixedNASLayer([[2, 4, 6]], embedding_share_mode="left", weight_grad_mode="none")
        >>> y = layer(np.ones((1, 6), "float32"))
        >>> [round(float(v), 2) for v in keras.ops.convert_to_numpy(y)[0]]
        [0.75, 0.75, 0.5, 0.5, 0.25, 0.25]

    Papers: as :class:`NASSelectionLayer`; Guo et al., "iRazor" (feature-dimension search with
    an all-zero "absent" region).
    """

    _tag_type = "mixed"
    _insert_zero = True


# --------------------------------------------------------------------------------------------
# Gating
# --------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="reclayers")
class NASGatingLayer(_NASBase):
    """One learned keep/drop gate per segment, trained with a straight-through estimator.

    Segment ``f`` owns ``W_f = segment_sizes[f]`` consecutive columns; ``arch_weights`` holds one
    logit ``α_f`` per segment; ``a_f = α_f / temperature``. Training:

    * ``use_logistic=True``: ``ℓ = log u − log(1 − u)``, ``u ~ U`` clamped to ``[1e-6, 1 − 1e-6]``;
      ``p_f = σ((α_f + ℓ)/temperature)``, ``z_f = 1[p_f > 0.5]`` (a Bernoulli(``σ(α_f)``) sample);
    * ``use_logistic=False``: ``p_f = σ(a_f)``, ``z_f = 1[u_f < p_f]``.

    Straight-through: ``z̃ = z + S − sg(S)`` with ``S`` by ``ste_type``: ``'none'`` → ``p_f``
    (gradient ``p(1 − p)/temperature``), ``'clip'`` → ``clip(a_f, −1, 1)`` (gradient
    ``1[|a_f| < 1]/temperature``), ``'softplus'`` → ``softplus(a_f)`` (gradient
    ``σ(a_f)/temperature``). Inference: ``z_f = 1[α_f > 0]``, no noise. Each segment's columns
    are multiplied by its ``z̃_f`` (one draw per call, shared by the batch).

    Shapes: ``[..., D]`` with ``D = Σ W_f`` (rank ≥ 2) or a list of ``[..., W_f]`` → same.

    Args:
        segment_names: segment names (``None`` → ``feature_0, …``). Default ``None``.
        segment_sizes: width of each segment (ints > 0). (The reference's wording "sizes of the
            choices" is copied from the selection layer; each entry is one segment's width.)
            Default ``None``.
        ste_type: ``'softplus'``, ``'clip'`` or ``'none'``. Default ``'none'``.
        temperature: temperature (> 0) of the relaxed probability / surrogate. Default 1.0.
        use_logistic: binary-concrete (logistic-noise) sampling instead of a uniform draw.
            Default ``True``.
        seed: seed of the sampling ``SeedGenerator`` (extension). Default ``None``.
        arch_lr_multiplier: gradient multiplier for ``arch_weights`` (extension, see
            :class:`NASSelectionLayer`). Default 1.0.

    Readout: keep segment ``f`` iff ``α_f > 0``; ``probabilities`` reports ``σ(α_f/temperature)``.

    Example:
        >>> import numpy as np
        >>> layer = NASGatingLayer(segment_sizes=[2, 3, 1])
        >>> tuple(layer(np.ones((4, 6), "float32"), training=True).shape)
        (4, 6)

    Papers: Bengio, Léonard & Courville 2013 (straight-through estimator); Hubara et al. 2016
    (clipped STE); Maddison et al., "The Concrete Distribution", ICLR 2017.
    """

    _tag_type = "gating"

    def __init__(
        self,
        segment_names: Sequence[str] | None = None,
        segment_sizes: Sequence[int] | None = None,
        ste_type: str = "none",
        temperature: float = 1.0,
        use_logistic: bool = True,
        seed: int | None = None,
        arch_lr_multiplier: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(segment_names, seed, arch_lr_multiplier, **kwargs)
        owner = type(self).__name__
        self.ste_type = check_one_of(owner, "ste_type", ste_type, _STE_TYPES)
        self.temperature = check_float(owner, "temperature", temperature, low=0.0, low_inclusive=False)
        self.use_logistic = _check_bool(owner, "use_logistic", use_logistic)
        self._flat_layout(segment_sizes)
        self._num_logits = len(self.segment_sizes)
        self._column_segment = np.repeat(np.arange(len(self._widths)), self._widths).astype("int32")

    def segment_gates(self, alpha: Any, training: bool) -> Any:
        """The ``[F]`` gate values ``z̃`` (see class doc)."""
        t = self.temperature
        a = alpha / t
        if not training:
            return ops.cast(alpha > 0, alpha.dtype)
        u = keras.random.uniform(ops.shape(alpha), dtype=alpha.dtype, seed=self.seed_generator)
        if self.use_logistic:
            u = ops.clip(u, 1e-6, 1.0 - 1e-6)
            p = ops.sigmoid((alpha + ops.log(u) - ops.log(1.0 - u)) / t)
            z = ops.cast(p > 0.5, alpha.dtype)
        else:
            p = ops.sigmoid(a)
            z = ops.cast(u < p, alpha.dtype)
        if self.ste_type == "none":
            s = p
        elif self.ste_type == "clip":
            s = ops.clip(a, -1.0, 1.0)
        else:
            s = ops.softplus(a)
        return z + (s - ops.stop_gradient(s))

    def _column_gate(self, alpha: Any, training: bool) -> Any:
        return ops.take(self.segment_gates(alpha, training), self._const(self._column_segment, "int32"),
                        axis=0)

    def _expected_and_entropy(self, alpha: Any) -> tuple[Any, Any]:
        p = ops.sigmoid(alpha / self.temperature)
        expected = p * self._const(np.asarray(self._widths, "float32"))
        eps = 1e-12
        entropy = -(p * ops.log(ops.maximum(p, eps)) + (1 - p) * ops.log(ops.maximum(1 - p, eps)))
        return expected, entropy

    def _readout(self, alpha: np.ndarray) -> list[dict]:
        out = []
        for f, a in enumerate(alpha):
            keep = bool(a > 0)
            p = float(_sigmoid(a / self.temperature))
            w = self._widths[f]
            out.append(
                {
                    "name": self.segment_names[f],
                    "index": int(keep),
                    "size": w if keep else 0,
                    "columns": list(range(w)) if keep else [],
                    "effective_size": w if keep else 0,
                    "block_start": int(self._offsets[f]),
                    "probabilities": [1.0 - p, p],
                    "expected_size": p * w,
                    "entropy": _np_entropy(np.asarray([1.0 - p, p])),
                }
            )
        return out

    def get_summary_metadata(self) -> dict:
        meta = super().get_summary_metadata()
        meta["group_index"] = list(range(len(self.segment_names)))
        return meta

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "segment_sizes", "ste_type", "temperature", "use_logistic",
        )}


# --------------------------------------------------------------------------------------------
# Simple NAS (cumulative-probability cut)
# --------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="reclayers")
class SimpleNasLayer(_NASBase):
    """Learns, per feature, how many leading embedding columns to keep; cuts at a CDF threshold.

    Feature ``f`` of width ``d_f`` has logits ``α_f ∈ ℝ^{d_f+1}`` (entry ``k``: keep the first ``k``
    columns; ``k = 0`` drops the feature). Per call:

    1. ``p_f = softmax((α_f + γ_f)/temperature)``, Gumbel noise ``γ_f`` only when training and
       ``use_gumbel``;
    2. ``CDF_f(k) = Σ_{i≤k} p_f(i)``; cut ``k*_f = min(d_f, #{k : CDF_f(k) < threshold})``;
    3. hard mask ``h_f[j] = 1[j < k*_f]``; soft (survival) mask ``s_f[j] = Σ_{k>j} p_f(k)``;
    4. gate ``h_f + s_f − sg(s_f)`` (value: the hard mask; gradient through the survival
       probabilities); output block = input block ⊙ gate.

    Inference is the same without noise (deterministic); the readout's ``k*_f`` is the final
    embedding size (``0`` = drop).

    Shapes: ``[..., D]`` with ``D = Σ d_f`` (rank ≥ 2) or a list of ``[..., d_f]`` → same.

    Args:
        segment_names: feature names (``None`` → ``feature_0, …``). Default ``None``.
        segment_sizes: embedding width of each feature (ints > 0). Default ``None``.
        threshold: cumulative-probability threshold in ``(0, 1]`` (the "knee"). Default 0.9.
        temperature: softmax temperature (> 0). Default 1.5.
        use_gumbel: add Gumbel noise to the logits when training. Default ``True``.
        seed: seed of the sampling ``SeedGenerator`` (extension). Default ``None``.
        arch_lr_multiplier: gradient multiplier for ``arch_weights`` (extension). Default 1.0.

    Reconstruction notes: this is the original ``DiscreteTruncatedGate`` op with
    ``drop_first_dim=True`` (logits one longer than the gate). Alternatives not used: iRazor's
    per-region mask ``p_f(j+1)`` as the soft mask, or a feature-level cut (softmax over
    features keeping the smallest set covering ``threshold`` of the mass).

    Example:
        >>> import numpy as np
        >>> layer = SimpleNasLayer(segment_sizes=[4, 8])
        >>> tuple(layer(np.ones((2, 12), "float32")).shape)
        (2, 12)

    Paper: Guo et al., "iRazor" (cumulative probability threshold pruning); Jang et al. 2017.
    """

    _tag_type = "simple"

    def __init__(
        self,
        segment_names: Sequence[str] | None = None,
        segment_sizes: Sequence[int] | None = None,
        threshold: float = 0.9,
        temperature: float = 1.5,
        use_gumbel: bool = True,
        seed: int | None = None,
        arch_lr_multiplier: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(segment_names, seed, arch_lr_multiplier, **kwargs)
        owner = type(self).__name__
        self.threshold = check_float(owner, "threshold", threshold, low=0.0, high=1.0, low_inclusive=False)
        self.temperature = check_float(owner, "temperature", temperature, low=0.0, low_inclusive=False)
        self.use_gumbel = _check_bool(owner, "use_gumbel", use_gumbel)
        self._flat_layout(segment_sizes)
        f_count = len(self._widths)
        self._dmax = max(self._widths)
        self._num_logits = int(sum(d + 1 for d in self._widths))
        starts = np.concatenate([[0], np.cumsum([d + 1 for d in self._widths])])
        self._pad_index = np.zeros((f_count, self._dmax + 1), "int32")
        self._pad_valid = np.zeros((f_count, self._dmax + 1), bool)
        gather = []
        for f, d in enumerate(self._widths):
            self._pad_index[f, : d + 1] = np.arange(starts[f], starts[f] + d + 1)
            self._pad_valid[f, : d + 1] = True
            gather.extend(f * self._dmax + j for j in range(d))
        self._col_index = np.asarray(gather, "int32")
        self._dims = np.asarray(self._widths, "int32")

    def cut_probabilities(self, alpha: Any, training: bool) -> Any:
        """``[F, d_max + 1]`` probabilities of the cut points (zero on padding)."""
        logits = self._padded_logits(alpha)
        if training and self.use_gumbel:
            logits = gumbel_keys(logits, seed=self.seed_generator)
        return ops.softmax(logits / self.temperature, axis=-1)

    def feature_gates(self, alpha: Any, training: bool) -> Any:
        """``[F, d_max]`` gates ``h + s − sg(s)`` (padding columns are 0) and the cuts ``k*``."""
        p = self.cut_probabilities(alpha, training)
        cdf = ops.cumsum(p, axis=-1)
        below = ops.logical_and(cdf < self.threshold, self._const(self._pad_valid, "bool"))
        count = ops.sum(ops.cast(below, "int32"), axis=-1)
        cut = ops.minimum(count, self._const(self._dims, "int32"))
        j = ops.arange(self._dmax, dtype="int32")
        hard = ops.cast(ops.expand_dims(j, 0) < ops.expand_dims(cut, 1), p.dtype)
        # survival s[j] = Σ_{k > j} p(k): reverse cumulative sum, shifted by one
        tail = ops.flip(ops.cumsum(ops.flip(p, axis=-1), axis=-1), axis=-1)
        soft = tail[:, 1:]
        return hard + (soft - ops.stop_gradient(soft)), cut

    def _column_gate(self, alpha: Any, training: bool) -> Any:
        gates, _ = self.feature_gates(alpha, training)
        return ops.take(ops.reshape(gates, (-1,)), self._const(self._col_index, "int32"), axis=0)

    def _expected_and_entropy(self, alpha: Any) -> tuple[Any, Any]:
        p = self.cut_probabilities(alpha, False)
        k = self._const(np.arange(self._dmax + 1, dtype="float32"))
        expected = ops.sum(p * ops.expand_dims(k, 0), axis=-1)
        safe = ops.where(p > 0, p, ops.ones_like(p))
        entropy = -ops.sum(p * ops.log(safe), axis=-1)
        return expected, entropy

    def _readout(self, alpha: np.ndarray) -> list[dict]:
        out = []
        start = 0
        for f, d in enumerate(self._widths):
            a = alpha[start : start + d + 1]
            start += d + 1
            p = _np_softmax(a / self.temperature)
            cdf = np.cumsum(p)
            k = int(min(d, int(np.sum(cdf < self.threshold))))
            out.append(
                {
                    "name": self.segment_names[f],
                    "index": k,
                    "size": k,
                    "columns": list(range(k)),
                    "effective_size": k,
                    "block_start": int(self._offsets[f]),
                    "probabilities": p.tolist(),
                    "expected_size": float(np.dot(p, np.arange(d + 1))),
                    "entropy": _np_entropy(p),
                }
            )
        return out

    def get_config(self) -> dict:
        return {**super().get_config(), **config_of(
            self,
            "segment_sizes", "threshold", "temperature", "use_gumbel",
        )}
