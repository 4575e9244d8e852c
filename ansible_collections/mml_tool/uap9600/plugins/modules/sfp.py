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
  - Like C(mml-tool apply) it writes the apply record (O(record)) before the command goes out
    and after the step settles; C(mml-tool rollback RECORD) undoes the change from it
    (RV(rollback_command) is that command line).
  - Setting the bit back to the value it had is the rollback (RV(rollback) gives that command).
  - In check mode it reads and reports what would change; nothing is sent.
  - When the O(inventory) sets C(plan_signing_key), hosts are changed from signed plans only
    (M(mml_tool.uap9600.apply), C(mml-tool apply PLAN)) - the module refuses to change
    anything (the task fails after reading the bit, nothing sent; a host whose bit already
    has O(value) is C(changed=false)) unless the task sets O(allow_unsigned). Check mode is
    not concerned.
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
  record:
    description:
      - The apply record file (JSON, as C(mml-tool apply --record)), written when a command is
        to be sent - before it goes out (the module fails, nothing sent, when it cannot be),
        and again when the step has settled. An existing file is never replaced (the module
        fails, nothing sent); an existing folder gets a record of a fresh name in it. One file
        per host - e.g. C("/audit/{{ tower_job_id }}-{{ inventory_hostname }}.json").
      - Default a fresh file in C(records/) beside the audit trail (see O(audit)), named after
        O(change_id), the host, the parameter, the bit and the time.
      - In an execution environment (ephemeral pod) keep it on a mounted volume, as the audit.
    type: path
  policy:
    description:
      - The policy file whose control sets this bit (the one C(mml-tool rollback -p) is then
        given); the module fails, nothing sent, when it has none. Default the built-in policy
        when one of its controls sets this bit, else the task's own one-control policy,
        written beside the record (RV(record_policy)).
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
  allow_unsigned:
    description:
      - Change the bit although the O(inventory) sets C(plan_signing_key), without a signed
        plan. Every audit line of the change then says so in its C(message), the task warns,
        and RV(unsigned) is true; the apply record is signed with the key, so that
        C(mml-tool rollback) with that inventory takes it.
      - Without a key in the inventory (or with the host given by its fields) it changes
        nothing.
    type: bool
    default: false
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
record:
  description:
    - The apply record written (also when the change failed or its outcome is unknown, since
      rollback re-reads first); null when nothing was to be sent (already set, check mode).
    - A fallback file when the asked one could not be written (a warning of the task says so).
  returned: always
  type: str
  sample: /audit/records/CHG0042-uap-1-P978-b0-20261130T120000000000Z.record.json
record_policy:
  description:
    - The one-control policy file written beside the record when no policy has a control
      for this bit (C(mml-tool rollback) needs it as C(-p)); null otherwise.
  returned: always
  type: str
unsigned:
  description: True when the bit was changed without a signed plan under O(allow_unsigned).
  returned: always
  type: bool
rollback_command:
  description:
    - The command line that undoes the change from its record; null without a record.
    - C(-i INVENTORY) when the host was given by its fields - name an inventory that has the
      host under that name.
  returned: always
  type: str
  sample: >-
    mml-tool rollback /audit/records/CHG0042-uap-1-P978-b0-20261130T120000000000Z.record.json
    -i /etc/mml-tool/fleet.yaml --audit /audit/audit.jsonl
"""

import os

from ansible.module_utils.basic import env_fallback

from ansible_collections.mml_tool.uap9600.plugins.module_utils.mml import (
    automation,
    connection_of,
    new_module,
    rollback_command,
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
            "record": {"type": "path"},
            "policy": {"type": "path"},
            "lock_dir": {"type": "path"},
            "operator": {"type": "str", "fallback": (env_fallback, ["MML_TOOL_OPERATOR"])},
            "allow_unsigned": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    p = module.params

    def change() -> tuple[automation.BitChange, str | None]:
        host, inventory = connection_of(module)
        inventory_lock_dir = inventory.lock_dir if inventory else None
        # As apply: the audit option wins, then the inventory's audit:, then the default.
        audit = inventory.audit_file(p["audit"]) if inventory else p["audit"]
        lock_dir = inventory_lock_dir or p["lock_dir"] or os.environ.get("MML_TOOL_LOCKS")
        record = p["record"]
        if record is None or os.path.isdir(record):
            record = automation.default_record_path(
                audit, host.name, p["parameter"], p["bit"], p["change_id"], folder=record
            )
        outcome = automation.set_bit(
            host,
            p["parameter"],
            p["bit"],
            p["value"],
            check_mode=module.check_mode,
            change_id=p["change_id"],
            audit_path=audit,
            # As the CLI and mml_tool.apply: the inventory's lock_dir wins (shared by all).
            lock_dir=lock_dir,
            operator=p["operator"],
            template_dirs=template_dirs(module),
            record=record,
            policy=p["policy"],
            # A read needs no key: check mode works without it (and without its variable).
            signing_key=inventory.plan_signing_key if inventory and not module.check_mode else None,
            allow_unsigned=p["allow_unsigned"],
        )
        command = None
        if outcome.record:
            command = rollback_command(
                outcome.record,
                inventory,
                policy=outcome.record_policy or p["policy"],
                audit=audit,
                lock_dir=lock_dir,
            )
        return outcome, command

    outcome, undo = run(module, change, changed=False)
    for warning in outcome.warnings:
        module.warn(warning)
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
        "record": outcome.record,
        "record_policy": outcome.record_policy,
        "unsigned": outcome.unsigned,
        "rollback_command": undo,
        "diff": {"before": outcome.diff_text("before"), "after": outcome.diff_text("after")},
    }
    if not outcome.ok:
        module.fail_json(msg=outcome.error or outcome.status, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
