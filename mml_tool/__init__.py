"""mml-tool: keep Huawei UAP9600 platforms configured right, change them safely, prove it.

The public API (``docs/api.md``)::

    import mml_tool as mt

    inv = mt.load_inventory("inventory.yaml")
    result = mt.check(inv, mt.load_policy(), limit="uap-*")   # -> CheckResult
    plan = mt.plan(result, change_id="CHG42")                # -> Plan; plan.save(path)
    record = mt.apply(plan, inv, audit="audit.jsonl")         # -> ApplyRecord
    undone = mt.rollback(record, inv, audit="audit.jsonl")
    outcome = mt.verify(inv, host="uap-1")                   # -> VerifyResult
    drift = mt.diff_fleet(inv, "golden.json", ignore="P001")  # -> DriftResult

    with mt.MmlSession(mt.ConnectionParams(host="10.0.0.5", transport="tcp")) as s:
        rows = s.run("LST SFP: ID=P978;").raise_for_retcode().parse()

Names not in ``__all__`` are private. The names load on first use, so ``import mml_tool``
(and the CLI's start-up) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mml_tool import errors as errors
    from mml_tool._api import MmlSession as MmlSession
    from mml_tool._api import apply as apply
    from mml_tool._api import check as check
    from mml_tool._api import load_inventory as load_inventory
    from mml_tool._api import load_plan as load_plan
    from mml_tool._api import load_policy as load_policy
    from mml_tool._api import load_record as load_record
    from mml_tool._api import plan as plan
    from mml_tool._api import rollback as rollback
    from mml_tool._api import verify as verify
    from mml_tool.baseline import Difference as Difference
    from mml_tool.baseline import DiffKind as DiffKind
    from mml_tool.baseline import DriftResult as DriftResult
    from mml_tool.baseline import HostDrift as HostDrift
    from mml_tool.baseline import Snapshot as Snapshot
    from mml_tool.baseline import diff_fleet as diff_fleet
    from mml_tool.baseline import load_snapshot as load_snapshot
    from mml_tool.baseline import take_snapshot as take_snapshot
    from mml_tool.change import ApplyRecord as ApplyRecord
    from mml_tool.change import Plan as Plan
    from mml_tool.change import Step as Step
    from mml_tool.change import StepResult as StepResult
    from mml_tool.errors import MmlToolError as MmlToolError
    from mml_tool.gateway.verify import VerifyResult as VerifyResult
    from mml_tool.inventory import GatewayConfig as GatewayConfig
    from mml_tool.inventory import HostConfig as HostConfig
    from mml_tool.inventory import Inventory as Inventory
    from mml_tool.mml.command import MmlCommand as MmlCommand
    from mml_tool.mml.params import ConnectionParams as ConnectionParams
    from mml_tool.mml.params import JumpHost as JumpHost
    from mml_tool.mml.response import MmlResponse as MmlResponse
    from mml_tool.policy import Finding as Finding
    from mml_tool.policy import Policy as Policy
    from mml_tool.results import CheckResult as CheckResult
    from mml_tool.results import FindingStatus as FindingStatus
    from mml_tool.results import StepStatus as StepStatus
    from mml_tool.secret import Secret as Secret

# public name -> the module that defines it
_WHERE = {
    "MmlSession": "mml_tool._api",
    "apply": "mml_tool._api",
    "check": "mml_tool._api",
    "load_inventory": "mml_tool._api",
    "load_plan": "mml_tool._api",
    "load_policy": "mml_tool._api",
    "load_record": "mml_tool._api",
    "plan": "mml_tool._api",
    "rollback": "mml_tool._api",
    "verify": "mml_tool._api",
    "Difference": "mml_tool.baseline",
    "DiffKind": "mml_tool.baseline",
    "DriftResult": "mml_tool.baseline",
    "HostDrift": "mml_tool.baseline",
    "Snapshot": "mml_tool.baseline",
    "diff_fleet": "mml_tool.baseline",
    "load_snapshot": "mml_tool.baseline",
    "take_snapshot": "mml_tool.baseline",
    "ApplyRecord": "mml_tool.change",
    "Plan": "mml_tool.change",
    "Step": "mml_tool.change",
    "StepResult": "mml_tool.change",
    "MmlToolError": "mml_tool.errors",
    "VerifyResult": "mml_tool.gateway.verify",
    "GatewayConfig": "mml_tool.inventory",
    "HostConfig": "mml_tool.inventory",
    "Inventory": "mml_tool.inventory",
    "MmlCommand": "mml_tool.mml.command",
    "ConnectionParams": "mml_tool.mml.params",
    "JumpHost": "mml_tool.mml.params",
    "MmlResponse": "mml_tool.mml.response",
    "Finding": "mml_tool.policy",
    "Policy": "mml_tool.policy",
    "CheckResult": "mml_tool.results",
    "FindingStatus": "mml_tool.results",
    "StepStatus": "mml_tool.results",
    "Secret": "mml_tool.secret",
}

__all__ = sorted([*_WHERE, "errors", "__version__"])


def __getattr__(name: str) -> Any:
    if name == "errors":
        return importlib.import_module("mml_tool.errors")
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mml_tool' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
