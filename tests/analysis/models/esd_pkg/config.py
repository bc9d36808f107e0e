from dataclasses import dataclass

DEFAULTS = {"width": 24, "depth": 2}


@dataclass(frozen=True)
class EncoderConfig:
    width: int = 16
    depth: int = 3
    vocab: int = 40
