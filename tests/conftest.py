"""Shared test helpers: run a stage the way DVC does, and find the shared real-data samples."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.local_hub import LocalHub, add_benchmarks, add_sources, add_tiny_model

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
DEMO = REPO / "assets" / "demo"


def stage_env(**extra: str) -> dict[str, str]:
    # Two test workers share two cores: one OpenMP thread per stage process (torch would take both).
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1") | extra
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_stage(module: str, *args: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m stages.<module> ARGS` in `cwd` (which holds params.yaml), as dvc.yaml does."""
    return subprocess.run(
        [sys.executable, "-m", f"stages.{module}", *map(str, args)],
        cwd=cwd,
        env=stage_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def set_params(workdir: Path, **dotted: object) -> None:
    """Change params.yaml in `workdir`: set_params(d, **{"mix.ratio": 1.5})."""
    path = workdir / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory holding the committed params.yaml (demo profile), input paths made absolute."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    paths = {f"fetch.{s}.path": str(REPO / params["fetch"][s]["path"]) for s in params["fetch"]}
    paths["eval.flask.path"] = str(REPO / params["eval"]["flask"]["path"])
    set_params(tmp_path, **paths)
    return tmp_path


@pytest.fixture(scope="session")
def demo_flask(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/flask as the real flask stage writes it from the demo FLASK files."""
    root = tmp_path_factory.mktemp("flask")
    flask = yaml.safe_load((REPO / "params.yaml").read_text())["eval"]["flask"]
    (root / "params.yaml").write_text(yaml.safe_dump({"eval": {"flask": flask | {"path": str(REPO / flask["path"])}}}))
    result = run_stage("flask", "data/flask", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "data" / "flask"


def real_or_demo(shared_relative: str, demo_relative: str) -> Path:
    """A real public file when ../shared is here, else the demo file in the same format."""
    shared = SHARED_DATA / shared_relative
    return shared if shared.exists() else DEMO / demo_relative


def built_base(root: Path, base: str) -> Path:
    """models/base as the real base stage builds it for `model.base: <base>`."""
    (root / "params.yaml").write_text(f"model:\n  base: {base}\n")
    result = run_stage("base", "models/base", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "models" / "base"


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `tiny` base model: a random 2-layer Llama, milliseconds per step."""
    return built_base(tmp_path_factory.mktemp("tiny"), "tiny")


@pytest.fixture(scope="session")
def smollm2_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model, SmolLM2-135M-Instruct, as the demo builds it (~30 s)."""
    return built_base(tmp_path_factory.mktemp("smollm2"), "smollm2")


@pytest.fixture(scope="session")
def local_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    """olah on 127.0.0.1 serving the three sources, the six benchmarks and the tiny model in the
    hub's layouts (tests/local_hub.py), pinned at the commits git gave them (`hub.shas`)."""
    hub = LocalHub(tmp_path_factory.mktemp("hub"))
    add_sources(hub)
    add_benchmarks(hub, tmp_path_factory.mktemp("benchmarks"))
    add_tiny_model(hub, tmp_path_factory.mktemp("tiny-hub"))
    hub.start()
    yield hub
    hub.stop()


LONGEST = ("test_pipeline.py", "test_grid.py", "test_pipeline_hub.py")  # minutes each: end-to-end `dvc repro`


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Run the longest modules first: with `--dist loadfile` each then starts on its own worker at once,
    # instead of one waiting in a worker's queue behind the other (or behind the longest).
    items.sort(key=lambda item: item.path.name not in LONGEST)
