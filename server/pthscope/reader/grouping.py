"""A state_dict's flat dotted keys, shown as the module tree they spell.

`{"layer1.0.conv1.weight": ...}` gets `group` nodes `layer1` → `0` → `conv1`, with the tensor
(its real path and key unchanged, named `weight`) inside. A group's path is its parent's path
plus the dotted prefix (`["layer1.0"]`), its key the dotted prefix below the parent's key. A
dict whose keys collide with their own prefixes (`"fc"` beside `"fc.weight"`) is left flat.
The reader's tree is not changed: the worker's index shows these children instead.
"""

from __future__ import annotations

from .model import Node


def grouped_children(parent: Node) -> list[Node] | None:
    """The children of a dict with dotted keys, grouped; None when it has none or they collide."""
    if parent.kind != "dict" or sum(1 for c in parent.children if "." in c.name) < 2:
        return None
    top: list[Node] = []
    groups: dict[str, Node] = {}
    leaves: set[str] = set()
    for child in parent.children:
        name = child.name
        if not isinstance(child.path[-1], str) or "." not in name or name.startswith(".") or name.endswith("."):
            top.append(child)
            leaves.add(name)
            continue
        *prefixes, leaf = name.split(".")
        siblings = top
        prefix = ""
        for part in prefixes:
            prefix = f"{prefix}.{part}" if prefix else part
            group = groups.get(prefix)
            if group is None:
                group = groups[prefix] = Node(part, [*parent.path, prefix], "group", "")
                siblings.append(group)
            siblings = group.children
        siblings.append(Node(leaf, child.path, child.kind, child.type, child.value, child.tensor,
                             child.module, child.children))
        leaves.add(name)
    return None if leaves & groups.keys() else top
