import torch.nn as nn


def mlp(d, ratio=4):
    return nn.Sequential(nn.Linear(d, d * ratio), nn.GELU(), nn.Linear(d * ratio, d))
