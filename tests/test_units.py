"""Fast tests of pure pieces: type detection, content-addressed storage, the error hierarchy, retry rule."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import puremagic
import pytest
from puremagic.main import magic_header_array, multi_part_dict

from ingestflow.detect import _MAGIC_TO_FORMAT, Detected, _magic_format, check_name_agrees, detect
from ingestflow.errors import CorruptInput, PermanentError, TransientError, UnsupportedFormat, is_transient
from ingestflow.stores import storage
from tests.conftest import FIXTURES

EXPECTED_FORMATS = {
    "multi_page.pdf": ("text", "pdf"),
    "ocr_test.pdf": ("text", "pdf"),
    "word_sample.docx": ("text", "docx"),
    "powerpoint_sample.pptx": ("text", "pptx"),
    "wiki_duck.html": ("text", "html"),
    "jfk.flac": ("audio", "flac"),
    "sample_10s.mp3": ("audio", "mp3"),
    "sample_10s_audio-m4a.m4a": ("audio", "m4a"),
    "sample_10s_audio-ogg.ogg": ("audio", "ogg"),
    "sample_10s_video-mp4.mp4": ("audio", "mp4"),
    "silent_1s.wav": ("audio", "wav"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FORMATS))
def test_detect_fixture_from_bytes(name: str, tmp_path: Path) -> None:
    src = next(FIXTURES.rglob(name))
    renamed = tmp_path / "no_extension"  # the name must not matter
    renamed.write_bytes(src.read_bytes())
    got = detect(renamed)
    assert (got.kind, got.format) == EXPECTED_FORMATS[name]


def _puremagic_choice(head: bytes) -> str | None:
    """What detect took before it tried only the signatures of the formats taken: puremagic's first guess that is
    one of them."""
    try:
        guesses = puremagic.magic_string(head)
    except puremagic.PureError:
        return None
    return next((fmt for g in guesses if (fmt := _MAGIC_TO_FORMAT.get(g.extension.lower()))), None)


def _with(head: bytes, at: int, part: bytes) -> bytes:
    out = bytearray(max(len(head), at + len(part) + 16))
    out[:len(head)] = head
    out[at:at + len(part)] = part
    return bytes(out)


def test_format_signatures_answer_as_puremagic_does_on_every_signature_it_has() -> None:
    heads = [path.read_bytes()[:8192] for path in sorted(FIXTURES.rglob("*")) if path.is_file()]
    for row in magic_header_array:  # each of its 1,437 signatures, and each with each second part it has
        head = _with(b"", row.offset, row.byte_match)
        heads += [head] + [_with(head, part.offset, part.byte_match)
                           for part in multi_part_dict.get(row.byte_match, ()) if part.offset >= 0]
    answers = [(h[:24], _magic_format(h), _puremagic_choice(h)) for h in heads]
    differ = [a for a in answers if a[1] != a[2]]
    assert not differ, differ[:5]
    taken = {_magic_format(h) for h in heads} - {None}
    assert taken == set(_MAGIC_TO_FORMAT.values()), taken  # every format found by some signature
    assert len(heads) > 1600 and sum(_magic_format(h) is None for h in heads) > 1000  # and most signatures none


def test_detect_markdown_and_refusals(tmp_path: Path) -> None:
    md = tmp_path / "a"
    md.write_text("# Title\n\nSome text with ünïcödé.\n")
    assert detect(md).format == "md"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(UnsupportedFormat, match="empty"):
        detect(empty)
    noise = tmp_path / "noise"
    noise.write_bytes(os.urandom(4096))
    with pytest.raises(UnsupportedFormat, match="unrecognised"):
        detect(noise)


def test_name_that_disagrees_with_content_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "song.mp3"
    text.write_text("just some text, not audio")
    with pytest.raises(UnsupportedFormat, match="named like a audio file"):
        check_name_agrees(text.name, detect(text))
    check_name_agrees("notes.md", detect(text))


def test_storage_is_content_addressed_and_limited(tmp_path: Path) -> None:
    tmp, sha, size = storage.spool(io.BytesIO(b"hello"), tmp_path, max_bytes=10)
    storage.commit(tmp_path, [(tmp, sha)])
    dest = storage.blob_path(tmp_path, sha)
    assert dest.read_bytes() == b"hello" and size == 5 and not tmp.exists()
    # The same bytes again, and twice in one group: one blob, every spool file gone.
    again = [storage.spool(io.BytesIO(b"hello"), tmp_path, max_bytes=10)[:2] for _ in range(2)]
    other = storage.spool(io.BytesIO(b"world"), tmp_path, max_bytes=10)[:2]
    storage.commit(tmp_path, [*again, other])
    assert dest.read_bytes() == b"hello" and storage.blob_path(tmp_path, other[1]).read_bytes() == b"world"
    with pytest.raises(storage.TooLarge):
        storage.spool(io.BytesIO(b"x" * 11), tmp_path, max_bytes=10)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".upload-")]  # no leftovers


def test_errors_pickle_and_classify() -> None:
    for exc in (TransientError("busy"), CorruptInput("bad pdf"), UnsupportedFormat("zip")):
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and back.message == exc.message
    assert is_transient(TransientError("x")) and not is_transient(CorruptInput("x"))
    assert is_transient(ConnectionError("reset")) and not is_transient(ValueError("bug"))
    assert isinstance(CorruptInput("x"), PermanentError)


def test_formats_are_listed_from_one_table() -> None:
    """GET /v1/formats, the 415 reason and the name check all read ingestflow.detect.FORMATS (issue 23)."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from ingestflow.detect import FORMATS

    body = TestClient(create_app()).get("/v1/formats").json()
    listed = {f["name"]: f for f in body["formats"]}
    assert listed.keys() == FORMATS.keys()
    assert listed["tiff"] == {"name": "tiff", "kind": "text", "label": "TIFF image", "mime_type": "image/tiff",
                              "extensions": ["tif", "tiff"]}
    assert listed["m4a"]["kind"] == "audio" and "aac" in listed["m4a"]["extensions"]
    with pytest.raises(UnsupportedFormat, match="named like a text file"):
        check_name_agrees("scan.png", Detected("audio", "mp3"))


def test_names_show_the_characters_that_could_disguise_them() -> None:
    from ingestflow.display import visible
    from ingestflow.shell.cli import shown

    assert visible("invoice\u202egnp.exe.pdf") == "invoice⟨U+202E⟩gnp.exe.pdf"
    assert visible("a\u200bb\u2066c\u0007.pdf") == "a⟨U+200B⟩b⟨U+2066⟩c⟨U+0007⟩.pdf"
    assert visible("Zoë's notes – 2026.md") == "Zoë's notes – 2026.md"  # letters, punctuation, dashes stay
    assert shown("[red]boom\u202e.md") == "\\[red]boom⟨U+202E⟩.md"  # no markup for the terminal either
