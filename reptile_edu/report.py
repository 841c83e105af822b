"""The reproduction report: the paper's Tables 1 and 2, and the later Reptile rows, beside our results files.

The paper's numbers are typed once, here, as the reference (docs/paper.md). Ours are never typed: they
are read from ``results/*.json`` (written by ``python -m reptile_edu eval``), validated, and matched to a paper
cell by (preset, algorithm, shots, mode). A cell with no results file says "not run: needs ..." (what it needs).
Rows recorded by later work with the official code (TPN's Mini-ImageNet 10-way and tieredImageNet runs) are listed
the same way, labelled with their source.
"""
from __future__ import annotations

from pathlib import Path

from . import presets
from .results import find, read_results, stored

# (algorithm, evaluation mode) of each paper row; the MAML-paper rows are all transductive (docs/paper.md).
ROWS = {"MAML + Transduction": ("maml", "transductive"),
        "1st-order MAML + Transduction": ("fomaml", "transductive"),
        "Reptile": ("reptile", "non-transductive"),
        "Reptile + Transduction": ("reptile", "transductive")}
# Columns: (preset, shots). Cells: (accuracy %, ± % or None where the source gives none).
TABLES = {
    "Table 1: Mini-ImageNet 5-way": {
        "columns": {"1-shot": ("miniimagenet-5way", 1), "5-shot": ("miniimagenet-5way", 5)},
        "paper": {"MAML + Transduction": [(48.70, 1.84), (63.11, 0.92)],
                  "1st-order MAML + Transduction": [(48.07, 1.75), (63.15, 0.91)],
                  "Reptile": [(47.07, 0.26), (62.74, 0.37)],
                  "Reptile + Transduction": [(49.97, 0.32), (65.99, 0.58)]}},
    "Table 2: Omniglot": {
        "columns": {"1-shot 5-way": ("omniglot-5way", 1), "5-shot 5-way": ("omniglot-5way", 5),
                    "1-shot 20-way": ("omniglot-20way", 1), "5-shot 20-way": ("omniglot-20way", 5)},
        "paper": {"MAML + Transduction": [(98.7, 0.4), (99.9, 0.1), (95.8, 0.3), (98.9, 0.2)],
                  "1st-order MAML + Transduction": [(98.3, 0.5), (99.2, 0.2), (89.4, 0.5), (97.9, 0.1)],
                  "Reptile": [(95.39, 0.09), (98.90, 0.10), (88.14, 0.15), (96.65, 0.33)],
                  "Reptile + Transduction": [(97.68, 0.04), (99.48, 0.06), (89.43, 0.14), (97.12, 0.32)]}},
    # Not in the paper: Reptile with the official code, run by Liu et al., "Learning to Propagate Labels:
    # Transductive Propagation Network for Few-shot Learning" (ICLR 2019), Tables 1-2, over 600 test episodes
    # and without CIs; their "BN" rows share batch statistics, which is our transduction.
    "TPN (2019): Mini-ImageNet 10-way": {
        "columns": {"1-shot": ("miniimagenet-10way", 1), "5-shot": ("miniimagenet-10way", 5)},
        "paper": {"Reptile": [(31.10, None), (44.66, None)], "Reptile + Transduction": [(32.00, None), (47.60, None)]}},
    "TPN (2019): tieredImageNet": {
        "columns": {"1-shot 5-way": ("tieredimagenet-5way", 1), "5-shot 5-way": ("tieredimagenet-5way", 5),
                    "1-shot 10-way": ("tieredimagenet-10way", 1), "5-shot 10-way": ("tieredimagenet-10way", 5)},
        "paper": {"Reptile": [(48.97, None), (66.47, None), (33.67, None), (48.04, None)],
                  "Reptile + Transduction": [(52.36, None), (71.03, None), (35.32, None), (51.98, None)]}},
}
# Where a row's numbers come from, when not from the paper (or the table's own source).
ORIGIN = {"MAML + Transduction": "MAML paper", "1st-order MAML + Transduction": "MAML paper"}
TABLE_ORIGIN = {"TPN (2019): Mini-ImageNet 10-way": "TPN (2019)", "TPN (2019): tieredImageNet": "TPN (2019)"}
NOT_RUN = "not run"
# What a missing cell needs, per preset (the Reptile rows) and for the MAML-paper rows.
NEEDS = {"omniglot-5way": "an eval of the shipped checkpoint", "omniglot-20way": "an eval of the shipped checkpoint",
         "miniimagenet-5way": "the paper schedule's GPU run to finish",
         "miniimagenet-10way": "a GPU run of 100,000 meta-iterations",
         "tieredimagenet-5way": "the tieredImageNet data and a GPU run",
         "tieredimagenet-10way": "the tieredImageNet data and a GPU run"}


def paper_cell(accuracy: float, ci: float | None) -> str:
    """A published cell as text; a source without a CI shows the accuracy alone."""
    return f"{accuracy:.2f}" if ci is None else f"{accuracy:.2f} ± {ci:.2f}"


