"""The Markdown page a benchmark run writes."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.figures import Figure, Section, format_value, markdown_table
from benchmarks.machine import Machine


@dataclass(frozen=True)
class RunInfo:
    """The command, time, machine and versions of one benchmark run."""

    command: str
    started_at: str
    seconds: float
    quick: bool
    machine: Machine
    versions: dict[str, str]
    load_at_end: tuple[float, float, float]


def render_page(info: RunInfo, sections: list[Section]) -> str:
    """Return the whole page: machine, versions, command, figures, then sections."""
    parts = [
        _intro(info),
        _machine(info),
        _versions(info.versions),
        _command(info),
        _figures(sections),
    ]
    parts += [_section(section) for section in sections]
    return "\n\n".join(parts) + "\n"


def _intro(info: RunInfo) -> str:
    text = (
        "# Benchmarks\n\n"
        "How fast the harness and the reference service are, measured in one "
        "run of `benchmarks/run.py` on the machine below. Every figure on this "
        "page comes from that run, and running the command again measures "
        "another machine. No test asserts these figures. Other programs share "
        "the CPUs and change every figure, so the page gives the load average "
        "at the start and end of the run and at the start of each section. "
        "A 1-minute load average also counts this run's own work of the "
        "minute before, such as the suite runs of section 1."
    )
    if info.quick:
        text += (
            "\n\nThis was a quick run (`--quick`): smaller counts and shorter "
            "windows than a full run, and only `-k baseline` of the suite."
        )
    return text


def _machine(info: RunInfo) -> str:
    machine = info.machine
    rows = [
        ["CPU", machine.cpu_model],
        ["CPUs", f"{machine.logical_cpus} ({machine.usable_cpus} usable)"],
        [
            "Memory",
            f"{machine.memory_total_mib / 1024:.1f} GiB total, "
            f"{machine.memory_available_mib / 1024:.1f} GiB available at the start",
        ],
        ["Load average at the start", _load(machine.load_average)],
        ["Load average at the end", _load(info.load_at_end)],
        ["Kernel", machine.kernel],
        ["Date", info.started_at],
    ]
    return "## Machine\n\n" + markdown_table(["item", "value"], rows)


def _load(average: tuple[float, float, float]) -> str:
    values = ", ".join(f"{value:.2f}" for value in average)
    return f"{values} (1, 5 and 15 min)"


def _versions(versions: dict[str, str]) -> str:
    rows = [[name, version] for name, version in versions.items()]
    return "## Versions\n\n" + markdown_table(["package", "version"], rows)


def _command(info: RunInfo) -> str:
    minutes, seconds = divmod(round(info.seconds), 60)
    return (
        "## Command\n\n"
        f"```\n{info.command}\n```\n\n"
        f"The run took {minutes} min {seconds} s."
    )


def _figures(sections: list[Section]) -> str:
    rows = []
    for section in sections:
        if section.error is not None:
            rows.append([str(section.number), section.title, "not run", "", "", ""])
        for figure in section.figures:
            rows.append(
                [
                    str(section.number),
                    figure.label,
                    _value(figure),
                    figure.target.describe(figure.unit) if figure.target else "none",
                    _met(figure),
                    figure.note,
                ]
            )
    header = ["#", "figure", "measured", "target", "met", "note"]
    return "## Figures\n\n" + markdown_table(header, rows)


def _value(figure: Figure) -> str:
    if figure.value is None:
        return "not measured"
    return format_value(figure.value, figure.unit)


def _met(figure: Figure) -> str:
    met = figure.met
    if met is None:
        return "-"
    if met:
        return "yes"
    assert figure.target is not None and figure.value is not None
    return f"no, missed {figure.target.shortfall(figure.value, figure.unit)}"


def _section(section: Section) -> str:
    lines = [f"## {section.number}. {section.title}"]
    if section.error is not None:
        # The first line is the reason, and the rest (a log tail) keeps its layout.
        reason, _, rest = section.error.partition("\n")
        lines.append(f"Not run: {reason}")
        if rest.strip():
            lines.append(f"```\n{rest.strip()}\n```")
    for figure in section.figures:
        if figure.miss_reason:
            assert figure.target is not None and figure.value is not None
            lines.append(
                f"**Missed: {figure.label}** "
                f"({_value(figure)}, target {figure.target.describe(figure.unit)}). "
                f"Likely reason: {figure.miss_reason}."
            )
    lines += section.details
    if section.method:
        lines.append("Method:\n\n" + "\n".join(f"- {note}" for note in section.method))
    lines.append(_timing(section))
    return "\n\n".join(lines)


def _timing(section: Section) -> str:
    text = f"This section took {section.seconds:.1f} s"
    if section.load_at_start is not None:
        text += (
            f", and the 1-minute load average was {section.load_at_start:.2f} "
            "when it started"
        )
    return text + "."
