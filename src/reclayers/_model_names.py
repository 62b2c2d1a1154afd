"""The zoo's model names and their aliases, importable without Keras.

The command line checks ``--model`` against them before it starts an engine (a typo then fails
at once rather than after Keras has loaded); :mod:`reclayers.models` builds its registry in this
order and resolves names with these aliases.
"""

from __future__ import annotations

#: every zoo model, in the order ``reclayers models`` lists them
MODEL_NAMES = (
    "lr", "mlp", "wide_deep", "deepfm", "dcn", "dcn_v2", "dcn_mix", "xdeepfm", "autoint", "fibinet",
    "can", "din", "dien", "dmr", "mmoe", "snr", "nas",
)

#: other spellings accepted for a model name (after lower-casing)
ALIASES = {
    "widedeep": "wide_deep",
    "wdl": "wide_deep",
    "dcnv2": "dcn_v2",
    "dcn-v2": "dcn_v2",
    "dcn_m": "dcn_mix",
    "dcnmix": "dcn_mix",
    "dcn-mix": "dcn_mix",
    "autoint+": "autoint",
}


def canonical_name(name: str) -> str | None:
    """The zoo name that ``name`` stands for (case-insensitive, aliases allowed), or ``None``.

    Example:
        >>> canonical_name("DCN-V2"), canonical_name("dcn_v3")
        ('dcn_v2', None)
    """
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    return key if key in MODEL_NAMES else None
