"""The migration page covers every class, function and argument of the TF1 reference."""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import REPO_ROOT
from tests.docs.reference_names import parse_reference

REFERENCE = REPO_ROOT.parent / "shared" / "seed" / "layers-reference.txt"
MIGRATION = REPO_ROOT / "docs" / "migration.md"


def _reference():
    if not REFERENCE.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"reference {REFERENCE} is missing under CI")
        pytest.skip(f"reference {REFERENCE} is absent (a user's clone)")
    return parse_reference(REFERENCE)


def _sections(text: str) -> dict[str, str]:
    """Map every ``### ...`` heading to its body; a heading names objects in backticks."""
    sections: dict[str, str] = {}
    parts = re.split(r"^(#{2,3} .*)$", text, flags=re.M)
    for heading, body in zip(parts[1::2], parts[2::2]):
        for name in re.findall(r"`([A-Za-z_]\w*)`", heading):
            sections[name] = sections.get(name, "") + body
    return sections


def test_parser_finds_the_reference_surface():
    objects = _reference()
    names = {o.name for o in objects}
    assert {"AddBias", "Dense", "MLP", "GroupInt", "FFM", "DCN", "CIN", "DIN", "DIEN", "DMR_U2I",
            "AutoInt", "SeNet", "MMoE", "SNR", "AGRUCell", "merge_tensor_list",
            "dynamic_rnn_with_attention", "NASSelectionLayer", "SimpleNasLayer"} <= names
    by_name = {o.name: o for o in objects}
    assert "hidden_uints" in by_name["CIN"].args
    assert "on_gpu" in by_name["SeNet"].args
    assert by_name["SNR"].args[:2] == ["num_out_subnet", "out_subnet_dim"]
    assert sum(len(o.args) for o in objects) > 150


def test_every_reference_class_and_argument_is_mapped():
    text = MIGRATION.read_text(encoding="utf-8")
    sections = _sections(text)
    missing = []
    for obj in _reference():
        if obj.kind == "alias":
            if f"`{obj.name}`" not in text:
                missing.append(obj.name)
            continue
        body = sections.get(obj.name)
        if body is None:
            missing.append(f"{obj.module}.{obj.name} (no section)")
            continue
        missing += [f"{obj.name}.{arg}" for arg in obj.args if f"`{arg}`" not in body]
        if f"`{obj.module}`" not in text:
            missing.append(f"module {obj.module}")
    assert not missing, "not on docs/migration.md: " + ", ".join(missing)
