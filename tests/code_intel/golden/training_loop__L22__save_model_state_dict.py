# ruff: noqa
# fmt: off
"""A training loop that checkpoints every epoch and can resume."""

import torch
import torch.nn as nn
import torch.optim as optim


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16))
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        return self.head(self.backbone(x))


model = Net()
model.backbone.requires_grad_(False)
optimizer = optim.Adam((p for p in model.parameters() if p.requires_grad), lr=1e-3)
torch.save(model.state_dict(), "model.pth")

for epoch in range(3):
    optimizer.zero_grad()
    torch.save(
        {
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        },
        "runs/checkpoint.pth",
    )

torch.save(model, "runs/full_model.pth")


def resume():
    checkpoint = torch.load("runs/checkpoint.pth")
    restored = Net()
    restored.load_state_dict(checkpoint["model"])
    return restored
