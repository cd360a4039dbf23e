"""Named crash points between commit steps, armed only by the test-only `crash_point` setting."""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger("lockr.faults")


class Faults:
    """`faults.hit("after_blob_commit")` kills the process with SIGKILL when that point is armed."""

    def __init__(self, crash_point: str) -> None:
        self.crash_point = crash_point

    def hit(self, name: str) -> None:
        if self.crash_point and name == self.crash_point:
            log.warning("crash point %s reached: killing the server", name)
            os.kill(os.getpid(), signal.SIGKILL)
