"""Checkpoints made with torch in the test run: every format, dtype and layout the reader covers.

`make_all(folder)` writes them and returns {name: (path, how to load it with torch)}.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .user_models import SmallNet, TiedLM

DTYPES = [
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.uint8,
    torch.int16, torch.int32, torch.int64, torch.bool, torch.complex64, torch.complex128,
]
# Dtypes without a legacy typed storage class: torch.load cannot read them back from the legacy
# format (it asks the untyped storage for a dtype), so they are saved in the zip format only.
ZIP_ONLY_DTYPES = [torch.float8_e4m3fn, torch.float8_e5m2, torch.uint16, torch.uint32, torch.uint64]


def _frozen_net() -> SmallNet:
    torch.manual_seed(0)
    net = SmallNet()
    net.freeze_backbone()
    net.layers[1].eval()
    return net


def _views() -> dict[str, torch.Tensor]:
    base = torch.arange(24, dtype=torch.float32)
    return {
        "base": base,
        "slice": base[3:9],
        "transposed": base.view(4, 6).t(),
        "strided": base[::3],
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 5),
    }


def _training_checkpoint() -> dict[str, object]:
    net = SmallNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    return {
        "epoch": 7,
        "model": net.state_dict(),
        "optimizer": opt.state_dict(),
        "args": argparse.Namespace(lr=0.1, arch="smallnet"),
        "embedding": np.arange(6, dtype=np.float32).reshape(2, 3),
        "best_acc": np.float64(0.875),
        "history": [0.5, 0.25, None, "text", (1, 2)],
        "requires_grad": {n: p.requires_grad for n, p in _frozen_net().named_parameters()},
    }


def _lightning_checkpoint() -> dict[str, object]:
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3)
    return {
        "epoch": 2,
        "global_step": 100,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
        "optimizer_states": [opt.state_dict()],
        "lr_schedulers": [sched.state_dict()],
        "hyper_parameters": {"lr": 1e-3, "hidden": 8, "name": "mlp"},
    }


def _data_parallel_state_dict() -> dict[str, torch.Tensor]:
    return nn.DataParallel(nn.Linear(3, 2)).state_dict()


Maker = Callable[[], object]

# name → (object to save, whether torch.load needs weights_only=False to load it)
OBJECTS: dict[str, tuple[Maker, bool]] = {
    "state_dict": (lambda: _frozen_net().state_dict(), False),
    "whole_model": (_frozen_net, True),
    "tied_model": (TiedLM, True),
    "tied_state_dict": (lambda: TiedLM().state_dict(), False),
    "dtypes": (lambda: {str(d): torch.ones(3, 2).to(d) for d in DTYPES}, False),
    "new_dtypes": (lambda: {str(d): torch.ones(3, 2).to(d) for d in ZIP_ONLY_DTYPES}, False),
    "views": (_views, False),
    "training": (_training_checkpoint, True),
    "lightning": (_lightning_checkpoint, False),
    "data_parallel": (_data_parallel_state_dict, False),
    "nested_lists": (lambda: [torch.zeros(2), (torch.ones(1), {"deep": [torch.eye(2)]})], False),
}


def make_all(folder: Path) -> dict[str, tuple[Path, bool]]:
    made: dict[str, tuple[Path, bool]] = {}
    for name, (make, unsafe) in OBJECTS.items():
        for fmt, zipped in (("zip", True), ("legacy", False)):
            if name == "new_dtypes" and not zipped:
                continue
            path = folder / f"{name}.{fmt}.pth"
            torch.save(make(), path, _use_new_zipfile_serialization=zipped)
            made[f"{name}.{fmt}"] = (path, unsafe)
    return made
