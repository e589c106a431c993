"""Results store (keys, concurrency, corruption) and linkage exports (TSV/CSV/BEDPE/interact/BED)."""

from __future__ import annotations

import io
import multiprocessing as mp
import sqlite3

import numpy as np
import pandas as pd
import pytest

from grids_core.errors import BundleError, SettingsError, UnknownNameError
from grids_core.links import export_text, format_from_path, linkage_table, write_export
from grids_core.results import ExplanationResult, run_key
from grids_core.store import ResultStore


def make_result(bundle, gene="GAD1", cell_type="VIP", run_id="r1", n=4, method="grids") -> ExplanationResult:
    row = bundle.gene_row(gene)
    mids = bundle.peak_midpoints()
    near = np.flatnonzero((bundle.peaks["chrom"] == row["chrom"]).to_numpy())
    near = near[np.argsort(np.abs(mids[near] - int(row["tss"])))][: n - 1]
    other = int(np.flatnonzero((bundle.peaks["chrom"] != row["chrom"]).to_numpy())[0])
    subset = [*near.tolist(), other]
    return ExplanationResult(
        run_id=run_id, bundle_id=bundle.bundle_id, model_id="m", gene=gene, cell_type=cell_type, method=method,
        settings={"L": n, "seed": 0}, subset=subset, peak_names=bundle.peaks["name"].iloc[subset].tolist(),
        drop_one=[0.5, 0.25, -0.1, 0.05][:n], heldout={"delta": -1.0, "relative": -0.2},
    )


def test_run_key_depends_on_every_setting():
    base = {"L": 10, "k": 32, "seed": 0, "beta": 0.0}
    k = run_key("b", "m", "GAD1", "VIP", "grids", base)
    assert k == run_key("b", "m", "GAD1", "VIP", "grids", dict(reversed(list(base.items()))))
    for change in ({"L": 11}, {"seed": 1}, {"beta": 0.1}):
        assert run_key("b", "m", "GAD1", "VIP", "grids", {**base, **change}) != k
    assert run_key("b", "m2", "GAD1", "VIP", "grids", base) != k


def test_store_round_trip_list_and_prefix(tmp_path, small_bundle):
    store = ResultStore(tmp_path / "results.sqlite")
    r = make_result(small_bundle, run_id="abcdef0123")
    store.put(r)
    back = store.require("abcdef")
    assert back.subset == r.subset and back.drop_one == r.drop_one and back.created
    assert [row["run_id"] for row in store.list(gene="GAD1")] == ["abcdef0123"]
    assert store.list(gene="MOG") == []
    with pytest.raises(UnknownNameError, match="grids runs"):
        store.require("zzz")
    assert [row["run_id"] for row in store.list(gene="gad1", cell_type="vip")] == ["abcdef0123"]  # as explain reads names
    store.put(make_result(small_bundle, run_id="abcdff4567"))
    with pytest.raises(UnknownNameError, match=r"'abcd' matches 2 stored runs \(abcdef0123, abcdff4567\)"):
        store.require("abcd")
    assert store.require("abcdf").run_id == "abcdff4567"
    assert sqlite3.connect(tmp_path / "results.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_old_store_drops_its_misattributed_baseline_runs_once(tmp_path, small_bundle):
    path = tmp_path / "results.sqlite"
    store = ResultStore(path)
    store.put(make_result(small_bundle, run_id="g1"))
    store.put(make_result(small_bundle, run_id="b1", method="random"))
    sqlite3.connect(path).execute("PRAGMA user_version = 1").connection.commit()  # a store written before the fix
    reopened = ResultStore(path)
    assert [r["run_id"] for r in reopened.list()] == ["g1"]  # GRIDS runs were right and stay
    reopened.put(make_result(small_bundle, run_id="b2", method="random"))  # recomputed baselines stay from now on
    assert sorted(r["run_id"] for r in ResultStore(path).list()) == ["b2", "g1"]


def _writer(path: str, start: int, n: int, payload: dict) -> None:
    store = ResultStore(path)
    for i in range(start, start + n):
        store.put(ExplanationResult(**{**payload, "run_id": f"run{i:04d}"}))


def test_concurrent_writers_and_readers_lose_nothing(tmp_path, small_bundle):
    path = str(tmp_path / "results.sqlite")
    ResultStore(path)
    payload = make_result(small_bundle).__dict__
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, i * 25, 25, payload)) for i in range(4)]
    for p in procs:
        p.start()
    store = ResultStore(path)
    seen = 0
    while any(p.is_alive() for p in procs):
        rows = store.list()
        assert len(rows) >= seen  # readers see a growing, consistent set
        seen = len(rows)
        for row in rows[:3]:
            assert store.get(row["run_id"]).subset == payload["subset"]
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert len(store.list()) == 100


def test_corrupt_store_is_reported(tmp_path):
    path = tmp_path / "results.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BundleError, match="unreadable"):
        ResultStore(path)


