"""The CLI's live progress display: one line, rewritten in place on a terminal,
or a plain line every ``interval`` seconds when the output is a file or a pipe."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


def _human(n: float) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}T"


class Progress:
    """``Progress.update`` is cheap: it only draws when the interval has passed."""

    def __init__(
        self, total_steps: int, stream: TextIO = sys.stderr, enabled: bool = True, frames_per_step: int = 1
    ) -> None:
        self.total_steps = total_steps
        self.frames_per_step = frames_per_step  # with an action repeat, the line also counts frames
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self.interval = 0.5 if self.tty else 10.0
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._last_steps = 0
        self._last_time = self.start

    def update(
        self, env_steps: int, learner_steps: int, mean_return: Optional[float], force: bool = False, extra: str = ""
    ) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.interval:
            return
        dt = max(now - self._last_time, 1e-9)
        fps = (env_steps - self._last_steps) / dt
        self._last_steps, self._last_time, self._last_draw = env_steps, now, now
        pct = 100.0 * env_steps / max(1, self.total_steps)
        ret = "   n/a" if mean_return is None else f"{mean_return:6.1f}"
        frames = f" frames {_human(env_steps * self.frames_per_step):>7}" if self.frames_per_step > 1 else ""
        line = (
            f"env steps {_human(env_steps):>7} ({pct:5.1f}%){frames}  {_human(fps):>6} steps/s  "
            f"return(100) {ret}  learner steps {learner_steps:>6}  {now - self.start:6.0f}s{extra}"
        )
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
