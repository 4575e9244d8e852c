"""The execution environment of docs/awx.md builds from this repository alone.

No container tool here: the test follows the shell steps of docs/awx.md's "Execution
environment" section in a copy of the repository, with ``ansible-builder create`` (which
validates ``execution-environment.yml`` against ansible-builder's schema and lays out the
build context) in place of ``ansible-builder build``, and checks that the context holds every
file the Containerfile copies and installs mml-tool from the wheel made from this source, not
from a package index where it is not published.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from mml_tool import __version__

pytest.importorskip("ansible")
pytest.importorskip("ansible_builder")
pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COLLECTION = Path("ansible_collections/mml_tool/uap9600")


def documented_steps() -> list[list[str]]:
    """The commands of the indented block under "## Execution environment" in docs/awx.md."""
    text = (ROOT / "docs" / "awx.md").read_text(encoding="utf-8")
    section = text.split("## Execution environment", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"\n\n((?:    \S.*\n)+)", section)
    assert block, "docs/awx.md: no command block under 'Execution environment'"
    return [shlex.split(line) for line in block.group(1).splitlines()]


def test_the_documented_ee_build_context_installs_mml_tool_from_this_source(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.tar.gz", "wheels")
    for name in ("mml_tool", "ansible_collections"):
        shutil.copytree(ROOT / name, repo / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, repo / name)
    cwd, tools = repo, {"pip": [str(BIN / "pip")]}
    ran = []
    for words in documented_steps():
        if words[0] == "cd":
            cwd = cwd / words[1]
            continue
        if words[:2] == ["ansible-builder", "build"]:
            # No container tool here: lay out the build context only (the same checks).
            words = ["ansible-builder", "create", "-f", words[words.index("-f") + 1]]
            words += ["-c", str(tmp_path / "context"), "--output-filename", "Containerfile"]
        elif words[0] not in ("pip", "ansible-galaxy", "ansible-builder"):
            continue  # podman push: nothing to push to
        command = tools.get(words[0], [str(BIN / words[0])]) + words[1:]
        proc = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=240, check=False
        )
        assert proc.returncode == 0, f"{' '.join(words)}:\n{proc.stdout}\n{proc.stderr}"
        ran.append(words[:2])
    assert ["ansible-builder", "create"] in ran, ran

    context = tmp_path / "context"
    containerfile = (context / "Containerfile").read_text(encoding="utf-8")
    # Every file the Containerfile copies from the build context is there.
    for source in re.findall(r"^COPY (_build/\S+)", containerfile, re.M):
        assert (context / source).exists(), f"the Containerfile copies {source}: not built"
    # mml-tool comes from the wheel made from this source, its version the package's.
    wheel = context / "_build" / "wheels" / f"mml_tool-{__version__}-py3-none-any.whl"
    assert wheel.is_file(), sorted(p.name for p in (context / "_build").rglob("*"))
    with zipfile.ZipFile(wheel) as archive:
        assert "mml_tool/automation/__init__.py" in archive.namelist()
    assert re.search(
        rf"pip install .*mml_tool-{re.escape(__version__)}-py3-none-any\.whl", containerfile
    )
    # ... into a Python it supports: CentOS Stream 9's /usr/bin/python3 (the default of
    # ansible-builder, and what older awx-ee images run Ansible with) is 3.9.
    pycmd = re.search(r'^ARG PYCMD="([^"]+)"', containerfile, re.M)
    assert pycmd and re.fullmatch(r"/usr/bin/python3\.(\d+)", pycmd.group(1)), containerfile
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    lowest = re.search(r'^requires-python = ">=3\.(\d+)"$', pyproject, re.M)
    assert lowest and int(pycmd.group(1).rsplit(".", 1)[1]) >= int(lowest.group(1))
    # ... and never from a package index (it is not published there).
    requirements = (context / "_build" / "requirements.txt").read_text(encoding="utf-8")
    names = [line.split("#")[0].strip() for line in requirements.splitlines()]
    assert not [n for n in names if re.match(r"mml[-_]tool\b", n, re.I)], requirements
    # The collection installed in the image is the one just built.
    galaxy = yaml.safe_load((ROOT / COLLECTION / "galaxy.yml").read_text(encoding="utf-8"))
    tarball = f"mml_tool-uap9600-{galaxy['version']}.tar.gz"
    assert (context / "_build" / "collections" / tarball).is_file()
    assert f"ansible-galaxy collection install /tmp/{tarball}" in containerfile
