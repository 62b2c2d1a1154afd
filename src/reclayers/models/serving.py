"""A serving model that takes raw feature values and applies the fitted preprocessing itself.

:func:`export_serving` writes a TensorFlow SavedModel whose ``serving_default`` signature takes
one tensor per raw column, as the data file holds it, and returns one probability per label:

==============================  ==============================  ===================================
feature                         input                           inside the graph
==============================  ==============================  ===================================
dense                           ``float64 [batch]``, ``NaN``    fill, ``sign(x)·log1p(|x|)``, then
                                for missing                     standardise or bucketise
                                                                (``searchsorted`` on the fitted
                                                                boundaries, ids ``1..num_bins``)
categorical, vocabulary         ``string [batch]``              a static hash table of the fitted
                                                                vocabulary (ids from 2, unseen → 1)
categorical, hashed             ``string [batch]``              CRC32 of the UTF-8 bytes into
                                                                ``1..num_buckets-1``
sequence                        ``string [batch]``: the items   split, encoded like a categorical,
                                joined by the feature's         empty items dropped, truncated and
                                ``separator``                   padded to ``max_len`` with a mask
==============================  ==============================  ===================================

Every step reproduces :class:`reclayers.data.Preprocessor` exactly (dense arithmetic in float64,
as the preprocessor does). Keras's ``StringLookup`` is the same static hash table, but Keras
preprocessing layers only become part of a SavedModel on the TensorFlow backend, and Keras's
``Hashing`` layer uses FarmHash or SipHash, not the CRC32 the preprocessor uses (ids must not
change between training and serving); so the graph is written with TensorFlow ops directly, and
CRC32 is computed with a 256-entry table over the bytes of each value, vectorised over the
batch. The trained model enters as its own Keras SavedModel export (backends ``jax`` and
``tensorflow``; a ``.keras`` file of a ``torch`` run loads on either).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from reclayers.data.schema import OOV_ID, PAD_ID

__all__ = ["export_serving", "raw_inputs", "serving_inputs", "load_serving"]


def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.int64)
    for _ in range(8):
        table = np.where(table & 1, 0xEDB88320 ^ (table >> 1), table >> 1)
    return table


def raw_inputs(preprocessor) -> dict:
    """The raw columns a serving model takes: ``{column: (dtype name, feature kind)}``.

    Args:
        preprocessor: a fitted :class:`reclayers.data.Preprocessor`.

    Returns:
        ``{"I1": ("float64", "dense"), "C1": ("string", "categorical"), ...}``, keyed by the data
        file's column names (a feature's ``source``).

    Example:

    >>> from reclayers.data import CategoricalFeature, DenseFeature, Label, Preprocessor, Schema
    >>> schema = Schema(features=(CategoricalFeature("city"), DenseFeature("age")),
    ...                 labels=(Label("click"),))
    >>> raw_inputs(Preprocessor(schema))
    {'city': ('string', 'categorical'), 'age': ('float64', 'dense')}
    """
    out = {}
    for f in preprocessor.schema.features:
        out[f.source] = ("float64" if f.kind == "dense" else "string", f.kind)
    return out


def serving_inputs(preprocessor, chunk: dict) -> dict:
    """A raw chunk (as the readers yield it) as the serving model's inputs: NumPy arrays.

    Dense columns become float64 (``NaN`` for missing), categorical ones text (missing: ``""``),
    sequence ones their items joined by the feature's ``separator``.

    Args:
        preprocessor: the fitted :class:`reclayers.data.Preprocessor`.
        chunk: ``{column: values}`` with at least the columns of :func:`raw_inputs`.

    Returns:
        ``{column: np.ndarray}``.

    Example:

    >>> import numpy as np, pyarrow as pa
    >>> from reclayers.data import Label, Preprocessor, Schema, SequenceFeature
    >>> pre = Preprocessor(Schema(features=(SequenceFeature("hist", separator="|"),),
    ...                           labels=(Label("click"),)))
    >>> serving_inputs(pre, {"hist": pa.array([["a", "b"], []])})["hist"].tolist()
    ['a|b', '']
    """
    import pyarrow.compute as pc

    from reclayers.data.preprocess import _as_list, _as_text

    out = {}
    for f in preprocessor.schema.features:
        values = chunk[f.source]
        if f.kind == "dense":
            out[f.source] = np.asarray(values, np.float64)
        elif f.kind == "categorical":
            out[f.source] = np.asarray(_as_text(values).to_pylist(), dtype=object)
        else:
            joined = pc.fill_null(pc.binary_join(_as_list(values), f.separator), "")
            out[f.source] = np.asarray(joined.to_pylist(), dtype=object)
    return out


class _Encoder:
    """The preprocessing of one fitted preprocessor as TensorFlow ops (tables built once)."""

    def __init__(self, preprocessor):
        import tensorflow as tf

        self.pre = preprocessor
        self.crc = tf.constant(_crc_table(), tf.int64)
        self.tables = {}
        # A growing vocabulary (``Preprocessor(min_count=..., oov_buckets=K)``) keeps its ids where
        # they were first given and sends values not (yet) admitted to K hashed fallback ids.
        self.fallback = {t: (int(st["oov_base"]), int(st["oov_buckets"]))
                         for t, st in (getattr(preprocessor, "tables_state", None) or {}).items()
                         if st.get("oov_buckets")}
        for table, names in preprocessor.schema.tables().items():
            if preprocessor.schema[names[0]].encoding == "vocab" and preprocessor.vocabs.get(table):
                keys = tf.constant(preprocessor.vocabs[table], tf.string)
                values = tf.constant(preprocessor.vocab_ids(table), tf.int64)
                self.tables[table] = tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(keys, values), default_value=OOV_ID
                )

    def crc32(self, text):
        """CRC32 (zlib's) of each UTF-8 string of a 1-D ``text`` tensor, as int64."""
        import tensorflow as tf

        pieces = tf.strings.bytes_split(text)
        codes = tf.ragged.map_flat_values(
            lambda b: tf.cast(tf.io.decode_raw(b, tf.uint8, fixed_length=1)[:, 0], tf.int64), pieces
        )
        padded = codes.to_tensor(0)
        valid = tf.sequence_mask(codes.row_lengths(), tf.shape(padded)[1])
        crc = tf.fill(tf.shape(text), tf.constant(0xFFFFFFFF, tf.int64))
        crc = tf.foldl(
            lambda c, x: tf.where(x[1], tf.bitwise.bitwise_xor(
                tf.gather(self.crc, tf.bitwise.bitwise_and(tf.bitwise.bitwise_xor(c, x[0]), 0xFF)),
                tf.bitwise.right_shift(c, 8)), c),
            (tf.transpose(padded), tf.transpose(valid)),
            initializer=crc,
        )
        return tf.bitwise.bitwise_xor(crc, tf.constant(0xFFFFFFFF, tf.int64))

    def ids(self, f, text):
        """Ids of a 1-D string tensor for a categorical/sequence feature ``f`` (int64)."""
        import tensorflow as tf

        if f.encoding == "hash":
            return 1 + tf.math.floormod(self.crc32(text), f.num_buckets - 1)
        table = self.tables.get(f.table_name)
        if table is None:  # an empty vocabulary: every value is unseen
            ids = tf.fill(tf.shape(text), tf.constant(OOV_ID, tf.int64))
        else:
            ids = table.lookup(text)
        if f.table_name in self.fallback:  # unseen, non-empty values: their hashed fallback id
            base, buckets = self.fallback[f.table_name]
            unseen = tf.logical_and(tf.equal(ids, OOV_ID), tf.not_equal(text, ""))
            ids = tf.where(unseen, base + tf.math.floormod(self.crc32(text), buckets), ids)
        return ids

    def dense(self, f, x):
        import tensorflow as tf

        st = self.pre.dense_stats[f.name]
        x = tf.where(tf.math.is_finite(x), x, tf.constant(st["fill"], tf.float64))
        if f.log:
            x = tf.sign(x) * tf.math.log1p(tf.abs(x))
        if f.num_bins:
            bounds = st.get("boundaries", [])
            if not bounds:
                return tf.ones(tf.shape(x), tf.int32)
            b = tf.constant(bounds, tf.float64)
            return tf.cast(tf.searchsorted(b[None, :], x[None, :], side="right")[0] + 1, tf.int32)
        if f.standardize:
            x = (x - st["mean"]) / st["std"]
        return tf.cast(x, tf.float32)

    def sequence(self, f, text):
        """Joined items → ``(ids [batch, max_len], mask [batch, max_len])`` as ``pad_sequences``."""
        import tensorflow as tf

        items = tf.strings.split(text, sep=f.separator)
        items = tf.ragged.boolean_mask(items, tf.not_equal(items, ""))
        flat = self.ids(f, items.flat_values)
        offsets = items.row_splits
        lengths = offsets[1:] - offsets[:-1]
        n_keep = tf.minimum(lengths, f.max_len)
        start = offsets[:-1] + (tf.maximum(lengths - f.max_len, 0) if f.truncate == "pre" else 0)
        j = tf.range(f.max_len, dtype=offsets.dtype)[None, :]
        if f.pad == "post":
            mask = j < n_keep[:, None]
            idx = start[:, None] + j
        else:
            shift = (f.max_len - n_keep)[:, None]
            mask = j >= shift
            idx = start[:, None] + j - shift
        size = tf.shape(flat, out_type=offsets.dtype)[0]
        got = tf.gather(tf.concat([flat, [PAD_ID]], 0), tf.where(size > 0, tf.clip_by_value(idx, 0, size - 1),
                                                                  tf.zeros_like(idx)))
        return tf.cast(tf.where(mask, got, PAD_ID), tf.int32), mask

    def __call__(self, raw: dict) -> dict:
        feats = {}
        for f in self.pre.schema.features:
            x = raw[f.source]
            if f.kind == "dense":
                feats[f.name] = self.dense(f, x)
            elif f.kind == "categorical":
                import tensorflow as tf

                feats[f.name] = tf.cast(self.ids(f, x), tf.int32)
            else:
                feats[f.name], feats[f.name + "_mask"] = self.sequence(f, x)
        return feats


def export_serving(model, preprocessor, path) -> Path:
    """Write a SavedModel that takes raw feature values and returns ``{label: probability}``.

    Args:
        model: a trained zoo model (its inputs are the preprocessor's encoded features).
        preprocessor: the fitted :class:`reclayers.data.Preprocessor` the model was trained with.
        path: the SavedModel folder to write (replaced if it exists).

    Returns:
        ``path`` as a :class:`~pathlib.Path`. Load it with :func:`load_serving` or
        ``tf.saved_model.load``; its ``serving_default`` signature takes the columns of
        :func:`raw_inputs` (sequence columns as the items joined by the feature's ``separator``).

    Example:

    >>> import keras, numpy as np
    >>> from reclayers.data import CategoricalFeature, DenseFeature, Label, Preprocessor, Schema
    >>> schema = Schema(features=(CategoricalFeature("city"), DenseFeature("age")),
    ...                 labels=(Label("click"),))
    >>> pre = Preprocessor(schema).fit([{"city": np.array(["paris", "rome"]),
    ...                                  "age": np.array([20.0, 40.0]), "click": np.array([1.0, 0.0])}])
    >>> inputs = {"city": keras.Input((), dtype="int32", name="city"),
    ...           "age": keras.Input((), name="age")}
    >>> x = keras.ops.concatenate([keras.layers.Embedding(4, 2)(inputs["city"]),
    ...                            keras.ops.expand_dims(inputs["age"], -1)], axis=-1)
    >>> model = keras.Model(inputs, {"click": keras.layers.Dense(1, activation="sigmoid")(x)})
    >>> try:
    ...     path = export_serving(model, pre, "serving_example")
    ... except ValueError:  # the torch backend cannot write a TensorFlow SavedModel
    ...     path = None
    >>> serve = load_serving(path) if path else lambda **raw: {"click": np.zeros(2)}
    >>> {k: v.shape for k, v in serve(city=["paris", "oslo"], age=[30.0, float("nan")]).items()}
    {'click': (2,)}
    """
    import keras
    import tensorflow as tf

    if keras.backend.backend() not in ("jax", "tensorflow"):
        raise ValueError(f"export_serving writes a TensorFlow SavedModel: the model must run on the jax "
                         f"or tensorflow backend; got {keras.backend.backend()!r} (a saved .keras model "
                         "loads on either)")
    path = Path(path)
    work = Path(tempfile.mkdtemp(prefix="reclayers-serving-"))
    try:
        model.export(str(work / "model"), format="tf_saved_model", verbose=False)
        core = tf.saved_model.load(str(work / "model"))
        wanted = core.signatures["serving_default"].structured_input_signature[1]
        labels = [lab.name for lab in preprocessor.schema.labels]
        columns = raw_inputs(preprocessor)
        spec = {c: tf.TensorSpec([None], tf.float64 if d == "float64" else tf.string, name=c)
                for c, (d, _) in columns.items()}

        module = tf.Module()
        module.model = core
        module.encoder = _Encoder(preprocessor)
        module.tables = list(module.encoder.tables.values())

        @tf.function(input_signature=[spec])
        def serve(raw):
            feats = module.encoder(raw)
            feats = {k: tf.cast(v, wanted[k].dtype) for k, v in feats.items() if k in wanted}
            out = module.model.serve(feats)
            if not isinstance(out, dict):
                out = {labels[0]: out}
            return {lab: tf.reshape(out[lab], [-1]) for lab in labels}

        module.serve = serve
        if path.exists():
            shutil.rmtree(path)
        # Serving needs no gradients (and a JAX model's custom gradients cannot be saved again).
        tf.saved_model.save(module, str(path), signatures={"serving_default": serve.get_concrete_function()},
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def load_serving(path):
    """A callable over a SavedModel written by :func:`export_serving`: keyword arrays in, NumPy out.

    Args:
        path: the SavedModel folder.

    Returns:
        ``fn(**columns) -> {label: np.ndarray}``; dense columns are cast to float64 and the others
        to strings, so NumPy or Python values can be passed as they are.

    Example:

    >>> callable(load_serving)
    True
    """
    import tensorflow as tf

    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    spec = signature.structured_input_signature[1]

    def call(**columns):
        feeds = {}
        for name, s in spec.items():
            v = columns[name]
            if s.dtype == tf.string:
                v = tf.constant(np.asarray(v, dtype=object).astype(str).astype(object), tf.string)
            else:
                v = tf.constant(np.asarray(v, np.float64))
            feeds[name] = v
        return {k: np.asarray(v) for k, v in signature(**feeds).items()}

    return call
