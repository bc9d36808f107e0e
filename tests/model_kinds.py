"""One file of every kind a user opens, saved with torch, and the counts torch gives for it.

`write_kinds(folder)` saves each kind and returns {name: Kind}. A kind's expected counts come
from the objects it was saved from: model parameters are `sum(p.numel() for p in
model.parameters())` (all the file's models together, e.g. a GAN's two), buffers those the file
stores (`model.buffers()` for a whole model; a state_dict keeps only the persistent ones), and
optimizer state every tensor in the optimizers' `state`. Shared by tests/test_counts_agree.py
(CLI, `pthscope/open`, the tree's root and the hover) and the reader tests.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tests.reader.user_models import SmallNet, TiedLM


@dataclass(frozen=True)
class Expected:
    """(tensors, elements) per role; None: not checked for this kind."""

    parameter: tuple[int, int]
    buffer: tuple[int, int]
    optimizer_state: tuple[int, int] = (0, 0)
    # Elements of model parameters by flag: (trainable, frozen, not stored).
    grad: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Kind:
    file: Path
    expected: Expected
    # The key a hover over a Python file's path literal would see (the literal's text).
    description: str


def _parameters(*models: nn.Module) -> tuple[int, int]:
    found = {id(p): p for m in models for p in m.parameters()}
    return len(found), sum(p.numel() for p in found.values())


def _buffers(*models: nn.Module, persistent_only: bool) -> tuple[int, int]:
    found: dict[int, torch.Tensor] = {}
    for model in models:
        for module in model.modules():
            for name, b in module._buffers.items():
                if b is not None and not (persistent_only and name in module._non_persistent_buffers_set):
                    found[id(b)] = b
    return len(found), sum(b.numel() for b in found.values())


def _optimizer_state(*optimizers: torch.optim.Optimizer) -> tuple[int, int]:
    tensors = [v for o in optimizers for s in o.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    return len(tensors), sum(t.numel() for t in tensors)


def _grad(models: Iterable[nn.Module], stored: bool) -> tuple[int, int, int]:
    params = {id(p): p for m in models for p in m.parameters()}.values()
    total = sum(p.numel() for p in params)
    if not stored:
        return 0, 0, total
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return trainable, total - trainable, 0


def _trained(model: nn.Module, make: Callable[[Any], torch.optim.Optimizer]) -> torch.optim.Optimizer:
    optimizer = make([p for p in model.parameters() if p.requires_grad])
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.ones_like(p)
    optimizer.step()
    return optimizer


def _frozen_net() -> SmallNet:
    torch.manual_seed(0)
    net = SmallNet()
    net.freeze_backbone()
    return net


def _bn_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))


class _LitEma(nn.Module):
    """Like latent-diffusion's LitEma: the shadow weights are buffers of the LightningModule."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.register_buffer("decay", torch.tensor(0.999))
        for name, p in model.named_parameters():
            self.register_buffer(name.replace(".", ""), p.detach().clone())


class _LitModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = _bn_net()
        self.model_ema = _LitEma(self.model)


