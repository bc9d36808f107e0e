"""The server's options, sent by the client as `initializationOptions`, typed with defaults.

```json
{"parseTimeLimitSeconds": 30, "parseMemoryLimitMiB": 2048, "cacheSize": 8, "logLevel": "info"}
```

Keys are the camelCase forms of the field names. `parse_initialization_options` never fails:
a bad or unknown key is reported in the returned problems and its default is used instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..worker.client import WorkerLimits

LOG_LEVELS = ("error", "warning", "info", "debug")


@dataclass(frozen=True, kw_only=True)
class InitializationOptions:
    parse_time_limit_seconds: float = field(default=30.0, metadata={"min": 0.001})
    parse_memory_limit_mib: int = field(default=2048, metadata={"min": 16})
    cache_size: int = field(default=8, metadata={"min": 1})
    log_level: str = field(default="info", metadata={"choices": LOG_LEVELS})


def _camel_case(name: str) -> str:
    """`parse_memory_limit_mib` → `parseMemoryLimitMiB` (the unit keeps its capitals)."""
    first, *rest = name.split("_")
    return first + "".join("MiB" if part == "mib" else part.title() for part in rest)


_KEYS = {_camel_case(f.name): f for f in fields(InitializationOptions)}


def _check(value: Any, kind: str, metadata: Any) -> str | None:
    """Why `value` is not acceptable, or None if it is."""
    if kind == "float" and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return "a number"
    if kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
        return "a whole number"
    if kind == "str" and not isinstance(value, str):
        return "a string"
    if "min" in metadata and value < metadata["min"]:
        return f"at least {metadata['min']}"
    if "choices" in metadata and value not in metadata["choices"]:
        return "one of " + ", ".join(metadata["choices"])
    return None


def parse_initialization_options(raw: Any) -> tuple[InitializationOptions, list[str]]:
    """Options from the client's JSON, and a list of problems (each already used a default)."""
    if raw is None:
        return InitializationOptions(), []
    if not isinstance(raw, dict):
        return InitializationOptions(), [f"initializationOptions must be an object, got {raw!r}"]
    values: dict[str, Any] = {}
    problems = []
    for key, value in raw.items():
        spec = _KEYS.get(key)
        if spec is None:
            problems.append(f"unknown option {key!r} (known: {', '.join(_KEYS)})")
            continue
        expected = _check(value, str(spec.type), spec.metadata)
        if expected is not None:
            problems.append(f"option {key!r} must be {expected}, got {value!r}; using {spec.default!r}")
            continue
        values[spec.name] = float(value) if spec.type == "float" else value
    return InitializationOptions(**values), problems


def worker_limits(options: InitializationOptions) -> WorkerLimits:
    return WorkerLimits(time_seconds=options.parse_time_limit_seconds, memory_bytes=options.parse_memory_limit_mib << 20)


def structure_arguments(options: InitializationOptions) -> tuple[str, ...]:
    """The structure worker's own arguments (it keeps that many parsed files)."""
    return ("--cache-size", str(options.cache_size))
