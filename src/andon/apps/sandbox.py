"""The app sandbox: one app instance's process under bubblewrap (decision 0901).

``build_argv`` turns a :class:`SandboxSpec` into the command line that runs the app's
command with a read-only system (``/usr``, ``/lib*``, a few files of ``/etc``, the Python
and its site-packages, the SDK, the app's directory), a private ``/tmp`` (tmpfs with a size
cap), one writable data directory, no network (``--unshare-all``: a network namespace with
only a loopback), no other user namespace, a new session, a cleared environment, and the
instance's Unix socket bind-mounted as its only way out. ``prlimit`` sets the rlimits
(CPU time, address space, open files, file size) and a pids cgroup, when one can be made,
caps the processes (not RLIMIT_NPROC: decision 0901).

``check_sandbox()`` says whether bubblewrap can run here, and why not.

>>> limits = ResourceLimits(cpu_s=5, memory_mb=128)
>>> limits.address_space_bytes // 2**20
640
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ADDRESS_SPACE_HEADROOM_MB",
    "APP_DIR",
    "DATA_DIR",
    "SDK_DIR",
    "SOCKET_PATH",
    "Cgroup",
    "ResourceLimits",
    "SandboxCheck",
    "SandboxSpec",
    "build_argv",
    "check_sandbox",
    "sandbox_env",
]

APP_DIR = "/app"
"""Where the app's directory is mounted, read-only."""
DATA_DIR = "/data"
"""The instance's one writable directory."""
SDK_DIR = "/opt/andon-sdk"
"""Holds ``andon/sdk`` and ``andon/pdm`` (read-only): the only andon code an app can import
(``andon.pdm``, the predictive-maintenance library, imports nothing else of andon: 0903)."""
SOCKET_PATH = "/run/andon/app.sock"
"""The instance's socket inside the sandbox (``ANDON_APP_SOCKET``)."""

ADDRESS_SPACE_HEADROOM_MB = 512
"""Added to the memory limit for RLIMIT_AS: Python with pyarrow and the system allocator
maps about 330 MB of address space with 80 MB resident (decision 0901, measured), so an
address-space cap equal to the memory limit would refuse well-behaved apps. The resident
memory itself is watched by the supervisor."""

_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
)
_SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin")

_ENV_PASSED = ("LANG", "TZ")
"""The only variables of the caller's environment the app sees (when set)."""


@dataclass(frozen=True)
class ResourceLimits:
    """What one instance may use. CPU is per run (a restart starts again)."""

    cpu_s: float = 60.0
    memory_mb: int = 256
    processes: int = 16
    open_files: int = 64
    file_mb: int = 16
    data_mb: int = 64
    tmp_mb: int = 16

    def __post_init__(self) -> None:
        if isinstance(self.cpu_s, bool) or not isinstance(self.cpu_s, int | float):
            raise ValueError(f"ResourceLimits.cpu_s: must be a number, got {self.cpu_s!r}")
        if not 0 < self.cpu_s < 10**6:
            raise ValueError(f"ResourceLimits.cpu_s: must be positive, got {self.cpu_s!r}")
        for name in ("memory_mb", "processes", "open_files", "file_mb", "data_mb", "tmp_mb"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"ResourceLimits.{name}: must be a positive integer, got {value!r}"
                )

    @property
    def cpu_rlimit(self) -> int:
        """RLIMIT_CPU's soft limit: whole seconds, at least the limit."""
        return max(1, math.ceil(self.cpu_s))

    @property
    def address_space_bytes(self) -> int:
        return (self.memory_mb + ADDRESS_SPACE_HEADROOM_MB) * 2**20


@dataclass(frozen=True)
class SandboxSpec:
    """One sandboxed process. ``command`` runs inside, so its paths are the sandbox's
    (``APP_DIR``, ``DATA_DIR``...); ``env`` adds variables to the few the sandbox sets."""

    instance_id: str
    app_dir: Path
    data_dir: Path
    socket_path: Path
    command: tuple[str, ...]
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    env: Mapping[str, str] = field(default_factory=dict)
    sdk_dir: Path | None = None
    """The directory of the ``andon.sdk`` package to mount (default: this install's)."""

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError(f"sandbox {self.instance_id}: empty command")
        for key in self.env:
            if not key or "=" in key or "\0" in key:
                raise ValueError(f"sandbox {self.instance_id}: bad environment name {key!r}")


