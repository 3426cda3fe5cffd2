"""Compare the metrics of two results folders, timings apart: did a run reproduce another?

    python bench/compare_results.py OLD_RESULTS_DIR [NEW_RESULTS_DIR]   # default new: results/

Prints, per results file, the metrics that differ (timing metrics, whose names match TIMINGS, are
skipped), and exits 1 when any differs, 0 when every shared metric is identical.
"""
import argparse
import json
import re
import sys
from pathlib import Path

TIMINGS = r"seconds|per_second|measured_speedup|gflops|fraction_of_peak|_now$|over_|_ratio"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path, nargs="?", default=Path(__file__).parents[1] / "results")
    args = p.parse_args(argv)
    differ = 0
    for old_path in sorted(args.old.glob("*.json")):
        new_path = args.new / old_path.name
        if not new_path.exists():
            print(f"{old_path.name}: missing in {args.new}")
            continue
        old, new = (json.loads(p.read_text())["metrics"] for p in (old_path, new_path))
        shared = [k for k in old if k in new and not re.search(TIMINGS, k)]
        diffs = [k for k in shared if old[k] != new[k]]
        differ += len(diffs)
        print(f"{old_path.name}: {len(shared) - len(diffs)} of {len(shared)} metrics identical"
              + "".join(f"\n  {k}: {old[k]} -> {new[k]}" for k in diffs))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
