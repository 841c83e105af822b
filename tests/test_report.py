"""The reproduction report: reads only validated results files, says what a missing cell needs, fails loudly."""
import json

import pytest

from reptile_edu import checkpoints, report

RECORD = {"preset": "omniglot-5way", "algorithm": "reptile", "path": "vectorised", "meta_iters_run": 3000,
          "meta_iters_schedule": 3000, "train_wall_s": 1.0, "device": "cpu", "torch": "2", "commit": "abc",
          "seed": 0, "checkpoint": "x.pt", "split": "test",
          "evaluations": [{"ways": 5, "shots": 1, "mode": "transductive", "tasks": 100, "accuracy": 90.0,
                           "ci95": 1.0, "eval_seed": 0, "eval_batch": 5, "eval_wall_s": 1.0}]}


def _write(path, record):
    path.write_text(json.dumps(record))
    return path


def test_cells_come_from_results_files_and_missing_ones_say_what_they_need(tmp_path):
    _write(tmp_path / "a.json", RECORD)
    longer = json.loads(json.dumps(RECORD))
    longer["meta_iters_run"] = longer["meta_iters_schedule"] = 10_000
    longer["evaluations"][0]["accuracy"] = 93.5
    _write(tmp_path / "b.json", longer)
    (tmp_path / "costs").mkdir()  # sub-folders hold other studies and are not read
    _write(tmp_path / "costs" / "c.json", {"not": "a results record"})
    table = report.comparison(report.load_results(tmp_path))["Table 2: Omniglot"]
    cell = next(r for r in table if r["row"] == "Reptile + Transduction" and r["column"] == "1-shot 5-way")
    assert cell["ours"] == "93.50 ± 1.00" and cell["file"] == "b.json"  # the longest schedule wins
    assert cell["paper"] == "97.68 ± 0.04" and cell["diff"] == "-4.18"
    others = [r for r in table if r is not cell]
    assert others and all(r["ours"].startswith("not run: needs ") for r in others)
    assert "not run: needs a MAML run of omniglot-5way" in report.markdown(table, ["row", "ours"])


def test_every_recorded_cell_is_present_once_with_its_source():
    rows = report.comparison({})
    assert len(rows["Table 1: Mini-ImageNet 5-way"]) == 4 * 2 and len(rows["Table 2: Omniglot"]) == 4 * 4
    assert len(rows["TPN (2019): Mini-ImageNet 10-way"]) == 2 * 2 and len(rows["TPN (2019): tieredImageNet"]) == 2 * 4
    assert all(r["ours"].startswith(report.NOT_RUN + ": needs ") for t in rows.values() for r in t)
    tpn = rows["TPN (2019): Mini-ImageNet 10-way"]
    assert {r["origin"] for r in tpn} == {"TPN (2019)"} and tpn[0]["paper"] == "31.10"  # TPN gives no CIs
    assert {r["origin"] for r in rows["Table 2: Omniglot"]} == {"this paper", "MAML paper"}


def test_a_ten_way_results_file_fills_tpns_cell(tmp_path):
    record = json.loads(json.dumps(RECORD))
    record.update(preset="miniimagenet-10way", meta_iters_run=1000, meta_iters_schedule=1000)
    record["evaluations"][0].update(ways=10, mode="non-transductive", accuracy=25.5)
    cell = next(r for r in report.comparison({"m10.json": record})["TPN (2019): Mini-ImageNet 10-way"]
                if r["row"] == "Reptile" and r["column"] == "1-shot")
    assert cell["ours"] == "25.50 ± 1.00" and cell["diff"] == "-5.60" and cell["schedule"] == "1,000 of 100,000 meta-iters"


def test_a_run_of_several_seeds_shows_its_spread_across_them(tmp_path):
    record = json.loads(json.dumps(RECORD))
    record["seed"] = [0, 1, 2]
    record["evaluations"][0].update(accuracy=91.0, seed_std=0.5, per_seed=[
        {"seed": s, "accuracy": a, "ci95": 1.0} for s, a in ((0, 90.5), (1, 91.0), (2, 91.5))])
    cell = next(r for r in report.comparison(report.load_results(_write(tmp_path / "s.json", record).parent))
                ["Table 2: Omniglot"] if r["row"] == "Reptile + Transduction" and r["column"] == "1-shot 5-way")
    assert cell["ours"] == "91.00 ± 1.00 (sd 0.50 over 3 seeds)"


