"""Command line: `pthscope inspect [--json] FILE...`, `pthscope lsp`, and the value commands
`stats`, `scan`, `diff` and `convert` (values/commands.py does their work).

Exit codes: 0 inspected (dangerous globals are reported, not an error), 1 a file could not be
read (one line on stderr: which file, what is wrong, where), 2 bad usage, 3 `scan` found a
tensor with NaN or inf.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import functools
import io
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from typing import Any, TextIO

from . import __version__
from .gc_pause import gc_paused
from .json_text import json_chunks
from .plain_text import visible
from .reader import audit, inspect
from .reader.counts import format_bytes
from .reader.limits import Limits
from .reader.model import Checkpoint, Node, loader_of

# The CLI reads one file per process: cap the address space the unpickler may grow by.
_CLI_LIMITS = Limits(memory_budget_bytes=4 << 30)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    if args.command == "lsp":
        return _serve_lsp(args.worker_module or None)
    if args.command in _VALUE_COMMANDS:
        return _run_value_command(args)
    if args.command == "inspect":
        try:
            return _inspect(args)
        except BrokenPipeError:  # `pthscope inspect … | head`: the reader left; not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except KeyboardInterrupt:
            return 130
        except Exception as exc:  # a pthscope bug: one line, never a traceback or half a JSON
            print(f"pthscope: internal error ({type(exc).__name__}: {exc}); please report it", file=sys.stderr)
            return 1
    parser.print_help(sys.stderr)
    return 2


def _serve_lsp(worker_module: str | None) -> int:
    """The language server. Its structure worker starts first (for the default options, which
    the client rarely changes), so that its start overlaps the server's imports."""
    from .lsp.options import InitializationOptions, structure_arguments, worker_limits
    from .worker.client import WORKER_MODULE, WorkerClient, start_early

    module = worker_module or WORKER_MODULE
    defaults = InitializationOptions()
    early = start_early(WorkerClient("structure", worker_limits(defaults), module, structure_arguments(defaults)).command)

    from .lsp.attrs_cache import attrs_methods_cached

    # pygls' and lsprotocol's thousands of classes: a third faster without collections, and
    # their attrs methods compiled once, not at every start
    with gc_paused(), attrs_methods_cached():
        from .lsp.server import main as lsp_main

    return lsp_main(module, early) or 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pthscope", description="See inside PyTorch checkpoints without executing them.")
    parser.add_argument("--version", action="version", version=f"pthscope {__version__}")
    commands = parser.add_subparsers(dest="command")
    inspect_cmd = commands.add_parser("inspect", help="show a checkpoint's tree, tensors and the globals it names")
    inspect_cmd.add_argument("files", nargs="+", metavar="FILE")
    inspect_cmd.add_argument("--json", action="store_true", help="print one JSON object per file (docs/json-contract.md)")
    inspect_cmd.add_argument("--filter", metavar="PATTERN", default="",
                             help="only tensors/modules whose key contains PATTERN (shell wildcards allowed)")
    inspect_cmd.add_argument("--depth", type=int, default=None, metavar="N", help="show the tree N levels deep")
    inspect_cmd.add_argument("--no-tree", action="store_true", help="JSON without the nested tree")
    inspect_cmd.add_argument("--timeout", type=float, default=120, metavar="SECONDS",
                             help="stop reading a file after this long (default 120; 0: no limit)")
    _add_value_commands(commands)
    lsp_cmd = commands.add_parser("lsp", help="start the language server on stdio")
    # vscode-languageclient and other clients name the transport; stdio is the only one.
    lsp_cmd.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")
    # The module that runs the workers (`python -m MODULE`): tests start theirs, with faults.
    lsp_cmd.add_argument("--worker-module", default=None, help=argparse.SUPPRESS)
    return parser


_VALUE_COMMANDS = ("stats", "scan", "diff", "convert")


