"""A simulated disk that loses what was not fsynced: the file system of the power-loss tests.

:class:`SimDisk` keeps files and directories in memory in two versions: what reads see now (the
OS page cache) and what a power cut would leave (what reached the platter). A file's bytes
become durable when the file is fsynced; a directory's entries (created, renamed and removed
names, new subdirectories) when the directory is fsynced. That is all POSIX promises, and all
this disk grants.

* :meth:`SimDisk.mount` gives one process's :class:`raft.fsio.FileSystem` over the disk.
* :meth:`SimDisk.process_crash` kills the processes (every mount's handles and locks die) but
  keeps the page cache: a SIGKILL.
* :meth:`SimDisk.power_cut` kills the processes and reverts the disk to what power loss may
  leave: each directory holds its durable entries plus a random subset (in order) of the changes
  not yet made durable; each file its durable bytes, possibly followed by a random part of what
  was appended since, whose tail may be zeros or noise (a torn write).
* :meth:`SimDisk.crash_after` arms a power cut (or, ``power=False``, a process crash) at the
  n-th mutating call from now: that call raises :class:`PowerLoss` (:class:`ProcessKilled`)
  without doing anything. Both are BaseExceptions, so no ``except Exception`` swallows them.

After a crash the dead mounts' calls raise ``OSError(EIO)``, as a dead machine's would never
return; closing their handles is allowed (a no-op).
"""

from __future__ import annotations

import errno
import os
import random
import threading
from pathlib import Path

__all__ = ["Crash", "PowerLoss", "ProcessKilled", "SimDisk"]


class Crash(BaseException):
    """An armed crash happened inside this call."""


class PowerLoss(Crash):
    """The armed power cut happened inside this call."""


class ProcessKilled(Crash):
    """The armed process crash (SIGKILL) happened inside this call."""


class _File:
    __slots__ = ("data", "durable")

    def __init__(self) -> None:
        self.data = bytearray()
        self.durable = b""


class _Dir:
    __slots__ = ("durable", "names", "ops")

    def __init__(self) -> None:
        self.names: dict[str, _File | _Dir] = {}
        self.durable: dict[str, _File | _Dir] = {}
        self.ops: list[list[tuple[str, _File | _Dir | None]]] = []
        """Changes since the last fsync, in order; each applies atomically (a rename is one)."""

    def change(self, *assignments: tuple[str, _File | _Dir | None]) -> None:
        for name, node in assignments:
            if node is None:
                self.names.pop(name, None)
            else:
                self.names[name] = node
        self.ops.append(list(assignments))