@pytest.mark.parametrize("content, message", [("{not json", "not valid JSON"),
                                              (json.dumps({"preset": "omniglot-5way"}), "missing keys")])
def test_malformed_results_file_fails_naming_it(tmp_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        report.load_results(tmp_path)
    assert "bad.json" in str(info.value)


def test_missing_results_folder_or_checkpoint_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="reptile_edu eval"):
        report.load_results(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="export"):
        checkpoints.load_shipped(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoints.CheckpointError):
        checkpoints.load_shipped(tmp_path / "junk.pt")


def test_transduction_gain_is_read_from_one_run_beside_the_papers():
    record = json.loads(json.dumps(RECORD))
    record["evaluations"].append({**record["evaluations"][0], "mode": "non-transductive", "accuracy": 87.25})
    rows = report.transduction_gains({"a.json": record, "0-one-mode.json": RECORD})
    cell = next(r for r in rows if r["column"] == "1-shot 5-way")
    assert cell["paper"] == "+2.29" and cell["ours"] == "+2.75" and cell["file"] == "a.json"
    assert len(rows) == 2 + 4 + 2 + 4 and all(r["ours"].startswith(report.NOT_RUN) for r in rows if r is not cell)


def test_stored_records_fall_back_with_one_note_and_the_cell_goes_on(tmp_path, monkeypatch, capsys):
    from reptile_edu import results

    _write(tmp_path / "good.json", RECORD)
    (tmp_path / "corrupt.json").write_text("{not json")
    _write(tmp_path / "other.json", {"preset": "omniglot-5way"})  # another schema
    monkeypatch.setattr(results, "stored_dirs", lambda: [tmp_path])
    assert list(report.stored_results()) == ["good.json"]
    notes = capsys.readouterr().out.splitlines()
    assert len(notes) == 2 and all(n.startswith("note: the stored record") for n in notes)
    assert "corrupt.json" in notes[0] and "other.json" in notes[1] and "missing keys" in notes[1]
    assert results.stored("nowhere.json") is None and "no stored record 'nowhere.json'" in capsys.readouterr().out
    monkeypatch.setattr(results, "stored_dirs", lambda: [])
    assert report.stored_results() == {} and "no stored record" in capsys.readouterr().out


def test_the_checkout_is_looked_in_before_the_installed_copy(tmp_path, monkeypatch):
    from reptile_edu import results

    checkout, installed = tmp_path / "checkout", tmp_path / "installed"
    for folder in (checkout, installed):
        (folder / "gpu").mkdir(parents=True)
    (installed / "gpu" / "throughput.json").write_text('{"where": "installed"}')
    (installed / "only.json").write_text("{}")
    monkeypatch.setattr(results, "stored_dirs", lambda: [checkout, installed])
    assert results.find("gpu/throughput.json") == installed / "gpu" / "throughput.json"
    (checkout / "gpu" / "throughput.json").write_text('{"where": "checkout"}')
    assert results.stored("gpu/throughput.json") == {"where": "checkout"}
    assert results.find("only.json") == installed / "only.json" and results.find("missing") is None


def test_a_shipped_checkpoint_s_rows_stand_beside_chance_and_the_paper():
    record = json.loads(json.dumps(RECORD))
    record.update(preset="miniimagenet-5way", checkpoint="reptile_edu/checkpoints/mini.pt", meta_iters_run=19_100)
    record["evaluations"].append({**record["evaluations"][0], "shots": 5, "mode": "non-transductive"})
    records = {"mini-at-19100.json": record, "other.json": RECORD}
    rows = report.checkpoint_rows(records, "mini", 19_100)
    assert [(r["shots"], r["mode"], r["paper"], r["chance"]) for r in rows] == [
        (1, "transductive", "49.97 ± 0.32", "20"), (5, "non-transductive", "62.74 ± 0.37", "20")]
    assert report.checkpoint_rows(records, "mini", 100_000) == []
