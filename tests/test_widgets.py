"""The slider app, driven headless: callbacks change the plotted data as the maths says."""

import numpy as np
import pytest

from toymodels.widgets import CURVES, SliderApp, SliderParams, slider_run


@pytest.fixture(scope="module")
def app():
    return SliderApp(SliderParams(mu1=0.1, alpha=0.1, seed=7), display_figure=False)


def _ydata(app):
    return {k: np.asarray(app.lines[k].get_ydata(), dtype=float) for k in CURVES}


def test_initial_panel_is_the_paper_run(app):
    p, t, curves, summary = app.last
    assert p == SliderParams() and summary["verdict"] == "transient"  # thesis Fig. 5.9a
    assert 5500 <= summary["m1_min_time"] <= 5800 and summary["stop"] == 9620
    y = _ydata(app)
    np.testing.assert_allclose(y["mechanism_1_loss"][:10], curves["mechanism_1_loss"][:10] + 0.1)  # L_M1 + μ₁
    np.testing.assert_allclose(y["competition"][:10], curves["competition"][:10])
    assert np.asarray(app.lines["loss"].get_xdata())[-1] == 16000


def test_sliders_redraw_with_the_new_configuration(app):
    before = _ydata(app)
    app.widgets["mu1"].value = 0.0
    after = _ydata(app)
    assert app.last[0].mu1 == 0.0 and app.last[3]["verdict"] != "transient"
    assert not np.allclose(
        before["mechanism_1_loss"][:50], after["mechanism_1_loss"][:50]
    )  # offset μ₁ removed
    # a dimension slider: d shorter → the competition term starts from a different value
    app.widgets["dim_d"].value = 80
    assert app.last[0].dims == (20, 20, 20, 80)
    assert _ydata(app)["competition"][0] != after["competition"][0]
    # the plotted data equal a direct call of the pure function
    t, curves, _ = slider_run(app.params())
    np.testing.assert_array_equal(np.asarray(app.lines["loss"].get_xdata()), t)
    np.testing.assert_allclose(_ydata(app)["loss"], np.where(curves["loss"] > 0, curves["loss"], np.nan))
    assert app.last_update_s < 5.0  # no recompilation for μ₁ or dims (typically tens of ms)
    app.widgets["dim_d"].value = 160


def test_log_toggle_and_clamps(app):
    app.widgets["alpha_log"].value = True
    app.widgets["alpha"].value = 0.3  # the hidden linear slider no longer drives α
    assert app.params().alpha == pytest.approx(0.1)
    app.widgets["alpha_log"].value = False
    app.widgets["clamp_b"].value = True
    app.widgets["clamp_c"].value = True
    p, t, curves, _ = app.last
    assert p.clamps == ("b", "c")
    # b and c at their targets: mechanism 1 learns a alone, with no plateau: below half its start by step 200
    m1 = curves["mechanism_1_loss"]
    assert m1[20] < 0.5 * m1[0]
    assert "update" in app.status.value


def test_bad_parameters_are_refused():
    from toymodels.errors import ConfigError

    with pytest.raises(ConfigError):
        SliderParams(mu1=-1.0)
    with pytest.raises(ConfigError):
        SliderParams(dim_a=0)
