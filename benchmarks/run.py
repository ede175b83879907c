"""Measure the harness and the reference service, and write the benchmark page.

Run from the repository root::

    .venv/bin/python benchmarks/run.py [--quick] [--output PATH]

The page (``docs/benchmarks.md`` by default) gives the machine, the library
versions, the command, every figure with its target, and how each was
measured. ``--quick`` uses smaller counts and only ``-k baseline`` of the
suite, so that it finishes in about two minutes on 2 cores.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    # The benchmarks package lives in the repository next to the harness but is
    # not part of the installed project, so the repository root goes first on
    # the import path.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.runner import main

    sys.exit(main())
