"""File helpers, one per job: atomic writes (so a killed job never leaves a half-written output behind),
readers of the files the stages hand each other (one line naming a missing, truncated or damaged one), a
file's sha256 and the code's git commit.

Faults a long run meets, and what these helpers make of them:
- A full disk, a quota or a file-size limit (ENOSPC, EDQUOT, EFBIG): every output is serialised in memory first
  and its space reserved (os.posix_fallocate) before a byte of it is written, so a full disk is one line naming
  the output, what it is and how much space it needs (`space_error`); the temporary is removed and the previous
  good file stays as it was.
- A kill (SIGKILL, a dead node: no cleanup runs): outputs are written to temporaries `.<name>.avvp-<random>.tmp`
  beside them, renamed into place only when complete; a writer holds an flock on its temporary (a folder's: on
  the .lock file inside) while it lives, and the kernel drops it when the writer dies, so the next write into
  the same folder recognises the temporaries of dead writers (their lock is free) and removes them
  (`remove_stale_temporaries`); a live writer's, on this machine or another NFS client, is kept. Where flock
  is not available nothing is removed. Readers never look at dotfiles.
- A damaged file (truncated, not JSON, not a zip archive): `read_json` and `read_npz` say so in one line with
  the remedy; `unreadable` is the cheap check (no decompression) the workflow runs on its outputs at start, to
  remove the unreadable ones so that Snakemake makes them again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from avvp.errors import AvvpError, Unreadable

_UMASK = os.umask(0)
os.umask(_UMASK)

TEMP_MARK = ".avvp-"
# What atomic_write and atomic_dir name their temporaries: .<name>.avvp-<8 random characters>.tmp
TEMPORARY = re.compile(r"^\..+\.avvp-[a-z0-9_]{8}\.tmp$")
DIR_LOCK = ".lock"                        # inside a temporary folder: the file its writer holds locked
# What an output is, by its suffix, for the one line of a full disk.
KINDS = {".pt": "checkpoint", ".npz": "arrays", ".npy": "array", ".json": "JSON", ".png": "figure",
         ".csv": "CSV table", ".md": "markdown table", ".yaml": "YAML"}
SPACE_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                errno.EFBIG: "file too large for the file-size limit"}


# ------------------------------------------------------------------------------------------ full disk

class MoreThan(int):
    """A lower bound on the bytes an output needs (what a streamed write had written when the disk filled)."""


def size_text(n: int | None) -> str:
    if n is None:
        return "unknown"
    more = "more than " if isinstance(n, MoreThan) else ""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{more}{n / scale:.1f} {unit}"
    return f"{more}{n} B"


def _existing(path) -> Path:
    """`path` itself, or its nearest parent that exists (where an output is about to be made)."""
    path = Path(os.path.abspath(path))
    return next((p for p in (path, *path.parents) if p.exists()), Path("/"))


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes free to this user on the file system that holds `path` (or its nearest existing parent)."""
    return shutil.disk_usage(_existing(path)).free


def space_error(e: OSError, path, what: str, needed: int | None) -> AvvpError | None:
    """The one line of a full disk, a quota or a file-size limit met writing `what` to `path`; None for any other
    OSError. `needed`: the bytes the output needs (None: not known before it was written)."""
    code = _space_errno(e)
    cause = SPACE_ERRORS.get(code)
    if cause is None:
        return None
    if code == errno.EFBIG:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        where = f"limit {size_text(limit)}, `ulimit -f`" if limit != resource.RLIM_INFINITY else "file system limit"
        fix = "raise the limit and re-run"
    else:
        where, fix = f"{size_text(free_bytes(path))} free", "free some space (or write elsewhere) and re-run"
    return AvvpError(f"{path}: {cause} writing the {what} (needs {size_text(needed)}, {where}); {fix}")


def _space_errno(e: OSError) -> int | None:
    """The errno of `e`; numpy's array writer (ndarray.tofile) reports a short write, which only a full disk or
    the file-size limit causes, without one: then EFBIG under a finite limit, else ENOSPC."""
    if e.errno is not None or not re.search(r"\d+ requested and \d+ written", str(e)):
        return e.errno
    return errno.EFBIG if resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY else errno.ENOSPC


@contextlib.contextmanager
def space_errors(path, what: str, needed: int | None = None):
    """Turn a full disk (or file-size limit) inside the block into `space_error`'s one line."""
    try:
        yield
    except OSError as e:
        err = space_error(e, path, what, needed)
        if err is None:
            raise
        raise err from None


def check_free(folder, needed: int, what: str, path=None) -> None:
    """An AvvpError before anything is written when the file system of `folder` has less than `needed` free."""
    free = free_bytes(folder)
    if free < needed:
        raise AvvpError(f"{path or folder}: needs {size_text(needed)} for the {what}, {size_text(free)} free on "
                        f"{_existing(folder)}; free some space (or write elsewhere) and re-run")


