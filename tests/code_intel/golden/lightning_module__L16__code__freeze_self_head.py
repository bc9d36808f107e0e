# ruff: noqa
# fmt: off
"""A Lightning-style module that freezes its backbone in __init__."""

import lightning as L
import torch
import torch.nn as nn
from torchvision import models


class LitClassifier(L.LightningModule):
    def __init__(self, num_classes=10):
        super().__init__()
        self.backbone = models.resnet18(weights="IMAGENET1K_V1")
        self.backbone.fc = nn.Identity()
        self.backbone.requires_grad_(False)
        self.head.requires_grad_(False)
        self.head = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.head(self.backbone(x))

    def configure_optimizers(self):
        return torch.optim.Adam(self.head.parameters(), lr=1e-3)


trainer = L.Trainer(max_epochs=1)
model = LitClassifier()
trainer.save_checkpoint("runs/lit.ckpt")

fresh = LitClassifier()
fresh.load_state_dict(torch.load("runs/lit.ckpt", weights_only=True)["state_dict"])
