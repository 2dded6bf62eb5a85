"""Which default --forks serves a big lab: provision's no-op on one fleet with several -f values.

    python bench/forks.py [--hosts 200] [--forks 25,50,100,200] [--rounds 2]

One fleet of N hosts (tests/fleet), converged once with bench/baseline.yml; then, round after
round, one no-op run per -f value (alternating, so that a noisy moment hits every value alike):
wall time, the controller's CPU and the peak memory of its process tree, as bench/run.py measures
them. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from bench import run as benchrun  # noqa: E402
from tests.fleet import fleet as fleetmod  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--forks", default="25,50,100,200")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    forks = [int(f) for f in args.forks.split(",") if f.strip()]
    benchrun.precompile()
    figures: dict[int, list[benchrun.RunFigures]] = {f: [] for f in forks}
    with fleetmod.Fleet(args.hosts, name="forks", log=lambda m: None) as fleet:
        workdir = benchrun.run_dir(f"forks-{args.hosts}")
        cmd, env, cwd = benchrun.command_for("provision", fleet, args.hosts, workdir)
        t0 = time.monotonic()
        benchrun.converge(cmd, env, cwd)
        print(f"{args.hosts} hosts converged in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        for rnd in range(args.rounds):
            for f in forks:
                env["PROVISION_BENCH_TAG"] = uuid.uuid4().hex
                r = benchrun.run_measured(cmd + ["-f", str(f)], env, cwd, workdir / f"r{rnd}-f{f}.log", 900)
                if r.rc != 0:
                    print(f"-f {f}: rc {r.rc}, see {r.log}", file=sys.stderr)
                    return 1
                figures[f].append(r)
                print(f"  round {rnd + 1} -f {f:<4d} {r.seconds:6.2f} s  CPU {r.cpu_s:.2f} s  "
                      f"{r.peak_rss / 2**20:.0f} MB", file=sys.stderr)
    print(f"\nprovision no-op of bench/baseline.yml on {args.hosts} hosts, {args.rounds} rounds\n")
    print("| -f | wall s best / mean | controller CPU s best | peak memory MB |")
    print("|---:|---:|---:|---:|")
    for f in forks:
        runs = figures[f]
        print(f"| {f} | {min(r.seconds for r in runs):.2f} / {statistics.mean(r.seconds for r in runs):.2f} | "
              f"{min(r.cpu_s for r in runs):.2f} | {max(r.peak_rss for r in runs) / 2**20:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
