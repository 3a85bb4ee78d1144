#!/usr/bin/python3
"""faultfs: a FUSE passthrough filesystem whose operations fail on command (EIO, ENOSPC, ...).

Used by tests/PmemService.FaultTests to give the real service real kernel errors: a MAP_SHARED
mapping of a file on this mount gets msync() = -EIO from the kernel once the write-back WRITE fails
here; no code seam is involved.

    /usr/bin/python3 faultfs.py mount BACKING_DIR MOUNTPOINT --control SOCKET
    /usr/bin/python3 faultfs.py ctl SOCKET fail write EIO [glob=PATTERN] [count=N]
    /usr/bin/python3 faultfs.py ctl SOCKET clear [OP]
    /usr/bin/python3 faultfs.py ctl SOCKET stats

Runs on Debian 12's python3-fusepy (3.0.1, over libfuse2 2.9). fusepy's fuse_operations table ends
at ioctl; libfuse 2.9's continues with poll, write_buf, read_buf, flock and fallocate, so this file
appends those members (only fallocate is filled in), else every fallocate on the mount would be
EOPNOTSUPP. See README.md next to this file.
"""

import ctypes
import errno
import fnmatch
import json
import os
import signal
import socket
import sys
import threading

import fusepy

# Operations a rule can name. "*" matches every one of them.
FAULT_OPS = ("write", "fsync", "fsyncdir", "flush", "fallocate", "create", "truncate",
             "rename", "unlink", "open", "read", "mknod", "setxattr", "removexattr")


class _OpsWithFallocate(ctypes.Structure):
    """libfuse 2.9's struct fuse_operations: fusepy's members, then the ones past ioctl. (A ctypes
    subclass would list only its own members in _fields_, which fusepy iterates.)"""
    _fields_ = fusepy.fuse_operations._fields_ + [
        ("poll", ctypes.c_voidp),
        ("write_buf", ctypes.c_voidp),
        ("read_buf", ctypes.c_voidp),
        ("flock", ctypes.c_voidp),
        ("fallocate", ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.c_char_p, ctypes.c_int, fusepy.c_off_t, fusepy.c_off_t,
            ctypes.POINTER(fusepy.fuse_file_info))),
    ]


class _Fuse(fusepy.FUSE):
    """fusepy.FUSE plus the fallocate trampoline (FUSE.__init__ looks members up by name)."""

    def fallocate(self, path, mode, offset, length, fip):
        fh = fip.contents.fh if fip else None
        return self.operations("fallocate", self._decode_optional_path(path), mode, offset, length, fh)


fusepy.fuse_operations = _OpsWithFallocate


