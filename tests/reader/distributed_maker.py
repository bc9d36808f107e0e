"""Distributed checkpoints made by two real ranks (gloo on CPU): `python -m tests.reader.distributed_maker OUT`.

Each rank writes, with torch 2.13's own APIs:

* `fsdp_dcp/`: `torch.distributed.checkpoint.save` of FSDP2 (`fully_shard`) model + Adam state
  (`get_state_dict`): every sharded tensor in two chunks, one per rank's `.distcp` file;
* `fsdp_ranks/rank{R}.pt`: `torch.save(model.state_dict())` of the FSDP2 model: DTensors;
* `dtensor_ranks/rank{R}.pt`: `distribute_tensor` on 1-D and 2-D meshes — Shard of an uneven
  dimension, Shard(1), Replicate, Partial — and a plain tensor;
* `sharded_ranks/st_rank{R}.pt`: a ShardedTensor (ChunkShardingSpec) and a plain tensor;

and `truth{R}.json`: for every DTensor, torch's view of it (global and local shape, the global
offset of the local piece, placements, dtype, requires_grad), for the tests to compare with.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(7, 4)  # 7 rows: uneven over 2 ranks
        self.body = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
        self.norm = nn.LayerNorm(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.body(self.embed(x)))


def _truth(state: dict[str, object]) -> dict[str, dict[str, object]]:
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    out: dict[str, dict[str, object]] = {}
    for key, value in state.items():
        if isinstance(value, DTensor):
            local_shape, offset = compute_local_shape_and_global_offset(value.shape, value.device_mesh, value.placements)
            out[key] = {"global_shape": list(value.shape), "local_shape": list(value.to_local().shape),
                        "computed_local_shape": list(local_shape), "offsets": list(offset),
                        "placements": [repr(p) for p in value.placements], "dtype": str(value.dtype).removeprefix("torch."),
                        "requires_grad": value.requires_grad, "mesh_shape": list(value.device_mesh.shape)}
    return out


def run(rank: int, world: int, out: str, port: int) -> None:
    warnings.simplefilter("ignore")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    import torch.distributed.checkpoint as dcp
    from torch.distributed._shard import sharded_tensor
    from torch.distributed._shard.sharding_spec import ChunkShardingSpec
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor

    folder = Path(out)
    mesh = init_device_mesh("cpu", (world,))
    torch.manual_seed(0)
    model = Model()
    model.embed.weight.requires_grad_(False)  # a frozen layer
    fully_shard(model, mesh=mesh)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model(torch.tensor([[1, 2, 3]])).sum().backward()
    optimizer.step()
    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optim": optim_state, "extra": {"epoch": 3}}, checkpoint_id=str(folder / "fsdp_dcp"))
    (folder / "fsdp_ranks").mkdir(exist_ok=True)
    fsdp_state = model.state_dict()
    torch.save(fsdp_state, folder / "fsdp_ranks" / f"rank{rank}.pt")

    torch.manual_seed(1)
    grid = init_device_mesh("cpu", (world, 1), mesh_dim_names=("dp", "tp"))
    tensors = {
        "uneven": distribute_tensor(torch.randn(5, 3), mesh, [Shard(0)]),
        "columns": distribute_tensor(torch.randn(2, 6), mesh, [Shard(1)]),
        "replicated": distribute_tensor(torch.randn(4), mesh, [Replicate()]),
        "partial": DTensor.from_local(torch.full((3,), float(rank + 1)), mesh, [Partial()]),
        "grid": distribute_tensor(torch.randn(6, 4), grid, [Shard(0), Shard(1)]),
        "plain": torch.arange(3.0),
    }
    (folder / "dtensor_ranks").mkdir(exist_ok=True)
    torch.save(tensors, folder / "dtensor_ranks" / f"rank{rank}.pt")

    spec = ChunkShardingSpec(dim=0, placements=[f"rank:{r}/cpu" for r in range(world)])
    torch.manual_seed(2)
    (folder / "sharded_ranks").mkdir(exist_ok=True)
    sharded = sharded_tensor.rand(spec, 5, 3)
    torch.save({"st": sharded, "plain": torch.ones(2)}, folder / "sharded_ranks" / f"st_rank{rank}.pt")
    shards = [{"offsets": list(m.shard_offsets), "sizes": list(m.shard_sizes), "rank": m.placement.rank()}
              for m in sharded.metadata().shards_metadata]

    truth = {"fsdp_ranks": _truth(fsdp_state), "dtensor_ranks": _truth(tensors), "sharded": shards,
             "sharded_local": [list(s.tensor.shape) for s in sharded.local_shards()]}
    (folder / f"truth{rank}.json").write_text(json.dumps(truth))
    dist.barrier()
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
    mp.spawn(run, args=(2, sys.argv[1], free_port()), nprocs=2)
