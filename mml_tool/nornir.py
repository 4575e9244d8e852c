"""Nornir integration: the ``mml`` connection plugin and task functions (``pip install
mml-tool[nornir]``).

The connection plugin is registered under the entry point group
``nornir.plugins.connections`` as ``mml``. A Nornir host gives ``hostname``, ``port``,
``username``, ``password`` and ``platform`` (default ``huawei_uap9600``); every other field of
an mml-tool host (``transport``, ``known_hosts``, ``key_file``, ``ne_name``, ``meid``,
``encoding``, timeouts, ...) goes under ``connection_options["mml"].extras``, and is checked as
the inventory loader checks it::

    hosts.yaml
      uap-1:
        hostname: 127.0.0.1
        port: 2222
        username: admin
        password: secret
        platform: huawei_uap9600
        connection_options:
          mml:
            extras: {known_hosts: lab/lab_known_hosts, ne_name: UAP-1}

    from nornir import InitNornir
    from mml_tool.nornir import mml_command, mml_check, mml_set_bit
    nr = InitNornir(inventory={"plugin": "SimpleInventory", "options": {...}})
    nr.run(task=mml_set_bit, parameter="P978", bit=0, value=0, change_id="CHG0042")

Tasks return nornir ``Result``s and call the library through ``mml_tool.automation``:
``mml_command`` runs one read-only command, ``mml_check`` a policy's findings (``failed`` when
the host could not be read), ``mml_set_bit`` changes a bit the way ``apply`` does (the host's
lock, re-read, audit, apply record, no blind resend; dry-run aware, with ``changed`` and
``diff``).

Plan signing: when the Nornir inventory sets ``plan_signing_key`` (the key's text) or
``plan_signing_key_file`` (a file holding it; relative to the current folder) in the data of a
host, one of its groups or the defaults, ``mml_set_bit`` changes nothing without a signed plan
(apply one with ``mml-tool apply PLAN``) unless the task passes ``allow_unsigned=True``; its
audit lines then say so. A dry run is not concerned::

    defaults.yaml
      data:
        plan_signing_key_file: /etc/mml-tool/plan.key
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

from nornir.core.configuration import Config
from nornir.core.task import Result, Task

from mml_tool import automation
from mml_tool.inventory import HostConfig
from mml_tool.mml.session import MmlSession
from mml_tool.policy import Policy

CONNECTION_NAME = "mml"
DEFAULT_PLATFORM = "huawei_uap9600"


class MmlNode:
    """What ``host.get_connection("mml", ...)`` returns: the host's checked configuration and
    its MML session, opened when first needed and again after it was closed or broke."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self._session: MmlSession | None = None

    def session(self) -> MmlSession:
        if self._session is None or not self._session.healthy:
            self.close()
            session = MmlSession(self.config)
            session.open()
            self._session = session
        return self._session

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()


class MmlConnection:
    """Nornir connection plugin ``mml``: logs in to MML (SSH or TCP) when opened."""

    def __init__(self) -> None:
        self._node: MmlNode | None = None

    def open(
        self,
        hostname: str | None,
        username: str | None,
        password: str | None,
        port: int | None,
        platform: str | None,
        extras: dict[str, Any] | None = None,
        configuration: Config | None = None,
    ) -> None:
        fields: dict[str, Any] = dict(extras or {})
        fields.update(
            hostname=hostname,
            username=username,
            password=password,
            port=port,
            platform=platform or DEFAULT_PLATFORM,
        )
        config = automation.host_from_fields(hostname or "(no hostname)", fields)
        node = MmlNode(config)
        node.session()  # connect and log in now: a wrong password fails here, as usual
        self._node = node

    def close(self) -> None:
        if self._node is not None:
            self._node.close()

    @property
    def connection(self) -> MmlNode:
        if self._node is None:
            raise RuntimeError("the mml connection is not open")
        return self._node


def _node(task: Task) -> tuple[MmlNode, HostConfig]:
    """The host's open connection, and its configuration named as Nornir names the host (the
    name that goes into the audit trail and the host lock)."""
    node: MmlNode = task.host.get_connection(CONNECTION_NAME, task.nornir.config)
    return node, dataclasses.replace(node.config, name=task.host.name)


