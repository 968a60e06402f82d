"""Subtitle files as transcripts (issue 23): a WebVTT or SRT upload is told by its content, read in the encoding it
was saved in, and becomes a raw transcript whose segments are its cues with their seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestflow.audio.subtitles import read_cues
from ingestflow.detect import Detected, detect
from ingestflow.errors import CorruptInput

VTT = """WEBVTT

NOTE made by a video editor

00:00.500 --> 00:04.000
<v Anna>Good morning, this is the housing repairs line.

intro-2
00:00:04.250 --> 00:00:09.125 align:start
The plumber, Tony Reed, will come on <b>Thursday</b> &amp; fix the leak.
"""
SRT = """1
00:00:01,000 --> 00:00:04,500
Bonjour, ici le café « Zoë ».

2
00:00:05,000 --> 00:00:07,250
<i>Le gâteau coûte</i>
5 € ce matin.
"""


@pytest.mark.parametrize(("name", "data", "fmt"), [
    ("call.vtt", VTT.encode("utf-8"), "vtt"),
    ("call.txt", VTT.encode("utf-8-sig"), "vtt"),  # told by its content, whatever its name
    ("cafe.srt", SRT.encode("cp1252"), "srt"),
    ("cafe.srt", SRT.encode("utf-16"), "srt"),
])
def test_subtitles_are_told_by_their_content(name: str, data: bytes, fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(data)
    assert detect(path, name) == Detected("audio", fmt)


def test_cues_become_segments_with_their_seconds() -> None:
    vtt = read_cues(VTT.encode("utf-8"), "vtt", None)
    assert [(s["start"], s["end"], s["text"]) for s in vtt.segments] == [
        (0.5, 4.0, "Good morning, this is the housing repairs line."),
        (4.25, 9.125, "The plumber, Tony Reed, will come on Thursday & fix the leak."),
    ]
    assert vtt.duration_s == 9.125 and vtt.language == "en" and vtt.model and "WebVTT" in vtt.model
    srt = read_cues(SRT.encode("cp1252"), "srt", "fr")
    assert [(s["start"], s["text"]) for s in srt.segments] == [
        (1.0, "Bonjour, ici le café « Zoë »."), (5.0, "Le gâteau coûte 5 € ce matin.")]
    assert srt.language == "fr"


def test_a_broken_subtitle_file_fails_with_a_reason() -> None:
    with pytest.raises(CorruptInput, match="WebVTT file could not be read"):
        read_cues(b"WEBVTT\n\n00:00.500 --> nonsense\nhello\n", "vtt", None)
