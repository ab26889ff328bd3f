"""Month-segmented TOWT (CalTRACK hourly): weights, out-of-sample gain on a seasonal schedule,
savings recovered, the uncertainty's linear form, persistence and the n′ ≤ p refusal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from epcwatch.savings import synthetic, towt, towt_monthly
from epcwatch.savings.engine import hourly_observations
from epcwatch.savings.evidence import cv_score
from epcwatch.savings.models import FittedModel, Observations
from epcwatch.savings.savings import avoided_energy
from epcwatch.savings.selection import evaluate, select
from epcwatch.savings.stats import DegreesOfFreedomError


def _seasonal(seed: int = 1, noise: float = 5.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two years of the synthetic office; in June–August an evening shift (18:00–23:00,
    +50 kWh/h) runs that the rest of the year does not. Retrofit on 2025-01-01."""
    f = synthetic.hourly("2024-01-01", "2025-12-31", seed=seed, noise_kwh=noise)
    ts = pd.to_datetime(f["timestamp"])
    evening = ts.dt.month.isin([6, 7, 8]) & (ts.dt.hour >= 18) & (ts.dt.hour < 23)
    f.loc[evening, ["energy", "counterfactual"]] += 50.0
    base = f[ts < "2025-01-01"].reset_index(drop=True)
    rep = f[ts >= "2025-01-01"].reset_index(drop=True)
    return base, rep


@pytest.fixture(scope="module")
def seasonal() -> tuple[Observations, Observations, float]:
    base, rep = _seasonal()
    true = float((rep["counterfactual"] - rep["energy"]).sum())
    return hourly_observations(base), hourly_observations(rep), true


def test_window_weights_are_cyclic() -> None:
    month = np.arange(1, 13, dtype=np.int64)
    w = towt_monthly.window_weights(month, 1)
    assert w.tolist() == [1.0, 0.5] + [0.0] * 9 + [0.5]
    assert towt_monthly.window_weights(month, 7).tolist() == [0.0] * 5 + [0.5, 1.0, 0.5] + [0.0] * 4


def test_each_month_is_a_weighted_least_squares_fit(
    seasonal: tuple[Observations, Observations, float],
) -> None:
    """Month m's model equals a direct least-squares fit of √w·X on √w·y (weights 1 and 0.5)
    and differs from the unweighted fit of the same three months."""
    ob, _, _ = seasonal
    model = towt_monthly.fit(ob)
    for m in (1, 7):
        w = towt_monthly.window_weights(ob.month, m)
        sub = ob.select(w > 0)
        ws = w[w > 0]
        x = towt.design(sub, towt_monthly.segment_extra(model, m))[0]
        sw = np.sqrt(ws)
        direct = np.linalg.lstsq(x * sw[:, None], sub.energy * sw, rcond=None)[0]
        unweighted = np.linalg.lstsq(x, sub.energy, rcond=None)[0]
        ours = x @ towt_monthly.segment_beta(model, m)
        np.testing.assert_allclose(ours, x @ direct, rtol=1e-7, atol=1e-6)
        assert np.max(np.abs(ours - x @ unweighted)) > 1.0


def test_seasonal_schedule_is_predicted_better_and_savings_recovered(
    seasonal: tuple[Observations, Observations, float],
) -> None:
    ob, orp, true = seasonal
    sel = select(ob, "towt-monthly")
    seg = next(c for c in sel.candidates if c.model.type == "towt-monthly")
    flat = next(c for c in sel.candidates if c.model.type == "towt")
    assert cv_score(seg.model, ob) < 0.97 * cv_score(flat.model, ob)
    assert sel.chosen.model.type == "towt-monthly"
    _, summary = avoided_energy(seg.model, seg.stats, orp, uncertainty=seg.uncertainty)
    err = summary.avoided_energy_use - true
    assert abs(err) < 0.07 * true
    assert abs(err) < summary.uncertainty["90"]
    _, flat_summary = avoided_energy(flat.model, flat.stats, orp, uncertainty=flat.uncertainty)
    assert abs(err) < abs(flat_summary.avoided_energy_use - true)


def test_savings_error_is_the_stated_linear_form(seasonal: tuple[Observations, Observations, float]) -> None:
    """The uncertainty's w: perturbing the baseline energy by ε moves the summed reporting
    prediction by exactly wᵀε (coefficients refitted, non-linear parameters fixed)."""
    ob, orp, _ = seasonal
    model = towt_monthly.fit(ob)
    fr = evaluate(model, ob)
    assert fr.uncertainty is not None and fr.uncertainty.segments is not None
    g = model.summed_design(orp, np.ones(len(orp)))
    w = fr.uncertainty.weights(g[:, None])[:, 0]
    eps = np.random.default_rng(3).normal(0.0, 10.0, len(ob))
    moved = Observations(
        energy=ob.energy + eps,
        temp=ob.temp,
        frequency=ob.frequency,
        hour_of_week=ob.hour_of_week,
        lagged=ob.lagged,
        month=ob.month,
    )
    delta = float(towt_monthly.refit(model, moved).predict(orp).sum() - model.predict(orp).sum())
    assert delta == pytest.approx(float(w @ eps), rel=1e-6)
    assert 200 < fr.stats.p < 12 * 200  # effective parameters: trace of the hat matrix


def test_saved_model_predicts_identically(seasonal: tuple[Observations, Observations, float]) -> None:
    import json

    ob, orp, _ = seasonal
    model = towt_monthly.fit(ob)
    again = FittedModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_array_equal(again.predict(orp), model.predict(orp))


def test_month_with_too_few_effective_hours_is_refused() -> None:
    """Strongly autocorrelated residuals leave a month fewer effective hours than parameters:
    the segmented model is refused with the typed error and the choice falls back to TOWT."""
    base, _ = _seasonal(seed=2)
    rng = np.random.default_rng(5)
    e = np.zeros(len(base))
    z = rng.normal(0.0, 8.0, len(base))
    for i in range(1, len(e)):
        e[i] = 0.995 * e[i - 1] + z[i]
    base["energy"] = base["energy"] + e
    ob = hourly_observations(base)
    with pytest.raises(DegreesOfFreedomError, match="calendar month"):
        towt_monthly.fit(ob)
    sel = select(ob, "towt-monthly")
    assert sel.chosen.model.type == "towt" and "refused" in sel.criterion


def test_cli_names_the_segmented_model_and_saves_it(tmp_path) -> None:
    """`savings fit --model towt-monthly` on hourly rows: the JSON names the model, its
    segmentation and the out-of-sample comparison, and the saved model predicts as fitted."""
    import json

    from typer.testing import CliRunner

    from epcwatch.cli import app

    base, rep = _seasonal()
    synthetic.to_csv(pd.concat([base, rep], ignore_index=True), str(tmp_path / "h.csv"))
    saved = tmp_path / "model.json"
    res = CliRunner().invoke(
        app,
        [
            "savings", "fit", "--data", str(tmp_path / "h.csv"), "--baseline", "2024-01-01/2024-12-31",
            "--reporting", "2025-01-01/2025-12-31", "--model", "towt-monthly", "--json",
            "--save-model", str(saved),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output[res.output.index("{") :])  # warnings precede the JSON
    assert doc["model"]["type"] == "towt-monthly"
    assert "adjacent months at weight 0.5" in doc["model"]["segmentation"]
    assert "out-of-sample CV(RMSE)" in doc["model"]["selection_criterion"]
    assert doc["uncertainty"]["standard_error"] > 0
    again = FittedModel.from_dict(json.loads(saved.read_text()))
    assert again.type == "towt-monthly" and len(again.coefficients) > 12 * 168
