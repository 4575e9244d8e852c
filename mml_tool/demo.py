"""`mml-tool demo`: the whole story on the built-in simulators, in-process.

Starts UAP9600 nodes (P978 bit 0 = 1: one-way video not allowed, each node printing `LST SFP`
in another layout or language) and a CC-Gateway, then: check (non-compliant), verify (one-way
video refused), run the change (plan, apply, verify passes), and says where the evidence is.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from rich.console import Console

from mml_tool.audit import AuditTrail
from mml_tool.change import Plan
from mml_tool.change.record import fresh_folder
from mml_tool.compliance import check_fleet
from mml_tool.gateway.verify import verify_gateway
from mml_tool.inventory import load_inventory
from mml_tool.lab.lab import AGENT_PASSWORD_ENV, PASSWORD_ENV, Lab, make_nodes
from mml_tool.policy import load_policy
from mml_tool.report import Report, RunInfo, render_table
from mml_tool.workflow import run_change

DEMO_CHANGE_ID = "DEMO-0001"


def run_demo(workdir: Path | None = None, *, nodes: int = 3, console: Console | None = None) -> int:
    """Run the demo; returns the exit code (0 when the story ran as it should)."""
    out = console or Console(soft_wrap=True)  # paths stay whole in a pipe or log
    started = time.monotonic()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="mml-tool-demo-"))
    policy = load_policy(None)
    out.rule("[bold]mml-tool demo[/]: one-way video on Huawei UAP9600 (simulated)")
    with Lab(
        make_nodes(nodes, varied=True, workdir=workdir / "lab"), workdir=workdir / "lab"
    ) as lab:
        inventory_path = lab.write_inventory(workdir / "lab" / "inventory.yaml")
        env = {
            **os.environ,
            PASSWORD_ENV: lab.password.reveal(),
            AGENT_PASSWORD_ENV: lab.agent_password.reveal(),
        }
        inventory = load_inventory(inventory_path, env=env)
        hosts = inventory.select(None)
        out.print(
            f"lab: {len(hosts)} UAP9600 nodes over SSH + a CC-Gateway over HTTPS; "
            f"inventory {inventory_path}",
            highlight=False,
        )

        out.rule("1. check: LST SFP: ID=P978;")
        findings = check_fleet(hosts, policy)
        render_table(
            Report(
                RunInfo("check", "", policy.name, policy.sha256, None, str(inventory_path), "", ""),
                findings,
            ),
            out,
        )

        first_gateway = inventory.gateways[hosts[0].gateway or ""]
        out.rule("2. verify before the change: mediaswitch videoDirection 1 and 2")
        before = verify_gateway(first_gateway)
        out.print(f"verification via {first_gateway.name}: [bold]{before.status}[/]")
        for direction in before.directions:
            out.print(
                f"  direction {direction.direction}: {'ok' if direction.ok else 'refused'}"
                f" - {direction.reason}",
                highlight=False,
                markup=False,
            )

        out.rule("3. run: check -> plan -> apply -> verify (rollback if verification fails)")

        def approve(plan: Plan) -> bool:
            for step in plan.steps:
                out.print(
                    f"  plan {step.host}: {' '.join(step.commands)}  (rollback: "
                    f"{' '.join(step.undo_commands)})",
                    highlight=False,
                    markup=False,
                )
            out.print("  approved (demo)")
            return True

        evidence = fresh_folder(workdir / "evidence", DEMO_CHANGE_ID)  # keeps earlier runs
        outcome = run_change(
            inventory,
            policy,
            hosts,
            change_id=DEMO_CHANGE_ID,
            evidence=evidence,
            approve=approve,
            audit=AuditTrail(workdir / "audit.jsonl"),
            lock_dir=workdir / "locks",
            say=lambda line: out.print(f"  {line}", highlight=False, markup=False),
        )
    out.rule("result")
    story_ok = before.status == "fail" and outcome.exit_code == 0 and outcome.verified
    out.print(
        f"before the change: verification {before.status}; after: "
        f"{'pass' if outcome.verified else 'FAIL'} (exit {outcome.exit_code})"
    )
    out.print(
        f"evidence for the ticket: {evidence}/summary.md (and report.json, plan.json, "
        f"apply-record.json, verify-*.json, transcripts/)",
        highlight=False,
    )
    out.print(
        f"audit trail: {workdir / 'audit.jsonl'}; took {time.monotonic() - started:.1f} s",
        highlight=False,
    )
    return 0 if story_ok else 1
