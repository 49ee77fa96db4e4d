"""Fig. 5.1b / 5.9b-style figure of the `cpu-quick` preset.

    python paper_figs/fig5_1b_cpu_quick.py                 # trains (≈ 10 min on 2 cores), plots
    python paper_figs/fig5_1b_cpu_quick.py --log RUN/log.h5  # plots an existing run

Writes ``paper_figs/fig5_1b_cpu_quick.png`` and prints the headline numbers (peak and final
in-context accuracies of the ICL and Flip evaluators, final CIWL, maximum IWL accuracy).
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def headline(log: str) -> dict[str, float]:
    from transformer.log import evaluator_means

    c = evaluator_means(log)
    icl, flip = c["icl/in_context_acc"], c["flip_icl/in_context_acc"]
    return {
        "icl_peak": float(icl.max()),
        "icl_peak_at": int(c["eval_iter"][icl.argmax()]),
        "icl_final": float(icl[-1]),
        "flip_peak": float(flip.max()),
        "flip_final": float(flip[-1]),
        "ciwl_final": float(c["iwl_copy_avail/in_context_acc"][-1]),
        "iwl_max": float(c["pure_iwl/acc"].max()),
        "sequences": int(c["eval_iter"][-1]),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--log", default=None, help="existing log.h5 (default: train the preset)")
    p.add_argument("--run-dir", default="runs/cpu-quick-fig")
    p.add_argument("--out", default=os.path.join(HERE, "fig5_1b_cpu_quick.png"))
    args = p.parse_args(argv)
    from transformer.plot import plot_log

    log = args.log
    if log is None:
        from transformer import preset_config, train

        log = train(preset_config("cpu-quick"), args.run_dir, resume=True)
    h = headline(log)
    plot_log(log, args.out, title=(
        f"cpu-quick: ICL peak {h['icl_peak']:.2f} -> {h['icl_final']:.2f}, "
        f"Flip peak {h['flip_peak']:.2f} -> {h['flip_final']:.2f}, "
        f"CIWL {h['ciwl_final']:.2f}, IWL max {h['iwl_max']:.2f}"))
    for k, v in h.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
