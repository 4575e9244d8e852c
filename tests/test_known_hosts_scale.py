"""known_hosts read once per content in one pass: the same keys paramiko finds, in linear time
(paramiko's own load, and indexing the result, scan every entry per line: at 1000 lines about a
second of CPU, paid while every other worker thread waits for it)."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from mml_tool.lab.uap import generate_host_key
from mml_tool.mml.transport import known_hosts as transport


def lines(count: int, key: paramiko.PKey) -> list[str]:
    return [f"[127.0.0.1]:{20000 + i} {key.get_name()} {key.get_base64()}" for i in range(count)]


def test_a_big_file_is_read_without_scanning_it_per_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, _ = generate_host_key()
    path = tmp_path / "known_hosts"
    path.write_text("\n".join(lines(1000, key)) + "\n", encoding="utf-8")
    calls = 0
    real = paramiko.HostKeys._hostname_matches

    def counting(self: paramiko.HostKeys, hostname: str, entry: object) -> bool:
        nonlocal calls
        calls += 1
        return bool(real(self, hostname, entry))  # type: ignore[arg-type]

    monkeypatch.setattr(paramiko.HostKeys, "_hostname_matches", counting)
    files = transport._KnownHostsFiles()
    for i in (0, 500, 999):
        found = files.keys_for(path, f"[127.0.0.1]:{20000 + i}")
        assert found[key.get_name()].get_base64() == key.get_base64()
    assert files.keys_for(path, "[127.0.0.1]:19999") == {}
    assert calls == 0


def test_the_keys_found_are_the_ones_paramiko_finds(tmp_path: Path) -> None:
    key1, _ = generate_host_key()
    key2, _ = generate_host_key()
    hashed = paramiko.HostKeys.hash_host("[127.0.0.1]:30000")
    text = "\n".join(
        [
            "# a comment",
            "",
            f"[127.0.0.1]:20000 {key1.get_name()} {key1.get_base64()}",
            f"[127.0.0.1]:20000 {key2.get_name()} {key2.get_base64()}",  # same type: first wins
            f"host-a,host-b {key2.get_name()} {key2.get_base64()}",
            f"{hashed} {key2.get_name()} {key2.get_base64()}",
            "garbage",
        ]
    )
    path = tmp_path / "known_hosts"
    path.write_text(text + "\n", encoding="utf-8")
    reference = paramiko.HostKeys(str(path))
    files = transport._KnownHostsFiles()
    for name in ("[127.0.0.1]:20000", "host-a", "host-b", "[127.0.0.1]:30000", "nobody"):
        ours = {t: k.get_base64() for t, k in files.keys_for(path, name).items()}
        theirs = {t: k.get_base64() for t, k in (reference.lookup(name) or {}).items()}
        assert ours == theirs, name
