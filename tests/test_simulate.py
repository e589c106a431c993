"""The default semi-synthetic bundle: determinism, realism, and that the planted redundancy is real."""

from __future__ import annotations

import numpy as np
import pytest

from grids_core import bundle as bundle_io
from grids_core.cli import main
from grids_core.evaluate import perturb
from grids_core.reference import MARKER_PAIRS

from .conftest import SMALL


def test_simulation_is_deterministic_for_a_seed(small_sim):
    from grids_core.simulate import simulate

    b1, _ = small_sim
    b2, _ = simulate(**SMALL)
    assert (b1.atac != b2.atac).nnz == 0
    np.testing.assert_array_equal(b1.rna, b2.rna)
    assert b1.truth.equals(b2.truth)
    b3, _ = simulate(**{**SMALL, "seed": 1})
    assert (b1.atac != b3.atac).nnz > 0


def test_bundle_is_realistic(small_sim):
    b, _ = small_sim
    n_cells, n_peaks = b.atac.shape
    assert (n_cells, n_peaks) == (SMALL["n_cells"], SMALL["n_peaks"])
    density = b.atac.nnz / (n_cells * n_peaks)
    assert 0.01 < density < 0.06  # "a few % of peaks open"
    assert set(b.cell_types) == {"Exc", "SST", "VIP", "Astro", "Endo", "Micro", "OPC", "Oligo"}
    assert set(b.cells["split"]) == {"train", "val", "test"}
    assert {g for _, g in MARKER_PAIRS} <= set(b.gene_names)
    # peak names are unique (a REMO id naming several elements is numbered) and keep the REMO id
    assert b.peaks["name"].is_unique
    multi = b.peaks["name"].str.fullmatch(r"REMOv1\.GRCh38-\d+\.\d+")
    assert multi.any() and b.peaks["name"].str.startswith("REMOv1.GRCh38-").any()
    gad1 = b.gene_row("GAD1")
    assert gad1["chrom"] == "chr2" and gad1["strand"] == "+" and abs(int(gad1["tss"]) - 170_813_212) < 100_000
    # RNA is log1p(CP10k): non-negative, markers higher in their own type than elsewhere
    assert b.rna.min() >= 0
    for cell_type, gene in MARKER_PAIRS:
        g = b.gene_index(gene)
        inside = b.rna[b.cell_mask(cell_type), g].mean()
        outside = b.rna[~b.cell_mask(cell_type) & ~b.cell_mask("SST" if cell_type == "VIP" else "VIP"), g].mean()
        assert inside > outside, (cell_type, gene)


def test_manifest_marks_simulated_layers(small_sim):
    b, _ = small_sim
    prov = b.manifest["provenance"]
    for layer in ("atac", "rna", "cells", "hic", "truth"):
        assert prov[layer] == "simulated"
    for layer in ("peaks", "genes", "exons"):
        assert prov[layer] == "real"
    assert all(v["simulated"] for v in b.hic.values())
    assert set(b.tads["simulated"]) == {0, 1}  # simulated domains plus real lifted GM12878 ones


def test_planted_redundancy_is_real_in_the_generative_model(small_sim):
    """Closing one enhancer barely moves the planted expression rate; closing its whole group does."""
    b, gen = small_sim
    for cell_type, gene in MARKER_PAIRS:
        pair = gen.pairs[(gene, cell_type)]
        x = b.atac[b.cell_mask(cell_type)]
        base = gen.planted_log_rate(x, gene, cell_type).mean()
        group = pair.groups[0]
        singles = [base - gen.planted_log_rate(perturb(x, [j], 0), gene, cell_type).mean() for j in group]
        whole = base - gen.planted_log_rate(perturb(x, group, 0), gene, cell_type).mean()
        assert whole > 5 * max(singles), (gene, cell_type, whole, singles)
        decoy_drop = base - gen.planted_log_rate(perturb(x, pair.decoys, 0), gene, cell_type).mean()
        assert decoy_drop == pytest.approx(0.0, abs=1e-6)


def test_or_group_members_are_co_accessible(small_sim):
    """An OR-group is one enhancer cluster: its members open together in the planted type; decoys do not."""
    b, gen = small_sim
    decoy_r = []
    for (gene, cell_type), pair in gen.pairs.items():
        x = b.atac[b.cell_mask(cell_type)]
        for group in pair.groups:
            r = np.corrcoef(x[:, group].toarray().T)[np.triu_indices(len(group), 1)]
            assert r.mean() > 0.1, (gene, cell_type, r)
        r = np.corrcoef(x[:, pair.decoys].toarray().T)[np.triu_indices(len(pair.decoys), 1)]
        decoy_r.append(np.nanmean(r))
    assert np.median(decoy_r) < 0.1


