"""The judge's params (section eval.judge), apart from the judge so that its backends
(instmix.align.judge_openai, judge_hf) can read them without importing the judge."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from instmix.core.params import ParamsError

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class JudgeParams:
    """The judge (section eval.judge). Defaults: the paper's GPT-4-0613 with FLASK's reference-answer prompt."""

    backend: Literal["openai", "hf"] = "openai"
    """`openai`: any OpenAI-compatible chat endpoint. `hf`: a local model scoring each skill as the
    probability-weighted mean of the score tokens 1-5 (deterministic)."""
    model: str = "gpt-4-0613"
    """openai: the model name sent to the endpoint."""
    hf_model: str = "models/base"
    """hf: the judge's model directory (the demo: models/base, SmolLM2-135M, a weak judge)."""
    base_url: str | None = None
    """openai: the endpoint, e.g. http://localhost:8000/v1; null = the client's default (OPENAI_BASE_URL or OpenAI)."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """openai: the NAME of the environment variable holding the key (the key itself never goes in
    params); null for a local server that needs none."""
    prompt_id: int = 2
    """The FLASK judge prompt: 2 = with the reference ("ground truth") answer, as the paper."""
    temperature: float = 0.0
    """openai: sent with every request (FLASK's script meant 0 but its request dropped it: API default 1)."""
    max_tokens: int = 1024
    concurrency: int = 8
    """openai: requests in flight at once."""
    retries: int = 6
    """openai: retries per request on rate limits, timeouts and server errors (exponential backoff)."""
    timeout: float = 120.0
    """openai: seconds per request."""
    feedback_tokens: int = 0
    """hf: greedy feedback tokens the judge writes before its scores are read (0 = score at once)."""
    batch_size: int = 8
    """hf: prompts per batch while the judge writes feedback (feedback_tokens > 0), padded engine."""
    engine: Literal["auto", "padded", "continuous"] = "auto"
    """hf: how the feedback is generated (instmix.gen.generate; auto = continuous on a GPU, padded on
    a CPU). No vllm: the scores are read from the judge's own next-token distribution."""

    def __post_init__(self) -> None:
        positive = {"max_tokens": self.max_tokens, "concurrency": self.concurrency, "prompt_id": self.prompt_id}
        positive |= {"batch_size": self.batch_size}
        for key, value in positive.items():
            if value < 1:
                raise ParamsError(key, value, "a positive integer")
        for key, value in {"retries": self.retries, "feedback_tokens": self.feedback_tokens}.items():
            if value < 0:
                raise ParamsError(key, value, "an integer >= 0")
        if not 0 <= self.temperature <= 2:
            raise ParamsError("temperature", self.temperature, "a number in [0, 2]")
        if self.timeout <= 0:
            raise ParamsError("timeout", self.timeout, "a positive number of seconds")
        if self.api_key_env is not None and not ENV_NAME.match(self.api_key_env):
            raise ParamsError("api_key_env", "<hidden>", "the name of an environment variable (never the key itself)")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ParamsError("base_url", self.base_url, "null or an http(s):// URL")
