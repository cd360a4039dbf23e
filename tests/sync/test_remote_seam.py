"""The agent's remote seam: an implementation of `RemoteStore` with nothing but the declared methods drives
the agent, which reaches health, cancellation and share links through them alone (no probing for extras)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from lockr_local.sync.agent import AgentOptions, SyncAgent
from lockr_local.sync.engine import RemoteEntry
from lockr_local.sync.remote import HealthListener, RemoteStore, ResumeState, make_remote
from tests.helpers import ServerProcess, create_account, wait_for
from tests.sync.support import FAST, write


class Recorded(RemoteStore):
    """The real ClientRemote behind exactly the protocol's methods, recording which the agent calls."""

    def __init__(self, inner: RemoteStore) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def list_files(self) -> list[RemoteEntry]:
        self.calls.append("list_files")
        return self.inner.list_files()

    def upload(self, path: Path, name: str, size: int, *, resume: ResumeState | None = None,
               on_session: Callable[[ResumeState], None] = lambda state: None,
               progress: Callable[[int], None] = lambda done: None) -> RemoteEntry:
        self.calls.append("upload")
        return self.inner.upload(path, name, size, resume=resume, on_session=on_session, progress=progress)

    def delete(self, remote_id: str) -> None:
        self.calls.append("delete")
        self.inner.delete(remote_id)

    def watch_health(self, listener: HealthListener) -> None:
        self.calls.append("watch_health")
        self.inner.watch_health(listener)

    def cancel(self) -> None:
        self.calls.append("cancel")
        self.inner.cancel()


def test_the_agent_uses_only_the_declared_remote_seam(shared_server: ServerProcess, folder: Path,
                                                      tmp_path: Path) -> None:
    account = create_account(shared_server.url)
    remote = Recorded(make_remote(shared_server.url, account.token))
    write(folder / "a.txt", "alpha")
    agent = SyncAgent(folder, remote, endpoint=shared_server.url,
                      options=AgentOptions(state_dir=tmp_path / "state", **FAST))  # type: ignore[arg-type]
    assert remote.calls == ["watch_health"]  # the agent hears of outages through the declared listener
    agent.start()
    try:
        wait_for(lambda: agent.upload_count == 1 and agent.is_idle(), message="the upload")
    finally:
        agent.stop()
    assert remote.calls[-1] == "cancel"  # stopping ends requests and retry waits through the seam
    assert {"list_files", "upload"} <= set(remote.calls)
    assert agent.status().recent_uploads[0].share_url.endswith(agent.status().recent_uploads[0].remote_id)
