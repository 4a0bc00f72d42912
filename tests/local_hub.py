"""A Hugging Face Hub look-alike on 127.0.0.1 for the tests: olah in offline mode serving git repos.

The hub clients (huggingface_hub, datasets, transformers) then run for real over HTTP against
repos laid out as the hub stores them (../shared/docs/hub-layouts.md). Facts used here:
../shared/docs/local-hub.md (olah needs a TOML config, a seeded cache for branch lookups, and
answers `GET /api/<type>s/<repo>/revision/<ref>` once it is up).
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from instmix.core.hub import OFFLINE_VARIABLES

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo"
TINY_MODEL = "instmix-test/tiny-llama"
ALPACA_FILE = "train-00000-of-00001-a09b74b3ef9c3b56.parquet"  # the hub's own name

GIT_ENV = {
    "GIT_AUTHOR_NAME": "instmix", "GIT_AUTHOR_EMAIL": "tests@localhost", "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "instmix", "GIT_COMMITTER_EMAIL": "tests@localhost",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(repo: Path, *args: str) -> str:
    env = dict(os.environ, **GIT_ENV)
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class LocalHub:
    root: Path
    port: int = field(default_factory=free_port)
    shas: dict[str, str] = field(default_factory=dict)
    """"<datasets|models>/<org>/<name>" -> the commit of its `main`."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, cache: Path) -> dict[str, str]:
        """A stage's environment for this hub: the endpoint, a fresh HF cache, no offline switch."""
        return {"HF_ENDPOINT": self.endpoint, "HF_HOME": str(cache), **dict.fromkeys(OFFLINE_VARIABLES, "")}

    def add_repo(self, kind: str, repo: str, files: dict[str, bytes]) -> str:
        """Commit `files` to <mirrors>/<kind>/<repo> (a new commit when it exists); returns the sha."""
        path = self.root / "mirrors" / kind / repo
        if not (path / ".git").exists():
            path.mkdir(parents=True)
            git(path, "init", "-q", "-b", "main")
        for name, data in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(data)
        git(path, "add", "-A")
        git(path, "commit", "-q", "--allow-empty", "-m", "update")
        sha = git(path, "rev-parse", "HEAD")
        self.shas[f"{kind}/{repo}"] = sha
        self.seed(kind, repo, sha)
        return sha

    def seed(self, kind: str, repo: str, sha: str) -> None:
        """olah answers a branch lookup from its cache only: record what `main` resolves to."""
        api = self.root / "cache" / "api" / kind / repo / "revision"
        (api / sha).mkdir(parents=True, exist_ok=True)
        (api / sha / "meta_head.json").write_text(json.dumps({"sha": sha, "lastModified": "2024-01-01T00:00:00+00:00"}))
        (api / "main").mkdir(parents=True, exist_ok=True)
        body = {"status_code": 200, "headers": {}, "cached_at": time.time()}
        (api / "main" / "resolved_commit.json").write_text(json.dumps(body))
        (api / "main" / "resolved_commit.json.body").write_text(sha)

    def start(self) -> None:
        netloc = f"127.0.0.1:{self.port}"
        config = self.root / "olah.toml"
        config.write_text(
            "[basic]\n"
            f'host = "127.0.0.1"\nport = {self.port}\nrepos-path = "{self.root / "cache"}"\n'
            f'mirror-netloc = "{netloc}"\nmirror-lfs-netloc = "{netloc}"\nmirrors-path = ["{self.root / "mirrors"}"]\n'
            "[accessibility]\noffline = true\n"
        )
        (self.root / "home").mkdir(exist_ok=True)
        olah = Path(sys.executable).parent / "olah-cli"
        log = open(self.root / "olah.log", "wb")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            [str(olah), "-c", str(config), "--log-path", str(self.root / "logs")],
            env=dict(os.environ, HOME=str(self.root / "home")), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        probe = next(iter(self.shas))
        url = f"{self.endpoint}/api/{probe}/revision/main"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"olah exited: {(self.root / 'olah.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"olah did not answer {url} within 60 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


def serve_files(root: Path, seen: list[str]) -> ThreadingHTTPServer:
    """A plain HTTP file server on 127.0.0.1 for `root` (a raw-file host); `seen` logs each path asked."""

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------------------- repos in the hub's layouts


