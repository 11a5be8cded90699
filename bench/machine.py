"""What every benchmark prints beside its figures: the CPU and how busy the machine was."""

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """Return the CPU model name where the OS tells it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """Return the 1-minute load average (other work on the machine skews timings), where the OS tells it."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"
