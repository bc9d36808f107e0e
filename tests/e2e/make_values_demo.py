"""Files for the e2e test's scan and comparison steps, written with torch into the workspace.

    python tests/e2e/make_values_demo.py WORKSPACE

* `nan_model.pt`: a state_dict whose `encoder.weight` holds NaN and whose `head.bias` is all zero;
* `finetune_epoch1.pt` (a whole model) and `finetune_epoch2.pt` (a training dict of its
  DataParallel state_dict and optimizer): two epochs of a fine-tune where only `fc` trains.

`values_expected.json` says what the pages must show, computed here from the objects saved.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.layer1(torch.relu(self.bn1(self.conv1(x))))).flatten(1))


def main(workspace: Path) -> None:
    torch.manual_seed(0)
    encoder = torch.randn(16, 8)
    encoder[2, 3] = float("nan")
    torch.save({"encoder.weight": encoder, "encoder.bias": torch.randn(16), "head.weight": torch.randn(4, 16),
                "head.bias": torch.zeros(4)}, workspace / "nan_model.pt")

    model = TinyNet()
    for p in model.parameters():
        p.requires_grad = False
    for p in model.fc.parameters():
        p.requires_grad = True
    optimizer = torch.optim.SGD(model.fc.parameters(), lr=0.1, momentum=0.9)
    images, labels = torch.randn(32, 3, 8, 8), torch.randint(0, 4, (32,))
    for epoch in (1, 2):
        model.train()
        model.bn1.eval()  # the frozen backbone keeps its BatchNorm statistics
        for start in range(0, 32, 8):
            nn.functional.cross_entropy(model(images[start:start + 8]), labels[start:start + 8]).backward()
            optimizer.step()
            optimizer.zero_grad()
        if epoch == 1:
            torch.save(model, workspace / "finetune_epoch1.pt")
        else:
            torch.save({"epoch": 2, "model": nn.DataParallel(model).state_dict(), "optimizer": optimizer.state_dict()},
                       workspace / "finetune_epoch2.pt")
    state = model.state_dict()
    expected = {
        "nan_model": {"file": "nan_model.pt", "bad": 2, "errors": 1, "nan_tensor": "encoder.weight",
                      "zero_tensor": "head.bias"},
        "finetune": {"a": "finetune_epoch1.pt", "b": "finetune_epoch2.pt", "matched": len(state),
                     "changed": sum(1 for k in state if k.startswith("fc.")),
                     "identical": sum(1 for k in state if not k.startswith("fc.")),
                     "only_b": len(optimizer.state_dict()["state"]), "changed_module": "fc",
                     "frozen_modules": ["conv1", "bn1", "layer1.0"]},
    }
    (workspace / "values_expected.json").write_text(json.dumps(expected, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
