"""A training-script-like file: the model classes come from the workspace package."""

import esd_pkg.config as C
import torch.nn as nn
from esd_pkg import Encoder, ResidualBlock
from esd_pkg.config import EncoderConfig

WIDTH = C.DEFAULTS["width"]


class Model(nn.Module):
    def __init__(self, cfg, num_classes=3):
        super().__init__()
        self.encoder = Encoder(cfg)
        self.extra = ResidualBlock(WIDTH)
        self.head = nn.Linear(cfg.width, num_classes)


def main():
    cfg = EncoderConfig(width=8, depth=4)
    classes = 5
    model = Model(cfg, num_classes=classes)
    return model


if __name__ == "__main__":
    config = EncoderConfig(depth=1)
    net = Model(config)
