"""`grids explain/show/runs` end to end on the small bundle, and every listed bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat

import pandas as pd
import pytest
import torch

from grids_core.cli import main
from grids_core.explain.gene import ExplainRequest
from grids_core.jobs import run_explanation
from grids_core.settings import Settings


def test_explain_stores_prints_and_exports(small_bundle_dir, tmp_path, capsys):
    args = ["explain", "--bundle", str(small_bundle_dir), "--gene", "GAD1", "--cell-type", "VIP", "-L", "6", "--seed", "1"]
    exports = [str(tmp_path / f"l.{e}") for e in ("tsv", "csv", "bedpe", "interact")]
    assert main([*args, "--export", *exports]) == 0
    out = capsys.readouterr().out
    assert "GAD1 in VIP" in out and "held-out" in out and "planted truth" in out
    locality = next(line for line in out.splitlines() if line.startswith("locality: "))
    assert "inside the gene's TAD, simulated" in locality and "inside the gene's TAD, GM12878" in locality
    tsv = pd.read_csv(exports[0], sep="\t")
    assert len(tsv) == 6 and tsv["rank"].tolist() == list(range(1, 7)) and set(tsv["gene"]) == {"GAD1"}
    assert pd.read_csv(exports[1])["peak"].tolist() == tsv["peak"].tolist()
    assert len(pd.read_csv(exports[2], sep="\t")) == 6
    assert len(open(exports[3]).read().splitlines()) == 7  # track line + 6 links
    # a second call returns the stored result
    assert main(args) == 0
    assert "stored result" in capsys.readouterr().out
    assert main(["runs", "--bundle", str(small_bundle_dir), "--gene", "GAD1"]) == 0
    run_id = capsys.readouterr().out.splitlines()[1].split()[0]
    assert main(["show", "--bundle", str(small_bundle_dir), run_id[:8]]) == 0
    assert "GAD1 in VIP" in capsys.readouterr().out


def test_explain_is_deterministic_for_a_seed(small_bundle_dir):
    s = Settings(bundle_dir=small_bundle_dir)
    r1, _ = run_explanation(s, ExplainRequest("GAD2", "SST", L=5, seed=3), force=True)
    r2, _ = run_explanation(s, ExplainRequest("GAD2", "SST", L=5, seed=3), force=True)
    assert r1.subset == r2.subset and r1.run_id == r2.run_id
    assert r1.trajectory == sorted(r1.trajectory, reverse=True)  # monotone best-so-far
    assert len(set(r1.subset)) == 5


def test_bf16_ranking_keeps_the_subset_and_its_own_run_key(small_bundle_dir, one_thread):
    """The surrogate's stage 2 under bf16 autocast: same subset and exact (float32) J; a separate stored run."""
    s = Settings(bundle_dir=small_bundle_dir)
    r32, _ = run_explanation(s, ExplainRequest("GAD1", "VIP", L=6, seed=2), force=True)
    r16, _ = run_explanation(s, ExplainRequest("GAD1", "VIP", L=6, seed=2, precision="bf16"), force=True)
    assert sorted(r16.subset) == sorted(r32.subset)
    assert r16.objective == pytest.approx(r32.objective, abs=1e-6)
    assert r16.run_id != r32.run_id and r16.settings["precision"] == "bf16"
    assert "precision" not in r32.settings  # the default keeps the keys of runs stored before the option
    baseline = ExplainRequest("GAD1", "VIP", method="saliency", precision="bf16")
    assert baseline.precision == "fp32" and baseline.settings() == ExplainRequest("GAD1", "VIP", method="saliency").settings()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--gene", "GAD3", "--cell-type", "VIP"], "Did you mean: GAD"),
        (["--gene", "GAD1", "--cell-type", "VIPP"], "Did you mean: VIP"),
        (["--gene", "GAD1", "--cell-type", "VIP", "-L", "100000"], "exceeds the candidate pool"),
        (["--gene", "GAD1", "--cell-type", "VIP", "-L", "0"], "at least 1"),
        (["--gene", "GAD1", "--cell-type", "VIP", "--method", "magic"], "Unknown method"),
        (["--gene", "GAD1", "--cell-type", "VIP", "--precision", "bf16", "--faithful"], "Drop --faithful or --precision"),
        (["--gene", "GAD1", "--cell-type", "VIP", "--device", "gpu"], "use 'cpu', 'cuda' or 'cuda:N'"),
        (["--gene", "GAD1", "--cell-type", "VIP", "--seed", "-1"], "seed must be an integer from 0"),
        (["--gene", "GAD1", "--cell-type", "VIP", "--seed", str(2**64)], "seed must be an integer from 0"),
        (["--gene", "GAD1", "--cell-type", "VIP", "--beta", "nan"], "β (beta, the specificity weight) must be a number from 0 to 100"),
        (["--gene", "GAD1", "--cell-type", "VIP", "--beta", "inf"], "β (beta, the specificity weight) must be a number from 0 to 100"),
        (["--gene", "GAD1", "--cell-type", "VIP", "--export", "links.xlsx"], "Cannot tell the export format"),
    ],
)
def test_bad_inputs_give_clear_errors(small_bundle_dir, capsys, extra, message):
    assert main(["explain", "--bundle", str(small_bundle_dir), *extra]) == 2
    assert message in capsys.readouterr().err