def test_confounded_scenario_decoys_track_a_trans_programme(small_sim):
    """--confounded: decoys open together with the pair's programme and predict the gene, yet drive nothing."""
    from grids_core.simulate import CONFOUNDED_DECOYS, simulate

    b, gen = simulate(**SMALL, confounded=True)
    assert b.manifest["simulator"]["scenario"] == "confounded" and "confounded" in b.manifest["description"]
    assert small_sim[0].manifest["simulator"]["scenario"] == "default"
    assert all(p.programme is None for p in small_sim[1].pairs.values())
    co_open, predicts = [], []
    for (gene, cell_type), pair in gen.pairs.items():
        assert len(pair.decoys) == CONFOUNDED_DECOYS and pair.programme is not None
        x = b.atac[b.cell_mask(cell_type)]
        decoys = x[:, pair.decoys].toarray().astype(float)
        assert len(pair.programme) == x.shape[0]
        # they open mostly when the programme is on
        assert decoys[pair.programme].mean() > 2 * decoys[~pair.programme].mean(), (gene, cell_type)
        co_open.append(np.mean(np.corrcoef(decoys.T)[np.triu_indices(len(pair.decoys), 1)]))
        predicts.append(np.corrcoef(decoys.sum(axis=1), b.rna[b.cell_mask(cell_type), b.gene_index(gene)])[0, 1])
        # ... but closing all of them leaves the planted (cis) rate where it was
        base = gen.planted_log_rate(x, gene, cell_type)
        np.testing.assert_allclose(gen.planted_log_rate(perturb(x, pair.decoys, 0), gene, cell_type), base, atol=1e-6)
    assert np.median(co_open) > 0.2
    assert min(predicts) > 0 and np.median(predicts) > 0.25


def test_planted_truth_table_matches_the_generator(small_sim):
    b, gen = small_sim
    for (gene, cell_type), pair in gen.pairs.items():
        t = b.truth[(b.truth["gene"] == gene) & (b.truth["cell_type"] == cell_type)]
        assert set(t.loc[t["logic"] == "OR", "peak_index"]) == {j for g in pair.groups for j in g}
        assert t.loc[t["logic"] == "promoter", "peak_index"].tolist() == [pair.promoter]
        # planted enhancers lie on the gene's chromosome within the planting window
        row = b.gene_row(gene)
        p = b.peaks.iloc[t["peak_index"].to_numpy()]
        assert (p["chrom"] == row["chrom"]).all()
        assert (np.abs((p["start"] + p["end"]) // 2 - int(row["tss"])) <= 400_000).all()


def test_cli_simulate_writes_a_valid_bundle(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["simulate", "--out", str(out), "--cells", "300", "--peaks", "3000", "--seed", "2"]) == 0
    b = bundle_io.load(out)
    assert b.atac.shape == (300, 3000) and b.manifest["provenance"]["rna"] == "simulated"
    assert main(["simulate", "--out", str(out), "--cells", "300", "--peaks", "3000"]) == 2  # exists, no --force
    assert "already exists" in capsys.readouterr().err
    conf = tmp_path / "c"
    assert main(["simulate", "--out", str(conf), "--cells", "300", "--peaks", "3000", "--confounded"]) == 0
    assert bundle_io.load(conf).manifest["simulator"]["scenario"] == "confounded"


def test_peak_count_option_and_limits():
    from grids_core.errors import SettingsError
    from grids_core.simulate import simulate

    with pytest.raises(SettingsError, match="at most"):
        simulate(n_cells=300, n_peaks=10_000_000)
    with pytest.raises(SettingsError, match="too small"):
        simulate(n_cells=50)


def test_simulation_is_identical_across_processes():
    """No hash-order dependence: two interpreters with different PYTHONHASHSEED give the same bundle."""
    import os
    import subprocess
    import sys

    code = (
        "import hashlib; from grids_core.simulate import simulate; "
        "b, _ = simulate(n_cells=300, n_peaks=2000, seed=5); "
        "print(hashlib.md5(b.rna.tobytes() + b.atac.toarray().tobytes() + b.truth.to_csv().encode()).hexdigest())"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": str(seed)},
                       capture_output=True, text=True, check=True).stdout.strip()
        for seed in (1, 2)
    }
    assert len(digests) == 1
