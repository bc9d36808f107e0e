"""Model classes for whole-model fixtures. The reader never imports this module; only the test
process does, to compare with torch.load."""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.register_buffer("scale", torch.ones(channels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x))) * self.scale.view(1, -1, 1, 1)


class SmallNet(nn.Module):
    """A ResNet-like classifier; `freeze_backbone` freezes everything except `fc`."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.layers = nn.Sequential(Block(8), Block(8))
        self.heads = nn.ModuleList([nn.Linear(8, 4), nn.Linear(8, 2)])
        self.fc = nn.Linear(8, 10)
        self.mask = torch.ones(10)  # a plain tensor attribute, neither parameter nor buffer

    def freeze_backbone(self) -> None:
        for name, p in self.named_parameters():
            p.requires_grad = name.startswith("fc.")


class TiedLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 4)
        self.decoder = nn.Linear(4, 16, bias=False)
        self.decoder.weight = self.embed.weight


class AttributeDict(dict):
    """Like Lightning's hyper-parameter dict: a dict subclass whose class the reader cannot import."""

    def __getattr__(self, name: str) -> object:
        return self[name]