def _sdk_dir() -> Path:
    # The SDK sits beside this package; found by path so that this module need not import it.
    return Path(__file__).resolve().parents[1] / "sdk"


def _python_dirs() -> list[Path]:
    """The interpreter and the libraries an app may import, read-only."""
    dirs: list[Path] = []
    for p in (sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix):
        dirs.append(Path(p).resolve())
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.append(Path(path).resolve())
    dirs.append(Path(sys.executable).resolve().parent)
    return dirs


def _covered(path: Path, by: Sequence[Path]) -> bool:
    return any(path == b or b in path.parents for b in by)


def _ro_binds() -> list[Path]:
    """System and Python directories, de-duplicated, parents before children."""
    out: list[Path] = []
    for raw in (*_SYSTEM_DIRS, *map(str, _python_dirs())):
        p = Path(raw)
        if p.is_symlink():
            continue  # /lib -> usr/lib on merged-/usr systems: made as a symlink below
        if not p.exists() or _covered(p, out):
            continue
        out = [o for o in out if p not in o.parents]
        out.append(p)
    return sorted(out, key=lambda p: len(p.parts))


def sandbox_env(spec: SandboxSpec) -> dict[str, str]:
    """The app's whole environment: the socket, its directories and single-threaded
    numeric libraries (so the address-space cap holds), plus ``spec.env``."""
    env = {
        "ANDON_APP_SOCKET": SOCKET_PATH,
        "ANDON_APP_DIR": APP_DIR,
        "ANDON_DATA_DIR": DATA_DIR,
        "ANDON_INSTANCE_ID": spec.instance_id,
        "HOME": DATA_DIR,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": f"{SDK_DIR}:{APP_DIR}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONHASHSEED": "0",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "ARROW_DEFAULT_MEMORY_POOL": "system",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
    }
    for key in _ENV_PASSED:
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(spec.env)
    return env


def _prlimit_args(limits: ResourceLimits) -> list[str]:
    # Soft CPU limit sends SIGXCPU (the exit reason names it); one more second and SIGKILL.
    return [
        f"--cpu={limits.cpu_rlimit}:{limits.cpu_rlimit + 1}",
        f"--as={limits.address_space_bytes}",
        f"--nofile={limits.open_files}",
        f"--fsize={limits.file_mb * 2**20}",
        "--core=0",
    ]


def build_argv(
    spec: SandboxSpec,
    *,
    bwrap: str = "bwrap",
    prlimit: str = "prlimit",
    cgroup: Cgroup | None = None,
) -> list[str]:
    """The command line that runs ``spec.command`` sandboxed. With a ``cgroup`` the first
    process joins it (through ``/bin/sh``) before it becomes bubblewrap, so every process of
    the instance is counted from the start."""
    args: list[str] = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--hostname",
        "andon-app",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--clearenv",
    ]
    for p in _ro_binds():
        args += ["--ro-bind", str(p), str(p)]
    for name in ("lib", "lib64", "bin", "sbin"):
        link = Path("/") / name
        if link.is_symlink():
            args += ["--symlink", os.readlink(link), str(link)]
    for f in _ETC_FILES:
        if Path(f).exists():
            args += ["--ro-bind", f, f]
    sdk = (spec.sdk_dir or _sdk_dir()).resolve()
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(spec.limits.tmp_mb * 2**20),
        "--tmpfs",
        "/tmp",
        "--ro-bind",
        str(spec.app_dir.resolve()),
        APP_DIR,
        "--ro-bind",
        str(sdk),
        f"{SDK_DIR}/andon/sdk",
        "--ro-bind",
        str(Path(__file__).resolve().parents[1] / "pdm"),
        f"{SDK_DIR}/andon/pdm",
        "--bind",
        str(spec.data_dir.resolve()),
        DATA_DIR,
        "--ro-bind",
        str(spec.socket_path),
        SOCKET_PATH,
        "--remount-ro",
        "/",
        "--chdir",
        DATA_DIR,
    ]
    for key, value in sorted(sandbox_env(spec).items()):
        args += ["--setenv", key, value]
    argv = [prlimit, *_prlimit_args(spec.limits), "--", *args, "--", *spec.command]
    if cgroup is None:
        return argv
    joins = " && ".join(f"echo $$ > {shlex.quote(str(f))}" for f in cgroup.procs_files)
    return ["/bin/sh", "-c", f'{joins} && exec "$@"', "andon-sandbox", *argv]


