"""The model zoo: CTR / multi-task models assembled from reclayers' layers.

Each builder takes a fitted :class:`reclayers.data.Schema` and a config dict (the model's
documented defaults updated by the caller's values) and returns an uncompiled Keras functional
model ``{feature: tensor} → {label: probability [B, 1]}``. Use :func:`reclayers.models.get_model`.
"""

from __future__ import annotations

import keras

from reclayers import layers as L
from reclayers.models import blocks as B
from reclayers.models.sparse import ZooModel

COMMON = {
    "embedding_dim": 16,  # width of every embedding table
    "hidden_units": [128, 64],  # deep tower (ReLU MLP)
    "weight_norm": True,  # the towers' Dense layers weight-normalised with a learned gain, as the
    # library MLP's default; False: plain Dense, as DeepCTR's and FuxiCTR's towers (fewer ops)
    "raw_numeric": True,  # the raw numeric values join the flat field vector next to their
    # embeddings x·v; False: their embeddings only, as FuxiCTR's models
    "dropout": 0.0,  # dropout after each deep layer
    "batch_norm": False,  # batch norm inside the deep tower
    "embedding_l2": 0.0,  # L2 on embeddings and first-order weights
    "learning_rate": 1e-3,  # Adam
}


def _model(inputs, heads, name):
    return ZooModel(inputs=inputs, outputs=heads, name=name)


def _embed(schema, inputs, cfg, dim=None, **kwargs):
    """Every feature embedded at ``dim`` (default ``embedding_dim``) with the config's L2 and
    ``raw_numeric``."""
    return B.embed_features(schema, inputs, dim or cfg["embedding_dim"], l2=cfg["embedding_l2"],
                            raw_numeric=cfg["raw_numeric"], **kwargs)


def _tower(x, cfg, name="deep"):
    """The deep tower on ``x``: ``hidden_units`` with the config's dropout, batch norm and weight
    norm."""
    return B.deep_tower(x, cfg["hidden_units"], cfg["dropout"], cfg["batch_norm"], name=name,
                        weight_norm=cfg["weight_norm"])


def _deep(emb, cfg, name="deep"):
    return _tower(emb.flat(), cfg, name)


def _concat(parts, name):
    parts = [p for p in parts if p is not None]
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(axis=-1, name=name)(parts)


def _logit(x, name):
    return keras.layers.Dense(1, name=name)(x)


def _add(parts, name):
    return parts[0] if len(parts) == 1 else keras.layers.Add(name=name)(parts)


# --- first-order and deep baselines ---------------------------------------------------------------
def build_lr(schema, cfg):
    inputs = B.make_inputs(schema)
    return _model(
        inputs, B.prediction_heads(schema, B.linear_logit(schema, inputs, cfg["embedding_l2"])), "lr"
    )


def build_mlp(schema, cfg):
    inputs = B.make_inputs(schema)
    emb = _embed(schema, inputs, cfg)
    return _model(inputs, B.prediction_heads(schema, _deep(emb, cfg)), "mlp")


def build_wide_deep(schema, cfg):
    inputs = B.make_inputs(schema)
    emb = _embed(schema, inputs, cfg)
    logit = _add(
        [B.linear_logit(schema, inputs, cfg["embedding_l2"]), _logit(_deep(emb, cfg), "deep_logit")], "logit"
    )
    return _model(inputs, B.prediction_heads(schema, logit), "wide_deep")


def build_deepfm(schema, cfg):
    inputs = B.make_inputs(schema)
    emb = _embed(schema, inputs, cfg)
    fm = B.FMInteraction(name="fm")(emb.stacked())
    logit = _add(
        [B.linear_logit(schema, inputs, cfg["embedding_l2"]), fm, _logit(_deep(emb, cfg), "deep_logit")],
        "logit",
    )
    return _model(inputs, B.prediction_heads(schema, logit), "deepfm")


# --- explicit crosses ------------------------------------------------------------------------------
def _build_dcn(schema, cfg, dcn_type, name):
    inputs = B.make_inputs(schema)
    emb = _embed(schema, inputs, cfg)
    x0 = emb.flat()
    kw = {"num_experts": cfg["num_experts"], "low_rank": cfg["low_rank"]} if dcn_type == "mixed" else {}
    cross = L.DCN(layer_num=cfg["cross_layers"], dcn_type=dcn_type, name="cross", **kw)(x0)
    deep = _tower(x0, cfg)
    parts = [cross, deep] if cfg["hidden_units"] else [cross]
    return _model(inputs, B.prediction_heads(schema, _logit(_concat(parts, "cross_deep"), "logit")), name)


def build_dcn(schema, cfg):
    return _build_dcn(schema, cfg, "vector", "dcn")


def build_dcn_v2(schema, cfg):
    return _build_dcn(schema, cfg, "matrix", "dcn_v2")


def build_dcn_mix(schema, cfg):
    return _build_dcn(schema, cfg, "mixed", "dcn_mix")


