"""Distributed tensors in a torch.save file: a DTensor (FSDP2's `fully_shard`, `distribute_tensor`)
or a ShardedTensor (FSDP1's sharded state dict), read from the unpickler's inert records.

torch.save writes one as `_rebuild_from_type_v2(_rebuild_wrapper_subclass, cls, (cls, dtype,
global size, ...), state)`: the wrapper has no bytes, the state has them. A DTensor's state holds
`_local_tensor` and `_spec` (the device mesh, the placements, the global shape); a
ShardedTensor's is `(local_shards, metadata, process-group state, sharding spec, rrefs)`.
`local_piece` gives the rank's own tensor (the bytes this file holds: its shape is the local
shape) and a `ShardingInfo` with the global shape, the placements and where that piece sits in
the global tensor — for a DTensor computed as DTensor does (`compute_local_shape_and_global_offset`:
each sharded mesh dimension splits the dimension like `torch.chunk`, the rank's mesh coordinate
picks the piece). Anything that is not such a record stays the wrapper it was saved as.
"""

from __future__ import annotations

import math
from typing import Any

from .model import ChunkInfo, ShardingInfo
from .unpickler import Stub, TensorRecord

DTENSOR = "DTensor"
SHARDED_TENSOR = "ShardedTensor"


def local_piece(wrapper: TensorRecord, state: Any) -> tuple[TensorRecord, ShardingInfo | None]:
    """(the tensor to list, how it is sharded); the wrapper and None when the state is not a
    DTensor's or a ShardedTensor's."""
    kind = wrapper.layout.rsplit(".", 1)[-1]
    if kind == DTENSOR:
        found = _dtensor(wrapper, _attributes(state))
    elif kind == SHARDED_TENSOR:
        found = _sharded_tensor(wrapper, state)
    else:
        found = None
    return found if found is not None else (wrapper, None)


def _dtensor(wrapper: TensorRecord, state: dict[str, Any]) -> tuple[TensorRecord, ShardingInfo] | None:
    local = state.get("_local_tensor")
    spec = _attributes(_state_of(state.get("_spec")))
    if type(local) is not TensorRecord:
        return None
    mesh = _attributes(_state_of(spec.get("mesh")))
    placements = [_placement(p) for p in _items(spec.get("placements"))]
    mesh_shape = _mesh_shape(mesh)
    coordinate = _int_list(mesh.get("_coordinate_on_dim"))
    global_shape = list(wrapper.shape)
    offsets = _dtensor_offsets(global_shape, placements, mesh_shape, coordinate)
    rank = mesh.get("_rank") if type(mesh.get("_rank")) is int else None
    sharding = ShardingInfo(
        DTENSOR, global_shape, local=True, placements=[text for text, _, _ in placements], mesh=_mesh_text(mesh, mesh_shape),
        chunks=[ChunkInfo(offsets, list(local.shape), rank=rank)] if offsets is not None else [], rank=rank)
    return _as_wrapper(local, wrapper), sharding


def _sharded_tensor(wrapper: TensorRecord, state: Any) -> tuple[TensorRecord, ShardingInfo] | None:
    if not (isinstance(state, tuple) and len(state) >= 2):
        return None
    local_shards = [_attributes(_state_of(s)) for s in _items(state[0])]
    metadata = _attributes(_state_of(state[1]))
    chunks = [_shard_chunk(_attributes(_state_of(m))) for m in _items(metadata.get("shards_metadata"))]
    mine = [s for s in local_shards if type(s.get("tensor")) is TensorRecord]
    if not mine:
        return None
    own = _shard_chunk(_attributes(_state_of(mine[0].get("metadata"))))
    spec = _attributes(_state_of(state[3])) if len(state) > 3 else {}
    dim = spec.get("dim")
    sharding = ShardingInfo(
        SHARDED_TENSOR, list(wrapper.shape), local=True, chunks=[c for c in chunks if c is not None],
        mesh=f"ChunkShardingSpec(dim={dim})" if type(dim) is int else "", rank=own.rank if own else None,
        placements=[f"Shard(dim={dim})"] if type(dim) is int else [])
    if len(mine) > 1:
        sharding.placements.append(f"{len(mine)} local shards (the first is listed)")
    return _as_wrapper(mine[0]["tensor"], wrapper), sharding


def _as_wrapper(local: TensorRecord, wrapper: TensorRecord) -> TensorRecord:
    """The local tensor, with the wrapper's flag and kind (a DTensor parameter's requires_grad
    is the wrapper's)."""
    return local.but(requires_grad=wrapper.requires_grad, kind=wrapper.kind)


