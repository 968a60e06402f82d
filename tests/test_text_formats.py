"""Text flavours other than Markdown and HTML (issue 23). CSV tables: told from text by their rows, read in the
encoding they were saved in (a European Excel export is windows-1252 with semicolons), and chunked so that every
row's values carry their column names. Excel workbooks: every sheet's tables the same way, each headed by its
sheet's name. AsciiDoc: its sections become the chunks' heading paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestflow.detect import Detected, detect
from ingestflow.parsing.chunking import chunk
from ingestflow.parsing.limits import Limits
from ingestflow.parsing.persistence import load_document
from ingestflow.parsing.worker import Job, parse_to_files

BRANCHES = """Branch,Children signed up,Finished challenge,Books borrowed,Change on 2023
Central Library,612,388,7940,+12%
Eastgate,245,131,2860,-4%
Northfield,198,117,2310,+9%
Westbrook,321,204,3975,+18%
Hillside,87,39,840,-21%
Mobile library,64,41,690,+35%
"""
EXPORT = "Ort;Kosten;Notiz\nZürich;120 €;Café „Sonne“\nMünchen;95 €;Brötchen\n"


@pytest.mark.parametrize(("name", "data", "expected"), [
    ("branches.csv", BRANCHES, "csv"),
    ("branches", BRANCHES, "csv"),  # seven rows of five fields: a table whatever its name
    ("export.csv", EXPORT, "csv"),  # named .csv, two rows will do
    ("export.txt", EXPORT, "md"),  # three short rows of three fields, not named as a table: text
    ("note.md", "Hello, world\nThanks, Anna\nSee you, then\nBye, now\nOk, fine\nYes, sure\n", "md"),  # a comma a line
    ("table.md", "| a | b | c |\n|---|---|---|\n| 1 | 2 | 3 |\n| 4 | 5 | 6 |\n| 7 | 8 | 9 |\n| 0 | 1 | 2 |\n", "md"),
    ("cells.tsv", "a\tb\tc\n1\t2\t3\n", "csv"),
    # A quoted field across two lines: that line holds fewer commas than its row has fields, still a table.
    ("notes.csv", 'id,who,note\n1,Anna,"first line\nsecond line"\n2,Ben,short\n', "csv"),
    ("minutes.md", "Anna, Ben and Carla met.\nBudget: 10,000, agreed.\nNext, Tuesday, at 9.\nYes, fine\n"
                   "Ok, then, bye\nSee you\n", "md"),  # commas on most lines, not on every one
])
def test_a_table_is_told_from_text(name: str, data: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(data.encode("utf-8"))
    assert detect(path, name) == Detected("text", expected)


def _parse(tmp_path: Path, data: bytes) -> list[str]:
    source = tmp_path / "table.csv"
    source.write_bytes(data)
    job = Job(source, "csv", tmp_path / "parsed.json", tmp_path / "content.md", None, False, Limits(64, 16, 100, 10**8))
    parse_to_files(job)
    return [c.text for c in chunk(load_document(tmp_path / "parsed.json"))]


def test_every_row_keeps_its_column_names(tmp_path: Path) -> None:
    texts = _parse(tmp_path, BRANCHES.encode("utf-8"))
    joined = " ".join(texts)
    assert "Hillside, Change on 2023 = -21%" in joined and "Westbrook, Finished challenge = 204" in joined
    # A long table is cut into several chunks; every row in each still names its columns.
    rows = "Site,Town,Yearly saving\n" + "".join(f"H{i},Town {i},£{i * 5}\n" for i in range(1, 400))
    texts = _parse(tmp_path, rows.encode("utf-8"))
    assert len(texts) > 1 and all("Yearly saving = £" in t for t in texts)
    assert any("H399, Town = Town 399. H399, Yearly saving = £1995" in t for t in texts)


def test_a_windows_1252_export_reads_as_saved(tmp_path: Path) -> None:
    texts = _parse(tmp_path, EXPORT.encode("cp1252"))
    assert "Zürich, Kosten = 120 €" in " ".join(texts) and "Café „Sonne“" in " ".join(texts), texts


ADOC = """= Boiler Guide
:author: Housing Team

== Resetting the boiler

Press the reset button for five seconds. If the *pressure* is below 1 bar, call us.

== Contacts

* Out of hours: 0161 496 0000
"""


def test_asciidoc_sections_are_heading_paths(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(ADOC.encode("utf-8"))
    assert detect(path, "guide.adoc") == Detected("text", "asciidoc")
    assert detect(path, "guide.md") == Detected("text", "md")  # the same bytes named as Markdown are Markdown
    source = tmp_path / "guide.adoc"
    source.write_bytes(ADOC.encode("utf-8"))
    job = Job(source, "asciidoc", tmp_path / "parsed.json", tmp_path / "content.md", None, False,
              Limits(64, 16, 100, 10**8))
    parse_to_files(job)
    chunks = chunk(load_document(tmp_path / "parsed.json"))
    reset = next(c for c in chunks if "reset button" in c.text)
    assert reset.headings == ["Boiler Guide", "Resetting the boiler"]
    assert "## Contacts" in (tmp_path / "content.md").read_text()


def workbook(path: Path) -> Path:
    """Two sheets, as a branch report saved from Excel: figures per branch, then the staff list."""
    from openpyxl import Workbook

    book = Workbook()
    branches = book.active
    assert branches is not None
    branches.title = "Branches"
    branches.append(["Branch", "Members", "Loans", "Change"])
    for row in [("Hillside", 870, 3912, "-21%"), ("Riverside", 1204, 5210, "+4%"), ("Old Town", 655, 2890, "+12%")]:
        branches.append(row)
    staff = book.create_sheet("Staff")
    staff.append(["Name", "Role", "Start year"])
    staff.append(["Amara Okafor", "Branch manager", 2019])
    staff.append(["Lukas Brandt", "Archivist", 2021])
    book.save(path)
    return path


def test_every_sheet_of_a_workbook_is_a_table_headed_by_its_name(tmp_path: Path) -> None:
    source = workbook(tmp_path / "report.xlsx")
    upload = tmp_path / "upload"
    upload.write_bytes(source.read_bytes())
    assert detect(upload, "") == Detected("text", "xlsx")  # by its content: the name does not matter
    job = Job(upload, "xlsx", tmp_path / "parsed.json", tmp_path / "content.md", None, False,
              Limits(64, 16, 100, 10**8))
    parse_to_files(job)
    chunks = chunk(load_document(tmp_path / "parsed.json"))
    # One sheet per chunk here (docling would have merged both sheets' rows into one untitled chunk), each
    # cited by its sheet's name and number.
    assert [(c.headings, c.page_start, c.page_end) for c in chunks] == [(["Branches"], 1, 1), (["Staff"], 2, 2)]
    assert "Hillside, Change = -21%" in chunks[0].text and "Riverside, Members = 1204" in chunks[0].text
    assert "Lukas Brandt, Role = Archivist" in chunks[1].text and "Amara Okafor, Start year = 2019" in chunks[1].text
    content = (tmp_path / "content.md").read_text()
    assert "## Staff" in content and "| Amara Okafor" in content


def test_a_zip_that_is_no_office_file_is_refused_with_the_formats_it_could_be(tmp_path: Path) -> None:
    import zipfile

    from ingestflow.errors import UnsupportedFormat

    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("holiday.txt", "not an office file")
    with pytest.raises(UnsupportedFormat, match=r"Excel \(\.xlsx\)"):
        detect(path, "photos.zip")
