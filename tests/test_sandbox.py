"""stages.sandbox: hostile completions are contained and scored as failures, the run goes on.

Each hostile program is a HumanEval completion (prompt + completion + tests), run in one batch
beside a correct one. Under bubblewrap every case must also leave the world unchanged: a
sentinel in a world-writable folder outside the sandbox survives, files the program tries to
create do not appear, a loopback server hears nothing. Without bwrap (plain processes) only
the resource limits hold, so those assertions are skipped, with the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from instmix.code.humaneval import program, read_problems
from instmix.code.sandbox import UID_BASE, Limits, Outcome, Sandbox, user_tasks
from instmix.core.params import StageError

TIMEOUT = 3.0
PROBLEM = read_problems()["HumanEval/0"]  # has_close_elements(numbers, threshold) -> bool
BWRAP = Sandbox(Limits(timeout=TIMEOUT), "auto").sandboxed
NO_BWRAP = "bubblewrap (bwrap) cannot run here: filesystem and network isolation is not available"


def live_sandbox_processes(uids: list[int]) -> int:
    """Live processes under these throwaway uids (root runs only): this batch's, not those of
    another test worker's evaluations running at the same time."""
    assert uids and all(uid >= UID_BASE for uid in uids)
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid in uids and "Z" not in Path(entry.path, "stat").read_text().split()[2]:
                    count += 1
            except OSError:
                continue
    return count


class Listener:
    """A loopback TCP server that records whatever connects to it."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.received: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.received.append(conn.recv(100) or b"<connected>")
                except OSError:
                    self.received.append(b"<connected>")

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.server.close()


@dataclass
class World:
    """What lies outside the sandbox: a world-writable folder with a sentinel, a listener, our pid."""

    outside: Path
    listener: Listener
    sentinel: Path = field(init=False)

    def __post_init__(self) -> None:
        self.sentinel = self.outside / "sentinel.txt"
        self.sentinel.write_text("keep me")
        os.chmod(self.sentinel, 0o666)


def hostile(world: World) -> dict[str, str]:
    """Completions of has_close_elements, each trying one harmful thing; none returns the right answer."""
    out, sentinel = world.outside, world.sentinel
    return {
        "write_outside": f"    open({str(out / 'written.txt')!r}, 'w').write('pwned')\n",
        "delete_outside": f"    import os, shutil\n    os.remove({str(sentinel)!r})\n    shutil.rmtree({str(out)!r})\n",
        "fork_bomb": "    import os\n    while True:\n        try:\n            os.fork()\n        except OSError:\n"
        "            pass\n",
        "allocate_8gb": "    block = bytearray(8 * 2**30)\n    return len(block) > 0\n",
        "loop_forever": "    while True:\n        pass\n",
        "open_socket": (
            "    import socket\n"
            f"    s = socket.create_connection(('127.0.0.1', {world.listener.port}), timeout=2)\n"
            "    s.sendall(b'leak')\n"
        ),
        "kill_parent": (
            "    import os, signal, time\n"
            f"    for pid in (os.getppid(), {os.getpid()}):\n"
            "        try:\n            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
            "    time.sleep(1)\n"
        ),
        "spawn_shell": (
            "    import subprocess\n"
            f"    subprocess.run(['sh', '-c', 'echo pwned > {out / 'shell.txt'}; rm -f {sentinel}'])\n"
        ),
    }


@dataclass
class Batch:
    world: World
    outcomes: dict[str, Outcome]
    seconds: float
    sandboxed: bool
    leftover_processes: int


def outside_folder() -> Path:
    # Not under /tmp: bwrap gives the program its own /tmp, which would hide the folder rather
    # than protect it. World-writable, so only the sandbox (not permissions) can stop a write.
    base = "/var/tmp" if os.access("/var/tmp", os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix="sandbox-test-outside-", dir=base))
    os.chmod(folder, 0o777)
    return folder


@pytest.fixture(scope="module", params=["bwrap", "none"])
def batch(request: pytest.FixtureRequest) -> Iterator[Batch]:
    """All hostile completions plus the canonical solution, run together in one parallel batch."""
    mode = request.param
    if mode == "bwrap" and not BWRAP:
        pytest.skip(NO_BWRAP)
    if mode == "none" and os.geteuid() != 0:
        pytest.skip("plain processes under the test's own uid could signal the test itself: run as root")
    world = World(outside_folder(), Listener())
    cases = {**hostile(world), "canonical": PROBLEM["canonical_solution"]}
    sandbox = Sandbox(Limits(timeout=TIMEOUT), mode, workers=2)
    start = time.perf_counter()
    results = sandbox.run_many([program(PROBLEM, c) for c in cases.values()], progress=False)
    seconds = time.perf_counter() - start
    time.sleep(0.3)  # let the listener see a late connection
    leftovers = live_sandbox_processes(sandbox.uids) if os.geteuid() == 0 else 0
    yield Batch(world, dict(zip(cases, results, strict=True)), seconds, sandbox.sandboxed, leftovers)
    world.listener.close()
    subprocess.run(["rm", "-rf", str(world.outside)], check=False)


HOSTILE = ["write_outside", "delete_outside", "fork_bomb", "allocate_8gb", "loop_forever", "open_socket",
           "kill_parent", "spawn_shell"]  # fmt: skip


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_completion_fails_and_the_run_goes_on(batch: Batch, case: str) -> None:
    outcome = batch.outcomes[case]
    assert not outcome.passed, outcome
    assert batch.outcomes["canonical"].passed, batch.outcomes["canonical"]  # same batch, after them all
    assert outcome.seconds < TIMEOUT + 5, f"{case} held its slot {outcome.seconds:.1f} s"
    if case in ("fork_bomb", "loop_forever"):
        assert outcome.result == "timed out"
    if case == "allocate_8gb":
        assert "MemoryError" in outcome.result


def test_the_batch_leaves_no_process_and_takes_about_its_timeouts(batch: Batch) -> None:
    assert batch.leftover_processes == 0
    assert batch.seconds < 3 * TIMEOUT + 10  # 2 workers, 3 programs that run out the clock


def test_nothing_outside_the_sandbox_changed(batch: Batch) -> None:
    if not batch.sandboxed:
        pytest.skip(NO_BWRAP + " (plain processes: only resource limits apply)")
    world = batch.world
    assert world.sentinel.read_text() == "keep me"
    assert sorted(p.name for p in world.outside.iterdir()) == ["sentinel.txt"]
    assert world.listener.received == []
    assert "Read-only file system" in batch.outcomes["write_outside"].result


def test_plain_processes_are_still_limited_and_say_so(batch: Batch) -> None:
    if batch.sandboxed:
        pytest.skip("this batch ran under bwrap")
    assert batch.outcomes["fork_bomb"].result == "timed out"
    assert "MemoryError" in batch.outcomes["allocate_8gb"].result
    # ... and the hostile programs really do harm when nothing stops them (so the bwrap checks bite)
    world = batch.world
    assert not world.sentinel.exists() and world.listener.received == [b"leak"]


# ---------------------------------------------------------------------------- the program's view


@pytest.mark.parametrize("mode", ["bwrap", "none"])
def test_program_runs_isolated_with_limits_in_its_own_folder(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if mode == "bwrap" and not BWRAP:
        pytest.skip(NO_BWRAP)
    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    check = f"""
