"""The three scored sets of eval_lik as token ids: (context, continuation, bytes) per item.

- held-out (`heldout:<source>`): each record as sft trains on it (instmix/train/sft.py's
  `to_example`, tokenised as TRL's SFTTrainer tokenises a prompt/completion example: the prompt
  alone and prompt + completion + EOS, the completion starting where the two diverge, the whole
  cut at max_length from the end). The scored tokens are the completion's up to the end of the
  response text: paper, " " + response (the EOS is trained but not scored); chat, the response
  (the template's closing tokens are not scored). So the summed NLL is the training loss of the
  record without its EOS / closing tokens, and `bytes` are the UTF-8 bytes of exactly the
  response text those tokens spell (its joining space included under paper; cut where training
  cuts). A record whose prompt fills max_length has no token left and is not scored (`unscored`).
- code: each HumanEval problem's canonical solution after the exact input eval_code generates
  from (`code_prompt_template`, tokenised as instmix.gen.generate does: with special tokens).
- align: each FLASK instance's reference answer after the instruction under the answering
  template (instmix.align.answer's `render_prompts`), tokenised as generate does; under paper,
  the answer follows its joining space, as sft's completions do (and its bytes count it).
The code and align continuations are tokenised by themselves (the model generates after the
exact prompt ids: no token spans the boundary), checked to spell exactly the text scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from instmix.align.answer import render_prompts
from instmix.code.humaneval import render
from instmix.core.params import StageError
from instmix.core.records import Record
from instmix.train.sft import chat_prompt_ids, to_example


@dataclass(frozen=True)
class Item:
    """One scored item: the continuation's tokens are scored after the context's."""

    set: str
    id: str | int
    context: list[int]
    continuation: list[int]
    bytes: int


def common_prefix_length(ids: Sequence[int], other: Sequence[int]) -> int:
    """As TRL's (trl.data_utils): where a tokenised prompt and prompt + completion diverge."""
    n = 0
    for a, b in zip(ids, other, strict=False):
        if a != b:
            break
        n += 1
    return n


# ---------------------------------------------------------------------------- held-out records


def training_texts(
    tokenizer: Any, record: Record, template: str
) -> tuple[list[int], list[int], list[int], str, int, int, bool]:
    """As TRL builds the example: prompt ids, full ids (with EOS / the closing tokens), the ids of
    the text up to the response's end, the full text, the scored text's start and end characters,
    and whether special tokens are added when tokenising the text."""
    example = to_example(record, template)
    if template == "chat":
        messages = example["prompt"] + example["completion"]
        prompt_ids = chat_prompt_ids(tokenizer, record["prompt"])
        full_ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        begin = text.rfind(record["response"])
        if begin < 0:
            raise StageError(f"record {record['id']}: the chat template does not render the response as is")
        end = begin + len(record["response"])
        head_ids = tokenizer(text[:end], add_special_tokens=False)["input_ids"]
        return prompt_ids, full_ids, head_ids, text, begin, end, False
    prompt, completion = example["prompt"], example["completion"]
    eos = tokenizer.eos_token
    text = prompt + completion + ("" if completion.endswith(eos) else eos)  # TRL's add_eos
    prompt_ids = tokenizer(text=prompt)["input_ids"]
    full_ids = tokenizer(text=text)["input_ids"]
    head_ids = tokenizer(text=prompt + completion)["input_ids"]
    return prompt_ids, full_ids, head_ids, text, len(prompt), len(prompt) + len(completion), True


def heldout_item(tokenizer: Any, record: Record, template: str, max_length: int) -> Item | None:
    """The record's response tokens as trained (see the module's docstring); None if none is left."""
    prompt_ids, full_ids, head_ids, text, first, last, special = training_texts(tokenizer, record, template)
    start = common_prefix_length(prompt_ids, full_ids)
    whole = common_prefix_length(head_ids, full_ids)  # the response's end (EOS / closing tokens after it)
    end = min(whole, max_length)  # TRL truncates keep_start
    if end <= start:
        return None
    if end < whole:  # cut by max_length: the text the kept tokens spell
        last = char_end(tokenizer, text, full_ids, end, special) or first + len(decoded(tokenizer, full_ids[start:end]))
    nbytes = len(text[first:last].encode("utf-8"))
    return Item(f"heldout:{record['source']}", record["id"], full_ids[:start], full_ids[start:end], nbytes)


def char_end(tokenizer: Any, text: str, ids: list[int], end: int, special: bool) -> int | None:
    """Where the end-th token ends in `text` (the offsets of a fast tokenizer), None when unknown."""
    if not getattr(tokenizer, "is_fast", False):
        return None
    encoded = tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
    if encoded["input_ids"] != ids:
        return None
    return int(encoded["offset_mapping"][end - 1][1])


def decoded(tokenizer: Any, ids: Sequence[int]) -> str:
    return str(tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False))


def heldout_items(tokenizer: Any, records: Sequence[Record], template: str, max_length: int) -> tuple[list[Item], int]:
    """The scored items of a held-out file, and how many records had no response token left."""
    if template == "chat" and tokenizer.chat_template is None:
        raise StageError("eval.lik.template=chat but the model's tokenizer has no chat template; use paper")
    items = [heldout_item(tokenizer, record, template, max_length) for record in records]
    return [i for i in items if i is not None], sum(i is None for i in items)


# ---------------------------------------------------------------------------- HumanEval and FLASK


def continuation_ids(tokenizer: Any, context: list[int], text: str) -> list[int]:
    """`text` tokenised to follow `context` exactly; refused when the ids do not spell it (a
    tokenizer that prefixes a space to every text is tried once more behind a newline)."""
    before = decoded(tokenizer, context)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if decoded(tokenizer, context + ids) == before + text:
        return list(ids)
    anchor = tokenizer("\n", add_special_tokens=False)["input_ids"]
    anchored = tokenizer("\n" + text, add_special_tokens=False)["input_ids"]
    if anchored[: len(anchor)] == anchor and decoded(tokenizer, context + anchored[len(anchor) :]) == before + text:
        return list(anchored[len(anchor) :])
    raise StageError(f"the tokenizer does not spell {text[:40]!r} back after its context; cannot score it")


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """As instmix.gen.generate encodes a prompt (special tokens included)."""
    return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])


def code_items(tokenizer: Any, problems: Sequence[dict[str, Any]], prompt_template: str) -> list[Item]:
    items = []
    for problem in problems:
        solution = problem.get("canonical_solution")
        if not isinstance(solution, str) or not solution:
            raise StageError(f"HumanEval problem {problem['task_id']} has no canonical_solution")
        context = prompt_ids(tokenizer, render(prompt_template, problem["prompt"]))
        continuation = continuation_ids(tokenizer, context, solution)
        items.append(Item("code", problem["task_id"], context, continuation, len(solution.encode("utf-8"))))
    return items


def align_items(tokenizer: Any, instances: Sequence[dict[str, Any]], template: str) -> tuple[list[Item], int]:
    """The scored items, and how many instances had an empty reference answer (not scored)."""
    prompts = render_prompts(tokenizer, [i["instruction"] for i in instances], template)
    items = []
    for instance, prompt in zip(instances, prompts, strict=True):
        if not instance["reference"].strip():
            continue
        answer = (" " if template == "paper" else "") + instance["reference"]
        context = prompt_ids(tokenizer, prompt)
        continuation = continuation_ids(tokenizer, context, answer)
        items.append(Item("align", instance["idx"], context, continuation, len(answer.encode("utf-8"))))
    return items, len(instances) - len(items)