def ours_cell(evaluation: dict) -> str:
    """Our cell as text: accuracy ± task-level CI; for a run of several seeds, the mean over seeds with the
    standard deviation across them."""
    text = f"{evaluation['accuracy']:.2f} ± {evaluation['ci95']:.2f}"
    if "per_seed" in evaluation:
        text += f" (sd {evaluation['seed_std']:.2f} over {len(evaluation['per_seed'])} seeds)"
    return text


def not_run(preset: str, algorithm: str) -> str:
    """What an empty cell says: "not run: needs ..."."""
    if algorithm in ("maml", "fomaml"):
        return f"{NOT_RUN}: needs a {'first-order ' * (algorithm == 'fomaml')}MAML run of {preset}"
    return f"{NOT_RUN}: needs {NEEDS.get(preset, 'a run of ' + preset)}"


def load_results(results_dir="results") -> dict[str, dict]:
    """Every ``*.json`` directly in ``results_dir`` (sub-folders hold other studies), validated.

    A malformed file is an error naming it (never silently skipped: a report that drops a run misleads).
    """
    folder = Path(results_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"no results folder at {folder}: run `python -m reptile_edu eval ... --results "
                                f"{folder}/NAME.json` first")
    return {p.name: read_results(p) for p in sorted(folder.glob("*.json"))}


def stored_results() -> dict[str, dict]:
    """The stored results files the chapters show (``results.find``), each through ``results.stored``: a
    missing folder, or a file that is corrupt or of another schema, is one printed note and left out."""
    folder = find("")
    if folder is None:
        stored("")  # prints the note
        return {}
    records = {p.name: stored(p.name, read_results) for p in sorted(folder.glob("*.json"))}
    return {name: rec for name, rec in records.items() if rec is not None}


def _best(records: dict[str, dict], preset: str, algorithm: str, shots: int, mode: str):
    """Our result for one paper cell: the longest schedule run, then the most tasks, then the file name."""
    found = [(rec["meta_iters_run"], e["tasks"], name, rec, e) for name, rec in records.items()
             if rec["preset"] == preset and rec["algorithm"] == algorithm
             for e in rec["evaluations"] if e["shots"] == shots and e["mode"] == mode]
    if not found:
        return None
    _, _, name, rec, e = max(found, key=lambda f: (f[0], f[1], f[2]))
    return name, rec, e


def comparison(records: dict[str, dict]) -> dict[str, list[dict]]:
    """Per table, one row per (published row, column): the published cell, where it comes from, and ours (or
    "not run: needs ...")."""
    out = {}
    for title, table in TABLES.items():
        rows = []
        for row, cells in table["paper"].items():
            algorithm, mode = ROWS[row]
            for (column, (preset, shots)), (acc, ci) in zip(table["columns"].items(), cells):
                hit = _best(records, preset, algorithm, shots, mode)
                entry = {"row": row, "column": column, "paper": paper_cell(acc, ci),
                         "origin": ORIGIN.get(row, TABLE_ORIGIN.get(title, "this paper")),
                         "ours": not_run(preset, algorithm), "schedule": "", "device": "", "tasks": "", "file": ""}
                if hit:
                    name, rec, e = hit
                    paper_iters = presets.PAPER[preset]["meta_iters"]
                    entry.update(ours=ours_cell(e), device=rec["device"],
                                 schedule=f"{rec['meta_iters_run']:,} of {paper_iters:,} meta-iters",
                                 tasks=f"{e['tasks']:,}", file=name, diff=f"{e['accuracy'] - acc:+.2f}")
                rows.append(entry)
        out[title] = rows
    return out


def transduction_gains(records: dict[str, dict]) -> list[dict]:
    """Per column of each table, Reptile's gain from transduction (transductive minus non-transductive, in
    points), the paper's beside ours; ours from one run file, so both modes share its adapted weights."""
    rows = []
    for title, table in TABLES.items():
        for i, (column, (preset, shots)) in enumerate(table["columns"].items()):
            plain_acc, trans_acc = table["paper"]["Reptile"][i][0], table["paper"]["Reptile + Transduction"][i][0]
            entry = {"table": title, "column": column, "paper": f"{trans_acc - plain_acc:+.2f}",
                     "ours": not_run(preset, "reptile"), "file": ""}
            hit = _best(records, preset, "reptile", shots, "transductive")
            if hit:
                name, rec, trans = hit
                plain = [e for e in rec["evaluations"] if e["shots"] == shots and e["mode"] == "non-transductive"
                         and e["tasks"] == trans["tasks"]]
                if plain:
                    entry.update(ours=f"{trans['accuracy'] - plain[0]['accuracy']:+.2f}", file=name)
            rows.append(entry)
    return rows