def _shard_chunk(metadata: dict[str, Any]) -> ChunkInfo | None:
    offsets, sizes = _int_list(metadata.get("shard_offsets")), _int_list(metadata.get("shard_sizes"))
    if offsets is None or sizes is None:
        return None
    placement = _attributes(_state_of(metadata.get("placement")))
    rank = placement.get("_rank")
    return ChunkInfo(offsets, sizes, rank=rank if type(rank) is int else None)


def _placement(placement: Any) -> tuple[str, str, int | None]:
    """(text, kind, sharded dim) of a Shard / _StridedShard / Replicate / Partial record."""
    name = type(placement).qualname.rsplit(".", 1)[-1] if isinstance(placement, Stub) else "?"
    fields = _attributes(_state_of(placement))
    dim = fields.get("dim")
    dim = dim if type(dim) is int else None
    if name == "Shard" and dim is not None:
        return f"Shard(dim={dim})", "shard", dim
    if name == "_StridedShard" and dim is not None:
        return f"_StridedShard(dim={dim}, split_factor={fields.get('split_factor')})", "strided", dim
    if name == "Replicate":
        return "Replicate()", "replicate", None
    if name in ("Partial", "_Partial"):
        op = fields.get("reduce_op")
        return f"Partial({op if type(op) is str else '?'})", "partial", None
    return f"{name}(?)", "unknown", None


def _dtensor_offsets(global_shape: list[int], placements: list[tuple[str, str, int | None]],
                     mesh_shape: list[int] | None, coordinate: list[int] | None) -> list[int] | None:
    """Where the rank's piece starts in the global tensor, as DTensor computes it; None when the
    mesh, the coordinate or a placement cannot be read."""
    offsets = [0] * len(global_shape)
    sizes = list(global_shape)
    if mesh_shape is None or coordinate is None or not len(mesh_shape) == len(placements) == len(coordinate):
        return None if any(kind != "replicate" for _, kind, _ in placements) else offsets
    for (_, kind, dim), parts, index in zip(placements, mesh_shape, coordinate, strict=False):
        if kind in ("replicate", "partial"):
            continue
        if kind != "shard" or dim is None or not 0 <= dim < len(sizes) or parts <= 0:
            return None
        full = -(-sizes[dim] // parts)  # torch.chunk: pieces of ceil(size / parts), the last ones shorter or empty
        start = min(index * full, sizes[dim])
        sizes[dim] = max(0, min(full, sizes[dim] - start))
        offsets[dim] += start
    return offsets


def _mesh_shape(mesh: dict[str, Any]) -> list[int] | None:
    layout = _attributes(_state_of(mesh.get("_layout")))
    axes = [_int_list(_attributes(_state_of(axis)).get("shape")) for axis in _items(layout.get("axes"))]
    if axes and all(axis is not None for axis in axes):  # torch >= 2.9: one flat layout per mesh dim
        return [math.prod(axis) for axis in axes if axis is not None]
    grid = mesh.get("mesh")  # torch < 2.9 kept the rank grid as a tensor
    return list(grid.shape) if type(grid) is TensorRecord else None


def _mesh_text(mesh: dict[str, Any], shape: list[int] | None) -> str:
    device = mesh.get("_device_type", mesh.get("device_type"))
    names = mesh.get("_mesh_dim_names", mesh.get("mesh_dim_names"))
    text = f"{device if type(device) is str else '?'} mesh {shape if shape is not None else '?'}"
    if isinstance(names, tuple) and all(type(n) is str for n in names):
        text += f" ({', '.join(names)})"
    return text


def _state_of(obj: Any) -> Any:
    """A stub object's saved state (BUILD), or its constructor's arguments (named tuples)."""
    if isinstance(obj, Stub):
        return obj.state if obj.state is not None else obj.args
    return None


def _attributes(state: Any) -> dict[str, Any]:
    """An object's attributes from its state: a dict, or `(dict | None, slots dict)`."""
    if isinstance(state, dict):
        return state
    if isinstance(state, tuple) and len(state) == 2 and all(isinstance(s, (dict, type(None))) for s in state):
        return {**(state[0] or {}), **(state[1] or {})}
    return {}


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _int_list(value: Any) -> list[int] | None:
    if isinstance(value, (list, tuple)) and all(type(v) is int for v in value):
        return list(value)
    return None
