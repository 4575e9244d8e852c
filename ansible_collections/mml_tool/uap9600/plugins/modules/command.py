"""Ansible module mml_tool.uap9600.command: run one read-only MML command."""

from __future__ import annotations

DOCUMENTATION = r"""
module: command
short_description: Run one read-only MML command on a Huawei UAP9600
description:
  - Runs one command (C(LST), C(DSP), ...) in a session of its own and returns the reply.
  - Write verbs (C(MOD), C(ADD), C(RMV), C(SET), ...) are refused before anything is connected
    to; change a software parameter bit with M(mml_tool.uap9600.sfp) (locked, re-read,
    audited).
  - Fails when the element answers RETCODE other than 0.
extends_documentation_fragment:
  - mml_tool.uap9600.connection
options:
  command:
    description: "The MML command, e.g. C(LST SFP: ID=P978;)."
    type: str
    required: true
author: mml-tool maintainers
"""

EXAMPLES = r"""
- name: List a software parameter
  mml_tool.uap9600.command:
    command: "LST SFP: ID=P978;"
  register: reply

- ansible.builtin.debug:
    var: reply.records
"""

RETURN = r"""
command:
  description: The command sent (passwords masked).
  returned: when sent
  type: str
  sample: "LST SFP: ID=P978;"
retcode:
  description: The final report's RETCODE (null when the reply had none).
  returned: when sent
  type: int
  sample: 0
message:
  description: The text after the RETCODE.
  returned: when sent
  type: str
  sample: Operation succeeded
records:
  description: The records of the reply's blocks, as the frame parser reads them.
  returned: when sent
  type: list
  elements: dict
raw:
  description: The reply as received (passwords masked).
  returned: when sent
  type: str
"""

from ansible_collections.mml_tool.uap9600.plugins.module_utils.mml import (
    automation,
    host_of,
    new_module,
    run,
)


def main() -> None:
    module = new_module({"command": {"type": "str", "required": True}}, supports_check_mode=True)
    text = module.params["command"]
    run(module, lambda: automation.read_only_command(text))  # refuse before connecting
    reply = run(module, lambda: automation.run_read_only(host_of(module), text))
    result = {
        "changed": False,
        "command": reply.command,
        "retcode": reply.retcode,
        "message": reply.message,
        "records": reply.records,
        "raw": reply.raw,
    }
    if not reply.ok:
        module.fail_json(msg=f"RETCODE = {reply.retcode}  {reply.message}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
