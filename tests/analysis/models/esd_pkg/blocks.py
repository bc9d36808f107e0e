import torch.nn as nn

from . import config
from .layers import mlp


class ResidualBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.mlp = mlp(d)


class Encoder(nn.Module):
    def __init__(self, cfg: config.EncoderConfig = config.EncoderConfig()):  # noqa: B008
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab, cfg.width)
        self.blocks = nn.ModuleList([ResidualBlock(cfg.width) for _ in range(cfg.depth)])
        self.out = nn.Linear(cfg.width, config.DEFAULTS["width"])
