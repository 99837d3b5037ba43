"""A run's processes end with the run, whatever signal ends it.

The chain of a main job is make -> runbook -> Jupyter kernel -> one child per configuration
(shared.run.experiment). The kernel and each child run in their own session (jupyter_client and
experiment start them so, to be able to kill them as a group), so a signal sent to make's
process group (a scheduler, `timeout`, `kill`) reaches neither; a child whose parent died was
re-parented to init and went on measuring and appending rows.

- `die_with_parent`, called first thing in a child: Linux sends the child SIGKILL when the
  thread that started it ends (prctl PR_SET_PDEATHSIG), so no way of ending the parent, SIGKILL
  and the out-of-memory killer included, leaves the child running.
- `signals_raise`: within the block SIGTERM and SIGHUP raise `Stopped` (as SIGINT raises
  KeyboardInterrupt), so `finally` blocks run (the one that kills a child's process group);
  `resend` then ends the process as the signal would have.
- `end_children`: SIGTERM, then SIGKILL, to this process's children (the runbook's kernel).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading

PR_SET_PDEATHSIG = 1          # from <linux/prctl.h>
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # SIGINT already raises KeyboardInterrupt


class Stopped(BaseException):
    """A SIGTERM or SIGHUP arrived: the run is to end. A BaseException, like KeyboardInterrupt,
    so `except Exception` (a failed configuration, a failed notebook) does not swallow it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def die_with_parent(parent_pid: int) -> None:
    """In a child process: be killed (SIGKILL) when the parent's thread that started us ends.

    Exits at once (status 1) when the parent already ended before the request took effect
    (then the child has been re-parented and getppid() is no longer `parent_pid`). Does nothing
    where prctl is not available (not Linux).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return
    if prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        return
    if os.getppid() != parent_pid:
        os._exit(1)


def _raise(signum, frame):
    raise Stopped(signum)


@contextlib.contextmanager
def signals_raise(signals=STOP_SIGNALS):
    """Within the block, each of `signals` raises Stopped in the main thread instead of ending
    the process on the spot. A signal whose handler is not the default is left as it is
    (ignored, as nohup ignores SIGHUP, or handled by someone else); outside the main thread,
    where Python cannot set handlers, nothing changes. The old handlers come back on exit."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in signals:
            if signal.getsignal(sig) is signal.SIG_DFL:
                previous[sig] = signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def resend(stop: Stopped) -> None:
    """End this process as `stop`'s signal would have without our handler (default action)."""
    signal.signal(stop.signum, signal.SIG_DFL)
    signal.raise_signal(stop.signum)


def end_children(grace_s: float = 10.0) -> None:
    """SIGTERM this process's children (with their own children), SIGKILL those still alive
    after `grace_s` seconds, and reap them."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(alive, timeout=5)