def write_safetensors(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """A safetensors file written by hand (the format is a JSON header and raw bytes)."""
    codes = {torch.float32: "F32", torch.int64: "I64"}
    header: dict[str, Any] = {}
    blobs, offset = [], 0
    for key, tensor in state_dict.items():
        data = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[key] = {"dtype": codes[tensor.dtype], "shape": list(tensor.shape),
                       "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def write_kinds(folder: Path) -> dict[str, Kind]:
    kinds: dict[str, Kind] = {}

    def save(name: str, obj: object, expected: Expected, description: str, legacy: bool = False) -> None:
        file = folder / f"{name}.pt"
        torch.save(obj, file, _use_new_zipfile_serialization=not legacy)
        kinds[name] = Kind(file, expected, description)

    net = _frozen_net()
    save("whole_model", net, Expected(_parameters(net), _buffers(net, persistent_only=False),
                                      grad=_grad([net], stored=True)), "a whole model (torch.save(model))")
    save("state_dict", net.state_dict(), Expected(_parameters(net), _buffers(net, persistent_only=True),
                                                  grad=_grad([net], stored=False)), "a state_dict")
    save("legacy_state_dict", net.state_dict(), Expected(_parameters(net), _buffers(net, persistent_only=True)),
         "a state_dict in torch's legacy format", legacy=True)
    tied = TiedLM()
    save("tied_model", tied, Expected(_parameters(tied), (0, 0)), "a whole model with tied weights")
    save("tied_state_dict", tied.state_dict(), Expected(_parameters(tied), (0, 0)), "a state_dict with tied weights")

    bn = _bn_net()
    save("batchnorm", bn.state_dict(), Expected(_parameters(bn), _buffers(bn, persistent_only=True)),
         "nn.Sequential with BatchNorm: keys 0.weight, 1.running_mean, ...")
    wide = nn.Sequential(*(nn.Linear(3, 3) for _ in range(12)))
    save("numeric_keys", wide.state_dict(), Expected(_parameters(wide), (0, 0)),
         "nn.Sequential state_dict: top-level keys 0 … 11")

    lit = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    adam = _trained(lit, lambda ps: torch.optim.Adam(ps, lr=1e-3))
    save("lightning_adam", {
        "epoch": 2, "global_step": 100, "pytorch-lightning_version": "2.4.0",
        "state_dict": {f"model.{k}": v for k, v in lit.state_dict().items()},
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 2}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val_loss'}": {"best_model_score": torch.tensor(0.42)}},
        "optimizer_states": [adam.state_dict()],
        "lr_schedulers": [torch.optim.lr_scheduler.StepLR(adam, step_size=3).state_dict()],
        "hyper_parameters": {"lr": 1e-3, "hidden": 8},
    }, Expected(_parameters(lit), _buffers(lit, persistent_only=True), _optimizer_state(adam),
                grad=_grad([lit], stored=False)), "a Lightning checkpoint with Adam")

    sgd_net = SmallNet()
    sgd = _trained(sgd_net, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9))
    training = {"epoch": 7, "model": sgd_net.state_dict(), "optimizer": sgd.state_dict(),
                "rng_state": torch.get_rng_state(), "best_acc": 0.875}
    training_expected = Expected(_parameters(sgd_net), _buffers(sgd_net, persistent_only=True),
                                 _optimizer_state(sgd))
    save("training_sgd", training, training_expected, "a training dict with SGD momentum")
    save("legacy_training", training, training_expected, "a training dict in the legacy format", legacy=True)

    ema_net = SmallNet()
    save("model_and_ema", {"model": ema_net.state_dict(), "model_ema": SmallNet().state_dict(), "epoch": 1},
         Expected(_parameters(ema_net), _buffers(ema_net, persistent_only=True)), "a model and its EMA copy")
    ldm = _LitModule()
    save("lightning_with_ema", {"state_dict": ldm.state_dict(), "global_step": 5},
         Expected(_parameters(ldm), _buffers(ldm.model, persistent_only=True)),
         "a Lightning state_dict with a model_ema group (its tensors are other tensors)")

    generator, discriminator = nn.Sequential(nn.Linear(4, 16), nn.Linear(16, 8)), nn.Sequential(nn.Linear(8, 1))
    opt_g = _trained(generator, lambda ps: torch.optim.Adam(ps))
    opt_d = _trained(discriminator, lambda ps: torch.optim.Adam(ps))
    save("gan", {"generator": generator.state_dict(), "discriminator": discriminator.state_dict(),
                 "optimizer_G": opt_g.state_dict(), "optimizer_D": opt_d.state_dict()},
         Expected(_parameters(generator, discriminator), (0, 0), _optimizer_state(opt_g, opt_d)),
         "a GAN: generator, discriminator and their optimizers")

    in_dict = _frozen_net()
    adam2 = _trained(in_dict, lambda ps: torch.optim.Adam(ps))
    save("whole_model_in_dict", {"model": in_dict, "optimizer": adam2.state_dict()},
         Expected(_parameters(in_dict), _buffers(in_dict, persistent_only=False), _optimizer_state(adam2),
                  grad=_grad([in_dict], stored=True)), "a whole model beside its optimizer")

    dp = nn.DataParallel(_bn_net())
    save("data_parallel", dp.state_dict(), Expected(_parameters(dp), _buffers(dp, persistent_only=True)),
         "DataParallel's module. prefix")
    compiled_net = _bn_net()
    compiled = torch.compile(compiled_net)
    save("compiled", compiled.state_dict(),
         Expected(_parameters(compiled_net), _buffers(compiled_net, persistent_only=True)),
         "torch.compile's _orig_mod. prefix")

    safe_net = _bn_net()
    safe_file = folder / "model.safetensors"
    write_safetensors(safe_net.state_dict(), safe_file)
    kinds["safetensors"] = Kind(safe_file, Expected(_parameters(safe_net), _buffers(safe_net, persistent_only=True)),
                                "safetensors")
    return kinds
