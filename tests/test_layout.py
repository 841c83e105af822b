"""The package's layout: imports point one way, down the layers the README's layout section draws, so the
teaching core (inner loop, meta-steps, the outer loop) never depends on the performance machinery's callers, plots
or widgets; and the core uses no private torch API."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "reptile_edu"
# lowest first; a module may import from lower layers only (or, within data/ and fast/, from its own layer)
LAYERS = [
    {"config"},
    {"models", "tasks", "presets", "results", "callbacks"},
    {"data", "data.sine", "data.cache", "data.download", "data.omniglot", "data.miniimagenet", "data.tieredimagenet",
     "data.standins"},
    {"inner", "checkpoints"},
    {"meta", "evaluation"},
    {"fast", "fast.distributed", "fast.graphs"},
    {"train", "analysis", "manifolds", "costs"},
    {"reference", "runs", "drawing"},
    {"ablations", "plots", "sketchpad"},
    {"report", "widgets"},
    {"cli", "reptile_edu"},
    {"__main__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
CORE = ("inner", "meta", "train", "reference", "models", "tasks", "evaluation")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "reptile_edu"


def imports(path: Path) -> set[str]:
    """The package modules that ``path`` imports (relative or absolute, at top level or inside functions)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" and name != "reptile_edu" else name.split(".")[:-1]
    if name == "reptile_edu":
        package = []
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            target = base + (node.module.split(".") if node.module else [])
            for alias in node.names:  # "from . import meta" names a module; "from .models import stack" does not
                candidate = ".".join(target + [alias.name])
                found.add(candidate if candidate in RANK else ".".join(target))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reptile_edu."):
            found.add(node.module.removeprefix("reptile_edu."))
    return {m for m in found if m}


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    missing = sorted({module_name(p) for p in SOURCES} - set(RANK))
    assert not missing, f"place {missing} in a layer of tests/test_layout.py (and the README's layout section)"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_point_down(path):
    name = module_name(path)
    for target in imports(path):
        same_room = target.split(".")[0] == name.split(".")[0] in ("data", "fast")
        assert RANK[target] < RANK[name] or (RANK[target] == RANK[name] and same_room), \
            f"{name} (layer {RANK[name]}) imports {target} (layer {RANK[target]}): imports must point down"


def test_the_layer_rule_can_fail():
    ranks = {module_name(p): imports(p) for p in SOURCES}
    assert "meta" in ranks["train"] and RANK["train"] > RANK["meta"]  # the rule sees real imports
    assert "fast" in ranks["train"] and "train" not in ranks["fast.graphs"]


@pytest.mark.parametrize("name", CORE)
def test_the_teaching_core_uses_no_private_torch_api(name):
    source = (PACKAGE / f"{name}.py").read_text()
    private = [n.attr for n in ast.walk(ast.parse(source))
               if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "torch"
               and n.attr.startswith("_")]
    assert not private, f"{name}.py calls torch.{private[0]}: the core keeps to public torch"
