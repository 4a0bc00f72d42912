"""Many machines over one DVC remote, for real: a real S3 server (moto's standalone mode) on
127.0.0.1, the plan's jobs in separate clones (prepare, two workers, aggregation), a killed worker
resumed from a shared checkpoint directory, an outage mid-push, and the SkyPilot task files."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, set_params, stage_env
from tests.test_pipeline import clean_clone, commit, ran_stages

AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_MAX_ATTEMPTS": "1",
}  # a loopback server needs no retries: the outage fails in seconds, not minutes
GRID = {  # one setting (the base model's evaluations are the other worker's unit), a training long enough to kill
    "settings": ["A"],
    "mixtures": {},
    "eval.benchmarks": {k: f"assets/demo/benchmarks/{v}" for k, v in
                        {"arc_challenge": "arc/arc_challenge.jsonl", "winogrande": "winogrande/dev.jsonl"}.items()},
    "sft.epochs": 12.0,
    "sft.save_steps": 2,
}  # fmt: skip
# A run's own measurements, not findings: wall time, throughput and memory are the machine's; a
# resumed run's train_loss (Trainer's mean) covers only the steps after its resume.
RUN_MEASURES = {"sft.wall_seconds", "sft.tokens_per_second", "sft.peak_memory_gb", "sft.resumed", "sft.train_loss"}
EVALS = ("eval_nlp", "eval_code", "eval_align", "judge", "eval_lik")
MODEL_STAGES = {f"{family}@A-42" for family in ("sft", *EVALS)} | {f"{family}_base@base" for family in EVALS}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Outage:
    """A TCP path to the server that can be cut and restored (a network outage; the server and
    its data stay up). Every byte is the server's own S3 protocol, passed through unchanged."""

    def __init__(self, target: int) -> None:
        self.target, self.port = target, free_port()
        self.conns: list[socket.socket] = []
        self.up()

    def up(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=True)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def down(self) -> None:
        self.listener.close()
        for conn in self.conns:
            conn.close()
        self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def s3() -> Iterator[Outage]:
    """moto's S3 server on 127.0.0.1 with one bucket, reached through an `Outage` path."""
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) and time.monotonic() < deadline:
            time.sleep(0.1)
        import boto3

        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        client.create_bucket(Bucket="grid")
        yield Outage(port)
    finally:
        server.terminate()
        server.wait(timeout=30)


def complete_checkpoints(shared: Path) -> list[Path]:
    """Checkpoints whose trainer_state.json (the Trainer writes it last) parses: a resume can start there."""
    done = []
    for state in shared.glob("*/checkpoint-*/trainer_state.json"):
        try:
            json.loads(state.read_text())
        except ValueError:
            continue
        done.append(state.parent)
    return done


def env() -> dict[str, str]:
    return stage_env(**AWS)


def clone(origin: Path, target: Path, s3: Outage) -> Path:
    """A machine's checkout: a git clone of the study, the shared remote as its default (local config)."""
    subprocess.run(["git", "clone", "-q", str(origin), str(target)], check=True)
    dvc = [sys.executable, "-m", "dvc", "remote"]
    subprocess.run([*dvc, "add", "--local", "-d", "grid", "s3://grid/store"], cwd=target, check=True, env=env())
    url = f"http://127.0.0.1:{s3.port}"
    subprocess.run([*dvc, "modify", "--local", "grid", "endpointurl", url], cwd=target, check=True, env=env())
    return target


def job(checkout: Path, name: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "stages.job", name], cwd=checkout, env=env(),
                          capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert not check or done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def plan(checkout: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "stages.plan", "--workers", "2"], cwd=checkout, env=env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr


