"""gradest's developer tools, run from the repository root (``python -m tools.<name>``).

They are not part of the installed package: they may import anything (gradest, the
benchmarks, the frameworks themselves), and nothing in gradest imports them.
"""
