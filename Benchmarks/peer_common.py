"""What the framework peers (pytorch/peer.py, jax/peer.py) share: their command line and the
timed loop. Each peer adds its own model; both print one JSON line with --json."""
import argparse
import statistics
import sys
import time


def parse_args(doc, cases, what="case", extra=None):
    """CASE [--repeats N] [--warmup W] [--threads T] [--json], plus flags from `extra(parser)`;
    an unknown case exits 2 naming the known ones."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("case")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    if extra:
        extra(ap)
    args = ap.parse_args()
    if args.case not in cases:
        print(f"unknown {what} '{args.case}'; cases: {', '.join(cases)}", file=sys.stderr)
        sys.exit(2)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    return args


def time_steps(step, repeats):
    """Runs `step` `repeats` times (it must block until its result is ready); returns the seconds
    of each run and their median, logging each run on stderr."""
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        print(f"repeat {i + 1}/{repeats}: {times[-1] * 1e3:.1f} ms", file=sys.stderr)
    return times, statistics.median(times)
