"""Values at scale, pthscope against torch in the same run: statistics, value diff, conversion.

    .venv/bin/python benchmarks/bench_values.py                 # about 4 minutes, files in a temp dir
    .venv/bin/python benchmarks/bench_values.py --keep /tmp/bv  # keep (and reuse) the 3 GB of files
    .venv/bin/python benchmarks/bench_values.py --check         # exit 1 if a target is missed

Files, made with torch:

* `big-100m.pt`: one float32 tensor of 100,000,000 elements (400 MB), N(0, 1) with a few NaN/inf;
* `llm-a.pt`, `llm-b.pt`: Llama-shaped state dicts of 291 fp16 tensors (0.95 GB each, random
  values); B is A fine-tuned: the last 4 layers and `lm_head` changed, everything else identical.

Measured, warm (every file read once first), alternating pthscope and torch run by run:

1. **statistics of the 100M tensor**, in one process: `tensor_stats` (parse, locate, then min,
   max, mean, std, L2, zeros, NaN, ±inf and a 20-bin histogram over every element) against
   `torch.load(mmap=True)` + the same torch reductions (`min`, `max`, `mean`, `std`, `norm` and
   `histc` of the finite values — `histc` refuses NaN —, `== 0`, `isnan`, `isposinf`,
   `isneginf`); best and median of `--runs`. Memory: the
   RSS growth of one `tensor_stats` in a fresh process (after torch is imported).
2. **value diff of the two 1 GB files**, whole processes: `pthscope diff --values --json A B`
   against a script that `torch.load(mmap=True)`s both and, tensor by tensor, `torch.equal`s
   them and, when they differ, computes max |Δ| and ‖Δ‖/‖A‖ in float32; wall time and each
   process's peak RSS (wait4).
3. **conversion of the 1 GB file**, whole processes: `pthscope convert A OUT.safetensors` against
   `torch.load(A)` + `safetensors.torch.save_file`.

Targets (issue 12): statistics <= 1 s and faster than torch; diff at least as fast as torch with a
peak <= 300 MB; conversion at least as fast as torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "server"))

TORCH_DIFF = """
import sys, torch
a = torch.load(sys.argv[1], mmap=True, weights_only=True)
b = torch.load(sys.argv[2], mmap=True, weights_only=True)
for key, x in a.items():
    y = b.get(key)
    if y is None or y.shape != x.shape or torch.equal(x, y):
        continue
    x32, y32 = x.float(), y.float()
    d = y32 - x32
    (float(d.abs().max()), float(d.norm() / x32.norm()), int((d != 0).sum()))
"""
TORCH_CONVERT = """
import sys, torch
from safetensors.torch import save_file
save_file(torch.load(sys.argv[1], weights_only=True), sys.argv[2])
"""


def make_files(folder: Path) -> None:
    import torch

    if not (folder / "big-100m.pt").exists():
        torch.manual_seed(0)
        big = torch.randn(100_000_000)
        big[[5, 50_000_000]] = float("nan")
        big[77] = float("inf")
        torch.save({"w": big}, folder / "big-100m.pt")
        del big
    if (folder / "llm-b.pt").exists():
        return
    torch.manual_seed(1)
    hidden, mlp, vocab, layers = 1024, 2816, 32000, 32
    half = torch.float16
    state: dict[str, torch.Tensor] = {"model.embed_tokens.weight": torch.randn(vocab, hidden, dtype=half)}
    for i in range(layers):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            state[f"{p}self_attn.{name}.weight"] = torch.randn(hidden, hidden, dtype=half)
        state[f"{p}mlp.gate_proj.weight"] = torch.randn(mlp, hidden, dtype=half)
        state[f"{p}mlp.up_proj.weight"] = torch.randn(mlp, hidden, dtype=half)
        state[f"{p}mlp.down_proj.weight"] = torch.randn(hidden, mlp, dtype=half)
        state[f"{p}input_layernorm.weight"] = torch.ones(hidden, dtype=half)
        state[f"{p}post_attention_layernorm.weight"] = torch.ones(hidden, dtype=half)
    state["model.norm.weight"] = torch.ones(hidden, dtype=half)
    state["lm_head.weight"] = torch.randn(vocab, hidden, dtype=half)
    assert len(state) == 291
    torch.save(state, folder / "llm-a.pt")
    for key, tensor in state.items():
        if key.startswith(tuple(f"model.layers.{i}." for i in range(layers - 4, layers))) or key == "lm_head.weight":
            tensor.add_(torch.randn_like(tensor) * 1e-3)
    torch.save(state, folder / "llm-b.pt")


def warm(files: list[Path]) -> None:
    for file in files:
        with open(file, "rb") as f:
            while f.read(64 << 20):
                pass


# ----------------------------------------------------------------------------- 1. statistics


def stats_worker(file: str, runs: int, mode: str) -> None:
    """In a fresh process: the timing (alternating) or pthscope's memory, printed as one line."""
    import torch

    from pthscope.reader import inspect
    from pthscope.values import find_tensor, tensor_bytes, tensor_stats

    def ours() -> dict[str, object]:
        checkpoint = inspect(file)
        st = os.stat(file)
        result = tensor_stats(tensor_bytes(checkpoint, find_tensor(checkpoint, "w"), st.st_size, st.st_mtime_ns))
        assert "stats" in result, result
        return result

    def theirs() -> None:
        t = torch.load(file, mmap=True, weights_only=True)["w"]
        finite = t[torch.isfinite(t)]  # as pthscope: min, max, mean, std, norm, histogram of the finite values
        (float(finite.min()), float(finite.max()), float(finite.mean()), float(finite.std()), float(finite.norm()),
         int((t == 0).sum()), int(t.isnan().sum()), int(t.isposinf().sum()), int(t.isneginf().sum()),
         torch.histc(finite, 20).tolist())

    if mode == "memory":
        tiny = Path(tempfile.mkdtemp()) / "tiny.pt"
        torch.save({"w": torch.randn(10)}, tiny)
        file_was, file = file, str(tiny)
        ours()  # the engine imported and its buffers made
        file = file_was
        before = _status("VmRSS")
        ours()
        print(f"memory {(_status('VmHWM') - before) / 2**20:.1f}")
        return
    ours()
    theirs()
    times: dict[str, list[float]] = {"ours": [], "torch": []}
    for _ in range(runs):
        for name, work in (("ours", ours), ("torch", theirs)):
            started = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - started)
    print(" ".join(f"{name} {min(t)} {statistics.median(t)}" for name, t in times.items()))


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _child(*args: str) -> str:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


