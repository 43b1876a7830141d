"""The app supervisor (decision 0900, 0901): runs each app instance under bubblewrap beside
its gateway, watches it and restarts it when it crashes.

``await sup.start(InstanceSpec(...))`` starts the instance's gateway on a socket of its own,
then the sandboxed process (``python -m andon.sdk ENTRY`` behind a small boot that reports
network access and writes outside the data directory, see ``BOOT``). A watchdog reads
``/proc`` every ``poll_s`` seconds and stops the instance, with the reason in words, when it
uses more resident memory, CPU time, processes or data-directory space than its limits, or
floods findings; a crash is restarted after an exponentially growing pause, and after
``crash_loop_after`` crashes in a row the instance is left in ``crash_loop``.
``status()`` and ``logs()`` are what a tenant admin sees.

Without a working bubblewrap ``start`` raises ``SandboxUnavailable`` saying why, unless the
supervisor was made with ``allow_unsandboxed=True`` (the operator's setting; the caller
audits it).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from andon.apps.manifest import Limits
from andon.apps.sandbox import (
    DATA_DIR,
    Cgroup,
    ResourceLimits,
    SandboxCheck,
    SandboxSpec,
    build_argv,
    check_sandbox,
)

__all__ = [
    "BOOT",
    "MARKER",
    "AppSupervisor",
    "Gateway",
    "InstanceSpec",
    "InstanceState",
    "InstanceStatus",
    "LogLine",
    "SandboxUnavailable",
    "resource_limits",
]

MARKER = "andon-sandbox:"
"""Lines the boot writes to stderr when the app tries what the sandbox forbids."""

BOOT = f"""
import os, socket, sys
_W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_OK = tuple(p.rstrip('/') + '/' for p in os.environ.get('ANDON_WRITABLE', '').split(':') if p)
def _say(what):
    try:
        os.write(2, ('\\n{MARKER} ' + what + '\\n').encode('utf-8', 'replace'))
    except OSError:
        pass
def _hook(event, args):
    if event in ('socket.connect', 'socket.sendto', 'socket.sendmsg', 'socket.bind'):
        sock = args[0]
        if getattr(sock, 'family', None) != socket.AF_UNIX:
            _say('network access attempted: ' + event.split('.')[1] + ' ' + repr(args[1])[:200])
            raise PermissionError('andon sandbox: no network')
    elif event == 'socket.getaddrinfo':
        _say('network access attempted: resolve ' + repr(args[0])[:200])
        raise PermissionError('andon sandbox: no network')
    elif event == 'open':
        path, mode, flags = args
        write = (flags & _W) if isinstance(flags, int) and flags >= 0 else bool(
            mode and any(c in str(mode) for c in 'wax+'))
        if write and isinstance(path, (str, bytes)):
            p = os.path.abspath(os.fsdecode(path))
            if not (p + '/').startswith(_OK) and not p.startswith('/dev/'):
                _say('write outside its directory attempted: ' + p[:300])
                raise PermissionError('andon sandbox: read-only: ' + p)
sys.addaudithook(_hook)
import runpy
sys.argv = ['andon.sdk', sys.argv[1]]
runpy.run_module('andon.sdk', run_name='__main__', alter_sys=True)
"""
"""Run as ``python -c BOOT ENTRY``: an audit hook turns network use and writes outside the
writable directories into a stderr line the supervisor reads (the namespaces refuse them
anyway; the hook makes the reason visible), then ``python -m andon.sdk ENTRY``."""

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICK = os.sysconf("SC_CLK_TCK")


def resource_limits(limits: Limits, **more: int) -> ResourceLimits:
    """The sandbox's limits from a manifest's ``limits`` (``more``: the ones a manifest
    does not set, such as ``data_mb``)."""
    return ResourceLimits(
        cpu_s=float(limits.cpu_s),
        memory_mb=limits.memory_mb,
        processes=limits.processes,
        open_files=limits.files,
        **more,
    )


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot run here; the message says why."""


class InstanceState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    CRASH_LOOP = "crash_loop"
    FINISHED = "finished"
    STOPPED = "stopped"


