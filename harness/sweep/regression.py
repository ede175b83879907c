"""Writing a dangerous copy out as a scenario module that reproduces it.

The module rebuilds the copy from the undamaged model file by flipping the
recorded bits, so it stays small and readable. A sha256 guard makes it skip,
with the reason, when the run's model set has no file with the sha256 the
damage was found on.
"""

from __future__ import annotations

import hashlib
import shlex
import textwrap
from pathlib import Path

from harness.sweep.damage import Flip
from harness.sweep.result import CaseResult

_VERDICT_TEXT = {
    "crash": "crashes the {loader} loader's service",
    "hang": "hangs the {loader} loader's service",
    "silent_corruption": "makes the {loader} loader serve wrong predictions",
    "predict_error": "breaks every prediction of the {loader} loader",
}

# Flips listed on one line of the module before they get a line each.
_FLIPS_ON_ONE_LINE = 4

_TEMPLATE = '''\
"""{summary}

{found}

{how}

{keep}
"""

import pytest

from harness import Scenario, faults
from harness.sweep import replay_damage

CHECKS = ("stayed_up", "truthful_health", "no_silent_corruption", "latency_bound")

# The undamaged model file the damage was found on.
SHA256 = "{sha256}"

# Every flipped bit as (byte offset, bit), bit 0 being the least significant.
FLIPS = {flips}


def {name}(chaos: Scenario) -> None:
    known = chaos.model_set.by_sha256(SHA256)
    if known is None or known.model is None:
        pytest.skip(
            f"no model file of this run has sha256 {{SHA256[:12]}}, the file this "
            "damage was found on; sweep the current file with model-chaos sweep "
            "to find damage for it"
        )
    chaos.populate()
    path = chaos.install(known.model, known.version)
    chaos.inject(replay_damage(path, FLIPS))
    chaos.inject(faults.sign_damaged(path, known, key=chaos.key))

    if chaos.start():
        chaos.observe(1.5)

    chaos.verify(*CHECKS)
'''


def regression_name(case: CaseResult, sha256: str, flips: tuple[Flip, ...]) -> str:
    """Return the test name: ``test_regression_<kind>_<8 hex digits>``.

    The digits hash the undamaged file's sha256 and the flips, so the same
    damage found again gets the same name.
    """
    digest = hashlib.sha256(f"{sha256}:{sorted(flips)}".encode()).hexdigest()[:8]
    return f"test_regression_{case.damage.kind}_{digest}"


def write_regression(
    directory: Path,
    case: CaseResult,
    flips: tuple[Flip, ...],
    *,
    sha256: str,
    model_name: str,
    loader: str,
    command: list[str],
) -> Path:
    """Write the scenario module for ``case`` reduced to ``flips``; return its path.

    ``command`` is the sweep command that found the case, quoted in the
    module's docstring.
    """
    name = regression_name(case, sha256, flips)
    count = f"{len(flips)} bit" + ("s" if len(flips) != 1 else "")
    verdict = _VERDICT_TEXT[case.verdict].format(loader=loader)
    cause = case.outcome.signal or case.outcome.error or case.verdict
    summary = f"Flipping {count} of the model {verdict}."

    found = (
        f"Found in {model_name} by `{shlex.join(command)}` as "
        f"{case.damage.describe()}: {case.verdict} ({cause})."
    )
    if len(flips) < len(case.damage.flips):
        found += (
            f" Shrunk from {len(case.damage.flips)} to {len(flips)} flipped bits "
            "with the same verdict."
        )
    how = (
        "The scenario installs the model file with sha256 "
        f"{sha256[:12]}, flips exactly these bits, gives the copy a correctly "
        "signed manifest with the undamaged model's canary outputs (so only "
        "validation can stop it), starts the target and checks that it stays up "
        "and answers correctly. It skips when the run's model set has no file "
        "with that sha256, as after a scikit-learn, numpy or joblib upgrade "
        "retrains the built-in models."
    )
    keep = (
        "To keep it, copy this file into the scenarios/ folder of model-chaos: "
        f"`model-chaos list` then shows it as {name.removeprefix('test_')}, and "
        f"`model-chaos run -k {name.removeprefix('test_')}` runs it."
    )

    text = _TEMPLATE.format(
        summary=summary,
        found=_wrap(found),
        how=_wrap(how),
        keep=_wrap(keep),
        sha256=sha256,
        flips=_flips_literal(flips),
        name=name,
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    return path


def _wrap(paragraph: str) -> str:
    return textwrap.fill(paragraph, width=80, break_on_hyphens=False)


def _flips_literal(flips: tuple[Flip, ...]) -> str:
    items = [f"({offset}, {bit})" for offset, bit in flips]
    if len(items) <= _FLIPS_ON_ONE_LINE:
        return "[" + ", ".join(items) + "]"
    return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
