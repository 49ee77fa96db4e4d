"""submitit executors for the sweeps (toy and transformer): one place that turns the command-line
executor name and SLURM options into a configured executor."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

SUBMITIT_EXECUTORS = ("local", "slurm")


def submitit_executor(kind: str, folder: str, slurm: dict[str, Any] | None = None):
    """A submitit executor writing its job files under ``folder``.

    ``kind``: ``local`` (subprocesses on this machine) or ``slurm``. ``slurm`` options (all optional):
    ``time`` (minutes per job, default 60), ``partition``, ``gpus`` (per node), ``cpus`` (per task),
    ``mem_gb``, ``array_parallelism`` (default 64). :class:`ConfigError` on ``executor`` when submitit
    is missing or there is no SLURM on this machine.
    """
    slurm = slurm or {}
    if kind not in SUBMITIT_EXECUTORS:
        raise ConfigError("executor", f"must be one of {SUBMITIT_EXECUTORS} (got {kind!r})")
    try:
        import submitit
    except ImportError:
        raise ConfigError(
            "executor", f"--executor {kind} needs submitit (pip install 'icl-coopetition[cluster]')"
        ) from None
    if kind == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=int(slurm.get("time") or 60))
        return ex
    try:
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    except RuntimeError as e:  # submitit: no srun/sbatch on this machine
        raise ConfigError("executor", f"--executor slurm: {e}") from None
    params: dict[str, Any] = {
        "timeout_min": int(slurm.get("time") or 60),
        "slurm_array_parallelism": int(slurm.get("array_parallelism") or 64),
    }
    if slurm.get("partition"):
        params["slurm_partition"] = slurm["partition"]
    if slurm.get("gpus"):
        params["gpus_per_node"] = int(slurm["gpus"])
    if slurm.get("cpus"):
        params["cpus_per_task"] = int(slurm["cpus"])
    if slurm.get("mem_gb"):
        params["mem_gb"] = float(slurm["mem_gb"])
    ex.update_parameters(**params)
    return ex


__all__ = ["SUBMITIT_EXECUTORS", "submitit_executor"]
