"""The MML commands the UAP simulator answers: LGI, LGO, REG/UNREG NE, USE ME, LST/MOD SFP and
LST OFI, each checked as the device checks it and answered with reports."""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mml_tool.lab.frames import Block, Report
from mml_tool.lab.uap.commands import (
    _chinese_paging,
    _Command,
)
from mml_tool.lab.uap.config import (
    PARAM_BITS,
    PID_RE,
    RC_BAD_LOGIN,
    RC_BAD_VALUE,
    RC_MISSING,
    RC_NO_SUCH_NE,
    RC_NO_SUCH_SFP,
    RC_NOT_LOGGED_IN,
    RC_OK,
    RC_UNKNOWN_NAME,
    RC_UNSUPPORTED,
    RC_USER_LOCKED,
)
from mml_tool.lab.uap.state import UapNode, _pid_key
from mml_tool.secret import Secret


@dataclass
class _Outcome:
    reports: list[Report]
    close_after: bool = False
    drop_now: bool = False  # close without sending anything


class _MmlCommands:
    """The command handlers of ``MmlConnection``; the attributes below are its state."""

    node: UapNode
    username: str
    password: Secret
    logged_in: bool
    codes: dict[int, str]
    labels: dict[str, str]

    def _ok(self, echo: str, blocks: Sequence[Block] = (), empty: str = "") -> Report:
        return Report(
            self.node.config.ne_name, 0, echo, RC_OK, self.codes[RC_OK], tuple(blocks), empty
        )

    def _fail(self, echo: str, code: int, detail: str = "") -> Report:
        message = self.codes[code].format(detail).strip()
        return Report(self.node.config.ne_name, 0, echo, code, message)

    def _execute(self, cmd: _Command, echo: str) -> _Outcome:
        if cmd.key == "LGI":
            return _Outcome([self._login(cmd, echo)])
        if cmd.key == "LGO":  # always accepted, even before LGI: clients log out after errors
            self.logged_in = False
            return _Outcome([self._ok(echo)], close_after=True)
        if not self.logged_in:
            return _Outcome([self._fail(echo, RC_NOT_LOGGED_IN)])
        handler = {
            "REG NE": self._reg_ne,
            "UNREG NE": self._unreg_ne,
            "USE ME": self._use_me,
            "LST SFP": self._lst_sfp,
            "MOD SFP": self._mod_sfp,
            "LST OFI": self._lst_ofi,
        }.get(cmd.key)
        if handler is None:
            return _Outcome([self._fail(echo, RC_UNSUPPORTED, cmd.key)])
        return handler(cmd, echo)

    def _check_names(self, cmd: _Command, allowed: Iterable[str]) -> str | None:
        allowed = set(allowed)
        for name in cmd.params:
            if name not in allowed:
                return name
        return None

    def _login(self, cmd: _Command, echo: str) -> Report:
        bad = self._check_names(cmd, ("OP", "PWD", "DN"))
        if bad:
            return self._fail(echo, RC_UNKNOWN_NAME, bad)
        for name in ("OP", "PWD"):
            if name not in cmd.params:
                return self._fail(echo, RC_MISSING, name)
        if self.node.config.faults.login_refused:
            self.logged_in = False
            return self._fail(echo, RC_USER_LOCKED)
        user_ok = hmac.compare_digest(cmd.params["OP"].encode(), self.username.encode())
        pwd_ok = hmac.compare_digest(cmd.params["PWD"].encode(), self.password.reveal().encode())
        if not (user_ok and pwd_ok):
            self.logged_in = False
            return self._fail(echo, RC_BAD_LOGIN)
        self.logged_in = True
        return self._ok(echo)

    def _reg_ne(self, cmd: _Command, echo: str) -> _Outcome:
        bad = self._check_names(cmd, ("NAME",))
        if bad:
            return _Outcome([self._fail(echo, RC_UNKNOWN_NAME, bad)])
        name = cmd.params.get("NAME")
        if name is None:
            return _Outcome([self._fail(echo, RC_MISSING, "NAME")])
        if name.upper() != self.node.config.ne_name.upper():
            return _Outcome([self._fail(echo, RC_NO_SUCH_NE, name)])
        return _Outcome([self._ok(echo)])

    def _unreg_ne(self, cmd: _Command, echo: str) -> _Outcome:
        bad = self._check_names(cmd, ("NAME",))
        if bad:
            return _Outcome([self._fail(echo, RC_UNKNOWN_NAME, bad)])
        return _Outcome([self._ok(echo)])

    def _use_me(self, cmd: _Command, echo: str) -> _Outcome:
        bad = self._check_names(cmd, ("MEID",))
        if bad:
            return _Outcome([self._fail(echo, RC_UNKNOWN_NAME, bad)])
        meid = cmd.params.get("MEID")
        if meid is None:
            return _Outcome([self._fail(echo, RC_MISSING, "MEID")])
        if not (meid.isascii() and meid.isdigit()):
            return _Outcome([self._fail(echo, RC_BAD_VALUE, "MEID: a number is expected")])
        if int(meid) != self.node.config.meid:
            return _Outcome([self._fail(echo, RC_NO_SUCH_NE, f"MEID={meid}")])
        return _Outcome([self._ok(echo)])

    def _bit_param(self, cmd: _Command, name: str) -> int | str:
        """The integer value of a bit-like parameter, or the error detail."""
        raw = cmd.params[name]
        if not (raw.isascii() and raw.isdigit()):  # int() would crash on '²', read '٠' as 0
            return f"{name}: a number is expected"
        value = int(raw)
        limit = PARAM_BITS - 1 if name == "BIT" else 1
        if value > limit:
            return f"{name}: must be 0..{limit}"
        return value

    def _lst_sfp(self, cmd: _Command, echo: str) -> _Outcome:
        bad = self._check_names(cmd, ("ID", "BIT"))
        if bad:
            return _Outcome([self._fail(echo, RC_UNKNOWN_NAME, bad)])
        bit: int | None = None
        if "BIT" in cmd.params:
            parsed = self._bit_param(cmd, "BIT")
            if isinstance(parsed, str):
                return _Outcome([self._fail(echo, RC_BAD_VALUE, parsed)])
            bit = parsed
        store = self.node.store
        if "ID" in cmd.params:
            pid = cmd.params["ID"].upper()
            if not PID_RE.fullmatch(pid):
                return _Outcome([self._fail(echo, RC_BAD_VALUE, "ID: expected Pnnn, e.g. P978")])
            value = store.get(pid)
            if value is None:
                if self.node.config.unknown_param == "empty":
                    return _Outcome([self._ok(echo, empty=self.labels["empty"])])
                return _Outcome([self._fail(echo, RC_NO_SUCH_SFP, pid)])
            return _Outcome([self._ok(echo, self._sfp_blocks([(pid, value)], bit))])
        snapshot = store.snapshot()
        items = [(pid, snapshot[pid]) for pid in sorted(snapshot, key=_pid_key)]
        if not items:
            return _Outcome([self._ok(echo, empty=self.labels["empty"])])
        size = self.node.config.page_size
        pages = [items[i : i + size] for i in range(0, len(items), size)]
        reports = []
        for i, page in enumerate(pages):
            report = self._ok(echo, self._sfp_blocks(page, bit))
            reports.append(dataclasses.replace(report, continued=i < len(pages) - 1))
        if self.node.config.paging != "en":
            reports = _chinese_paging(reports, bare=self.node.config.paging == "zh-bare")
        return _Outcome(reports)

    def _sfp_blocks(self, items: Sequence[tuple[str, int]], bit: int | None) -> list[Block]:
        lab = self.labels
        layout = self.node.config.layout
        bits = [bit] if bit is not None else list(range(PARAM_BITS))

        def block(records: list[list[tuple[str, str]]], how: str) -> Block:
            return Block(lab["title"], records, how, lab["count"])

        if layout == "value":
            out = []
            for pid, value in items:
                record = [(lab["id"], pid), (lab["value"], str(value))]
                if self.node.config.hex_line:
                    record.append((lab["hex"], f"0x{value:04X}"))
                out.append(block([record], "vertical"))
            return out
        per_bit = [
            [(lab["id"], pid), (lab["bit"], str(b)), (lab["bitval"], str((value >> b) & 1))]
            for pid, value in items
            for b in bits
        ]
        if layout == "table":
            return [block(per_bit, "table")]
        return [block([record], "vertical") for record in per_bit]

    def _lst_ofi(self, cmd: _Command, echo: str) -> _Outcome:
        bad = self._check_names(cmd, ("ONO",))
        if bad:
            return _Outcome([self._fail(echo, RC_UNKNOWN_NAME, bad)])
        offices = sorted(self.node.config.offices, key=lambda o: o.number)
        if "ONO" in cmd.params:
            raw = cmd.params["ONO"]
            if not (raw.isascii() and raw.isdigit()) or int(raw) > 65535:
                return _Outcome([self._fail(echo, RC_BAD_VALUE, "ONO: a number 0..65535")])
            offices = [o for o in offices if o.number == int(raw)]
        if not offices:
            return _Outcome([self._ok(echo, empty=self.labels["empty"])])
        lab = self.labels
        rows = [
            [
                (lab["ofi_number"], str(o.number)),
                (lab["ofi_name"], o.name),
                (lab["ofi_peer"], o.peer_type),
                (lab["ofi_calls"], str(o.max_calls)),
                (lab["ofi_status"], lab[o.status]),
            ]
            for o in offices
        ]
        return _Outcome([self._ok(echo, [Block(lab["ofi_title"], rows, "table", lab["count"])])])

    def _mod_sfp(self, cmd: _Command, echo: str) -> _Outcome:
        bad = self._check_names(cmd, ("ID", "MODTYPE", "BIT", "BITVAL"))
        if bad:
            return _Outcome([self._fail(echo, RC_UNKNOWN_NAME, bad)])
        if "ID" not in cmd.params:
            return _Outcome([self._fail(echo, RC_MISSING, "ID")])
        pid = cmd.params["ID"].upper()
        if not PID_RE.fullmatch(pid):
            return _Outcome([self._fail(echo, RC_BAD_VALUE, "ID: expected Pnnn, e.g. P978")])
        if self.node.store.get(pid) is None:
            return _Outcome([self._fail(echo, RC_NO_SUCH_SFP, pid)])
        if "MODTYPE" not in cmd.params:
            return _Outcome([self._fail(echo, RC_MISSING, "MODTYPE")])
        if cmd.params["MODTYPE"].upper() != "P1":
            return _Outcome([self._fail(echo, RC_BAD_VALUE, "MODTYPE: only P1 is supported")])
        values: dict[str, int] = {}
        for name in ("BIT", "BITVAL"):
            if name not in cmd.params:
                return _Outcome([self._fail(echo, RC_MISSING, name)])
            parsed = self._bit_param(cmd, name)
            if isinstance(parsed, str):
                return _Outcome([self._fail(echo, RC_BAD_VALUE, parsed)])
            values[name] = parsed
        self.node.store.set_bit(pid, values["BIT"], values["BITVAL"])
        if self.node.config.faults.drop_after_mod and self.node.take_fault():
            return _Outcome([], drop_now=True)
        return _Outcome([self._ok(echo)])
