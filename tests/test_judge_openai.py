"""judge_openai: the openai backend against an OpenAI-compatible endpoint on 127.0.0.1, with
the real openai client, through the judge stage: retries, settings, cache, the key kept secret."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from instmix.align.judge_params import JudgeParams
from instmix.align.scoring import metric_key
from instmix.core.files import write_jsonl
from tests.conftest import run_stage, set_params
from tests.test_judge import demo_answers

KEY = "sk-test-Zq8vW3nB5xR1tY7u"  # what the test server expects; must never reach a written file


class FakeEndpoint:
    """An OpenAI-compatible chat endpoint on 127.0.0.1: the first request fails with 500 (or
    every request with `status`); then each reply scores the rubric skills found in the prompt."""

    def __init__(self, status: int | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = status
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with endpoint.lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    endpoint.requests.append({"path": self.path, "headers": headers, "body": body})
                    first = len(endpoint.requests) == 1
                if endpoint.status or first:
                    status = endpoint.status or 500
                    message = f"Incorrect API key provided: {self.headers.get('Authorization', '')[7:]}"
                    self.reply(status, {"error": {"message": message if status == 401 else "overloaded"}})
                    return
                content = flask_review(body["messages"][1]["content"])
                self.reply(200, {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 950, "completion_tokens": 293, "total_tokens": 1243},
                })  # fmt: skip

            def reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def review_score(skill: str) -> int:
    return len(skill) % 5 + 1


def flask_review(prompt: str) -> str:
    """A GPT-4-style FLASK review of the prompt's skills, ending with the scores dict."""
    skills = re.findall(r"\n([A-Z][A-Za-z ]+): [^\n]*\nScore 1: ", prompt)
    feedback = "".join(f"{s}: The response is adequate here.\nScore: {review_score(s)}\n\n" for s in skills)
    return feedback + "{" + ", ".join(f"'{s}': {review_score(s)}" for s in skills) + "}"


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    server = FakeEndpoint()
    yield server
    server.server.shutdown()


def openai_params(workdir: Path, url: str, **judge: Any) -> dict[str, Any]:
    settings = {"backend": "openai", "model": "judge-test", "base_url": url, "api_key_env": "INSTMIX_JUDGE_KEY",
                "temperature": 0.3, "max_tokens": 77, "concurrency": 2, "retries": 2} | judge  # fmt: skip
    set_params(workdir, **{"eval.judge": settings})
    write_jsonl(workdir / "answers.jsonl", demo_answers())
    return settings


@pytest.fixture
def run_judge(demo_flask: Path) -> Any:
    def run(workdir: Path, **env: str) -> Any:
        return run_stage("judge", "answers.jsonl", demo_flask, "out", "cache", cwd=workdir, NO_PROXY="127.0.0.1", **env)

    return run


def test_openai_backend_retries_sends_settings_and_caches(
    workdir: Path, endpoint: FakeEndpoint, run_judge: Any
) -> None:
    settings = openai_params(workdir, endpoint.url)
    result = run_judge(workdir, INSTMIX_JUDGE_KEY=KEY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(endpoint.requests) == 3  # one 500, retried, then one call per answer
    for request in endpoint.requests:
        assert request["path"] == "/v1/chat/completions"
        assert request["headers"]["authorization"] == f"Bearer {KEY}"
        body = request["body"]
        assert (body["model"], body["temperature"], body["max_tokens"]) == ("judge-test", 0.3, 77)
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
    metrics = json.loads((workdir / "out/metrics.json").read_text())
    align = metrics["align"]
    expected = {metric_key(s): review_score(s) * 20.0 for a in demo_answers() for s in a["skills"]}
    assert {k: align[k] for k in expected} == expected
    assert align["avg"] == pytest.approx(sum(expected.values()) / len(expected))
    assert (align["instances"], align["parse_failures"], align["judge"]) == (2, 0, "openai:judge-test")
    # the metrics carry the judge's params (the variable's name, never the key)
    assert metrics["params"] == asdict(JudgeParams(**settings))
    assert metrics["params"]["api_key_env"] == "INSTMIX_JUDGE_KEY" and metrics["params"]["max_tokens"] == 77
    breakdown = json.loads((workdir / "out/breakdown.json").read_text())
    assert breakdown["usage"] == {"prompt_tokens": 1900, "completion_tokens": 586}
    assert breakdown["judge"]["temperature"] == 0.3
    judgments = [json.loads(line) for line in (workdir / "out/judgments.jsonl").read_text().splitlines()]
    assert [j["idx"] for j in judgments] == [3, 17] and judgments[0]["judge_output"].startswith("Logical Correctness")
    assert len(list((workdir / "cache").rglob("*.json"))) == 2

    outputs = {p: p.read_bytes() for p in (workdir / "out").iterdir()}
    rerun = run_judge(workdir, INSTMIX_JUDGE_KEY=KEY)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert len(endpoint.requests) == 3, "a rerun must be answered from the cache"
    assert "0 calls" in rerun.stdout and "2 answered from the cache" in rerun.stdout
    assert {p: p.read_bytes() for p in (workdir / "out").iterdir()} == outputs

    set_params(workdir, **{"eval.judge.temperature": 0.0})  # other settings: another cache entry
    assert run_judge(workdir, INSTMIX_JUDGE_KEY=KEY).returncode == 0
    assert len(endpoint.requests) == 5 and endpoint.requests[-1]["body"]["temperature"] == 0.0
    assert json.loads((workdir / "out/metrics.json").read_text())["params"]["temperature"] == 0.0

    written = [p for p in workdir.rglob("*") if p.is_file()]
    assert len(written) >= 7
    for path in written:
        assert KEY not in path.read_text(errors="replace"), f"the API key leaked into {path}"
    assert KEY not in result.stdout + result.stderr + rerun.stdout + rerun.stderr


def test_openai_backend_needs_the_key_variable(workdir: Path, endpoint: FakeEndpoint, run_judge: Any) -> None:
    openai_params(workdir, endpoint.url)
    result = run_judge(workdir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: eval.judge.api_key_env: the environment variable INSTMIX_JUDGE_KEY is not set"
    )
    assert not endpoint.requests and not (workdir / "out").exists()


def test_a_refused_key_stops_at_once_without_printing_it(workdir: Path, run_judge: Any) -> None:
    server = FakeEndpoint(status=401)
    try:
        openai_params(workdir, server.url, concurrency=1)
        result = run_judge(workdir, INSTMIX_JUDGE_KEY=KEY)
    finally:
        server.server.shutdown()
    assert result.returncode == 2
    assert "error: the judge endpoint refused the request: AuthenticationError" in result.stderr
    assert KEY not in result.stderr + result.stdout and KEY[-4:] not in result.stderr
    assert len(server.requests) == 1 and not (workdir / "out").exists()


def test_the_key_itself_is_refused_as_a_variable_name(workdir: Path, run_judge: Any) -> None:
    openai_params(workdir, "http://127.0.0.1:9/v1", api_key_env=KEY)
    result = run_judge(workdir)
    assert result.returncode == 2 and KEY not in result.stderr
    assert "eval.judge.api_key_env=<hidden> is not allowed" in result.stderr
