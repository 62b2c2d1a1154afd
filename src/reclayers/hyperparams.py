"""Parameter objects: the reference's second way to build a layer, ``Cls.params().instantiate()``.

.. code-block:: python

    p = Dense.params()          # every constructor argument, with its default
    p.units = 100
    p["activation"] = "relu"
    layer = p.instantiate()      # == Dense(units=100, activation="relu", name="Dense")

:class:`Params` is a small attribute/item container with dotted access to nested params;
:class:`InstantiableParams` adds the class to build; :func:`params_for` builds one for any
Keras layer class; reclayers' own layer classes also have it as the ``params()`` classmethod
(Keras's classes are left unmodified).

Deliberate differences from the original: default names are unique per process (``Dense``,
``Dense_1``, ...; the original always returned the bare class name, which Keras 3 functional
models reject), ``params`` is a classmethod so subclasses build their own, and ``instantiate``
forwards ``trainable``, ``dtype`` and ``name`` (the original silently dropped the first two).
"""

from __future__ import annotations

import copy
import inspect
import itertools
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["InstantiableParams", "Params", "params_for", "unique_name"]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_PASS_THROUGH = ("input_dim", "input_shape", "activity_regularizer", "autocast", "name")
_FORWARDED_BASE = ("trainable", "dtype", "name")
_name_counts: dict[str, itertools.count] = {}


def unique_name(base: str) -> str:
    """``base`` the first time, then ``base_1``, ``base_2``, ... (per process).

    The default layer names of :func:`params_for` come from here, so two layers built from
    params never clash in one functional model.

    Args:
        base: the name stem (usually a class name).

    Example:
        >>> unique_name("DocExample"), unique_name("DocExample"), unique_name("DocExample")
        ('DocExample', 'DocExample_1', 'DocExample_2')
    """
    counter = _name_counts.setdefault(base, itertools.count())
    n = next(counter)
    return base if n == 0 else f"{base}_{n}"


def _trigrams(s: str) -> set[str]:
    return {s[i: i + 3] for i in range(max(1, len(s) - 2))}


