"""The worker process itself, driven over its pipes: a malformed request line is answered
`invalid` (when it has an id) or skipped, and the worker keeps answering the next ones."""

from __future__ import annotations

import json
import select
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from pthscope.worker.client import worker_command


@pytest.fixture(params=["structure", "values"])
def worker(request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[bytes]]:
    command = worker_command(2 << 30, arguments=("--serve", request.param))
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        assert read_frame(process)[1] == "ready"
        yield process
    finally:
        process.kill()
        process.wait()


_unread: dict[int, bytes] = {}  # per worker pid: bytes read past the last frame


def read_frame(process: subprocess.Popen[bytes], seconds: float = 20.0) -> tuple[int, str, bytes]:
    """The worker's next `<id> <kind> <length>\\n<body>` frame; fails if none comes in time."""
    assert process.stdout is not None
    data = _unread.pop(process.pid, b"")

    def more() -> None:
        nonlocal data
        if not select.select([process.stdout], [], [], seconds)[0]:
            pytest.fail(f"the worker sent nothing for {seconds} s")
        chunk = process.stdout.read(65536)  # type: ignore[union-attr]
        assert chunk, "the worker closed its output"
        data += chunk

    while b"\n" not in data:
        more()
    header, data = data.split(b"\n", 1)
    request_id, kind, length = header.split()
    while len(data) < int(length):
        more()
    _unread[process.pid] = data[int(length):]
    return int(request_id), kind.decode(), data[:int(length)]


def send(process: subprocess.Popen[bytes], line: bytes) -> None:
    assert process.stdin is not None
    process.stdin.write(line + b"\n")
    process.stdin.flush()


@pytest.mark.parametrize("bad", [
    b"not json at all", b"\xff\xfe", b"[1, 2]", b'{"method": "open"}', b'{"id": "7", "method": "open", "params": {}}',
    b"null", b'{"id": 3}', b'{"id": 4, "method": "open", "params": []}', b'{"id": 5, "method": "open", "params": {"file": 9}}',
    b'{"id": 6, "method": "open", "params": {}}',
])
def test_a_malformed_request_leaves_the_worker_serving(worker: subprocess.Popen[bytes], bad: bytes, tmp_path: Path) -> None:
    file = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(2)}, file)
    send(worker, bad)
    role = worker.args[-1]
    method, params = ("load", {"file": str(file)}) if role == "structure" else ("nothing-such", {"file": str(file)})
    send(worker, json.dumps({"id": 100, "method": method, "params": params}).encode())
    frames = [read_frame(worker)]
    if frames[0][0] != 100:  # the malformed one had an id: answered first, in order
        assert frames[0][1] == "invalid" and frames[0][0] in (3, 4, 5, 6)
        frames.append(read_frame(worker))
    request_id, kind, body = frames[-1]
    assert request_id == 100
    if role == "structure":
        assert kind == "result" and json.loads(body)["tensors"] == 1
    else:
        assert kind == "invalid" and "unknown request" in json.loads(body)["message"]
