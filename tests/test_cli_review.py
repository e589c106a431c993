"""The CLI review: runs that differ in settings look different, GRIDS-only options are refused for baselines,
k above the candidate pool is noted, batch options are checked before Dask, the dashboard link only with bokeh,
an unreadable model says so safely, `show` notes another model's run, help defaults, empty --export, README."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from grids_core import batch as batch_mod
from grids_core.cli import GRIDS_ONLY, METHOD_NAMES, build_parser, main
from grids_core.explain.gene import ExplainRequest
from grids_core.links import COLUMNS
from grids_core.results import DEFAULT_SETTINGS
from grids_core.store import ResultStore

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture()
def bundle_copy(small_bundle_dir, tmp_path):
    """The small bundle with its model and an empty results store of its own."""
    d = tmp_path / "bundle"
    shutil.copytree(small_bundle_dir, d, ignore=shutil.ignore_patterns("results.sqlite*", "cache"))
    return d


def _runs_rows(out: str) -> dict[str, str]:
    """run id -> its line of `grids runs`."""
    return {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}


VARIANTS = {  # extra options -> what `runs` (direction / mode ...) and the `show` header must say
    "default": ([], "close → lower", "default"),
    "raise": (["--direction", "close-raise"], "close → raise", "default"),
    "faithful": (["--faithful"], "close → lower", "faithful"),
    "random": (["--init", "random"], "close → lower", "init random"),
    "bf16": (["--precision", "bf16"], "close → lower", "bf16"),
    "beta": (["--beta", "0.1"], "close → lower", "default"),
    "sweeps": (["--max-sweeps", "3"], "close → lower", "max-sweeps 3"),
    "window": (["--window", "300000", "-k", "8"], "close → lower", "default"),
}


def test_runs_show_and_exports_tell_runs_with_other_settings_apart(bundle_copy, tmp_path, capsys, one_thread):
    base = ["--bundle", str(bundle_copy), "--gene", "GAD1", "--cell-type", "VIP", "-L", "4"]
    ids, headers = {}, {}
    for name, (extra, _, _) in VARIANTS.items():
        tsv = tmp_path / f"{name}.tsv"
        assert main(["explain", *base, *extra, "--export", str(tsv)]) == 0
        out = capsys.readouterr().out
        header = next(line for line in out.splitlines() if line.startswith("run "))
        ids[name], headers[name] = header.split()[1], header
    assert len(set(ids.values())) == len(VARIANTS)

    assert main(["runs", "--bundle", str(bundle_copy), "--gene", "GAD1", "--cell-type", "VIP", "--method", "grids"]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0].split()
    assert head[:10] == ["run_id", "gene", "cell_type", "method", "L", "k", "direction", "beta", "window", "mode"]
    rows = _runs_rows(out)
    row_re = re.compile(r"^(?P<id>\S+)\s+GAD1\s+VIP\s+grids\s+4\s+(?P<k>\d+)\s+(?P<direction>\w+ → \w+)\s+(?P<beta>\S+)\s+"
                        r"(?P<window>genome-wide|\S+ kb)\s+(?P<mode>.+?)\s+0\s+\S+\s+\S+\s+\S+\s+\S+\s+(?:ok|LOW)\s+\S+\s+\S+"
                        r"\s+current$")
    parsed = {name: row_re.match(rows[ids[name]]) for name in VARIANTS}
    assert all(parsed.values()), rows
    for name, (_, direction, mode) in VARIANTS.items():
        assert (parsed[name]["direction"], parsed[name]["mode"]) == (direction, mode), name
    # with run id, seed, times and results left out, no two rows read the same any more
    assert len({m.group("k", "direction", "beta", "window", "mode") for m in parsed.values()}) == len(VARIANTS)
    assert " 0.1 " in rows[ids["beta"]] and "300 kb" in rows[ids["window"]] and " 8 " in rows[ids["window"]]
    assert "genome-wide" in rows[ids["default"]]

    # the show header: L, seed, direction and every non-default setting
    expect = {"default": ["L=4 seed=0", "close → lower"], "raise": ["close → raise"], "faithful": ["faithful"],
              "random": ["init random"], "bf16": ["bf16"], "beta": ["beta=0.1"], "sweeps": ["max-sweeps 3"],
              "window": ["k=8", "window ±300 kb"]}
    for name, words in expect.items():
        assert main(["show", "--bundle", str(bundle_copy), ids[name]]) == 0
        header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("run "))
        same = header.rsplit("  (", 1)[0] == headers[name].rsplit("  (", 1)[0]  # but '(stored result)' for the time
        assert same and all(w in header for w in words), (name, header)
    assert not re.search(r"k=|beta=|window|faithful|init|bf16|sweeps", headers["default"])

    # the TSV/CSV say direction and beta; BEDPE and interact keep their columns
    default = pd.read_csv(tmp_path / "default.tsv", sep="\t")
    assert list(default.columns) == COLUMNS
    assert set(default["direction"]) == {"close-lower"} and set(default["beta"]) == {0.0}
    raise_ = pd.read_csv(tmp_path / "raise.tsv", sep="\t")
    assert set(raise_["direction"]) == {"close-raise"}
    assert set(pd.read_csv(tmp_path / "beta.tsv", sep="\t")["beta"]) == {0.1}
    bedpe, inter = tmp_path / "b.bedpe", tmp_path / "b.interact"
    assert main(["show", "--bundle", str(bundle_copy), ids["beta"], "--export", str(bedpe), str(inter)]) == 0
    assert all(len(line.split("\t")) == 13 for line in bedpe.read_text().splitlines())
    assert all(len(line.split("\t")) == 18 for line in inter.read_text().splitlines()[1:])


@pytest.mark.parametrize("extra, named", [
    (["--faithful"], "--faithful applies"),
    (["--init", "random", "--max-sweeps", "3"], "--init, --max-sweeps apply"),
    (["-k", "8"], "-k applies"),
    (["--precision", "bf16"], "--precision applies"),
])
def test_grids_only_options_are_refused_for_baselines(bundle_copy, tmp_path, capsys, extra, named):
    base = ["--bundle", str(bundle_copy), "--gene", "GAD1", "--cell-type", "VIP", "--method", "saliency", *extra]
    pairs = tmp_path / "p.tsv"
    pairs.write_text("gene\tcell_type\nGAD1\tVIP\n")
    for cmd in (["explain", *base, "-L", "4"], ["stability", *base, "--seeds", "0,1"],
                ["batch", *base[:2], "--pairs", str(pairs), *base[6:]]):
        assert main(cmd) == 2, cmd
        err = capsys.readouterr().err
        assert named in err and "to --method grids only" in err, err
    assert ResultStore(bundle_copy / "results.sqlite").list() == []  # nothing ran, nothing stored


def test_compare_gives_grids_options_to_grids_only(bundle_copy, capsys, one_thread):
    """A baseline run by `compare --faithful -k 8` is the one `explain --method saliency` stores, not a twin."""
    args = ["--bundle", str(bundle_copy), "--gene", "GAD1", "--cell-type", "VIP", "-L", "4"]
    assert main(["compare", *args, "--methods", "saliency", "--faithful", "-k", "8"]) == 0
    assert "take minutes per gene" not in capsys.readouterr().err  # no slow method asked for: no note
    store = ResultStore(bundle_copy / "results.sqlite")
    by_method = {r["method"]: store.get(r["run_id"]) for r in store.list()}
    assert by_method["grids"].settings["faithful"] and by_method["grids"].settings["k"] == 8
    assert not by_method["saliency"].settings["faithful"] and by_method["saliency"].settings["k"] == 32
    assert main(["explain", *args, "--method", "saliency"]) == 0
    assert "stored result" in capsys.readouterr().out and len(store.list()) == 2


def test_k_above_the_candidate_pool_is_noted(bundle_copy, small_bundle, small_model, capsys, one_thread):
    from grids_core.explain.gene import build_objective, window_mask
    from grids_core.explain.grids import candidate_pool

    window = 300_000
    pool = len(candidate_pool(build_objective(small_bundle, small_model, ExplainRequest("GAD1", "VIP")),
                              window_mask(small_bundle, "GAD1", window)))
    assert pool > 3 + GRIDS_ONLY["k"][1]
    base = ["explain", "--bundle", str(bundle_copy), "--gene", "GAD1", "--cell-type", "VIP", "-L", "3",
            "--window", str(window)]
    assert main([*base, "-k", str(pool + 50)]) == 0
    err = capsys.readouterr().err
    assert f"note: -k {pool + 50} is more than the candidate pool allows: {pool} peaks" in err, err
    assert f"at most the {pool - 3} outside the subset" in err and "k is capped there" in err
    assert main([*base, "-k", str(pool - 3)]) == 0  # exactly the cap: nothing to say
    assert "note: -k" not in capsys.readouterr().err
    assert main([*base, "--faithful", "-k", str(pool + 1)]) == 0  # faithful may propose members: the whole pool
    assert f"at most the {pool} of them" in capsys.readouterr().err


def test_batch_options_are_checked_before_anything_starts(bundle_copy, tmp_path, capsys, monkeypatch):
    def never(*a, **k):
        raise AssertionError("the batch went on to load the bundle or start Dask")

    monkeypatch.setattr(batch_mod, "expand_pairs", never)
    monkeypatch.setattr(batch_mod, "run_batch", never)
    pairs = tmp_path / "p.tsv"
    pairs.write_text("gene\tcell_type\nGAD1\tVIP\n")
    base = ["batch", "--bundle", str(bundle_copy), "-L", "3"]
    cases = [
        (["--cell-type", "VIP", "--genes", "GAD1", "--method", "foo"], "Unknown method 'foo'; available: grids, saliency"),
        (["--pairs", str(pairs), "--genes", "GAD1"], "so --genes would be ignored"),
        (["--pairs", str(pairs), "--cell-type", "VIP"], "so --cell-type would be ignored"),
        (["--cell-type", "VIP", "--genes", "GAD1", "--workers", "0"], "--workers must be at least 1"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2, extra
        assert message in capsys.readouterr().err


def test_dashboard_link_only_where_the_scheduler_can_serve_it(bundle_copy, capsys, monkeypatch):
    class Remote:
        dashboard_link = "http://h:8787/status"

        def __init__(self, answer):
            self.answer = answer

        def run_on_scheduler(self, fn):
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    assert batch_mod.dashboard_link(Remote(False), local=False) is None
    assert batch_mod.dashboard_link(Remote(True), local=False) == Remote.dashboard_link
    assert batch_mod.dashboard_link(Remote(RuntimeError("no")), local=False) == Remote.dashboard_link
    assert isinstance(batch_mod.bokeh_serves_dashboard(), bool)

    base = ["batch", "--bundle", str(bundle_copy), "--cell-type", "VIP", "-L", "3", "--workers", "1"]
    monkeypatch.setattr(batch_mod, "bokeh_serves_dashboard", lambda: False)
    assert main([*base, "--genes", "GAD1"]) == 0
    err = capsys.readouterr().err
    assert "Dask dashboard: http" not in err and "no Dask dashboard: it needs bokeh>=3.1.0" in err
    monkeypatch.setattr(batch_mod, "bokeh_serves_dashboard", lambda: True)
    assert main([*base, "--genes", "GAD2"]) == 0
    assert re.search(r"Dask dashboard: http://127\.0\.0\.1:\d+/status", capsys.readouterr().err)


def test_unreadable_model_says_so_without_torch_advice(bundle_copy, tmp_path, capsys):
    from grids_core.errors import ModelError
    from grids_core.train import load_model

    good = (bundle_copy / "models" / "default.pt").read_bytes()
    bad = {"garbage.pt": b"not a checkpoint" * 100, "truncated.pt": good[: len(good) // 2], "empty.pt": b""}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ModelError) as info:
            load_model(tmp_path / name)
        msg = str(info.value)
        assert "is not a readable GRIDS model checkpoint" in msg and "grids train --bundle DIR" in msg, msg
        assert "weights_only" not in msg and "arbitrary code" not in msg and info.value.__cause__ is None
    (bundle_copy / "models" / "default.pt").write_bytes(bad["garbage.pt"])
    assert main(["explain", "--bundle", str(bundle_copy), "--gene", "GAD1", "--cell-type", "VIP"]) == 2
    err = capsys.readouterr().err
    assert f"Train the model again: `grids train --bundle {bundle_copy}`." in err and "weights_only" not in err


def test_show_notes_a_run_of_another_model(bundle_copy, tmp_path, capsys, one_thread):
    args = ["--bundle", str(bundle_copy)]
    assert main(["explain", *args, "--gene", "GAD2", "--cell-type", "SST", "-L", "3"]) == 0
    run_id = ResultStore(bundle_copy / "results.sqlite").list()[0]["run_id"]
    capsys.readouterr()
    assert main(["show", *args, run_id]) == 0
    assert "note:" not in capsys.readouterr().err  # the selected model made it
    other = tmp_path / "other.pt"
    payload = torch.load(bundle_copy / "models" / "default.pt", weights_only=True)
    first = next(iter(payload["state_dict"]))
    payload["state_dict"][first] = payload["state_dict"][first] + 1  # other weights: another model id
    torch.save(payload, other)
    assert main(["runs", *args, "--model", str(other)]) == 0
    assert "other (" in capsys.readouterr().out
    for extra in ([], ["--json"]):
        assert main(["show", *args, "--model", str(other), run_id, *extra]) == 0
        out, err = capsys.readouterr()
        assert f"note: run {run_id} was made by model" in err and str(other) in err
        if extra:
            assert json.loads(out)["run_id"] == run_id  # stdout stays plain JSON


def test_help_shows_defaults_and_methods_and_empty_export_is_refused(bundle_copy, capsys):
    from grids_core.explain.registry import methods

    assert list(METHOD_NAMES) == list(methods())
    defaults = build_parser().parse_args(["explain", "--gene", "G", "--cell-type", "C"])
    request = ExplainRequest("G", "C")
    for name, (_, default) in GRIDS_ONLY.items():
        assert getattr(defaults, name) == default == getattr(request, name) == DEFAULT_SETTINGS[name]
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "subset size: peaks in the explanation (default: 10)" in text
    assert "(default: 32)" in text and "explanation method (default: grids)" in text
    assert all(m in text for m in METHOD_NAMES) and "lime, sage and cxplain take minutes per gene" in text
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "lime, sage and cxplain take minutes per gene, so --methods picks a subset" in text

    n_runs = len(ResultStore(bundle_copy / "results.sqlite").list())
    assert main(["explain", "--bundle", str(bundle_copy), "--gene", "GAD1", "--cell-type", "VIP", "--export"]) == 2
    assert "--export needs one or more file names" in capsys.readouterr().err
    assert len(ResultStore(bundle_copy / "results.sqlite").list()) == n_runs  # refused before any work
    assert main(["show", "--bundle", str(bundle_copy), "whatever", "--export"]) == 2
    assert "--export needs one or more file names" in capsys.readouterr().err


def test_readme_documents_every_export_column_and_the_score_scaling(small_bundle):
    """Every column the TSV export writes is in the README table, and what it says about scores holds."""
    from grids_core.links import export_text, linkage_table
    from tests.test_store_links import make_result

    text = README.read_text()
    section = text[text.index("### Export formats"):text.index("## Bring your own data")]
    documented = set(re.findall(r"`([a-z_0-9]+)`", section))
    links = linkage_table(small_bundle, make_result(small_bundle))
    written = list(pd.read_csv(io.StringIO(export_text(links, "tsv")), sep="\t").columns)
    assert written == COLUMNS and not set(written) - documented, set(written) - documented
    assert "not comparable" in section and "start1 > start2" in section
    # the interact/BED score is |drop_one| scaled to the file's own largest |drop_one|
    bed = [line.split("\t") for line in export_text(links, "bed").splitlines()]
    scores = {f[3].split("|")[1]: int(f[4]) for f in bed}
    eff = np.abs(links["drop_one"].to_numpy())
    expected = np.round(1000 * eff / eff.max()).astype(int)
    assert [scores[p] for p in links["peak"]] == expected.tolist() and max(scores.values()) == 1000
    half = links.assign(drop_one=links["drop_one"] / 2)  # another run, effects half as large: same scores
    assert export_text(half, "bed") == export_text(links, "bed")


def test_no_model_and_unknown_gene_name_the_real_bundle(bundle_copy, tmp_path, capsys):
    """Messages suggest commands with this bundle's path, not a DIR placeholder."""
    nomodel = tmp_path / "nomodel"
    shutil.copytree(bundle_copy, nomodel, ignore=shutil.ignore_patterns("models"))
    for cmd in (["genes"], ["explain", "--gene", "GAD1", "--cell-type", "VIP"],
                ["batch", "--cell-type", "VIP", "--genes", "GAD1", "--workers", "1"]):
        assert main([cmd[0], "--bundle", str(nomodel), *cmd[1:]]) == 2, cmd
        err = capsys.readouterr().err
        assert "No model at" in err and "DIR" not in err, err
        assert re.search(rf"`grids train --bundle \S*{re.escape(nomodel.name)}`", err), err
    other = tmp_path / "other.pt"
    assert main(["genes", "--bundle", str(nomodel), "--model", str(other)]) == 2
    assert f"`grids train --bundle {nomodel} --out {other}`" in capsys.readouterr().err
    assert main(["explain", "--bundle", str(bundle_copy), "--gene", "GADX", "--cell-type", "VIP"]) == 2
    err = capsys.readouterr().err
    assert f"`grids genes --bundle {bundle_copy}`" in err and "DIR" not in err, err


