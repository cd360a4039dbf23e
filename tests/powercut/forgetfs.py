"""forgetfs: a FUSE filesystem that forgets, on a simulated power cut, everything that was not made durable.

The durability model is the strict POSIX one (not ext4's extra guarantees):
- a file's data written since its last fsync/fdatasync is volatile;
- a directory change (create, mkdir, link, symlink, unlink, rmdir, rename) is volatile until a directory it
  touches is fsynced. Syncing directory D commits every pending change that touches D and, so that the
  result is a state the journal could have reached, every earlier change that touches a directory of a
  change being committed (a rename tmp/x -> objects/x committed by an fsync of objects/ also commits the
  creation of tmp/x). fsync of a file never commits its name.

The daemon keeps the namespace in memory and each inode's bytes in STATE/data/<ino>; a file's durable bytes
(as of its last fsync) are snapshotted at its first change after that fsync, and the changes since are
journalled in order. One daemon process serves one "boot": the controller (tests/powercut/mount.py) cuts
the power by writing STATE/cut.json and unmounting; the daemon then computes what the disk holds after
the cut, saves it as STATE/meta.json + STATE/data/, reports in STATE/report.json and exits; the next boot
mounts that image. An unmount without cut.json is a clean shutdown (everything becomes durable).

Fault modes, what survives of the unsynced changes:
- drop:   nothing;
- prefix: a random prefix, in issue order, of all pending changes (data writes and directory changes);
- torn:   a prefix up to a random pending write, which is itself torn: a random-length prefix of its bytes;
- pages:  directory changes as a random prefix; each file's size is its synced or its live size, and each
          4 KiB page that differs between the synced and the live bytes is, at random, one or the other
          (writeback in any order).

mmap works (no direct_io), so SQLite's WAL and -shm run unchanged. Locks are left to the kernel.
Run as `python -m tests.powercut.forgetfs STATE MOUNTPOINT`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mfusepy
from mfusepy import FuseOSError

MODES = ("drop", "prefix", "torn", "pages")
PAGE = 4096
ROOT = 1

log = logging.getLogger("forgetfs")


@dataclass
class Inode:
    ino: int
    mode: int  # including the S_IFMT type bits
    uid: int = 0
    gid: int = 0
    atime: int = 0
    mtime: int = 0
    ctime: int = 0
    target: str = ""  # a symlink's
    entries: dict[str, int] | None = None  # a directory's live entries
    durable: dict[str, int] | None = None  # a directory's entries as the disk holds them
    nlink: int = 0  # live names of a file
    handles: int = 0
    snapshot: bytes | None = None  # a file's durable bytes, kept while it has unsynced changes
    pending: list["DataOp"] = field(default_factory=list)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


@dataclass
class DataOp:
    """An unsynced write (`data` at `offset`) or truncate (to `offset`, data None) of one inode."""

    seq: int
    ino: int
    offset: int
    data: bytes | None


@dataclass
class NameOp:
    """An unsynced directory change: ("add", dir, name, ino), ("remove", dir, name, ino) or
    ("rename", src_dir, src_name, ino, dst_dir, dst_name)."""

    seq: int
    kind: str
    args: tuple[Any, ...]

    @property
    def dirs(self) -> set[int]:
        if self.kind == "rename":
            return {self.args[0], self.args[3]}
        return {self.args[0]}


def apply_name_op(inodes: dict[int, Inode], op: NameOp) -> None:
    """Applies a directory change to the durable entries."""
    if op.kind == "add":
        directory, name, ino = op.args
        durable(inodes, directory)[name] = ino
    elif op.kind == "remove":
        directory, name, ino = op.args
        entries = durable(inodes, directory)
        if entries.get(name) == ino:
            del entries[name]
    else:
        src_dir, src_name, ino, dst_dir, dst_name = op.args
        source = durable(inodes, src_dir)
        if source.get(src_name) == ino:
            del source[src_name]
        durable(inodes, dst_dir)[dst_name] = ino


def durable(inodes: dict[int, Inode], ino: int) -> dict[str, int]:
    entries = inodes[ino].durable
    assert entries is not None, f"inode {ino} is not a directory"
    return entries


def apply_data_op(buffer: bytearray, op: DataOp, torn_at: int | None = None) -> None:
    if op.data is None:
        resize(buffer, op.offset)
        return
    data = op.data if torn_at is None else op.data[:torn_at]
    if op.offset > len(buffer):
        buffer.extend(bytes(op.offset - len(buffer)))
    buffer[op.offset:op.offset + len(data)] = data


def resize(buffer: bytearray, size: int) -> None:
    if size < len(buffer):
        del buffer[size:]
    else:
        buffer.extend(bytes(size - len(buffer)))


class ForgetFS(mfusepy.Operations):
    """The filesystem: live namespace and attributes in memory, bytes in STATE/data, durability journalled."""

    use_ns = True
    flag_nopath = True  # read, write, fsync... work from the handle, so unlinked open files keep working
    flag_nullpath_ok = True

    def __init__(self, state: Path) -> None:
        self.state = state
        self.data_dir = state / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.inodes: dict[int, Inode] = {}
        self.handles: dict[int, int] = {}  # fh -> ino
        self.fds: dict[int, int] = {}  # ino -> descriptor of its data file
        self.names: list[NameOp] = []
        self.seq = 0
        self.next_fh = 1
        self.next_ino = ROOT + 1
        self.load()

    # -- the image on disk ---------------------------------------------------------------------------

    def load(self) -> None:
        meta_path = self.state / "meta.json"
        now = time.time_ns()
        if not meta_path.exists():
            self.inodes[ROOT] = Inode(ROOT, stat.S_IFDIR | 0o755, atime=now, mtime=now, ctime=now,
                                      entries={}, durable={})
            return
        meta = json.loads(meta_path.read_text())
        self.next_ino = meta["next_ino"]
        for key, item in meta["inodes"].items():
            entries = item.get("entries")
            inode = Inode(int(key), item["mode"], item["uid"], item["gid"], item["atime"], item["mtime"],
                          item["ctime"], item.get("target", ""),
                          dict(entries) if entries is not None else None,
                          dict(entries) if entries is not None else None)
            self.inodes[inode.ino] = inode
        for inode in list(self.inodes.values()):
            for ino in (inode.entries or {}).values():
                self.inodes[ino].nlink += 1

    def save(self, entries_of: dict[int, dict[str, int]]) -> None:
        """Writes the image whose directories hold `entries_of`; inodes no name reaches are dropped."""
        reachable = {ROOT}
        todo = [ROOT]
        while todo:
            for ino in entries_of.get(todo.pop(), {}).values():
                if ino not in reachable:
                    reachable.add(ino)
                    if self.inodes[ino].is_dir:
                        todo.append(ino)
        for ino, inode in self.inodes.items():
            if ino not in reachable and stat.S_ISREG(inode.mode):
                try:
                    os.unlink(self.data_dir / str(ino))
                except FileNotFoundError:
                    pass
        meta = {"next_ino": self.next_ino, "inodes": {}}
        for ino in sorted(reachable):
            inode = self.inodes[ino]
            item: dict[str, Any] = {"mode": inode.mode, "uid": inode.uid, "gid": inode.gid, "atime": inode.atime,
                                    "mtime": inode.mtime, "ctime": inode.ctime}
            if inode.is_dir:
                item["entries"] = entries_of.get(ino, {})
            if inode.target:
                item["target"] = inode.target
            meta["inodes"][str(ino)] = item
        temp = self.state / "meta.json.tmp"
        temp.write_text(json.dumps(meta))
        os.replace(temp, self.state / "meta.json")

    def shut_down(self, cut: dict[str, Any] | None) -> dict[str, Any]:
        """After the unmount: a clean shutdown (cut None) or a power cut; saves the image, returns a report."""
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()
        if cut is None:
            report = {"mode": "clean"}
            self.save({ino: dict(i.entries) for ino, i in self.inodes.items() if i.entries is not None})
        else:
            report = self.power_cut(cut["mode"], random.Random(cut.get("seed")))
            self.save({ino: dict(i.durable) for ino, i in self.inodes.items() if i.durable is not None})
        return report

    def power_cut(self, mode: str, rng: random.Random) -> dict[str, Any]:
        """What the disk holds after losing power: the durable state plus what `mode` lets survive."""
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {MODES}")
        data_ops = sorted((op for inode in self.inodes.values() for op in inode.pending), key=lambda op: op.seq)
        report: dict[str, Any] = {"mode": mode, "pending_writes": len(data_ops), "pending_names": len(self.names),
                                  "kept_writes": 0, "kept_names": 0, "torn": None, "pages_kept": 0,
                                  "pages_lost": 0, "files_changed": 0}
        kept_data: list[DataOp] = []
        torn: tuple[DataOp, int] | None = None
        if mode in ("prefix", "torn"):
            everything: list[DataOp | NameOp] = sorted([*data_ops, *self.names], key=lambda op: op.seq)
            writes = [i for i, op in enumerate(everything) if isinstance(op, DataOp) and op.data]
            if mode == "torn" and writes:
                cut_at = rng.choice(writes)
                victim = everything[cut_at]
                assert isinstance(victim, DataOp) and victim.data is not None
                torn = (victim, rng.randrange(len(victim.data)))
                report["torn"] = {"ino": victim.ino, "offset": victim.offset, "length": len(victim.data),
                                  "kept": torn[1]}
            else:
                cut_at = rng.randint(0, len(everything))
            kept = everything[:cut_at]
            kept_names = [op for op in kept if isinstance(op, NameOp)]
            kept_data = [op for op in kept if isinstance(op, DataOp)]
        elif mode == "pages":
            kept_names = self.names[:rng.randint(0, len(self.names))]
        else:
            kept_names = []
        for op in kept_names:
            apply_name_op(self.inodes, op)
        report["kept_names"] = len(kept_names)
        report["kept_writes"] = len(kept_data)
        kept_by_ino: dict[int, list[DataOp]] = {}
        for op in kept_data:
            kept_by_ino.setdefault(op.ino, []).append(op)
        for inode in self.inodes.values():
            if inode.snapshot is None:
                continue
            content = bytearray(inode.snapshot)
            if mode == "pages":
                live = bytearray((self.data_dir / str(inode.ino)).read_bytes())
                size = rng.choice((len(content), len(live)))
                resize(content, size)
                resize(live, size)
                for start in range(0, size, PAGE):
                    if content[start:start + PAGE] != live[start:start + PAGE]:
                        if rng.random() < 0.5:
                            content[start:start + PAGE] = live[start:start + PAGE]
                            report["pages_kept"] += 1
                        else:
                            report["pages_lost"] += 1
            else:
                for op in kept_by_ino.get(inode.ino, []):
                    apply_data_op(content, op)
                if torn is not None and torn[0].ino == inode.ino:
                    apply_data_op(content, torn[0], torn[1])
            (self.data_dir / str(inode.ino)).write_bytes(content)
            report["files_changed"] += 1
        return report

    # -- helpers --------------------------------------------------------------------------------------

    def inode(self, path: str | None, fh: int | None = None) -> Inode:
        if fh is not None and fh in self.handles:
            return self.inodes[self.handles[fh]]
        if path is None:
            raise FuseOSError(errno.EBADF)
        inode = self.inodes[ROOT]
        for part in path.split("/"):
            if not part:
                continue
            if inode.entries is None:
                raise FuseOSError(errno.ENOTDIR)
            ino = inode.entries.get(part)
            if ino is None:
                raise FuseOSError(errno.ENOENT)
            inode = self.inodes[ino]
        return inode

    def parent(self, path: str) -> tuple[Inode, str]:
        head, _, name = path.rstrip("/").rpartition("/")
        directory = self.inode(head or "/")
        if directory.entries is None:
            raise FuseOSError(errno.ENOTDIR)
        return directory, name

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def name_op(self, kind: str, *args: Any) -> None:
        self.names.append(NameOp(self.next_seq(), kind, args))

    def new_inode(self, mode: int, **extra: Any) -> Inode:
        now = time.time_ns()
        uid, gid, _ = mfusepy.fuse_get_context()
        inode = Inode(self.next_ino, mode, uid, gid, now, now, now, **extra)
        self.next_ino += 1
        self.inodes[inode.ino] = inode
        return inode

    def fd(self, inode: Inode) -> int:
        fd = self.fds.get(inode.ino)
        if fd is None:
            fd = self.fds[inode.ino] = os.open(self.data_dir / str(inode.ino), os.O_RDWR)
        return fd

    def size(self, inode: Inode) -> int:
        fd = self.fds.get(inode.ino)
        if fd is not None:
            return os.fstat(fd).st_size
        return os.stat(self.data_dir / str(inode.ino)).st_size

    def changing(self, inode: Inode) -> None:
        """Before a data change: keep the durable bytes if this is the first change since the last fsync."""
        if inode.snapshot is None:
            fd = self.fd(inode)
            size = os.fstat(fd).st_size
            chunks = []
            position = 0
            while position < size:
                chunk = os.pread(fd, min(1 << 20, size - position), position)
                if not chunk:
                    break
                chunks.append(chunk)
                position += len(chunk)
            inode.snapshot = b"".join(chunks)
        inode.mtime = inode.ctime = time.time_ns()

    def open_handle(self, inode: Inode) -> int:
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = inode.ino
        inode.handles += 1
        return fh

    def add_name(self, directory: Inode, name: str, inode: Inode) -> None:
        assert directory.entries is not None
        if name in directory.entries:
            raise FuseOSError(errno.EEXIST)
        directory.entries[name] = inode.ino
        inode.nlink += 1
        directory.mtime = directory.ctime = time.time_ns()
        self.name_op("add", directory.ino, name, inode.ino)

    # -- FUSE operations ------------------------------------------------------------------------------

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        inode = self.inode(path, fh)
        if inode.is_dir:
            assert inode.entries is not None
            nlink = 2 + sum(1 for ino in inode.entries.values() if self.inodes[ino].is_dir)
            size = 4096
        elif stat.S_ISLNK(inode.mode):
            nlink, size = inode.nlink, len(inode.target.encode())
        else:
            nlink, size = inode.nlink, self.size(inode)
        return {"st_mode": inode.mode, "st_ino": inode.ino, "st_nlink": nlink, "st_uid": inode.uid,
                "st_gid": inode.gid, "st_size": size, "st_blocks": (size + 511) // 512, "st_blksize": PAGE,
                "st_atime": inode.atime, "st_mtime": inode.mtime, "st_ctime": inode.ctime}

    def statfs(self, path: str) -> dict[str, int]:
        real = os.statvfs(self.state)
        return {key: getattr(real, key) for key in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                                                     "f_files", "f_ffree", "f_favail", "f_namemax")}

    def opendir(self, path: str) -> int:
        inode = self.inode(path)
        if not inode.is_dir:
            raise FuseOSError(errno.ENOTDIR)
        return self.open_handle(inode)

    def readdir(self, path: str | None, fh: int) -> list[tuple[str, dict[str, int], int]]:
        inode = self.inode(path, fh)
        assert inode.entries is not None
        listing = [(".", {"st_mode": inode.mode, "st_ino": inode.ino}, 0),
                   ("..", {"st_mode": stat.S_IFDIR, "st_ino": ROOT}, 0)]
        for name, ino in inode.entries.items():
            listing.append((name, {"st_mode": self.inodes[ino].mode, "st_ino": ino}, 0))
        return listing

    def releasedir(self, path: str | None, fh: int) -> int:
        return self.release(path, fh)

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        """Commits the pending changes that touch this directory, and those they depend on."""
        directory = self.inode(path, fh)
        touched = {directory.ino}
        commit: list[NameOp] = []
        keep: list[NameOp] = []
        for op in reversed(self.names):
            if op.dirs & touched:
                commit.append(op)
                touched |= op.dirs
            else:
                keep.append(op)
        for op in reversed(commit):
            apply_name_op(self.inodes, op)
        self.names = keep[::-1]
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        directory, name = self.parent(path)
        self.add_name(directory, name, self.new_inode(stat.S_IFDIR | (mode & 0o7777), entries={}, durable={}))
        return 0

    def rmdir(self, path: str) -> int:
        directory, name = self.parent(path)
        inode = self.inode(path)
        if not inode.is_dir:
            raise FuseOSError(errno.ENOTDIR)
        if inode.entries:
            raise FuseOSError(errno.ENOTEMPTY)
        self.remove_name(directory, name, inode)
        return 0

    def remove_name(self, directory: Inode, name: str, inode: Inode) -> None:
        assert directory.entries is not None
        del directory.entries[name]
        inode.nlink -= 1
        directory.mtime = directory.ctime = inode.ctime = time.time_ns()
        self.name_op("remove", directory.ino, name, inode.ino)

    def unlink(self, path: str) -> int:
        directory, name = self.parent(path)
        inode = self.inode(path)
        if inode.is_dir:
            raise FuseOSError(errno.EISDIR)
        self.remove_name(directory, name, inode)
        return 0

    def create(self, path: str, mode: int, flags: int) -> int:
        directory, name = self.parent(path)
        if name in (directory.entries or {}):
            raise FuseOSError(errno.EEXIST)
        inode = self.new_inode(stat.S_IFREG | (mode & 0o7777))
        os.close(os.open(self.data_dir / str(inode.ino), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600))
        inode.snapshot = b""  # its durable bytes: none, until an fsync
        self.add_name(directory, name, inode)
        return self.open_handle(inode)

    def open(self, path: str, flags: int) -> int:
        inode = self.inode(path)
        if inode.is_dir:
            raise FuseOSError(errno.EISDIR)
        fh = self.open_handle(inode)
        if flags & os.O_TRUNC:
            self.truncate(None, 0, fh)
        return fh

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        inode = self.inode(path, fh)
        inode.atime = time.time_ns()
        return os.pread(self.fd(inode), size, offset)

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        inode = self.inode(path, fh)
        self.changing(inode)
        inode.pending.append(DataOp(self.next_seq(), inode.ino, offset, bytes(data)))
        fd = self.fd(inode)
        view = memoryview(data)
        position = offset
        while view:
            written = os.pwrite(fd, view, position)
            view = view[written:]
            position += written
        return len(data)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        inode = self.inode(path, fh)
        if inode.is_dir:
            raise FuseOSError(errno.EISDIR)
        self.changing(inode)
        inode.pending.append(DataOp(self.next_seq(), inode.ino, length, None))
        os.ftruncate(self.fd(inode), length)
        return 0

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        """The file's bytes and size become durable (not its name: that takes an fsync of the directory)."""
        inode = self.inode(path, fh)
        inode.snapshot = None
        inode.pending = []
        return 0

    def flush(self, path: str | None, fh: int) -> int:
        return 0

    def release(self, path: str | None, fh: int) -> int:
        ino = self.handles.pop(fh, None)
        if ino is not None:
            inode = self.inodes[ino]
            inode.handles -= 1
            if inode.handles == 0 and ino in self.fds:
                os.close(self.fds.pop(ino))
        return 0

    def rename(self, old: str, new: str) -> int:
        src_dir, src_name = self.parent(old)
        dst_dir, dst_name = self.parent(new)
        assert src_dir.entries is not None and dst_dir.entries is not None
        inode = self.inode(old)
        replaced_ino = dst_dir.entries.get(dst_name)
        if replaced_ino == inode.ino:
            return 0  # two names of one file: POSIX says do nothing
        if replaced_ino is not None:
            replaced = self.inodes[replaced_ino]
            if replaced.is_dir and not inode.is_dir:
                raise FuseOSError(errno.EISDIR)
            if inode.is_dir and not replaced.is_dir:
                raise FuseOSError(errno.ENOTDIR)
            if replaced.entries:
                raise FuseOSError(errno.ENOTEMPTY)
            replaced.nlink -= 1
        del src_dir.entries[src_name]
        dst_dir.entries[dst_name] = inode.ino
        now = time.time_ns()
        src_dir.mtime = src_dir.ctime = dst_dir.mtime = dst_dir.ctime = inode.ctime = now
        self.name_op("rename", src_dir.ino, src_name, inode.ino, dst_dir.ino, dst_name)
        return 0

    def link(self, target: str, source: str) -> int:
        inode = self.inode(source)
        if inode.is_dir:
            raise FuseOSError(errno.EPERM)
        directory, name = self.parent(target)
        self.add_name(directory, name, inode)
        return 0

    def symlink(self, target: str, source: str) -> int:
        directory, name = self.parent(target)
        self.add_name(directory, name, self.new_inode(stat.S_IFLNK | 0o777, target=source))
        return 0

    def readlink(self, path: str) -> str:
        return self.inode(path).target

    def chmod(self, path: str | None, mode: int) -> int:
        if path is not None:
            inode = self.inode(path)
            inode.mode = stat.S_IFMT(inode.mode) | (mode & 0o7777)
            inode.ctime = time.time_ns()
        return 0

    def chown(self, path: str | None, uid: int, gid: int) -> int:
        if path is not None:
            inode = self.inode(path)
            inode.uid = inode.uid if uid == -1 else uid
            inode.gid = inode.gid if gid == -1 else gid
        return 0

    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
        if path is not None:
            inode = self.inode(path)
            now = time.time_ns()
            inode.atime, inode.mtime = times or (now, now)
            inode.ctime = now
        return 0


class _FUSE(mfusepy.FUSE):
    """mfusepy's FUSE, but ftruncate passes its file handle (an unlinked open file has no path)."""

    def truncate_fuse_3(self, path: bytes | None, length: int, fip: Any) -> int:
        fh = fip.contents.fh if fip else None
        return self.operations.truncate(None if path is None else path.decode(), length, fh)


def main(argv: list[str]) -> int:
    state, mountpoint = Path(argv[0]), argv[1]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="forgetfs %(levelname)s %(message)s")
    filesystem = ForgetFS(state)
    (state / "report.json").unlink(missing_ok=True)
    _FUSE(filesystem, mountpoint, foreground=True, nothreads=True, hard_remove=True, use_ino=True,
          fsname="forgetfs", auto_unmount=True)
    cut_path = state / "cut.json"
    cut = json.loads(cut_path.read_text()) if cut_path.exists() else None
    cut_path.unlink(missing_ok=True)
    report = filesystem.shut_down(cut)
    (state / "report.json").write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
