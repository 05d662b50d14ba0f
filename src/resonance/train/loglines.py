"""Training progress that reads well in a log: when stderr is not a terminal (CI, `dvc repro > log`, a Prefect
worker), Lightning's redrawn bar never ends a line, so nothing shows until the end. `LogLines` writes a whole line
instead, at most one every `log_every_s` seconds (epoch, step of the total, loss, steps per second, ETA), one per
validation with its scores, and a last one at the end. It only reads the trainer's state: no random draw, so a
run with it trains the very same weights as one without.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from lightning.pytorch.callbacks import Callback


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


class LogLines(Callback):
    """Progress lines on `stream` (default stderr) for a fit of `total_steps` optimizer steps."""

    def __init__(self, total_steps: int, log_every_s: float = 30.0, stream: TextIO | None = None) -> None:
        self.total, self.every, self.stream = max(1, int(total_steps)), float(log_every_s), stream
        self._t0 = self._last = 0.0

    def _say(self, text: str) -> None:
        out = self.stream or sys.stderr
        out.write(f"train: {text}\n")
        out.flush()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._t0 = self._last = time.perf_counter()
        self._say(f"{self.total} steps, {trainer.max_epochs} epochs")

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        step = trainer.global_step
        if now - self._last < self.every and step < self.total:
            return
        self._last = now
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        rate = step / max(now - self._t0, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        loss_text = f", loss {float(loss):.4f}" if loss is not None else ""
        self._say(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}, step {step}/{self.total} "
                  f"({step / self.total:.0%}){loss_text}, {rate:.2f} steps/s, {_minutes(now - self._t0)} elapsed, "
                  f"ETA {_minutes(eta) if eta == eta else '?'}")

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        scores = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        if scores and not trainer.sanity_checking:
            self._say(f"validation after epoch {trainer.current_epoch + 1}: "
                      + ", ".join(f"{k[4:]} {v:.4f}" for k, v in sorted(scores.items())))

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._say(f"done: {trainer.global_step} steps in {_minutes(time.perf_counter() - self._t0)}")