def _add_value_commands(commands: Any) -> None:
    """`stats`, `scan`, `diff`, `convert`: they read tensor values (values/commands.py)."""
    timeout = {"type": float, "default": 600, "metavar": "SECONDS",
               "help": "stop after this long (default 600; 0: no limit)"}
    stats = commands.add_parser("stats", help="statistics of tensor values: min, max, mean, std, L2, zeros, NaN/inf, "
                                "histogram")
    stats.add_argument("file", metavar="FILE")
    stats.add_argument("patterns", nargs="*", metavar="KEY_PATTERN",
                       help="only tensors whose key contains one of these (shell wildcards allowed)")
    stats.add_argument("--json", action="store_true", help="one JSON object (docs/json-contract.md)")
    stats.add_argument("--timeout", **timeout)
    scan = commands.add_parser("scan", help="find tensors with NaN, inf, extreme values, or all zeros (exit 3 on "
                               "NaN/inf)")
    scan.add_argument("file", metavar="FILE")
    scan.add_argument("--json", action="store_true", help="one JSON object (docs/json-contract.md)")
    scan.add_argument("--timeout", **timeout)
    diff = commands.add_parser("diff", help="compare two checkpoints: keys, shapes, dtypes, requires_grad "
                               "(--values: the values too)")
    diff.add_argument("file_a", metavar="A")
    diff.add_argument("file_b", metavar="B")
    diff.add_argument("--values", action="store_true", help="compare every tensor's values (reads both files)")
    diff.add_argument("--json", action="store_true", help="one JSON object (docs/json-contract.md)")
    diff.add_argument("--timeout", **timeout)
    convert = commands.add_parser("convert", help="write a safetensors file from a checkpoint, without unpickling it")
    convert.add_argument("file", metavar="FILE")
    convert.add_argument("out", metavar="OUT.safetensors")
    convert.add_argument("--all", action="store_true",
                         help="every tensor, by its full key (default: the model's parameters and buffers)")
    convert.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    convert.add_argument("--timeout", **timeout)


def _run_value_command(args: argparse.Namespace) -> int:
    from .values import commands

    def run() -> int:
        audit.install()  # in the reading child: nothing may import, exec, spawn or connect during a read
        if args.command == "stats":
            return commands.run_stats(args.file, args.patterns, args.json, _CLI_LIMITS, sys.stdout, sys.stderr)
        if args.command == "scan":
            return commands.run_scan(args.file, args.json, _CLI_LIMITS, sys.stdout, sys.stderr)
        if args.command == "diff":
            return commands.run_diff(args.file_a, args.file_b, args.values, args.json, _CLI_LIMITS, sys.stdout,
                                     sys.stderr)
        return commands.run_convert(args.file, args.out, args.all, args.force, _CLI_LIMITS, sys.stdout, sys.stderr)

    try:
        return _within_time_limit(run, args.file if hasattr(args, "file") else args.file_a, args.timeout)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


def _inspect(args: argparse.Namespace) -> int:
    status = 0
    for file in args.files:
        status = max(status, _within_time_limit(functools.partial(_inspect_one, file, args), file, args.timeout))
    return status


def _inspect_one(file: str, args: argparse.Namespace) -> int:
    audit.install()  # in the reading child: nothing may import, exec, spawn or connect during a read
    with gc_paused():
        checkpoint = inspect(file, _CLI_LIMITS)
        if args.json:
            keep = functools.partial(_matches, pattern=args.filter) if args.filter else None
            # Made whole before anything is written: a failure cannot leave half a JSON object.
            # Past 8 MiB in a temporary file, not memory (100,000 tensors are ~70 MB of text).
            with tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+", encoding="ascii") as whole:
                # One write per chunk: the spool moves to its file only after a write (its
                # writelines would hold the whole text in memory first).
                for chunk in json_chunks(checkpoint, tree=not args.no_tree, keep=keep):
                    whole.write(chunk)
                whole.seek(0)
                shutil.copyfileobj(whole, sys.stdout)
        else:
            text = VisibleText()
            if checkpoint.ok:
                print_checkpoint(checkpoint, text, args.filter, args.depth)
            else:
                print_dangerous_globals(checkpoint, text)  # what a failed read still found
            sys.stdout.write(text.getvalue())
    for error in checkpoint.errors[:1]:
        where = f" (at {error.where})" if error.where else ""
        more = f" (+{len(checkpoint.errors) - 1} more problems; --json lists them)" if len(checkpoint.errors) > 1 else ""
        print(visible(f"pthscope: {file}: {error.message}{where}{more}"), file=sys.stderr)
    if _child["reading"]:  # it ends with os._exit, which frees nothing: 100,000 tensors' objects cost 0.1 s to free
        _child["kept"] = checkpoint
    return 1 if checkpoint.errors else 0


