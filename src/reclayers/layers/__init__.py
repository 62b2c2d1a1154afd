"""Every Keras layer plus reclayers' layers; reclayers' win on a name clash (``Dense``).

The reference's module paths exist as submodules: ``utils``, ``advanced_activations``,
``add_bias``, ``dense``, ``mlp``, ``norms``, ``pooling``, ``logit_correction``,
``feature_cross``, ``feature_trans``, ``feature_seq``, ``agru``, ``multi_task``, ``lhuc``,
``sparse_nas``. This namespace is built from one list per module, its ``__all__``.

Every reclayers layer class has the reference's ``params()`` classmethod
(``MLP.params().instantiate()``, see :mod:`reclayers.hyperparams`); Keras's own classes are not
modified (build their params with :func:`reclayers.hyperparams.params_for`).
"""

import keras as _keras

from reclayers.hyperparams import params_for as _params_for

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

_MODULES = (utils, advanced_activations, add_bias, dense, mlp, norms, pooling, logit_correction,
            cin, dcn, feature_cross, feature_trans, feature_seq, agru, multi_task, lhuc,
            sparse_nas)
for _module in _MODULES:
    for _name in _module.__all__:
        _obj = globals()[_name] = getattr(_module, _name)
        # The reference's ``Cls.params().instantiate()`` construction style, on our own classes.
        if (isinstance(_obj, type) and issubclass(_obj, _keras.layers.Layer)
                and _obj.__module__.startswith("reclayers.") and "params" not in _obj.__dict__):
            _obj.params = classmethod(_params_for)
del _module, _name, _obj