def reserve(fd: int, size: int) -> None:
    """Allocate `size` bytes of the open file now, so that a full disk fails here and not in a later write (or
    as SIGBUS in a memory map). File systems without fallocate (EOPNOTSUPP, EINVAL) are left to the write."""
    if size <= 0:
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


# ------------------------------------------------------------------------------------- temporaries

def _try_lock(fd: int) -> bool | None:
    """True: locked now; False: another open file (a live writer) holds it; None: locks are not available."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return None


def _stale(entry: os.DirEntry) -> bool:
    """A temporary whose writer is gone: its lock (the file itself, or a folder's DIR_LOCK) is free."""
    target = os.path.join(entry.path, DIR_LOCK) if entry.is_dir(follow_symlinks=False) else entry.path
    try:
        fd = os.open(target, os.O_RDWR)
    except OSError:
        return False     # a folder without its lock file yet (being made), or gone: not ours to judge
    try:
        return bool(_try_lock(fd))
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries that killed writers left in `folder` (their lock is free); returns them.
    A live writer's temporary (in this or another process, on this or another NFS client) is kept."""
    try:
        entries = [e for e in os.scandir(folder) if TEMPORARY.match(e.name)]
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        if _stale(entry):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _locked_temporary(path: Path) -> tuple[int, Path]:
    """A new temporary file beside `path`, open and locked; made again if a sweeper removed it before the lock."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", suffix=".tmp", dir=path.parent)
        if _try_lock(fd) is False:  # a sweeper holds it and is removing it: wait for that, then look again
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _same_file(fd, tmp):
            return fd, Path(tmp)
        os.close(fd)


def _locked_temporary_dir(path: Path) -> tuple[int, Path]:
    """A new temporary folder beside `path` and the open, locked fd of its lock file. The lock file is made
    under another name, locked, then renamed to DIR_LOCK, so a sweeper never finds it unlocked (a folder without
    DIR_LOCK is never judged stale)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}{TEMP_MARK}", suffix=".tmp", dir=path.parent))
    fd, lock = tempfile.mkstemp(prefix=".lock.", dir=tmp)
    _try_lock(fd)
    os.replace(lock, tmp / DIR_LOCK)
    return fd, tmp


# --------------------------------------------------------------------------------------------- writers

def _kind(path: Path, what: str | None) -> str:
    return what or KINDS.get(path.suffix, "output")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = "", what: str | None = None, size: int | None = None):
    """Yield a temporary sibling of `path` to write; on success it replaces `path`, on failure it vanishes.

    The sibling lives in the same folder so os.replace is atomic; `suffix` is accepted for older callers (the
    temporary's name always ends in .tmp). `size`: bytes to reserve first (a full disk fails before writing).
    A full disk is one line naming `path` and `what` (by default, from its suffix); stale temporaries of killed
    writers in the folder are removed first.
    """
    path = Path(path)
    what = _kind(path, what)
    with space_errors(path, what, size):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        fd, tmp = _locked_temporary(path)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; outputs get the usual permissions
        reserve(fd, size or 0)
        yield tmp
        # No fsync (it would cost a checkpoint ~0.3 s on a busy disk, every epoch): after a power cut an output
        # may be empty or truncated, which its reader and the workflow's start-up check find unreadable.
        os.replace(tmp, path)
    except OSError as e:
        # A streamed write (no size given) needs more than it had written when the disk filled up.
        err = space_error(e, path, what, size or MoreThan(os.fstat(fd).st_size))
        if err is None:
            raise
        raise err from None
    finally:
        tmp.unlink(missing_ok=True)
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes | memoryview, what: str | None = None) -> None:
    """Write `data` atomically, its space reserved first."""
    with atomic_write(path, what=what, size=len(data)) as tmp, open(tmp, "r+b") as f:  # r+: keep the reservation
        f.write(data)


def write_text(path: str | os.PathLike, text: str, what: str | None = None) -> None:
    write_bytes(path, text.encode(), what)


def write_json(path: str | os.PathLike, obj, what: str | None = None) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n", what)


def _serialised(save) -> memoryview:
    buf = io.BytesIO()
    save(buf)
    return buf.getbuffer()


def write_npz(path: str | os.PathLike, **arrays) -> None:
    write_bytes(path, _serialised(lambda f: np.savez_compressed(f, **arrays)))


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    write_bytes(path, _serialised(lambda f: np.save(f, array)))


