"""Keep native libraries' log lines (MediaPipe, TensorFlow Lite, FFmpeg) off the user's terminal.

MediaPipe and FFmpeg write straight to file descriptor 2, past Python's logging. While
``quiet_native_stderr()`` is active, fd 2 points at /dev/null and ``sys.stderr`` (used by
aupipe's progress bar, warnings and errors) writes to a duplicate of the real stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

_depth = 0


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence fd 2 for native code while Python's ``sys.stderr`` stays visible. Re-entrant."""
    global _depth
    if _depth > 0 or os.environ.get("AUPIPE_NATIVE_LOGS"):
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    try:
        sys.stderr.flush()
        saved_fd = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to silence
        yield
        return
    python_stderr = sys.stderr
    try:
        python_writes_fd2 = python_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # e.g. a StringIO or a test's capture
        python_writes_fd2 = False
    real_stderr = None
    if python_writes_fd2:
        real_stderr = os.fdopen(os.dup(saved_fd), "w", buffering=1, encoding="utf-8", errors="replace")
        sys.stderr = real_stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if real_stderr is not None:
            sys.stderr = python_stderr
            real_stderr.close()
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