class Faults:
    """The rule table. A rule: op (or "*"), errno, glob over the mount-relative path ("*" = all),
    remaining count (None = until cleared). The first matching rule wins."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rules = []
        self.calls = {}
        self.failed = {}
        self.bytes_written = 0

    def add(self, op, err, glob="*", count=None):
        with self._lock:
            self._rules.append({"op": op, "errno": err, "glob": glob, "remaining": count})

    def clear(self, op=None):
        with self._lock:
            self._rules = [r for r in self._rules if op is not None and r["op"] != op]

    def reset_stats(self):
        with self._lock:
            self.calls.clear()
            self.failed.clear()
            self.bytes_written = 0

    def check(self, op, path):
        """Counts the call and raises the configured error, if any."""
        rel = (path or "").lstrip("/")
        with self._lock:
            self.calls[op] = self.calls.get(op, 0) + 1
            for rule in self._rules:
                if rule["op"] not in (op, "*"):
                    continue
                if not fnmatch.fnmatchcase(rel, rule["glob"]):
                    continue
                if rule["remaining"] is not None:
                    if rule["remaining"] <= 0:
                        continue
                    rule["remaining"] -= 1
                self.failed[op] = self.failed.get(op, 0) + 1
                err = rule["errno"]
                break
            else:
                return
        raise fusepy.FuseOSError(err)

    def snapshot(self):
        with self._lock:
            return {"calls": dict(self.calls), "failed": dict(self.failed),
                    "bytes_written": self.bytes_written,
                    "rules": [dict(r, errno=errno.errorcode.get(r["errno"], r["errno"])) for r in self._rules]}


class FaultFs(fusepy.Operations):
    """Passthrough over a backing directory; every data and metadata operation goes to the backing
    file descriptor or path, after Faults.check."""

    use_ns = True

    def __init__(self, root, faults):
        self.root = os.path.realpath(root)
        self.faults = faults
        self.ready = threading.Event()
        # fh -> mount-relative path at open time (writes arrive with the fh; the path is for rules).
        self._paths = {}

    def _full(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _path_of(self, path, fh):
        return path if path is not None else self._paths.get(fh, "")

    def init(self, path):
        self.ready.set()

    # --- metadata --------------------------------------------------------------------------
    def access(self, path, mode):
        if not os.access(self._full(path), mode):
            raise fusepy.FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        os.chmod(self._full(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._full(path), uid, gid)

    def getattr(self, path, fh=None):
        st = os.fstat(fh) if fh is not None else os.lstat(self._full(path))
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino", "st_blocks",
                "st_atime_ns", "st_mtime_ns", "st_ctime_ns")
        out = {k: getattr(st, k) for k in keys}
        for k in ("st_atime", "st_mtime", "st_ctime"):
            out[k] = out.pop(k + "_ns")
        return out

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._full(path))

    def readlink(self, path):
        return os.readlink(self._full(path))

    def mknod(self, path, mode, dev):
        self.faults.check("mknod", path)
        os.mknod(self._full(path), mode, dev)

    def mkdir(self, path, mode):
        os.mkdir(self._full(path), mode)

    def rmdir(self, path):
        os.rmdir(self._full(path))

    def symlink(self, target, source):
        os.symlink(source, self._full(target))

    def link(self, target, source):
        os.link(self._full(source), self._full(target))

    def rename(self, old, new):
        self.faults.check("rename", old)
        os.rename(self._full(old), self._full(new))

    def unlink(self, path):
        self.faults.check("unlink", path)
        os.unlink(self._full(path))

    def utimens(self, path, times=None):
        if times is None:
            os.utime(self._full(path), follow_symlinks=False)
        else:
            os.utime(self._full(path), ns=times, follow_symlinks=False)

    def statfs(self, path):
        sv = os.statvfs(self._full(path))
        return {k: getattr(sv, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                                             "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

    # --- files -----------------------------------------------------------------------------
    def open(self, path, flags):
        self.faults.check("open", path)
        fh = os.open(self._full(path), flags & ~os.O_CREAT)
        self._paths[fh] = path
        return fh

    def create(self, path, mode, fi=None):
        self.faults.check("create", path)
        fh = os.open(self._full(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        # The kernel reuses this handle for reads when the caller opened O_RDWR.
        os.close(fh)
        fh = os.open(self._full(path), os.O_RDWR)
        self._paths[fh] = path
        return fh

    def read(self, path, size, offset, fh):
        self.faults.check("read", self._path_of(path, fh))
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        self.faults.check("write", self._path_of(path, fh))
        n = os.pwrite(fh, data, offset)
        with self.faults._lock:
            self.faults.bytes_written += n
        return n

    def truncate(self, path, length, fh=None):
        self.faults.check("truncate", self._path_of(path, fh))
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._full(path), length)

    def fallocate(self, path, mode, offset, length, fh):
        self.faults.check("fallocate", self._path_of(path, fh))
        if mode != 0:
            raise fusepy.FuseOSError(errno.EOPNOTSUPP)
        os.posix_fallocate(fh, offset, length)

    def flush(self, path, fh):
        self.faults.check("flush", self._path_of(path, fh))

    def fsync(self, path, datasync, fh):
        self.faults.check("fsync", self._path_of(path, fh))
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)

    def fsyncdir(self, path, datasync, fh):
        self.faults.check("fsyncdir", path)
        fd = os.open(self._full(path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def release(self, path, fh):
        self._paths.pop(fh, None)
        os.close(fh)

    # Extended attributes pass through to the backing file: the service keeps region metadata in
    # user.pmem.* (the owner and access list are set on every create, so without these every create
    # on the mount would fail with EOPNOTSUPP). fusepy turns an OSError into -errno (ENODATA included).
    # Changes (setxattr, removexattr) fail on command like the data operations; reads never do.
    def getxattr(self, path, name, position=0):
        return os.getxattr(self._full(path), name, follow_symlinks=False)

    def setxattr(self, path, name, value, options, position=0):
        self.faults.check("setxattr", path)
        os.setxattr(self._full(path), name, value, options, follow_symlinks=False)

    def listxattr(self, path):
        return os.listxattr(self._full(path), follow_symlinks=False)

    def removexattr(self, path, name):
        self.faults.check("removexattr", path)
        os.removexattr(self._full(path), name, follow_symlinks=False)


def _parse_errno(text):
    if text.isdigit():
        return int(text)
    value = getattr(errno, text.upper(), None)
    if not isinstance(value, int):
        raise ValueError(f"unknown errno {text!r}")
    return value


def _command(faults, fs, line):
    parts = line.split()
    if not parts:
        return "error empty command"
    cmd, args = parts[0], parts[1:]
    if cmd == "ping":
        return "ok ready" if fs.ready.is_set() else "ok starting"
    if cmd == "fail":
        if len(args) < 2:
            return "error usage: fail OP ERRNO [glob=PATTERN] [count=N]"
        op, err = args[0], _parse_errno(args[1])
        if op != "*" and op not in FAULT_OPS:
            return f"error unknown op {op!r} (one of {', '.join(FAULT_OPS)} or *)"
        opts = dict(a.split("=", 1) for a in args[2:])
        faults.add(op, err, opts.get("glob", "*"), int(opts["count"]) if "count" in opts else None)
        return "ok"
    if cmd == "clear":
        faults.clear(args[0] if args else None)
        return "ok"
    if cmd == "reset-stats":
        faults.reset_stats()
        return "ok"
    if cmd == "stats":
        return json.dumps(faults.snapshot(), sort_keys=True)
    return f"error unknown command {cmd!r}"


def _serve_control(sock, faults, fs):
    while True:
        conn, _ = sock.accept()
        with conn, conn.makefile("rw", encoding="utf-8", newline="\n") as f:
            for line in f:
                try:
                    reply = _command(faults, fs, line.strip())
                except Exception as e:  # a bad command must not stop the control loop
                    reply = f"error {e}"
                f.write(reply + "\n")
                f.flush()


def mount(backing, mountpoint, control):
    faults = Faults()
    fs = FaultFs(backing, faults)
    if os.path.exists(control):
        os.unlink(control)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(control)
    sock.listen(16)
    threading.Thread(target=_serve_control, args=(sock, faults, fs), daemon=True).start()
    # No direct_io (a MAP_SHARED writable mapping needs the page cache), no writeback cache (libfuse 2
    # has none): the kernel writes dirty mapped pages back with WRITE requests, whose error msync sees.
    # use_ino: st_ino is the backing file's inode; big_writes: up to max_write per WRITE.
    _Fuse(fs, mountpoint, foreground=True, nothreads=False, use_ino=True, big_writes=True,
          max_write=131072, fsname="faultfs", subtype="faultfs", default_permissions=True)


def ctl(control, words):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(control)
        s.sendall((" ".join(words) + "\n").encode())
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    text = reply.decode().strip()
    print(text)
    return 1 if text.startswith("error") else 0


def main(argv):
    if len(argv) >= 4 and argv[1] == "mount":
        control = None
        rest = argv[4:]
        if len(rest) == 2 and rest[0] == "--control":
            control = rest[1]
        if control is None:
            print("usage: faultfs.py mount BACKING MOUNTPOINT --control SOCKET", file=sys.stderr)
            return 2
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        mount(argv[2], argv[3], control)
        return 0
    if len(argv) >= 4 and argv[1] == "ctl":
        return ctl(argv[2], argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
