"""An encrypted SSH key_file takes a passphrase (a secret like the others: ${VAR}, a file or a
prompt, never printed), and the message says so when it is missing. Real keys, generated here,
against the lab's SSH server with public-key authentication."""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path

import pytest
import yaml
from conftest import RunningLab, StartLab, lab_env
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mml_tool.errors import ConfigError, InventoryError, TransportError
from mml_tool.inventory import Inventory, load_inventory
from mml_tool.lab.uap import NodeConfig
from mml_tool.mml.session import MmlSession, Transcript

PASSPHRASE = "Kp-9f3-passphrase"
LST = "LST SFP: ID=P978;"


def write_key(path: Path, private: Ed25519PrivateKey | rsa.RSAPrivateKey, fmt: str) -> str:
    """Write ``private`` encrypted with PASSPHRASE (``fmt`` "plain": not encrypted), mode 0600;
    return its public key line."""
    form = (
        serialization.PrivateFormat.OpenSSH
        if fmt in ("openssh", "plain")
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        form,
        serialization.NoEncryption()
        if fmt == "plain"
        else serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode() + " test@mml-tool"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("keys")
    made = {}
    for name, private, fmt in (
        ("ed25519", Ed25519PrivateKey.generate(), "openssh"),
        ("rsa-pem", rsa.generate_private_key(65537, 2048), "pem"),
        ("stranger", Ed25519PrivateKey.generate(), "openssh"),
        ("plain", Ed25519PrivateKey.generate(), "plain"),
    ):
        path = folder / f"id_{name}"
        made[name] = (path, write_key(path, private, fmt))
    return made


@pytest.fixture(scope="module")
def kl(start_lab: StartLab, keys: dict[str, tuple[Path, str]]) -> RunningLab:
    authorized = [keys["ed25519"][1], keys["rsa-pem"][1], keys["plain"][1]]
    return start_lab([NodeConfig("uap-key", authorized_keys=authorized), NodeConfig("uap-pw")])


def inventory(kl: RunningLab, tmp_path: Path, host: dict[str, object]) -> Path:
    doc = yaml.safe_load(kl.inventory_path.read_text(encoding="utf-8"))
    doc["defaults"]["known_hosts"] = str(kl.inventory_path.parent / "lab_known_hosts")
    doc["defaults"].update(timeout=5, connect_timeout=5)
    doc["hosts"]["uap-key"].update(host)
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def load(kl: RunningLab, path: Path, **env: str) -> Inventory:
    return load_inventory(path, env={**lab_env(kl.inventory_path), **env}, prompt=None)


@pytest.mark.parametrize("key", ["ed25519", "rsa-pem"])
def test_an_encrypted_key_with_its_passphrase_logs_in(
    kl: RunningLab, keys: dict[str, tuple[Path, str]], tmp_path: Path, key: str
) -> None:
    path = inventory(
        kl,
        tmp_path,
        {"password": None, "key_file": str(keys[key][0]), "key_passphrase": "${KEY_PASS}"},
    )
    host = load(kl, path, KEY_PASS=PASSPHRASE).hosts["uap-key"]
    assert host.password is None and host.key_passphrase is not None
    transcript = Transcript()
    with MmlSession(host, transcript=transcript) as s:
        assert s.run(LST).records[0]["Bit value"] == "1"
    assert "LGI" not in transcript.text()  # the key was the login
    assert PASSPHRASE not in repr(host) + transcript.text()


def test_a_key_without_passphrase_still_logs_in(
    kl: RunningLab, keys: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    path = inventory(kl, tmp_path, {"password": None, "key_file": str(keys["plain"][0])})
    with MmlSession(load(kl, path).hosts["uap-key"]) as s:
        assert s.run(LST).ok


def test_a_missing_key_file_says_so(kl: RunningLab, tmp_path: Path) -> None:
    path = inventory(kl, tmp_path, {"password": None, "key_file": "no-such-key"})
    with pytest.raises(TransportError, match=r"cannot read key_file .*no-such-key"):
        MmlSession(load(kl, path).hosts["uap-key"]).open()


def test_the_passphrase_from_a_file_or_a_prompt(
    kl: RunningLab, keys: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    key_file = str(keys["ed25519"][0])
    (tmp_path / "pass.txt").write_text(PASSPHRASE + "\n", encoding="utf-8")
    from_file = inventory(
        kl, tmp_path, {"password": None, "key_file": key_file, "key_passphrase_file": "pass.txt"}
    )
    with MmlSession(load(kl, from_file).hosts["uap-key"]) as s:
        assert s.run(LST).ok
    prompted = inventory(
        kl, tmp_path, {"password": None, "key_file": key_file, "key_passphrase_prompt": True}
    )
    questions: list[str] = []

    def prompt(question: str) -> str:
        questions.append(question)
        return PASSPHRASE

    env = lab_env(kl.inventory_path)
    host = load_inventory(prompted, env=env, prompt=prompt).hosts["uap-key"]
    assert questions and "passphrase" in questions[0] and PASSPHRASE not in questions[0]
    with MmlSession(host) as s:
        assert s.run(LST).ok
    with pytest.raises(InventoryError, match="asks for the passphrase on the terminal"):
        load(kl, prompted)


def test_a_missing_passphrase_says_so(
    kl: RunningLab, keys: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    path = inventory(kl, tmp_path, {"password": None, "key_file": str(keys["ed25519"][0])})
    host = load(kl, path).hosts["uap-key"]
    with pytest.raises(TransportError) as info:
        MmlSession(host).open()
    message = str(info.value)
    assert "is encrypted and no passphrase was given" in message
    assert "key_passphrase" in message and "uap-key" in message


def test_a_wrong_passphrase_says_so_and_never_shows_it(
    kl: RunningLab,
    keys: dict[str, tuple[Path, str]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-passphrase-77"
    path = inventory(
        kl,
        tmp_path,
        {"password": None, "key_file": str(keys["ed25519"][0]), "key_passphrase": wrong},
    )
    with pytest.raises(TransportError, match="does not decrypt key_file") as info:
        MmlSession(load(kl, path).hosts["uap-key"]).open()
    texts = [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
    assert all(wrong not in t and PASSPHRASE not in t for t in [*texts, caplog.text])


def test_a_key_the_node_does_not_know_is_refused(
    kl: RunningLab, keys: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    path = inventory(
        kl,
        tmp_path,
        {"password": None, "key_file": str(keys["stranger"][0]), "key_passphrase": PASSPHRASE},
    )
    with pytest.raises(TransportError, match="SSH authentication failed"):
        MmlSession(load(kl, path).hosts["uap-key"]).open()


def test_a_jump_host_with_an_encrypted_key(
    kl: RunningLab, keys: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    """ssh-tunnel: the key (and passphrase) open the jump host; LGI logs in over the tunnel."""
    node = kl.lab.node("uap-key")
    path = inventory(
        kl,
        tmp_path,
        {
            "transport": "ssh-tunnel",
            "port": node.tcp_port,
            "jump": {
                "hostname": "127.0.0.1",
                "port": node.ssh_port,
                "key_file": str(keys["rsa-pem"][0]),
                "key_passphrase": "${KEY_PASS}",
            },
        },
    )
    host = load(kl, path, KEY_PASS=PASSPHRASE).hosts["uap-key"]
    assert host.jump is not None and host.jump.key_passphrase is not None
    assert host.jump.password is None
    with MmlSession(host) as s:
        assert s.run(LST).ok
    assert host.jump.key_passphrase in host.secrets()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"key_file": "k", "key_passphrase": "x", "key_passphrase_file": "f"},
            "key_passphrase and key_passphrase_file are both set",
        ),
        ({"key_passphrase": "x"}, "key_passphrase is set but key_file is not"),
        (
            {"key_file": "k", "key_passphrase": "${NOPE_PASS}"},
            "environment variable NOPE_PASS is not set",
        ),
    ],
)
def test_passphrase_fields_are_checked(
    kl: RunningLab, tmp_path: Path, fields: dict[str, object], message: str
) -> None:
    path = inventory(kl, tmp_path, fields)
    with pytest.raises(InventoryError, match=message) as info:
        load(kl, path)
    assert "uap-key" in str(info.value)


def test_a_bad_authorized_key_line_is_refused() -> None:
    with pytest.raises(ConfigError, match="authorized_keys line 1 is not an OpenSSH public key"):
        NodeConfig("n", authorized_keys=["ssh-ed25519 not-base64!"])
