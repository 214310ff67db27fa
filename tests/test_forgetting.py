"""Continual-learning matrix metrics (ft_plugin.continual.forgetting)."""

from __future__ import annotations

import pytest

from ft_plugin.continual.forgetting import forgetting_metrics, plot_forgetting_matrix

# R[k][i]: accuracy on task i after stage k (task k trained at stage k).
R = [
    [0.80, 0.10, 0.20],
    [0.85, 0.90, 0.30],
    [0.50, 0.70, 0.95],
]
BASELINE = [0.10, 0.05, 0.20]


def test_gem_definitions_on_a_hand_computed_3x3_example():
    m = forgetting_metrics(R, BASELINE)
    # ACC = (0.50 + 0.70 + 0.95) / 3
    assert m["average_accuracy"] == pytest.approx(2.15 / 3)
    # BWT = ((R20 - R00) + (R21 - R11)) / 2 = ((0.50 - 0.80) + (0.70 - 0.90)) / 2
    assert m["bwt_per_task"] == pytest.approx([-0.30, -0.20])
    assert m["bwt"] == pytest.approx(-0.25)
    # FWT = ((R01 - b1) + (R12 - b2)) / 2 = ((0.10 - 0.05) + (0.30 - 0.20)) / 2
    assert m["fwt_per_task"] == pytest.approx([0.05, 0.10])
    assert m["fwt"] == pytest.approx(0.075)
    # forgetting: task 0 peaked after stage 1 (0.85), so it lost 0.35; task 1 lost 0.20
    assert m["forgetting_per_task"] == pytest.approx([0.35, 0.20])
    assert m["forgetting"] == pytest.approx(0.275)
    assert m["n_tasks"] == 3 and m["higher_is_better"] is True


def test_fwt_needs_a_baseline_and_single_task_has_no_transfer():
    assert forgetting_metrics(R)["fwt"] is None
    single = forgetting_metrics([[0.4]], [0.1])
    assert single["average_accuracy"] == pytest.approx(0.4)
    assert single["bwt"] is None and single["fwt"] is None and single["forgetting"] is None


def test_lower_is_better_is_negated_so_positive_always_means_improvement():
    ppl = [
        [10.0, 50.0, 40.0],
        [12.0, 8.0, 30.0],
        [15.0, 9.0, 6.0],
    ]
    m = forgetting_metrics(ppl, [40.0, 60.0, 45.0], higher_is_better=False)
    assert m["average_accuracy"] == pytest.approx(10.0)  # raw mean final perplexity
    # bwt = mean(R[i][i] - R[T-1][i]) = ((10 - 15) + (8 - 9)) / 2: perplexity went up
    assert m["bwt"] == pytest.approx(-3.0)
    # fwt = mean(baseline[i] - R[i-1][i]) = ((60 - 50) + (45 - 30)) / 2: earlier tasks helped
    assert m["fwt"] == pytest.approx(12.5)
    # forgetting = mean(R[T-1][i] - min_{k<T-1} R[k][i]) = ((15 - 10) + (9 - 8)) / 2
    assert m["forgetting"] == pytest.approx(3.0)
    # same as the higher-is-better metrics of -R
    negated = forgetting_metrics([[-v for v in row] for row in ppl], [-40.0, -60.0, -45.0])
    for key in ("bwt", "fwt", "forgetting"):
        assert m[key] == pytest.approx(negated[key])


def test_untrained_tasks_may_be_nan():
    nan = float("nan")
    lower = [[0.8, nan, nan], [0.6, 0.9, nan], [0.5, 0.7, 0.95]]
    m = forgetting_metrics(lower, BASELINE)
    assert m["fwt"] is None  # needs R[i-1][i]
    assert m["bwt"] == pytest.approx(-0.25)
    assert m["forgetting"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([], "non-empty"),
        ([[0.1, 0.2], [0.3]], "ragged"),
        ([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], "square"),
        ([[0.1], [0.2]], "square"),
        ([[0.1, 0.2], [float("nan"), 0.3]], "finite"),
        ([[0.1, float("inf")], [0.2, 0.3]], "finite"),
        ([0.1, 0.2], "row"),
    ],
)
def test_bad_shapes_raise(matrix, message):
    with pytest.raises(ValueError, match=message):
        forgetting_metrics(matrix)


def test_baseline_length_is_checked():
    with pytest.raises(ValueError, match="baseline"):
        forgetting_metrics(R, [0.1, 0.2])


def test_plot_writes_a_png(tmp_path):
    path = plot_forgetting_matrix(
        [[0.8, float("nan")], [0.6, 0.9]],
        ["after law", "after 医学"],
        ["law", "医学"],
        tmp_path / "plots" / "matrix.png",
        "accuracy",
    )
    assert path == tmp_path / "plots" / "matrix.png"
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    ppl = plot_forgetting_matrix(
        R, ["s0", "s1", "s2"], ["a", "b", "c"], tmp_path / "p.png", "ppl", higher_is_better=False
    )
    assert ppl.stat().st_size > 1000
    with pytest.raises(ValueError, match="task name"):
        plot_forgetting_matrix(R, ["s0", "s1", "s2"], ["a", "b"], tmp_path / "x.png", "acc")
    assert not (tmp_path / "x.png").exists()
