"""Where and with what a result was computed: package versions, git commit, host, hardware."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

__all__ = ['package_versions', 'git_commit', 'provenance', 'hardware_summary']


_VERSIONED_PACKAGES = (
    "rmqm", "torch", "torchvision", "numpy", "scipy", "pandas", "pyarrow", "scikit-learn",
)


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape the numbers (cached per process)."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


@functools.lru_cache(maxsize=1)
def git_commit() -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout that holds this package, or ``(None, None)``."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return (commit or None), bool(status.strip())


def provenance(wall_time_s: float | None = None) -> dict[str, Any]:
    """Where and with what a result was computed: versions, git commit, host, time."""
    commit, dirty = git_commit()
    return {
        "versions": package_versions(),
        "git_commit": commit,
        "git_dirty": dirty,
        "host": platform.node(),
        "created": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        "wall_time_s": None if wall_time_s is None else float(wall_time_s),
    }


def hardware_summary() -> str:
    """One line: CPU model, core count, GPU (when torch sees one), OS."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except Exception:  # torch missing or broken CUDA: still describe the CPU
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores, {gpu}, {platform.system()} {platform.release()}"
