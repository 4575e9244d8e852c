"""known_hosts read once per content in one pass, with the keys OpenSSH's format gives (checked
against paramiko's reader as a reference), in linear time: paramiko's own load and lookup scan
every entry per line, about a second of CPU at 1000 lines."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import paramiko

from mml_tool.lab.uap import generate_host_key
from mml_tool.mml.transport import known_hosts as transport


def lines(count: int, key: paramiko.PKey) -> list[str]:
    return [f"[127.0.0.1]:{20000 + i} {key.get_name()} {key.get_base64()}" for i in range(count)]


def test_a_big_file_is_read_once_and_looked_up_by_name(tmp_path: Path) -> None:
    key, _ = generate_host_key()
    path = tmp_path / "known_hosts"
    path.write_text("\n".join(lines(5000, key)) + "\n", encoding="utf-8")
    files = transport._KnownHostsFiles()
    start = time.process_time()
    for i in range(5000):
        found = files.keys_for(path, f"[127.0.0.1]:{20000 + i}")
        assert found[key.get_name()].blob == key.asbytes()
    # Read once, then a dict lookup per host: well under a second (the quadratic scan took
    # about 25 s of CPU at this size).
    assert time.process_time() - start < 1.0


def test_the_keys_found_are_the_ones_paramiko_finds(tmp_path: Path) -> None:
    key1, _ = generate_host_key()
    key2, _ = generate_host_key()
    ecdsa = paramiko.ECDSAKey.generate()
    hashed = paramiko.HostKeys.hash_host("[127.0.0.1]:30000")
    text = "\n".join(
        [
            "# a comment",
            "",
            f"[127.0.0.1]:20000 {key1.get_name()} {key1.get_base64()}",
            f"[127.0.0.1]:20000 {key2.get_name()} {key2.get_base64()}",  # same type: first wins
            f"[127.0.0.1]:20000 {ecdsa.get_name()} {ecdsa.get_base64()} a comment",
            f"host-a,host-b {key2.get_name()} {key2.get_base64()}",
            f"{hashed} {key2.get_name()} {key2.get_base64()}",
            f"host-c ssh-rsa {key1.get_base64()}",  # the blob is not the type it says: skipped
            "garbage",
        ]
    )
    path = tmp_path / "known_hosts"
    path.write_text(text + "\n", encoding="utf-8")
    reference = paramiko.HostKeys(str(path))
    files = transport._KnownHostsFiles()
    names = ("[127.0.0.1]:20000", "host-a", "host-b", "[127.0.0.1]:30000", "host-c", "nobody")
    for name in names:
        ours = {t: base64.b64encode(k.blob).decode() for t, k in files.keys_for(path, name).items()}
        theirs = {t: k.get_base64() for t, k in (reference.lookup(name) or {}).items()}
        assert ours == theirs, name
    assert files.keys_for(path, "[127.0.0.1]:20000")["ssh-ed25519"].fingerprint == (
        transport.fingerprint(key1)
    )
    path.write_text(text + "\nhost-d ssh-ed25519 not-base64!\n", encoding="utf-8")
    assert files.keys_for(path, "host-d") == {}  # paramiko's reader raises on this line
