"""Atomic writes: a temp file beside the target, fsync, rename. A reader sees the old file or the
new one, never half of one. A write that fails (a full disk, a file-size limit, a read-only folder)
removes its temp file and raises one :class:`WriteError` line naming the file: nothing is left behind
and the target keeps its previous content."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import torch

from bench.core.errors import BenchError


class WriteError(BenchError):
    """A file could not be written (ENOSPC, EFBIG, EACCES...): one line, exit 2."""


def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_failed(path: Path, exc: OSError) -> WriteError:
    return WriteError(f"cannot write {path}: {exc.strerror or exc}")


@contextmanager
def _atomic(path: Path, mode: str):
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_failed(path, exc) from None
    except BaseException:  # Ctrl-C, or an error while serialising: no temp file stays behind
        tmp.unlink(missing_ok=True)
        raise


def atomic_torch_save(obj, path: Path) -> None:
    with _atomic(path, "wb") as handle:
        torch.save(obj, handle)


def atomic_write_text(path: Path, text: str) -> None:
    with _atomic(path, "w") as handle:
        handle.write(text)


WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES}


def is_write_failure(exc: BaseException) -> bool:
    """An OSError of the writing side (disk full, file too large, read-only), not a damaged input."""
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS


COMPLETE = ".complete"  # the marker a folder is renamed into place with


def is_complete(path: Path) -> bool:
    """Whether ``path`` is a folder that :func:`atomic_folder` put in place whole."""
    return (Path(path) / COMPLETE).exists()


@contextmanager
def atomic_folder(path: Path):
    """Fill a folder under a temporary name and rename it into place, with a ``.complete`` marker,
    only when the block succeeds; on any error the partial folder is removed (no half-extracted
    archive in a cache) and the error goes on to the caller, which knows whether it was the input or
    the disk.

    Several processes may fill the same cache entry at once (the first load of a dataset by SLURM
    array tasks, or by runs started side by side): the first rename wins and the others drop their
    copy of the same content, instead of failing on a destination that is no longer empty."""
    path = Path(path)
    # unique per writer (two in one process too), made with the umask's mode, as the folder it becomes
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{secrets.token_hex(4)}")
    try:
        tmp.mkdir(parents=True)
        yield tmp
        (tmp / COMPLETE).touch()
        _rename_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _rename_into_place(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if is_complete(path):  # another writer's whole copy is already there: keep it
        shutil.rmtree(tmp, ignore_errors=True)
        return
    shutil.rmtree(path, ignore_errors=True)  # a folder without the marker: an older version's partial one
    os.replace(tmp, path)


def move_aside(path: Path) -> Path | None:
    """Rename a damaged file to ``<name>.corrupt-<UTC time>`` so it is kept for inspection but never
    read again; None when another reader moved it first."""
    aside = path.with_name(f"{path.name}.corrupt-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return None
    return aside
