"""Parse the TF1 reference (``../shared/seed/layers-reference.txt``) into its public surface.

Returns, per documented object (class, function or alias), the list of argument / attribute
names the reference gives for it, in order, and the module it sits in. Written for the
reference's plain-text layout:

* a module is a line holding a lone lower-case identifier (``feature_cross``);
* ``class Name(*args, **kwargs)[source]`` opens a class, ``name(a, b=1)[source]`` a function,
  ``Name`` followed by ``alias of Other`` an alias;
* arguments are the bullet lines ``• name (type) – ...`` (or ``• name – ...``), the signature of
  a function, the ``name (type): ...`` entries of an ``Attributes:`` paragraph, and the
  attribute blocks (a lone ``name`` line followed by a description and ``Type:``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_MODULES = (
    "add_bias", "dense", "mlp", "feature_cross", "feature_seq", "feature_trans", "logit_correction",
    "norms", "pooling", "agru", "advanced_activations", "utils", "multi_task", "sparse_nas",
)
_CLASS = re.compile(r"^class (\w+)\(", re.A)
_FUNC = re.compile(r"^(\w+)\(([^)]*)\)\[source\]", re.A)
_BULLET = re.compile(r"^\s*•\s+([A-Za-z_]\w*)\s*(?:\(|–)", re.A)
_INLINE_ATTR = re.compile(r"(?:^|\s)([a-z_][a-z0-9_]*) \([^()]*\):", re.A)
_LONE = re.compile(r"^([a-z_][a-z0-9_]*)$", re.A)
_PLAIN_PARAM = re.compile(r"^(\w+) \((\w+)\) –", re.A)


@dataclass
class RefObject:
    name: str
    kind: str  # "class", "function" or "alias"
    module: str
    args: list[str] = field(default_factory=list)

    def add(self, arg: str) -> None:
        if arg not in self.args:
            self.args.append(arg)


def _previous_text(lines: list[str], i: int) -> str:
    for j in range(i - 1, -1, -1):
        if lines[j].strip():
            return lines[j].strip()
    return ""


def parse_reference(path: Path) -> list[RefObject]:
    lines = path.read_text(encoding="utf-8").splitlines()
    objects: list[RefObject] = []
    module = ""
    current: RefObject | None = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped in _MODULES and not line.startswith(" "):
            module, current = stripped, None
            continue
        if m := _CLASS.match(line):
            name = m.group(1)
            current = next((o for o in objects if o.name == name and o.module == module), None)
            if current is None:  # the reference documents NASSelectionLayer twice
                current = RefObject(name, "class", module)
                objects.append(current)
            continue
        if m := _FUNC.match(line):
            current = RefObject(m.group(1), "function", module)
            objects.append(current)
            for part in m.group(2).split(","):
                arg = part.split("=")[0].strip()
                if arg:
                    current.add(arg)
            continue
        nxt = lines[i + 2].strip() if i + 2 < len(lines) else ""
        if re.fullmatch(r"[A-Z]\w*", stripped, re.A) and nxt.startswith("alias of"):
            objects.append(RefObject(stripped, "alias", module))
            continue
        if current is None or current.kind == "alias":
            continue
        if m := _BULLET.match(line):
            current.add(m.group(1))
        elif m := _PLAIN_PARAM.match(stripped):
            current.add(m.group(1))
        elif (m := _LONE.match(stripped)) and _previous_text(lines, i) != "Type:":
            current.add(m.group(1))
        elif current.name == "MMoE":
            for m in _INLINE_ATTR.finditer(line):
                current.add(m.group(1))
    return objects
