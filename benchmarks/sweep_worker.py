"""Run one damage sweep in a fresh process and print its timing and peak memory.

Run as ``python -m benchmarks.sweep_worker`` with the repository root on the
import path. A process of its own gives the sweep clean peak-memory counters:
``ru_maxrss`` of ``RUSAGE_SELF`` is this process's peak and that of
``RUSAGE_CHILDREN`` the largest peak among the case processes it waited for.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

from harness.sweep import run_sweep

# Forks timed to give the median cost of forking this process.
_FORKS = 50


def _fork_seconds() -> float:
    """Return the median seconds to fork this process, let the child exit, reap it.

    This process has scikit-learn imported and the model loaded, as the
    processes that fork the sweep's cases have.
    """
    times = []
    for _ in range(_FORKS):
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep_worker")
    parser.add_argument("--model-file", type=Path, required=True)
    parser.add_argument("--kind", required=True, help="damage kind, e.g. truncate")
    parser.add_argument("--flips", type=int, required=True)
    parser.add_argument("--stride", type=int, required=True, help="bytes")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument(
        "--canary-file", type=Path, required=True, help="JSON list of canary rows"
    )
    args = parser.parse_args(argv)

    canary_inputs = json.loads(args.canary_file.read_text())
    started = time.perf_counter()
    result = run_sweep(
        args.model_file,
        loader="basic",
        kinds=(args.kind,),
        flips=args.flips,
        stride=args.stride,
        seed=args.seed,
        out_dir=args.out_dir,
        canary_inputs=canary_inputs,
    )
    seconds = time.perf_counter() - started

    summary = result.summaries[args.kind]
    durations: dict[str, list[float]] = {}
    for case in result.cases:
        durations.setdefault(case.verdict, []).append(case.duration)
    report = {
        "kind": args.kind,
        "seconds": seconds,
        "cases": summary.cases,
        "kind_seconds": summary.seconds,
        "verdicts": summary.verdicts,
        "skipped": summary.skipped,
        "workers": result.workers,
        "regressions": len(result.regressions),
        # Seconds from fork to exit of each case, by verdict.
        "case_seconds": {
            verdict: {
                "cases": len(times),
                "total": sum(times),
                "median": statistics.median(times),
            }
            for verdict, times in durations.items()
        },
        # CPU seconds: the sweep limits each phase of a case by CPU time.
        "phase_cpu_limits": dict(result.timeouts.seconds),
        "undamaged_phase_cpu_medians": dict(result.timeouts.medians),
        "fork_seconds": _fork_seconds(),
        # ru_maxrss is in KiB on Linux.
        "peak_self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "peak_children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
