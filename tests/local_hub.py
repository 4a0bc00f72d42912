"""A Hugging Face Hub look-alike on 127.0.0.1 for the tests: olah in offline mode serving git repos.

The hub clients (huggingface_hub, datasets, transformers) then run for real over HTTP against
repos laid out as the hub stores them (../shared/docs/hub-layouts.md). Facts used here:
../shared/docs/local-hub.md (olah needs a TOML config, a seeded cache for branch lookups, and
answers `GET /api/<type>s/<repo>/revision/<ref>` once it is up).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from instmix.core.hub import OFFLINE_VARIABLES

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
