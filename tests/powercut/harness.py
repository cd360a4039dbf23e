"""The power-cut harness: the kill harness's workload and checks (tests/soak/killer.py), with the data folder
on forgetfs and a power cut after every kill, so what survives is only what the server made durable.

Every random SIGKILL and every named crash point is followed by a cut in the next fault mode (drop,
prefix, torn, pages in turn, each with its own seeded randomness); the server then boots on what the
disk kept and the kill harness's promises are checked against the ledger: every acknowledged upload,
WebDAV version and delete is there with its sha256, nothing partial is listed, `fsck` (and SQLite's
integrity_check) is clean, and a session's reported offset never exceeds the bytes on the disk.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Callable

from tests.powercut.forgetfs import MODES
from tests.powercut.mount import PowerCutMount
from tests.soak.killer import KillHarness, LoggedServer, SoakConfig
from tests.soak.ledger import Figures


class PowerCutHarness(KillHarness):
    """KillHarness whose data folder lives on forgetfs, with a power cut after each kill."""

    def __init__(self, config: SoakConfig, out: Callable[[str], None] = print,
                 modes: tuple[str, ...] = MODES) -> None:
        super().__init__(config, out)
        self.mount = PowerCutMount(config.work_dir / "forgetfs", config.work_dir / "mnt")
        self.data_dir = self.mount.mountpoint / "data"
        self.server = LoggedServer(self.data_dir, self.log_path)
        self.modes = modes
        self.cut_rng = random.Random(f"{config.seed}-power")
        self.lost: Counter[str] = Counter()  # what the cuts threw away, summed over their reports

    def run(self) -> Figures:
        self.mount.mount()
        try:
            return super().run()
        finally:
            self.server.kill()
            self.mount.unmount()

    def after_kill(self, kind: str) -> None:
        mode = self.modes[sum(self.mount.cuts.values()) % len(self.modes)]
        try:
            report = self.mount.cut(mode, self.cut_rng.getrandbits(32))
        except AssertionError as exc:
            self.ledger.fail(f"the power cut ({mode}) after {kind} failed: {exc}")
            return
        self.lost["unsynced writes"] += report["pending_writes"] - report["kept_writes"]
        self.lost["unsynced directory changes"] += report["pending_names"] - report["kept_names"]
        self.lost["torn writes"] += report["torn"] is not None
        self.lost["dirty pages lost"] += report["pages_lost"]

    def print_figures(self, seconds: float) -> None:
        cuts = ", ".join(f"{mode} x{self.mount.cuts.get(mode, 0)}" for mode in self.modes)
        self.out(f"power cuts: {sum(self.mount.cuts.values())} ({cuts}); the disk forgot: "
                 + ", ".join(f"{count} {what}" for what, count in self.lost.items()))
        super().print_figures(seconds)
