# ruff: noqa
# fmt: off
"""Fine-tune, save a state_dict, then load it into a fresh model for evaluation."""

import torch
import torch.nn as nn
from torchvision import models

PATH = "runs/resnet_sd.pth"


def freeze_backbone(net):
    for name, param in net.named_parameters():
        if not name.startswith("fc."):
            param.requires_grad = False


model_ft = models.resnet18(weights="IMAGENET1K_V1")
model_ft.fc = nn.Linear(model_ft.fc.in_features, 2)
freeze_backbone(model_ft)
torch.save(model_ft.state_dict(), PATH)


def evaluate():
    model_new = models.resnet18()
    model_new.fc = nn.Linear(512, 2)
    model_new.load_state_dict(torch.load(PATH, weights_only=True))
    model_new.eval()
    return model_new