class Gateway(Protocol):
    """What the supervisor needs of an instance's gateway (``andon.apps.gateway``)."""

    async def serve(self, socket_path: Path) -> Any: ...


@dataclass(frozen=True)
class InstanceSpec:
    """One installed app instance. ``command`` overrides the SDK entry (paths inside the
    sandbox); ``gateway`` serves the instance's socket (none: the supervisor makes a bare
    socket nobody answers, for commands that do not speak the protocol)."""

    instance_id: str
    app_id: str
    version: str
    app_dir: Path
    data_dir: Path
    entry: str = ""
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    gateway: Gateway | None = None
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    findings_refused: Callable[[], int] | None = None
    """Count of findings the gateway refused (rate limit); the watchdog stops a flood.
    Default: the gateway's ``stats()["rate_limited"]`` when it has one."""

    def __post_init__(self) -> None:
        if not self.entry and not self.command:
            raise ValueError(f"instance {self.instance_id}: neither entry nor command given")


@dataclass(frozen=True)
class LogLine:
    at: float
    """Wall time (seconds since the epoch)."""
    stream: str
    """``stdout``, ``stderr``, ``sdk`` (the app's ``log`` calls) or ``supervisor``."""
    level: str
    text: str


@dataclass(frozen=True)
class InstanceStatus:
    instance_id: str
    state: InstanceState
    restarts: int
    last_exit_reason: str | None
    cpu_s: float
    """CPU time of the current (or last) run, all its processes."""
    rss_mb: float
    processes: int
    sandboxed: bool
    pid: int | None
    crashes_in_row: int
    process_cap: str
    """How processes are capped: ``cgroup v1 pids``, ``cgroup v2 pids`` or ``watchdog``."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "state": str(self.state),
            "restarts": self.restarts,
            "last_exit_reason": self.last_exit_reason,
            "cpu_s": round(self.cpu_s, 3),
            "rss_mb": round(self.rss_mb, 1),
            "processes": self.processes,
            "sandboxed": self.sandboxed,
            "pid": self.pid,
            "crashes_in_row": self.crashes_in_row,
            "process_cap": self.process_cap,
        }


@dataclass
class _Usage:
    cpu_s: float = 0.0
    rss_mb: float = 0.0
    processes: int = 0


class _Instance:
    def __init__(self, spec: InstanceSpec, socket_path: Path, log_lines: int) -> None:
        self.spec = spec
        self.socket_path = socket_path
        self.state = InstanceState.STARTING
        self.restarts = 0
        self.crashes_in_row = 0
        self.last_exit_reason: str | None = None
        self.logs: deque[LogLine] = deque(maxlen=log_lines)
        self.logs_dropped = 0
        self.usage = _Usage()
        self.proc: asyncio.subprocess.Process | None = None
        self.cgroup: Cgroup | None = None
        self.process_cap = "watchdog"
        self.kill_reason: str | None = None
        self.markers: list[str] = []
        self.last_stderr: deque[str] = deque(maxlen=20)
        self.task: asyncio.Task[None] | None = None
        self.gateway_task: asyncio.Task[Any] | None = None
        self.gateway_server: Any = None
        self.bare_socket: Any = None
        self.stopping = False
        self.stop_requested = asyncio.Event()
        self.changed = asyncio.Event()

    def log(self, stream: str, level: str, text: str) -> None:
        if len(self.logs) == self.logs.maxlen:
            self.logs_dropped += 1
        self.logs.append(LogLine(time.time(), stream, level, text))


class AppSupervisor:
    """Runs app instances; one per ``instance_id``."""

    def __init__(
        self,
        *,
        run_dir: Path | None = None,
        allow_unsandboxed: bool = False,
        check: Callable[[], SandboxCheck] = check_sandbox,
        poll_s: float = 0.1,
        backoff_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        crash_loop_after: int = 5,
        stable_s: float = 60.0,
        flood_refused: int = 100,
        log_lines: int = 1000,
        python: str | None = None,
        on_event: Callable[[str, str], Awaitable[None] | None] | None = None,
        cgroups: bool = True,
    ) -> None:
        self._run_dir = run_dir
        self._own_run_dir: Path | None = None
        self.allow_unsandboxed = allow_unsandboxed
        self._check = check
        self._checked: SandboxCheck | None = None
        self.poll_s = poll_s
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self.crash_loop_after = crash_loop_after
        self.stable_s = stable_s
        self.flood_refused = flood_refused
        self.log_lines = log_lines
        self.python = python or sys.executable
        self.on_event = on_event
        self.cgroups = cgroups
        """False: never a pids cgroup, the watchdog counts processes (tests of that path)."""
        self._instances: dict[str, _Instance] = {}

    # --- public -----------------------------------------------------------------------------

    def sandbox_check(self) -> SandboxCheck:
        if self._checked is None:
            self._checked = self._check()
        return self._checked

    @property
    def sandboxed(self) -> bool:
        return self.sandbox_check().ok

    async def start(self, spec: InstanceSpec) -> InstanceStatus:
        """Start the instance's gateway and process. ``SandboxUnavailable`` when bubblewrap
        cannot run and unsandboxed running is not allowed; ``ValueError`` when the id runs."""
        check = await asyncio.to_thread(self.sandbox_check)
        if not check.ok and not self.allow_unsandboxed:
            raise SandboxUnavailable(
                f"app {spec.app_id} (instance {spec.instance_id}) not started: {check.reason}; "
                "apps run only sandboxed unless the operator sets apps.allow_unsandboxed"
            )
        old = self._instances.get(spec.instance_id)
        if old is not None and old.state not in (InstanceState.STOPPED, InstanceState.FINISHED):
            raise ValueError(f"instance {spec.instance_id} is already {old.state}")
        if not spec.app_dir.is_dir():
            raise ValueError(f"instance {spec.instance_id}: app directory {spec.app_dir} not found")
        spec.data_dir.mkdir(parents=True, exist_ok=True)
        inst = _Instance(spec, self._socket_path(spec.instance_id), self.log_lines)
        self._instances[spec.instance_id] = inst
        if not check.ok:
            inst.log(
                "supervisor", "warning", f"running UNSANDBOXED (operator setting): {check.reason}"
            )
        await self._start_gateway(inst)
        inst.task = asyncio.create_task(self._run(inst), name=f"app-{spec.instance_id}")
        return self.status(spec.instance_id)

    async def stop(self, instance_id: str, timeout: float = 5.0) -> InstanceStatus:
        """Stop the process (SIGTERM, then SIGKILL after ``timeout``) and the gateway."""
        inst = self._get(instance_id)
        inst.stopping = True
        inst.stop_requested.set()
        inst.changed.set()
        await self._terminate(inst, timeout)
        if inst.task is not None and not inst.task.done():
            # The run task still drains the pipes, kills the cgroup and reaps: let it finish
            # (its reader wait is bounded at 5 s); cancel only a task that does not.
            try:
                await asyncio.wait_for(asyncio.shield(inst.task), timeout + 6.0)
            except TimeoutError:
                inst.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await inst.task
        elif inst.task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await inst.task
        await self._stop_gateway(inst)
        if inst.state is not InstanceState.FINISHED:
            inst.state = InstanceState.STOPPED
        inst.changed.set()
        return self.status(instance_id)

    async def close(self) -> None:
        """Stop every instance."""
        for iid in list(self._instances):
            await self.stop(iid)
        if self._own_run_dir is not None:
            shutil.rmtree(self._own_run_dir, ignore_errors=True)
            self._own_run_dir = None

    def status(self, instance_id: str) -> InstanceStatus:
        inst = self._get(instance_id)
        proc = inst.proc
        return InstanceStatus(
            instance_id=instance_id,
            state=inst.state,
            restarts=inst.restarts,
            last_exit_reason=inst.last_exit_reason,
            cpu_s=inst.usage.cpu_s,
            rss_mb=inst.usage.rss_mb,
            processes=inst.usage.processes,
            sandboxed=self.sandbox_check().ok,
            pid=proc.pid if proc is not None and proc.returncode is None else None,
            crashes_in_row=inst.crashes_in_row,
            process_cap=inst.process_cap,
        )

    def logs(self, instance_id: str, limit: int | None = None) -> list[LogLine]:
        """The newest lines of the app's stdout and stderr, the supervisor's notes and the
        app's SDK ``log`` calls (those the gateway kept), oldest first."""
        inst = self._get(instance_id)
        lines = list(inst.logs)
        gw_logs = getattr(inst.spec.gateway, "logs", None)
        if callable(gw_logs):
            for g in gw_logs():
                at = getattr(g, "at_us", 0) / 1e6
                lines.append(LogLine(at, "sdk", str(g.level), str(g.message)))
            lines.sort(key=lambda line: line.at)
        return lines if limit is None else lines[-limit:]

    def log(self, instance_id: str, level: str, message: str) -> None:
        """Record an app's SDK ``log`` call (the gateway calls this)."""
        self._get(instance_id).log("sdk", level, message[:2000])

    def kill(self, instance_id: str, reason: str) -> bool:
        """Kill the running process as a crash with ``reason`` (it is restarted like any
        crash): the test harness's restart probe, an operator's "restart". False when no
        process runs."""
        inst = self._get(instance_id)
        if inst.proc is None or inst.proc.returncode is not None:
            return False
        if inst.kill_reason is None:
            inst.kill_reason = reason
        self._kill(inst)
        return True

    def socket_path(self, instance_id: str) -> Path:
        """The instance's gateway socket on this side of the sandbox."""
        return self._get(instance_id).socket_path

    def instances(self) -> list[str]:
        return list(self._instances)

    async def wait_for(
        self, instance_id: str, pred: Callable[[InstanceStatus], bool], timeout: float
    ) -> InstanceStatus:
        """Wait until ``pred(status)`` holds; ``TimeoutError`` naming the last status."""
        inst = self._get(instance_id)
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(instance_id)
            if pred(st):
                return st
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"instance {instance_id}: condition not met; {st.as_dict()}")
            inst.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(inst.changed.wait(), min(left, 0.5))

    # --- internals --------------------------------------------------------------------------

    def _get(self, instance_id: str) -> _Instance:
        try:
            return self._instances[instance_id]
        except KeyError:
            raise KeyError(f"no app instance {instance_id!r}") from None

    def _socket_path(self, instance_id: str) -> Path:
        if self._run_dir is None:
            self._own_run_dir = Path(tempfile.mkdtemp(prefix="andon-apps-"))
            self._run_dir = self._own_run_dir
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in instance_id)[:40]
        path = self._run_dir / f"{safe}.sock"
        if len(os.fsencode(path)) > 100:
            raise ValueError(
                f"socket path {path} too long for a Unix socket; use a shorter run_dir"
            )
        return path

    async def _start_gateway(self, inst: _Instance) -> None:
        path = inst.socket_path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        gw = inst.spec.gateway
        if gw is None:
            inst.bare_socket = await asyncio.start_unix_server(_refuse, path=str(path))
            return
        inst.gateway_task = asyncio.create_task(
            gw.serve(path), name=f"gateway-{inst.spec.instance_id}"
        )
        deadline = time.monotonic() + 10.0
        while not path.exists():
            if inst.gateway_task.done():
                exc = inst.gateway_task.exception()
                raise RuntimeError(
                    f"gateway of {inst.spec.instance_id} ended before serving: {exc!r}"
                )
            if time.monotonic() > deadline:
                inst.gateway_task.cancel()
                raise RuntimeError(
                    f"gateway of {inst.spec.instance_id} made no socket at {path} in 10 s"
                )
            await asyncio.sleep(0.01)
        if inst.gateway_task.done() and inst.gateway_task.exception() is None:
            inst.gateway_server = inst.gateway_task.result()

    async def _stop_gateway(self, inst: _Instance) -> None:
        for server in (inst.bare_socket, inst.gateway_server):
            if server is not None and hasattr(server, "close"):
                server.close()
                if hasattr(server, "wait_closed"):
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(server.wait_closed(), 5.0)
        gw = inst.spec.gateway
        if gw is not None and hasattr(gw, "close"):
            res = gw.close()
            if asyncio.iscoroutine(res):
                await res
        if inst.gateway_task is not None and not inst.gateway_task.done():
            inst.gateway_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await inst.gateway_task
        with contextlib.suppress(FileNotFoundError):
            inst.socket_path.unlink()

    def _argv(self, inst: _Instance) -> tuple[list[str], dict[str, str] | None]:
        spec = inst.spec
        sandboxed = self.sandbox_check().ok
        env = {"ANDON_APP_ID": spec.app_id, "ANDON_APP_VERSION": spec.version, **spec.env}
        if sandboxed:
            env["ANDON_WRITABLE"] = f"{DATA_DIR}:/tmp"
            command = spec.command or (self.python, "-c", BOOT, spec.entry)
            sb = SandboxSpec(
                spec.instance_id,
                spec.app_dir,
                spec.data_dir,
                inst.socket_path,
                tuple(command),
                spec.limits,
                env,
            )
            return build_argv(sb, cgroup=inst.cgroup), None
        # Unsandboxed (operator's setting): real paths, rlimits only, a cleared environment.
        sdk_parent = Path(__file__).resolve().parents[2]
        env.update(
            ANDON_APP_SOCKET=str(inst.socket_path),
            ANDON_APP_DIR=str(spec.app_dir),
            ANDON_DATA_DIR=str(spec.data_dir),
            ANDON_WRITABLE=f"{spec.data_dir.resolve()}:{tempfile.gettempdir()}",
            HOME=str(spec.data_dir),
            PATH="/usr/local/bin:/usr/bin:/bin",
            PYTHONPATH=f"{spec.app_dir}:{sdk_parent}",
            PYTHONUNBUFFERED="1",
            PYTHONHASHSEED="0",
            OPENBLAS_NUM_THREADS="1",
            ARROW_DEFAULT_MEMORY_POOL="system",
        )
        command = spec.command or (self.python, "-c", BOOT, spec.entry)
        lim = spec.limits
        pre = (
            [
                "prlimit",
                f"--cpu={lim.cpu_rlimit}:{lim.cpu_rlimit + 1}",
                f"--as={lim.address_space_bytes}",
                f"--nofile={lim.open_files}",
                f"--fsize={lim.file_mb * 2**20}",
                "--",
            ]
            if shutil.which("prlimit")
            else []
        )
        return [*pre, *command], env

    async def _run(self, inst: _Instance) -> None:
        spec = inst.spec
        while not inst.stopping:
            inst.kill_reason = None
            inst.markers = []
            inst.last_stderr.clear()
            inst.usage = _Usage()
            if self.sandbox_check().ok and self.cgroups:
                inst.cgroup = await asyncio.to_thread(
                    Cgroup.create,
                    f"{spec.instance_id}-{os.getpid()}-{inst.restarts}",
                    spec.limits.processes + 2,  # + bubblewrap and its pid-1 init
                )
                inst.process_cap = inst.cgroup.kind if inst.cgroup is not None else "watchdog"
            if inst.process_cap == "watchdog" and inst.restarts == 0:
                inst.log(
                    "supervisor",
                    "warning",
                    "no pids cgroup: processes are capped by the watchdog only (decision 0901)",
                )
            argv, env = self._argv(inst)
            started = time.monotonic()
            try:
                inst.proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=env,
                    start_new_session=True,
                    limit=2**16,
                )
            except OSError as e:
                inst.last_exit_reason = f"could not start: {e}"
                inst.state = InstanceState.CRASH_LOOP
                inst.changed.set()
                return
            inst.state = InstanceState.RUNNING
            inst.log(
                "supervisor", "info", f"started (pid {inst.proc.pid}, run {inst.restarts + 1})"
            )
            await self._emit(spec.instance_id, "started")
            inst.changed.set()
            proc = inst.proc
            readers = [
                asyncio.create_task(self._read(inst, proc.stdout, "stdout")),
                asyncio.create_task(self._read(inst, proc.stderr, "stderr")),
            ]
            watch = asyncio.create_task(self._watch(inst))
            try:
                rc = await proc.wait()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*readers), 5.0)
            finally:
                # On every way out (a cancelled run included): no task left behind, the
                # sandbox's processes gone, the pipes and the transport closed.
                await self._end_run(inst, proc, [watch, *readers])
            ran = time.monotonic() - started
            reason = self._exit_reason(inst, rc)
            inst.last_exit_reason = reason
            inst.log("supervisor", "info" if rc == 0 else "error", f"exited: {reason}")
            await self._emit(spec.instance_id, reason)
            if inst.stopping:
                inst.state = InstanceState.STOPPED
                inst.changed.set()
                return
            if rc == 0 and inst.kill_reason is None:
                inst.state = InstanceState.FINISHED
                inst.changed.set()
                return
            inst.crashes_in_row = 1 if ran >= self.stable_s else inst.crashes_in_row + 1
            if inst.crashes_in_row >= self.crash_loop_after:
                inst.state = InstanceState.CRASH_LOOP
                inst.log(
                    "supervisor",
                    "error",
                    f"crash loop: {inst.crashes_in_row} crashes in a row; not restarted",
                )
                inst.changed.set()
                return
            pause = min(self.backoff_cap_s, self.backoff_s * 2 ** (inst.crashes_in_row - 1))
            inst.state = InstanceState.BACKOFF
            inst.changed.set()
            inst.log("supervisor", "info", f"restart in {pause:.2f} s")
            with contextlib.suppress(TimeoutError):  # a stop ends the pause
                await asyncio.wait_for(inst.stop_requested.wait(), pause)
            if inst.stopping:
                return
            inst.restarts += 1

    async def _end_run(
        self, inst: _Instance, proc: asyncio.subprocess.Process, tasks: list[asyncio.Task[None]]
    ) -> None:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if proc.returncode is None:  # cancelled before it exited
            self._kill(inst)
        if inst.cgroup is not None:
            inst.cgroup.kill()
            await asyncio.to_thread(inst.cgroup.remove)
            inst.cgroup = None
        if proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5.0)
        transport = getattr(proc, "_transport", None)  # asyncio has no public close
        if transport is not None:
            transport.close()

    async def _emit(self, instance_id: str, what: str) -> None:
        if self.on_event is not None:
            res = self.on_event(instance_id, what)
            if asyncio.iscoroutine(res):
                await res

    async def _read(self, inst: _Instance, stream: asyncio.StreamReader | None, name: str) -> None:
        if stream is None:
            return
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line over the limit: take what is there
                raw = await stream.read(2**16)
            if not raw:
                return
            text = raw.decode("utf-8", "replace").rstrip("\n")[:2000]
            if name == "stderr" and text.startswith(MARKER):
                what = text[len(MARKER) :].strip()
                inst.markers.append(what)
                if inst.kill_reason is None:
                    inst.kill_reason = what
                    self._kill(inst)
            if name == "stderr" and text.strip():
                inst.last_stderr.append(text)
            inst.log(name, "error" if name == "stderr" else "info", text)

    async def _watch(self, inst: _Instance) -> None:
        """Every ``poll_s``: the limits, the first one crossed kills the sandbox. The /proc
        reads run on the event loop (no thread: a fork bomb without a pids cgroup can leave
        none to start), and a failure of the watch itself stops the instance."""
        proc = inst.proc
        assert proc is not None
        refused0 = _refused(inst.spec)
        last_du = time.monotonic()
        while proc.returncode is None:
            try:
                reason = self._over_limit(inst, proc.pid, refused0)
                if reason is None and time.monotonic() - last_du >= 1.0:
                    last_du = time.monotonic()
                    size = _dir_bytes(inst.spec.data_dir)
                    if size > inst.spec.limits.data_mb * 2**20:
                        reason = (
                            f"data directory over {inst.spec.limits.data_mb} MB "
                            f"({size / 2**20:.0f} MB)"
                        )
            except Exception as e:  # the watch failing must not leave an app unwatched
                reason = f"stopped: the watchdog failed ({e!r:.200})"
            if reason is not None:
                if inst.kill_reason is None:
                    inst.kill_reason = reason
                self._kill(inst)
                return
            inst.changed.set()
            await asyncio.sleep(self.poll_s)

    def _over_limit(self, inst: _Instance, pid: int, refused0: int) -> str | None:
        lim = inst.spec.limits
        if inst.cgroup is not None:
            if inst.cgroup.pids_max_hits() > 0:
                return f"exceeded process limit {lim.processes} (forks refused)"
            pids = inst.cgroup.pids() or _tree(pid)
        else:
            pids = _tree(pid)
            if len(pids) > lim.processes + 2:  # + bubblewrap and its pid-1 init
                self._kill(inst)  # first, then count what it was
                return f"exceeded process limit {lim.processes} ({len(pids) - 2} processes)"
        usage = _usage(pids)
        inst.usage = usage
        if usage.rss_mb > lim.memory_mb:
            return (
                f"killed: memory limit {lim.memory_mb} MB exceeded ({usage.rss_mb:.0f} MB resident)"
            )
        if usage.cpu_s > lim.cpu_s:
            return f"exceeded CPU time {lim.cpu_s:g} s"
        refused = _refused(inst.spec) - refused0
        if refused >= self.flood_refused:
            return f"flooding findings: {refused} refused over the rate limit"
        return None

    def _kill(self, inst: _Instance) -> None:
        # bubblewrap first: its death takes the sandbox's pid namespace, and every process
        # in it, down with it (--die-with-parent on the namespace's init). os.kill, not
        # proc.kill(): Popen.send_signal polls first and would reap a process that has just
        # exited, so asyncio's child watcher would report it as exit status 255.
        proc = inst.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        if inst.cgroup is not None:
            inst.cgroup.kill()

    async def _terminate(self, inst: _Instance, timeout: float) -> None:
        proc = inst.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)  # not proc.terminate(): see _kill
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            self._kill(inst)
            await proc.wait()

    def _exit_reason(self, inst: _Instance, rc: int) -> str:
        lim = inst.spec.limits
        if inst.stopping and inst.kill_reason is None:
            return "stopped"
        if inst.kill_reason is not None:
            return inst.kill_reason
        sig = rc - 128 if rc > 128 else (-rc if rc < 0 else 0)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and inst.usage.cpu_s >= lim.cpu_s - 0.5):
            return f"exceeded CPU time {lim.cpu_s:g} s"
        tail = "\n".join(inst.last_stderr)
        if "MemoryError" in tail:
            return f"killed: memory limit {lim.memory_mb} MB exceeded (allocation refused)"
        if "File too large" in tail or sig == signal.SIGXFSZ:
            return f"file size limit {lim.file_mb} MB exceeded"
        if "Too many open files" in tail:
            return f"open files limit {lim.open_files} exceeded"
        if rc == 0:
            return "exited normally"
        last = inst.last_stderr[-1] if inst.last_stderr else "no output"
        if sig:
            return f"killed by signal {signal.Signals(sig).name}: {last}"
        return f"crashed (exit status {rc}): {last}"


def _refused(spec: InstanceSpec) -> int:
    if spec.findings_refused is not None:
        return spec.findings_refused()
    stats = getattr(spec.gateway, "stats", None)
    if callable(stats):
        got = stats()
        if isinstance(got, dict):
            return int(got.get("rate_limited", 0))
    return 0


async def _refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _tree(root: int) -> list[int]:
    """``root`` and all its descendants, from ``/proc``."""
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _resident_bytes(pid: int) -> int:
    """The process's proportional share of resident memory (PSS: pages shared by forked
    children count once over all of them), or its RSS where smaps_rollup is missing."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _usage(pids: list[int]) -> _Usage:
    cpu = 0.0
    rss = 0
    n = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        # fields[0] is state (field 3); utime, stime, cutime, cstime are fields 14-17
        cpu += sum(int(x) for x in fields[11:15]) / _TICK
        rss += _resident_bytes(pid)
        n += 1
    return _Usage(cpu, rss / 2**20, n)


def _dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total