def build_xdeepfm(schema, cfg):
    inputs = B.make_inputs(schema)
    emb = _embed(schema, inputs, cfg)
    cin = L.CIN(hidden_units=cfg["cin_units"], activation="relu", name="cin")(emb.stacked())
    logit = _add(
        [
            B.linear_logit(schema, inputs, cfg["embedding_l2"]),
            _logit(cin, "cin_logit"),
            _logit(_deep(emb, cfg), "deep_logit"),
        ],
        "logit",
    )
    return _model(inputs, B.prediction_heads(schema, logit), "xdeepfm")


def build_autoint(schema, cfg):
    inputs = B.make_inputs(schema)
    emb = _embed(schema, inputs, cfg)
    att = L.AutoInt(layer_num=cfg["attention_layers"], out_type="concat", name="autoint")(
        emb.stacked()
    )
    logit = _add([_logit(att, "attention_logit"), _logit(_deep(emb, cfg), "deep_logit")], "logit")
    return _model(inputs, B.prediction_heads(schema, logit), "autoint")


def build_fibinet(schema, cfg):
    inputs = B.make_inputs(schema)
    emb = _embed(schema, inputs, cfg)
    stacked = emb.stacked()
    n = len(emb.fields)
    se = L.SeNet(
        num_feature=n, cmp_dim=max(1, n // cfg["reduction_ratio"]), out_type="concat", name="senet"
    )(stacked)
    x = _concat([emb.flat(), se], "senet_concat")
    deep = _tower(x, cfg)
    logit = _add([B.linear_logit(schema, inputs, cfg["embedding_l2"]), _logit(deep, "deep_logit")], "logit")
    return _model(inputs, B.prediction_heads(schema, logit), "fibinet")


def _target_feature(schema, cfg, key="item_feature"):
    name = cfg.get(key)
    if name:
        return schema[name]
    seq_tables = {f.table_name for f in schema.sequence}
    for f in schema.categorical:  # the target of a behaviour sequence, else the first id
        if f.table_name in seq_tables:
            return f
    if not schema.categorical:
        raise ValueError("models: this model needs at least one categorical feature; got none")
    return schema.categorical[0]


def build_can(schema, cfg):
    """Co-action network: the item id's own embedding is the weights of a small MLP applied to the
    other features' co-action embeddings (separate tables of width ``coaction_dim``)."""
    inputs = B.make_inputs(schema)
    emb = _embed(schema, inputs, cfg)
    item = _target_feature(schema, cfg)
    u, layers_n = cfg["coaction_dim"], cfg["coaction_layers"]
    co = B.embed_features(schema, inputs, u, prefix="coaction")
    users = [v for k, v in co.fields.items() if k != item.name]
    user = B.Stack(axis=1, name="coaction_users")(users)
    params = keras.layers.Embedding(
        B.table_sizes(schema)[item.table_name],
        layers_n * (u * u + u),
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1),
        name="coaction_item_params",
    )(inputs[item.name])
    can = L.CAN(layer_num=layers_n, activation="tanh", is_seq=False, is_stacked=True, name="can")(
        [user, params]
    )
    x = _concat([emb.flat(), keras.layers.Flatten(name="can_flat")(can)], "can_concat")
    deep = _tower(x, cfg)
    logit = _add([B.linear_logit(schema, inputs, cfg["embedding_l2"]), _logit(deep, "deep_logit")], "logit")
    return _model(inputs, B.prediction_heads(schema, logit), "can")


# --- user-interest (sequence) models ---------------------------------------------------------------
def _sequence_pairs(schema):
    """``[(sequence feature, target feature)]``: each history with the id feature sharing its table."""
    pairs = []
    for s in schema.sequence:
        target = next((f for f in schema.categorical if f.table_name == s.table_name), None)
        if target is not None:
            pairs.append((s, target))
    if not pairs:
        raise ValueError(
            "models: this model needs a SequenceFeature sharing its table with a "
            "CategoricalFeature (e.g. hist_item and item); got none in schema "
            f"{schema.name!r}"
        )
    return pairs


def _build_interest(schema, cfg, name, make_pool):
    inputs = B.make_inputs(schema)
    emb = _embed(schema, inputs, cfg)
    interests = []
    for seq, target in _sequence_pairs(schema):
        keys, mask = emb.sequences[seq.name]
        interests.append(make_pool(seq.name)([emb.ids[target.name], keys, mask]))
    x = _concat([emb.flat()] + interests, "interest_concat")
    deep = _tower(x, cfg)
    return _model(inputs, B.prediction_heads(schema, _logit(deep, "logit")), name)


def build_din(schema, cfg):
    din = L.DIN
    return _build_interest(
        schema, cfg, "din", lambda s: din(cfg["attention_hidden"] + [1], activation="relu", name=f"din_{s}")
    )


def build_dien(schema, cfg):
    dien = L.DIEN
    return _build_interest(
        schema, cfg, "dien", lambda s: dien(cfg["embedding_dim"], att_type=cfg["att_type"], name=f"dien_{s}")
    )


