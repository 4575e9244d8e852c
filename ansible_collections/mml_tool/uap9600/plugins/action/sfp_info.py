"""Action plugin of mml_tool.uap9600.sfp_info: host and inventory defaults (see plugin_utils)."""

from __future__ import annotations

from ansible_collections.mml_tool.uap9600.plugins.plugin_utils.action import MmlAction


class ActionModule(MmlAction):
    pass
