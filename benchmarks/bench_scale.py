"""Checkpoints of many files at scale: pthscope against the libraries' own listing, same run.

    .venv/bin/python benchmarks/bench_scale.py [--keep DIR] [--runs N] [--check]

Makes one 100,000-tensor model (small float32 tensors, Hugging Face names) three ways: 30
safetensors shards with their index, 30 torch `.bin` shards with theirs, and a
torch.distributed.checkpoint folder (`dcp.save`, one process). Then, for each, alternating run by
run (warm: every file is read once first), the median wall time and peak RSS of two processes:

* `python -m pthscope inspect --json SET > /dev/null` (the whole JSON: every tensor and the tree);
* a process listing every tensor's name, shape and dtype with the library's own API:
  safetensors' `safe_open(framework="numpy")` + `get_slice()` over the shards (its Rust
  reader; `framework="pt"` would import torch), `torch.load(mmap=True, weights_only=True)` per
  `.bin` shard, `FileSystemReader(folder).read_metadata()` (an unrestricted pickle.load).

pthscope's own modules are byte-compiled first, as an installed package's are (pip compiles
them; an editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module
in every process, ~0.1 s each time), so both sides start from .pyc files.

Goals (issue 10): at least as fast as safetensors, >= 10x faster than torch on the .bin shards,
>= 3x faster than read_metadata(), <= 150 MiB peak memory. The ratio is theirs over ours.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

TENSORS = 100_000
SHARDS = 30
MiB = 1 << 20
PEAK_GOAL = 150 * MiB

LIST_SAFETENSORS = """
import sys
from pathlib import Path
from safetensors import safe_open
listed = []
for shard in sorted(Path(sys.argv[1]).glob("*.safetensors")):
    with safe_open(str(shard), framework="numpy") as f:
        for key in f.keys():
            piece = f.get_slice(key)
            listed.append((key, piece.get_shape(), piece.get_dtype()))
assert len(listed) == int(sys.argv[2]), len(listed)
"""
LIST_BIN = """
import sys
from pathlib import Path
import torch
listed = []
for shard in sorted(Path(sys.argv[1]).glob("*.bin")):
    for key, tensor in torch.load(shard, mmap=True, weights_only=True).items():
        listed.append((key, tuple(tensor.shape), tensor.dtype))
assert len(listed) == int(sys.argv[2]), len(listed)
"""
LIST_DCP = """
import sys
from torch.distributed.checkpoint import FileSystemReader
metadata = FileSystemReader(sys.argv[1]).read_metadata()
listed = [(key, tuple(entry.size), entry.properties.dtype) for key, entry in metadata.state_dict_metadata.items()]
assert len(listed) == int(sys.argv[2]), len(listed)
"""


@dataclass
class Case:
    name: str
    target: str  # what `pthscope inspect` is given
    listing: str  # the library's listing, as a script
    library: str
    goal: float  # the ratio to reach (theirs / ours)


def make(folder: Path) -> None:
    import torch
    import torch.distributed.checkpoint as dcp
    from safetensors.torch import save_file

    names = [f"model.layers.{i // 10}.block.t{i % 10}.weight" for i in range(TENSORS)]
    per = -(-TENSORS // SHARDS)
    for kind in ("safetensors", "bin"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    weight_maps: dict[str, dict[str, str]] = {"safetensors": {}, "bin": {}}
    total = 0
    for shard in range(SHARDS):
        tensors = {name: torch.zeros(4) for name in names[shard * per:(shard + 1) * per]}
        st_name = f"model-{shard + 1:05d}-of-{SHARDS:05d}.safetensors"
        bin_name = f"pytorch_model-{shard + 1:05d}-of-{SHARDS:05d}.bin"
        save_file(tensors, folder / "safetensors" / st_name, metadata={"format": "pt"})
        torch.save(tensors, folder / "bin" / bin_name)
        weight_maps["safetensors"].update(dict.fromkeys(tensors, st_name))
        weight_maps["bin"].update(dict.fromkeys(tensors, bin_name))
        total += sum(t.numel() * t.element_size() for t in tensors.values())
    for kind, index in (("safetensors", "model.safetensors.index.json"), ("bin", "pytorch_model.bin.index.json")):
        (folder / kind / index).write_text(json.dumps({"metadata": {"total_size": total},
                                                       "weight_map": weight_maps[kind]}, indent=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no process group: one process saves alone
        dcp.save({"model": {name: torch.zeros(4) for name in names}}, checkpoint_id=str(folder / "dcp"))
    (folder / "complete").write_text("")


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # user + system seconds: steadier than wall time on a shared machine
    peak: int  # bytes of RSS


def run_once(command: list[str]) -> Run:
    """Wall time, CPU time and peak RSS of one child (its own rusage, via wait4; the CLI's
    reading child is included: wait4 reports the children it waited for)."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        child = subprocess.Popen(command, stdout=devnull, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed: {child.stderr.read().decode() if child.stderr else ''}")
    return Run(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024)


