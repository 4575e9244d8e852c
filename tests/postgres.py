"""A real PostgreSQL server for the history tests: ``initdb`` + ``pg_ctl`` in a temporary
folder, listening on 127.0.0.1 on a free port, with password (SCRAM) authentication.

PostgreSQL refuses to run as root, so as root the server runs as ``nobody`` (``runuser``) in a
folder it owns. The binaries are looked up on PATH, then in Debian's
``/usr/lib/postgresql/*/bin``; ``.ci/run`` installs them when missing. ``find_bin_dir``
returns None only when PostgreSQL cannot be had here; the tests then skip and say why.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "mml"


def find_bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(candidate).parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    bin_dir: Path
    folder: Path
    port: int
    password: str
    run_as: list[str]

    @property
    def url(self) -> str:
        """A URL with the password in ${MML_TEST_PG_PASSWORD}, as an operator writes it."""
        return f"postgresql://{USER}:${{MML_TEST_PG_PASSWORD}}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.run_as, *args], check=True, capture_output=True, timeout=60)

    def stop(self) -> None:
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.folder / "data"),
                      "-m", "immediate", "-w")  # fmt: skip
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def start(bin_dir: Path) -> PostgresServer:
    folder = Path(tempfile.mkdtemp(prefix="mml-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse root
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        run_as = ["runuser", "-u", "nobody", "--"]
    password = "pg-" + secrets.token_urlsafe(12)
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n")
    if run_as:
        os.chown(pwfile, pwd.getpwnam("nobody").pw_uid, -1)
    server = PostgresServer(bin_dir, folder, _free_port(), password, run_as)
    try:
        server._run(str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", USER,
                    "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                    "--no-sync")  # fmt: skip
        pwfile.unlink()
        options = f"-h 127.0.0.1 -p {server.port} -k {folder} -c fsync=off"
        server._run(str(bin_dir / "pg_ctl"), "start", "-D", str(folder / "data"),
                    "-o", options, "-l", str(folder / "log"), "-w", "-t", "30")  # fmt: skip
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return server
