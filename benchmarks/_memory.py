"""Peak memory of the current process, for benchmarks that measure each side in its own child process."""

from __future__ import annotations

import resource


def own_peak_mb() -> float:
    """This process's own peak RSS in MB: VmHWM on Linux, ru_maxrss elsewhere.

    Not ru_maxrss on Linux: the kernel carries the parent's peak into a child across fork / vfork + exec,
    so a child's ru_maxrss is at least what the parent held when it started it (measured: a child whose
    own peak was 13 MB reported 313 MB under a 300 MB parent).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS
