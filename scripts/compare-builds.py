"""Compare the result tables of two study builds exactly (e.g. before and after a refactor).

    .venv/bin/python scripts/compare-builds.py build-before/default build-after/default

Every ``results/*.parquet`` of the first build is compared with the second's by
``pandas.testing.assert_frame_equal(check_exact=True)`` (values, dtypes, index, column order),
leaving out only wall-time columns (``train_time_s``, ``*_time*``, ``wall*``). Exit status 0 when
all tables are identical, 1 otherwise.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

WALL_TIME = re.compile(r"(^|_)(time|wall)(_|$)", re.I)


def main(before: str, after: str) -> int:
    ok = True
    tables = sorted(Path(before, "results").glob("*.parquet"))
    if not tables:
        print(f"no result tables in {Path(before, 'results')}")
        return 1
    for path in tables:
        other = Path(after, "results", path.name)
        if not other.is_file():
            print(f"{path.name}: missing in {after}")
            ok = False
            continue
        a, b = pd.read_parquet(path), pd.read_parquet(other)
        ignored = sorted(c for c in set(a.columns) | set(b.columns) if WALL_TIME.search(c))
        try:
            pd.testing.assert_frame_equal(a.drop(columns=ignored, errors="ignore"),
                                          b.drop(columns=ignored, errors="ignore"), check_exact=True)
            print(f"{path.name}: {a.shape} identical; wall-time columns left out: {ignored}")
        except AssertionError as err:
            ok = False
            print(f"{path.name}: DIFFERS: {err}")
    print("ALL IDENTICAL" if ok else "DIFFERENCES")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
