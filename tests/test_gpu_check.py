"""bench/gpu_check.sh --smoke: the prepared GPU check runs end to end on CPU, so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_gpu_check_smoke_runs_every_section(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(["bash", "bench/gpu_check.sh", "--smoke", str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "gpu_check.log").stat().st_size > 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    modes = report["sft"]["sizes"]["tiny"]["modes"]
    padded, free = modes["padded sdpa"], modes["padding_free sdpa"]
    assert padded["padding"] > 0 and free["padding"] == 0
    assert free["loss_rel_diff_vs_padded"] < 1e-5  # padding-free batches: the padded loss, in fp32
    assert all("on a CPU" in v["skipped"] for k, v in modes.items() if "liger" in k or "flex" in k)
    generation = report["generation"]
    assert generation["greedy_parity_vs_padded"]["float32"]["identical"] == generation["prompts"]
    assert all(generation[k]["new_tokens"] > 0 for k in ("one_at_a_time", "padded", "continuous"))
    assert "vllm" in generation  # measured, or skipped with its reason
    stages = report["stages"]
    assert {"base", "sft", "eval_nlp", "eval_code"} <= stages.keys()
    assert all(row["rc"] == 0 for row in stages.values() if isinstance(row, dict) and "rc" in row)
    assert stages["sft"]["metrics"]["runtime"]["batching"] == "padding_free"
    assert report["goals"]["mfu_1b"]["value"] is None  # no ~1B run in smoke mode: no figure claimed