@dataclass(frozen=True)
class SandboxCheck:
    ok: bool
    reason: str
    bwrap: str | None = None
    cgroup: str | None = None
    """How processes are capped: ``"cgroup v1 pids"``, ``"cgroup v2 pids"`` or
    ``"watchdog"`` (the supervisor counts them and stops the instance)."""


def check_sandbox(bwrap: str = "bwrap") -> SandboxCheck:
    """Whether bubblewrap can run a process here, and why not: it runs ``/bin/true`` under
    the same namespaces the apps get."""
    exe = shutil.which(bwrap)
    if exe is None:
        return SandboxCheck(
            False, f"{bwrap!r} not found on PATH: install the Debian package bubblewrap"
        )
    if shutil.which("prlimit") is None:
        return SandboxCheck(False, "'prlimit' not found on PATH: install util-linux", exe)
    probe = [
        exe,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--",
        "/bin/true",
    ]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return SandboxCheck(False, f"bubblewrap could not be started: {e}", exe)
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = err[-1] if err else f"exit status {done.returncode}"
        return SandboxCheck(
            False,
            f"bubblewrap cannot create namespaces here ({why}); user namespaces may be "
            "disabled (sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces)",
            exe,
        )
    probe_cg = Cgroup.create(f"check-{uuid.uuid4().hex[:8]}", 4)
    kind = "watchdog" if probe_cg is None else probe_cg.kind
    if probe_cg is not None:
        probe_cg.remove()
    return SandboxCheck(True, "bubblewrap runs", exe, kind)


_CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class Cgroup:
    """A pids cgroup for one instance (v1 or v2), made under the cgroup this process is in.
    ``create`` returns None when none can be made (no permission, no controller); the
    supervisor then counts processes itself."""

    kind: str
    path: Path

    @property
    def procs_files(self) -> list[Path]:
        return [self.path / "cgroup.procs"]

    @classmethod
    def create(cls, name: str, max_pids: int, root: Path = _CGROUP_ROOT) -> Cgroup | None:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:80]
        for kind, parent in cls._parents(root):
            path = parent / "andon-apps" / safe
            try:
                path.mkdir(parents=True, exist_ok=True)
                (path / "pids.max").write_text(f"{max_pids}\n")
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            return cls(kind, path)
        return None

    @staticmethod
    def _parents(root: Path) -> list[tuple[str, Path]]:
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return []
        out: list[tuple[str, Path]] = []
        for line in lines:
            _, controllers, rel = line.split(":", 2)
            rel = rel.lstrip("/")
            if "pids" in controllers.split(",") and (root / "pids").is_dir():
                out.append(("cgroup v1 pids", root / "pids" / rel))
            elif controllers == "" and (root / "cgroup.controllers").exists():
                ctl = (root / "cgroup.controllers").read_text().split()
                if "pids" in ctl:
                    out.append(("cgroup v2 pids", root / rel))
        return out

    def pids(self) -> list[int]:
        try:
            text = (self.path / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(x) for x in text.split()]

    def pids_max_hits(self) -> int:
        """How often a fork was refused for the cap (``pids.events``: ``max N``)."""
        try:
            for line in (self.path / "pids.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "max":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def kill(self) -> None:
        """SIGKILL every process in the group (``cgroup.kill`` where there is one)."""
        killer = self.path / "cgroup.kill"
        if killer.exists():
            try:
                killer.write_text("1\n")
                return
            except OSError:
                pass
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)

    def remove(self, wait_s: float = 5.0) -> bool:
        """Kill what is left in the group, wait (up to ``wait_s``) until it is empty and
        remove it; False when it could not be removed (still busy)."""
        deadline = time.monotonic() + wait_s
        while self.pids() and time.monotonic() < deadline:
            self.kill()
            time.sleep(0.02)
        try:
            self.path.rmdir()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True
