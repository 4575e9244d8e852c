"""Prometheus text-file metrics of a check (or a watch round), for node_exporter's textfile
collector: written with ``prometheus_client`` to a temporary file beside the target and renamed
over it, so the collector never reads half a file.

    mml_tool_compliance_status{host,control}   1 compliant (or waived), 0 not, -1 unknown
    mml_tool_hosts{status}                     hosts compliant / noncompliant / unknown
    mml_tool_run_duration_seconds              how long the run took
    mml_tool_last_run_timestamp_seconds        when it finished (Unix time)
    mml_tool_last_success_timestamp_seconds    when the last run that decided every host
                                               (exit 0 or 100) finished

A host is ``unknown`` when any of its controls could not be read, else ``noncompliant`` when
any failed. No label value is a secret: host names and control IDs only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger("mml_tool.metrics")

LAST_SUCCESS = "mml_tool_last_success_timestamp_seconds"
_VALUE = {"pass": 1, "waived": 1, "fail": 0}
HOST_STATUSES = ("compliant", "noncompliant", "unknown")


class FindingLike(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def control_id(self) -> str: ...
    @property
    def status(self) -> str: ...


def host_statuses(findings: Iterable[FindingLike]) -> dict[str, str]:
    """Each host's overall status: unknown > noncompliant > compliant."""
    rank = {"compliant": 0, "noncompliant": 1, "unknown": 2}
    hosts: dict[str, str] = {}
    for f in findings:
        status = {"pass": "compliant", "waived": "compliant", "fail": "noncompliant"}.get(
            f.status, "unknown"
        )
        if rank[status] >= rank[hosts.get(f.host, "compliant")]:
            hosts[f.host] = status
    return hosts


def previous_last_success(path: Path) -> float | None:
    """The last-success time an earlier run wrote to ``path``; None when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS:
                    return float(sample.value)
    except (OSError, ValueError):  # no file yet, or not ours: nothing to carry over
        return None
    return None


def write_metrics(
    path: Path,
    findings: Iterable[FindingLike],
    *,
    duration: float,
    finished: float,
    decided: bool,
    last_success: float | None = None,
) -> None:
    """Write the metrics of one run to ``path`` atomically. ``decided``: every host was read
    (then this run is the last success); otherwise ``last_success`` or the file's own value
    is carried over. Raises OSError when the file cannot be written."""
    findings = list(findings)
    registry = CollectorRegistry()
    status = Gauge(
        "mml_tool_compliance_status",
        "Compliance of one control on one host: 1 compliant or waived, 0 not, -1 unknown.",
        ["host", "control"],
        registry=registry,
    )
    for f in findings:
        status.labels(f.host, f.control_id).set(_VALUE.get(f.status, -1))
    hosts = Gauge("mml_tool_hosts", "Hosts by overall status.", ["status"], registry=registry)
    per_host = host_statuses(findings)
    for name in HOST_STATUSES:
        hosts.labels(name).set(sum(1 for s in per_host.values() if s == name))
    Gauge("mml_tool_run_duration_seconds", "Wall time of the last run.", registry=registry).set(
        duration
    )
    Gauge(
        "mml_tool_last_run_timestamp_seconds",
        "Unix time the last run finished.",
        registry=registry,
    ).set(finished)
    success = finished if decided else (last_success or previous_last_success(path))
    if success is not None:
        Gauge(
            LAST_SUCCESS,
            "Unix time the last run that decided every host (exit 0 or 100) finished.",
            registry=registry,
        ).set(success)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
