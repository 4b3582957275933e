"""The book's figure style: one seaborn theme and figure size for every notebook."""

from __future__ import annotations

import matplotlib as mpl
import seaborn as sns

__all__ = ['BOOK_WIDTH', 'book_style']


#: Width of a full-width figure in the book, inches.
BOOK_WIDTH = 10.0


def book_style() -> None:
    """Apply the book's seaborn theme: white grid, colour-blind palette, readable fonts.

    Changes matplotlib's process-wide ``rcParams`` (that is its purpose: every figure the
    notebook draws afterwards looks the same): figures of ``BOOK_WIDTH`` x 4.5 inches at
    100 dpi, bold axes titles.
    """
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    mpl.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "figure.figsize": (BOOK_WIDTH, 4.5),
                         "axes.titleweight": "bold"})
