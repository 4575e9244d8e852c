"""Private key files checked before connecting, so that a missing, unreadable or still
encrypted key is said as such (an SSH library's own attempt ends in a vague "authentication
failed"). paramiko reads the key: it is only imported when a host uses a key file."""

from __future__ import annotations

from pathlib import Path

from mml_tool.errors import TransportError
from mml_tool.secret import Secret


def check_key_file(where: str, key_file: Path, passphrase: Secret | None) -> None:
    """Raise TransportError unless ``key_file`` is a private key ``passphrase`` opens. The
    passphrase never appears in a message."""
    import paramiko
    from paramiko.pkey import UnknownKeyType

    try:
        paramiko.PKey.from_path(key_file)
        return
    except OSError as exc:
        raise TransportError(
            f"{where}: cannot read key_file {key_file} ({exc.strerror}): check the path and "
            "that it is readable by you"
        ) from None
    except TypeError:  # cryptography: "password-protected, but password was not provided"
        if passphrase is None:
            raise TransportError(
                f"{where}: key_file {key_file} is encrypted and no passphrase was given: set "
                "key_passphrase (e.g. ${SSH_KEY_PASSPHRASE}), key_passphrase_file or "
                "key_passphrase_prompt: true in the inventory"
            ) from None
    except (ValueError, paramiko.SSHException, UnknownKeyType) as exc:
        raise TransportError(
            f"{where}: key_file {key_file} is not a private key mml-tool can read "
            f"({type(exc).__name__}): use an OpenSSH or PEM Ed25519, ECDSA or RSA key"
        ) from None
    try:
        # bytes, whatever the stubs say: cryptography's loaders take no str password
        secret = passphrase.reveal().encode("utf-8")
        paramiko.PKey.from_path(key_file, secret)  # type: ignore[arg-type]
    except (OSError, TypeError, ValueError, paramiko.SSHException, UnknownKeyType):
        raise TransportError(
            f"{where}: the passphrase given by key_passphrase does not decrypt key_file "
            f"{key_file}: check it"
        ) from None