class SimDisk:
    """In-memory disk rooted at ``root`` (which exists durably); see the module docstring."""

    def __init__(self, root: str | os.PathLike[str], rng: random.Random | None = None) -> None:
        self.root = Path(os.path.abspath(root))
        self.rng = rng or random.Random(0)
        self._top = _Dir()
        self._mu = threading.RLock()
        self._mounts: list[SimFS] = []
        self._locks: dict[str, SimFS] = {}
        self._countdown = 0
        self._power = True
        self.ops = 0
        """Mutating calls made so far (crash points are counted in these)."""
        self.power_cuts = 0

    # ------------------------------------------------------------------ processes
    def mount(self) -> SimFS:
        with self._mu:
            fs = SimFS(self)
            self._mounts.append(fs)
            return fs

    def process_crash(self) -> None:
        """Every process using the disk dies; the page cache survives."""
        with self._mu:
            for m in self._mounts:
                m.alive = False
            self._mounts.clear()
            self._locks.clear()

    def crash_after(self, n: int | None, *, power: bool = True) -> None:
        """Power cut (``power=False``: process crash) at the ``n``-th mutating call from now
        (None: disarm)."""
        with self._mu:
            self._countdown = n or 0
            self._power = power

    def power_cut(self) -> None:
        """The machine loses power: processes die, unsynced state is (partly) lost."""
        with self._mu:
            self.process_crash()
            self.power_cuts += 1
            self._revert(self._top, set())

    def _revert(self, d: _Dir, seen: set[int]) -> None:
        rng = self.rng
        if d.ops:
            mode = rng.random()
            keep_p = 0.0 if mode < 0.35 else 1.0 if mode < 0.6 else 0.5
            names = dict(d.durable)
            for op in d.ops:
                if rng.random() < keep_p:
                    for name, node in op:
                        if node is None:
                            names.pop(name, None)
                        else:
                            names[name] = node
            d.names, d.ops = names, []
        d.durable = dict(d.names)
        for node in d.names.values():
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, _Dir):
                self._revert(node, seen)
            else:
                self._revert_file(node)

    def _revert_file(self, f: _File) -> None:
        rng = self.rng
        cur, dur = bytes(f.data), f.durable
        if cur != dur:
            r = rng.random()
            if r < 0.4:
                keep = dur
            elif r < 0.6:
                keep = cur
            elif cur.startswith(dur):  # appended since the fsync: part of it may be there
                cut = rng.randint(len(dur), len(cur))
                keep = cur[:cut]
                if cut > len(dur) and rng.random() < 0.5:  # torn: the tail is zeros or noise
                    g = rng.randint(len(dur), cut - 1)
                    junk = (bytes(cut - g) if rng.random() < 0.5
                            else rng.randbytes(cut - g))
                    keep = keep[:g] + junk
            else:
                keep = cur[:rng.randint(0, len(cur))]
            f.data = bytearray(keep)
        f.durable = bytes(f.data)

    # ------------------------------------------------------------------ tree
    def _tick(self, fs: SimFS) -> None:
        """Called under the lock by every mutating call, before it does anything."""
        if not fs.alive:
            raise OSError(errno.EIO, "the machine is down")
        self.ops += 1
        if self._countdown:
            self._countdown -= 1
            if not self._countdown:
                if not self._power:
                    self.process_crash()
                    raise ProcessKilled(f"process killed at operation {self.ops}")
                self.power_cut()
                raise PowerLoss(f"power cut at operation {self.ops}")

    def _parts(self, path: str | os.PathLike[str]) -> list[str]:
        p = Path(os.path.abspath(path))
        try:
            rel = p.relative_to(self.root)
        except ValueError:
            raise ValueError(f"{p} is outside the simulated disk at {self.root}") from None
        return [part for part in rel.parts if part not in ("", ".")]

    def _lookup(self, path: str | os.PathLike[str]) -> _File | _Dir | None:
        node: _File | _Dir | None = self._top
        for part in self._parts(path):
            if not isinstance(node, _Dir):
                return None
            node = node.names.get(part)
        return node

    def _parent(self, path: str | os.PathLike[str]) -> tuple[_Dir, str]:
        parts = self._parts(path)
        if not parts:
            raise OSError(errno.EINVAL, "the root has no parent")
        node = self._lookup(self.root.joinpath(*parts[:-1]))
        if not isinstance(node, _Dir):
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(Path(path).parent))
        return node, parts[-1]

    # ------------------------------------------------------------------ inspection (tests)
    def files(self) -> dict[str, bytes]:
        """Current content of every file, by path relative to the root."""
        out: dict[str, bytes] = {}

        def walk(d: _Dir, prefix: str) -> None:
            for name, node in d.names.items():
                if isinstance(node, _Dir):
                    walk(node, prefix + name + "/")
                else:
                    out[prefix + name] = bytes(node.data)
        with self._mu:
            walk(self._top, "")
        return out


class _Handle:
    __slots__ = ("closed", "f", "fs")

    def __init__(self, fs: SimFS, f: _File) -> None:
        self.fs, self.f, self.closed = fs, f, False

    def _op(self) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "file is closed")
        self.fs.disk._tick(self.fs)

    def write(self, data: bytes | memoryview) -> None:
        with self.fs.disk._mu:
            self._op()
            self.f.data += data

    def fsync(self) -> None:
        with self.fs.disk._mu:
            self._op()
            self.f.durable = bytes(self.f.data)

    fdatasync = fsync

    def truncate(self, size: int) -> None:
        with self.fs.disk._mu:
            self._op()
            del self.f.data[size:]
            if len(self.f.data) < size:
                self.f.data += bytes(size - len(self.f.data))

    def close(self) -> None:
        self.closed = True


