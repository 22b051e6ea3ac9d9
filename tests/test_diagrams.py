"""The period map, the bifurcation diagram and the basin map."""

import numpy as np
import pytest

import dynamics
from dynamics import diagrams


@pytest.fixture(scope="module")
def logistic():
    # GD on w²/2 − w³/3 is the logistic map with μ = 1 + η (see test_chaos).
    return dynamics.run(
        {
            "name": "logistic",
            "objective": {"expr": "w**2/2 - w**3/3"},
            "start": {"w": 0.3},
            "optimizer": {"name": "sgd", "learning_rate": 2.0},
            "steps": 1000,
            "dtype": "float64",
            "classify": {"window": 64},
            "analysis": {"orbit": "w"},
            "sweep": {
                "optimizer.learning_rate": [1.9, 2.2, 2.5, 2.99],
                "start.w": [0.1, 0.3, 1.5],
            },
        }
    )


def legend(fig):
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    return {t.rsplit(" (", 1)[0]: int(t.rsplit(" (", 1)[1].rstrip(")")) for t in texts}


def test_the_period_map_counts_each_class(logistic):
    counts = legend(diagrams.plot_period_map(logistic))
    # Per learning rate, starts 0.1 and 0.3 stay in the invariant interval
    # [-1/η, 1]; 1.5 escapes.
    assert counts["fixed point"] == 2
    assert counts["period 2"] == 2
    assert counts["period 4"] == 2
    assert counts["chaotic, λ > 0.02"] == 2
    assert counts["diverged"] == 4
    assert sum(counts.values()) == logistic["regime"].size


def test_the_bifurcation_diagram_plots_every_late_iterate(logistic):
    fig = diagrams.plot_bifurcation(logistic, x="optimizer.learning_rate")
    top, bottom = fig.axes
    points = top.collections[0].get_offsets()
    orbit = logistic["orbit"].isel({"start.w": 0}).values
    assert len(points) == np.isfinite(orbit).sum() == orbit.size
    # At η = 2.2 the orbit is the 2-cycle: two distinct values only.
    at = np.asarray(points)[np.isclose(np.asarray(points)[:, 0], 2.2)][:, 1]
    assert len(np.unique(np.round(at, 9))) == 2
    assert bottom.get_ylabel() == "Lyapunov exponent λ"
    line = bottom.lines[0].get_ydata()
    np.testing.assert_allclose(
        line, logistic["lyapunov"].isel({"start.w": 0}).values, equal_nan=True
    )


def test_without_an_orbit_the_diagram_says_how_to_get_one(seed):
    ds = dynamics.run(seed)
    with pytest.raises(ValueError, match="set analysis.orbit"):
        diagrams.plot_bifurcation(ds)


def test_the_basin_map_marks_each_minimum():
    ds = dynamics.run(
        {
            "objective": {"name": "double_well"},
            "start": {"w": 0.5},
            "optimizer": {"name": "sgd", "learning_rate": 0.01},
            "steps": 300,
            "sweep": {
                "start.w": {"linspace": [-2, 2], "num": 40},
                "optimizer.learning_rate": [0.01, 0.02, 2.0],
            },
        }
    )
    counts = legend(diagrams.plot_basin_map(ds))
    assert counts == {"0: w=-1": 40, "1: w=1": 40, "diverged": 40, "not converged": 0}


def test_runs_write_the_new_figures(tmp_path, logistic):
    config = logistic.attrs["config"]
    (tmp_path / "c.yaml").write_text(config)
    dynamics.run(str(tmp_path / "c.yaml"), out=str(tmp_path / "out"))
    names = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert names == [
        "bifurcation.png",
        "cost_tangent.png",
        "descent_path.png",
        "period_map.png",
        "stability_map.png",
    ]
