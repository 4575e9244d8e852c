"""The connection options every module of mml_tool.uap9600 takes."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  inventory:
    description:
      - Path to an mml-tool inventory (the file the CLI reads). The host is I(host) in it.
      - Secrets in it (C(${VAR}), C(password_file)) are resolved on the node that runs the
        module, as the CLI resolves them.
      - When neither O(inventory) nor O(hostname) is given, the host variable
        C(mml_tool_inventory) is used (the inventory plugin sets it).
      - Mutually exclusive with the host fields (O(hostname) and the rest).
    type: path
  host:
    description:
      - The host's name in O(inventory) (and in the audit trail and the host lock).
      - Default (set by the action plugin) C(inventory_hostname).
    type: str
  hostname:
    description: Address of the element (or its MML/SSH endpoint) when no O(inventory) is used.
    type: str
  port:
    description: Port; default 22 for C(ssh), 6000 for C(tcp).
    type: int
  transport:
    description: How to reach MML.
    type: str
    choices: [ssh, tcp]
    default: ssh
  username:
    description: MML (and SSH) user name.
    type: str
  password:
    description: MML password. Never logged, never returned.
    type: str
  key_file:
    description: SSH private key (transport C(ssh)).
    type: path
  key_passphrase:
    description: Passphrase of an encrypted O(key_file).
    type: str
  known_hosts:
    description:
      - OpenSSH known_hosts file the element's host key must be in (checked as the CLI
        checks it; an unknown or changed key is refused).
    type: path
  trust_on_first_use:
    description: Accept and record an unknown host key (never a changed one).
    type: bool
    default: false
  ne_name:
    description: Element to select after login (C(REG NE)) when MML is reached through an NMS.
    type: str
  meid:
    description: Managed element to select after login (C(USE ME)).
    type: int
  platform:
    description: Platform name that picks the TextFSM templates.
    type: str
    default: huawei_uap9600
  encoding:
    description: Text encoding of replies.
    type: str
    choices: [auto, utf-8, gb18030]
    default: auto
  connect_timeout:
    description: Seconds to connect and log in.
    type: float
    default: 10
  timeout:
    description: Seconds to wait for each reply.
    type: float
    default: 30
  templates:
    description: Folders of your own TextFSM templates (each with its C(index)), tried first.
    type: list
    elements: path
    default: []
requirements:
  - "mml-tool (Python package) in the interpreter that runs the module
    (C(ansible_python_interpreter)); modules run with C(connection=local)."
notes:
  - "The modules open their own MML session from the controller or execution node; use
    C(connection=local). The inventory plugin M(mml_tool.uap9600.inventory) sets it."
"""
