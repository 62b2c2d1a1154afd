"""Every Keras layer plus reclayers' layers; reclayers' win on a name clash (``Dense``).

The reference's module paths exist as submodules: ``utils``, ``advanced_activations``,
``add_bias``, ``dense``, ``mlp``, ``norms``, ``pooling``, ``logit_correction``,
``feature_cross``, ``feature_trans``, ``feature_seq``, ``agru``, ``multi_task``, ``lhuc``,
``sparse_nas``.
"""

import keras as _keras

#: Keras layer classes and functions re-exported here (name -> object), as the reference kept.
keras_layers = {
    _name: getattr(_keras.layers, _name)
    for _name in dir(_keras.layers)
    if not _name.startswith("_")
}
globals().update(keras_layers)

from reclayers.layers import (  # noqa: E402
    add_bias,
    advanced_activations,
    agru,
    cin,
    dcn,
    dense,
    feature_cross,
    feature_seq,
    feature_trans,
    lhuc,
    logit_correction,
    mlp,
    multi_task,
    norms,
    pooling,
    sparse_nas,
    utils,
)
from reclayers.layers.add_bias import AddBias  # noqa: E402
from reclayers.layers.advanced_activations import *  # noqa: E402,F403
from reclayers.layers.dense import Dense  # noqa: E402
from reclayers.layers.logit_correction import LogitCorrection  # noqa: E402
from reclayers.layers.mlp import MLP  # noqa: E402
from reclayers.layers.norms import GradNorm, LayerNorm  # noqa: E402
from reclayers.layers.pooling import AvgPooling, MaxPooling, SumPooling  # noqa: E402
from reclayers.layers.utils import DCNType, MergeType, merge_tensor_list  # noqa: E402

for _module in (agru, cin, dcn, feature_cross, feature_trans, feature_seq, lhuc, multi_task, sparse_nas):
    globals().update({_n: getattr(_module, _n) for _n in getattr(_module, "__all__", ())})
del _module

# ``Cls.params().instantiate()``: the reference's parameter-object construction style, attached
# to every layer class in this namespace (ours and, as the reference did, the Keras ones).
from reclayers.hyperparams import params_for as _params_for  # noqa: E402

for _obj in list(globals().values()):
    if (isinstance(_obj, type) and issubclass(_obj, _keras.layers.Layer)
            and "params" not in _obj.__dict__ and _obj is not _keras.layers.Layer):
        _obj.params = classmethod(_params_for)
del _obj
