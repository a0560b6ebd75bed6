"""Running the GPU check's commands: quietly with a timeout (`run_quiet`), or logged with a
deadline that interrupts before it kills (`run_logged`); and the check's voice (`say`)."""
from __future__ import annotations

import contextlib
import datetime
import os
import signal
import subprocess
import time
from pathlib import Path

#: the working tree the check runs from (the repository root)
ROOT = Path(__file__).resolve().parent.parent.parent


def now() -> str:
    """The UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def say(message: str) -> None:
    print(f"gpu-check: {message}", flush=True)


def run_quiet(cmd, timeout=30, **kwargs) -> tuple[int, str]:
    """(exit status, stdout + stderr) of ``cmd``; -1 and the error when it cannot start or
    runs past ``timeout`` seconds."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as err:
        return -1, str(err)
    return proc.returncode, (proc.stdout or "") + (proc.stderr or "")


def run_logged(cmd, *, log: Path, timeout: float, env: dict | None = None, cwd=ROOT, grace: float = 20) -> dict:
    """Run ``cmd`` with its output in ``log``, ending within ``timeout`` seconds: ``grace``
    seconds before, it is interrupted (SIGINT to its process group, so pytest and asv end
    cleanly and write what they have), and killed if it has not ended 5 seconds before.
    Returns ``{"rc", "timed_out", "seconds"}``."""
    start = time.monotonic()
    grace = min(grace, timeout / 4)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(map(str, cmd))}\n")
        fh.flush()
        proc = subprocess.Popen(list(map(str, cmd)), stdout=fh, stderr=subprocess.STDOUT, cwd=str(cwd), env=env,
                                start_new_session=True)
        timed_out = False
        try:
            rc = proc.wait(timeout=max(timeout - grace, 1))
        except subprocess.TimeoutExpired:
            timed_out = True
            for sig, wait in ((signal.SIGINT, max(grace - 5, 1)), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            rc = proc.returncode
    return {"rc": rc, "timed_out": timed_out, "seconds": round(time.monotonic() - start, 1)}