import os, resource, sys
assert sys.flags.isolated and "SECRET_TOKEN" not in os.environ, dict(os.environ)
assert resource.getrlimit(resource.RLIMIT_AS)[0] == 512 * 2**20
assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] == 16 * 2**20
assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 64
assert resource.getrlimit(resource.RLIMIT_CPU)[0] == 3
open("scratch.txt", "w").write("mine")  # its own folder is writable
assert os.path.exists("program.py")
if {mode == "bwrap"}:
    assert os.getcwd() == "/tmp" and sorted(os.listdir("/tmp")) == ["program.py", "scratch.txt"]
    assert os.getpid() < 10  # its own PID namespace
    import socket
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=1)
        raise SystemExit("network reachable")
    except OSError:
        pass
if {os.geteuid() == 0}:
    assert os.getuid() >= {UID_BASE}, os.getuid()
"""
    outcome = Sandbox(Limits(timeout=2.0, memory_mb=512), mode).run(check)
    assert outcome.passed, outcome.result


def test_a_file_size_limit_stops_a_disk_filler() -> None:
    outcome = Sandbox(Limits(timeout=5.0, file_size_mb=1)).run("open('big', 'wb').write(b'x' * 2**21)\n")
    assert not outcome.passed and "File too large" in outcome.result, outcome


def test_failures_name_the_error_and_exit_codes() -> None:
    sandbox = Sandbox(Limits(timeout=2.0))
    results = sandbox.run_many(["raise ValueError('bad value')\n", "import sys; sys.exit(3)\n", "pass\n"])
    assert [r.result for r in results] == ["failed: ValueError: bad value", "failed: exit status 3", "passed"]


def test_without_bwrap_it_warns_loudly_and_says_unsandboxed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on the PATH
    sandbox = Sandbox(Limits(timeout=2.0), "auto")
    assert not sandbox.sandboxed and sandbox.run("pass\n").passed
    err = capsys.readouterr().err
    assert "WARNING: bubblewrap (bwrap) is not installed" in err and "sandboxed: false" in err
    with pytest.raises(StageError, match="bwrap is not installed"):
        Sandbox(Limits(), "bwrap")


def test_user_tasks_counts_this_process() -> None:
    assert user_tasks(os.getuid()) >= 1
    assert user_tasks(2**31 - 7) == 0
