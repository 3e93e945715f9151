"""The unprivileged uid each running sandbox holds, one per concurrent job on a machine.

Each running task holds one uid of :data:`SANDBOX_UIDS` with a lock file per uid in one
fixed folder, :data:`UID_LOCKS` (``/tmp/autograder-uids``, whatever ``$TMPDIR`` says: two
graders with different temporary folders must still see each other's locks). A lock folder
that is a link, or that another user made or can write, is refused.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from pathlib import Path

# Unprivileged uids set aside for sandboxes: no account uses them, one per concurrent job.
SANDBOX_UIDS = range(1_700_000, 1_700_256)
# One fixed place for every grader on this machine, whatever its $TMPDIR: two runs with
# different temporary folders must still see each other's locks.
UID_LOCKS = Path("/tmp/autograder-uids")

@contextlib.contextmanager
def sandbox_uid():
    """Hold a uid of :data:`SANDBOX_UIDS` that no other job on this machine holds."""
    _lock_folder()
    for uid in SANDBOX_UIDS:
        handle = os.open(UID_LOCKS / f"{uid}.lock", os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            continue
        try:
            yield uid
        finally:
            os.close(handle)   # closing releases the lock
        return
    raise RuntimeError(f"all {len(SANDBOX_UIDS)} sandbox uids are in use on this machine")


def _lock_folder() -> None:
    """Make :data:`UID_LOCKS`, and refuse one that another user made or that is a link."""
    try:
        UID_LOCKS.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(UID_LOCKS)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise RuntimeError(f"{UID_LOCKS} is not a folder of this user's that only it can write; "
                           "remove it and grade again")
