"""A tiny hostile MML server on 127.0.0.1: answers LGI, REG NE, USE ME and LGO like an element,
and whatever else as a test scripts it (odd digits, another NE's header, a second answer, a
serial that goes backwards, a login error that repeats the password).

The lab simulator (``mml_tool.lab``) is the faithful element; this server exists only for
answers no honest element gives, so it stays small: one thread per connection, commands split
on ``;``, every frame rendered by ``frame()``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

NE = "UAP-H"


def frame(
    echo: str,
    serial: int | str,
    *,
    retcode: int = 0,
    message: str = "Operation succeeded",
    body: str = "",
    ne: str = NE,
    continued: bool = False,
) -> str:
    """One report as the lab renders it (CRLF); ``serial`` may be text (``HWHandle=174``)."""
    lines = [
        f"+++    {ne}        2026-01-01 00:00:00",
        f"O&M    #{serial}",
        f"%%{echo}%%",
        f"RETCODE = {retcode}  {message}",
        "",
    ]
    if body:
        lines += [*body.strip("\n").split("\n"), ""]
    if continued:
        lines += ["To be continued...", ""]
    lines.append("---    END")
    return "\r\n".join(lines) + "\r\n"


def sfp_table(bit_value: str, pid: str = "P978", bit: str = "0") -> str:
    """The per-bit table body of ``LST SFP`` with one row, values as given (odd digits too)."""
    return (
        "Software parameter\n"
        "------------------\n"
        "Parameter ID  Bit  Bit value\n"
        "\n"
        f"{pid}          {bit}    {bit_value}\n"
        "(Number of results = 1)\n"
    )


@dataclass
class Connection:
    """What one connection has seen so far; ``serial`` is the next O&M serial."""

    serial: int = 100
    commands: list[str] = field(default_factory=list)

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial - 1


Answer = Callable[[Connection, str], str | None]  # None: the standard answer


class HostileServer:
    """``answer(conn, command)`` returns the text to send, or None for the element's usual
    answer (LGI/REG NE/USE ME/LGO accepted, anything else RETCODE 1001)."""

    def __init__(self, answer: Answer, *, ne: str = NE) -> None:
        self.answer = answer
        self.ne = ne
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._closing = threading.Event()
        self._accepter = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> HostileServer:
        self._accepter.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        self._sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._accepter.join(5)
        for thread in self._threads:
            thread.join(5)

    def standard(self, conn: Connection, command: str) -> str:
        verb = command.split(":", 1)[0].split()[0].upper() if command.strip() else ""
        if verb in ("LGI", "LGO", "REG", "USE", "UNREG"):
            return frame(command, conn.next_serial(), ne=self.ne)
        return frame(
            command, conn.next_serial(), retcode=1001, message="Command not supported", ne=self.ne
        )

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        conn = Connection()
        pending = ""
        with contextlib.suppress(OSError):
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                pending += data.decode("utf-8", "replace")
                while ";" in pending:
                    text, pending = pending.split(";", 1)
                    command = text.strip() + ";"
                    pending = pending.lstrip("\r\n")
                    conn.commands.append(command)
                    reply = self.answer(conn, command)
                    if reply is None:
                        reply = self.standard(conn, command)
                    sock.sendall(reply.encode("utf-8"))
                    if command.upper().startswith("LGO"):
                        return


def inventory_with_hostile(lab_inventory: Path, server: HostileServer, path: Path) -> Path:
    """The lab inventory at ``lab_inventory`` with ``server`` beside its nodes as host ``odd-1``
    (tcp, NE ``NE``), 3 s timeouts, written to ``path``."""
    doc = yaml.safe_load(lab_inventory.read_text(encoding="utf-8"))
    doc["defaults"].update(timeout=3, connect_timeout=3)
    doc["defaults"]["known_hosts"] = str(lab_inventory.parent / "lab_known_hosts")
    doc["hosts"]["odd-1"] = {
        "transport": "tcp",
        "hostname": "127.0.0.1",
        "port": server.port,
        "ne_name": NE,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
