"""The pytest plugin: options, the ``chaos`` fixture, and the run's report.

Registered through the ``pytest11`` entry point, so it is loaded in every pytest
session of an environment where model-chaos is installed. It stays inert there:
only test items that use the ``chaos`` fixture produce scenario records, and a
report is written only when at least one such item ran.
"""

from __future__ import annotations

import json
import logging
import random
import shlex
import signal
from collections.abc import Generator, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.checks import Bounds
from harness.cleanup import raise_interrupt, set_run
from harness.errors import HarnessError
from harness.models import ModelSet
from harness.report import RunRecord, ScenarioRecord, write_report
from harness.report.records import CheckRecord
from harness.run import (
    RunContext,
    check_seconds,
    harness_versions,
    make_run_id,
    scenario_name,
    selection_options,
)
from harness.scenario import ChecksFailed, Scenario
from harness.targets.base import LOADERS

logger = logging.getLogger(__name__)

TARGETS = ("process", "docker")
_RECORD_KEY = "model_chaos_record"
_scenario_key = pytest.StashKey[Scenario]()
_call_key = pytest.StashKey[pytest.TestReport]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("model-chaos", "model file chaos scenarios")
    group.addoption(
        "--loader",
        choices=LOADERS,
        default="hardened",
        help="model loader the reference service runs with (default: hardened)",
    )
    group.addoption(
        "--target",
        choices=TARGETS,
        default="process",
        help="run the reference service as a local process or a Docker container",
    )
    group.addoption(
        "--models",
        metavar="DIR",
        default=None,
        help="directory with global_model.pkl and/or champion_model.pkl to test "
        "instead of the built-in models",
    )
    group.addoption(
        "--report-dir",
        metavar="DIR",
        default="reports",
        help="directory that receives <run-id>/ and the latest link (default: reports)",
    )
    group.addoption(
        "--seed",
        type=int,
        default=None,
        help="seed of every random choice of the run (default: a new random seed)",
    )
    group.addoption(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each selected scenario N times (default: 1)",
    )
    group.addoption("--run-id", default=None, help="name of the run's report folder")
    group.addoption(
        "--run-command",
        default=None,
        help="command line shown in the report's header (default: this pytest command)",
    )
    group.addoption(
        "--recover-within",
        type=float,
        default=Bounds.recover_within,
        metavar="SECONDS",
        help="time a target has to report healthy after a valid publish (default: 10)",
    )
    group.addoption(
        "--request-latency",
        type=float,
        default=Bounds.request_latency,
        metavar="SECONDS",
        help="bound on one predict request's latency (default: 2)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.option.repeat < 1:
        raise pytest.UsageError(
            f"--repeat must be 1 or more, got {config.option.repeat}"
        )
    try:
        check_seconds("--recover-within", config.option.recover_within)
        check_seconds("--request-latency", config.option.request_latency)
    except HarnessError as err:
        raise pytest.UsageError(str(err)) from err

    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None:
        # xdist workers take the run id and seed the controller chose.
        config.option.run_id = worker_input["model_chaos_run_id"]
        config.option.seed = worker_input["model_chaos_seed"]
    else:
        config.option.run_id = config.option.run_id or make_run_id()
        if config.option.seed is None:
            config.option.seed = random.randrange(1_000_000)
    set_run(config.option.run_id)
    if worker_input is not None and config.option.run_command:
        # A worker of a model-chaos run: on SIGTERM it ends like on Ctrl-C,
        # through every scenario's cleanup.
        signal.signal(signal.SIGTERM, raise_interrupt)

    if worker_input is None:
        config.pluginmanager.register(_Reporter(config), "model-chaos-reporter")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(), "model-chaos-xdist")


class _XdistHooks:
    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        options = node.config.option
        node.workerinput["model_chaos_run_id"] = options.run_id
        node.workerinput["model_chaos_seed"] = options.seed


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    repeat = metafunc.config.option.repeat
    if "chaos" in metafunc.fixturenames and repeat > 1:
        metafunc.parametrize(
            "chaos_repeat",
            range(repeat),
            indirect=True,
            ids=[f"repeat{i}" for i in range(repeat)],
        )


