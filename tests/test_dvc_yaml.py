"""dvc.yaml follows the project's rules: code deps from imports, one vocabulary, one block per family."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from instmix.core import vocab
from tests.conftest import REPO

DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())  # PyYAML resolves the `<<` merges
STAGE_MODULE = re.compile(r"-m stages\.(\w+)")


def imported_modules(path: Path) -> set[str]:
    """instmix modules a file imports anywhere (also inside functions), as dotted names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("instmix")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("instmix"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from instmix.x import module`
    return {m for m in found if module_file(m) is not None}


def module_file(module: str) -> Path | None:
    base = REPO / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def subpackages(entry: Path) -> set[str]:
    """instmix/<subpackage> directories that `entry` needs, following imports transitively."""
    seen: set[str] = set()
    todo = list(imported_modules(entry))
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += imported_modules(module_file(module))  # type: ignore[arg-type]
    return {"/".join(m.split(".")[:2]) for m in seen if m.count(".") >= 1}


def stage_blocks() -> dict[str, dict]:
    return {name: stage.get("do", stage) for name, stage in DVC_YAML["stages"].items()}


def test_code_deps_are_the_entry_module_and_the_subpackages_it_imports() -> None:
    checked = 0
    for name, block in stage_blocks().items():
        match = STAGE_MODULE.search(block["cmd"])
        assert match, f"{name}: no `-m stages.<module>` in its cmd"
        entry = REPO / "stages" / f"{match.group(1)}.py"
        assert entry.is_file(), f"{name}: {entry} is missing"
        code_deps = {d for d in block["deps"] if d.startswith(("stages/", "instmix"))}
        assert code_deps == {f"stages/{entry.name}", *subpackages(entry)}, name
        checked += 1
    assert checked == len(DVC_YAML["stages"])


def test_each_family_command_is_written_once() -> None:
    text = (REPO / "dvc.yaml").read_text()
    for module in {STAGE_MODULE.search(b["cmd"]).group(1) for b in stage_blocks().values()}:  # type: ignore[union-attr]
        assert text.count(f"-m stages.{module} ") == 1, module


def test_model_groups_are_matrices_keyed_by_model_id() -> None:
    stages = DVC_YAML["stages"]
    for family in ("sft", "eval_nlp", "eval_code", "eval_align", "judge"):
        assert stages[family]["matrix"] == {"setting": "${settings}", "seed": "${seeds}"}, family
        assert stages[f"{family}_sweep"]["matrix"] == {"setting": "${mix.sweep}", "seed": "${seeds}"}, family
        if family != "sft":
            assert stages[f"{family}_base"]["matrix"] == {"model": [vocab.BASE]}, family
            model = "reports/eval/align/${key}/answers.jsonl" if family == "judge" else "models/${key}"
            assert model in stages[family]["deps"], family


def test_dvc_yaml_vocabulary_is_the_library_vocabulary() -> None:
    variables = {k: v for entry in DVC_YAML["vars"] for k, v in entry.items()}
    assert tuple(variables["sources"]) == vocab.SOURCES
    assert tuple(yaml.safe_load((REPO / "params.yaml").read_text())["settings"]) == vocab.TABLE_SETTINGS  # the demo
    for profile in ("local", "paper", "paper-13b"):
        assert tuple(yaml.safe_load((REPO / f"profiles/{profile}.yaml").read_text())["settings"]) == vocab.SETTINGS
    assert tuple(variables["mixes"]) == vocab.SETTINGS
    knobs = {"ratio": "mix.ratio", "count": "mix.per_type"}
    assert variables["mixes"] == {s: knobs.get(s, "mix.seed") for s in vocab.SETTINGS}


VOCABULARY = {
    "sources": set(vocab.SOURCES),
    "settings": set(vocab.SETTINGS),
    "table settings": set(vocab.TABLE_SETTINGS),
    "tasks": set(vocab.TASKS),
    "skills": set(vocab.SKILLS),
}


def declared_lists(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every literal collection of strings in `path` that spells out a vocabulary list."""
    hits = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        else:
            continue
        strings = {e.value for e in items if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        if len(strings) == len(items) and len(strings) >= 3:
            hits += [(node.lineno, name) for name, words in VOCABULARY.items() if strings == words]
    return hits


def test_only_the_vocabulary_module_declares_the_lists() -> None:
    files = sorted((REPO / "instmix").rglob("*.py")) + sorted((REPO / "stages").glob("*.py"))
    offenders = {
        str(f.relative_to(REPO)): hits
        for f in files
        if f != REPO / "instmix" / "core" / "vocab.py" and (hits := declared_lists(f))
    }
    assert offenders == {}
    assert declared_lists(REPO / "instmix" / "core" / "vocab.py")  # the check sees a declaration


def test_library_never_imports_stages_or_dvc() -> None:
    for path in (REPO / "instmix").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            assert not [n for n in names if n.split(".")[0] in ("stages", "dvc", "dvclive")], path


def test_no_module_is_over_400_lines() -> None:
    files = [*(REPO / "instmix").rglob("*.py"), *(REPO / "stages").glob("*.py"), *(REPO / "tests").glob("*.py")]
    assert {f.name: n for f in files if (n := len(f.read_text().splitlines())) > 400} == {}