# ----------------------------------------------------------------------------- 2 and 3: processes


# Linux keeps a process's peak RSS across fork and exec: a child of this (large) process would
# report at least this process's peak. A small Python in between starts each measured command.
_MEASURE = """
import os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(time.perf_counter() - started, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))
"""


def timed_process(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one run of `command`."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, cwd=REPO)
    elapsed, peak, code = out.stdout.split()
    if out.returncode != 0 or int(code) != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {out.stderr[-2000:]}")
    return float(elapsed), float(peak)


def compare(label: str, ours: list[str], theirs: list[str], runs: int, before: list[str] | None = None
            ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {"ours": [], "torch": []}
    for _ in range(runs):
        for name, command in (("ours", ours), ("torch", theirs)):
            for path in before or []:
                Path(path).unlink(missing_ok=True)
            results[name].append(timed_process(command))
    return results["ours"], results["torch"]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, help="make (or reuse) the files in this folder")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        make_files(folder)
        big, a, b = folder / "big-100m.pt", folder / "llm-a.pt", folder / "llm-b.pt"
        warm([big, a, b])
        missed = []

        fields = _child(str(big), str(args.runs), "time").split()
        ours_best, ours_median, torch_best, torch_median = (float(fields[i]) for i in (1, 2, 4, 5))
        memory = float(_child(str(big), "1", "memory").split()[1])
        print("statistics of a 100,000,000-element float32 tensor (in-process)")
        print(f"  pthscope   {ms(ours_median):>10}  (best {ms(ours_best)})   RSS growth {memory:.1f} MiB")
        print(f"  torch      {ms(torch_median):>10}  (best {ms(torch_best)})   torch.load(mmap=True) + 10 reductions")
        print(f"  ratio      {torch_median / ours_median:.1f}x  (target: <= 1 s and faster than torch)")
        if ours_median > 1.0 or ours_median >= torch_median:
            missed.append("statistics")

        python = sys.executable
        ours_diff, torch_diff = compare("diff", [python, "-m", "pthscope", "diff", "--values", "--json", str(a), str(b)],
                                        [python, "-c", TORCH_DIFF, str(a), str(b)], args.runs)
        print("\nvalue diff of two 0.95 GB checkpoints (291 fp16 tensors; 40 changed), whole processes")
        _report(ours_diff, torch_diff, "torch.load(mmap=True) x2 + equal / max|Δ| / ‖Δ‖/‖A‖ per tensor")
        if statistics.median(t for t, _ in ours_diff) > statistics.median(t for t, _ in torch_diff) or \
                max(rss for _, rss in ours_diff) > 300:
            missed.append("diff")

        out_ours, out_torch = folder / "ours.safetensors", folder / "torch.safetensors"
        ours_conv, torch_conv = compare("convert", [python, "-m", "pthscope", "convert", "--force", str(a), str(out_ours)],
                                        [python, "-c", TORCH_CONVERT, str(a), str(out_torch)], args.runs,
                                        before=[str(out_ours), str(out_torch)])
        print("\nconversion of the 0.95 GB checkpoint to safetensors, whole processes")
        _report(ours_conv, torch_conv, "torch.load + safetensors.torch.save_file")
        if statistics.median(t for t, _ in ours_conv) > statistics.median(t for t, _ in torch_conv):
            missed.append("convert")
        for path in (out_ours, out_torch):
            path.unlink(missing_ok=True)
    if missed:
        print(f"\nMISSED: {', '.join(missed)}")
    return 1 if args.check and missed else 0


def _report(ours: list[tuple[float, float]], theirs: list[tuple[float, float]], what: str) -> None:
    ours_t, theirs_t = statistics.median(t for t, _ in ours), statistics.median(t for t, _ in theirs)
    print(f"  pthscope   {ms(ours_t):>10}  peak RSS {max(r for _, r in ours):6.1f} MiB")
    print(f"  torch      {ms(theirs_t):>10}  peak RSS {max(r for _, r in theirs):6.1f} MiB   {what}")
    print(f"  ratio      {theirs_t / ours_t:.2f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        stats_worker(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(main())
