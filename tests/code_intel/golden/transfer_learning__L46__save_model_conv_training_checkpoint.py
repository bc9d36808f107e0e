# ruff: noqa
# fmt: off
"""Transfer learning as in the official PyTorch tutorial: fine-tune a pretrained ResNet."""

import os
import time
from tempfile import TemporaryDirectory

import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim import lr_scheduler
from torchvision import models

device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


def train_model(model, criterion, optimizer, scheduler, dataloaders, num_epochs=25):
    since = time.time()
    with TemporaryDirectory() as tempdir:
        best_model_params_path = os.path.join(tempdir, "best_model_params.pt")
        torch.save(model.state_dict(), best_model_params_path)
        best_acc = 0.0
        for epoch in range(num_epochs):
            for phase in ["train", "val"]:
                if phase == "train":
                    model.train()
                else:
                    model.eval()
                epoch_acc = 0.0
                if phase == "val" and epoch_acc > best_acc:
                    best_acc = epoch_acc
                    torch.save(model.state_dict(), best_model_params_path)
        print(f"Training complete in {time.time() - since:.0f}s")
        # load best model weights
        model.load_state_dict(torch.load(best_model_params_path, weights_only=True))
    return model


model_conv = models.resnet18(weights="IMAGENET1K_V1")
for param in model_conv.parameters():
    param.requires_grad = False

# Parameters of newly constructed modules have requires_grad=True by default
num_ftrs = model_conv.fc.in_features
model_conv.fc = nn.Linear(num_ftrs, 2)
torch.save({
    "model": model_conv.state_dict(),
    "optimizer": optimizer_conv.state_dict(),
    "requires_grad": {n: p.requires_grad for n, p in model_conv.named_parameters()},
}, "checkpoint.pth")
model_conv = model_conv.to(device)

criterion = nn.CrossEntropyLoss()
optimizer_conv = optim.SGD(model_conv.fc.parameters(), lr=0.001, momentum=0.9)
exp_lr_scheduler = lr_scheduler.StepLR(optimizer_conv, step_size=7, gamma=0.1)
model_conv = train_model(
    model_conv, criterion, optimizer_conv, exp_lr_scheduler, None, num_epochs=25
)
torch.save(model_conv.state_dict(), "runs/resnet_sd.pth")