@pytest.fixture(scope="session")
def chaos_run(pytestconfig: pytest.Config) -> RunContext:
    """Return the run that every scenario of this session belongs to."""
    try:
        return RunContext.from_options(pytestconfig.option)
    except HarnessError as err:
        pytest.exit(str(err), returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def model_set(chaos_run: RunContext) -> ModelSet:
    """Return the model files and reference outputs the scenarios test with."""
    return chaos_run.model_set()


@pytest.fixture
def chaos_repeat(request: pytest.FixtureRequest) -> int:
    """Index of the current repeat (0 without ``--repeat``)."""
    return int(getattr(request, "param", 0))


@pytest.fixture
def chaos(
    request: pytest.FixtureRequest,
    chaos_run: RunContext,
    model_set: ModelSet,
    chaos_repeat: int,
) -> Iterator[Scenario]:
    """Yield a scenario context with a scratch model directory and a fresh target."""
    name = scenario_name(request.node)
    seed = chaos_run.seed + chaos_repeat
    scenario = Scenario(
        name,
        model_set=model_set,
        settings=chaos_run.settings,
        target_factory=chaos_run.target_factory(),
        seed=seed,
        artifacts_dir=chaos_run.artifacts_dir(name, chaos_repeat),
        repeat=chaos_repeat,
    )
    scenario.selection = selection_options(request.config.option)
    request.node.stash[_scenario_key] = scenario
    try:
        yield scenario
    finally:
        scenario.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    scenario = item.stash.get(_scenario_key, None)
    if scenario is None:
        return report

    if report.when in ("setup", "call") and not report.passed:
        item.stash[_call_key] = report
    elif report.when == "call":
        item.stash.setdefault(_call_key, report)
    if report.when == "teardown":
        record = _scenario_record(item, scenario, report)
        report.user_properties.append((_RECORD_KEY, json.dumps(asdict(record))))
    return report


class _Reporter:
    """Collects scenario records in the controller and writes the run's report.

    Records travel in ``report.user_properties`` so that they also reach the
    controller from pytest-xdist workers.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.records: list[ScenarioRecord] = []
        self.run = _run_record(config)
        self.path: Path | None = None

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == _RECORD_KEY:
                self.records.append(_record_from_json(str(value)))

    @pytest.hookimpl
    def pytest_sessionfinish(self, exitstatus: int) -> None:
        if not self.records:
            return
        self.run.ended_at = _now_iso()
        self.run.interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        records = sorted(self.records, key=lambda r: (r.name, r.repeat))
        for record in records:
            versions = record.metrics.get("target_versions")
            if versions:
                self.run.target_versions = dict(versions)
                break
        report_dir = Path(self.config.option.report_dir)
        self.path = write_report(report_dir, self.run, records)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.path is None:
            return
        terminalreporter.write_sep("-", "model-chaos report")
        terminalreporter.write_line(f"report: {self.path}")
        terminalreporter.write_line(f"seed: {self.config.option.seed}")


def _run_record(config: pytest.Config) -> RunRecord:
    options = config.option
    return RunRecord(
        id=options.run_id,
        started_at=_now_iso(),
        ended_at=None,
        target=options.target,
        loader=options.loader,
        seed=options.seed,
        repeat=options.repeat,
        command=options.run_command
        or shlex.join(["pytest", *config.invocation_params.args]),
        harness_versions=harness_versions(),
        target_versions={},
        report_dir=str(options.report_dir),
    )


def _scenario_record(
    item: pytest.Item, scenario: Scenario, teardown: pytest.TestReport
) -> ScenarioRecord:
    main = item.stash.get(_call_key, None)
    outcome, error = _outcome(main, teardown)
    options = item.config.option
    timeline = scenario.timeline
    samples, events, faults = timeline.snapshot()
    return ScenarioRecord(
        name=scenario.name,
        nodeid=item.nodeid,
        outcome=outcome,
        repeat=scenario.repeat,
        seed=scenario.seed,
        duration=round(_duration(main, teardown), 3),
        checks=[
            CheckRecord(r.name, r.passed, r.detail, r.evidence)
            for r in scenario.results
        ],
        metrics=dict(scenario.metrics),
        faults=[_relative(f.to_json(), timeline.t0) for f in faults],
        timeline={
            "samples": [_relative(s.to_json(), timeline.t0) for s in samples],
            "events": [_relative(e.to_json(), timeline.t0) for e in events],
        },
        replay=_replay_command(options, scenario),
        error=error,
        logs_excerpt=_log_excerpt(scenario),
        saved_files=list(scenario.saved_files),
        skip_reason=_skip_reason(main) if outcome == "skipped" else None,
    )


def _outcome(
    main: pytest.TestReport | None, teardown: pytest.TestReport
) -> tuple[str, str | None]:
    if main is not None and main.skipped:
        return "skipped", None
    if main is not None and main.failed:
        if main.when == "call" and _is_check_failure(main):
            return "failed", main.longreprtext[-4000:]
        return "error", main.longreprtext[-4000:]
    if teardown.failed:
        return "error", teardown.longreprtext[-4000:]
    return "passed", None


def _is_check_failure(report: pytest.TestReport) -> bool:
    return ChecksFailed.__name__ in report.longreprtext


def _duration(main: pytest.TestReport | None, teardown: pytest.TestReport) -> float:
    return (main.duration if main is not None else 0.0) + teardown.duration


def _skip_reason(report: pytest.TestReport | None) -> str | None:
    if report is None or not isinstance(report.longrepr, tuple):
        return None
    return str(report.longrepr[2]).removeprefix("Skipped: ")


def _relative(data: dict[str, Any], t0: float) -> dict[str, Any]:
    for key in ("t", "t_start", "t_end"):
        if key in data and isinstance(data[key], float):
            data[key] = round(data[key] - t0, 4)
    return data


def _log_excerpt(scenario: Scenario, lines: int = 60) -> str:
    return "\n".join(scenario.target.logs().splitlines()[-lines:])


def _replay_command(options: Any, scenario: Scenario) -> str:
    """Return a ``model-chaos run`` command that runs this one case with its seed."""
    base, _, params = scenario.name.partition("[")
    expression = base if not params else f"{base} and {params.rstrip(']')}"
    command = ["model-chaos", "run"]
    for option, value in selection_options(options).items():
        command += [option, value]
    command += ["--seed", str(scenario.seed), "-k", expression]
    return shlex.join(command)


def _record_from_json(text: str) -> ScenarioRecord:
    data = json.loads(text)
    data["checks"] = [CheckRecord(**check) for check in data["checks"]]
    return ScenarioRecord(**data)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
