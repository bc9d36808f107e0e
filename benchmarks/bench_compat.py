"""Latency of "will this checkpoint load?": the expected state_dict derived from a 2,000-line
model file, and its comparison with a 30,000-tensor key map.

    .venv/bin/python benchmarks/bench_compat.py

Prints p50/p95 in milliseconds. No torch is needed: the model file is generated text (108 block
classes, configs and helpers; the model is 10 stages of 500 blocks = 30,002 tensors), and the
checkpoints are key → TensorMeta maps: the matching one, one saved from nn.DataParallel
(`module.` prefix), a changed head, a training dict wrapping the weights, a deeper model.
A smaller variant of the same file (2 blocks per stage, 122 tensors) shows a typical model.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from pthscope.analysis.expected_state import expected_state_dict  # noqa: E402
from pthscope.analysis.model_classes import ModelSources  # noqa: E402
from pthscope.compat import TensorMeta, compare  # noqa: E402

BLOCK_CLASSES = 108

HEADER = '''"""A generated model file: many block classes, a config, helpers and one model."""

from dataclasses import dataclass

import torch
import torch.nn as nn

NUM_CLASSES = 2


@dataclass
class Config:
    width: int = 64
    stages: int = 10
    blocks: int = 500
    classes: int = NUM_CLASSES


def conv3x3(c_in, c_out, bias=True):
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=bias)

'''

BLOCK = '''
class Block{n}(nn.Module):
    """Block number {n}: two convolutions around a norm, with its own options."""

    expansion = 1

    def __init__(self, width, use_norm=True, groups=8):
        super().__init__()
        self.conv1 = conv3x3(width, width * self.expansion)
        if use_norm:
            self.bn1 = nn.GroupNorm(groups, width)
        else:
            self.bn1 = nn.Identity()
        self.conv2 = conv3x3(width, width)
        self.scale = {n} % 7 + 1
        self.act = nn.ReLU(inplace=True)

    def extra_repr(self):
        return f"block {n}"
'''

FOOTER = '''

BLOCKS = ({names})


class Stage(nn.Module):
    def __init__(self, index, cfg):
        super().__init__()
        block = BLOCKS[index % len(BLOCKS)]
        self.blocks = nn.Sequential(*[block(cfg.width) for _ in range(cfg.blocks)])


class Net(nn.Module):
    def __init__(self, cfg=Config()):
        super().__init__()
        for i in range(cfg.stages):
            setattr(self, f"layer{{i + 1}}", Stage(i, cfg).blocks)
        self.fc = nn.Linear(512, cfg.classes)
'''


def model_source() -> str:
    blocks = "".join(BLOCK.format(n=n) for n in range(BLOCK_CLASSES))
    names = ", ".join(f"Block{n}" for n in range(BLOCK_CLASSES))
    return HEADER + blocks + FOOTER.format(names=names)


def measure(label: str, run: Callable[[], object], runs: int) -> None:
    run()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p50, p95 = statistics.median(times), times[max(int(len(times) * 0.95) - 1, 0)]
    print(f"{label:<52} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms")


def main() -> None:
    source = model_source()
    path = "/bench/models.py"
    lines = source.count("\n")
    sources = ModelSources(())
    expected = expected_state_dict(source, path, (), "Net", sources=sources)
    small = expected_state_dict(source, path, (), "Net", "Config(blocks=2)", sources=sources)
    assert len(expected.tensors) == 30_002 and not expected.unknown, expected.unknown
    keys = {key: TensorMeta(tuple(t.shape)) for key, t in expected.tensors.items()}  # type: ignore[arg-type]
    checkpoints = {
        "matching": keys,
        "module. prefix (DataParallel)": {f"module.{k}": v for k, v in keys.items()},
        "changed head": {**keys, "fc.weight": TensorMeta((1000, 512)), "fc.bias": TensorMeta((1000,))},
        "training dict {'model_state_dict': ...}": {"epoch": 3, "model_state_dict": keys,
                                                    "optimizer": {"state": {}, "param_groups": []}},
        "deeper (20 more blocks in layer10)": {
            **keys, **{f"layer10.{500 + i}.conv1.weight": TensorMeta((64, 64, 3, 3)) for i in range(20)}},
    }  # fmt: skip
    print(f"model file: {lines:,} lines; expected: {len(expected.tensors):,} tensors "
          f"(small variant: {len(small.tensors)}); checkpoints: 30,002+ tensors")  # fmt: skip
    measure("derive, 30,002 tensors, parse cached", lambda: expected_state_dict(
        source, path, (), "Net", sources=sources), 15)
    measure("derive, 30,002 tensors, cold (parse included)", lambda: expected_state_dict(
        source, path, (), "Net"), 10)
    measure("derive, 122 tensors, parse cached", lambda: expected_state_dict(
        source, path, (), "Net", "Config(blocks=2)", sources=sources), 50)
    measure("derive, 122 tensors, cold (parse included)", lambda: expected_state_dict(
        source, path, (), "Net", "Config(blocks=2)"), 30)
    for label, checkpoint in checkpoints.items():
        measure(f"compare, {label}", lambda c=checkpoint: compare(expected, c, metadata=None), 30)  # type: ignore[misc]
    small_keys = {k: TensorMeta(tuple(t.shape)) for k, t in small.tensors.items()}  # type: ignore[arg-type]
    measure("compare, 122 expected vs its own 122 with `module.`",
            lambda: compare(small, {f"module.{k}": v for k, v in small_keys.items()}, metadata=None), 100)
    measure("compare, 122 expected vs the 30,002-tensor file", lambda: compare(small, keys, metadata=None), 30)


if __name__ == "__main__":
    main()
