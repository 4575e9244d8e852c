"""Ansible module mml_tool.uap9600.apply: apply a reviewed (and signed) plan file."""

from __future__ import annotations

DOCUMENTATION = r"""
module: apply
short_description: Apply a reviewed change plan (C(mml-tool apply PLAN)), signed when the
  inventory signs plans
description:
  - Applies the plan file made by C(mml-tool plan) exactly as C(mml-tool apply PLAN) does,
    through the same library path.
  - Before anything is connected to it refuses a plan whose sha256 does not match, that is
    older than O(max_age) hours, that is not signed with the inventory's C(plan_signing_key)
    (when it sets one; an unsigned plan or one signed with another key is refused), or whose
    commands are not exactly those derived from the rules of O(policy).
  - Then per host, as C(mml-tool apply) - under the host's lock it re-reads the state, skips a
    step already done, refuses one whose state moved since the plan (drift), writes the audit
    line and the apply record (O(record)) before each command goes out, sends it and confirms
    by a re-read; after a lost reply a fresh read settles the outcome, a command is never
    re-sent blindly.
  - C(mml-tool rollback RECORD -i INVENTORY) undoes the change from its record
    (RV(rollback_command)).
  - The plan names its hosts, so run the task once (C(run_once) or a play on C(localhost));
    in a play of several hosts without C(run_once) the task fails on each before anything
    is read (a task per host would apply the whole plan from every host).
  - In check mode the plan is checked as above and the commands each step would send are
    returned; nothing is connected to or sent (each step is still re-read when applied, and one
    already done is then skipped).
options:
  plan:
    description: The plan file (JSON, from C(mml-tool plan)); relative to the playbook.
    type: path
    required: true
  inventory:
    description:
      - The mml-tool inventory the plan was made with (its hosts, secrets, C(lock_dir),
        C(audit) and C(plan_signing_key)).
      - Default the host variable C(mml_tool_inventory) (set by the inventory plugin).
    type: path
    required: true
  policy:
    description:
      - The policy file the plan was made with; default the built-in policy.
    type: path
  max_age:
    description: Refuse a plan older than this many hours.
    type: float
    default: 24
  audit:
    description:
      - The audit trail (JSON lines). Default C($MML_TOOL_AUDIT), else the O(inventory)'s
        C(audit:), else C(~/.local/state/mml-tool/audit.jsonl).
      - In an execution environment (ephemeral pod) point it at a mounted volume.
    type: path
  record:
    description:
      - The apply record file, as C(mml-tool apply --record); default the plan's path with
        C(.record.json). Re-applying the plan adds to its record; a file of another plan is
        refused (the task fails, nothing sent). Written before each command and after each
        step; signed with the inventory's C(plan_signing_key) when it sets one.
      - In an execution environment keep it on a mounted volume, as the audit.
    type: path
  lock_dir:
    description:
      - Folder of the per-host locks when the inventory sets no C(lock_dir) (the inventory's
        wins); default C($MML_TOOL_LOCKS), else the machine's lock folder.
    type: path
  operator:
    description: Who the audit trail records; default C($MML_TOOL_OPERATOR), else the login name.
    type: str
  workers:
    description: Hosts changed at the same time.
    type: int
    default: 8
  templates:
    description: Folders of your own TextFSM templates (each with its C(index)), tried first.
    type: list
    elements: path
    default: []
attributes:
  check_mode:
    support: full
requirements:
  - mml-tool (Python package) in the interpreter that runs the module.
author: mml-tool maintainers
"""

EXAMPLES = r"""
- name: Apply the approved plan (refused unless signed, when the inventory signs plans)
  mml_tool.uap9600.apply:
    plan: plans/CHG0042.json
    record: "/audit/{{ tower_job_id }}.record.json"
  run_once: true
  register: applied
"""

RETURN = r"""
changed:
  description: True when this run changed (in check mode, would change) a host.
  returned: always
  type: bool
change_id:
  description: The plan's change ID.
  returned: success
  type: str
hosts:
  description: The hosts the plan changes.
  returned: success
  type: list
  elements: str
steps:
  description:
    - One per step of the plan - host, control, status (changed, already-compliant, drifted,
      failed, unknown, locked, skipped; C(check-mode) in check mode), before, after, the
      commands sent with RETCODE, message and outcome (in check mode, the commands that
      would be sent), rollback and error.
    - From the apply record, which holds every run of the plan.
  returned: success
  type: list
  elements: dict
failed_hosts:
  description: Hosts with a step that did not reach the planned state.
  returned: success
  type: list
  elements: str
record:
  description:
    - The apply record written; null in check mode or when the plan has no step.
    - A fallback file when the asked one could not be written (a warning of the task says so).
  returned: success
  type: str
rollback_command:
  description:
    - The command line that undoes the change from its record, with the O(policy), O(audit)
      and lock folder this task used (O(lock_dir) or C($MML_TOOL_LOCKS), when the inventory
      sets no C(lock_dir)); null without a record.
  returned: success
  type: str
"""

import os
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.mml_tool.uap9600.plugins.module_utils.mml import (
    HAS_MML_TOOL,
    IMPORT_ERROR,
    automation,
    missing_required_lib,
    rollback_command,
    run,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "plan": {"type": "path", "required": True},
            "inventory": {"type": "path", "required": True},
            "policy": {"type": "path"},
            "max_age": {"type": "float", "default": 24.0},
            # The library reads no environment variable: the module does, at its edge.
            "audit": {"type": "path", "fallback": (env_fallback, ["MML_TOOL_AUDIT"])},
            "record": {"type": "path"},
            "lock_dir": {"type": "path"},
            "operator": {"type": "str", "fallback": (env_fallback, ["MML_TOOL_OPERATOR"])},
            "workers": {"type": "int", "default": 8},
            "templates": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    if not HAS_MML_TOOL:
        module.fail_json(msg=missing_required_lib("mml-tool"), exception=IMPORT_ERROR)
    p = module.params
    if p["workers"] < 1 or p["max_age"] < 0:
        module.fail_json(msg="workers must be at least 1 and max_age at least 0")

    lock_dir = p["lock_dir"] or os.environ.get("MML_TOOL_LOCKS")
    loaded = []

    def apply() -> object:
        inventory = automation.load_inventory(Path(p["inventory"]), resolve_secrets=False)
        loaded.append(inventory)
        return automation.apply_plan_file(
            inventory,
            Path(p["plan"]),
            check_mode=module.check_mode,
            policy=p["policy"],
            max_age_hours=p["max_age"],
            audit_path=p["audit"],
            record=p["record"],
            # As the CLI: the inventory's lock_dir wins (shared by all), then this.
            lock_dir=lock_dir,
            operator=p["operator"],
            workers=p["workers"],
            template_dirs=[Path(t) for t in p["templates"] or []],
        )

    done = run(module, apply, changed=False)
    for warning in done.warnings:
        module.warn(warning)
    command = None
    if done.record:
        command = rollback_command(
            done.record, loaded[0], policy=p["policy"], audit=p["audit"], lock_dir=lock_dir
        )
    result = {
        "changed": done.changed,
        "plan": done.plan,
        "change_id": done.change_id,
        "hosts": done.hosts,
        "steps": done.steps,
        "failed_hosts": done.failed_hosts,
        "record": done.record,
        "rollback_command": command,
    }
    if not done.ok:
        errors = [f"{s['host']}: {s['error'] or s['status']}" for s in done.steps if not s["ok"]]
        module.fail_json(
            msg="not every step reached the planned state: " + "; ".join(errors), **result
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