def build_dmr(schema, cfg):
    dmr = L.DMR_U2I
    return _build_interest(
        schema, cfg, "dmr", lambda s: dmr(cfg["cmp_dim"], activation="relu", name=f"dmr_{s}")
    )


# --- multi-task ------------------------------------------------------------------------------------
def _towers(schema, task_inputs, cfg):
    return {
        lab: _logit(B.deep_tower(x, cfg["tower_hidden"], name=f"tower_{lab}", weight_norm=cfg["weight_norm"]),
                    f"{lab}_tower_logit")
        for lab, x in zip(schema.label_names, task_inputs)
    }


def build_mmoe(schema, cfg):
    inputs = B.make_inputs(schema)
    emb = _embed(schema, inputs, cfg)
    outs = L.MMoE(
        num_tasks=len(schema.labels),
        expert_output_dims=cfg["hidden_units"],
        expert_activations="relu",
        num_experts=cfg["num_experts"],
        name="mmoe",
    )(emb.flat())
    return _model(inputs, B.prediction_heads(schema, _towers(schema, outs, cfg)), "mmoe")


def build_snr(schema, cfg):
    inputs = B.make_inputs(schema)
    emb = _embed(schema, inputs, cfg)
    x = emb.flat()
    subnets = [B.deep_tower(x, cfg["hidden_units"], name=f"subnet_{i}", weight_norm=cfg["weight_norm"])
               for i in range(cfg["num_subnets"])]
    outs = L.SNR(
        num_out_subnet=len(schema.labels),
        out_subnet_dim=cfg["hidden_units"][-1],
        snr_type="trans",
        l0_weight=cfg["l0_weight"],
        name="snr",
    )(subnets)
    return _model(inputs, B.prediction_heads(schema, _towers(schema, outs, cfg)), "snr")


# --- embedding-size search -------------------------------------------------------------------------
def build_nas(schema, cfg):
    """Search model (``embedding_sizes`` is ``None``): every table has the largest candidate width,
    the concatenated field vectors pass a ``NASSelectionLayer`` (nested prefixes, one choice per
    field) before the deep tower. Retrain model (``embedding_sizes = {table: width}``, read from the
    search by :func:`reclayers.models.nas_architecture`): a Wide&Deep with those widths."""
    inputs = B.make_inputs(schema)
    sizes = cfg.get("embedding_sizes")
    linear = B.linear_logit(schema, inputs, cfg["embedding_l2"])
    if sizes:
        emb = _embed(schema, inputs, cfg, max(cfg["candidate_sizes"]), dims=sizes)
        deep = _deep(emb, cfg)
        return _model(
            inputs,
            B.prediction_heads(schema, _add([linear, _logit(deep, "deep_logit")], "logit")),
            "nas_retrain",
        )
    cands = sorted(cfg["candidate_sizes"])
    emb = _embed(schema, inputs, cfg, cands[-1])
    names = list(emb.fields)
    x = keras.layers.Concatenate(axis=-1, name="search_fields")(list(emb.fields.values()))
    x = L.NASSelectionLayer(
        [cands] * len(names),
        segment_names=names,
        embedding_share_mode="left",
        weight_grad_mode=cfg["weight_grad_mode"],
        seed=cfg.get("seed", 0),
        random_seed=0,
        name="nas_selection",
    )(x)
    if emb.numeric is not None and emb.raw_numeric:
        x = keras.layers.Concatenate(axis=-1, name="search_concat")([x, emb.numeric])
    deep = _tower(x, cfg)
    return _model(
        inputs, B.prediction_heads(schema, _add([linear, _logit(deep, "deep_logit")], "logit")), "nas_search"
    )


def nas_architecture(model, schema) -> dict:
    """``{table: chosen width}`` read from a trained search model (the widest choice of the fields
    sharing a table; numeric fields are not tables and keep their vectors).

    Pass the result as ``embedding_sizes`` to ``get_model("nas", ...)`` to build the retrain
    model. A width is at least 1 (a dropped choice keeps one column).

    Args:
        model: a ``nas`` search model (it has the ``nas_selection`` layer).
        schema: the schema the model was built for.

    Example:
        >>> from reclayers import data, models
        >>> ds = data.make_synthetic(n_rows=500, seed=0)
        >>> search = models.get_model("nas", ds.schema, candidate_sizes=[2, 4], hidden_units=[8])
        >>> widths = nas_architecture(search, ds.schema)
        >>> sorted(set(widths.values())) <= [2, 4], len(widths)
        (True, 8)
    """
    layer = model.get_layer("nas_selection")
    chosen = {
        a["name"] if "name" in a else n: int(a["size"])
        for n, a in zip(layer.segment_names, layer.get_architecture())
    }
    sizes: dict[str, int] = {}
    for f in schema.features:
        if f.name in chosen and f.kind != "dense":
            t = f.table_name
            sizes[t] = max(sizes.get(t, 0), max(chosen[f.name], 1))
        elif f.name in chosen and f.num_bins:
            sizes[f.name] = max(chosen[f.name], 1)
    return sizes