def results(checkout: Path) -> list[dict[str, str]]:
    with open(checkout / "reports" / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, s3: Outage) -> dict[str, Any]:
    """The study run as four machines would: prepare, two workers (one killed mid-training and
    rerun from a fresh clone; one cut off from the remote mid-push and rerun), then aggregation."""
    root = tmp_path_factory.mktemp("grid")
    origin = clean_clone(root / "origin")
    set_params(origin, **GRID)
    commit(origin, "the grid's params")
    shared = root / "bucket-mount"  # stands in for the checkpoints bucket SkyPilot mounts
    shared.mkdir()
    out: dict[str, Any] = {"root": root}

    prepare = clone(origin, root / "prepare", s3)
    plan(prepare)
    out["prepare"] = job(prepare, "prepare")
    out["plan"] = {k: (prepare / "data" / "plan" / f"{k}.txt").read_text().split() for k in ("train-0", "train-1")}

    # train-0 is killed once a checkpoint of its first model is in the shared directory.
    first = root / "worker-0"
    clone(origin, first, s3)
    (first / "models").mkdir()
    (first / "models" / "checkpoints").symlink_to(shared)
    plan(first)
    process = subprocess.Popen([sys.executable, "-m", "stages.job", "train-0"], cwd=first, env=env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 600
    while not complete_checkpoints(shared) and time.monotonic() < deadline:
        assert process.poll() is None, "train-0 ended before it could be killed"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    out["killed_checkpoints"] = sorted(p.relative_to(shared).as_posix() for p in complete_checkpoints(shared))
    again = clone(origin, root / "worker-0b", s3)  # a relaunched machine: a fresh clone, the same bucket
    (again / "models").mkdir()
    (again / "models" / "checkpoints").symlink_to(shared)
    plan(again)
    out["train-0"] = job(again, "train-0")
    out["train-0-dir"] = again

    # train-1 loses the remote the moment its push starts, then runs again once it is back.
    second = clone(origin, root / "worker-1", s3)
    plan(second)
    log = root / "train-1.stderr"
    with log.open("w") as stderr:  # a file, not a pipe: nothing blocks while stdout is read
        process = subprocess.Popen([sys.executable, "-m", "stages.job", "train-1"], cwd=second, env=env(),
                                   stdout=subprocess.PIPE, stderr=stderr, text=True)  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("job train-1: pushing"):
                s3.down()
                break
        process.communicate(timeout=600)
    out["outage"] = (process.returncode, log.read_text())
    s3.up()
    out["train-1"] = job(second, "train-1")

    aggregator = clone(origin, root / "aggregator", s3)
    out["aggregate"] = job(aggregator, "aggregate")
    out["aggregator"] = aggregator
    out["prepare_dir"] = prepare
    return out


def test_the_plan_gives_each_model_and_its_evaluations_to_one_worker(grid: dict[str, Any]) -> None:
    targets = grid["plan"]["train-0"] + grid["plan"]["train-1"]
    assert set(targets) >= MODEL_STAGES and len(targets) == len(set(targets))
    for model in ("A-42", "base"):
        owners = {job for job, stages in grid["plan"].items() if any(s.endswith(f"@{model}") for s in stages)}
        assert len(owners) == 1, model


def test_a_killed_worker_resumes_from_the_shared_checkpoints(grid: dict[str, Any]) -> None:
    assert grid["killed_checkpoints"]
    killed_model = grid["killed_checkpoints"][0].split("/")[0]
    metrics = json.loads((grid["train-0-dir"] / "reports" / "sft" / killed_model / "metrics.json").read_text())
    assert metrics["resumed"] is True


def test_an_outage_mid_push_is_one_line_and_the_rerun_pushes_what_is_missing(grid: dict[str, Any]) -> None:
    code, stderr = grid["outage"]
    assert code == 2
    assert stderr.splitlines()[-1].startswith("error: `dvc push --run-cache ...` failed:")
    assert "rerun the job" in stderr.splitlines()[-1]
    assert ran_stages(grid["train-1"].stdout) == []  # the rerun recomputed nothing, only pushed


def test_aggregation_restores_every_stage_and_runs_only_the_report(grid: dict[str, Any]) -> None:
    output = grid["aggregate"].stdout + grid["aggregate"].stderr
    assert ran_stages(output) == ["report"], ran_stages(output)
    assert {f"Stage '{s}' is cached" for s in MODEL_STAGES} <= {line[: line.find("is cached") + 9]
                                                                for line in output.splitlines()}  # fmt: skip


def test_distributed_results_equal_a_single_machine_run(grid: dict[str, Any]) -> None:
    single = grid["prepare_dir"]  # its data stages are done; now it trains and evaluates alone, no remote
    done = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=single, env=env(),
                          capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(ran_stages(done.stdout + done.stderr)) >= MODEL_STAGES  # computed here, not restored
    distributed, alone = results(grid["aggregator"]), results(single)
    assert [sorted(row) for row in distributed] == [sorted(row) for row in alone]
    for a, b in zip(distributed, alone, strict=True):  # every finding; what differs is the machine's clock
        assert {k: v for k, v in a.items() if k not in RUN_MEASURES} == {k: b[k] for k in a if k not in RUN_MEASURES}
    digests = {hashlib.sha256((c / "models" / "A-42" / "model.safetensors").read_bytes()).hexdigest()
               for c in (grid["aggregator"], single)}  # fmt: skip
    assert len(digests) == 1  # the weights of the killed-and-resumed A-42, bit for bit


def test_a_changed_stack_reruns_training_and_evaluation(grid: dict[str, Any]) -> None:
    aggregator = grid["aggregator"]
    stack = yaml.safe_load((aggregator / "env.yaml").read_text())
    (aggregator / "env.yaml").write_text(yaml.safe_dump({**stack, "trl": "9.9.9"}))
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=aggregator, env=env(),
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    changed = set(yaml.safe_load(status))
    assert changed >= MODEL_STAGES and not {s for s in changed if s.startswith(("fetch", "mix", "subsample"))}
    done = subprocess.run([sys.executable, "-m", "dvc", "repro", "sft@A-42"], cwd=aggregator, env=env(),
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode != 0 and "env.yaml names another stack: trl 9.9.9 (installed: 1.16.0)" in done.stderr


@pytest.mark.parametrize("task", ["prepare", "train", "aggregate"])
def test_skypilot_parses_the_task_files(task: str) -> None:
    import sky

    config = yaml.safe_load((REPO / "sky" / f"{task}.yaml").read_text())
    with pytest.raises(ValueError, match="REMOTE"):  # required: no default remote in a file
        sky.Task.from_yaml_config(config)
    envs = [("REMOTE", "s3://bucket/instmix"), ("CHECKPOINTS", "bucket-ckpt")]
    parsed = sky.Task.from_yaml_config(config, env_overrides=envs)
    assert parsed.name == f"instmix-{task}" and parsed.envs["REMOTE"] == "s3://bucket/instmix"
    assert "python -m stages." in parsed.run
    assert not {"HF_TOKEN", "OPENAI_API_KEY"} & {k for k, v in parsed.envs.items() if v}  # secrets stay secrets
    if task == "train":
        assert all(r.use_spot for r in parsed.resources)
        assert parsed.storage_mounts["/checkpoints"].name == "bucket-ckpt"
