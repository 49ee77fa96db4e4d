"""``python -m transformer.evaluate``: re-evaluation of kept checkpoints, module mixing, interventions.

Oracles: re-evaluating a run reproduces its training log exactly; modules taken from the same
checkpoint change nothing; an intervention changes the evaluation; bad input writes nothing.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from transformer import preset_config, train
from transformer.evaluate import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    cfg = preset_config("tiny", n_sequences=16 * 60, eval_every=20, keep_checkpoints="all")
    train(cfg, str(out), progress=False)
    return out


def _read(path):
    with h5py.File(path) as f:
        return {
            "eval_iter": f["eval_iter"][:],
            **{f"{g}/{m}": f[g][m][:] for g in ("icl", "flip_icl", "iwl_copy_avail") for m in f[g]},
            **{f"probes/{m}": f["probes"][m][:] for m in f["probes"]},
            "@modules_from": f.attrs.get("modules_from", ""),
        }


def test_reevaluation_reproduces_the_training_log(run, tmp_path):
    assert main([str(run), "--out", str(tmp_path / "e.h5"), "--no-progress"]) == 0
    trained, again = _read(run / "log.h5"), _read(tmp_path / "e.h5")
    for key in trained:
        if not key.startswith("@"):
            assert np.array_equal(trained[key], again[key]), key


def test_modules_from_the_same_checkpoint_change_nothing_and_others_do(run, tmp_path):
    plain, same = tmp_path / "plain.h5", tmp_path / "same.h5"
    assert main([str(run), "--out", str(plain), "--no-progress"]) == 0
    assert (
        main(
            [str(run), "--out", str(same), "--no-progress", "--modules-from", f"{run}@last:blocks.1,unembed"]
        )
        == 0
    )
    a, b = _read(plain), _read(same)
    assert np.array_equal(a["icl/loss"][-1], b["icl/loss"][-1])  # the last checkpoint is the donor
    assert not np.array_equal(a["icl/loss"][0], b["icl/loss"][0])  # earlier ones differ
    assert b["@modules_from"].endswith("@last:blocks.1,unembed")
    early = tmp_path / "early.h5"
    assert (
        main(
            [
                str(run),
                "--out",
                str(early),
                "--no-progress",
                "--modules-from",
                f"{run}@0:embed_x,embed_label,pos,blocks.0",
            ]
        )
        == 0
    )
    assert np.array_equal(_read(early)["icl/loss"][0], a["icl/loss"][0])  # checkpoint 0 is its own donor


def test_interventions_change_the_evaluation(run, tmp_path):
    out = tmp_path / "abl.h5"
    assert (
        main([str(run), "--out", str(out), "--no-progress", "--opto", "prev_token_heads:layer=0,heads=0"])
        == 0
    )
    clamped = _read(out)
    np.testing.assert_allclose(clamped["probes/prev_token_attn"][:, 0, 0], 1.0, atol=1e-6)
    with h5py.File(out) as f:
        assert '"prev_token_heads"' in f.attrs["config"]


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--modules-from", "nowhere@last:blocks.1"], "modules-from: no checkpoints"),
        (["--modules-from", "RUN@last:blocks.7"], "modules-from: no module 'blocks.7'"),
        (["--modules-from", "blocks.1"], "modules-from: expected SRC:MODULES"),
        (["--modules-from", "RUN@1e9x:unembed"], "modules-from: must be 'last' or a number"),
        (["--opto", "ablate_heads:layer=3,heads=0"], "opto: ablate_heads: layer 3 out of range"),
        (["--evaluators", "icl,bogus"], "evaluators: 'bogus' is not among"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(run, tmp_path, capsys, extra, match):
    extra = [e.replace("RUN", str(run)) for e in extra]
    out = tmp_path / "x.h5"
    assert main([str(run), "--out", str(out), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err and "\n" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_directory_without_checkpoints(tmp_path, capsys):
    assert main([str(tmp_path), "--out", str(tmp_path / "x.h5")]) == 2
    assert "run: no checkpoints" in capsys.readouterr().err


def test_icl_accuracy_split_by_target(run):
    import json

    from transformer import TrainConfig, evaluator_sets
    from transformer.log import split_by_target

    with h5py.File(run / "log.h5") as f:
        acc, target = f["icl/in_context_acc"][:], f["icl/target"][:]
        cfg = TrainConfig.from_dict(json.loads(f.attrs["config"]))
    np.testing.assert_array_equal(target, np.asarray(evaluator_sets(cfg)["icl"].target))
    split = split_by_target(run / "log.h5")
    assert set(split) == {0, 1}
    n0 = int((target == 0).sum())
    recombined = (split[0] * n0 + split[1] * (len(target) - n0)) / len(target)
    np.testing.assert_allclose(recombined, acc.mean(1), rtol=1e-6)
    again = split_by_target(run / "log.h5", targets=target)
    assert all(np.array_equal(split[k], again[k]) for k in split)


def test_trim_log_keeps_the_layout_and_the_first_sequences(run, tmp_path, read_all):
    from transformer.log import evaluator_means, split_by_target, trim_log

    src, dst = run / "log.h5", tmp_path / "trimmed.h5"
    trim_log(src, dst, 5)
    full, small = read_all(src), read_all(dst)
    assert small["@config"] == full["@config"]
    assert set(small) == set(full)  # same datasets (soft links resolve to the same groups)
    for key, value in full.items():
        if key.startswith("@"):
            continue
        group = key.split("/")[0]
        if group in ("icl", "iwl_copy_avail", "flip_icl", "pure_iwl", "train_eval", "ciwl", "flip", "iwl"):
            expect = value[..., :5] if value.ndim == 2 else value[:5]
            np.testing.assert_array_equal(small[key], expect)
        else:
            np.testing.assert_array_equal(small[key], value)
    means = evaluator_means(dst)
    np.testing.assert_allclose(means["icl/acc"], full["icl/acc"][:, :5].mean(1), rtol=1e-6)
    assert set(split_by_target(dst)) <= {0, 1}
