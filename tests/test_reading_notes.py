"""Notes that keep a result from being misread: planted recall in a direction that does not look for the planted
activators, and links that all lie off the gene's chromosome (CLI and app say the same)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import pandas as pd
import pytest

from callbacks.browser import build_view
from callbacks.jobboard import JobBoard
from callbacks.jobs import execute_job, request_from_form, resolve_request
from callbacks.state import AppState
from grids_core.cli import main
from grids_core.links import reading_notes, seeks_activators
from grids_core.results import DIRECTIONS
from grids_core.settings import Settings

TRUTH = {"hits": 0, "n_planted": 7, "recall": 0.0, "precision": 0.0, "decoys_selected": 0}


def _links(chroms: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"gene": "GAD1", "gene_chrom": "chr2", "peak_chrom": chroms})


def _settings(direction: str) -> dict:
    value, sign = DIRECTIONS[direction]
    return {"value": value, "sign": sign}


@pytest.mark.parametrize(("direction", "activators"), [("close-lower", True), ("open-raise", True),
                                                       ("close-raise", False), ("open-lower", False)])
def test_planted_recall_is_qualified_only_where_the_direction_does_not_seek_activators(direction, activators):
    s = _settings(direction)
    assert seeks_activators(s) is activators
    notes = reading_notes(_links(["chr2", "chr10"]), s, TRUTH)
    assert (len(notes) == 1 and "not expected to recover them" in notes[0]) is not activators
    assert notes == [] or direction.replace("-", " → ") in notes[0]
    assert reading_notes(_links(["chr2", "chr10"]), s, None) == []  # no planted truth: nothing to qualify


def test_trans_only_links_are_noted():
    s = _settings("close-lower")
    (note,) = reading_notes(_links(["chr10", "chr7"]), s, TRUTH)
    assert "off GAD1's chromosome (chr2)" in note and "--window" in note
    assert reading_notes(_links(["chr10", "chr2"]), s, TRUTH) == []  # one cis link: no note
    assert reading_notes(_links([]), s, TRUTH) == []


def test_cli_and_app_note_a_close_raise_run(small_bundle_dir, tmp_path, capsys, one_thread):
    bundle = tmp_path / "bundle"
    shutil.copytree(small_bundle_dir, bundle, ignore=shutil.ignore_patterns("results.sqlite*", "cache"))
    base = ["explain", "--bundle", str(bundle), "--gene", "GAD1", "--cell-type", "VIP", "-L", "4", "-k", "8"]
    assert main(base) == 0
    assert "not expected to recover" not in capsys.readouterr().out
    assert main([*base, "--direction", "close-raise"]) == 0
    out = capsys.readouterr().out
    assert "planted truth:" in out and "NOTE: The planted drivers of this bundle activate GAD1; a close → raise run" in out

    state = AppState(Settings(bundle_dir=bundle))
    req = request_from_form("GAD1", "VIP", "grids", 4, 8, 0.0, -1.0, 0.0, 0, None)
    rid = resolve_request(state, req)
    out = execute_job(state, JobBoard(tmp_path / "jobs"), {"run_id": rid, "request": json.loads(json.dumps(asdict(req)))},
                      lambda f, m: None)
    assert out["status"] == "done" and out["stored"]  # the CLI's run: the same key, loaded from the store
    summary = str(build_view(state, rid, None, [], "GAD1", "VIP")["summary"])
    assert "not expected to recover them" in summary
    lower = resolve_request(state, request_from_form("GAD1", "VIP", "grids", 4, 8, 0.0, 1.0, 0.0, 0, None))
    summary = str(build_view(state, lower, None, [], "GAD1", "VIP")["summary"])
    assert lower in summary and "not expected" not in summary  # the CLI's close → lower run, shown without the note


def test_fewer_links_than_L_are_noted(small_bundle_dir, tmp_path, capsys, one_thread):
    """correlation scores only peaks within ±500 kb of the TSS: asked for more, it links fewer, and says so."""
    from grids_core import bundle as bundle_io

    bundle = tmp_path / "bundle"
    shutil.copytree(small_bundle_dir, bundle, ignore=shutil.ignore_patterns("results.sqlite*", "cache"))
    b = bundle_io.load(bundle)
    g = b.gene_row("GAD1")
    near = int(((b.peaks["chrom"] == g["chrom"]) & ((b.peaks["start"] + b.peaks["end"]) // 2 - g["tss"]).abs()
                .le(500_000)).sum())
    L = near + 5
    assert main(["explain", "--bundle", str(bundle), "--gene", "GAD1", "--cell-type", "VIP", "-L", str(L),
                 "--method", "correlation"]) == 0
    out = capsys.readouterr().out
    n = int(out.split(" peaks are linked, not L = ")[0].rsplit("NOTE: ", 1)[1])
    assert n <= near and f"not L = {L}: correlation scores only {n} peaks" in out and "±500 kb" in out
    assert main(["explain", "--bundle", str(bundle), "--gene", "GAD1", "--cell-type", "VIP", "-L", "4"]) == 0
    assert "peaks are linked, not L" not in capsys.readouterr().out  # a full subset: no note
