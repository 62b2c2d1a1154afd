"""The reclayers model zoo: named CTR and multi-task models with documented default configs.

.. code-block:: python

    from reclayers import data, models
    ds = data.make_synthetic(20000)
    model = models.get_model("dcn_v2", ds.schema, embedding_dim=8)   # uncompiled Keras model
    models.compile_model(model, ds.schema)                            # Adam + BCE per label

Every model maps the feature dict of a :class:`reclayers.data.Schema` batch to
``{label: probability [B, 1]}`` and is saved / loaded as ``.keras`` (``keras.saving.load_model``).
``MODELS[name].defaults`` is its default config (``COMMON`` plus the model's own keys); unknown
config keys raise ``ValueError``. Two ``COMMON`` keys set how much the shared parts compute:
``weight_norm`` (default ``True``: the deep towers' ``Dense`` layers are weight-normalised with a
learned gain, the library ``MLP``'s default; ``False``: plain ``Dense``, as DeepCTR's and
FuxiCTR's towers) and ``raw_numeric`` (default ``True``: the raw numeric values join the flat
input next to their embeddings; ``False``: the embeddings only, as FuxiCTR's models).

=============  =========================================================================  ===========
name           model                                                                       layers
=============  =========================================================================  ===========
lr             logistic regression on one weight per id and per numeric value             —
mlp            embeddings → deep tower (the demo model)                                    MLP
wide_deep      Wide & Deep (Cheng et al. 2016): linear + deep                              MLP
deepfm         DeepFM (Guo et al. 2017): linear + FM + deep                                MLP
dcn            DCN (Wang et al. 2017): vector cross network ∥ deep                         DCN
dcn_v2         DCN-V2 (Wang et al. 2021): matrix cross network ∥ deep                      DCN
dcn_mix        DCN-Mix: mixture of low-rank cross experts ∥ deep                           DCN
xdeepfm        xDeepFM (Lian et al. 2018): linear + CIN + deep                             CIN
autoint        AutoInt+ (Song et al. 2019): field self-attention + deep                    AutoInt
fibinet        FiBiNET-style: SENet field re-weighting + deep + linear                     SeNet
can            Co-Action Network (Bian et al. 2022): item-parametrised micro-MLPs          CAN
din            DIN (Zhou et al. 2018): target attention over each behaviour sequence       DIN
dien           DIEN (Zhou et al. 2019): GRU + attention-gated GRU interest evolution       DIEN
dmr            DMR user-to-item net (Lyu et al. 2020)                                      DMR_U2I
mmoe           MMoE (Ma et al. 2018): experts + per-task gates, one tower per label        MMoE
snr            SNR (Ma et al. 2019): sub-networks routed by L0 gates, one tower per label  SNR
nas            embedding-size search then retrain (``NASSelectionLayer``)                  sparse_nas
=============  =========================================================================  ===========
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from reclayers._model_names import canonical_name
from reclayers.models import blocks, zoo
from reclayers.models.sparse import OptimizerMemory, optimizer_memory
from reclayers.models.zoo import COMMON, nas_architecture

__all__ = [
    "COMMON",
    "MODELS",
    "ModelSpec",
    "OptimizerMemory",
    "blocks",
    "compile_model",
    "default_config",
    "get_model",
    "nas_architecture",
    "optimizer_memory",
    "resolved_config",
]


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry: ``build(schema, config)``, its default ``config`` and what it needs.

    Entries live in :data:`MODELS`; :func:`get_model` is the usual way to build one.

    Args:
        name: the zoo name (``'dcn_v2'``).
        build: ``build(schema, config) -> keras.Model`` (uncompiled).
        summary: a one-line description (``reclayers models`` prints it).
        defaults: the default config: :data:`COMMON` plus the model's own keys.
        needs_sequence: the model reads a behaviour sequence (DIN, DIEN, DMR).
        multi_task: one output per label (MMoE, SNR).
        two_stage: trained in two stages, search then retrain (``nas``).

    Example:
        >>> spec = MODELS["dcn_v2"]
        >>> spec.name, spec.defaults["cross_layers"], spec.needs_sequence
        ('dcn_v2', 2, False)
    """

    name: str
    build: Any
    summary: str
    defaults: dict = field(default_factory=dict)
    needs_sequence: bool = False
    multi_task: bool = False
    two_stage: bool = False


