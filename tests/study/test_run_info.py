"""The reproducibility page's generated part (rmqm.study.book.run_info_markdown): each notebook's
own parameters, which the book no longer shows in a folded cell, and breakable timestamps."""

from __future__ import annotations

from rmqm.study.book import run_info_markdown


def test_notebook_overrides_listed_and_shared_values_not_repeated():
    manifest = {"profile": "tiny", "shared_parameters": {"n_points": 64, "dims": [8, 16]},
                "notebooks": {"01_x": {"wall_s": 1.0, "finished": "2026-12-06T03:37:45+00:00",
                                       "parameters": {"n_points": 64, "dims": [8, 16], "results_dir": "/tmp/r"}},
                              "03_y": {"wall_s": 2.0, "parameters": {"n_points": 500, "n_noise_levels": 50}}}}
    md = run_info_markdown(manifest)
    assert "### Parameters of one notebook only" in md
    assert "| `03_y` | `n_noise_levels` | `50` |" in md and "| `03_y` | `n_points` | `500` |" in md
    assert "| `01_x` |" not in md.split("### Parameters of one notebook only")[1].split("###")[0]
    assert "/tmp/r" not in md  # the results folder is reserved, not a parameter of the study
    assert "| 2026-12-06 03:37:45 |" in md


def test_no_overrides_said_in_words():
    manifest = {"profile": "tiny", "shared_parameters": {"n_points": 64},
                "notebooks": {"01_x": {"wall_s": 1.0, "parameters": {"n_points": 64}}}}
    assert "no notebook overrides them" in run_info_markdown(manifest)
