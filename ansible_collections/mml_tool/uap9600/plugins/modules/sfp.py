"""Ansible module mml_tool.uap9600.sfp: set one bit of a software parameter, safely."""

from __future__ import annotations

DOCUMENTATION = r"""
module: sfp
short_description: Set one bit of a software parameter (MOD SFP) of a Huawei UAP9600
description:
  - Reads the bit; when it already has O(value) nothing is sent (C(changed=false)).
  - Otherwise changes it exactly as C(mml-tool apply) does, through the library's change
    runner - under the host's lock (the inventory's C(lock_dir), C($MML_TOOL_LOCKS) or the
    machine's lock folder) it re-reads the parameter, refuses the change when anything in the
    parameter moved since the first read (drift), writes the audit line before the command goes
    out, confirms by a re-read, and after a lost reply settles the outcome with a fresh read in
    a new session - a command is never re-sent blindly.
  - Setting the bit back to the value it had is the rollback (RV(rollback) gives that command).
  - In check mode it reads and reports what would change; nothing is sent.
extends_documentation_fragment:
  - mml_tool.uap9600.connection
options:
  parameter:
    description: The software parameter, C(P) and digits.
    type: str
    required: true
  bit:
    description: The bit to set, from 0.
    type: int
    required: true
  value:
    description: The bit's value.
    type: int
    required: true
    choices: [0, 1]
  change_id:
    description:
      - Change ticket ID written to the audit trail and the lock (letters, digits, C(._-+#@)).
    type: str
    default: ""
  audit:
    description:
      - The audit trail (JSON lines) on the node that runs the module. Default
        C($MML_TOOL_AUDIT), else the O(inventory)'s C(audit:), else
        C(~/.local/state/mml-tool/audit.jsonl).
      - In an execution environment (ephemeral pod) point it at a mounted volume.
    type: path
  lock_dir:
    description:
      - Folder of the per-host locks when the inventory sets no C(lock_dir) (the inventory's
        wins, as for the CLI, since every operator must meet the same locks); default
        C($MML_TOOL_LOCKS), else the machine's lock folder.
    type: path
  operator:
    description:
      - Who the audit trail records; default C($MML_TOOL_OPERATOR), else the login name.
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
author: mml-tool maintainers
"""

EXAMPLES = r"""
- name: Allow one-way video (P978 bit 0 = 0)
  mml_tool.uap9600.sfp:
    parameter: P978
    bit: 0
    value: 0
    change_id: CHG0042
  register: change

- name: Roll back to the value read before
  mml_tool.uap9600.sfp:
    parameter: P978
    bit: 0
    value: "{{ change.before }}"
    change_id: CHG0042
  when: change.changed
"""

RETURN = r"""
changed:
  description: True when the bit was (or, in check mode, would be) changed.
  returned: always
  type: bool
before:
  description: The bit as read before.
  returned: success
  type: int
  sample: 1
after:
  description: The bit as read after the change (in check mode, the value it would get).
  returned: success
  type: int
  sample: 0
status:
  description: >-
    The change runner's verdict - already-compliant, check-mode, changed; on failure drifted,
    failed, unknown (the outcome could not be read back: check by hand), locked, skipped.
  returned: always
  type: str
  sample: changed
diff:
  description: The parameter before and after, as text (shown with C(--diff)).
  returned: success
  type: dict
  sample: {"before": "P978 bit 0 = 1\nP978 value=1\n", "after": "P978 bit 0 = 0\nP978 value=0\n"}
commands:
  description: The commands sent, with RETCODE, message and outcome (ok, failed, unknown).
  returned: always
  type: list
  elements: dict
rollback:
  description: The command that puts the bit back to the value read before.
  returned: when the bit differed
  type: list
  elements: str
  sample: ["MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;"]
"""

import os

from ansible.module_utils.basic import env_fallback

from ansible_collections.mml_tool.uap9600.plugins.module_utils.mml import (
    automation,
    connection_of,
    new_module,
    run,
    template_dirs,
)


def main() -> None:
    module = new_module(
        {
            "parameter": {"type": "str", "required": True},
            "bit": {"type": "int", "required": True},
            "value": {"type": "int", "required": True, "choices": [0, 1]},
            "change_id": {"type": "str", "default": ""},
            # The library reads no environment variable: the module does, at its edge.
            "audit": {"type": "path", "fallback": (env_fallback, ["MML_TOOL_AUDIT"])},
            "lock_dir": {"type": "path"},
            "operator": {"type": "str", "fallback": (env_fallback, ["MML_TOOL_OPERATOR"])},
        },
        supports_check_mode=True,
    )
    p = module.params

    def change() -> automation.BitChange:
        host, inventory = connection_of(module)
        inventory_lock_dir = inventory.lock_dir if inventory else None
        return automation.set_bit(
            host,
            p["parameter"],
            p["bit"],
            p["value"],
            check_mode=module.check_mode,
            change_id=p["change_id"],
            # As apply: the audit option wins, then the inventory's audit:, then the default.
            audit_path=inventory.audit_file(p["audit"]) if inventory else p["audit"],
            # As the CLI and mml_tool.apply: the inventory's lock_dir wins (shared by all).
            lock_dir=inventory_lock_dir or p["lock_dir"] or os.environ.get("MML_TOOL_LOCKS"),
            operator=p["operator"],
            template_dirs=template_dirs(module),
        )

    outcome = run(module, change, changed=False)
    result = {
        "changed": outcome.changed,
        "parameter": outcome.parameter,
        "bit": outcome.bit,
        "value": outcome.value,
        "before": outcome.before,
        "after": outcome.after,
        "status": outcome.status,
        "commands": outcome.commands,
        "rollback": outcome.rollback,
        "diff": {"before": outcome.diff_text("before"), "after": outcome.diff_text("after")},
    }
    if not outcome.ok:
        module.fail_json(msg=outcome.error or outcome.status, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
