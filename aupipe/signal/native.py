"""Keep native libraries' log lines (MediaPipe, TensorFlow Lite, FFmpeg) off the user's terminal.

MediaPipe and FFmpeg write straight to file descriptor 2, past Python's logging. While
``quiet_native_stderr()`` is active, fd 2 points at /dev/null and ``sys.stderr`` (used by
aupipe's progress bar, warnings and errors) writes to a duplicate of the real stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

_lock = threading.Lock()
_depth = 0  # how many blocks (in any thread) are inside; fd 2 is process-wide, so the first in
_saved: tuple[int, Any, Any] | None = None  # silences it and the last out restores: (fd, stderr, copy)


def _silence() -> tuple[int, Any, Any] | None:
    """Point fd 2 at /dev/null and ``sys.stderr`` at a copy of the real stderr; what to restore."""
    try:
        sys.stderr.flush()
        saved_fd = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to silence
        return None
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
    return saved_fd, python_stderr, real_stderr


def _restore(saved: tuple[int, Any, Any]) -> None:
    saved_fd, python_stderr, real_stderr = saved
    if real_stderr is not None:
        sys.stderr = python_stderr
        real_stderr.close()
    os.dup2(saved_fd, 2)
    os.close(saved_fd)


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence fd 2 for native code while Python's ``sys.stderr`` stays visible. Re-entrant and
    thread-safe: fd 2 stays silenced while any thread is inside (a live source's reader thread
    and the main thread overlap)."""
    global _depth, _saved
    if os.environ.get("AUPIPE_NATIVE_LOGS"):
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = _silence()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                _restore(_saved)
                _saved = None