class _Lock:
    def __init__(self, fs: SimFS, key: str) -> None:
        self.fs, self.key = fs, key

    def release(self) -> None:
        with self.fs.disk._mu:
            if self.fs.disk._locks.get(self.key) is self.fs:
                del self.fs.disk._locks[self.key]


class SimFS:
    """One process's view of a :class:`SimDisk` (implements ``raft.fsio.FileSystem``)."""

    def __init__(self, disk: SimDisk) -> None:
        self.disk = disk
        self.alive = True

    def _alive(self) -> None:
        if not self.alive:
            raise OSError(errno.EIO, "the machine is down")

    # reads
    def read_bytes(self, path: Path) -> bytes:
        with self.disk._mu:
            self._alive()
            node = self.disk._lookup(path)
            if not isinstance(node, _File):
                raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
            return bytes(node.data)

    def listdir(self, path: Path) -> list[str]:
        with self.disk._mu:
            self._alive()
            node = self.disk._lookup(path)
            if not isinstance(node, _Dir):
                raise FileNotFoundError(errno.ENOENT, "no such directory", str(path))
            return list(node.names)

    def exists(self, path: Path) -> bool:
        with self.disk._mu:
            self._alive()
            return self.disk._lookup(path) is not None

    # writes
    def _open(self, path: Path, *, create: bool, truncate: bool) -> _Handle:
        with self.disk._mu:
            self.disk._tick(self)
            parent, name = self.disk._parent(path)
            node = parent.names.get(name)
            if isinstance(node, _Dir):
                raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
            if node is None:
                if not create:
                    raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
                node = _File()
                parent.change((name, node))
            elif truncate:
                node.data.clear()
            return _Handle(self, node)

    def open_append(self, path: Path, *, create: bool = True) -> _Handle:
        return self._open(path, create=create, truncate=False)

    def open_new(self, path: Path) -> _Handle:
        return self._open(path, create=True, truncate=True)

    def makedirs(self, path: Path, *, sync: bool = True) -> None:
        parts = self.disk._parts(path)
        with self.disk._mu:
            self._alive()
            d = self.disk._top
            for part in parts:
                node = d.names.get(part)
                if node is None:
                    self.disk._tick(self)
                    node = _Dir()
                    d.change((part, node))
                    if sync:
                        self.disk._tick(self)
                        d.durable, d.ops = dict(d.names), []
                elif not isinstance(node, _Dir):
                    raise FileExistsError(errno.EEXIST, "not a directory", part)
                d = node

    def replace(self, src: Path, dst: Path) -> None:
        with self.disk._mu:
            self.disk._tick(self)
            sdir, sname = self.disk._parent(src)
            ddir, dname = self.disk._parent(dst)
            if sdir is not ddir:
                raise NotImplementedError("rename across directories is not simulated")
            node = sdir.names.get(sname)
            if node is None:
                raise FileNotFoundError(errno.ENOENT, "no such file", str(src))
            sdir.change((sname, None), (dname, node))

    def unlink(self, path: Path, *, missing_ok: bool = False) -> None:
        with self.disk._mu:
            self.disk._tick(self)
            parent, name = self.disk._parent(path)
            node = parent.names.get(name)
            if node is None:
                if missing_ok:
                    return
                raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
            if isinstance(node, _Dir):
                raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
            parent.change((name, None))

    def fsync_dir(self, path: Path) -> None:
        with self.disk._mu:
            self.disk._tick(self)
            node = self.disk._lookup(path)
            if not isinstance(node, _Dir):
                raise FileNotFoundError(errno.ENOENT, "no such directory", str(path))
            node.durable, node.ops = dict(node.names), []

    def lock(self, path: Path) -> _Lock:
        key = os.path.abspath(path)
        with self.disk._mu:
            self._alive()
            holder = self.disk._locks.get(key)
            if holder is not None and holder.alive:
                raise BlockingIOError(errno.EAGAIN, "locked", key)
            self.disk._locks[key] = self
            return _Lock(self, key)
