"""
Small tmpfs file systems to fill a disk (root only), unmounted by the
case's cleanup (lazily if busy).
"""
import os
import subprocess

from .base import check, Failure, tail


def mount_tmpfs(ctx, path, size):
    """A tmpfs of size on path (made), unmounted by the case's cleanup."""
    os.makedirs(path, exist_ok=True)
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Failure(f"cannot mount a tmpfs on {path} (this case needs root): {e}")
    check(p.returncode == 0, f"cannot mount a tmpfs on {path} (this case needs root): "
          f"{tail(p.stdout.decode(errors='replace'))}")
    ctx.mounts.append(path)


def remount_tmpfs(path, size):
    p = subprocess.run(["mount", "-o", f"remount,size={size}", path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    check(p.returncode == 0, f"cannot remount {path} with size={size}: "
          f"{tail(p.stdout.decode(errors='replace'))}")


def unmount(path):
    """Unmount path (lazily if it is busy); the problems, if it stays mounted."""
    for args in (["umount", path], ["umount", "-l", path]):
        if not os.path.ismount(path):
            return []
        try:
            subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
    return [f"{path} is still mounted"] if os.path.ismount(path) else []