def test_too_few_cells_and_model_mismatch(small_bundle_dir, small_sim, tmp_path, capsys):
    from grids_core import bundle as bundle_io

    # a bundle where one type has almost no training cells
    b, _ = small_sim
    cells = b.cells.copy()
    endo = cells.index[cells["cell_type"] == "Endo"]
    cells.loc[endo[5:], "split"] = "test"
    b2 = bundle_io.Bundle(b.atac, b.rna, cells, b.peaks, b.genes, b.exons, tads=b.tads, hic=b.hic, truth=b.truth,
                          manifest={**b.manifest})
    b2.manifest.pop("bundle_id", None)
    out = tmp_path / "few"
    bundle_io.save(b2, out)
    # the small bundle's model belongs to another bundle id: mismatch
    (out / "models").mkdir()
    shutil.copy(small_bundle_dir / "models" / "default.pt", out / "models" / "default.pt")
    assert main(["explain", "--bundle", str(out), "--gene", "CLDN5", "--cell-type", "Endo"]) == 2
    assert "was not trained on bundle" in capsys.readouterr().err
    # with a matching model, the too-few-cells check speaks
    from grids_core.train import TrainConfig, save_model, train

    tm = train(bundle_io.load(out), TrainConfig(steps_atac=2, steps_rna=2, steps_maps=2, steps_paired=2))
    save_model(tm, out / "models" / "default.pt")
    assert main(["explain", "--bundle", str(out), "--gene", "CLDN5", "--cell-type", "Endo"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"Endo has only [0-5] training cells \(need >= 10\)", err), err


def test_outputs_and_stored_runs_fail_cleanly(small_bundle_dir, tmp_path, capsys):
    """Unwritable outputs are refused before any work; reading runs needs neither the model nor a new file."""
    from grids_core.store import ResultStore

    bdir = str(small_bundle_dir)
    n_runs = len(ResultStore(small_bundle_dir / "results.sqlite").list())
    explain = ["explain", "--bundle", bdir, "--gene", "GAD2", "--cell-type", "SST", "-L", "4", "--seed", "11"]
    assert main([*explain, "--export", str(tmp_path / "missing" / "x.tsv")]) == 2
    assert "does not exist. Create it first" in capsys.readouterr().err and not (tmp_path / "missing").exists()
    (tmp_path / "d.tsv").mkdir()
    assert main([*explain, "--export", str(tmp_path / "d.tsv")]) == 2
    assert "it is a directory" in capsys.readouterr().err
    assert main(["compare", "--bundle", bdir, "--gene", "GAD2", "--cell-type", "SST", "--methods", "random,gird"]) == 2
    assert "Unknown method(s) gird" in capsys.readouterr().err
    assert len(ResultStore(small_bundle_dir / "results.sqlite").list()) == n_runs  # nothing ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.tsv"]  # and no temp file was left behind

    old = os.umask(0o022)
    try:
        assert main([*explain, "--export", str(tmp_path / "x.tsv")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.tsv").stat().st_mode) == 0o644  # not mkstemp's 0600
    capsys.readouterr()

    # a copy of the bundle without its model still shows, lists and exports stored runs
    nomodel = tmp_path / "nomodel"
    shutil.copytree(small_bundle_dir, nomodel, ignore=shutil.ignore_patterns("models"))
    assert main(["runs", "--bundle", str(nomodel), "--gene", "gad2", "--cell-type", "sst"]) == 0
    listed = capsys.readouterr().out
    assert "GAD2" in listed and "SST" in listed
    run_id = ResultStore(nomodel / "results.sqlite").list(gene="GAD2")[0]["run_id"]
    assert main(["show", "--bundle", str(nomodel), run_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert shown["run_id"] == run_id
    assert main(["show", "--bundle", str(nomodel), ""]) == 2
    assert "Give a run id" in capsys.readouterr().err
    assert main(["runs", "--bundle", str(tmp_path / "nope")]) == 2
    assert "No bundle at" in capsys.readouterr().err and not (tmp_path / "nope").exists()
    (nomodel / "manifest.json").write_text("[]")
    assert main(["info", "--bundle", str(nomodel)]) == 2
    assert "not a bundle manifest" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["simulate", "--out", str(tmp_path / "afile" / "b"), "--cells", "200", "--peaks", "1000"]) == 2
    assert "Cannot write a bundle in" in capsys.readouterr().err


def test_missing_bundle_is_explained(tmp_path, capsys):
    assert main(["explain", "--bundle", str(tmp_path / "nope"), "--gene", "GAD1", "--cell-type", "VIP"]) == 2
    assert "grids simulate" in capsys.readouterr().err


def test_compare_runs_every_method_at_equal_L(small_bundle_dir, capsys):
    assert main(["compare", "--bundle", str(small_bundle_dir), "--gene", "OLIG2", "--cell-type", "OPC", "-L", "4",
                 "--methods", "saliency,ablation,random,correlation"]) == 0
    out = capsys.readouterr().out
    table = out[out.index(" method"):].splitlines()
    assert [line.split()[0] for line in table[1:] if line.strip()] == ["grids", "saliency", "ablation", "random",
                                                                      "correlation"]
    from grids_core.store import ResultStore

    store = ResultStore(small_bundle_dir / "results.sqlite")
    rows = store.list(gene="OLIG2", cell_type="OPC")
    assert {"grids", "saliency", "ablation", "random", "correlation"} <= {r["method"] for r in rows}
    # every method, GRIDS included, has an AUPRC of its per-peak ranking against the planted drivers
    header = table[0].split()
    assert "auprc" in header and "peaks" in header
    auprc = {line.split()[0]: float(line.split()[header.index("auprc")]) for line in table[1:] if line.strip()}
    assert set(auprc) == {"grids", "saliency", "ablation", "random", "correlation"}
    assert all(0 < v <= 1 for v in auprc.values()) and auprc["grids"] > auprc["random"]


def test_genes_of_one_type_share_one_stage1_pass(small_bundle, small_model, one_thread):
    """Several genes in one cell type reuse the cached stage-1 pass, with results equal to a fresh pass."""
    from grids_core.explain import gene as gene_mod
    from grids_core.explain.grids import grids_search

    gene_mod._STAGE1_CACHE.clear()
    a = gene_mod.build_objective(small_bundle, small_model, ExplainRequest("GAD1", "VIP"))
    b = gene_mod.build_objective(small_bundle, small_model, ExplainRequest("GAD2", "VIP"))
    assert len(gene_mod._STAGE1_CACHE) == 1  # one encoder pass for the type ...
    (_, h_enc, _), = gene_mod._STAGE1_CACHE.values()
    n_enc = h_enc.shape[1]
    for obj in (a, b):  # ... that both genes start from, each adding only its own hub columns
        assert torch.equal(obj.h_target[:, :n_enc], h_enc)
        assert obj.h_target.shape[1] == n_enc + obj.model.n_cis
    c = gene_mod.build_objective(small_bundle, small_model, ExplainRequest("GAD1", "SST"))
    assert len(gene_mod._STAGE1_CACHE) == 2 and c.model.n_cis == 4  # the default surrogate has 3 hubs and a promoter term
    cached = grids_search(b, 5, k=8, seed=0, with_redundancy=False)
    b.h_target = None  # recompute stage 1 inside the search
    fresh = grids_search(b, 5, k=8, seed=0, with_redundancy=False)
    assert cached.subset.tolist() == fresh.subset.tolist()
    assert cached.objective == pytest.approx(fresh.objective, rel=1e-6)


def test_train_cli_reference_architecture_and_bad_hub_settings(small_bundle_dir, tmp_path, capsys, one_thread):
    from grids_core.train import load_model

    out = tmp_path / "ref.pt"
    steps = ["--steps-atac", "3", "--steps-rna", "3", "--steps-maps", "3", "--steps-paired", "3"]
    # --model names the checkpoint to write, as it names the one to load in explain (alias of --out)
    assert main(["train", "--bundle", str(small_bundle_dir), "--model", str(out), "--cis-hubs", "0", *steps]) == 0
    assert f"Saved {out}" in capsys.readouterr().out
    assert load_model(out).model.hubs is None
    assert main(["train", "--bundle", str(small_bundle_dir), "--out", str(out), "--cis-window", "0", *steps]) != 0
    assert "--cis-window" in capsys.readouterr().err
    assert main(["train", "--bundle", str(small_bundle_dir), "--out", str(out), "--promoter-window", "-1", *steps]) != 0
    assert "--promoter-window" in capsys.readouterr().err


def test_search_with_device_held_inputs_matches_scipy_path(small_bundle, small_model, one_thread, monkeypatch):
    """The GPU path (first-order passes over non-zeros kept on the device, ``DeviceSparse``), run on CPU,
    chooses the same subset with the same J as the per-block scipy products."""
    from grids_core.explain import gene as gene_mod
    from grids_core.explain.grids import grids_search
    from grids_core.surrogate import DeviceSparse, GeneModel

    obj = gene_mod.build_objective(small_bundle, small_model, ExplainRequest("GAD1", "VIP"))
    scipy_path = grids_search(obj, 6, k=8, init="random", seed=0, with_redundancy=False)
    wrapped = []

    def prepare(self, x):
        wrapped.append(DeviceSparse.of(x, self.device))
        return wrapped[-1]

    monkeypatch.setattr(GeneModel, "prepare_inputs", prepare)
    device_path = grids_search(obj, 6, k=8, init="random", seed=0, with_redundancy=False)
    assert len(wrapped) == 1 and device_path.n_accepted == scipy_path.n_accepted >= 1  # one copy, reused after swaps
    assert device_path.subset.tolist() == scipy_path.subset.tolist()
    assert device_path.objective == pytest.approx(scipy_path.objective, rel=1e-5)


def test_a_device_this_machine_lacks_is_a_clear_error(small_bundle_dir, capsys, monkeypatch):
    from grids_core.errors import SettingsError
    from grids_core.train import pick_device

    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(None) == torch.device("cpu")
    with pytest.raises(SettingsError, match="no CUDA GPU is usable here"):
        pick_device("cuda")
    assert main(["train", "--bundle", str(small_bundle_dir), "--device", "cuda"]) == 2
    assert "Use --device cpu" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(SettingsError, match="has 2 CUDA GPU"):
        pick_device("cuda:5")
    with pytest.raises(SettingsError, match="not supported"):
        pick_device("meta")


def test_show_flags_a_reference_subset_with_a_duplicate(small_bundle_dir, small_bundle, tmp_path, capsys):
    """--faithful (the reference) may fill two rows with one peak; the printed result says so."""
    from grids_core.results import ExplanationResult
    from grids_core.store import ResultStore

    copy = tmp_path / "b"
    shutil.copytree(small_bundle_dir, copy, ignore=shutil.ignore_patterns("models", "results.sqlite*"))
    subset = [10, 11, 11]
    ResultStore(copy / "results.sqlite").put(ExplanationResult(
        run_id="dup0000000000000", bundle_id=small_bundle.bundle_id, model_id="m", gene="GAD1", cell_type="VIP",
        method="grids", settings={"L": 3, "seed": 0, "faithful": True}, subset=subset,
        peak_names=small_bundle.peaks["name"].iloc[subset].tolist(), drop_one=[0.2, 0.0, 0.0]))
    assert main(["show", "--bundle", str(copy), "dup0"]) == 0
    assert "2 distinct peaks of L = 3" in capsys.readouterr().out


def test_train_and_simulate_refuse_bad_options_before_any_work(small_bundle_dir, tmp_path, capsys):
    """A model path that cannot be written was found only after minutes of training; negative numbers crashed."""
    base = ["train", "--bundle", str(small_bundle_dir)]
    (tmp_path / "afile").write_text("x")
    for extra, words in ((["--out", str(tmp_path)], "is a folder"),
                         (["--out", str(tmp_path / "afile" / "m.pt")], "Cannot write the model"),
                         (["--steps-atac", "-5"], "--steps-atac -5"), (["--seed", "-1"], "--seed -1"),
                         (["--cis-hubs", "0", "--promoter-window", "5000"], "needs cis hubs")):
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, (extra, err)
    for extra, words in ((["--peaks", "500"], "at least 1,000"), (["--seed", "-1"], "seed >= 0"),
                         (["--cells", "100000000"], "at most 1,000,000")):
        assert main(["simulate", "--out", str(tmp_path / "sim"), *extra]) == 2
        assert words in capsys.readouterr().err and not (tmp_path / "sim").exists()