def checkpoint_rows(records: dict[str, dict], checkpoint: str, meta_iters_run: int) -> list[dict]:
    """The stored evaluations of one shipped checkpoint (its name) at ``meta_iters_run`` meta-iterations, each
    beside chance and the paper's Reptile cell of the same preset, shots and mode (if the paper has one)."""
    rows = []
    for name, rec in records.items():
        if Path(rec["checkpoint"]).stem != checkpoint or rec["meta_iters_run"] != meta_iters_run:
            continue
        for e in rec["evaluations"]:
            paper = ""
            for table in TABLES.values():
                for i, (preset, shots) in enumerate(table["columns"].values()):
                    if (preset, shots) == (rec["preset"], e["shots"]):
                        row = "Reptile + Transduction" if e["mode"] == "transductive" else "Reptile"
                        paper = paper_cell(*table["paper"][row][i])
            rows.append({"shots": e["shots"], "mode": e["mode"], "ours": f"{e['accuracy']:.2f} ± {e['ci95']:.2f}",
                         "tasks": f"{e['tasks']:,}", "chance": f"{100 / e['ways']:.0f}", "paper": paper,
                         "file": name})
    return rows


def runs_table(records: dict[str, dict]) -> list[dict]:
    """Every evaluation of every results file, flat (also the runs no paper cell shows, e.g. joint training)."""
    return [{"file": name, "preset": rec["preset"], "algorithm": rec["algorithm"],
             "meta_iters": f"{rec['meta_iters_run']:,}/{rec['meta_iters_schedule']:,}",
             "train_wall_s": rec["train_wall_s"], "device": rec["device"], "shots": e["shots"], "mode": e["mode"],
             "tasks": e["tasks"], "accuracy": f"{e['accuracy']:.2f} ± {e['ci95']:.2f}", "commit": rec["commit"]}
            for name, rec in records.items() for e in rec["evaluations"]]


def markdown(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of ``rows`` (dicts) restricted to ``columns``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


# --- the README's results section, generated ---------------------------------------------------------------

README_START = ("<!-- results: generated by `python -m reptile_edu report --readme README.md` from results/; "
                "do not edit -->")
README_END = "<!-- end of generated results -->"
THROUGHPUT_PATHS = (("loop", "naive"), ("vectorised, eager", "vectorised"), ("CUDA graph, deterministic", "graphed"),
                    ("CUDA graph (default)", "graphed_autotune"))


def readme_block(records: dict[str, dict], throughput: dict | None) -> str:
    """The README's results: every recorded Reptile row (Tables 1 and 2, TPN's) beside ours, and the GPU
    throughput record."""
    parts = [README_START]
    for title, rows in comparison(records).items():
        ours = [r for r in rows if r["row"].startswith("Reptile")]
        source = "" if title.startswith("Table") else f"; published by {TABLE_ORIGIN[title]}, without CIs"
        parts.append(f"**{title}** (accuracy in %, ± 95% CI; ours on fixed-seed test tasks{source})\n\n"
                     + markdown(ours, ["row", "column", "paper", "ours", "diff", "schedule", "tasks", "device"]))
    if throughput is not None:
        rows = [{"preset": r["preset"],
                 **{name: f"{r[key + '_it_s']:.1f}" for name, key in THROUGHPUT_PATHS},
                 "paper schedule (default path)": f"{r['meta_iters']:,} it: {r['graphed_autotune_train_min']:.1f} min",
                 "eval tasks/s: loop → vectorised":
                     f"{r['naive_eval_tasks_s']:.1f} → {r['vectorised_eval_tasks_s']:.0f}"}
                for r in throughput["rows"]]
        parts.append(f"**Training speed on a GPU** (meta-iterations per second, meta-batch 5, official settings; "
                     f"{throughput['device']}, torch {throughput['torch']}; `{throughput['command']}`)\n\n"
                     + markdown(rows, list(rows[0])))
    parts.append(README_END)
    return "\n\n".join(parts)


def update_readme(path, block: str) -> bool:
    """Replace the generated section of the README at ``path`` by ``block``; True if it changed."""
    path = Path(path)
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{path} has no generated results section (a line {README_START!r} ... {README_END!r})")
    new = text[:start] + block + text[end + len(README_END):]
    path.write_text(new)
    return new != text


def readme_figures(folder, curves: dict[str, dict], fig4: dict[str, dict]) -> list[str]:
    """The README's figures from stored records: the paper runs' training curves and Figure 4's grid."""
    from matplotlib.figure import Figure  # no pyplot, so no backend is chosen for the caller

    from . import ablations, plots

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    fig = Figure(figsize=(5.2 * len(curves), 3.6), layout="constrained")
    for ax, curve in zip(fig.subplots(1, len(curves), squeeze=False)[0], curves.values()):
        plots.training_curve(ax, curve)
    fig.savefig(folder / "training-curves.png", dpi=90)
    written.append(str(folder / "training-curves.png"))
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    plots.accuracy_vs_setting(axes[0], fig4, "inner_iters", {"inner_batch_size": 10}, legend=False)
    plots.accuracy_vs_setting(axes[1], fig4, "inner_batch_size", {"inner_iters": ablations.FIG4_BATCH_K["laptop"]})
    axes[0].set_title("(a) inner batch 10, k varied")
    axes[1].set_title(f"(b) k = {ablations.FIG4_BATCH_K['laptop']}, inner batch varied")
    fig.suptitle("Figure 4 (CPU grid): FOMAML needs a fresh last minibatch, Reptile does not")
    fig.savefig(folder / "figure4.png", dpi=90)
    written.append(str(folder / "figure4.png"))
    return written
