"""Action plugin of mml_tool.uap9600.apply: the inventory default and paths (see plugin_utils).

The plan names its hosts: no ``host`` is added, and no host fields are taken."""

from __future__ import annotations

from ansible_collections.mml_tool.uap9600.plugins.plugin_utils.action import MmlAction


class ActionModule(MmlAction):
    DIRECT = "(apply takes no host fields)"
    TAKES_HOST = False
