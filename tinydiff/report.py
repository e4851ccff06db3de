"""Markdown tables, as the benchmark, the ablation and the registry write them into the documents."""

from __future__ import annotations


def markdown_table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    """The lines of a markdown table.

    align: one letter per column, "l" (text) or "r" (figures); by default the first column is text and the
    others are figures.
    """
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or any(len(row) != len(header) for row in rows):
        raise ValueError(f"a table of {len(header)} columns needs as many alignments and cells in every row")
    rule = ["---" if a == "l" else "---:" for a in align]
    return [f"| {' | '.join(line)} |" for line in (header, rule, *rows)]
