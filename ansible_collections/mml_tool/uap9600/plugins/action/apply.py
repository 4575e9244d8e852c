"""Action plugin of mml_tool.uap9600.apply: the inventory default and paths (see plugin_utils).

The plan names its hosts: no ``host`` is added, and no host fields are taken. Run for every
host of a play, each run would apply the whole plan and the host locks would refuse the others:
without ``run_once`` in a play of several hosts the task fails before anything is read."""

from __future__ import annotations

from typing import Any

from ansible_collections.mml_tool.uap9600.plugins.plugin_utils.action import MmlAction


class ActionModule(MmlAction):
    DIRECT = "(apply takes no host fields)"
    TAKES_HOST = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        hosts = task_vars.get("ansible_play_hosts") or []
        if len(hosts) > 1 and not self._task.run_once:
            return {
                "failed": True,
                "changed": False,
                "msg": (
                    f"apply applies a whole plan, and this play runs it for {len(hosts)} hosts: "
                    "set run_once: true on the task (or run it in a play on localhost). "
                    "Nothing was read or sent"
                ),
            }
        return super().run(tmp, task_vars)
