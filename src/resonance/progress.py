"""Progress bars that also read well in a log: tqdm on a terminal, a plain line every `log_every_s` otherwise.

On a terminal the bar redraws in place. When stderr is a file or a pipe (CI, `dvc repro > log`, Prefect), the
carriage-return redraws would pile up into one endless line, so the bar is written as whole lines instead, at
most one every `log_every_s` seconds (counts, rate and ETA included), plus the final one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

LOG_EVERY_S = 30.0


class _Lines:
    """A file-like wrapper for tqdm: each redraw becomes one line (carriage returns dropped)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", disable: bool = False, log_every_s: float = LOG_EVERY_S) -> Any:
    """A tqdm bar over `iterable` (or a manual one with `total`), terminal- or log-friendly (module docstring)."""
    from tqdm import tqdm

    stream = sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    options: dict[str, Any] = {"dynamic_ncols": True} if tty else {"file": _Lines(stream), "mininterval": log_every_s,
                                                                     "ncols": 100}
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, **options)
