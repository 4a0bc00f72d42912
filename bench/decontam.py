"""Time the decontam stage at paper scale on real text: 3 x 20,000 records vs every local eval file.

Builds the training samples from the public files in ../shared/data (Alpaca 1,727 + 2,000,
CodeAlpaca 2,017 + 4,535, the P3 T0 sample's 21,338 records), repeating a source's records
(with new ids) up to N, points eval.decontam at the local eval files, then runs the stage as
DVC runs it (`python -m stages.decontam`, one process) and prints its wall time and output.
Repeated records repeat overlaps too: the counts are for timing, not for findings.

    python bench/decontam.py [N]   # N records per source, default 20000
"""

from __future__ import annotations

import itertools
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from instmix.core.files import write_jsonl  # noqa: E402
from instmix.core.profile import read_profile  # noqa: E402
from instmix.core.records import Record, record_id  # noqa: E402
from instmix.data.sources import Drops, p3_task_files, read_instructions, read_p3_task  # noqa: E402

DATA = REPO.parent / "shared" / "data"
# Every local eval file, where the `local` profile points the evaluation stages.
EVAL = {"flask": str(DATA / "flask/flask_evaluation.jsonl"), **read_profile("local", str(DATA))["eval"]["benchmarks"]}


def real_records() -> dict[str, list[Record]]:
    drops = Drops()
    alpaca = [
        r
        for f in ("alpaca_data_sample.json", "alpaca_small_cleaned.json")
        for r in read_instructions("alpaca", DATA / "alpaca" / f, drops)
    ]
    code = [
        r
        for f in ("code_alpaca_2k.json", "new_codealpaca.json")
        for r in read_instructions("codealpaca", DATA / "codealpaca" / f, drops)
    ]
    p3 = [
        r
        for task, files in p3_task_files(DATA / "p3_t0_train_sample").items()
        for r in read_p3_task(task, files, drops)
    ]
    return {"alpaca": alpaca, "codealpaca": code, "p3": p3}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    if not DATA.is_dir():
        sys.exit(f"{DATA} is not here: this benchmark needs the real public files")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for source, records in real_records().items():
            sample = [
                Record(**{**r, "id": record_id(source, str(i)), "orig_id": str(i)})
                for i, r in enumerate(itertools.islice(itertools.cycle(records), n))
            ]
            write_jsonl(root / "subsample" / f"{source}.jsonl", sample)
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        paths = dict(EVAL)
        params["eval"]["decontam"] = {
            "n": 13,
            "humaneval": True,
            "flask": paths.pop("flask"),
            "benchmarks": paths,
        }
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "stages.decontam", "subsample", "benchmarks", "flask", "out"],
            cwd=root,
            env={"PYTHONPATH": str(REPO), "PATH": str(Path(sys.executable).parent)},
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(result.stdout.strip(), result.stderr.strip()[-2000:])
        print(
            f"decontam: 3 x {n} records vs {len(EVAL) + 1} eval sets: {seconds:.2f} s wall, "
            f"{usage.ru_utime + usage.ru_stime:.2f} s CPU, {usage.ru_maxrss / 1024:.0f} MiB peak, "
            f"exit {result.returncode}"
        )


if __name__ == "__main__":
    main()
