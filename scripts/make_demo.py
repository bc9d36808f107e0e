"""Generate the demo workspace: checkpoints of every common kind, a training script, and the
numbers the end-to-end test expects (expected.json, computed here from the models).

Usage: python scripts/make_demo.py DIR     (needs torch; the repo's .venv has it)

Files written to DIR:
  whole_model.pth         torch.save(model): a small ResNet-like net with frozen layers. Its class
                          lives in a module (`demo_models`) that is NOT in the workspace, so
                          loading the file needs code the user does not have.
  resnet_state_dict.pth   torch.save(model.state_dict()): tensors only, no requires_grad.
  pytorch_model.bin       the same state_dict under a Hugging Face-style name.
  model.safetensors       the same state_dict, written in the safetensors format by hand.
  legacy_checkpoint.pth.tar   a training dict in torch's pre-1.6 (non-zip) format.
  lightning.ckpt          a Lightning-style training checkpoint (state_dict, optimizer_states,
                          lr_schedulers, epoch, global_step, hyper_parameters).
  large_model.safetensors 30,000 tiny tensors named like a deep transformer's, to show that
                          the page stays fast with a table that long.
  truncated.pth           whole_model.pth cut short, as an interrupted copy leaves it.
  lfs_pointer.pth         a Git LFS pointer to whole_model.pth, as a clone without git-lfs leaves it.
  hostile_payload.pth     a torch zip whose pickle would call os.system when loaded with
                          weights_only=False. It is written without ever calling it.
  train.py                freezes layers, saves a state_dict, loads it into a fresh model.
  compare.py              loads the state_dict and the whole model side by side (each key, module
                          and freezing statement is about the file it comes from), builds the
                          network from its class, and loads hostile_payload.pth with
                          weights_only=False.
  net_state_dict.pth      what train.py saves (made here with train.py's own Net), so the
                          path in train.py names a real checkpoint.
  finetune.py             loads dataparallel_state_dict.pth into train.py's Net: pthscope says
                          it will not load (every key has DataParallel's `module.` prefix) and
                          offers the fix.
  dataparallel_state_dict.pth   Net's state_dict saved from nn.DataParallel.
  expected.json           what pthscope should show for these files.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import struct
import sys
import tempfile
import textwrap
from pathlib import Path

import torch
from torch import nn

# The whole model's class. It is written to a temporary folder, imported from there, and the
# folder is removed: the pickle then names `demo_models.SmallResNet`, a class nobody has.
DEMO_MODELS_SOURCE = textwrap.dedent(
    '''
    """Model classes for the pthscope demo (kept out of the demo workspace on purpose)."""
    from torch import nn


    class BasicBlock(nn.Module):
        def __init__(self, inplanes, planes, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = None
            if stride != 1 or inplanes != planes:
                self.downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)


    class SmallResNet(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.relu = nn.ReLU(inplace=True)
            self.layer1 = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 16))
            self.layer2 = nn.Sequential(BasicBlock(16, 32, stride=2), BasicBlock(32, 32))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(32, num_classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer2(self.layer1(x))
            return self.fc(self.pool(x).flatten(1))
    '''
)

FROZEN_PREFIXES = ("conv1", "bn1", "layer1")

TRAIN_PY = textwrap.dedent(
    '''
    """Fine-tune a small CNN with its stem frozen, save it, and load it back.

    Note what a state_dict keeps: tensors only. After load_state_dict every parameter of the
    fresh model has requires_grad=True again, so the frozen layers would silently train.
    """
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, num_classes: int = 10):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
            )
            self.classifier = nn.Linear(32, num_classes)

        def forward(self, x):
            return self.classifier(self.features(x).flatten(1))


    def freeze_features(model: Net) -> None:
        for param in model.features.parameters():
            param.requires_grad = False


    def main() -> None:
        model = Net()
        freeze_features(model)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        loss = nn.functional.cross_entropy(model(torch.randn(8, 3, 32, 32)), torch.randint(0, 10, (8,)))
        loss.backward()
        optimizer.step()

        torch.save(model.state_dict(), "net_state_dict.pth")

        fresh = Net()
        fresh.load_state_dict(torch.load("net_state_dict.pth", weights_only=True))
        # fresh.features is trainable again here: requires_grad was not saved.
        print(sum(p.requires_grad for p in fresh.parameters()), "trainable tensors after loading")


    if __name__ == "__main__":
        main()
    '''
).lstrip()

# train.py's Net, loading weights saved from nn.DataParallel (keys with a `module.` prefix).
FINETUNE_PY = (
    '"""Fine-tune from weights saved with nn.DataParallel: will they load into Net?"""\n'
    "import torch\nfrom torch import nn\n\n\n"
    + TRAIN_PY[TRAIN_PY.index("class Net"):TRAIN_PY.index("def freeze_features")].rstrip() + "\n\n"
    + textwrap.dedent(
        '''
        def main() -> None:
            model = Net(num_classes=10)
            state = torch.load("dataparallel_state_dict.pth", weights_only=True)
            model.load_state_dict(state)
            print("loaded", sum(p.numel() for p in model.parameters()), "parameters")


        if __name__ == "__main__":
            main()
        '''
    )
)

# The classes of the whole model, as its own code would have them, and code loading both files.
COMPARE_PY = (
    '''"""Two checkpoints of the same network side by side: its state_dict and the pickled whole model.

