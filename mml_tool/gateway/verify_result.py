"""What a gateway verification found: each step, each video direction, the verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class VerifyStep:
    """One request (and the events it waited for) of the scenario."""

    name: str
    request: str = ""  # "POST /agentgateway/resource/voicecall/101/mediaswitch?..." no secrets
    retcode: str = ""
    message: str = ""
    events: list[str] = field(default_factory=list)
    started: float = 0.0  # time.time()
    elapsed: float = 0.0
    ok: bool = False
    error: str | None = None


@dataclass
class DirectionResult:
    direction: int
    ok: bool
    reason: str


@dataclass
class VerifyResult:
    gateway: str
    agent_id: str
    steps: list[VerifyStep] = field(default_factory=list)
    directions: list[DirectionResult] = field(default_factory=list)
    passed: bool = False
    error: str | None = None  # set when the scenario could not reach a verdict
    cleanup_error: str | None = None  # release or sign-out failed: check the agent by hand
    started: float = 0.0
    elapsed: float = 0.0
    # False: the gateway's TLS certificate was not checked (verify_tls: false), so anyone on
    # the path could have read the session or forged the answers this verdict rests on.
    verify_tls: bool = True

    @property
    def status(self) -> str:
        """ "pass", "fail" (a verdict) or "error" (could not run)."""
        if self.error is not None:
            return "error"
        return "pass" if self.passed else "fail"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status
        return data
