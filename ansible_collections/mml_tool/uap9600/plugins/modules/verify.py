"""Ansible module mml_tool.uap9600.verify: prove one-way video end to end."""

from __future__ import annotations

DOCUMENTATION = r"""
module: verify
short_description: Prove one-way video works end to end through a CC-Gateway
description:
  - Runs the verification of C(mml-tool verify) - signs in the video agent, gets a call,
    switches it to video with each C(videoDirection), requires the gateway's retcode 0 and
    its media-switch event, then releases the call and signs out, whatever failed.
  - Fails when the verification does not pass (a direction refused, or it could not run);
    the steps are in the result either way.
  - The gateway and the agent's password come from the mml-tool O(inventory).
  - In check mode nothing is run (a verification places a real call); the task is skipped.
options:
  inventory:
    description:
      - Path to the mml-tool inventory holding the C(gateways).
      - Default the host variable C(mml_tool_inventory) (set by the inventory plugin).
    type: path
  gateway:
    description: The gateway's name in the inventory. Mutually exclusive with O(host).
    type: str
  host:
    description:
      - A UAP host of the inventory; its C(gateway) is used.
      - Default (when O(gateway) is not given) C(inventory_hostname), set by the action
        plugin; in a play on C(localhost) name the O(gateway) instead.
    type: str
  directions:
    description:
      - The C(videoDirection) values to prove (1 receive-only, 2 send-only, 3 both, 4 unset).
    type: list
    elements: int
    default: [1, 2]
requirements:
  - mml-tool (Python package) in the interpreter that runs the module.
author: mml-tool maintainers
"""

EXAMPLES = r"""
- name: Prove one-way video through the gateway the host names
  mml_tool.uap9600.verify:
    directions: [1, 2]
  register: proof
"""

RETURN = r"""
status:
  description: pass, fail (a verdict) or error (could not run).
  returned: always
  type: str
  sample: pass
gateway:
  description: The gateway used.
  returned: always
  type: str
directions:
  description: Per direction, whether it switched and why not.
  returned: always
  type: list
  elements: dict
steps:
  description: Every request of the scenario with retcode, events and timing (no secrets).
  returned: always
  type: list
  elements: dict
error:
  description: Why the verification could not reach a verdict.
  returned: when status is error
  type: str
cleanup_error:
  description: Release or sign-out failed; check the agent by hand.
  returned: when it happened
  type: str
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mml_tool.uap9600.plugins.module_utils.mml import (
    HAS_MML_TOOL,
    IMPORT_ERROR,
    automation,
    missing_required_lib,
    run,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "inventory": {"type": "path", "required": True},
            "gateway": {"type": "str"},
            "host": {"type": "str"},
            "directions": {"type": "list", "elements": "int", "default": [1, 2]},
        },
        mutually_exclusive=[("gateway", "host")],
        supports_check_mode=True,
    )
    if not HAS_MML_TOOL:
        module.fail_json(msg=missing_required_lib("mml-tool"), exception=IMPORT_ERROR)
    p = module.params
    if module.check_mode:  # a verification places a real call: not in check mode
        module.exit_json(changed=False, skipped=True, msg="verification is not run in check mode")

    def proof() -> object:
        inventory = automation.load_inventory(Path(p["inventory"]), resolve_secrets=False)
        return automation.verify(
            inventory, gateway=p["gateway"], host=p["host"], directions=p["directions"]
        )

    result = run(module, proof).to_dict()
    summary = {
        "changed": False,
        "status": result["status"],
        "gateway": result["gateway"],
        "agent_id": result["agent_id"],
        "directions": result["directions"],
        "steps": result["steps"],
        "error": result["error"],
        "cleanup_error": result["cleanup_error"],
        "verify_tls": result["verify_tls"],
    }
    if result["status"] != "pass":
        why = result["error"] or "; ".join(
            f"videoDirection {d['direction']}: {d['reason']}"
            for d in result["directions"]
            if not d["ok"]
        )
        module.fail_json(msg=f"verification {result['status']}: {why}", **summary)
    module.exit_json(**summary)


if __name__ == "__main__":
    main()