def test_unknown_strand_is_dot_in_every_export_and_distances_follow_the_genome(small_bundle, monkeypatch):
    genes = small_bundle.genes.copy()
    genes["strand"] = "."  # a bundle prepared from 10x intervals without a GTF
    monkeypatch.setattr(small_bundle, "genes", genes)
    links = linkage_table(small_bundle, make_result(small_bundle))
    row = small_bundle.gene_row("GAD1")
    same = links["peak_chrom"] == row["chrom"]
    np.testing.assert_array_equal(links.loc[same, "distance_to_tss"].astype(int),
                                  links.loc[same, "peak_mid"] - int(row["tss"]))
    bedpe = pd.read_csv(io.StringIO(export_text(links, "bedpe")), sep="\t")
    assert (bedpe["strand2"] == ".").all()
    interact = [ln.split("\t") for ln in export_text(links, "interact").splitlines()[1:]]
    assert interact and all(f[17] == "." for f in interact)  # targetStrand


def test_linkage_table_and_all_exports_share_rows(tmp_path, small_bundle):
    r = make_result(small_bundle)
    links = linkage_table(small_bundle, r)
    row = small_bundle.gene_row("GAD1")
    assert len(links) == 4 and links["rank"].tolist() == [1, 2, 3, 4]
    same = links["peak_chrom"] == row["chrom"]
    sign = 1 if row["strand"] == "+" else -1
    np.testing.assert_array_equal(links.loc[same, "distance_to_tss"].astype(int),
                                  (links.loc[same, "peak_mid"] - int(row["tss"])) * sign)
    assert links.loc[~same, "distance_to_tss"].isna().all()  # other chromosome: no distance, row kept

    tsv = pd.read_csv(io.StringIO(export_text(links, "tsv")), sep="\t")
    csv = pd.read_csv(io.StringIO(export_text(links, "csv")))
    assert tsv["peak"].tolist() == csv["peak"].tolist() == links["peak"].tolist()

    def by_position(chroms, starts) -> bool:  # `sort -k1,1 -k2,2n`, what bedToBigBed / tabix need
        keys = list(zip(map(str, chroms), map(int, starts), strict=True))
        return keys == sorted(keys)

    bedpe = pd.read_csv(io.StringIO(export_text(links, "bedpe")), sep="\t")
    assert list(bedpe.columns[:6]) == ["#chrom1", "start1", "end1", "chrom2", "start2", "end2"]
    assert (bedpe["start2"] == int(row["tss"])).all() and (bedpe["end2"] - bedpe["start2"] == 1).all()
    assert sorted(bedpe["start1"]) == sorted(links["peak_start"]) and by_position(bedpe["#chrom1"], bedpe["start1"])
    assert dict(zip(bedpe["start1"], bedpe["rank"], strict=True)) == dict(zip(links["peak_start"], links["rank"], strict=True))

    bed = [ln.split("\t") for ln in export_text(links, "bed").splitlines()]
    assert all(len(f) == 6 for f in bed) and by_position([f[0] for f in bed], [f[1] for f in bed])
    assert sorted((f[0], int(f[1]), int(f[2])) for f in bed) == sorted(
        zip(links["peak_chrom"], links["peak_start"], links["peak_end"], strict=True))

    lines = export_text(links, "interact").splitlines()
    assert lines[0].startswith("track type=interact")
    method = links["method"].iloc[0]  # tracks of several methods get distinct names in a genome browser
    assert f'name="{method} {row["name"]} ' in lines[0] and f'description="{method} links, run ' in lines[0]
    fields = [ln.split("\t") for ln in lines[1:]]
    assert all(len(f) == 18 for f in fields)  # bed5 + 13
    assert by_position([f[0] for f in fields], [f[1] for f in fields])
    for link in links.itertuples():
        recs = [f for f in fields if f[11] == link.peak]
        assert all(int(f[9]) == link.peak_mid and int(f[14]) == int(row["tss"]) for f in recs)  # source mid, target TSS
        assert all(0 <= int(f[4]) <= 1000 and int(f[1]) < int(f[2]) for f in recs)
        if link.peak_chrom == row["chrom"]:
            (f,) = recs
            assert int(f[1]) == min(int(f[9]), int(f[14])) and int(f[2]) == max(int(f[10]), int(f[15]))
        else:  # interact.as: one record at each end of an interchromosomal link
            src, tgt = (recs[0][8], int(recs[0][9]), int(recs[0][10])), (recs[0][13], int(recs[0][14]), int(recs[0][15]))
            assert sorted((f[0], int(f[1]), int(f[2])) for f in recs) == sorted([src, tgt]) and src[0] != tgt[0]

    for ext in ("tsv", "csv", "bedpe", "interact", "bed"):
        p = write_export(links, tmp_path / f"links.{ext}")
        assert p.read_text() == export_text(links, ext)
    with pytest.raises(SettingsError, match="Cannot tell the export format"):
        format_from_path("links.xlsx")


