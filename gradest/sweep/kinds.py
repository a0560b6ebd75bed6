"""The names of the cell-kind contract under their first module (compatibility).

Plugin authors write ``from gradest.sweep.kinds import CellKind, register_cell_kind``; the
contract and the registry live in `gradest.sweep.cell_kind`, the built-in kinds in the
package ``gradest.kinds``.
"""
from __future__ import annotations

from gradest.sweep.cell_kind import KINDS, CellKind, get_cell_kind, kind_names, register_cell_kind

__all__ = ["CellKind", "KINDS", "register_cell_kind", "get_cell_kind", "kind_names"]