def mml_command(task: Task, command: str) -> Result:
    """Run one read-only command; ``result``: command, retcode, message, records, raw.
    A write verb is refused before anything is sent; RETCODE != 0 is ``failed``."""
    parsed = automation.read_only_command(command)
    node, _ = _node(task)
    reply = automation.command_result(node.session().run(parsed))
    return Result(
        host=task.host,
        result=dataclasses.asdict(reply),
        failed=not reply.ok,
    )


def mml_check(
    task: Task,
    policy: Policy | Path | str | None = None,
    template_dirs: list[Path] | None = None,
) -> Result:
    """The findings (dicts, as in the JSON report) of ``policy`` (default: the built-in one)
    for the host; ``failed`` when any control could not be read (status ``error``)."""
    node, host = _node(task)
    findings = automation.check_one_host(
        host,
        policy,
        template_dirs=template_dirs or (),
        session_factory=lambda _config: node.session(),
    )
    errors = [f.error for f in findings if f.status == "error"]
    return Result(
        host=task.host,
        result=[f.to_dict() for f in findings],
        failed=bool(errors),
        compliant=all(f.compliant for f in findings),
        errors=errors,
    )


def mml_set_bit(
    task: Task,
    parameter: str,
    bit: int,
    value: int,
    change_id: str = "",
    audit: Path | str | None = None,
    lock_dir: Path | str | None = None,
    template_dirs: list[Path] | None = None,
    dry_run: bool | None = None,
    record: Path | str | None = None,
    policy: Policy | Path | str | None = None,
    allow_unsigned: bool = False,
) -> Result:
    """Set ``parameter`` bit ``bit`` to ``value`` as ``apply`` does (see
    ``automation.set_bit``); with dry run (Nornir's or ``dry_run``) only read and report.
    ``changed`` and a unified ``diff`` of the parameter; ``failed`` on drift, a refused or
    unconfirmed command, or a lock held by another change.

    ``record``: the apply record (as ``mml-tool apply --record``), written ahead of the command
    and again when the step settled, for ``mml-tool rollback RECORD``; an existing file is
    refused, a folder gets a fresh name in it; default a fresh file in ``records/`` beside the
    audit trail. ``result["record"]`` is the file written (None when nothing was sent), and
    ``result["record_policy"]`` the one-control policy file ``rollback -p`` then needs when no
    policy (``policy``, default the built-in one) has a control for this bit.

    With ``plan_signing_key`` (or ``plan_signing_key_file``) in the host's inventory data the
    task refuses to change anything (``PlanError`` after the read, nothing sent; a host whose
    bit already has ``value`` is ``already-compliant``) unless ``allow_unsigned``: then its
    audit lines say so."""
    _, host = _node(task)
    check_mode = task.is_dry_run(dry_run)
    key = None
    if not check_mode:  # a read needs no key: a dry run works without it
        key = automation.signing_key_from_fields(
            {name: task.host.get(name) for name in automation.SIGNING_KEY_FIELDS},
            where=f"Nornir host {task.host.name!r} data",
        )
    if record is None or Path(record).is_dir():
        record = automation.default_record_path(
            audit, host.name, parameter, bit, change_id, folder=record
        )
    outcome = automation.set_bit(
        host,
        parameter,
        bit,
        value,
        check_mode=check_mode,
        change_id=change_id,
        audit_path=audit,
        lock_dir=lock_dir,
        template_dirs=template_dirs or (),
        record=record,
        policy=policy,
        signing_key=key,
        allow_unsigned=allow_unsigned,
    )
    diff = "".join(
        difflib.unified_diff(
            outcome.diff_text("before").splitlines(keepends=True),
            outcome.diff_text("after").splitlines(keepends=True),
            "before",
            "after",
        )
    )
    return Result(
        host=task.host,
        result=dataclasses.asdict(outcome),
        changed=outcome.changed,
        diff=diff,
        failed=not outcome.ok,
    )
