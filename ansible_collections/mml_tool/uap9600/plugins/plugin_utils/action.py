"""The controller side of every module: fill in the host and the inventory, resolve paths.

Modules take ``host`` (default ``inventory_hostname``) and ``inventory`` (default the host
variable ``mml_tool_inventory``, which the inventory plugin sets); the action plugin adds
them before the module runs, and makes relative paths relative to the playbook, as Ansible's
own modules do. Nothing else: the module opens the MML session itself.
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

INVENTORY_VAR = "mml_tool_inventory"
# Relative to the playbook; "plan" is apply's.
PATH_OPTIONS = (
    "inventory",
    "key_file",
    "known_hosts",
    "audit",
    "lock_dir",
    "record",
    "policy",
    "plan",
)


class MmlAction(ActionBase):
    """Base of the collection's action plugins."""

    # Host fields given directly: then no inventory is looked up.
    DIRECT = "hostname"
    # verify: "gateway" given means no host default.
    HOST_OPTIONAL_WITH: str | None = None
    # apply: the plan names the hosts; the module takes no host option.
    TAKES_HOST = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        direct = bool(args.get(self.DIRECT))
        if not direct and not args.get("inventory") and task_vars.get(INVENTORY_VAR):
            args["inventory"] = self._templar.template(task_vars[INVENTORY_VAR])
        wants_host = self.TAKES_HOST and not (
            self.HOST_OPTIONAL_WITH and args.get(self.HOST_OPTIONAL_WITH)
        )
        if not args.get("host") and wants_host and (args.get("inventory") or direct):
            args["host"] = task_vars.get("inventory_hostname")
        for name in PATH_OPTIONS:
            value = args.get(name)
            if isinstance(value, str) and value and not value.startswith(("/", "~")):
                args[name] = self._loader.path_dwim(value)
        if isinstance(args.get("templates"), list):
            args["templates"] = [
                self._loader.path_dwim(t) if isinstance(t, str) and not t.startswith("/") else t
                for t in args["templates"]
            ]
        result.update(
            self._execute_module(
                module_name=self._task.resolved_action or self._task.action,
                module_args=args,
                task_vars=task_vars,
            )
        )
        return result
