"""Dask batch: equals sequential results, skips stored keys (resume), reports bad pairs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from grids_core.batch import bokeh_serves_dashboard, read_pairs, run_batch
from grids_core.cli import main
from grids_core.errors import InputError
from grids_core.explain.gene import ExplainRequest
from grids_core.jobs import load_context, run_explanation
from grids_core.settings import Settings
from grids_core.store import ResultStore

PAIRS = [("GAD1", "VIP"), ("GAD2", "SST"), ("OLIG2", "OPC"), ("AQP4", "Astro")]


@pytest.fixture()
def fresh_settings(small_bundle_dir, tmp_path):
    """The small bundle with an empty results store of its own."""
    import shutil

    d = tmp_path / "bundle"
    shutil.copytree(small_bundle_dir, d, ignore=shutil.ignore_patterns("results.sqlite*", "cache"))
    return Settings(bundle_dir=d)


def test_batch_on_two_workers_equals_sequential_and_resumes(fresh_settings, tmp_path):
    template = ExplainRequest(gene="", cell_type="", L=4, seed=2)
    first = run_batch(fresh_settings, PAIRS[:2], template, n_workers=2)
    assert len(first.computed) == 2 and not first.failed
    # the dashboard link only where the scheduler can serve the dashboard (bokeh is not in the lock)
    assert (first.dashboard is not None) == bokeh_serves_dashboard()
    # "interrupted" after two pairs: the rerun computes only the missing ones
    second = run_batch(fresh_settings, PAIRS + [("NOPE1", "VIP")], template, n_workers=2)
    assert len(second.skipped) == 2 and len(second.computed) == 2
    assert list(second.failed) == ["NOPE1/VIP"] and "not in this bundle" in second.failed["NOPE1/VIP"]
    store = load_context(fresh_settings).store
    for gene, ct in PAIRS:
        rows = store.list(gene=gene, cell_type=ct)
        assert len(rows) == 1
        batch_result = store.get(rows[0]["run_id"])
        seq, _ = run_explanation(fresh_settings, ExplainRequest(gene, ct, L=4, seed=2), force=True)
        assert seq.subset == batch_result.subset and seq.run_id == batch_result.run_id


def test_pairs_file_and_cli(fresh_settings, tmp_path, capsys):
    f = tmp_path / "pairs.tsv"
    f.write_text("gene\tcell_type\nGAD1\tVIP\n")
    assert read_pairs(f) == [("GAD1", "VIP")]
    bad = tmp_path / "bad.tsv"
    bad.write_text("name\ttype\nGAD1\tVIP\n")
    with pytest.raises(InputError, match="with columns gene, cell_type"):
        read_pairs(bad)
    args = ["batch", "--bundle", str(fresh_settings.bundle_dir), "--pairs", str(f), "-L", "3", "--workers", "1"]
    assert main(args) == 0
    assert "1 computed" in capsys.readouterr().out
    assert main(args) == 0
    assert "1 already stored" in capsys.readouterr().out


def test_batch_checks_every_name_before_starting(fresh_settings, tmp_path, capsys):
    base = ["batch", "--bundle", str(fresh_settings.bundle_dir), "-L", "3", "--workers", "1"]
    empty = tmp_path / "empty.tsv"
    empty.write_text("gene\tcell_type\n")
    assert main([*base, "--pairs", str(empty)]) == 2
    assert "has no rows" in capsys.readouterr().err
    typo = tmp_path / "typo.tsv"
    typo.write_text("gene\tcell_type\nGAD1\tVIP\nGADD1\tVIP\nGAD2\tSTT\n")
    assert main([*base, "--pairs", str(typo)]) == 2
    err = capsys.readouterr().err
    assert "2 of 3 pairs" in err and "GADD1/VIP" in err and "GAD2/STT" in err and "Did you mean" in err
    assert main([*base, "--cell-type", "VIP", "--genes", "GAD1,NOPE1"]) == 2
    assert "NOPE1/VIP" in capsys.readouterr().err
    assert load_context(fresh_settings).store.list() == []  # nothing ran


def test_ctrl_c_stops_the_batch_in_one_line_and_the_rerun_goes_on(fresh_settings, capsys):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) with LocalCluster workers running."""
    genes = load_context(fresh_settings).bundle.gene_names[:8]
    args = ["batch", "--bundle", str(fresh_settings.bundle_dir), "--cell-type", "VIP", "--genes", ",".join(genes),
            "-L", "6", "--workers", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "grids_core.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    store = ResultStore(fresh_settings.store_path)
    deadline = time.monotonic() + 300
    while not store.list() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "distributed" not in err, err
    done = len(store.list())
    assert 1 <= done < len(genes)
    assert (f"interrupted: {done} of {len(genes)} pairs are stored ({done} computed in this run, 0 before); "
            f"{len(genes) - done} left. Run the same command again to finish: pairs already stored are reused") in err
    assert main(args) == 0  # the same command goes on: stored pairs skipped, the rest computed
    assert f"{done} already stored" in capsys.readouterr().out
    assert len(store.list()) == len(genes)


@pytest.mark.parametrize(("text", "want"), [
    ("\ufeffGene,Cell_Type\r\nGAD1,VIP\r\n", [("GAD1", "VIP")]),  # Excel's CSV UTF-8: BOM, CRLF, any case
    ("# markers\ngene\tcell_type\nGAD1\tVIP\n\nGAD2\tSST\n", [("GAD1", "VIP"), ("GAD2", "SST")]),  # comment, blank
    ("GAD1\tVIP\nGAD2\tSST\n", [("GAD1", "VIP"), ("GAD2", "SST")]),  # two unnamed columns
    ("gene\tcell_type\nNA\tNULL\n", [("NA", "NULL")]),  # names, not missing values (refused later as unknown)
])
def test_pairs_files_as_people_write_them(tmp_path, text, want):
    f = tmp_path / "pairs.txt"
    f.write_bytes(text.encode())
    assert read_pairs(f) == want


def test_pairs_with_an_empty_field_say_which(tmp_path):
    f = tmp_path / "pairs.tsv"
    f.write_text("gene\tcell_type\nGAD1\tVIP\nGAD2\t\n")
    with pytest.raises(InputError, match=r"1 row\(s\) with an empty gene or cell type \(GAD2/\(empty\)\)"):
        read_pairs(f)


def test_a_pair_named_twice_runs_once(fresh_settings, capsys):
    args = ["batch", "--bundle", str(fresh_settings.bundle_dir), "--cell-type", "VIP", "--genes", "GAD1,gad1",
            "-L", "3", "--workers", "1"]
    assert main(args) == 0
    assert "2 pairs: 1 computed, 0 already stored, 0 failed, 1 named twice (run once)" in capsys.readouterr().out
    assert len(load_context(fresh_settings).store.list()) == 1


@pytest.mark.parametrize(("address", "words"), [("http://127.0.0.1:8787", "web address"),
                                                 ("garbage", "not a scheduler address")])
def test_a_bad_scheduler_address_is_refused_before_anything_runs(fresh_settings, capsys, address, words):
    args = ["batch", "--bundle", str(fresh_settings.bundle_dir), "--cell-type", "VIP", "--genes", "GAD1",
            "--scheduler", address]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err and "tcp://HOST:PORT" in err and "Traceback" not in err


def test_batch_title_counts_the_pairs_to_compute_and_force_replaces_stored_runs(fresh_settings, capsys):
    store = ResultStore(fresh_settings.store_path)
    base = ["batch", "--bundle", str(fresh_settings.bundle_dir), "--cell-type", "VIP", "-L", "3", "--workers", "1"]
    assert main([*base, "--genes", "GAD1"]) == 0
    capsys.readouterr()
    (gad1,) = [r["run_id"] for r in store.list()]
    tampered = store.get(gad1)
    tampered.objective = 123.0  # marks the stored copy: reused as it is, or replaced by a recomputed one
    store.put(tampered)
    assert main([*base, "--genes", "GAD1,gad1,GAD2"]) == 0
    out, err = capsys.readouterr()
    assert "batch: 1 of 2 pairs to compute, 1 stored" in err  # not "batch 3 pairs": gad1 is GAD1
    assert "3 pairs: 1 computed, 1 already stored, 0 failed, 1 named twice (run once)" in out
    assert store.get(gad1).objective == 123.0
    assert main([*base, "--genes", "GAD1,gad1,GAD2", "--force"]) == 0
    out, err = capsys.readouterr()
    assert "batch: 2 of 2 pairs to compute" in err
    assert "3 pairs: 2 computed (2 replacing stored runs), 0 already stored, 0 failed" in out
    assert store.get(gad1).objective != 123.0 and len(store.list()) == 2
    # the summary table: one row per pair, with the surrogate's r and the flag `grids explain` gives
    lines = out.splitlines()
    head = lines[0].split()
    assert head == ["run_id", "gene", "cell_type", "status", "heldout_delta", "r", "r_in_type", "confidence"]
    for line in lines[1:3]:
        cells = dict(zip(head, line.split(), strict=True))
        res = store.get(cells["run_id"])
        assert (cells["gene"], cells["status"]) == (res.gene, "computed")
        assert (cells["r"], cells["r_in_type"]) == (f"{res.gene_r:.4g}", f"{res.heldout['r_in_type']:.4g}")
        assert cells["confidence"] == ("ok" if res.predictable else "LOW")


def test_local_cluster_logs_errors_only(fresh_settings, monkeypatch):
    """distributed's warnings (nanny, scheduler, client) stay off the terminal while our cluster runs; errors show."""
    import logging

    monkeypatch.setenv("DASK_LOGGING__DISTRIBUTED", "unset")  # recorded, so the test leaves the variable as it was
    monkeypatch.delenv("DASK_LOGGING__DISTRIBUTED")
    records: list[logging.LogRecord] = []
    seen = logging.Handler()  # beside whatever writes distributed's logs to the terminal, records what reaches it
    seen.emit = records.append

    def progress(frac: float, msg: str) -> None:
        for name in ("distributed.nanny", "distributed.client"):
            logging.getLogger(name).warning("probe warning")
            logging.getLogger(name).error("probe error")

    logging.getLogger("distributed").addHandler(seen)
    try:
        run_batch(fresh_settings, PAIRS[:1], ExplainRequest(gene="", cell_type="", L=3), n_workers=1,
                  progress=progress)
    finally:
        logging.getLogger("distributed").removeHandler(seen)
    assert [(r.name, r.getMessage()) for r in records if r.getMessage().startswith("probe")] == [
        ("distributed.nanny", "probe error"), ("distributed.client", "probe error")]
    assert not [r for r in records if r.levelno < logging.ERROR], [r.getMessage() for r in records]
    assert logging.getLogger("distributed.client").level == logging.WARNING  # as distributed set it, once closed
