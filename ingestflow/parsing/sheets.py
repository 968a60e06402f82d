"""Spreadsheets: each sheet's name heads its tables.

docling's Excel backend puts every sheet in a group of its own (page N for sheet N) with no heading, so the chunker
saw one untitled run of rows and merged the last rows of one sheet with the first of the next into one chunk,
cited as "pages 1-2". With the sheet's name as a heading, each chunk's heading path is its sheet and no chunk
spans two sheets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docling_core.types.doc import DoclingDocument


def name_sheets(doc: DoclingDocument) -> DoclingDocument:
    from docling_core.types.doc import GroupLabel

    for group in list(doc.groups):
        if group.label != GroupLabel.SHEET or not group.children:
            continue  # an empty sheet has nothing to head
        first = group.children[0].resolve(doc)
        prov = getattr(first, "prov", None)
        heading_prov = prov[0].model_copy(update={"charspan": (0, len(group.name))}) if prov else None
        doc.insert_heading(sibling=first, text=group.name, after=False, prov=heading_prov)
    return doc