def warm(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb", buffering=0) as f:
                while f.read(MiB):
                    pass


def measure(case: Case, folder: Path, runs: int, *flags: str) -> tuple[list[Run], list[Run]]:
    ours = [sys.executable, "-m", "pthscope", "inspect", "--json", *flags, str(folder / case.target)]
    theirs = [sys.executable, "-c", case.listing, str(folder / case.name), str(TENSORS)]
    run_once(ours)  # warm-up: imports and the page cache
    mine, other = [], []
    for _ in range(runs):
        mine.append(run_once(ours))
        other.append(run_once(theirs))
    return mine, other


def _byte_compile_pthscope() -> None:
    """Write pthscope's .pyc files, as installing it does (torch's and safetensors' have theirs)."""
    import importlib.util

    spec = importlib.util.find_spec("pthscope")
    if spec is not None and spec.origin is not None:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(spec.origin).parent)], check=True,
                       stdout=subprocess.DEVNULL)


def _median(runs: list[Run]) -> Run:
    return Run(statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs), max(r.peak for r in runs))


def _cell(run: Run) -> str:
    return f"{run.wall:.2f} s, {run.cpu:.2f} s cpu, {run.peak / MiB:.0f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", type=Path, help="make (and reuse) the files in this folder")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    parser.add_argument("--make", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        make(args.make)
        return 0
    folder = args.keep or Path(tempfile.mkdtemp(prefix="pthscope-bench-scale-"))
    try:
        if not (folder / "complete").exists():  # in a child: torch stays out of this process's RSS
            started = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--make", str(folder)], check=True)
            print(f"made the files in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        warm(folder)
        _byte_compile_pthscope()
        cases = [
            Case("safetensors", "safetensors", LIST_SAFETENSORS, "safe_open+get_slice", 1.0),
            Case("bin", "bin", LIST_BIN, "torch.load(mmap) per shard", 10.0),
            Case("dcp", "dcp", LIST_DCP, "read_metadata()", 3.0),
        ]
        print(f"{TENSORS:,} tensors; median of {args.runs} runs, alternating: wall time, CPU time (user + system) "
              "and peak RSS of each process; ratios: theirs over ours")
        print(f"{'set':<22}{'pthscope (wall, cpu, peak)':<36}{'library':<64}{'ratio wall, cpu':>16}{'goal':>6}")
        missed = False
        for case in cases:
            for flags in ((), ("--no-tree",)):
                mine, other = measure(case, folder, args.runs, *flags)
                ours, theirs = _median(mine), _median(other)
                ratio, cpu_ratio = theirs.wall / ours.wall, theirs.cpu / ours.cpu
                ok = ratio >= case.goal and ours.peak <= PEAK_GOAL
                if not flags:
                    missed |= not ok
                label = case.name + (" --no-tree" if flags else "")
                print(f"{label:<22}{_cell(ours):<36}{case.library + ': ' + _cell(theirs):<64}"
                      f"{ratio:>8.1f}x {cpu_ratio:>5.1f}x{case.goal:>6.0f}x{'' if ok or flags else '  MISSED'}")
        return 1 if missed and args.check else 0
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
