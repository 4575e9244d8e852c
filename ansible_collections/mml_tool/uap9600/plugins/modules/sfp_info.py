"""Ansible module mml_tool.uap9600.sfp_info: read one software parameter."""

from __future__ import annotations

DOCUMENTATION = r"""
module: sfp_info
short_description: Read a software parameter (LST SFP) of a Huawei UAP9600
description:
  - "Runs C(LST SFP: ID=<parameter>;) in a session of its own and parses the reply with the
    mml-tool TextFSM templates (every layout the library reads - table, per-bit, value)."
  - Never changes anything; C(changed) is always false.
extends_documentation_fragment:
  - mml_tool.uap9600.connection
options:
  parameter:
    description: The software parameter, C(P) and digits.
    type: str
    required: true
author: mml-tool maintainers
"""

EXAMPLES = r"""
- name: Read P978 of every host the inventory plugin lists
  mml_tool.uap9600.sfp_info:
    parameter: P978
  register: p978

- name: Read P978 of one element given by its fields
  mml_tool.uap9600.sfp_info:
    hostname: 127.0.0.1
    port: 2222
    username: admin
    password: "{{ mml_password }}"
    known_hosts: lab/lab_known_hosts
    parameter: P978
"""

RETURN = r"""
parameter:
  description: The parameter read.
  returned: success
  type: str
  sample: P978
records:
  description: The parsed records of the reply (template field names).
  returned: success
  type: list
  elements: dict
  sample: [{"ID": "P978", "BIT": "", "BIT_VALUE": "", "VALUE": "1", "HEX": ""}]
value:
  description: The whole value, when the reply gives it (or gives all 16 bits); else null.
  returned: success
  type: int
  sample: 1
bits:
  description: Every bit the reply tells, bit number (from 0) to 0 or 1.
  returned: success
  type: dict
  sample: {"0": 1, "1": 0}
state:
  description: The whole parameter in canonical form (C(value=5) or C(0=1,1=0,...)).
  returned: success
  type: str
  sample: value=1
raw:
  description: The reply as received (passwords masked).
  returned: success
  type: str
"""

from ansible_collections.mml_tool.uap9600.plugins.module_utils.mml import (
    automation,
    host_of,
    new_module,
    run,
    template_dirs,
)


def main() -> None:
    module = new_module({"parameter": {"type": "str", "required": True}}, supports_check_mode=True)
    parameter = module.params["parameter"]
    info = run(
        module,
        lambda: automation.read_parameter(
            host_of(module), parameter, template_dirs=template_dirs(module)
        ),
    )
    module.exit_json(
        changed=False,
        parameter=info.parameter,
        records=info.records,
        value=info.value,
        bits={str(bit): value for bit, value in info.bits.items()},
        state=info.state,
        raw=info.raw,
    )


if __name__ == "__main__":
    main()