def _spec(name, build, summary, extra=None, **kw) -> ModelSpec:
    return ModelSpec(name, build, summary, {**copy.deepcopy(COMMON), **(extra or {})}, **kw)


MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        _spec("lr", zoo.build_lr, "logistic regression (first-order weights only)"),
        _spec("mlp", zoo.build_mlp, "embeddings + deep tower"),
        _spec("wide_deep", zoo.build_wide_deep, "Wide & Deep"),
        _spec("deepfm", zoo.build_deepfm, "DeepFM: linear + FM + deep"),
        _spec("dcn", zoo.build_dcn, "DCN: vector cross network + deep", {"cross_layers": 3}),
        _spec("dcn_v2", zoo.build_dcn_v2, "DCN-V2: matrix cross network + deep", {"cross_layers": 2}),
        _spec(
            "dcn_mix",
            zoo.build_dcn_mix,
            "DCN-Mix: mixture of low-rank cross experts + deep",
            {"cross_layers": 2, "num_experts": 4, "low_rank": 32},
        ),
        _spec("xdeepfm", zoo.build_xdeepfm, "xDeepFM: linear + CIN + deep", {"cin_units": [32, 32]}),
        _spec("autoint", zoo.build_autoint, "AutoInt+: field self-attention + deep", {"attention_layers": 2}),
        _spec(
            "fibinet",
            zoo.build_fibinet,
            "FiBiNET-style: SENet re-weighting + deep + linear",
            {"reduction_ratio": 3},
        ),
        _spec(
            "can",
            zoo.build_can,
            "CAN: co-action of the item with every other feature",
            {"coaction_dim": 4, "coaction_layers": 2, "item_feature": None},
        ),
        _spec(
            "din",
            zoo.build_din,
            "DIN: target attention over behaviour sequences",
            {"attention_hidden": [32, 16]},
            needs_sequence=True,
        ),
        _spec(
            "dien",
            zoo.build_dien,
            "DIEN: GRU + AUGRU interest evolution",
            {"att_type": "AUGRU"},
            needs_sequence=True,
        ),
        _spec(
            "dmr",
            zoo.build_dmr,
            "DMR: position-aware user-to-item network",
            {"cmp_dim": 16},
            needs_sequence=True,
        ),
        _spec(
            "mmoe",
            zoo.build_mmoe,
            "MMoE: shared experts, one gate and tower per label",
            {"num_experts": 4, "tower_hidden": [32]},
            multi_task=True,
        ),
        _spec(
            "snr",
            zoo.build_snr,
            "SNR: sub-networks routed by L0 gates, one tower per label",
            {"num_subnets": 2, "tower_hidden": [32], "l0_weight": 1e-4},
            multi_task=True,
        ),
        _spec(
            "nas",
            zoo.build_nas,
            "embedding-size search (NASSelectionLayer), then retrain",
            {
                "candidate_sizes": [2, 4, 8, 16],
                "weight_grad_mode": "gumbel",
                "search_epochs": 1,
                "embedding_sizes": None,
            },
            two_stage=True,
        ),
    ]
}

#: Config keys renamed since earlier releases (old → new); the old one raises a ``ValueError``
#: naming the new one rather than being ignored or silently mapped.
RENAMED_KEYS = {"hidden": "hidden_units"}


def resolve_name(name: str) -> str:
    """Canonical model name (case-insensitive, a few aliases); ``ValueError`` if unknown."""
    key = canonical_name(name)
    if key is None or key not in MODELS:
        raise ValueError(f"models: name must be one of {', '.join(MODELS)}; got {name!r}")
    return key


