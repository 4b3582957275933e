"""Figures of the book."""

from rmqm.plots.figures import (
    BOOK_WIDTH,
    book_style,
    plot_distance_bands,
    plot_score_scatter,
    plot_synbench,
)

__all__ = ['BOOK_WIDTH', 'book_style', 'plot_distance_bands', 'plot_score_scatter', 'plot_synbench']
