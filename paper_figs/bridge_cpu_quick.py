"""Bridge on a real transformer run: fitted toy overlaid on the transformer's curves, and the fit table.

    python paper_figs/bridge_cpu_quick.py --log RUN/log.h5 [--starts 8]

Fits the coopetition toy to the run's ICL, CIWL and training-loss (``train_eval``) curves with
:func:`bridge.fitting.fit_curves` (defaults of ``python -m bridge.fit``: the exact family, CMA-ES)
and writes
``paper_figs/bridge_cpu_quick_overlay.png`` (overlay, residuals, toy in its own units),
``paper_figs/bridge_cpu_quick_fit.json`` (the full ``fit.json``) and
``paper_figs/bridge_cpu_quick_fit.md`` (parameter table with standard errors, R² per curve,
transience prediction vs the transformer's own ICL peak, and the run it came from).
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
# the run's config entries quoted in the table
CONFIG_KEYS = (
    "n_classes",
    "n_exemplars",
    "synth_dim",
    "lr",
    "lr_steps",
    "batch_size",
    "n_sequences",
    "eval_every",
    "n_eval",
)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--log", required=True, help="transformer log.h5 (a cpu-quick run)")
    p.add_argument("--starts", type=int, default=8)
    p.add_argument("--candidates", type=int, default=48, help="random parameter sets screened for the starts")
    p.add_argument("--no-profile", action="store_true", help="skip the profile-likelihood intervals")
    p.add_argument("--lm-steps", type=int, default=120, help="Levenberg–Marquardt iteration cap per start")
    p.add_argument("--skip-first", type=int, default=0, help="leave out the first N evaluations")
    p.add_argument(
        "--max-seen", type=float, default=None, help="fit only evaluations up to this many sequences seen"
    )
    p.add_argument("--family", choices=("exact", "typical"), default=None, help="default: the fit's (exact)")
    p.add_argument("--search", choices=("cmaes", "screen"), default=None, help="default: the fit's (cmaes)")
    p.add_argument("--prefix", default="bridge_cpu_quick", help="output file prefix in paper_figs/")
    args = p.parse_args(argv)

    from bridge import (
        FAMILIES,
        FitSettings,
        OptimiserSettings,
        fit_curves,
        fit_dict,
        overlay_figure,
        read_log,
        spec_for,
        summary_lines,
        table_markdown,
        write_json_atomic,
    )
    from toymodels._internal import write_text_atomic
    from toymodels.plotting import save_figure

    names = ("icl", "ciwl", "total")
    curves = read_log(args.log, names, skip_first=args.skip_first, max_seen=args.max_seen)
    settings = FitSettings(
        n_starts=args.starts,
        n_candidates=args.candidates,
        profile=not args.no_profile,
        optimiser=OptimiserSettings(lm_steps=args.lm_steps),
        **({} if args.search is None else {"search": args.search}),
    )
    free = None if args.family is None else FAMILIES[args.family]
    result = fit_curves(curves, spec_for(names, free=free), settings)
    d = fit_dict(result)
    if not result.converged:  # loud: no figure or table presents a failed fit as a result
        print(f"error: fit did not converge: {result.failure}", file=sys.stderr)
        return 3
    base = os.path.join(HERE, args.prefix)
    save_figure(overlay_figure(result), base + "_overlay.png")
    write_json_atomic(d, base + "_fit.json")
    cfg = curves.config
    lines = [
        "# Bridge fit of a transformer run\n",
        f"Log: `{args.log}` ({curves.n_points} evaluations up to {int(curves.seen[-1])} sequences seen).",
        "Run config: " + ", ".join(f"{k}={cfg[k]}" for k in CONFIG_KEYS if k in cfg) + ".",
        f"Command: `python paper_figs/bridge_cpu_quick.py --log {args.log} --starts {args.starts} "
        f"--candidates {args.candidates} --lm-steps {args.lm_steps} --skip-first {args.skip_first}"
        + (f" --family {args.family}" if args.family else "")
        + (f" --search {args.search}" if args.search else "")
        + (" --no-profile" if args.no_profile else "")
        + (f" --max-seen {args.max_seen:g}" if args.max_seen else "")
        + "`\n",
        table_markdown([("fit", d)]),
        "```",
        *summary_lines(result),
        "```",
    ]
    write_text_atomic(base + "_fit.md", "\n".join(lines) + "\n")
    print("\n".join(summary_lines(result)))
    print(f"wrote {base}_overlay.png, {base}_fit.json, {base}_fit.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
