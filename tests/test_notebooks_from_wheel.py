"""The Colab situation: the package built as a wheel and installed into a fresh environment, each notebook run
alone in an empty folder, at smoke scale, with no data root, no checkout beside it and no network.

Every chapter must complete and show its stored results: the strings checked below are built from the records
themselves, so they hold whatever the records say.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RESULTS = ROOT / "results"


def _record(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _cell(record: dict, shots: int, mode: str) -> str:
    e = next(e for e in record["evaluations"] if e["shots"] == shots and e["mode"] == mode)
    return f"{e['accuracy']:.2f} ± {e['ci95']:.2f}"


def expected_strings(name: str) -> list[str]:
    """What each chapter must show from the stored records, read from the checkout's copies of them."""
    if name.startswith("04"):
        five = _record("omniglot-5way-paper.json")
        return [_cell(five, 1, "non-transductive"), _cell(_record("omniglot-20way-paper.json"), 5, "transductive"),
                "stand-in"]
    if name.startswith("05"):
        prov = torch.load(ROOT / "reptile_edu" / "checkpoints" / "miniimagenet-5way-paper.pt",
                          weights_only=True)["provenance"]
        at = [json.loads(p.read_text()) for p in RESULTS.glob("miniimagenet-5way-paper*.json")]
        stored = [_cell(r, 1, "transductive") for r in at if r["meta_iters_run"] == prov["meta_iters_run"]]
        return [f"at {prov['meta_iters_run']:,} of {prov['meta_iters_schedule']:,} meta-iterations",
                _record("gpu/throughput.json")["device"], *stored]
    if name.startswith("06"):
        f = _record("ablations/fig3-laptop-g1+g2+g3+g4.json")["final"]["non-transductive"]
        return [f"{f['accuracy']:5.1f} ± {f['ci95']:.1f}%"]
    if name.startswith("07"):
        return [f"torch {_record('costs/cpu.json')['torch']}", _record("costs/accuracy.json")["note"][:40]]
    if name.startswith("08"):
        curves = sorted(p.stem for p in (RESULTS / "curves").glob("*.json"))
        return [f"{len(list(RESULTS.glob('*.json')))} results files", _cell(_record("omniglot-5way-paper.json"), 5,
                "transductive"), *curves]
    if name.startswith("09"):  # the shipped checkpoints, the example set and the canvas's module came with the wheel
        return ["carried Adam state (t = ", "of 20 test drawings right", "initialisations adapted and asked in"]
    return []


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory):
    """A wheel of this tree installed into a new virtual environment that borrows only the dependencies."""
    work = tmp_path_factory.mktemp("colab")
    tree = work / "tree"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode != 0:
        pytest.skip("needs a git checkout to copy the tree from")
    for rel in filter(None, listed.stdout.decode().split("\0")):
        if (ROOT / rel).is_file():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, tree / rel)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(tree)],
                   check=True, capture_output=True)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    wheel = next((work / "dist").glob("reptile_edu-*.whl"))
    subprocess.run(pip + ["install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True)
    # the dependencies (torch, ipykernel, ...) from this environment; its .pth files, among them an editable
    # install of this checkout, are not processed from a path listed here
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_borrowed_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    home = work / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPTILE_EDU_", "PYTHON", "JUPYTER"))}
    env.update(HOME=str(home), REPTILE_EDU_SMOKE="1", REPTILE_EDU_OFFLINE="1", TQDM_DISABLE="1",
               REPTILE_EDU_DATA=str(home / "no-data"), REPTILE_EDU_CACHE=str(work / "cache"), MPLBACKEND="Agg")
    where = subprocess.run([python, "-c", "import reptile_edu; print(reptile_edu.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(site)), f"reptile_edu imported from {where}, not from the installed wheel"
    return python, env, work


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_alone_from_the_installed_package(fresh_env, path, tmp_path):
    python, env, _ = fresh_env
    folder = tmp_path / "content"  # Colab's working folder: the notebook and nothing else
    folder.mkdir()
    shutil.copy2(path, folder / path.name)
    out = subprocess.run([python, str(ROOT / "tests" / "notebook_runner.py"), path.name], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["error"] is None, result["error"][-3000:]
    shown = "".join(result["cells"])
    print(f"{path.name}: {result['wall_s']} s, {len(result['cells'])} code cells")
    assert "no stored record" not in shown and "cannot be used" not in shown, shown[-2000:]
    for expected in expected_strings(path.name):
        assert expected in shown, f"{path.name} does not show {expected!r}"
    assert sorted(p.name for p in folder.iterdir()) == [path.name], "the notebook wrote into its working folder"
