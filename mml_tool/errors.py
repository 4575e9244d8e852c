"""One exception tree for the whole of mml-tool.

Every error the package raises on purpose is an ``MmlToolError``; each subclass names the layer
that failed, and its message says what to do next. Messages never carry a secret. Context is
attached once as attributes: ``.host`` (the host's name, "" when none) and ``.command`` (the
masked MML command, "" when none), so callers need not parse the text. ``except TransportError``
catches every failure after which a reply may have been lost (drops and timeouts alike).

    MmlToolError
    ├── ConfigError                 bad input before anything is sent
    │   ├── InventoryError          inventory file: names file, host and field
    │   ├── PolicyError             policy file: names file, control and field
    │   └── CommandError            an MML command that is not safe or not well formed
    ├── TransportError              the reply may be lost: could not open, keep or use the pipe
    │   ├── HostKeyError            SSH host key unknown or changed
    │   └── MmlTimeout              no complete reply before the deadline
    ├── LoginError                  LGI refused (names host and user, never the password)
    ├── RetcodeError                the element answered RETCODE != 0
    ├── ParseError                  a reply (frame or template) could not be read
    ├── AnswerError                 a hostile or odd answer: another NE, a second answer, ...
    ├── UnexpectedError             an exception mml-tool did not foresee, in one host's job
    ├── CheckError                  a check could not decide for some hosts (.hosts)
    ├── HistoryError                the history store could not be opened, read or written
    ├── ChangeError                 plan / apply / rollback refused or failed
    │   ├── PlanError               plan file missing, tampered, expired
    │   ├── DriftError              device state changed since the plan
    │   ├── LockError               another change holds the host
    │   ├── AuditError              the audit trail could not be written: the change stops
    │   └── RecordError             the apply record cannot be written, is another plan's, or
    │                               is not signed with the inventory's plan_signing_key
    └── GatewayError                CC-Gateway answered retcode != "0" or could not be reached
        ├── GatewayEventError       an agent event that cannot be read (names the field)
        └── VerificationError       the end-to-end scenario could not run
"""

from __future__ import annotations


class MmlToolError(Exception):
    """Base of every error mml-tool raises on purpose."""

    host: str = ""  # the host's name (inventory name, or the address)
    command: str = ""  # the masked MML command that failed

    def __init__(self, *args: object, host: str = "", command: str = "") -> None:
        super().__init__(*args)
        if host:
            self.host = host
        if command:
            self.command = command

    def with_context(self, host: str = "", command: str = "") -> MmlToolError:
        """Fill in what is not known yet (the layer that raised may not know the host)."""
        if host and not self.host:
            self.host = host
        if command and not self.command:
            self.command = command
        return self


class ConfigError(MmlToolError):
    """Input (inventory, policy, CLI value) is wrong; nothing was sent."""


class InventoryError(ConfigError):
    """The inventory is wrong: the message names file, host and field."""


class PolicyError(ConfigError):
    """The policy is wrong: the message names file, control and field."""


class CommandError(ConfigError):
    """An MML command is malformed or could smuggle a second command."""


class TransportError(MmlToolError):
    """The connection could not be opened, was lost, or refused us."""


class HostKeyError(TransportError):
    """The SSH host key is unknown or has changed."""


class LoginError(MmlToolError):
    """The network element refused the login."""


class MmlTimeout(TransportError):
    """No complete reply arrived before the deadline."""


class RetcodeError(MmlToolError):
    """The network element answered a command with RETCODE != 0."""

    def __init__(self, code: int, message: str, command: str = "", host: str = "") -> None:
        self.code = code
        self.message = message
        where = f"{host}: " if host else ""
        what = f"{command!s} " if command else ""
        super().__init__(
            f"{where}{what}failed with RETCODE = {code}  {message}", host=host, command=command
        )


class ParseError(MmlToolError):
    """A reply could not be read: frame, RETCODE or template."""


class AnswerError(MmlToolError):
    """An answer no honest element gives: headed by another NE than the one selected, a second
    answer to the same command, or a serial that goes backwards. The session is closed."""


class UnexpectedError(MmlToolError):
    """An exception mml-tool did not foresee stopped one host's job (the others went on).

    ``kind`` is the original exception's type name. The original is not chained: its text
    may quote a secret, so the message carries its type, its scrubbed text and where it was raised.
    """

    def __init__(self, message: str, host: str = "", kind: str = "") -> None:
        self.kind = kind
        super().__init__(message, host=host)


class CheckError(MmlToolError):
    """A check could not decide for some hosts (``CheckResult.raise_on_error``)."""

    def __init__(self, message: str, hosts: list[str] | None = None) -> None:
        self.hosts = list(hosts or [])
        super().__init__(message, host=self.hosts[0] if len(self.hosts) == 1 else "")


class HistoryError(MmlToolError):
    """The history store could not be opened, read or written (a warning when recording)."""


class ChangeError(MmlToolError):
    """A change (plan, apply, rollback) was refused or did not complete."""


class PlanError(ChangeError):
    """The plan file is missing, unreadable, tampered with or too old."""


class DriftError(ChangeError):
    """The device state is not what the plan saw; nothing was sent."""


class LockError(ChangeError):
    """Another change holds the lock for this host."""


class AuditError(ChangeError):
    """The audit trail could not be written; the change stops."""


class RecordError(ChangeError):
    """The apply record cannot be written where asked, belongs to another plan, or is not
    signed with the inventory's plan_signing_key."""


class GatewayError(MmlToolError):
    """The CC-Gateway failed a request or answered retcode != "0"."""

    def __init__(self, message: str, retcode: str = "", gateway_message: str = "") -> None:
        self.retcode = retcode
        self.gateway_message = gateway_message
        super().__init__(message)


class GatewayEventError(GatewayError):
    """The gateway sent an agent event that cannot be read; the message names the field."""


class VerificationError(GatewayError):
    """The end-to-end verification scenario could not run to a verdict."""
