"""The launcher's `sys.path` rules (server/pthscope_launch.py), one by one."""

from __future__ import annotations

import os
from pathlib import Path

from pthscope_launch import WORKSPACE_FOLDERS_VARIABLE, safe_sys_path


def folders(root: Path, *names: str) -> list[str]:
    made = []
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        made.append(str(root / name))
    return made


def test_bundled_first_interpreter_next_pythonpath_last(tmp_path: Path) -> None:
    here, libs, stdlib, site, user = folders(tmp_path, "ext", "ext/libs", "py/lib", "py/site", "mine")
    environ = {"PYTHONPATH": os.pathsep.join([user, "relative", ""])}
    path = safe_sys_path(["", stdlib, "relative/entry", site], here, environ, [], environment_ignored=True)
    assert path == [libs, here, stdlib, site, user]
    assert safe_sys_path([stdlib, site], here, environ, [], True, add_pythonpath=False) == [libs, here, stdlib, site]


def test_without_isolation_pythonpath_moves_behind_the_standard_library(tmp_path: Path) -> None:
    here, stdlib, user = folders(tmp_path, "ext", "py/lib", "mine")
    environ = {"PYTHONPATH": user}
    # what a plain `python launcher.py` starts with: script folder, PYTHONPATH, standard library
    assert safe_sys_path([here, user, stdlib], here, environ, [], environment_ignored=False) == [here, stdlib, user]


def test_no_entry_inside_a_workspace(tmp_path: Path) -> None:
    here, stdlib, workspace, src = folders(tmp_path, "ext", "py/lib", "ws", "ws/src")
    link = tmp_path / "innocent"
    link.symlink_to(src)
    environ = {WORKSPACE_FOLDERS_VARIABLE: workspace, "PYTHONPATH": os.pathsep.join([workspace, src])}
    path = safe_sys_path([stdlib, src, str(link)], here, environ, [str(tmp_path / "py")], True)
    assert path == [here, stdlib]


def test_an_environment_that_lives_in_the_workspace_keeps_its_packages(tmp_path: Path) -> None:
    """A trusted workspace's `.venv` is the interpreter's own environment; the workspace itself,
    or a checkout inside an environment (pip's `<venv>/src/<project>`), is not."""
    here, workspace, venv_site, other = folders(tmp_path, "ext", "ws", "ws/.venv/lib/site", "ws/other")
    venv = str(tmp_path / "ws" / ".venv")
    environ = {WORKSPACE_FOLDERS_VARIABLE: workspace}
    assert safe_sys_path([venv_site, other, workspace], here, environ, [venv], True) == [here, venv_site]
    env_site, checkout = folders(tmp_path, "env/lib/site", "env/src/project")
    environ = {WORKSPACE_FOLDERS_VARIABLE: checkout}
    assert safe_sys_path([env_site, checkout], here, environ, [str(tmp_path / "env")], True) == [here, env_site]


def test_the_extension_folder_stays_even_inside_a_workspace(tmp_path: Path) -> None:
    """Developing pthscope with its repository open: server/ is both the code and the workspace."""
    workspace, here, stdlib = folders(tmp_path, "repo", "repo/server", "py/lib")
    path = safe_sys_path([stdlib], here, {WORKSPACE_FOLDERS_VARIABLE: workspace}, [], True)
    assert path == [here, stdlib]
