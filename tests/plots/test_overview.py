"""The overview figure (rmqm.plots.overview): one forest-plot row per claim, coloured by verdict."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from rmqm.plots.overview import VERDICT_COLORS, plot_claims_overview  # noqa: E402

NAN = float("nan")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def rows(group: bool = True) -> pd.DataFrame:
    table = pd.DataFrame({
        "label": ["RMQM ranks encoders", "SynBench matches probing on faces", "SynBench matches probing on digits",
                  "a claim without estimate"],
        "estimate": [0.4, -0.3, 0.1, NAN], "ci_low": [0.1, -0.6, -0.5, NAN], "ci_high": [0.7, -0.1, 0.8, NAN],
        "verdict": ["supported", "contradicted", "inconclusive", "not measurable"],
        "group": ["primary", "claim 1", "claim 1", "other"],
    })
    return table if group else table.drop(columns="group")


def interval_lines(ax) -> dict[float, tuple[tuple[float, float], str]]:
    """y -> ((low, high), colour) of the two-point horizontal lines (the intervals)."""
    out = {}
    for line in ax.get_lines():
        x, y = line.get_xdata(), line.get_ydata()
        if len(x) == 2 and y[0] == y[1] and x[0] != x[1]:
            out[float(y[0])] = ((float(x[0]), float(x[1])), to_hex(line.get_color()))
    return out


def test_one_row_per_claim_and_a_heading_per_group():
    fig = plot_claims_overview(rows())
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    # 4 claims + 3 group headings; the claim-1 rows drop the words they share with their heading
    assert labels == ["primary", "RMQM ranks encoders", "claim 1: SynBench matches probing on \u2026", "faces",
                      "digits", "other", "a claim without estimate"]
    bold = [t.get_text() for t in ax.get_yticklabels() if t.get_fontweight() == "bold"]
    assert bold == ["primary", "claim 1: SynBench matches probing on \u2026", "other"]


def test_intervals_are_coloured_by_verdict_and_placed_top_down():
    fig = plot_claims_overview(rows(group=False))
    lines = interval_lines(fig.axes[0])
    # four rows, top (y = 3) to bottom (y = 0); the claim without an interval draws none
    assert lines == {3.0: ((0.1, 0.7), VERDICT_COLORS["supported"].lower()),
                     2.0: ((-0.6, -0.1), VERDICT_COLORS["contradicted"].lower()),
                     1.0: ((-0.5, 0.8), VERDICT_COLORS["inconclusive"].lower())}
    texts = [t.get_text().strip() for t in fig.axes[0].texts]
    assert texts == ["no estimate"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == list(VERDICT_COLORS)  # every verdict present, in the fixed order


def test_unadjusted_verdicts_take_their_word_colour_and_an_open_dot():
    table = rows(group=False)
    table.loc[0, "verdict"] = "unadjusted: supported"
    ax = plot_claims_overview(table).axes[0]
    assert interval_lines(ax)[3.0] == ((0.1, 0.7), VERDICT_COLORS["supported"].lower())
    dots = [line for line in ax.get_lines() if len(line.get_xdata()) == 1]
    assert to_hex(dots[0].get_markerfacecolor()) == "#ffffff"  # open: no p-value
    assert to_hex(dots[1].get_markerfacecolor()) == VERDICT_COLORS["contradicted"].lower()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [*VERDICT_COLORS, "unadjusted (no p)"]


def test_long_labels_are_cut_in_the_middle():
    table = rows(group=False)
    table.loc[0, "label"] = "RMQM (PGD displacement) predicts 1-NN accuracy on faces better than alpha-ReQ (spearman)"
    label = plot_claims_overview(table).axes[0].get_yticklabels()[0].get_text()
    assert len(label) <= 52 and label.startswith("RMQM (PGD") and label.endswith("alpha-ReQ (spearman)")
    assert "\u2026" in label


def test_height_grows_with_rows():
    small = plot_claims_overview(rows(group=False)).get_size_inches()[1]
    many = pd.concat([rows(group=False)] * 5, ignore_index=True)
    assert plot_claims_overview(many).get_size_inches()[1] == pytest.approx(small + 16 * 0.22)


def test_bad_input_named():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['verdict'\]"):
        plot_claims_overview(rows().drop(columns="verdict"))
    with pytest.raises(ValueError, match="empty"):
        plot_claims_overview(rows().iloc[:0])
    assert np.isnan(rows()["estimate"].iloc[3])