class Params:
    """An ordered set of named fields with attribute and item access.

    Fields are created with :meth:`define`; names match ``^[a-z][a-z0-9_]*$``. Dotted names
    (``"a.b"``, ``"a[0].b"``) reach nested params in :meth:`set`, :meth:`get` and ``in``.

    Reading or writing an undefined field raises ``AttributeError`` with the closest defined
    names; :meth:`freeze` makes the object read-only; :meth:`copy` is deep; :meth:`flat` gives
    a plain dict. The constructor takes no arguments (an empty set of fields).

    Example:
        >>> p = Params()
        >>> p.define("units", 8, "width of the layer")
        >>> p.define("tower", Params(), "a nested group")
        >>> p.tower.define("depth", 2)
        >>> p.set(**{"tower.depth": 3})["units"], p.get("tower.depth"), "tower.depth" in p
        (8, 3, True)
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_fields", {})
        object.__setattr__(self, "_descriptions", {})
        object.__setattr__(self, "_immutable", False)

    # ------------------------------------------------------------------ fields
    def define(self, name: str, default: Any, description: str = "") -> None:
        if self._immutable:
            raise TypeError(f"Params: cannot define {name!r} on frozen params")
        if not _NAME_RE.match(name):
            raise AttributeError(f"Params: field name must match ^[a-z][a-z0-9_]*$; got {name!r}")
        if name in self._fields:
            raise AttributeError(f"Params: field {name!r} is already defined")
        self._fields[name] = default
        self._descriptions[name] = description

    def _unknown(self, name: str) -> AttributeError:
        grams = _trigrams(name)
        close = [k for k in self._fields if len(grams & _trigrams(k)) > 0.5 * len(grams)]
        hint = f"; did you mean {', '.join(sorted(close))}?" if close else ""
        return AttributeError(f"Params: unknown field {name!r}{hint}")

    def __getattr__(self, name: str) -> Any:
        fields = object.__getattribute__(self, "_fields")
        if name in fields:
            return fields[name]
        raise self._unknown(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if self._immutable:
            raise TypeError(f"Params: cannot set {name!r} on frozen params")
        if name not in self._fields:
            raise self._unknown(name)
        self._fields[name] = value

    __getitem__ = __getattr__
    __setitem__ = __setattr__

    def _resolve(self, dotted: str) -> tuple[Params, str]:
        parts = dotted.split(".")
        node: Any = self
        for part in parts[:-1]:
            match = re.fullmatch(r"([a-z][a-z0-9_]*)(?:\[(\d+)\])?", part)
            if not match:
                raise AttributeError(f"Params: bad dotted name {dotted!r}")
            node = getattr(node, match.group(1))
            if match.group(2) is not None:
                node = node[int(match.group(2))]
        return node, parts[-1]

    def get(self, name: str) -> Any:
        node, leaf = self._resolve(name)
        return getattr(node, leaf)

    def set(self, **kwargs: Any) -> Params:
        for name, value in kwargs.items():
            node, leaf = self._resolve(name.replace("__", "."))
            setattr(node, leaf, value)
        return self

    def delete(self, *names: str) -> Params:
        for name in names:
            node, leaf = self._resolve(name)
            if leaf not in node._fields:
                raise node._unknown(leaf)
            del node._fields[leaf]
        return self

    def __contains__(self, name: str) -> bool:
        try:
            node, leaf = self._resolve(name)
        except AttributeError:
            return False
        return isinstance(node, Params) and leaf in node._fields

    def __len__(self) -> int:
        return len(self._fields)

    def iter_params(self) -> Iterator[tuple[str, Any]]:
        yield from self._fields.items()

    def freeze(self) -> Params:
        object.__setattr__(self, "_immutable", True)
        return self

    def is_immutable(self) -> bool:
        return self._immutable

    def copy(self) -> Params:
        """An independent deep copy (objects that cannot be deep-copied are shared)."""
        new = type(self).__new__(type(self))
        object.__setattr__(new, "_fields", {})
        object.__setattr__(new, "_descriptions", dict(self._descriptions))
        object.__setattr__(new, "_immutable", False)
        for k, v in self._fields.items():
            try:
                new._fields[k] = v.copy() if isinstance(v, Params) else copy.deepcopy(v)
            except Exception:  # tensors, locks, ...: shared by reference
                new._fields[k] = v
        return new

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Params) and self._fields == other._fields

    def __hash__(self) -> int:  # pragma: no cover - mutable container
        return id(self)

    def __str__(self) -> str:
        return "\n".join(f"{k} : {v!r}" for k, v in sorted(self._fields.items(), key=lambda kv: kv[0]))

    __repr__ = __str__

    def flat(self) -> dict[str, Any]:
        """Leaf name → value, nested params flattened by leaf name."""
        out: dict[str, Any] = {}
        for k, v in self._fields.items():
            if isinstance(v, Params):
                out.update(v.flat())
            else:
                out[k] = v
        return out


class InstantiableParams(Params):
    """:class:`Params` with a ``cls`` field; :meth:`instantiate` builds ``cls(**fields)``.

    ``instantiate`` passes the fields that are constructor parameters of ``cls`` (plus Keras's
    ``trainable``, ``dtype``, ``name`` and the other pass-through keywords when set); a class whose
    constructor takes a single ``params`` argument receives the object itself.

    Args:
        cls: the class to build (settable later as ``p.cls``).

    Example:
        >>> import keras
        >>> p = InstantiableParams(keras.layers.Dense)
        >>> p.define("units", 4)
        >>> p.define("name", "head")
        >>> layer = p.instantiate()
        >>> layer.units, layer.name
        (4, 'head')
    """

    def __init__(self, cls: type | None = None) -> None:
        super().__init__()
        self.define("cls", cls, "the class to instantiate")

    def instantiate(self) -> Any:
        cls = self.cls
        if cls is None:
            raise ValueError("InstantiableParams: cls must be set before instantiate()")
        values = self.flat()
        signature = inspect.signature(cls.__init__)
        named = [n for n, p in signature.parameters.items()
                 if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if len(named) == 1 and named[0] == "params":
            return cls(self)
        args = {n: values[n] for n in named if n in values}
        for n in _FORWARDED_BASE:
            if n in values and n not in args and values[n] is not None:
                args[n] = values[n]
        for n in _PASS_THROUGH:
            if n in values and n not in args and values[n] is not None:
                args[n] = values[n]
        return cls(**args)


def _constructor_defaults(cls: type) -> dict[str, Any]:
    """Constructor parameters of ``cls`` and its ancestors (ancestors first; subclass wins)."""
    collected: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            signature = inspect.signature(init)
        except (TypeError, ValueError):  # pragma: no cover - builtins
            continue
        for name, p in signature.parameters.items():
            if name in ("self", "cls") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            collected[name] = None if p.default is inspect.Parameter.empty else p.default
    collected.setdefault("trainable", True)
    collected.setdefault("dtype", None)
    return collected


def params_for(cls: type) -> InstantiableParams:
    """The :class:`InstantiableParams` of any layer class (reclayers' or Keras's).

    One field per constructor parameter of the class and its ancestors, with its default, plus
    ``name`` (a process-unique default from :func:`unique_name`) and Keras's pass-through keywords.

    Args:
        cls: a layer class.

    Example:
        >>> import keras
        >>> p = params_for(keras.layers.Dense)
        >>> p.units = 3
        >>> type(p.instantiate()).__name__
        'Dense'
    """
    p = InstantiableParams(cls)
    p.define("name", unique_name(cls.__name__), "layer name")
    for name, default in _constructor_defaults(cls).items():
        if name == "name":
            continue
        p.define(name, default, "")
    for name in _PASS_THROUGH:
        if name not in p:
            p.define(name, None, "Keras pass-through keyword")
    return p
