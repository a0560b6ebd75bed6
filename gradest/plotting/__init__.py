"""``gradest.plotting``: what the cell kinds and the report draw with (harness floor).

* `gradest.plotting.frames`: the rules every figure and table of a report shares, as pure
  pandas — canonical labels, the zero rule, the backend order, the rows of one kind, the
  mean and band over seeds (no matplotlib);
* `gradest.plotting.style`: the estimator palette, the theme, log axes, the layout in inches
  and saving a figure as PNG and SVG (matplotlib and seaborn, imported by this module);
* `gradest.plotting.figure`: the `Figure` a kind's ``figures`` returns and the panel helpers
  the figures share (legends, error bars, zero notes, mean lines with their bands).

A cell kind's ``figures(cells, history, palette, out)`` (`gradest.sweep.cell_kind.CellKind`)
draws with these; the report (`gradest.reports`) builds the `Palette` and the page. This
package imports nothing at ``import gradest``, and this file imports none of its modules, so
reading a frame rule never loads matplotlib.
"""
