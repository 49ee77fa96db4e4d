"""Speed of a blind bridge fit of one held-out case (target: under 60 s, compilation included).

The case is the paper setting, seed 7 (full-vector GD, :mod:`bridge.heldout`: 160 evaluations,
random time scale and loss maps, 1–2% noise). Measured in one fresh process:

* :func:`bridge.fitting.fit_curves` with the CLI's defaults but no profiles (the exact family, two
  independent searches — each a screen of 48 candidates × 25 spans, CMA-ES, 8 starts of Adam 40 +
  LM ≤ 120 —, the polish; ``--family``/``--search``/``--searches`` choose others), compilation
  included;
* the same fit again, warm;
* the profile-likelihood intervals alone (warm; ``python -m bridge.fit`` computes them unless
  ``--no-profile``).

With ``--persistent-cache``, also the first and second fit of two fresh processes sharing a new
persistent compilation cache (what ``python -m bridge.fit`` does: its entry point enables the
cache, :func:`toymodels._internal.enable_persistent_cache`): the second process loads the compiled
programs instead of compiling them.

Run: ``python benchmarks/bridge_speed.py``. Wall-clock numbers depend on the machine's load, so the
process's CPU time is printed too (on a shared machine, CPU time is the load-independent figure).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bridge.fitting import SEARCHES, FitSettings, fit_curves  # noqa: E402
from bridge.heldout import Setting, heldout_cases, score  # noqa: E402
from bridge.searches import available_cores, search_workers  # noqa: E402
from bridge.spec import FAMILIES, spec_for  # noqa: E402


def timed(f):
    t, c = time.perf_counter(), time.process_time()
    out = f()
    return out, time.perf_counter() - t, time.process_time() - c


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", choices=tuple(FAMILIES), default=None, help="default: the fit's own")
    p.add_argument("--search", choices=SEARCHES, default=None, help="default: the fit's own")
    p.add_argument("--searches", type=int, default=None, help="default: the fit's own")
    p.add_argument("--workers", type=int, default=None, help="threads for the searches (default: the fit's)")
    p.add_argument(
        "--persistent-cache", action="store_true", help="also two fresh processes sharing a compilation cache"
    )
    p.add_argument("--one-fit", action="store_true", help=argparse.SUPPRESS)  # a child of --persistent-cache
    args = p.parse_args(argv)
    if args.one_fit:  # before any compilation: JAX reads the cache's place once, at the first one
        from toymodels._internal import enable_persistent_cache

        enable_persistent_cache()
    case = heldout_cases([Setting("paper", seeds=(7,))])[0]
    spec = spec_for(["icl", "ciwl", "total"], free=None if args.family is None else FAMILIES[args.family])
    settings = FitSettings(profile=False)
    if args.search is not None:
        settings = dataclasses.replace(settings, search=args.search)
    if args.searches is not None:
        settings = dataclasses.replace(settings, searches=args.searches)
    if args.workers is not None:
        settings = dataclasses.replace(settings, workers=args.workers)
    if args.one_fit:
        _, wall, cpu = timed(lambda: fit_curves(case.curves, spec, settings))
        print(f"{wall:.1f} {cpu:.1f}")
        return 0
    print(
        f"blind fit of {case.name}: 3 curves × {case.curves.n_points} points, {len(spec.free)} free "
        f"parameters, search {settings.search} × {settings.searches}, {settings.n_starts} starts, "
        f"{settings.n_candidates} candidates, {search_workers(settings)} worker(s); "
        f"{available_cores()} cores available, load average {os.getloadavg()[0]:.1f}"
    )
    result, cold, cold_cpu = timed(lambda: fit_curves(case.curves, spec, settings))
    print(f"fit_curves, fresh process (incl. compilation): {cold:6.1f} s wall, {cold_cpu:6.1f} s CPU")
    result, warm, warm_cpu = timed(lambda: fit_curves(case.curves, spec, settings))
    print(f"fit_curves, warm:                              {warm:6.1f} s wall, {warm_cpu:6.1f} s CPU")
    prof, pw, pc = timed(lambda: fit_curves(case.curves, spec, dataclasses.replace(settings, profile=True)))
    print(
        f"fit_curves with profiles, warm:                {pw:6.1f} s wall, {pc:6.1f} s CPU "
        f"(profiles ≈ {pw - warm:.1f} s wall)"
    )
    s = score(result, case.truth)
    print(f"score: {s}")
    if args.persistent_cache:
        child = [sys.executable, os.path.abspath(__file__), "--one-fit"]
        chosen = (("family", args.family), ("search", args.search), ("searches", args.searches))
        chosen += (("workers", args.workers),)
        child += [f"--{k}={v}" for k, v in chosen if v]
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "ICL_COOPETITION_CACHE_DIR": cache}
            for label in ("first process (fills the cache)", "second process (loads it)   "):
                out = subprocess.run(child, env=env, capture_output=True, text=True, check=True).stdout
                wall, cpu = (float(x) for x in out.split()[-2:])
                print(f"fit_curves, fresh process, {label}: {wall:6.1f} s wall, {cpu:6.1f} s CPU")
    ok = min(cold, cold_cpu) < 60.0
    print(f"target (< 60 s incl. compilation; wall, or CPU under load): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
