"""Listing GGUF and ONNX files: pthscope against the formats' own Python libraries, same run.

    .venv/bin/python benchmarks/bench_formats.py [--keep DIR]

Makes, with the gguf and onnx packages, a GGUF file of 100,000 tensors plus a 150,000-token
vocabulary, and an ONNX model of 20,000 initializers (and 20,000 nodes). Then, warm and
alternating call by call, median of 5: `pthscope.inspect(FILE)` against listing every tensor's
name, shape and type with `gguf.GGUFReader(FILE)` / `onnx.load(FILE, load_external_data=False)`;
and the Python heap peak of one pthscope call (tracemalloc). The ratio is theirs over ours.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

import pthscope

GGUF_TENSORS = 100_000
GGUF_VOCAB = 150_000
ONNX_INITIALIZERS = 20_000
RUNS = 5


def make_gguf(path: Path) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_token_list([f"token{i}" for i in range(GGUF_VOCAB)])
    for i in range(GGUF_TENSORS):
        writer.add_tensor(f"blk.{i // 10}.t{i % 10}.weight", np.zeros(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def make_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.zeros((4, 4), dtype=np.float32), f"layer{i}.weight") for i in range(ONNX_INITIALIZERS)]
    nodes = [helper.make_node("Add", ["x" if i == 0 else f"h{i - 1}", f"layer{i}.weight"], [f"h{i}"])
             for i in range(ONNX_INITIALIZERS)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
                              [helper.make_tensor_value_info(f"h{ONNX_INITIALIZERS - 1}", TensorProto.FLOAT, [4, 4])],
                              initializer=inits)
    onnx.save_model(helper.make_model(graph), str(path))


def list_with_gguf(path: Path) -> int:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return len([(t.name, list(t.shape), t.tensor_type) for t in reader.tensors])


def list_with_onnx(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return len([(i.name, list(i.dims), i.data_type) for i in model.graph.initializer])


def list_with_pthscope(path: Path) -> int:
    checkpoint = pthscope.inspect(path)
    assert not checkpoint.errors, checkpoint.errors
    return len(checkpoint.tensors)


def alternate(ours: Callable[[], int], theirs: Callable[[], int]) -> tuple[list[float], list[float]]:
    assert ours() == theirs()  # warm-up, and both list the same number of tensors
    mine, other = [], []
    for _ in range(RUNS):
        for fn, out in ((ours, mine), (theirs, other)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return mine, other


def heap_peak(path: Path) -> float:
    tracemalloc.start()
    list_with_pthscope(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / (1 << 20)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", type=Path, help="make (and reuse) the files in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="pthscope-bench-formats-"))
    folder.mkdir(parents=True, exist_ok=True)
    cases = [("gguf", folder / "100k.gguf", make_gguf, list_with_gguf, "gguf.GGUFReader"),
             ("onnx", folder / "20k.onnx", make_onnx, list_with_onnx, "onnx.load")]
    print(f"{'file':<12}{'pthscope':>14}{'library':>30}{'ratio':>9}{'heap peak':>12}")
    for _, path, make, theirs, label in cases:
        if not path.exists():
            make(path)
        mine, other = alternate(lambda p=path: list_with_pthscope(p), lambda p=path, f=theirs: f(p))
        ours_s, theirs_s = statistics.median(mine), statistics.median(other)
        print(f"{path.name:<12}{ours_s * 1000:>11.1f} ms{label:>18} {theirs_s * 1000:>8.1f} ms"
              f"{theirs_s / ours_s:>8.1f}x{heap_peak(path):>8.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
