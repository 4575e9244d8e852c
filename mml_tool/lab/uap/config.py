"""Node and fault settings of the UAP simulator, and the constants of its MML dialect."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from paramiko.pkey import UnknownKeyType

from mml_tool.errors import ConfigError

PARAM_BITS = 16
# Server-side paramiko transports log here. Clients resetting a connection is routine in a lab
# (and the point of several faults), so only CRITICAL passes unless a user lowers the level.
SSH_LOG_NAME = "mml_tool.lab.uap.ssh"
logging.getLogger(SSH_LOG_NAME).setLevel(logging.CRITICAL)
LAYOUTS = ("table", "vertical", "value")
LANGUAGES = ("en", "zh")
ENCODINGS = ("utf-8", "gb18030")
PAGINGS = ("en", "zh", "zh-bare")
ZH_MORE_LINE = "仍有后续报告输出"
PID_RE = re.compile(r"P[0-9]{1,5}")
OFFICE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
OFFICE_STATUSES = ("normal", "blocked", "faulty")
OFFICE_PEER_TYPES = ("CCGW", "SOFTX", "SIP", "PSTN")
ECHO_SERIAL_TOKEN = "{serial}"
_ECHO_TOKEN_RE = re.compile(r"\{[^{}]*\}")
MAX_COMMAND_CHARS = 4096

RC_OK = 0
RC_NOT_LOGGED_IN = 1
RC_UNSUPPORTED = 1001
RC_FORMAT = 1002
RC_MISSING = 1003
RC_BAD_VALUE = 1004
RC_UNKNOWN_NAME = 1005
RC_NO_SUCH_SFP = 1006
RC_BAD_LOGIN = 1007
RC_USER_LOCKED = 1008
RC_NO_SUCH_NE = 1009

RETCODES_EN: dict[int, str] = {
    RC_OK: "Operation succeeded",
    RC_NOT_LOGGED_IN: "Please log in first",
    RC_UNSUPPORTED: "Command not supported: {}",
    RC_FORMAT: "Invalid command format: {}",
    RC_MISSING: "Missing mandatory parameter: {}",
    RC_BAD_VALUE: "Invalid value of parameter {}",
    RC_UNKNOWN_NAME: "Parameter {} is not supported by this command",
    RC_NO_SUCH_SFP: "Software parameter {} does not exist",
    RC_BAD_LOGIN: "Incorrect user name or password",
    RC_USER_LOCKED: "The user is locked. Contact the administrator",
    RC_NO_SUCH_NE: "NE {} does not exist",
}
RETCODES_ZH: dict[int, str] = {
    RC_OK: "操作成功",
    RC_NOT_LOGGED_IN: "请先登录",
    RC_UNSUPPORTED: "不支持该命令: {}",
    RC_FORMAT: "命令格式错误: {}",
    RC_MISSING: "缺少必选参数: {}",
    RC_BAD_VALUE: "参数取值错误 {}",
    RC_UNKNOWN_NAME: "该命令不支持参数 {}",
    RC_NO_SUCH_SFP: "软件参数 {} 不存在",
    RC_BAD_LOGIN: "用户名或密码错误",
    RC_USER_LOCKED: "用户已被锁定, 请联系管理员",
    RC_NO_SUCH_NE: "网元 {} 不存在",
}

_LABELS = {
    "en": {
        "title": "Software parameter",
        "id": "Parameter ID",
        "bit": "Bit",
        "bitval": "Bit value",
        "value": "Parameter value",
        "hex": "Hexadecimal value",
        "count": "Number of results",
        "empty": "No matching result is found",
        "ofi_title": "Office direction",
        "ofi_number": "Office direction number",
        "ofi_name": "Office direction name",
        "ofi_peer": "Peer type",
        "ofi_calls": "Maximum calls",
        "ofi_status": "Status",
        "normal": "Normal",
        "blocked": "Blocked",
        "faulty": "Faulty",
    },
    "zh": {
        "title": "软件参数",
        "id": "软参编号",
        "bit": "比特位",
        "bitval": "比特位值",
        "value": "参数值",
        "hex": "十六进制值",
        "count": "结果个数",
        "empty": "没有查到相应的结果",
        "ofi_title": "局向",
        "ofi_number": "局向号",
        "ofi_name": "局向名",
        "ofi_peer": "对端类型",
        "ofi_calls": "最大呼叫数",
        "ofi_status": "状态",
        "normal": "正常",
        "blocked": "闭塞",
        "faulty": "故障",
    },
}

# A plausible UAP9600 software-parameter set (values invented; only P978's meaning is public).
_DEFAULT_VALUES = (
    0, 1, 0, 3, 0, 16, 255, 0, 1, 0, 2, 0, 0, 8, 1, 0, 100, 0, 5, 0,
    0, 4, 0, 1, 30, 0, 0, 64, 1, 0, 12, 0, 0, 1, 0, 7, 0, 0, 3, 0,
)  # fmt: skip


def default_params() -> dict[str, int]:
    """P001..P040 with assorted values, plus P978 = 1 (bit 0 set: one-way video NOT allowed)."""
    params = {f"P{i:03d}": v for i, v in enumerate(_DEFAULT_VALUES, start=1)}
    params["P917"] = 8192
    params["P978"] = 1
    return params


@dataclass(frozen=True)
class OfficeConfig:
    """One office direction a node lists with ``LST OFI`` (module docstring of the package)."""

    number: int
    name: str
    peer_type: str = "CCGW"  # CCGW | SOFTX | SIP | PSTN
    max_calls: int = 120
    status: str = "normal"  # normal | blocked | faulty

    def check(self, node: str) -> None:
        where = f"node {node}: office direction {self.number!r}"
        if isinstance(self.number, bool) or not isinstance(self.number, int):
            raise ConfigError(f"{where}: number must be an integer")
        if not 0 <= self.number <= 65535:
            raise ConfigError(f"{where}: number must be in 0..65535")
        if not isinstance(self.name, str) or not OFFICE_NAME_RE.fullmatch(self.name):
            raise ConfigError(
                f"{where}: name must be 1..32 letters, digits, '_', '.' or '-' (no spaces)"
            )
        if self.peer_type not in OFFICE_PEER_TYPES:
            raise ConfigError(f"{where}: peer_type must be one of {', '.join(OFFICE_PEER_TYPES)}")
        if isinstance(self.max_calls, bool) or not isinstance(self.max_calls, int):
            raise ConfigError(f"{where}: max_calls must be an integer")
        if not 0 <= self.max_calls <= 65535:
            raise ConfigError(f"{where}: max_calls must be in 0..65535")
        if self.status not in OFFICE_STATUSES:
            raise ConfigError(f"{where}: status must be one of {', '.join(OFFICE_STATUSES)}")


def default_offices() -> tuple[OfficeConfig, ...]:
    """Office directions a plausible UAP9600 lists (invented: no public UAP9600 reply exists)."""
    return (
        OfficeConfig(1, "TO-CCGW-1", "CCGW", 480, "normal"),
        OfficeConfig(2, "TO-CCGW-2", "CCGW", 480, "normal"),
        OfficeConfig(10, "TO-SOFTX-A", "SOFTX", 960, "normal"),
        OfficeConfig(20, "TO-PSTN-GW", "PSTN", 240, "blocked"),
    )


@dataclass
class FaultConfig:
    """Faults of one node; see the module docstring for what each one does."""

    latency: float = 0.0
    drop_after: int | None = None
    drop_mid_response: str | None = None
    garbage_reply: str | None = None
    never_end: str | None = None
    alarms: bool = False
    login_refused: bool = False
    drop_after_mod: bool = False
    times: int | None = None

    def __post_init__(self) -> None:
        if self.latency < 0:
            raise ConfigError("faults.latency must be >= 0 seconds")
        if self.drop_after is not None and self.drop_after < 1:
            raise ConfigError("faults.drop_after must be a positive number of commands")
        if self.times is not None and self.times < 0:
            raise ConfigError("faults.times must be >= 0 (or unset for every time)")


@dataclass
class NodeConfig:
    """One simulated UAP9600 node."""

    name: str
    ne_name: str = ""  # "" -> name upper-cased
    layout: str = "table"
    language: str = "en"
    params: dict[str, int] = field(default_factory=default_params)
    faults: FaultConfig = field(default_factory=FaultConfig)
    state_file: Path | None = None
    meid: int = 1
    unknown_param: str = "error"  # "error" (RETCODE 1006) | "empty" (No matching result)
    hex_line: bool = False
    page_size: int = 20
    ssh_echo: bool = False
    serial_start: int | None = None
    echo_prefix: str = ""  # before the echoed command; "{serial}" -> a running number
    authorized_keys: Sequence[str] = ()  # OpenSSH public key lines accepted for SSH
    encoding: str = "utf-8"  # utf-8 | gb18030 (what Chinese-language elements send)
    paging: str = "en"  # en | zh | zh-bare (markers and later pages of LST SFP:;)
    offices: Sequence[OfficeConfig] = field(default_factory=default_offices)  # LST OFI

    def __post_init__(self) -> None:
        if not self.ne_name:
            self.ne_name = self.name.upper()
        self._check_echo_prefix()
        self.authorized_keys = tuple(self.authorized_keys)
        self.public_keys()  # refuse a bad line now, not at the first connection
        self._check_choices()
        self.offices = tuple(self.offices)
        self._check_offices()
        self._check_params()

    def _check_choices(self) -> None:
        """The settings that take one of a few values."""
        if self.layout not in LAYOUTS:
            raise ConfigError(f"node {self.name}: layout must be one of {', '.join(LAYOUTS)}")
        if self.language not in LANGUAGES:
            raise ConfigError(f"node {self.name}: language must be one of {', '.join(LANGUAGES)}")
        if self.encoding not in ENCODINGS:
            raise ConfigError(f"node {self.name}: encoding must be one of {', '.join(ENCODINGS)}")
        if self.paging not in PAGINGS:
            raise ConfigError(f"node {self.name}: paging must be one of {', '.join(PAGINGS)}")
        if self.unknown_param not in ("error", "empty"):
            raise ConfigError(f"node {self.name}: unknown_param must be 'error' or 'empty'")
        if self.page_size < 1:
            raise ConfigError(f"node {self.name}: page_size must be >= 1")

    def _check_offices(self) -> None:
        numbers = set()
        for office in self.offices:
            office.check(self.name)
            if office.number in numbers:
                raise ConfigError(f"node {self.name}: office direction {office.number} twice")
            numbers.add(office.number)

    def _check_params(self) -> None:
        for pid, value in self.params.items():
            if not PID_RE.fullmatch(pid):
                raise ConfigError(f"node {self.name}: parameter id {pid!r} must look like P978")
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"node {self.name}: {pid} must be an integer")
            if not 0 <= value < 1 << PARAM_BITS:
                raise ConfigError(f"node {self.name}: {pid} must be in 0..{(1 << PARAM_BITS) - 1}")

    def public_keys(self) -> list[paramiko.PKey]:
        """``authorized_keys`` parsed (ConfigError naming the line that is not a key)."""
        keys = []
        for number, line in enumerate(self.authorized_keys, start=1):
            parts = line.split() if isinstance(line, str) else []
            try:
                keys.append(paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1])))
            except (IndexError, ValueError, paramiko.SSHException, UnknownKeyType):
                raise ConfigError(
                    f"node {self.name}: authorized_keys line {number} is not an OpenSSH public "
                    "key ('ssh-ed25519 AAAA... comment')"
                ) from None
        return keys

    def _check_echo_prefix(self) -> None:
        prefix = self.echo_prefix
        if not isinstance(prefix, str):
            raise ConfigError(
                f"node {self.name}: echo_prefix must be a string, not {type(prefix).__name__} "
                f'(quote it in LAB.yaml: echo_prefix: "{ECHO_SERIAL_TOKEN}")'
            )
        if "%%" in prefix or any(ch < " " for ch in prefix):
            raise ConfigError(
                f"node {self.name}: echo_prefix must not hold '%%', a line break or a control "
                "character"
            )
        for token in _ECHO_TOKEN_RE.findall(prefix):
            if token != ECHO_SERIAL_TOKEN:
                raise ConfigError(
                    f"node {self.name}: echo_prefix: unknown token {token!r} "
                    f"(only {ECHO_SERIAL_TOKEN} is expanded)"
                )
