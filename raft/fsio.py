"""File access for durable state: the one seam between what a member keeps on disk and the OS.

Everything the WAL (segments, snapshot files) and the members' metadata files (``peers.json``,
the engine store's marker) do to the disk goes through a :class:`FileSystem`, so a test can put
in its place one that forgets whatever was not fsynced when the power is cut
(``tests/power_loss_fs.py``). :data:`OS_FS` is the real one.

The durability rules callers follow are POSIX's, no more:

* a file's bytes are durable once the file is fsynced (``fsync``/``fdatasync``);
* a name (a created, renamed or removed file or directory) is durable once its directory is
  fsynced; :meth:`FileSystem.makedirs` fsyncs the parent of every directory it creates;
* :func:`write_atomic` is THE way to (re)write a small file: a temp file is written and fsynced,
  renamed over the name, and the directory fsynced, so after a power cut the name holds the old
  bytes or the new ones, never a mix, nothing, or garbage.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Protocol

__all__ = ["OS_FS", "FileHandle", "FileSystem", "OsFileSystem", "write_atomic"]

TMP_SUFFIX = ".tmp"


class FileHandle(Protocol):
    """An open file: writes go to its end (appending) or from offset 0 (a new file)."""

    def write(self, data: bytes | memoryview) -> None: ...

    def fsync(self) -> None: ...

    def fdatasync(self) -> None: ...

    def truncate(self, size: int) -> None: ...

    def close(self) -> None: ...


class FileLock(Protocol):
    def release(self) -> None: ...


class FileSystem(Protocol):
    def open_append(self, path: Path, *, create: bool = True) -> FileHandle:
        """Open for appending (created empty if absent and ``create``)."""
        ...

    def open_new(self, path: Path) -> FileHandle:
        """Create (or empty) ``path`` and open it for writing."""
        ...

    def read_bytes(self, path: Path) -> bytes: ...

    def listdir(self, path: Path) -> list[str]: ...

    def exists(self, path: Path) -> bool: ...

    def makedirs(self, path: Path, *, sync: bool = True) -> None:
        """Create ``path`` and missing parents; with ``sync`` each new name is made durable."""
        ...

    def replace(self, src: Path, dst: Path) -> None: ...

    def unlink(self, path: Path, *, missing_ok: bool = False) -> None: ...

    def fsync_dir(self, path: Path) -> None: ...

    def lock(self, path: Path) -> FileLock:
        """Take an exclusive lock named ``path`` (released when the process dies); raises
        ``BlockingIOError`` when another holder has it."""
        ...


class _OsHandle:
    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def fsync(self) -> None:
        os.fsync(self.fd)

    def fdatasync(self) -> None:
        os.fdatasync(self.fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _OsLock:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the flock
            self.fd = -1


class OsFileSystem:
    """The real file system."""

    def open_append(self, path: Path, *, create: bool = True) -> FileHandle:
        flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT if create else 0)
        return _OsHandle(os.open(path, flags, 0o644))

    def open_new(self, path: Path) -> FileHandle:
        return _OsHandle(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))

    def read_bytes(self, path: Path) -> bytes:
        return Path(path).read_bytes()

    def listdir(self, path: Path) -> list[str]:
        return os.listdir(path)

    def exists(self, path: Path) -> bool:
        return os.path.exists(path)

    def makedirs(self, path: Path, *, sync: bool = True) -> None:
        path = Path(os.path.abspath(path))
        missing: list[Path] = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except FileExistsError:
                continue
            if sync:
                self.fsync_dir(d.parent)

    def replace(self, src: Path, dst: Path) -> None:
        os.replace(src, dst)

    def unlink(self, path: Path, *, missing_ok: bool = False) -> None:
        Path(path).unlink(missing_ok=missing_ok)

    def fsync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock(self, path: Path) -> FileLock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise BlockingIOError(f"{path} is locked") from None
        return _OsLock(fd)


OS_FS: FileSystem = OsFileSystem()


def write_atomic(fs: FileSystem, path: Path, data: bytes, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash at any point leaves the old bytes or the
    new ones: temp file, write, fsync, rename, fsync the directory (``sync=False``: no fsyncs,
    for throw-away data). The temp file (``<name>.tmp``) is left behind only by a crash."""
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fh = fs.open_new(tmp)
    try:
        fh.write(data)
        if sync:
            fh.fsync()
    finally:
        fh.close()
    fs.replace(tmp, path)
    if sync:
        fs.fsync_dir(path.parent)
