"""The workspace of tests/e2e/formats.e2e.test.mjs: `python tests/e2e/make_formats.py FOLDER`.

Writes, with torch 2.13 and huggingface_hub, a TorchScript archive of a model with a frozen
block (and a copy with a payload planted in one of its pickles), its state_dict saved with
pickle protocol 4 (which weights_only=True refuses), a sharded safetensors set (three shards and their index, as save_pretrained writes them)
and a torch.distributed.checkpoint folder of a model and its Adam state; and `expected.json`,
the numbers torch gives for each, for the test to compare the page with.
"""

from __future__ import annotations

import json
import sys
import warnings
import zipfile
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from huggingface_hub import save_torch_state_dict
from torch import nn


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    for p in model[0].parameters():
        p.requires_grad_(False)
    script = torch.jit.script(model)
    torch.jit.save(script, folder / "scripted.pt")
    # The same archive with a payload planted in constants.pkl: torch.jit.load refuses it, a
    # Python unpickler of the member would run it (never loaded here).
    with zipfile.ZipFile(folder / "scripted.pt") as source, zipfile.ZipFile(folder / "crafted.pt", "w") as crafted:
        for info in source.infolist():
            planted = info.filename.endswith("/constants.pkl")
            crafted.writestr(info, b"cposix\nsystem\n(Vtrue\ntR." if planted else source.read(info.filename))
    parameters = list(model.parameters())
    # torch's weights_only unpickler runs no protocol-4 opcode: torch.load(weights_only=True) refuses this.
    torch.save(model.state_dict(), folder / "protocol4.pt", pickle_protocol=4)
    try:
        torch.load(folder / "protocol4.pt", weights_only=True)
        protocol4_refused = False
    except Exception:  # noqa: BLE001 -- UnpicklingError "Unsupported operand 149"
        protocol4_refused = True

    state = {f"model.layers.{i}.weight": torch.randn(64, 64) for i in range(6)}
    (folder / "hf_model").mkdir()
    save_torch_state_dict(state, folder / "hf_model", max_shard_size="40KB")
    shards = sorted(p.name for p in (folder / "hf_model").glob("*.safetensors"))

    optimizer = torch.optim.Adam(model[3].parameters())
    model(torch.randn(4, 8)).sum().backward()
    optimizer.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no process group: dcp.save saves alone
        dcp.save({"model": model.state_dict(), "optim": optimizer.state_dict()}, checkpoint_id=str(folder / "dcp_checkpoint"))

    # A payload in an archive whose format version torch 2.13 does not read: torch.load refuses
    # the file before unpickling it, so only a Python unpickler would run the payload.
    with zipfile.ZipFile(folder / "crafted.pt") as source, zipfile.ZipFile(folder / "future.pt", "w") as future:
        for info in source.infolist():
            future.writestr(info, b"11\n" if info.filename.endswith("/version") else source.read(info.filename))
    try:
        torch.load(folder / "future.pt", weights_only=False)
        future_refused = False
    except RuntimeError:  # "Attempted to read a PyTorch file with version 11"
        future_refused = True
    expected = {
        "torchscript": {"file": "scripted.pt", "tensors": len(model.state_dict()), "modules": len(list(model.modules())),
                        "frozen": sum(p.numel() for p in parameters if not p.requires_grad),
                        "trainable": sum(p.numel() for p in parameters if p.requires_grad)},
        "protocol4": {"file": "protocol4.pt", "refused": protocol4_refused},
        "future": {"file": "future.pt", "refused": future_refused},
        "sharded": {"shard": shards[1], "shards": len(shards), "tensors": len(state)},
        "dcp": {"folder": "dcp_checkpoint", "tensors": len(model.state_dict()) + sum(
            len(s) for s in optimizer.state_dict()["state"].values()), "first": "model.0.weight"},
    }
    (folder / "expected.json").write_text(json.dumps(expected, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
