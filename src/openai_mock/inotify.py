"""Linux's inotify, through the C library (ctypes, no dependency): a file descriptor that becomes
readable when something changes in the folders watched, which trio waits on like a socket.

Its own module because it is the one place that calls the C library; `watcher.py` decides what
to watch and what a change means. Each folder is watched with a filter of the names that
matter in it (the configuration's files); what happens to the folder itself (deleted, moved
away, a sub-folder made or removed) always matters, as does an overflow of the kernel's queue.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from collections.abc import Callable

import trio

# from <sys/inotify.h>
IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
WATCHED = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
           | IN_DELETE_SELF | IN_MOVE_SELF)
ALWAYS = IN_DELETE_SELF | IN_MOVE_SELF | IN_Q_OVERFLOW | IN_IGNORED | IN_ISDIR  # whatever the name
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name, NUL-padded

Names = Callable[[str], bool]  # which names in a folder matter


class Inotify:
    """An inotify instance. `watch` each folder with the names that matter in it; `wait`
    returns once something that matters has changed."""

    def __init__(self, fd: int, libc: ctypes.CDLL):
        self._fd = fd
        self._libc = libc
        self._names: dict[int, Names] = {}  # watch descriptor -> the names that matter there

    @classmethod
    def open(cls) -> Inotify | None:
        """A new instance, or None where there is no inotify (not Linux, or the per-user limit
        of instances reached)."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.inotify_init1.argtypes = [ctypes.c_int]
            libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
            libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        except (OSError, AttributeError):
            return None
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        return cls(fd, libc) if fd >= 0 else None

    def watch(self, folders: dict[str, Names]) -> bool:
        """Watch exactly these folders (each with the names that matter in it), no others.
        False when one could not be watched (it does not exist, or the limit of watches is
        reached): changes there are not seen."""
        every = True
        kept: dict[int, Names] = {}
        for folder, names in folders.items():
            wd = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), WATCHED | IN_ONLYDIR)
            if wd < 0:
                every = False
                continue
            given = kept.get(wd)  # (one folder under two names: one descriptor, both filters)
            kept[wd] = names if given is None else _either(given, names)
        for wd in self._names.keys() - kept.keys():
            self._libc.inotify_rm_watch(self._fd, wd)
        self._names = kept
        return every

    async def wait(self) -> None:
        """Until something that matters has changed: every event queued is read."""
        while True:
            await trio.lowlevel.wait_readable(self._fd)
            if self.drain():
                return

    def drain(self) -> bool:
        """Read every event queued; whether one of them matters."""
        matters = False
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return matters
            except OSError as error:  # pragma: no cover - EINTR is retried by Python
                if error.errno == errno.EINTR:
                    continue
                raise
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, offset)
                start = offset + _EVENT.size
                offset = start + length
                if matters:
                    continue
                names = self._names.get(wd)
                if names is None or mask & ALWAYS:
                    matters = True
                    continue
                name = os.fsdecode(data[start:offset].split(b"\0", 1)[0])
                matters = names(name)

    def close(self) -> None:
        trio.lowlevel.notify_closing(self._fd)
        os.close(self._fd)


def _either(one: Names, other: Names) -> Names:
    return lambda name: one(name) or other(name)
