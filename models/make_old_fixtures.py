"""Remake the model files pickled by an old scikit-learn, for version-mismatch tests.

Run it through tox, which pins scikit-learn 1.2.2, numpy 1.26.4, a scipy and a
joblib that work with them::

    tox -e old-fixtures

It trains the ``v1`` settings of ``models/train.py`` and writes
``models/fixtures/sklearn-1.2.2/{global_model.pkl,champion_model.pkl}`` and a
``reference.json`` whose entries (``global_model@sklearn-1.2.2``, ...) record the
canary outputs and library versions of that environment. On scikit-learn 1.9.1
the random forest fails to load (ValueError about the node array dtype) and the
logistic regression pipeline loads with an InconsistentVersionWarning.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import sklearn

from models.train import train_models

OLD_SKLEARN = "1.2.2"
LABEL = f"sklearn-{OLD_SKLEARN}"
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures" / LABEL


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.make_old_fixtures", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=FIXTURES_DIR,
        help=f"directory to write the files to (default: {FIXTURES_DIR})",
    )
    args = parser.parse_args(argv)

    if sklearn.__version__ != OLD_SKLEARN:
        print(
            f"error: scikit-learn {sklearn.__version__} is running, but these files "
            f"must be pickled by scikit-learn {OLD_SKLEARN}; run `tox -e old-fixtures`",
            file=sys.stderr,
        )
        return 2

    reference = train_models(
        args.out, versions=("v1",), label=LABEL, file_name="{name}.pkl"
    )
    for key, entry in sorted(reference["models"].items()):
        print(f"{key}: {args.out / entry['file']} ({entry['size']} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
