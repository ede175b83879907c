"""The host a benchmark ran on: CPU, memory, load and library versions."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

PACKAGES = ("scikit-learn", "numpy", "joblib", "model-chaos")


@dataclass(frozen=True)
class Machine:
    """The host as the benchmark saw it at the start of the run."""

    cpu_model: str
    logical_cpus: int
    usable_cpus: int
    memory_total_mib: float
    memory_available_mib: float
    load_average: tuple[float, float, float]
    kernel: str


def describe_machine() -> Machine:
    """Read the CPU model and memory from /proc and the load from the kernel."""
    meminfo = read_meminfo()
    return Machine(
        cpu_model=cpu_model(),
        logical_cpus=os.cpu_count() or 0,
        usable_cpus=len(os.sched_getaffinity(0)),
        memory_total_mib=meminfo.get("MemTotal", 0) / 1024,
        memory_available_mib=meminfo.get("MemAvailable", 0) / 1024,
        load_average=os.getloadavg(),
        kernel=f"{platform.system()} {platform.release()}",
    )


def cpu_model() -> str:
    """Return the first ``model name`` of /proc/cpuinfo, or ``unknown``."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return "unknown"


def read_meminfo() -> dict[str, int]:
    """Return /proc/meminfo in KiB by field name; empty when it cannot be read."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return {}
    fields = {}
    for line in lines:
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[key] = int(parts[0])
    return fields


def library_versions() -> dict[str, str]:
    """Return the versions of Python and of the packages the figures depend on."""
    versions = {"Python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