def test_info_prints_counts_per_cell_type_and_the_model_r(bundle_copy, small_bundle, small_model, tmp_path, capsys):
    from grids_core.train import PREDICTABLE_R

    assert main(["info", "--bundle", str(bundle_copy)]) == 0
    out = capsys.readouterr().out
    b = small_bundle
    assert f"{b.atac.shape[0]:,} cells x {b.atac.shape[1]:,} peaks x {b.rna.shape[1]:,} genes" in out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["cell_type", "cells"])
    assert lines[head].split() == ["cell_type", "cells", "train", "val", "test"]
    table = {r.split()[0]: [int(v) for v in r.split()[1:]] for r in lines[head + 1:head + 2 + len(b.cell_types)]}
    splits = b.cells.groupby(["cell_type", "split"]).size()
    for ct in b.cell_types:
        assert table[ct] == [int((b.cells["cell_type"] == ct).sum()), *(int(splits.get((ct, s), 0))
                                                                        for s in ("train", "val", "test"))], ct
    assert table["total"][0] == len(b.cells)
    q = [v for v in small_model.meta["quality"].values() if v == v]
    assert (f"median held-out r {small_model.meta['median_r']:.3f} over {len(q)} genes; "
            f"{sum(v < PREDICTABLE_R for v in q)} below {PREDICTABLE_R}") in out
    assert main(["info", "--bundle", str(bundle_copy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["cells"] == len(b.cells)
    nomodel = tmp_path / "nomodel"
    shutil.copytree(bundle_copy, nomodel, ignore=shutil.ignore_patterns("models"))
    assert main(["info", "--bundle", str(nomodel)]) == 0
    assert f"model: none at {nomodel / 'models' / 'default.pt'} (train one: `grids train --bundle {nomodel}`)" in \
        capsys.readouterr().out


def test_runs_flag_low_confidence_runs_as_explain_does(bundle_copy, small_model, capsys, one_thread):
    q = {g: r for g, r in small_model.meta["quality"].items() if r == r}
    low = min(q, key=q.get)
    assert q[low] < 0.3  # the fixture's model has genes it cannot predict
    ids = {}
    for gene in ("GAD1", low):
        assert main(["explain", "--bundle", str(bundle_copy), "--gene", gene, "--cell-type", "VIP", "-L", "3"]) == 0
        out = capsys.readouterr().out
        ids[gene] = next(line for line in out.splitlines() if line.startswith("run ")).split()[1]
    assert "WARNING:" in out  # explain flagged the low gene
    assert main(["runs", "--bundle", str(bundle_copy)]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0].split()
    assert head[head.index("recall") + 1:head.index("recall") + 4] == ["r", "r_in_type", "confidence"]
    rows = _runs_rows(out)
    store = ResultStore(bundle_copy / "results.sqlite")
    for gene, run_id in ids.items():
        res, cells = store.get(run_id), rows[run_id].split()
        col = {name: cells[head.index(name) + 2] for name in ("r", "r_in_type", "confidence")}  # + 2: "close → lower"
        assert col == {"r": f"{res.gene_r:.4g}", "r_in_type": f"{res.heldout['r_in_type']:.4g}",
                       "confidence": "ok" if res.predictable else "LOW"}, (gene, col)
    assert rows[ids[low]].split()[head.index("confidence") + 2] == "LOW"
    assert rows[ids["GAD1"]].split()[head.index("confidence") + 2] == "ok"
    assert "LOW (1 of 2): the surrogate's held-out r of the gene is below 0.3" in out
