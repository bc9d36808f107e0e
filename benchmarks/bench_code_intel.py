"""Latency of analysis, hover and code actions on a 2,000-line file and a 30,000-tensor checkpoint.

    .venv/bin/python benchmarks/bench_code_intel.py

Prints p50/p95 in milliseconds. The checkpoint is built from the data model's dataclasses
(a whole model: 5,000 blocks of 6 parameters, some frozen), so no torch is needed.
"""

from __future__ import annotations

import ast
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.analysis.test_analyze import generated_source  # noqa: E402

from pthscope.analysis import analyze  # noqa: E402
from pthscope.code_intel import Range, code_actions, diagnostics, hover  # noqa: E402
from pthscope.reader.model import Checkpoint, ModuleInfo, TensorInfo  # noqa: E402

TENSORS = 30_000
RUNS = 200


def big_checkpoint(path: str) -> Checkpoint:
    tensors, modules = [], [ModuleInfo([], "__main__.Net", True)]
    for block in range(TENSORS // 6):
        layer = f"layer{block // 500 + 1}"
        for sub in ("conv1", "bn1", "conv2"):
            for name, shape in (("weight", [64, 64, 3, 3]), ("bias", [64])):
                frozen = layer != "layer10"
                tensors.append(
                    TensorInfo(
                        [layer, str(block % 500), sub, name],
                        shape,
                        "float32",
                        not frozen,
                        "parameter",
                    )
                )
    tensors[-2:] = [
        TensorInfo(["fc", "weight"], [2, 512], "float32", True, "parameter"),
        TensorInfo(["fc", "bias"], [2], "float32", True, "parameter"),
    ]
    return Checkpoint(file=path, format="torch-zip", tensors=tensors, modules=modules)


def measure(label: str, run: Callable[[int], object]) -> None:
    times = []
    for i in range(RUNS):
        start = time.perf_counter()
        run(i)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p50, p95 = statistics.median(times), times[int(len(times) * 0.95) - 1]
    print(f"{label:<34} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms")


def main() -> None:
    source = generated_source(2000)
    file_path = "/bench/train.py"
    checkpoint = big_checkpoint("/bench/runs/best.pth")
    checkpoints = {"/bench/runs/best.pth": checkpoint}
    lines = source.split("\n")
    facts = analyze(source, file_path)
    start = time.perf_counter()
    diagnostics(facts, checkpoints)  # builds the per-checkpoint lookup once
    print(f"lookup build + first diagnostics    {(time.perf_counter() - start) * 1000:7.2f} ms")
    targets = [
        (n, text.index(word) + 1)
        for n, text in enumerate(lines)
        for word in (
            "'runs/best.pth'",
            "layer1[0]",
            "conv1.weight",
            "named_parameters",
            "'fc.weight'",
        )
        if word in text
    ]
    print(
        f"file: {len(lines)} lines; checkpoint: {len(checkpoint.tensors):,} tensors; "
        f"{len(targets)} hover targets"
    )
    measure("ast.parse (reference)", lambda i: ast.parse(source))
    measure("analyze", lambda i: analyze(source, file_path))
    measure("hover", lambda i: hover(facts, *targets[i % len(targets)], checkpoints))
    measure("diagnostics", lambda i: diagnostics(facts, checkpoints))
    ranges = [Range.of_lines(line) for line, _ in targets]
    measure(
        "code actions (list)",
        lambda i: code_actions(facts, ranges[i % len(ranges)], checkpoints, None),
    )


if __name__ == "__main__":
    main()