def save_torch(path: str | os.PathLike, obj) -> None:
    import torch  # lazily: the workflow imports this module and needs no torch

    # In memory first: torch's own writer turns a full disk into a C++ "unexpected pos" traceback.
    write_bytes(path, _serialised(lambda f: torch.save(obj, f)))


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> None:
    """Write a matplotlib figure as PNG and free it (pyplot keeps every open figure alive otherwise)."""
    import matplotlib.pyplot as plt

    try:
        write_bytes(path, _serialised(lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")))
    finally:
        plt.close(fig)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, what: str = "folder", needed: int | None = None):
    """Yield a temporary sibling folder to fill; on success it replaces `path` whole, on failure it vanishes.

    So a folder output (a generated or packed dataset) is either complete or absent, never half-written.
    Stale temporaries of killed writers beside it are removed first; `needed` (bytes) is checked against the
    free space before anything is written.
    """
    path = Path(path)
    with space_errors(path, what, needed):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        if needed is not None:
            check_free(path.parent, needed, what, path)
        fd, tmp = _locked_temporary_dir(path)
        try:
            yield tmp
            os.chmod(tmp, 0o777 & ~_UMASK)
            (tmp / DIR_LOCK).unlink()
            _replace_dir(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            os.close(fd)


def _replace_dir(tmp: Path, path: Path) -> None:
    """Put folder `tmp` at `path`. An old `path` is first renamed to an unlocked temporary name (so a kill in
    between leaves it to the next sweep, never half-deleted at `path`), then removed."""
    if not path.exists():
        os.replace(tmp, path)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old{TEMP_MARK}", suffix=".tmp", dir=path.parent))
    os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------------- readers

def _reason(e: Exception) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"not valid JSON, line {e.lineno}: {e.msg}"
    if isinstance(e, UnicodeDecodeError):
        return "not text"
    if isinstance(e, (zipfile.BadZipFile, EOFError)):
        return f"truncated or not an archive: {e}"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")


READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)   # ValueError: JSON, unicode


def _missing(path, remedy: str) -> AvvpError:
    return AvvpError(f"{path}: missing" + (f" ({remedy})" if remedy else ""))


def read_json(path: str | os.PathLike, what: str = "JSON file", remedy: str = ""):
    """The JSON in `path`; a missing or unreadable one is one line naming it and `remedy` (the command that
    makes it)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise _missing(path, remedy) from None
    except READ_ERRORS as e:
        raise Unreadable(path, what, _reason(e), remedy) from None


def read_npz(path: str | os.PathLike, keys, what: str, remedy: str) -> dict[str, np.ndarray]:
    """The `keys` arrays of an .npz, read whole; a missing, truncated or damaged file, or one without a key, is
    one line naming it and `remedy`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise Unreadable(path, what, f"no array {', '.join(missing)}", remedy)
            return {k: z[k] for k in keys}
    except FileNotFoundError:
        raise _missing(path, remedy) from None
    except READ_ERRORS as e:
        raise Unreadable(path, what, _reason(e), remedy) from None


def unreadable(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read back, or None. Cheap (no decompression): a JSON file is parsed, a zip archive
    (.npz, torch's .pt) must have its central directory and every member inside the file; other kinds pass."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix in (".npz", ".pt"):
            size = path.stat().st_size
            with zipfile.ZipFile(path) as z:
                if any(i.header_offset + i.compress_size > size for i in z.infolist()):
                    return "truncated: a member ends past the end of the file"
    except FileNotFoundError:
        return None
    except READ_ERRORS as e:
        return _reason(e)
    return None


def remove_unreadable(rebuildable: list[tuple[str, tuple[str, ...]]], dry_run: bool = False) -> list[str]:
    """Remove every unreadable file matching a glob pattern of `rebuildable` (pattern, names of the files in its
    folder that go with it) and its companions, so that the workflow makes them again; one line per file."""
    import glob

    found = [(name, reason, companions) for pattern, companions in rebuildable for name in sorted(glob.glob(pattern))
             if (reason := unreadable(name)) is not None]
    lines = []
    for name, reason, companions in found:
        also = [c for c in companions if os.path.exists(os.path.join(os.path.dirname(name), c))]
        lines.append(f"{name}: unreadable ({reason}); " + ("a real run removes it" if dry_run else "removed")
                     + (f" with {', '.join(also)}" if also else "") + ", to be made again")
    if not dry_run:
        for name, _, companions in found:
            for f in (name, *(os.path.join(os.path.dirname(name), c) for c in companions)):
                Path(f).unlink(missing_ok=True)
    return lines


def load_torch(path: str | os.PathLike, map_location="cpu", weights_only: bool = True,
               remedy: str = "delete it and re-run"):
    """torch.load with one line (Unreadable) naming the file when it is truncated or foreign."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except FileNotFoundError:
        raise _missing(path, remedy) from None
    except Exception as e:  # torch raises many types for a truncated or foreign file
        raise Unreadable(path, "checkpoint", type(e).__name__, remedy) from None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in blocks so a large annotation or feature file is not held in memory."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise AvvpError(f"{path}: cannot read ({e.strerror})") from None
    return h.hexdigest()


def folder_hash(digests: dict[str, str]) -> str:
    """One hash over a folder's files (file name -> sha256): sha256 of `name NUL digest LF`, names sorted.

    Independent of the order the files were written or read in, and of the folder's own path."""
    text = "".join(f"{name}\0{digests[name]}\n" for name in sorted(digests))
    return hashlib.sha256(text.encode()).hexdigest()


def git_commit() -> str:
    """The short commit of the code (the checkout this package lives in), or 'unknown' outside git."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
