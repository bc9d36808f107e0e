"""Real checkpoints made with torch once per session and read with `pthscope.inspect`.

`checkpoints` maps absolute paths (under a temporary workspace's `runs/`) to their views
(`ModelView`, as the language server gets them from its worker);
`workspace` is that folder, passed to `analyze` as the workspace folder so the scripts'
relative paths (`runs/…`) resolve there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import pthscope
from pthscope.reader.model_view import ModelView, model_view
from tests.code_intel.models import Net

SCRIPTS = Path(__file__).parent / "scripts"
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("workspace"))


def make_workspace(root: Path) -> Path:
    """Write the checkpoints the scripts name under `root/runs` (also used by tests/lsp)."""
    runs = root / "runs"
    runs.mkdir()
    torch.manual_seed(0)
    model = Net()
    model.backbone.requires_grad_(False)
    torch.save(model.state_dict(), runs / "net_sd.pth")
    torch.save(model, runs / "full_model.pth")
    optimizer = torch.optim.Adam(model.head.parameters())
    torch.save(
        {
            "epoch": 3,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        },
        runs / "checkpoint.pth",
    )
    wrapped = torch.nn.DataParallel(Net())
    torch.save(wrapped.state_dict(), runs / "dp_sd.pth")
    return root


@pytest.fixture(scope="session")
def checkpoints(workspace: Path) -> dict[str, ModelView]:
    found = {}
    for path in sorted((workspace / "runs").iterdir()):
        # Through JSON, as the server receives it.
        view = model_view(pthscope.inspect(str(path)))
        found[os.path.normpath(str(path))] = ModelView.from_json(view.to_json())
    return found
