"""Repository hygiene: notebooks stripped with a normal kernelspec, Colab badges, one dependency list, test modules
that share helpers only through tests/conftest.py."""
import ast
import json
import re
from pathlib import Path

import pytest

try:
    import tomllib  # Python >= 3.11
except ModuleNotFoundError:  # Python 3.10: the same parser, packaged (the test extras install it there)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REPO_URL = PYPROJECT["project"]["urls"]["Repository"]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _github_path():
    match = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)/?", REPO_URL)
    assert match, f"[project.urls] Repository must be a GitHub URL, got {REPO_URL}"
    return match.group(1)


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_with_a_normal_kernelspec(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name}: a code cell has outputs (strip them)"
            assert cell.get("execution_count") is None, f"{path.name}: a code cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_badge_install_cell_and_runtime_promise(path):
    cells = json.loads(path.read_text())["cells"]
    first = "".join(cells[0]["source"])
    badge = f"https://colab.research.google.com/github/{_github_path()}/blob/main/notebooks/{path.name}"
    assert badge in first, f"{path.name}: first cell must carry the Colab badge {badge}"
    assert "Runtime" in first, f"{path.name}: first cell must state a runtime promise"
    install = "".join(cells[1]["source"])
    assert '"google.colab" in sys.modules' in install and "%pip install" in install
    urls = re.findall(r"colab\.research\.google\.com/github/([^)\s]+)", "".join(
        "".join(c["source"]) for c in cells))
    assert all(u.startswith(_github_path() + "/") for u in urls), urls


def test_readme_badges_use_the_repository_url():
    urls = re.findall(r"colab\.research\.google\.com/github/([^)\s]+)", (ROOT / "README.md").read_text())
    assert urls and all(u.startswith(_github_path() + "/blob/main/notebooks/") for u in urls)
    for u in urls:
        assert (ROOT / "notebooks" / u.rsplit("/", 1)[1]).exists(), f"README links a missing notebook: {u}"


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_runtime_dependencies():
    conda_names = {"pytorch": "torch", "pillow": "pillow"}
    listed = set()
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"\s+-\s+([A-Za-z][\w\-]*)", line)
        if m:
            listed.add(conda_names.get(m.group(1).lower(), m.group(1).lower()))
    runtime = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert runtime <= listed, f"environment.yml misses {runtime - listed}"
    assert "conda-forge" in (ROOT / "environment.yml").read_text()


def test_readme_results_section_is_generated_from_the_results_files():
    from reptile_edu import report

    block = report.readme_block(report.load_results(ROOT / "results"),
                                json.loads((ROOT / "results" / "gpu" / "throughput.json").read_text()))
    assert block in (ROOT / "README.md").read_text(), \
        "README's results section is out of date: run `python -m reptile_edu report --readme README.md`"


def test_readme_section_update_replaces_only_the_generated_block(tmp_path):
    from reptile_edu import report

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_START}\nold\n{report.README_END}\nafter\n")
    block = f"{report.README_START}\nnew\n{report.README_END}"
    assert report.update_readme(readme, block) and readme.read_text() == f"intro\n{block}\nafter\n"
    assert not report.update_readme(readme, block)
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="no generated results section"):
        report.update_readme(readme, block)


OUR_FILES = [*sorted((ROOT / "reptile_edu").rglob("*.py")), *NOTEBOOKS, ROOT / "README.md",
             *sorted((ROOT / "docs").glob("*.md"))]


def test_the_repository_points_at_nothing_outside_it():
    outside = re.compile(r"\.\./shared|shared/data|paper-spec|interfaces\.md")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in OUR_FILES
            for i, line in enumerate(p.read_text().splitlines(), 1) if outside.search(line)]
    assert not hits, hits


def test_every_cited_docs_section_exists():
    headings = {p.name: set(re.findall(r"^##+ (\d+(?:\.\d+)?)\.? ", p.read_text(), re.M))
                for p in (ROOT / "docs").glob("*.md")}
    cited = {(doc, section) for p in OUR_FILES
             for doc, section in re.findall(r"docs/(\w+\.md) §(\d+(?:\.\d+)?)", p.read_text())}
    assert cited, "no docstring cites docs/"
    missing = sorted(f"docs/{doc} §{section}" for doc, section in cited if section not in headings.get(doc, ()))
    assert not missing, missing


def test_every_folder_of_stored_records_is_packaged():
    packaged = {p for p in PYPROJECT["tool"]["setuptools"]["packages"] if p.startswith("reptile_edu.records")}
    folders = {"reptile_edu.records" + "".join(f".{part}" for part in p.relative_to(ROOT / "results").parts)
               for p in (ROOT / "results").rglob("*") if p.is_dir() and "smoke" not in p.parts} | {"reptile_edu.records"}
    assert folders == packaged, f"add {sorted(folders - packaged)} to [tool.setuptools] packages in pyproject.toml"


def _shared_helper_imports(source: str) -> list[str]:
    """What ``source`` imports (at top level or inside functions) that a test module must not: another test
    module (``test_*``, ``tests.test_*``), ``tests.fixtures`` or ``conftest`` (shared helpers are fixtures in
    tests/conftest.py, which pytest provides by argument name)."""
    def bad(name):
        first = name.removeprefix("tests.").split(".")[0]
        return first.startswith("test_") or first in ("fixtures", "conftest")

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if bad(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and bad(node.module):
            found.append(node.module)
        elif isinstance(node, ast.ImportFrom):  # "from tests import test_runs", "from . import test_runs"
            found += [name for alias in node.names if bad(name := f"{node.module or ''}.{alias.name}".lstrip("."))]
    return sorted(set(found))


def test_test_modules_share_helpers_only_through_conftest_fixtures():
    bad = ["from test_runs import tiny_omniglot", "from tests.test_runs import tiny_config", "import test_tasks",
           "from tests import test_tasks", "from tests.fixtures import write_zip", "from tests import fixtures",
           "from . import test_runs", "def f():\n    from conftest import toy"]
    assert all(_shared_helper_imports(source) for source in bad)  # the rule can fail
    assert not _shared_helper_imports("from tests import browser\nfrom reptile_edu import tasks\nimport pytest")
    modules = sorted((ROOT / "tests").glob("test_*.py"))
    assert len(modules) > 1
    offenders = {p.name: found for p in modules if (found := _shared_helper_imports(p.read_text()))}
    assert not offenders, f"{offenders}: make the shared helper a fixture in tests/conftest.py and request it"
