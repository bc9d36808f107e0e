"""A real pthscope server over stdio (pytest-lsp), and real checkpoints made with torch.

`client` starts `python -m pthscope lsp`, initializes it with the options of the test's
`server_options` marker, and shuts it down (and so its workers) afterwards; `shared_client`
does the same once per module. `checkpoints` are written once per session. The server runs its
workers from tests/lsp/faulty_worker.py: reading `crash-me.pt` segfaults the worker, reading
`hog-memory.pt` exhausts its memory outside the reader, reading `slow-read.pt` takes 3 s. No
other file is affected.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
import torch
from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient, LanguageClientProtocol
from pytest_lsp.client import register_lsp_features

from pthscope.lsp.protocol import response_type
from tests.lsp.faulty_worker import CRASH_FILE_NAME, MEMORY_HOG_FILE_NAME, SLOW_READ_FILE_NAME
from tests.reader.user_models import SmallNet

BIG_TENSOR_COUNT = 30_000
WIDE_TENSOR_COUNT = 1_200


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "server_options(options): initializationOptions for the `client` fixture"
    )


def _frozen_net() -> SmallNet:
    torch.manual_seed(0)
    net = SmallNet()
    net.freeze_backbone()
    return net


def _training_checkpoint() -> dict[str, Any]:
    net = _frozen_net()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    return {
        "epoch": 7,
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "config": {"lr": 0.1, "arch": "smallnet", "layers": [8, 8]},
    }


def write_checkpoints(folder: Path) -> dict[str, Path]:
    """Every file the server tests open, by name."""
    files = {
        "state_dict": (_frozen_net().state_dict(), "state_dict.pt"),
        "whole_model": (_frozen_net(), "whole_model.pt"),
        "training": (_training_checkpoint(), "training.pt"),
        "wide": ({f"t{i:04d}": torch.zeros(2) for i in range(WIDE_TENSOR_COUNT)}, "wide.pt"),
        "big": (
            {f"layer{i // 10}.sub{i % 10}.weight": torch.zeros(2, 3)
             for i in range(BIG_TENSOR_COUNT)},
            "big.pt",
        ),
    }
    made = {}
    for name, (obj, file_name) in files.items():
        made[name] = folder / file_name
        torch.save(obj, made[name])
    good = made["state_dict"].read_bytes()
    made["truncated"] = folder / "truncated.pt"
    made["truncated"].write_bytes(good[: len(good) // 2])
    made["garbage"] = folder / "garbage.pt"
    made["garbage"].write_bytes(b"not a checkpoint at all\n" * 10)
    made["crash"] = folder / CRASH_FILE_NAME
    shutil.copy(made["state_dict"], made["crash"])
    made["memory_hog"] = folder / MEMORY_HOG_FILE_NAME
    shutil.copy(made["state_dict"], made["memory_hog"])
    made["slow_read"] = folder / SLOW_READ_FILE_NAME
    shutil.copy(made["state_dict"], made["slow_read"])
    return made


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_checkpoints(tmp_path_factory.mktemp("checkpoints"))


REPO = Path(__file__).resolve().parents[2]


def server_command() -> list[str]:
    return [sys.executable, "-m", "pthscope", "lsp", "--worker-module", "tests.lsp.faulty_worker"]


def server_env() -> dict[str, str]:
    """The environment of the server and its workers: `tests` importable, as in this process."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


class PthscopeClientProtocol(LanguageClientProtocol):
    """pytest-lsp's client protocol, reading `pthscope/*` results into protocol.py's types.

    Params go out as given (plain dicts), so that tests can also send bad ones.
    """

    def get_result_type(self, method: str) -> type | None:
        return response_type(method) or super().get_result_type(method)


def client_converter() -> Any:
    """pygls' converter, reading our results with the snake_case keys the server sends (as the
    VS Code client does); LSP's own types keep their camelCase."""
    from cattrs.gen import make_dict_structure_fn

    from pthscope.lsp.protocol import METHODS

    converter = default_converter()
    results = {result for _, result in METHODS.values()}
    converter.register_structure_hook_factory(lambda t: t in results, lambda t: make_dict_structure_fn(t, converter))
    return converter


def make_client() -> LanguageClient:
    client = LanguageClient(
        protocol_cls=PthscopeClientProtocol, converter_factory=client_converter
    )
    register_lsp_features(client)
    return client


SERVER = ClientServerConfig(
    server_command=server_command(),
    client_factory=make_client,
    server_env=server_env(),
)


async def _initialize(client: LanguageClient, request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("server_options")
    await client.initialize_session(
        types.InitializeParams(
            capabilities=pytest_lsp.client_capabilities("visual-studio-code"),
            initialization_options=marker.args[0] if marker else None,
        )
    )


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest):
    """A server of the test's own."""
    await _initialize(lsp_client, request)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=SERVER, scope="module")
async def shared_client(lsp_client: LanguageClient, request: pytest.FixtureRequest):
    """One server for a module of tests that only read: they need
    `pytestmark = pytest.mark.asyncio(loop_scope="module")`."""
    await _initialize(lsp_client, request)
    yield
    await lsp_client.shutdown_session()


async def ask(client: LanguageClient, method: str, params: dict[str, Any]) -> Any:
    """Send a custom request; the result comes back as the result type of protocol.py."""
    return await client.protocol.send_request_async(method, params)
