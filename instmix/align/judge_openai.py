"""The `openai` judge backend: chat completions on any OpenAI-compatible endpoint, cached on disk.

The key is read from the environment variable named by `eval.judge.api_key_env` and never
written anywhere. Every response is cached under the sha256 of (base URL, model, messages,
temperature, max_tokens): a crash or a rerun never pays twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instmix.core.files import dumps, write_json
from instmix.core.params import StageError

if TYPE_CHECKING:
    from instmix.align.judge_params import JudgeParams


class JudgeCallError(Exception):
    """A request that failed for good (after the client's retries)."""


class FatalJudgeError(Exception):
    """An error every request would hit (bad key, unknown model): stop at once."""


class OpenAIJudge:
    """Chat completions on an OpenAI-compatible endpoint, every response cached on disk."""

    def __init__(self, params: JudgeParams, cache_dir: Path) -> None:
        key = os.environ.get(params.api_key_env, "") if params.api_key_env else "unused"
        if not key:
            raise StageError(f"eval.judge.api_key_env: the environment variable {params.api_key_env} is not set")
        from openai import OpenAI

        self._secret = key
        self.params, self.cache_dir = params, cache_dir
        self.client = OpenAI(api_key=key, base_url=params.base_url, max_retries=params.retries, timeout=params.timeout)
        self.base_url = str(self.client.base_url)
        self.calls = self.hits = 0
        self._lock = threading.Lock()
        self._fatal = ""  # once set, queued requests stop before they are sent

    def cache_key(self, messages: list[dict[str, str]]) -> str:
        request = {"base_url": self.base_url, "model": self.params.model, "messages": messages}
        request |= {"temperature": self.params.temperature, "max_tokens": self.params.max_tokens}
        return hashlib.sha256(dumps(request).encode()).hexdigest()

    def complete(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The judge's reply {content, usage, finish_reason}: from the cache, else from the endpoint."""
        import openai

        key = self.cache_key(messages)
        path = self.cache_dir / key[:2] / f"{key}.json"
        if self._fatal:
            raise FatalJudgeError(self._fatal)
        if path.exists():
            with self._lock:
                self.hits += 1
            return json.loads(path.read_text(encoding="utf-8"))
        try:
            response = self.client.chat.completions.create(
                model=self.params.model,
                messages=messages,  # type: ignore[arg-type]
                temperature=self.params.temperature,
                max_tokens=self.params.max_tokens,
            )
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as err:
            self._fatal = self._clean(err)
            raise FatalJudgeError(self._fatal) from None
        except openai.BadRequestError as err:  # this prompt only (e.g. too long): recorded, not cached
            return {"content": None, "error": self._clean(err), "finish_reason": None, "usage": None}
        except openai.OpenAIError as err:  # retries exhausted: rate limits, timeouts, server errors
            raise JudgeCallError(self._clean(err)) from None
        with self._lock:
            self.calls += 1
        choice = response.choices[0] if response.choices else None
        usage = response.usage
        record = {
            "content": choice.message.content if choice else None,
            "finish_reason": choice.finish_reason if choice else None,
            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
            if usage
            else None,
            "model": response.model,
            "request": {"model": self.params.model, "temperature": self.params.temperature},
        }
        write_json(path, record)
        return record

    def _clean(self, err: Exception) -> str:
        """One line about the error, with the key (or any part the server echoed) masked."""
        text = f"{type(err).__name__}: {err}".replace("\n", " ")
        text = text.replace(self._secret, "***")
        return text if len(self._secret) < 8 else text.replace(self._secret[-4:], "***")

    def judge_all(self, requests: list[list[dict[str, str]]]) -> list[dict[str, Any]]:
        from tqdm.auto import tqdm

        results: list[dict[str, Any] | None] = [None] * len(requests)
        failures: list[str] = []
        with ThreadPoolExecutor(max_workers=self.params.concurrency) as pool:
            futures = {pool.submit(self.complete, messages): i for i, messages in enumerate(requests)}
            try:
                for future in tqdm(as_completed(futures), total=len(futures), desc="judge", unit="call"):
                    try:
                        results[futures[future]] = future.result()
                    except JudgeCallError as err:
                        failures.append(str(err))
            except FatalJudgeError as err:
                pool.shutdown(wait=True, cancel_futures=True)
                raise StageError(f"the judge endpoint refused the request: {err}") from None
        if failures:
            raise StageError(
                f"{len(failures)} of {len(requests)} judge calls failed after {self.params.retries} retries "
                f"(first: {failures[0]}); the others are cached in {self.cache_dir}: rerun to retry only these"
            )
        return [r for r in results if r is not None]