def test_exports_mark_missing_effects_and_keep_names_in_one_column(small_bundle):
    """An unknown effect is '.' in BEDPE and grey with score 0 in interact; whitespace in a name (a user's
    cell-type label) cannot split a column for whitespace-splitting readers (IGV, bedToBigBed without -tab)."""
    links = linkage_table(small_bundle, make_result(small_bundle, cell_type="L2/3 IT"))
    links.loc[1, "drop_one"] = np.nan
    bedpe = [ln.split() for ln in export_text(links, "bedpe").splitlines()[1:]]
    assert all(len(f) == 13 for f in bedpe) and {f[10] for f in bedpe} == {"L2/3_IT"}
    assert [f[7] for f in bedpe if f[6].endswith(links.loc[1, "peak"])] == ["."]
    inter = [ln.split() for ln in export_text(links, "interact").splitlines()[1:]]
    assert all(len(f) == 18 for f in inter) and {f[6] for f in inter} == {"L2/3_IT"}
    (missing,) = [f for f in inter if f[11] == links.loc[1, "peak"]]
    assert missing[4:6] == ["0", "0"] and missing[7] == "#999999"
    assert max(int(f[4]) for f in inter) == 1000  # the largest known effect still scales to 1000
    assert export_text(links.iloc[:0], "interact").startswith("track type=interact")  # never a 0-byte track


def test_request_types_are_canonical_so_keys_are_stable():
    """A request that went through JSON (0 vs 0.0, '10' vs 10) keeps its run key."""
    import json
    from dataclasses import asdict

    from grids_core.explain.gene import ExplainRequest

    a = ExplainRequest("GAD1", "VIP", L=10, value=0, sign=1, beta=0, seed=0)
    b = ExplainRequest(**json.loads(json.dumps({**asdict(a), "L": "10", "value": 0.0, "window": ""})))
    assert run_key("b", "m", "GAD1", "VIP", "grids", a.settings()) == run_key("b", "m", "GAD1", "VIP", "grids", b.settings())


def test_effect_vs_l_family_groups_only_runs_that_differ_in_l_and_seed(tmp_path, small_bundle):
    """Runs at another k (or model) are a different family, so an effect-vs-L curve never mixes them;
    a store written before the family column is migrated in place with nothing lost."""
    path = tmp_path / "results.sqlite"
    runs = []
    for i, settings in enumerate(({"L": 5, "seed": 0, "k": 32}, {"L": 10, "seed": 1, "k": 32}, {"L": 10, "seed": 0, "k": 8})):
        r = make_result(small_bundle, run_id=f"run{i}")
        r.settings = settings
        runs.append(r)
    store = ResultStore(path)
    for r in runs:
        store.put(r)
    fam = runs[0].summary()["family"]
    assert runs[1].summary()["family"] == fam and runs[2].summary()["family"] != fam
    assert sorted(row["run_id"] for row in store.list(family=fam)) == ["run0", "run1"]

    con = sqlite3.connect(path)  # the schema of earlier versions: no family column
    con.execute("ALTER TABLE runs DROP COLUMN family")
    con.commit()
    con.close()
    migrated = ResultStore(path)
    assert sorted(row["run_id"] for row in migrated.list(family=fam)) == ["run0", "run1"]
    assert len(migrated.list()) == 3 and migrated.require("run2").settings["k"] == 8


def test_locality_names_both_the_simulated_and_the_real_tad(small_sim):
    """GAD1's TSS lies in a simulated domain and in a real (GM12878) one: the shares inside each are reported
    and labelled with their source, measured against the TAD table by hand."""
    from grids_core.evaluate import locality
    from grids_core.links import locality_rows

    b, _ = small_sim
    row = b.gene_row("GAD1")
    t = b.tads[(b.tads["chrom"] == row["chrom"]) & (b.tads["start"] <= row["tss"]) & (b.tads["end"] > row["tss"])]
    assert set(t["simulated"].astype(int)) == {0, 1}  # the case under test
    subset = make_result(b, n=4).subset  # 3 peaks nearest the TSS, one on another chromosome
    loc = locality(b, "GAD1", subset)
    mids = b.peak_midpoints()[subset]
    same = (b.peaks["chrom"].iloc[subset] == row["chrom"]).to_numpy()
    for key, sim in (("tad", 1), ("other_tad", 0)):
        start, end, source = t[t["simulated"] == sim].iloc[0][["start", "end", "source"]]
        assert loc[key] == [int(start), int(end), str(source)]
        assert loc[f"inside_{key}"] == pytest.approx((same & (mids >= start) & (mids < end)).sum() / 4)
    assert loc["same_chromosome"] == 0.75
    labels = [label for label, _ in locality_rows(loc)]
    assert sum("inside the gene's TAD" in label for label in labels) == 2
    assert any("simulated" in label for label in labels) and any("GM12878" in label for label in labels)
    # a bundle without TADs: no TAD rows, the other metrics still there
    import dataclasses

    bare = dataclasses.replace(b, tads=b.tads.iloc[:0])
    loc = locality(bare, "GAD1", subset)
    assert loc["tad"] is None and loc["inside_tad"] is None and "other_tad" not in loc
    assert not any("TAD" in label for label, _ in locality_rows(loc)) and len(locality_rows(loc)) == 5
