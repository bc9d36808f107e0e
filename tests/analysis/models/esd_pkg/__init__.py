"""A workspace package whose classes the fixture scripts import (re-exported here)."""

from .blocks import Encoder, ResidualBlock
from .config import DEFAULTS, EncoderConfig

__all__ = ["DEFAULTS", "Encoder", "EncoderConfig", "ResidualBlock"]
