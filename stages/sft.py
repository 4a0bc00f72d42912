"""sft@<model id>: fine-tune the base model on one mixture with TRL's SFTTrainer (instmix.train).

    python -m stages.sft <mixture.jsonl> <base model dir> <out model dir> <report dir> <checkpoint dir> --seed N

Reads `sft`; the seed is one entry of the top-level `seeds` list, and the model id
(<setting>-<seed>) is the name of <out model dir>. Params and inputs are checked first; then
`sft.launcher: single` trains in this process, and any other launcher re-runs this same
command under `accelerate launch --config_file configs/accelerate/<launcher>.yaml
--num_processes <sft.num_processes>` (a command already started by `accelerate launch`, e.g.
on each node of a multi-node run, trains at once). Writes the fine-tuned model, DVCLive curves
to <report dir>/live and the final numbers with the params used to <report dir>/metrics.json.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from instmix.core import hub
from instmix.core.params import StageError, cli, load, parse
from instmix.core.stack import check_stack
from instmix.train.config import SFTParams, is_main_process

USAGE = "usage: python -m stages.sft <mixture> <base dir> <out dir> <report dir> <checkpoint dir> --seed N"
CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "accelerate"


def main(argv: list[str]) -> None:
    if len(argv) != 7 or argv[5] != "--seed":
        raise StageError(USAGE)
    mixture, base, out, report, checkpoints = map(Path, argv[:5])
    seed = parse(int, argv[6], "--seed")
    params = load(SFTParams, "sft")
    check_stack()
    if not (base / "config.json").exists():
        raise StageError(f"{base} is not a model directory (no config.json); run the base stage first")
    if params.launcher != "single" and "LOCAL_RANK" not in os.environ:  # not yet under accelerate: relaunch
        config = CONFIGS / f"{params.launcher}.yaml"
        launch = ["accelerate", "launch", "--config_file", str(config), "--num_processes", str(params.num_processes)]
        os.execvp("accelerate", [*launch, "-m", "stages.sft", *argv])
    hub.go_offline()  # the base model is a local directory: nothing to fetch
    from instmix.train.sft import train  # torch, transformers and trl: only once the inputs are checked

    train(params, seed, mixture, base, out, report, checkpoints, lambda resume: [dvclive(report / "live", resume)])


def dvclive(directory: Path, resume: bool) -> Any:
    """The trainer's DVCLive logger: curves in <report dir>/live, which dvc.yaml lists as plots."""
    from dvclive import Live
    from transformers.integrations import DVCLiveCallback

    # Live() wipes its directory unless resume=True; only rank 0 logs.
    live = Live(dir=str(directory), resume=resume, save_dvc_exp=False, dvcyaml=None) if is_main_process() else None
    return DVCLiveCallback(live=live)


if __name__ == "__main__":
    if "--help" in sys.argv:
        print(__doc__)
    else:
        cli(main)