def default_config(name: str) -> dict:
    """A fresh copy of model ``name``'s default config (changing it changes nothing else).

    Args:
        name: a zoo name or alias (case-insensitive, e.g. ``'DCN-V2'``).

    Example:
        >>> cfg = default_config("dcn-v2")
        >>> cfg["embedding_dim"], cfg["hidden_units"], cfg["cross_layers"]
        (16, [128, 64], 2)
    """
    return copy.deepcopy(MODELS[resolve_name(name)].defaults)


def resolved_config(name: str, **config: Any) -> dict:
    """Model ``name``'s default config updated by ``config``, checked: keys the model does not
    know raise ``ValueError`` (``epochs``/``batch_size``/``seed`` are accepted and ignored, so a
    run config can be passed); a renamed key (``hidden``, now ``hidden_units``) raises one that
    names the new key; a key whose default is a boolean (``weight_norm``, ``batch_norm``, ...)
    takes only ``True`` or ``False`` (the string ``"false"`` would otherwise read as true).

    Args:
        name: a zoo name or alias.
        **config: overrides of :func:`default_config`.

    Example:
        >>> resolved_config("dcn_v2", weight_norm=False)["weight_norm"]
        False
    """
    spec = MODELS[resolve_name(name)]
    cfg = copy.deepcopy(spec.defaults)
    for old, new in RENAMED_KEYS.items():
        if old in config:
            raise ValueError(f"models: config key {old!r} is now {new!r}; got {old}={config[old]!r}")
    unknown = sorted(set(config) - set(cfg) - {"epochs", "batch_size", "seed"})
    if unknown:
        raise ValueError(f"models: config keys of {spec.name!r} must be among {sorted(cfg)}; got {unknown}")
    for key, value in config.items():
        if isinstance(cfg.get(key), bool) and not isinstance(value, bool):
            raise ValueError(f"models: config key {key!r} of {spec.name!r} must be true or false; "
                             f"got {value!r}")
    cfg.update(config)
    return cfg


def get_model(name: str, schema, **config: Any):
    """Builds zoo model ``name`` for ``schema`` (fitted: every table's ``num_buckets`` known) with
    its default config updated by ``config`` and checked by :func:`resolved_config`.

    The model is an uncompiled functional ``keras.Model``: inputs are the batch dict of the
    schema (``schema.batch_spec()``), outputs ``{label: probability (B, 1)}``.

    Args:
        name: a zoo name or alias (the table of :mod:`reclayers.models`).
        schema: a fitted :class:`reclayers.data.Schema` (``Preprocessor.output_schema()`` or
            ``SyntheticData.schema``).
        **config: overrides of :func:`default_config` (``embedding_dim``, ``hidden_units``, ...).

    Example:
        >>> from reclayers import data
        >>> ds = data.make_synthetic(n_rows=500, seed=0)
        >>> model = get_model("deepfm", ds.schema, embedding_dim=4, hidden_units=[8])
        >>> model.output_names
        ['click']
    """
    spec = MODELS[resolve_name(name)]
    cfg = resolved_config(spec.name, **config)
    if spec.multi_task is False and spec.needs_sequence and not schema.sequence:
        raise ValueError(
            f"models: {spec.name!r} needs a behaviour sequence in the data; got schema "
            f"{schema.name!r} without SequenceFeature"
        )
    return spec.build(schema, cfg)


