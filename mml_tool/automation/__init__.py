"""What the integrations (the Ansible collection, the Nornir plugin) call: one thin adapter.

Each function here is a use of the library's own layers, not a second implementation of them:
a host's fields go through the inventory loader's checks, reads through ``check.read_bit`` and
the TextFSM templates, a bit change through ``change.apply_plan`` (the host's lock, the re-read
under it, the refusal of drift, the write-ahead audit line, the fresh re-read instead of a
resend after a lost reply) and verification through ``gateway.verify``. When the library grows
a public API (``import mml_tool as mt``) only this module needs re-pointing.

    host = host_from_fields("uap-1", {"hostname": "127.0.0.1", "port": 2222, ...})
    info = read_parameter(host, "P978")                  # ParameterInfo: records, value, bits
    change = set_bit(host, "P978", 0, 0, check_mode=True) # BitChange: changed, before, after
    done = apply_plan_file(inventory, "plan.json")        # PlanApply: as `mml-tool apply`

When the inventory sets ``plan_signing_key`` a change is made from a signed plan only
(``apply_plan_file``); ``set_bit`` refuses to send anything (``PlanError``) unless its caller
opts out with ``allow_unsigned=True``, and then every audit line of the change says so.
"""

from __future__ import annotations

from mml_tool.automation.bits import BitChange as BitChange
from mml_tool.automation.bits import default_record_path as default_record_path
from mml_tool.automation.bits import set_bit as set_bit
from mml_tool.automation.bits import unsigned_refusal as unsigned_refusal
from mml_tool.automation.gateway import verify as verify
from mml_tool.automation.plans import PlanApply as PlanApply
from mml_tool.automation.plans import apply_plan_file as apply_plan_file
from mml_tool.automation.reads import CommandResult as CommandResult
from mml_tool.automation.reads import ParameterInfo as ParameterInfo
from mml_tool.automation.reads import check_one_host as check_one_host
from mml_tool.automation.reads import command_result as command_result
from mml_tool.automation.reads import host_from_inventory as host_from_inventory
from mml_tool.automation.reads import read_only_command as read_only_command
from mml_tool.automation.reads import read_parameter as read_parameter
from mml_tool.automation.reads import run_read_only as run_read_only
from mml_tool.inventory import host_from_fields as host_from_fields
from mml_tool.inventory import load_inventory as load_inventory
from mml_tool.inventory.fields import SIGNING_KEY_FIELDS as SIGNING_KEY_FIELDS
from mml_tool.inventory.fields import signing_key_from_fields as signing_key_from_fields

__all__ = [
    "SIGNING_KEY_FIELDS",
    "BitChange",
    "CommandResult",
    "ParameterInfo",
    "PlanApply",
    "apply_plan_file",
    "check_one_host",
    "default_record_path",
    "host_from_fields",
    "host_from_inventory",
    "load_inventory",
    "read_parameter",
    "run_read_only",
    "set_bit",
    "signing_key_from_fields",
    "verify",
]
