"""The one place the collection's modules meet the mml-tool library.

Modules build their argument spec from ``connection_spec()``, get the host with ``host_of()``
and call ``mml_tool.automation`` through the functions here; any ``MmlToolError`` becomes
``fail_json`` with the library's message (which never carries a secret). Nothing about MML
(framing, login, parsing, locking, auditing) is done here.
"""

from __future__ import annotations

import logging
import shlex
import traceback
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from mml_tool import automation
    from mml_tool.errors import MmlToolError
except ImportError:  # reported by require_library(), with the interpreter to fix
    HAS_MML_TOOL = False
    IMPORT_ERROR = traceback.format_exc()
    MmlToolError = Exception  # type: ignore[assignment,misc]
else:
    HAS_MML_TOOL = True
    IMPORT_ERROR = ""

# The host fields a module may give instead of an inventory (the inventory's own names).
HOST_FIELDS = (
    "hostname",
    "port",
    "transport",
    "username",
    "password",
    "key_file",
    "key_passphrase",
    "known_hosts",
    "trust_on_first_use",
    "ne_name",
    "meid",
    "platform",
    "encoding",
    "connect_timeout",
    "timeout",
)


def connection_spec() -> dict[str, Any]:
    """The argument spec of the connection options (see doc_fragments/connection.py)."""
    return {
        "inventory": {"type": "path"},
        "host": {"type": "str"},
        "hostname": {"type": "str"},
        "port": {"type": "int"},
        "transport": {"type": "str", "choices": ["ssh", "tcp"], "default": "ssh"},
        "username": {"type": "str"},
        "password": {"type": "str", "no_log": True},
        "key_file": {"type": "path"},
        "key_passphrase": {"type": "str", "no_log": True},
        "known_hosts": {"type": "path"},
        "trust_on_first_use": {"type": "bool", "default": False},
        "ne_name": {"type": "str"},
        "meid": {"type": "int"},
        "platform": {"type": "str", "default": "huawei_uap9600"},
        "encoding": {"type": "str", "choices": ["auto", "utf-8", "gb18030"], "default": "auto"},
        "connect_timeout": {"type": "float", "default": 10.0},
        "timeout": {"type": "float", "default": 30.0},
        "templates": {"type": "list", "elements": "path", "default": []},
    }


def new_module(spec: dict[str, Any], **kwargs: Any) -> AnsibleModule:
    """An AnsibleModule with the connection options and ``spec``; fails if mml-tool is absent."""
    module = AnsibleModule(argument_spec={**connection_spec(), **spec}, **kwargs)
    if not HAS_MML_TOOL:
        module.fail_json(
            msg=missing_required_lib(
                "mml-tool",
                reason="install it in the interpreter that runs the module "
                "(ansible_python_interpreter), e.g. the execution environment",
            ),
            exception=IMPORT_ERROR,
        )
    return module


def host_of(module: AnsibleModule) -> Any:
    """The ``HostConfig`` the options name: ``inventory`` + ``host``, or the host fields."""
    return connection_of(module)[0]


def connection_of(module: AnsibleModule) -> tuple[Any, Any | None]:
    """The ``HostConfig`` and its ``Inventory`` (None: the host was given by fields), whose
    ``lock_dir`` and ``audit`` the inventory's other users share."""
    params = module.params
    if params["inventory"]:
        if params["hostname"]:
            module.fail_json(msg="give either inventory (with host) or hostname, not both")
        if not params["host"]:
            module.fail_json(msg="inventory is given but host is not: name the host in it")
        inventory, host = automation.host_from_inventory(Path(params["inventory"]), params["host"])
        return host, inventory
    if not params["hostname"]:
        module.fail_json(
            msg="no host to connect to: give inventory (and host), or hostname, username and "
            "password (or key_file); with the mml_tool.uap9600.inventory plugin the "
            "inventory is found by itself"
        )
    fields = {k: params[k] for k in HOST_FIELDS}
    return automation.host_from_fields(params["host"] or params["hostname"], fields), None


def rollback_command(
    record: str,
    inventory: Any | None,
    *,
    policy: str | None = None,
    audit: Path | str | None = None,
    lock_dir: Path | str | None = None,
) -> str:
    """The ``mml-tool rollback`` command line that undoes a change from its ``record``, with
    what the change used: its inventory, policy, audit trail and, when the inventory sets no
    ``lock_dir`` (else the CLI takes the inventory's), the lock folder the task used."""
    words = ["mml-tool", "rollback", record, "-i"]
    words.append(str(inventory.path) if inventory is not None else "INVENTORY")
    if policy:
        words += ["-p", policy]
    if audit:
        words += ["--audit", str(audit)]
    if lock_dir and (inventory is None or inventory.lock_dir is None):
        words += ["--lock-dir", str(lock_dir)]
    return shlex.join(words)


def template_dirs(module: AnsibleModule) -> list[Path]:
    return [Path(p) for p in module.params["templates"] or []]


class _TaskWarnings(logging.Handler):
    """The library's log warnings (a signature that was not checked, a late answer) as the
    task's warnings: Ansible does not show a module's stderr. Its messages carry no secret."""

    def __init__(self, module: AnsibleModule) -> None:
        super().__init__(logging.WARNING)
        self.module = module

    def emit(self, record: logging.LogRecord) -> None:
        self.module.warn(record.getMessage())


def run(module: AnsibleModule, action: Any, **result: Any) -> Any:
    """``action()``, with an mml-tool error turned into ``fail_json`` (keeping ``result``) and
    the library's log warnings into the task's warnings."""
    handler = _TaskWarnings(module)
    library = logging.getLogger("mml_tool")
    library.addHandler(handler)
    try:
        return action()
    except MmlToolError as exc:
        module.fail_json(msg=str(exc), error_type=type(exc).__name__, **result)
    finally:
        library.removeHandler(handler)
