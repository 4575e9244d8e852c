"""The README's Ansible playbook and Nornir script, run as written against a lab.

Each example is a fenced block whose first line names its file (``# lab/one-way-video.yml``);
it is saved under that name in a folder whose ``lab/`` is the lab's own folder, as
``mml-tool lab --write-inventory lab/inventory.yaml`` lays it out. The Nornir hosts file names
the fixed ports of ``mml-tool lab --port 10022``; the test's lab runs on free ports, so those
two numbers (and only them) are replaced.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RunningLab, StartLab, lab_env

from mml_tool.lab.uap import NodeConfig

pytestmark = pytest.mark.timeout(300)  # ansible-playbook starts slowly on a loaded machine

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
README_PORT = 10022


def readme_files() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```(?:yaml|python)\n# (lab/\S+)\n(.*?)^```$", text, re.M | re.S)
    return {name: body for name, body in blocks}


def readme_commands(prefix: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [
        line.strip().split("  #")[0].strip()
        for line in text.splitlines()
        if line.strip().startswith(prefix)
    ]


def lay_out(lab: RunningLab, folder: Path) -> Path:
    (folder / "lab").symlink_to(lab.inventory_path.parent, target_is_directory=True)
    for name, body in readme_files().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    return folder


def environment(lab: RunningLab, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(lab_env(lab.inventory_path))
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(ROOT),
        ANSIBLE_HOME=str(folder / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
        MML_TOOL_AUDIT=str(folder / "audit.jsonl"),
        MML_TOOL_LOCKS=str(folder / "locks"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def test_readme_names_its_example_files() -> None:
    assert set(readme_files()) == {
        "lab/one-way-video.yml",
        "lab/nornir/hosts.yaml",
        "lab/nornir/defaults.yaml",
        "lab/nornir_one_way_video.py",
    }


def test_readme_playbook_runs_as_written(start_lab: StartLab, tmp_path: Path) -> None:
    pytest.importorskip("ansible")
    lab = start_lab([NodeConfig("uap-1", meid=1)], with_gateway=True)  # one: ansible is slow
    folder = lay_out(lab, tmp_path)
    plugin_line = readme_commands("printf 'plugin: mml_tool.uap9600.inventory")
    assert len(plugin_line) == 1
    env = environment(lab, folder)
    subprocess.run(plugin_line[0], shell=True, cwd=folder, env=env, check=True)
    runs = [c.split() for c in readme_commands("ansible-playbook -i lab/lab.mml.yml")]
    assert [r[-1] for r in runs] == ["--diff", "--diff", "lab/one-way-video.yml"]
    outputs = []
    # The third run (changed=0) is test_ansible's idempotency case; it costs seconds here.
    for argv in runs[:2]:
        proc = subprocess.run(
            argv, cwd=folder, env=env, capture_output=True, text=True, timeout=240, check=False
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        outputs.append(proc.stdout)
        if len(outputs) == 1:  # --check: nothing was written
            assert not lab.lab.one_way_video_ready("uap-1")
    check, change = outputs
    for out in (check, change):
        assert re.search(r"uap-1\s+: ok=\d+\s+changed=1 .*failed=0", out)
        assert "-P978 bit 0 = 1" in out and "+P978 bit 0 = 0" in out
    assert "Verify through the host's CC-Gateway" in change and "rescued=0" in change
    assert lab.lab.one_way_video_ready("uap-1")


def test_readme_nornir_script_runs_as_written(start_lab: StartLab, tmp_path: Path) -> None:
    pytest.importorskip("nornir")
    lab = start_lab([NodeConfig("uap-1", meid=1), NodeConfig("uap-2", meid=2)])
    folder = lay_out(lab, tmp_path)
    hosts = folder / "lab/nornir/hosts.yaml"
    text = hosts.read_text(encoding="utf-8")
    for i, name in enumerate(("uap-1", "uap-2")):
        text = text.replace(f"port: {README_PORT + i}\n", f"port: {lab.lab.node(name).ssh_port}\n")
    hosts.write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "lab/nornir_one_way_video.py"],
        cwd=folder,
        env=environment(lab, folder),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "uap-1 [('UAP-SFP-P978-B0', 'fail')]" in proc.stdout
    assert proc.stdout.count("changed") == 2 and "+P978 bit 0 = 0" in proc.stdout
    assert all(lab.lab.one_way_video_ready(n) for n in ("uap-1", "uap-2"))