# The forked reading child (_within_time_limit) and what it keeps until it exits.
_child: dict[str, Any] = {"reading": False, "kept": None}


class VisibleText(io.StringIO):
    """The text output, with every character a file chose shown visibly (plain_text.visible).

    Each write is whole lines of ours: newlines at its start and end are the layout, any other
    character that does not print (a newline inside a key, a bidi override, NUL, a lone
    surrogate) came from the file and is escaped, so a file cannot forge or hide lines."""

    def write(self, s: str) -> int:
        body = s.strip("\n")
        if body.isprintable():
            return super().write(s)
        start = s.index(body) if body else len(s)
        return super().write(s[:start] + visible(body) + s[start + len(body):])


def _within_time_limit(work: Callable[[], int], file: str, seconds: float) -> int:
    """Run `work` in a forked child that is killed after `seconds`.

    Some hostile pickles make C code inside the unpickler spin (hashing a huge DAG of tuples)
    where no Python-level check runs; only a separate process can be stopped then.
    """
    if seconds <= 0 or not hasattr(os, "fork"):
        return work()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: do the work, never return into the parent's code
        _child["reading"] = True
        code = 1
        try:
            code = work()
        except BrokenPipeError:
            code = 0
        except Exception as exc:  # a pthscope bug: one line on stderr, exit 1
            print(f"pthscope: {file}: internal error ({type(exc).__name__}: {exc}); please report it", file=sys.stderr)
            code = 1
        finally:
            with contextlib.suppress(BrokenPipeError):
                sys.stdout.flush()
            os._exit(code)
    # Wait for the child (no polling: its end is seen at once); a timer kills it when time is up.
    timed_out = []

    def stop(signum: int, frame: object) -> None:
        timed_out.append(True)
        os.kill(pid, signal.SIGKILL)

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        _, status = os.waitpid(pid, 0)  # retried after the timer's handler (PEP 475)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if timed_out:
        print(f"pthscope: {file}: reading took longer than {seconds:g} s and was stopped "
              "(the file is pathological or hostile; --timeout changes the limit)", file=sys.stderr)
        return 1
    if os.WIFSIGNALED(status):
        print(f"pthscope: {file}: the reader was killed by signal {os.WTERMSIG(status)} "
              "(out of memory?)", file=sys.stderr)
        return 1
    return os.WEXITSTATUS(status)


def _matches(key: str, pattern: str) -> bool:
    pattern = pattern.lower()
    key = key.lower()
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(key, pattern if pattern.startswith("*") else f"*{pattern}*")
    return pattern in key


_ROLE_LABELS = {"parameter": "parameters", "buffer": "buffers", "optimizer_state": "optimizer", "other": "other"}


