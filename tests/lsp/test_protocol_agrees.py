"""client/src/protocol.ts and the server's contract (lsp/protocol.py, with the reader's JSON
shapes it reuses) agree field by field: the same methods and commands, the same fields in every
params, result and payload type, each with the same JSON type and both optional or both
required. And what the server really sends has exactly the declared fields and types."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

import attrs
import pytest
from pytest_lsp import LanguageClient

from pthscope.lsp import protocol

from .conftest import ask

PROTOCOL_TS = Path(__file__).parents[2] / "client" / "src" / "protocol.ts"
# LSP's own WorkDoneProgressParams field; the client sends it through vscode-languageclient.
STANDARD_FIELDS = {"workDoneToken"}

# A JSON type, canonical on both sides: ("string",), ("number",), ("boolean",), ("null",),
# ("literal", value), ("array", T), ("tuple", (T, ...)), ("record", K, V), ("ref", name) for a
# named object type, ("union", frozenset of members).
JsonType = tuple[Any, ...]
Field = tuple[JsonType, bool]  # (type, optional)


# ----------------------------------------------------------------------------- the TypeScript side


class TsProtocol:
    """The type aliases, interfaces, requests and commands of protocol.ts."""

    def __init__(self, source: str) -> None:
        source = re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL)
        source = re.sub(r"//[^\n]*", "", source)
        self.aliases = dict(re.findall(r"export type (\w+)\s*=\s*([^;]+);", source))
        self.interfaces: dict[str, tuple[list[str], str]] = {
            name: ([b.strip() for b in bases.split(",")] if bases else [], body)
            for name, bases, body in re.findall(
                r"export interface (\w+)(?:\s+extends\s+([\w\s,]+))?\s*\{(.*?)\n\}", source, re.DOTALL)
        }
        found = re.findall(r"new RequestType<\s*(\w+),\s*(\w+),\s*\w+\s*>\(\s*'([^']+)'\s*\)", source)
        self.requests = {method: (params, result) for params, result, method in found}
        commands = self.interfaces.get("ServerCommands", ([], ""))[1]
        self.commands = {name: (args, result) for name, args, result in
                         re.findall(r"'([^']+)':\s*\[(\w+),\s*(\w+)\]", commands)}

    def fields(self, interface: str) -> dict[str, Field]:
        assert interface in self.interfaces, f"protocol.ts has no interface {interface}"
        bases, body = self.interfaces[interface]
        out: dict[str, Field] = {}
        for base in bases:
            out.update(self.fields(base))
        for name, optional, text in re.findall(r"^\s*'?(\w+)'?(\?)?\s*:\s*([^;]+);", body, re.MULTILINE):
            out[name] = (self.type(text), bool(optional))
        return out

    def type(self, text: str) -> JsonType:
        parsed, rest = self._union(text.strip())
        assert not rest.strip(), f"cannot read the TypeScript type {text!r}"
        return parsed

    def _union(self, text: str) -> tuple[JsonType, str]:
        members = []
        while True:
            member, text = self._term(text.lstrip())
            members.append(member)
            text = text.lstrip()
            if not text.startswith("|"):
                return _union(members), text
            text = text[1:]

    def _term(self, text: str) -> tuple[JsonType, str]:
        if text.startswith("["):
            items = []
            text = text[1:]
            while not text.lstrip().startswith("]"):
                item, text = self._union(text)
                items.append(item)
                text = text.lstrip().removeprefix(",")
            result: JsonType = ("tuple", tuple(items))
            text = text.lstrip()[1:]
        elif text.startswith("'"):
            value, text = text[1:].split("'", 1)
            result = ("literal", value)
        else:
            match = re.match(r"(\w+)", text)
            assert match, f"cannot read the TypeScript type {text!r}"
            name, text = match.group(1), text[match.end():]
            if name == "Record":
                key, text = self._union(text.lstrip()[1:])
                value, text = self._union(text.lstrip()[1:])
                result, text = ("record", key, value), text.lstrip()[1:]
            elif name in ("string", "number", "boolean", "null"):
                result = (name,)
            elif name in self.aliases:
                result = self.type(self.aliases[name])
            else:
                assert name in self.interfaces, f"protocol.ts names {name}, which it does not define"
                result = ("ref", name)
        while text.startswith("[]"):
            result, text = ("array", result), text[2:]
        return result, text


# ----------------------------------------------------------------------------- the Python side


def py_type(tp: Any) -> JsonType:
    origin, args = get_origin(tp), get_args(tp)
    if tp is str:
        return ("string",)
    if tp in (int, float):
        return ("number",)
    if tp is bool:
        return ("boolean",)
    if tp is type(None):
        return ("null",)
    if origin is Literal:
        return _union([("literal", a) for a in args])
    if origin in (Union, types.UnionType):
        return _union([py_type(a) for a in args])
    if origin is list:
        return ("array", py_type(args[0]))
    if origin is tuple:
        return ("tuple", tuple(py_type(a) for a in args))
    if origin is dict:
        return ("record", py_type(args[0]), py_type(args[1]))
    if is_typeddict(tp) or attrs.has(tp):
        return ("ref", tp.__name__)
    raise AssertionError(f"{tp!r} is not a JSON type")


def py_fields(cls: type, params: bool) -> dict[str, Field]:
    """The fields as JSON sees them: params in camelCase; a result field whose default is None is
    left out when None (so: optional, never null)."""
    hints = get_type_hints(cls)
    if is_typeddict(cls):
        return {name: (py_type(hints[name]), name in cls.__optional_keys__) for name in hints}
    out: dict[str, Field] = {}
    for a in attrs.fields(cls):
        tp = hints[a.name]
        optional = a.default is not attrs.NOTHING
        if not params and optional:  # sent only when not None
            members = [m for m in get_args(tp) if m is not type(None)] or [tp]
            tp = members[0] if len(members) == 1 else Union[tuple(members)]  # noqa: UP007
        name = re.sub(r"_(\w)", lambda m: m.group(1).upper(), a.name) if params else a.name
        out[name] = (py_type(tp), optional)
    return out


def _union(members: list[JsonType]) -> JsonType:
    flat: set[JsonType] = set()
    for m in members:
        flat |= m[1] if m[0] == "union" else {m}
    return next(iter(flat)) if len(flat) == 1 else ("union", frozenset(flat))


def _refs(t: JsonType) -> list[str]:
    if t[0] == "ref":
        return [t[1]]
    if t[0] == "union":
        return [r for m in t[1] for r in _refs(m)]
    if t[0] == "array":
        return _refs(t[1])
    if t[0] == "tuple":
        return [r for m in t[1] for r in _refs(m)]
    if t[0] == "record":
        return _refs(t[2])
    return []


@pytest.fixture(scope="module")
def ts() -> TsProtocol:
    return TsProtocol(PROTOCOL_TS.read_text())


def test_same_methods_and_commands(ts: TsProtocol) -> None:
    assert set(ts.requests) == set(protocol.METHODS)
    for method, (params, result) in ts.requests.items():
        assert (params, result) == tuple(t.__name__ for t in protocol.METHODS[method]), method
    assert {name: tuple(t.__name__ for t in types_) for name, types_ in protocol.COMMANDS.items()} == ts.commands


def test_every_type_agrees_field_by_field(ts: TsProtocol) -> None:
    """Every params and result type, and every payload type they reach, recursively."""
    pending: list[tuple[type, bool]] = [(t, True) for t, _ in [*protocol.METHODS.values(), *protocol.COMMANDS.values()]]
    pending += [(t, False) for _, t in [*protocol.METHODS.values(), *protocol.COMMANDS.values()]]
    checked: set[str] = set()
    while pending:
        cls, params = pending.pop()
        if cls.__name__ in checked:
            continue
        checked.add(cls.__name__)
        ours = py_fields(cls, params)
        theirs = ts.fields(cls.__name__)
        if params:
            theirs = {n: f for n, f in theirs.items() if n not in STANDARD_FIELDS}
            ours = {n: f for n, f in ours.items() if n not in STANDARD_FIELDS}
        assert theirs.keys() == ours.keys(), cls.__name__
        for name, field in ours.items():
            assert theirs[name] == field, f"{cls.__name__}.{name}: server {field}, client {theirs[name]}"
            pending += [(_named(ref), False) for ref in _refs(field[0])]
    assert {"NodeSummary", "TensorJson", "SummaryJson", "RoleTableJson", "TensorStats"} <= checked


def _named(name: str) -> type:
    found = getattr(protocol, name, None)
    assert found is not None, f"lsp/protocol.py does not name {name} (the payload types are its contract)"
    return typing.cast(type, found)


# ----------------------------------------------------------------------------- what is sent


def conforms(value: Any, tp: Any, where: str) -> None:
    """`value` (decoded JSON) has exactly the fields and types of `tp`."""
    origin, args = get_origin(tp), get_args(tp)
    if is_typeddict(tp):
        assert isinstance(value, dict), where
        hints = get_type_hints(tp)
        assert set(value) <= set(hints), f"{where}: undeclared {set(value) - set(hints)}"
        assert tp.__required_keys__ <= set(value), f"{where}: missing {tp.__required_keys__ - set(value)}"
        for key, item in value.items():
            conforms(item, hints[key], f"{where}.{key}")
    elif origin in (Union, types.UnionType):
        errors = []
        for option in args:
            try:
                conforms(value, option, where)
                return
            except AssertionError as error:
                errors.append(str(error))
        raise AssertionError(f"{where}: {value!r} is none of {tp}: {errors}")
    elif origin is Literal:
        assert value in args, f"{where}: {value!r} not in {args}"
    elif origin in (list, tuple):
        assert isinstance(value, (list, tuple)), where
        for i, item in enumerate(value):
            conforms(item, args[0] if origin is list else args[i], f"{where}[{i}]")
    elif origin is dict:
        assert isinstance(value, dict), where
        for key, item in value.items():
            conforms(item, args[1], f"{where}.{key}")
    elif tp is type(None):
        assert value is None, where
    elif tp in (int, float):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}: {value!r}"
    else:
        assert isinstance(value, tp), f"{where}: {value!r} is not {tp}"


def result_conforms(result: Any) -> None:
    cls = type(result)
    hints = get_type_hints(cls)
    for a in attrs.fields(cls):
        value = getattr(result, a.name)
        if value is not None or a.default is not None:
            conforms(value, hints[a.name], f"{cls.__name__}.{a.name}")


@pytest.mark.asyncio(loop_scope="module")
async def test_what_the_server_sends_has_the_declared_shape(
    shared_client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    for name in ("whole_model", "training", "state_dict", "truncated", "crash"):
        file = str(checkpoints[name])
        opened = await ask(shared_client, "pthscope/open", {"file": file})
        result_conforms(opened)
        if opened.root is None:
            continue
        for child in opened.children[:3]:
            result_conforms(await ask(shared_client, "pthscope/children", {"file": file, "path": child["path"]}))
        table = await ask(shared_client, "pthscope/tensors", {"file": file, "limit": 5})
        result_conforms(table)
        tensor = table.tensors[0]
        result_conforms(await ask(shared_client, "pthscope/details", {"file": file, "path": tensor["path"]}))
        result_conforms(await ask(shared_client, "pthscope/search", {"file": file, "query": "weight"}))
        result_conforms(await ask(shared_client, "pthscope/stats", {"file": file, "path": tensor["path"]}))