def compile_model(
    model,
    schema,
    learning_rate: float = 1e-3,
    jit_compile: Any = "auto",
    run_eagerly: bool = False,
    *,
    optimizer: Any = None,
    embedding_optimizer: str | None = None,
    embedding_learning_rate: float | None = None,
    train_auc: bool = True,
):
    """Compiles ``model`` with its optimizers, a binary cross-entropy per label (equal weights)
    and an AUC metric per label; returns the model.

    With ``embedding_optimizer`` one of ``sgd``, ``adagrad``, ``rowwise_adagrad``, ``lazy_adam``
    or ``ftrl``, the embedding tables are trained row-wise: each step reads and writes only the
    rows the batch looked up, and their optimizer state (see
    :mod:`reclayers.embedding_optimizers`); the other weights keep ``optimizer``. ``adam`` and
    ``None`` train the tables densely with Adam as before (``None``: the dense optimizer itself).

    Args:
        model: a model from :func:`get_model`.
        schema: its schema (gives the label names).
        learning_rate: learning rate of the default dense optimizer (Adam).
        jit_compile: passed to ``model.compile`` (``'auto'``: Keras decides per backend).
        run_eagerly: passed to ``model.compile`` (debugging).
        optimizer: a Keras optimizer (instance or name) for the dense weights; default
            ``Adam(learning_rate)``.
        embedding_optimizer: ``sgd``, ``adagrad``, ``rowwise_adagrad``, ``lazy_adam``, ``adam``
            (dense Adam), ``ftrl`` or ``None`` (the dense optimizer for the tables too).
        embedding_learning_rate: learning rate of the embedding optimizer, a constant (``None``:
            the dense optimizer's rate at every step, following its schedule if it has one).
        train_auc: compile the AUC metric (``fit`` then updates a running AUC of the training
            batches at every step, shown in its progress bar and history). ``False``: the loss
            only, as :class:`reclayers.training.Trainer` compiles, which scores held-out data
            itself; the metric's update costs a few per cent of a small model's step.

    Example:
        >>> from reclayers import data
        >>> ds = data.make_synthetic(n_rows=500, seed=0)
        >>> model = compile_model(get_model("lr", ds.schema), ds.schema, learning_rate=0.01)
        >>> round(float(model.optimizer.learning_rate), 4)
        0.01
        >>> model = compile_model(get_model("deepfm", ds.schema), ds.schema, embedding_optimizer="lazy_adam")
        >>> model.optimizer.rule.name
        'lazy_adam'
    """
    import keras

    from reclayers.embedding_optimizers import EMBEDDING_OPTIMIZERS, SparseEmbeddingOptimizer
    from reclayers.optimizers import MultiOptimizer, assign_optimizer, use_fused_kernel

    dense = keras.optimizers.get(optimizer) if optimizer is not None else keras.optimizers.Adam(learning_rate)
    use_fused_kernel(dense)  # PyTorch: one fused pass per tensor, Keras's formula
    emb_lr = learning_rate if embedding_learning_rate is None else float(embedding_learning_rate)
    rule = None if embedding_optimizer is None else str(embedding_optimizer).strip().lower()
    if rule is None:
        opt = dense
    elif rule == "adam":
        if embedding_learning_rate is None and optimizer is None:
            opt = dense
        else:
            opt = MultiOptimizer(dense)
            tables = [v for v in model.trainable_variables if getattr(v, "sparse_table", False)]
            assign_optimizer(tables, use_fused_kernel(keras.optimizers.Adam(emb_lr)))
    elif rule in EMBEDDING_OPTIMIZERS:
        from reclayers.models.sparse import check_tf_strategy

        check_tf_strategy()  # refused in one line under a tf.distribute strategy
        # Without its own rate the row rule takes the dense optimizer's rate step by step (its
        # schedule included), not a copy of the initial rate.
        opt = SparseEmbeddingOptimizer(dense, rule, embedding_learning_rate=embedding_learning_rate)
    else:
        raise ValueError(
            "models: embedding_optimizer must be one of "
            f"{', '.join([*EMBEDDING_OPTIMIZERS, 'adam'])} or None; got {embedding_optimizer!r}"
        )
    labels = list(schema.label_names)
    model.compile(
        optimizer=opt,
        loss={lab: "binary_crossentropy" for lab in labels},
        metrics={lab: [keras.metrics.AUC(name="auc")] for lab in labels} if train_auc else None,
        jit_compile=jit_compile,
        run_eagerly=run_eagerly,
    )
    return model
