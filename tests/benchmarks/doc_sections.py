"""docs/BENCHMARKS.md is written by several benchmarks, each owning one marked section.

A section is delimited by HTML comments (``<!-- name:begin -->`` … ``<!-- name:end -->``), so a
benchmark rewrites its own numbers and leaves the rest of the page (and hand-written notes
outside the markers) alone.
"""
from __future__ import annotations

import time
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "BENCHMARKS.md"
HEADER = ("# Benchmarks\n\nMeasured by `make bench` (`python -m tests.benchmarks.run_all`) and the benchmarks "
          "named in each section; numbers below are from their last runs.\n")


def run_dates(paths) -> str:
    """When the results in ``paths`` (JSON files) were written: one date, or the first – the last.

    A section rendered from earlier runs states their dates, not the day it was rendered.
    """
    days = sorted({time.strftime("%Y-%m-%d", time.localtime(Path(p).stat().st_mtime)) for p in paths
                   if Path(p).is_file()})
    if not days:
        return time.strftime("%Y-%m-%d")
    return days[0] if len(days) == 1 else f"{days[0]} – {days[-1]}"


def markers(name: str) -> tuple[str, str]:
    """The (begin, end) comments of section ``name``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_section(section: str, begin: str, end: str, doc: Path = DOC) -> None:
    """Put ``section`` (starting with ``begin``, ending with ``end``) in place of the marked one.

    Without the markers in ``doc`` (or without ``doc``) the section is appended.
    """
    text = doc.read_text() if doc.is_file() else HEADER
    section = section.strip("\n")
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
