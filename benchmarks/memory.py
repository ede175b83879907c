"""Resident memory of the reference service and the processes in its group."""

from __future__ import annotations

from benchmarks.figures import Figure, Section, markdown_table
from benchmarks.processes import ProcessMemory, group_memory
from benchmarks.service import LiveService


def snapshot(service: LiveService) -> list[ProcessMemory]:
    """Return the memory of every process in the service's process group now."""
    return group_memory(service.pgid)


def memory_section(
    service: LiveService,
    at_start: list[ProcessMemory],
    at_end: list[ProcessMemory],
    end_label: str,
) -> Section:
    """Report the group's memory after start-up and again after ``end_label``."""
    section = Section(5, "Service memory")
    for label, processes in (("after start-up", at_start), (end_label, at_end)):
        section.figures += _figures(label, processes)
    section.details.append(_table({"after start-up": at_start, end_label: at_end}))
    models = ", ".join(service.model_set.names)
    section.method += [
        f"The hardened service serves {models}, and the backups are on disk. Each "
        "process of its process group (the service, its fork server, the "
        "resource tracker and any validation process running at that moment) "
        "is found by its process group id in `/proc/<pid>/stat`.",
        "RSS is `VmRSS` from `/proc/<pid>/status`. Forked processes share pages, "
        "so the RSS sum counts shared pages once per process and overstates the "
        "total; PSS (`Pss` from `/proc/<pid>/smaps_rollup`) splits each shared "
        "page among its processes, so the PSS sum is the memory the group "
        "really occupies. No target is set for memory.",
    ]
    return section


def _figures(label: str, processes: list[ProcessMemory]) -> list[Figure]:
    service = [p for p in processes if p.role == "service"]
    pss = [p.pss_kib for p in processes if p.pss_kib is not None]
    figures = [
        Figure(
            f"RSS sum of the group, {label}",
            sum(p.rss_kib for p in processes) / 1024,
            "MiB",
            note=f"{len(processes)} processes",
        ),
        Figure(
            f"PSS sum of the group, {label}",
            sum(pss) / 1024 if len(pss) == len(processes) else None,
            "MiB",
            note="" if len(pss) == len(processes) else "smaps_rollup unreadable",
        ),
    ]
    if service:
        figures.append(
            Figure(
                f"RSS of the service process, {label}",
                service[0].rss_kib / 1024,
                "MiB",
            )
        )
    return figures


def _table(snapshots: dict[str, list[ProcessMemory]]) -> str:
    rows = []
    for label, processes in snapshots.items():
        for process in processes:
            pss = process.pss_kib
            rows.append(
                [
                    label,
                    process.role,
                    f"{process.rss_kib / 1024:.0f} MiB",
                    f"{pss / 1024:.0f} MiB" if pss is not None else "-",
                ]
            )
    return markdown_table(["when", "process", "RSS", "PSS"], rows)
