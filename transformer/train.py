"""``python -m transformer.train``: entry point of the training command line (:mod:`transformer.cli`).

The training loop itself is :func:`transformer.trainer.train`, exported as ``transformer.train``.
"""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