def parquet(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def p3_rows(task: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (DEMO / "p3" / f"{task}.jsonl").read_text().splitlines()]
    return [{"inputs": [1], "inputs_pretokenized": r["inputs"], "targets": [2], "targets_pretokenized": r["targets"]}
            for r in rows]  # fmt: skip


def add_sources(hub: LocalHub) -> None:
    """tatsu-lab/alpaca (parquet), CodeAlpaca (one JSON file), P3 (a parquet folder per task, with a
    validation split and a `_score_eval` copy that fetch must skip), from the demo files."""
    alpaca = [{**r, "text": "..."} for r in json.loads((DEMO / "alpaca.json").read_text())]
    hub.add_repo("datasets", "tatsu-lab/alpaca", {f"data/{ALPACA_FILE}": parquet(alpaca)})
    codealpaca = (DEMO / "codealpaca.json").read_bytes()
    hub.add_repo("datasets", "sahil2801/CodeAlpaca-20k", {"code_alpaca_20k.json": codealpaca})
    news, imdb = parquet(p3_rows("ag_news_classify")), parquet(p3_rows("imdb_Sentiment_with_choices_"))
    hub.add_repo("datasets", "bigscience/P3", {
        "ag_news_classify/train-00000-of-00001.parquet": news,
        "ag_news_classify/validation-00000-of-00001.parquet": imdb,  # not a training split
        "ag_news_classify_score_eval/train-00000-of-00001.parquet": news,  # rank-eval copy
        "imdb_Sentiment_with_choices_/train-00000-of-00001.parquet": imdb,
    })  # fmt: skip


def add_tiny_model(hub: LocalHub, scratch: Path) -> None:
    from instmix.train.base import save_tiny

    save_tiny(scratch)
    hub.add_repo("models", TINY_MODEL, {p.name: p.read_bytes() for p in scratch.iterdir() if p.is_file()})


BENCHMARK_REPOS = {  # task -> (repo, its configs as {config: folder}; None: the default config in data/)
    "arc_challenge": ("allenai/ai2_arc", {"ARC-Challenge": "ARC-Challenge"}),
    "winogrande": ("allenai/winogrande", {"winogrande_xl": "winogrande_xl"}),
    "piqa": ("baber/piqa", None),
    "race": ("EleutherAI/race", {"high": "high"}),
    "hellaswag": ("Rowan/hellaswag", None),
    "mmlu": ("cais/mmlu", {}),  # one config per subject, filled in below
}
SPLITS = ("train", "validation", "test", "dev")  # every split a built-in task may name (few-shot ones too)


def readme(configs: dict[str, str]) -> bytes:
    """A dataset card whose `configs:` block maps each config to its parquet files, as the hub's do."""
    blocks = [{"config_name": name, "data_files": [{"split": s, "path": f"{folder}/{s}-*"} for s in SPLITS]}
              for name, folder in configs.items()]  # fmt: skip
    return f"---\n{yaml.safe_dump({'configs': blocks}, sort_keys=False)}---\n".encode()


def add_benchmarks(hub: LocalHub, scratch: Path) -> None:
    """The six benchmarks in the repos, configs and columns lm-eval's built-in tasks read
    (../shared/docs/hub-layouts.md section 4), their rows converted from the demo files by the
    project's own converters (instmix.nlp.benchmarks). Every split holds the same rows."""
    from instmix.nlp.benchmarks import SPLIT, builtin_subjects, convert

    sources = {"arc_challenge": "arc/arc_challenge.jsonl", "winogrande": "winogrande/dev.jsonl",
               "piqa": "piqa/valid.jsonl", "race": "race/test_middle.jsonl",
               "hellaswag": "hellaswag/hellaswag_val.jsonl", "mmlu": "mmlu/test"}  # fmt: skip
    for task, (repo, configs) in BENCHMARK_REPOS.items():
        out = scratch / task
        convert(task, DEMO / "benchmarks" / sources[task], out)
        if task == "mmlu":  # all 57 subjects (the built-in group names each); absent ones reuse a demo subject's rows
            rows = {p.stem: [json.loads(line) for line in p.read_text().splitlines()] for p in out.glob("*.jsonl")}
            spare = rows[min(rows)]
            docs = {s: [d | {"subject": s} for d in rows.get(s, spare)] for s in builtin_subjects()}
            configs = {s: s for s in docs}
        else:
            lines = (out / f"{SPLIT[task]}.jsonl").read_text().splitlines()
            docs = {name: [json.loads(line) for line in lines] for name in (configs or {"default": "data"})}
        files = {"README.md": readme(configs or {"default": "data"})}
        for name, folder in (configs or {"default": "data"}).items():
            files |= {f"{folder}/{s}-00000-of-00001.parquet": parquet(docs[name]) for s in SPLITS}
        hub.add_repo("datasets", repo, files)