pthscope shows each key, module and freezing statement from the file that code reads.
"""
import torch
from torch import nn
'''
    + DEMO_MODELS_SOURCE.split("from torch import nn\n", 1)[1]
    + textwrap.dedent(
        '''

        def main() -> None:
            sd = torch.load("resnet_state_dict.pth", weights_only=True)
            full = torch.load("whole_model.pth", weights_only=False)  # classes only; see its hover
            print(sd["layer2.0.conv1.weight"].shape, full.layer1[0].conv1.weight.requires_grad)

            for p in full.layer1.parameters():
                p.requires_grad = False

            net = SmallResNet()
            net.load_state_dict(sd)
            optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
            print(optimizer)

            untrusted = torch.load("hostile_payload.pth", weights_only=False)
            print(untrusted)


        if __name__ == "__main__":
            main()
        '''
    )
)

LARGE_MODEL_LAYERS = 3000
LARGE_MODEL_LAYER_TENSORS = (
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
    "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight", "mlp.down_proj.bias",
)

SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


class _ShellPayload:
    """Pickles as a call to os.system. Its __reduce__ only *names* the callable; nothing runs."""

    def __reduce__(self):
        return (os.system, ("echo 'pthscope demo: torch.load(weights_only=False) would run this'",))


def build_whole_model() -> nn.Module:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "demo_models.py").write_text(DEMO_MODELS_SOURCE)
        sys.path.insert(0, folder)
        try:
            demo_models = importlib.import_module("demo_models")
        finally:
            sys.path.remove(folder)
    model = demo_models.SmallResNet()
    for name, param in model.named_parameters():
        if name.startswith(FROZEN_PREFIXES):
            param.requires_grad = False
    # A few steps so the batch-norm statistics and weights are not the initial ones.
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 16, 16))
    return model


def write_safetensors(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt", "source": "pthscope make_demo.py"}}
    blobs: list[bytes] = []
    offset = 0
    for key, tensor in state_dict.items():
        data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[key] = {
            "dtype": SAFETENSORS_DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def large_model_state_dict() -> dict[str, torch.Tensor]:
    """Many tensors, few bytes: the names and count of a deep model, each tensor tiny."""
    return {
        f"model.layers.{layer}.{name}": torch.full((4,), float(layer), dtype=torch.bfloat16 if "norm" in name else torch.float16)
        for layer in range(LARGE_MODEL_LAYERS)
        for name in LARGE_MODEL_LAYER_TENSORS
    }


def lightning_checkpoint(model: nn.Module) -> tuple[dict[str, object], torch.optim.Optimizer]:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)
    loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 16, 16)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    return {
        "epoch": 4,
        "global_step": 500,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 4}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min'}": {"best_model_score": torch.tensor(0.42)}},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [scheduler.state_dict()],
        "hyper_parameters": {"lr": 1e-3, "num_classes": 10, "frozen": list(FROZEN_PREFIXES)},
    }, optimizer


def expected_numbers(model: nn.Module, hostile_sd: dict[str, torch.Tensor]) -> dict[str, object]:
    params = list(model.named_parameters(remove_duplicate=False))
    buffers = list(model.named_buffers(remove_duplicate=False))
    persistent = [(n, b) for n, b in buffers if n in model.state_dict()]
    frozen = [(n, p) for n, p in params if not p.requires_grad]
    trainable = [(n, p) for n, p in params if p.requires_grad]
    return {
        "whole_model": {
            "file": "whole_model.pth",
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "tensors": len(params) + len(buffers),
            "parameters_total": sum(p.numel() for _, p in params),
            "parameters_trainable": sum(p.numel() for _, p in trainable),
            "parameters_frozen": sum(p.numel() for _, p in frozen),
            "parameter_tensors": len(params),
            "buffer_tensors": len(buffers),
            "buffer_elements": sum(b.numel() for _, b in buffers),
            "top_level_modules": [name for name, _ in model.named_children()],
            "frozen_tensor": frozen[0][0],
            "trainable_tensor": trainable[-1][0],
            "deep_tensor": max((n for n, _ in params), key=lambda n: (n.count("."), n)),
        },
        "state_dict": {"file": "resnet_state_dict.pth", "tensors": len(model.state_dict())},
        # The Lightning file holds the same model as a state_dict: its persistent buffers only.
        "lightning": {
            "file": "lightning.ckpt",
            "parameter_tensors": len(params),
            "parameters_total": sum(p.numel() for _, p in params),
            "buffer_tensors": len(persistent),
        },
        "hostile": {
            "file": "hostile_payload.pth",
            "dangerous_globals": [f"{os.system.__module__}.{os.system.__name__}"],
            "tensors": len(hostile_sd),
        },
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    model = build_whole_model()
    torch.save(model, out / "whole_model.pth")
    state_dict = model.state_dict()
    torch.save(state_dict, out / "resnet_state_dict.pth")
    torch.save(state_dict, out / "pytorch_model.bin")
    write_safetensors(state_dict, out / "model.safetensors")
    torch.save(
        {"epoch": 12, "arch": "SmallResNet", "state_dict": state_dict, "best_acc1": 71.3},
        out / "legacy_checkpoint.pth.tar",
        _use_new_zipfile_serialization=False,
    )
    expected = expected_numbers(model, state_dict)  # before training changes requires_grad use
    lightning, optimizer = lightning_checkpoint(model)
    torch.save(lightning, out / "lightning.ckpt")
    state = [v for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    expected["lightning"].update(optimizer_tensors=len(state), optimizer_elements=sum(t.numel() for t in state))

    large = large_model_state_dict()
    write_safetensors(large, out / "large_model.safetensors")
    expected["large_model"] = {
        "file": "large_model.safetensors",
        "tensors": len(large),
        "last_key": list(large)[-1],
        "layer_prefix": f"model.layers.{LARGE_MODEL_LAYERS - 1}.",
        "tensors_per_layer": len(LARGE_MODEL_LAYER_TENSORS),
    }

    whole_bytes = (out / "whole_model.pth").read_bytes()
    (out / "truncated.pth").write_bytes(whole_bytes[: len(whole_bytes) * 3 // 5])
    expected["broken"] = {"file": "truncated.pth"}
    digest = hashlib.sha256(whole_bytes).hexdigest()
    (out / "lfs_pointer.pth").write_text(
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{digest}\nsize {len(whole_bytes)}\n")
    expected["lfs_pointer"] = {"file": "lfs_pointer.pth", "oid": digest[:12]}

    hostile_sd = {"fc.weight": torch.randn(10, 32), "fc.bias": torch.zeros(10)}
    torch.save({"state_dict": hostile_sd, "metadata": _ShellPayload()}, out / "hostile_payload.pth")
    expected["hostile"] = {**expected["hostile"], "tensors": len(hostile_sd)}

    (out / "train.py").write_text(TRAIN_PY)
    train = {"__name__": "demo_train"}
    exec(compile(TRAIN_PY, str(out / "train.py"), "exec"), train)  # our own script: defines Net
    net = train["Net"]()
    train["freeze_features"](net)
    torch.save(net.state_dict(), out / "net_state_dict.pth")
    expected["train_py"] = {
        "file": "train.py",
        "checkpoint": "net_state_dict.pth",
        "diagnostic_code": "PTH001",
        "fix_title": "Restore requires_grad flags",
        "fix_inserts": "freeze_features(fresh)",
    }
    (out / "finetune.py").write_text(FINETUNE_PY)
    torch.save(nn.DataParallel(net).state_dict(), out / "dataparallel_state_dict.pth")
    expected["finetune_py"] = {
        "file": "finetune.py",
        "load_line": "model.load_state_dict(state)",
        "tensors": len(net.state_dict()),
        "fix_title": "Strip the 'module.' prefix",
    }
    (out / "compare.py").write_text(COMPARE_PY)
    expected["compare_py"] = {
        "file": "compare.py",
        "state_dict_key": "layer2.0.conv1.weight",
        "state_dict_file": "resnet_state_dict.pth",
        "model_line": "net = SmallResNet()",
        "modules_title": "Freeze / unfreeze modules of net (from resnet_state_dict.pth)",
        "module": "layer2",
        "freeze_inserts": "net.layer2.requires_grad_(False)",
        "hostile_line": 'untrusted = torch.load("hostile_payload.pth", weights_only=False)',
        "link_path": "whole_model.pth",
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(f"demo workspace: {out}")
    for path in sorted(out.iterdir()):
        print(f"  {path.name:28} {path.stat().st_size:>9,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
