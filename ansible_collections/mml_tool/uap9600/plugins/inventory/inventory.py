"""Inventory plugin mml_tool.uap9600.inventory: the hosts and groups of an mml-tool inventory."""

from __future__ import annotations

DOCUMENTATION = r"""
name: inventory
short_description: Hosts and groups from an mml-tool inventory file
description:
  - Reads an mml-tool inventory (the file the CLI reads, with the CLI's checks) and adds its
    hosts and groups, so Ansible, AWX and the CLI work on the same fleet.
  - Each host gets C(ansible_connection=local) (the modules open their own MML session from
    the controller or execution node), C(ansible_python_interpreter) (default the Python that
    runs Ansible, where mml-tool is installed), C(mml_tool_inventory) (the file, so the modules
    need no connection options) and its non-secret fields as C(mml_*) variables.
  - Secrets are neither read nor exposed as variables; the modules read a host's secrets (its
    C(${VAR}) references, files) when they open its session.
  - The configuration file must end in C(mml.yml) or C(mml.yaml).
options:
  plugin:
    description: The name of this plugin.
    required: true
    choices: [mml_tool.uap9600.inventory]
  source:
    description: The mml-tool inventory, relative to this file's folder.
    type: str
    required: true
  python_interpreter:
    description:
      - The C(ansible_python_interpreter) given to every host; default the Python that runs
        Ansible here (C(ansible_playbook_python)), where mml-tool is installed.
    type: str
requirements:
  - mml-tool (Python package) on the controller / in the execution environment.
author: mml-tool maintainers
"""

EXAMPLES = r"""
# lab.mml.yml
plugin: mml_tool.uap9600.inventory
source: inventory.yaml
"""

import os
import sys

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin
from ansible.utils.display import Display

try:
    from mml_tool import automation
    from mml_tool.errors import MmlToolError
except ImportError as exc:
    IMPORT_ERROR: ImportError | None = exc
else:
    IMPORT_ERROR = None


class InventoryModule(BaseInventoryPlugin):
    NAME = "mml_tool.uap9600.inventory"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith(("mml.yml", "mml.yaml"))

    def parse(self, inventory, loader, path, cache=True):  # type: ignore[no-untyped-def]
        super().parse(inventory, loader, path, cache)
        if IMPORT_ERROR is not None:
            raise AnsibleParserError(
                f"{path}: the mml_tool.uap9600.inventory plugin needs the mml-tool Python "
                f"package where Ansible runs ({IMPORT_ERROR})"
            )
        self._read_config_data(path)
        source = os.path.expanduser(self.get_option("source"))
        if not os.path.isabs(source):
            source = os.path.join(os.path.dirname(os.path.abspath(path)), source)
        try:
            mml = automation.load_inventory(source, resolve_secrets=False)
        except MmlToolError as exc:
            raise AnsibleParserError(f"{path}: {exc}") from None
        for warning in mml.warnings:  # a secret written out in the file: where, never what
            Display().warning(warning)
        for group in mml.groups:
            self.inventory.add_group(group)
        interpreter = self.get_option("python_interpreter") or sys.executable
        for name, host in mml.hosts.items():
            self.inventory.add_host(name)
            for group in host.groups:
                self.inventory.add_child(group, name)
            values = {
                "ansible_host": host.hostname,
                "ansible_connection": "local",
                "ansible_python_interpreter": interpreter,
                "mml_tool_inventory": str(mml.path.resolve()),
                "mml_hostname": host.hostname,
                "mml_port": host.port,
                "mml_transport": host.transport,
                "mml_platform": host.platform,
                "mml_ne_name": host.ne_name,
                "mml_meid": host.meid,
                "mml_gateway": host.gateway,
            }
            for key, value in values.items():
                self.inventory.set_variable(name, key, value)