def print_checkpoint(checkpoint: Checkpoint, out: TextIO, pattern: str = "", depth: int | None = None) -> None:
    summary = checkpoint.summary()
    roles = summary["roles"]
    out.write(f"{checkpoint.file}\n")
    out.write(f"  format      {checkpoint.format}  ({checkpoint.size:,} bytes)\n")
    if checkpoint.metadata:
        out.write("  metadata    " + ", ".join(f"{k} {v}" for k, v in checkpoint.metadata.items()) + "\n")
    out.write(f"  tensors     {summary['tensors']:,} in {summary['modules']:,} modules\n")
    grad = ("requires_grad stored" if summary["requires_grad_stored"]
            else "requires_grad not stored (a state_dict keeps tensors only)")
    for role, label in _ROLE_LABELS.items():
        counts = roles[role]  # type: ignore[literal-required]
        if not counts["tensors"] and role != "parameter":
            continue
        line = (f"  {label:<11} {_plural(counts['elements'], 'element')} in {_plural(counts['tensors'], 'tensor')} "
                f"({format_bytes(counts['bytes'])})")
        if role == "parameter":
            p = roles["parameter"]
            flags = [f"{p['trainable']:,} trainable", f"{p['frozen']:,} frozen"]
            if p["not_stored"]:
                flags.append(f"{p['not_stored']:,} flag not stored")
            line += ": " + ", ".join(flags) + f"  [{grad}]"
        out.write(line + "\n")
    if summary["bytes_by_dtype"]:
        out.write("  bytes       " + ", ".join(f"{d} {format_bytes(n)}" for d, n in summary["bytes_by_dtype"].items()) + "\n")
    if summary["locations"]:
        out.write("  locations   " + ", ".join(f"{loc} ×{n}" for loc, n in summary["locations"].items()) + "\n")
    print_dangerous_globals(checkpoint, out)
    for warning in checkpoint.warnings:
        if warning.kind != "dangerous-globals":
            out.write(f"  warning: {warning.message}" + (f" (at {warning.where})" if warning.where else "") + "\n")
    if checkpoint.root is not None:
        out.write("\n")
        out.writelines(line + "\n" for line in _tree_lines(checkpoint, checkpoint.root, 0, pattern, depth))


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def print_dangerous_globals(checkpoint: Checkpoint, out: TextIO) -> None:
    safety = checkpoint.safety()
    if safety is not None:  # the page's banner line (reader/safety.py)
        out.write(f"  safety      {safety['headline']}\n")
    dangerous = [g for g in checkpoint.globals if g.risk == "dangerous" and not g.unread]
    unread = [g.name for g in checkpoint.globals if g.risk == "dangerous" and g.unread]
    unknown = [g.name for g in checkpoint.globals if g.risk == "unknown" and not g.unread]
    load = checkpoint.unrestricted_load()
    loader = loader_of(checkpoint.format)
    if dangerous:
        crafted = f" ({loader['call']} refuses the file first: it is crafted)" if checkpoint.torch_load_refuses else ""
        out.write(f"\n  !! DANGEROUS: {checkpoint.file}: {load} would run: {', '.join(g.name for g in dangerous)}"
                  f"{crafted}\n")
        out.writelines(f"     {g.name}: {g.effect}\n" for g in dangerous[:20])
    if unread:
        out.write(f"\n  !! CRAFTED: {checkpoint.file}: a pickle {loader['call']} does not read names: "
                  f"{', '.join(unread)} (a Python unpickler run on it would run them)\n")
    if unknown and loader["own_types_only"]:
        out.write(f"  !  classes ({loader['call']} accepts only its own, made from the file's code, which it runs; "
                  f"{load} would import them): {', '.join(unknown)}\n")
    elif unknown:
        out.write(f"  !  unknown classes ({load} imports them): {', '.join(unknown)}\n")
    if checkpoint.weights_only_refusal and loader["weights_only"]:
        out.write(f"  !  weights_only=True refuses it: {checkpoint.weights_only_refusal}\n")


def _tree_lines(checkpoint: Checkpoint, node: Node, level: int, pattern: str, depth: int | None) -> list[str]:
    """Lines for `node` and its subtree, keeping only branches that lead to a match of `pattern`."""
    if depth is not None and level > depth:
        return []
    below = [line for child in node.children for line in _tree_lines(checkpoint, child, level + 1, pattern, depth)]
    matched = not pattern or (node.kind in ("tensor", "module") and _matches(node.key, pattern))
    if not (matched or below):
        return []
    return ["  " * level + _node_line(checkpoint, node), *below]


def _node_line(checkpoint: Checkpoint, node: Node) -> str:
    name = node.name if node.name != "" else "(root)"
    if node.kind == "tensor" and node.tensor is not None:
        t = checkpoint.tensors[node.tensor]
        shape = "×".join(map(str, t.shape)) if t.shape else "scalar"
        parts = [f"{name}  [{shape}] {t.dtype}",
                 {"trainable": "trainable", "frozen": "FROZEN", "not stored": ""}[t.grad_state],
                 "" if t.role == "parameter" else t.role.replace("_", " "),
                 f"shares storage with {', '.join(t.shared_with[:3])}" if t.shared_with else ""]
        return "  ".join(filter(None, parts))
    if node.kind == "module" and node.module is not None:
        m = checkpoint.modules[node.module]
        p = m.parameters
        return f"{name}  ({m.class_name})  {p.total:,} params, {p.trainable:,} trainable, {p.frozen:,} frozen"
    if node.kind == "value":
        return f"{name} = {node.value}"
    return f"{name}  <{node.type}, {len(node.children)} items>"


if __name__ == "__main__":
    sys.exit(main())
