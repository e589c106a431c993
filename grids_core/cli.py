"""The ``grids`` command line: simulate, prepare, train, explain, compare, stability, batch, show, runs, genes, mnist, info."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from grids_core.errors import GridsError, SettingsError, UnknownNameError
from grids_core.results import DEFAULT_SETTINGS, DIRECTIONS
from grids_core.settings import DEFAULT_HOME, Settings

DEFAULT_BUNDLE = DEFAULT_HOME / "default"
# grids_core.explain.registry.methods(), spelled out so `--help` needs no torch import (a test keeps them equal)
METHOD_NAMES = ("grids", "saliency", "smoothgrad", "ig", "ablation", "random", "sage", "lime", "cxplain", "fimap",
                "correlation")
SLOW_METHODS = ("lime", "sage", "cxplain")  # minutes per gene on a small CPU
SLOW_TEXT = ", ".join(SLOW_METHODS[:-1]) + " and " + SLOW_METHODS[-1]
# the options of the GRIDS search: option -> (its flag, its default); a baseline has no search to tune
GRIDS_ONLY = {name: (flag, DEFAULT_SETTINGS[name]) for name, flag in (
    ("k", "-k"), ("init", "--init"), ("faithful", "--faithful"), ("max_sweeps", "--max-sweeps"),
    ("precision", "--precision"))}


def _progress_bar(desc: str) -> tuple[Callable[[float, str], None], Callable[[], None]]:
    """A tqdm bar driven by the engine's progress(fraction, message) callback."""
    from tqdm import tqdm

    class Bar(tqdm):
        message = ""

        @property
        def format_dict(self):
            return {**super().format_dict, "message": self.message}

    bar = Bar(total=1000, desc=desc, bar_format="{desc}: {percentage:3.0f}%|{bar}| {message} [{elapsed}]",
              file=sys.stderr)

    def update(frac: float, msg: str) -> None:
        bar.n = int(max(0.0, min(1.0, frac)) * 1000)
        bar.message = msg[:60]
        bar.refresh()

    return update, bar.close


def _note(text: str) -> None:
    """A line on stderr that leaves a running progress bar intact."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(bundle_dir=Path(args.bundle), model_path=getattr(args, "model", None), device=getattr(args, "device", None))


# ---- commands -----------------------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    from grids_core import bundle as bundle_io
    from grids_core.simulate import simulate

    out = bundle_io.check_output_dir(args.out, args.force)
    update, close = _progress_bar("simulate")
    try:
        b, _ = simulate(n_cells=args.cells, n_peaks=args.peaks, seed=args.seed, progress=update,
                        confounded=args.confounded)
        bundle_io.save(b, out, overwrite=args.force)
    finally:
        close()
    c = b.manifest["counts"]
    print(f"Wrote {out}: {c['cells']} cells x {c['peaks']} peaks x {c['genes']} genes "
          f"(ATAC density {c['atac_nonzero'] / (c['cells'] * c['peaks']):.2%}); simulated layers: "
          + ", ".join(k for k, v in b.manifest["provenance"].items() if v != "real"))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """`grids prepare`: user multiome files -> a validated bundle (see grids_core.ingest)."""
    from grids_core.ingest import PrepareInputs, PrepareOptions, prepare

    inputs = PrepareInputs(**{k: getattr(args, k) for k in PrepareInputs.__dataclass_fields__})
    options = PrepareOptions(**{k: getattr(args, k) for k in PrepareOptions.__dataclass_fields__})
    update, close = _progress_bar("prepare")
    try:
        b = prepare(inputs, options, out=args.out, overwrite=args.force, progress=update)
    finally:
        close()
    c, rep = b.manifest["counts"], b.manifest["cells_report"]
    bc = rep.get("barcodes") or rep.get("barcodes_atac", {})
    failed = {k[len("failed_"):]: v for k, v in rep.get("qc", {}).items() if k.startswith("failed_")}
    print(f"Wrote {args.out}: {c['cells']} cells x {c['peaks']} peaks x {c['genes']} genes "
          f"({'co-assayed' if b.manifest['paired'] else 'unpaired'}); cell types "
          + ", ".join(f"{t} {n}" for t, n in b.cells["cell_type"].value_counts().items()))
    print(f"barcodes {bc.get('counts')} -> {bc.get('shared')} shared; failed QC {failed}; "
          f"dropped types {rep.get('cell_types', {}).get('dropped_types') or 'none'}")
    for note in b.manifest.get("notes", []):  # what was left out, also in manifest.json 'notes'
        print(f"note: {note}")
    print(f"Next: grids train --bundle {args.out}  then  python app.py --bundle {args.out}")
    return 0


def _check_model_out(out: Path) -> None:
    """The model path must be a file we can write (its folder is created as needed)."""
    from grids_core.fileio import probe_writable_parent

    if out.is_dir():
        raise SettingsError(f"--out {out} is a folder: give the model file's path, e.g. {out / 'default.pt'}.")
    try:
        probe_writable_parent(out)
    except OSError as exc:
        raise SettingsError(f"Cannot write the model at {out}: {exc.strerror or exc}. Pick another --out.") from exc


def cmd_train(args: argparse.Namespace) -> int:
    from grids_core import bundle as bundle_io
    from grids_core.train import TrainConfig, default_model_path, save_model, train

    b = bundle_io.load(args.bundle)
    if args.cis_hubs is not None and args.cis_hubs < 0 or args.cis_window is not None and args.cis_window <= 0:
        raise SettingsError("--cis-hubs must be >= 0 and --cis-window a positive number of bp.")
    if args.promoter_window is not None and args.promoter_window < 0:
        raise SettingsError("--promoter-window must be >= 0 bp (0 turns the additive promoter weight off).")
    steps = ("steps_atac", "steps_rna", "steps_maps", "steps_paired", "steps_cis")
    negative = [f"--{n.replace('_', '-')} {getattr(args, n)}" for n in steps if (getattr(args, n) or 0) < 0]
    if negative or args.seed < 0:
        raise SettingsError(f"{', '.join(negative) or f'--seed {args.seed}'}: step counts and the seed must be >= 0.")
    if args.cis_hubs == 0 and args.promoter_window:
        raise SettingsError("--promoter-window needs cis hubs (--cis-hubs > 0): with --cis-hubs 0 it would be ignored.")
    cfg = TrainConfig(seed=args.seed, device=args.device)
    for name in (*steps, "cis_hubs", "cis_window", "promoter_window"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    out = Path(args.out) if args.out else default_model_path(args.bundle)
    _check_model_out(out)  # before minutes of training, not after
    update, close = _progress_bar("train")
    try:
        tm = train(b, cfg, progress=update)
    finally:
        close()
    save_model(tm, out)
    q = tm.meta["quality"]
    markers = sorted({g for _, g in b.marker_pairs() if g in q})
    print(f"Saved {out} (model {tm.model_id}) in {tm.meta['train_seconds']:.1f} s on {tm.meta['device']}; "
          f"median held-out r over {len(q)} genes = {tm.meta['median_r']:.3f}")
    if markers:
        which = "the markers" if b.manifest.get("markers") else "the paper's marker genes found in this bundle"
        print(f"held-out Pearson r of {which}: " + ", ".join(f"{g} {q[g]:.2f}" for g in markers))
    return 0


def _check_method(method: str) -> None:
    """An unknown --method is refused before anything is loaded or started."""
    from grids_core.errors import suggest
    from grids_core.explain.registry import methods

    if method not in methods():
        raise UnknownNameError(f"Unknown method {method!r}; available: {', '.join(methods())}." + suggest(method, methods()))


def _check_grids_only(args: argparse.Namespace) -> None:
    """-k, --init, --faithful, --max-sweeps and --precision tune the GRIDS search: with a baseline they would
    change nothing but the run key (a new stored run identical to the plain one), so they are refused."""
    if args.method == "grids":
        return
    given = [flag for name, (flag, default) in GRIDS_ONLY.items() if getattr(args, name, default) != default]
    if given:
        raise SettingsError(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to --method grids only: the "
            f"{args.method} baseline has no search to tune. Drop {'it' if len(given) == 1 else 'them'}, or use "
            "--method grids."
        )


def _request(args: argparse.Namespace):
    from grids_core.explain.gene import ExplainRequest

    _check_method(args.method)
    _check_grids_only(args)
    value, sign = DIRECTIONS[args.direction]
    req = ExplainRequest(
        gene=args.gene, cell_type=args.cell_type, method=args.method, L=args.L, k=args.k, value=value, sign=sign,
        beta=args.beta, seed=args.seed, window=args.window, init=args.init, faithful=args.faithful,
        max_sweeps=args.max_sweeps, precision=args.precision,
    )
    req.validate()  # before any progress bar or loading
    return req


def _note_k_above_pool(settings: Settings, req) -> None:
    """A GRIDS step ranks at most the candidates outside the subset: a larger -k changes nothing but time."""
    if req.method != "grids" or req.k <= GRIDS_ONLY["k"][1]:  # the default k: no note, whatever the pool
        return
    from grids_core.explain.gene import pool_size
    from grids_core.jobs import load_context

    bundle = load_context(settings).bundle
    cell = bundle.check_cell_type(req.cell_type)
    pool = pool_size(bundle, req)
    cap = pool if req.faithful else pool - req.L  # the search never proposes a current member (faithful: it may)
    if req.L <= pool and req.k > cap:
        _note(f"note: -k {req.k} is more than the candidate pool allows: {pool} peaks can change in "
              f"{cell}'s training cells{' within the window' if req.window else ''}, and a step ranks at "
              f"most the {cap} {'of them' if req.faithful else 'outside the subset'}. k is capped there: any k from "
              f"{cap} up gives the same answer, each step then scoring every candidate exactly (slow; default "
              f"{GRIDS_ONLY['k'][1]}).")


def cmd_explain(args: argparse.Namespace) -> int:
    from grids_core.jobs import load_context, run_explanation

    settings = _settings(args)
    req = _request(args)
    _check_exports(args.export)
    _note_k_above_pool(settings, req)
    update, close = _progress_bar(f"{args.method} {args.gene}/{args.cell_type}")
    try:
        result, stored = run_explanation(settings, req, progress=update, force=args.force)
    finally:
        close()
    ctx = load_context(settings)
    _print_result(ctx.bundle, result, stored)
    if args.export:
        _export(ctx.bundle, result, args.export)
    return 0


def _check_exports(paths: list[str] | None) -> None:
    from grids_core.links import check_export_path

    if paths is not None and not paths:  # `--export` with no file after it would write nothing
        raise SettingsError("--export needs one or more file names: FILE.tsv, .csv, .bedpe, .interact or .bed "
                            "(the extension picks the format).")
    for p in paths or []:
        check_export_path(p)


def _export(bundle, result, paths: list[str]) -> None:
    from grids_core.links import linkage_table, write_export

    links = linkage_table(bundle, result)
    for p in paths:
        print(f"wrote {write_export(links, p)}")


def _print_result(bundle, result, stored: bool) -> None:
    from grids_core.links import linkage_table, locality_rows, reading_notes

    links = linkage_table(bundle, result)
    h = result.heldout
    print(f"\nrun {result.run_id}  {result.method}  {result.gene} in {result.cell_type}  {_settings_text(result.settings)}"
          f"  ({'stored result' if stored else f'{result.runtime_s:.2f} s'})")
    if not result.predictable:
        print(f"WARNING: {result.quality_warning()}")
    cols = ["rank", "peak", "peak_chrom", "peak_start", "peak_end", "distance_to_tss", "drop_one", "single"]
    print(links[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"objective J: {result.baseline_objective:.4g} -> {result.objective:.4g}  "
          f"held-out ({h.get('n_cells')} test cells): delta {h.get('delta', float('nan')):.4g} "
          f"({100 * h.get('relative', float('nan')):.1f}% of the predicted mean {h.get('mean_before', float('nan')):.4g}"
          + (f"; measured {h['mean_observed']:.4g}" if "mean_observed" in h else "") + ")"
          f"  surrogate r = {result.gene_r:.2f}"
          + (f" (within {result.cell_type}: {h['r_in_type']:.2f})" if "r_in_type" in h else ""))
    if len(set(result.subset)) < len(result.subset):
        print(f"NOTE: {len(set(result.subset))} distinct peaks of L = {len(result.subset)}: the reference behaviour "
              "(--faithful) lets a peak fill two rows.")
    if not h.get("n_cells"):
        print(f"NOTE: {result.cell_type} has no held-out test cells in this bundle, so the held-out effect is "
              "unavailable; the subset was learned on its training cells.")
    if result.truth:
        t = result.truth
        print(f"planted truth: {t['hits']}/{t['n_planted']} recovered (recall {t['recall']:.2f}, precision "
              f"{t['precision']:.2f}), decoys selected {t['decoys_selected']}")
    if result.locality:
        share = " (% of peaks)"
        print("locality: " + "; ".join(f"{value} {label.removesuffix(share)}" if label.endswith(share) else
                                       f"{label} {value}" for label, value in locality_rows(result.locality)))
    for note in reading_notes(links, result.settings, result.truth):
        print(f"NOTE: {note}")


def _kb(bp) -> str:
    return f"{int(bp) / 1000:g} kb"


def _settings_text(settings: dict) -> str:
    """'L=10 seed=0  close → lower' and every setting that differs from the defaults (k, beta, window, mode)."""
    from grids_core.links import direction_label, mode_label

    bits = [f"L={settings.get('L')} seed={settings.get('seed')}", direction_label(settings)]
    extra = []
    if settings.get("k", DEFAULT_SETTINGS["k"]) != DEFAULT_SETTINGS["k"]:
        extra.append(f"k={settings['k']}")
    if float(settings.get("beta") or 0.0) != DEFAULT_SETTINGS["beta"]:
        extra.append(f"beta={float(settings['beta']):g}")
    if settings.get("window"):
        extra.append(f"window ±{_kb(settings['window'])}")
    if extra:
        bits.append(" ".join(extra))
    if mode_label(settings):
        bits.append(mode_label(settings))
    return "  ".join(bits)


def _other_model_note(settings: Settings, result) -> None:
    """Say so when the run shown was made by another model than the selected one (as `grids runs` marks it)."""
    from grids_core.train import model_file_id

    current = model_file_id(settings.model_path)
    if current is not None and result.model_id != current:
        _note(f"note: run {result.run_id} was made by model {result.model_id}, not by the selected model "
              f"{settings.model_path} ({current}); asking `grids explain` for the same settings would compute a "
              "new run with the selected model.")


def cmd_show(args: argparse.Namespace) -> int:
    from grids_core import bundle as bundle_io
    from grids_core.store import ResultStore

    settings = _settings(args)
    _check_exports(args.export)
    bundle = bundle_io.load(settings.bundle_dir)  # a stored run needs the bundle, not the model
    result = ResultStore(settings.store_path).require(args.run)
    if args.json:  # machine-readable: JSON only, missing numbers as null
        print(json.dumps(_json_safe(json.loads(result.to_json())), indent=1))
    else:
        _print_result(bundle, result, True)
    _other_model_note(settings, result)
    if args.export:
        _export(bundle, result, args.export)
    return 0


def _json_safe(x):
    """NaN/inf -> None, recursively (strict JSON for jq and friends)."""
    if isinstance(x, float):
        return x if x == x and abs(x) != float("inf") else None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def _run_settings_columns(settings: dict) -> dict:
    """The columns of `grids runs` that tell runs of one gene/type/method apart besides L and seed."""
    from grids_core.links import direction_label, mode_label

    window = settings.get("window")
    return {"k": settings.get("k"), "direction": direction_label(settings), "beta": float(settings.get("beta") or 0.0),
            "window": _kb(window) if window else "genome-wide", "mode": mode_label(settings) or "default"}


def _confidence_columns(result) -> dict:
    """The surrogate's held-out r of the run's gene (pooled; within the cell type where measured) and
    ``confidence`` LOW where `grids explain` flags the run (``result.predictable``), else ok."""
    return {"r": result.gene_r, "r_in_type": (result.heldout or {}).get("r_in_type", float("nan")),
            "confidence": "ok" if result.predictable else "LOW"}


def _low_confidence_note(flags: list[str]) -> None:
    """Explain the LOW marker under a table that has one."""
    from grids_core.train import PREDICTABLE_R

    n = sum(f == "LOW" for f in flags)
    if n:
        print(f"LOW ({n} of {len(flags)}): the surrogate's held-out r of the gene is below {PREDICTABLE_R} (pooled "
              "over cell types or within the run's type): the explanation describes the model, not the biology "
              "(`grids show RUN_ID` says which).")


def cmd_runs(args: argparse.Namespace) -> int:
    from grids_core import bundle as bundle_io
    from grids_core.store import ResultStore

    settings = _settings(args)
    bundle_io.require_bundle_dir(settings.bundle_dir)
    store = ResultStore(settings.store_path)
    rows = store.list(args.gene, args.cell_type, args.method)
    if not rows:
        print("no stored runs")
        return 0
    import pandas as pd

    from grids_core.train import model_file_id

    current = model_file_id(settings.model_path)
    columns, confidence = [], []
    for r in rows:
        res = store.get(r["run_id"])
        columns.append(_run_settings_columns(res.settings if res is not None else {}))
        confidence.append(_confidence_columns(res) if res is not None else {})
    df = pd.DataFrame(rows)
    first = ["run_id", "gene", "cell_type", "method", "L"]
    df = pd.concat([df[first], pd.DataFrame(columns, index=df.index), df.drop(columns=first)], axis=1)
    after = df.columns.get_loc("recall") + 1  # beside the results they qualify
    df = pd.concat([df.iloc[:, :after], pd.DataFrame(confidence, index=df.index, columns=["r", "r_in_type", "confidence"]),
                    df.iloc[:, after:]], axis=1)
    df["model"] = ["current" if m == current else f"other ({m})" for m in df["model_id"]]
    for col in ("heldout_delta", "recall", "runtime_s"):
        df[col] = pd.to_numeric(df[col])
    if df["recall"].isna().all():  # no planted truth (real data): no recall column
        df = df.drop(columns="recall")
    print(df.drop(columns=["model_id", "family"], errors="ignore").to_string(index=False, na_rep="—",
                                                                       float_format=lambda v: f"{v:.4g}"))
    _low_confidence_note(df["confidence"].tolist())
    return 0


def cmd_genes(args: argparse.Namespace) -> int:
    from grids_core.jobs import load_context

    ctx = load_context(_settings(args))
    q = ctx.model.meta.get("quality", {})

    df = ctx.bundle.genes[["name", "chrom", "tss", "strand"]].assign(r=lambda d: d["name"].map(q))
    print(df.sort_values("r", ascending=False).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from grids_core import bundle as bundle_io

    b = bundle_io.load(args.bundle)
    manifest = {k: v for k, v in b.manifest.items() if k != "checksums"}
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    import pandas as pd

    n_cells, n_peaks, n_genes = b.atac.shape[0], b.atac.shape[1], b.rna.shape[1]
    print(f"bundle {args.bundle} (id {b.bundle_id}, {b.manifest.get('genome_build', '?')}; "
          f"{'co-assayed' if b.manifest.get('paired', True) else 'unpaired'})")
    if b.manifest.get("description"):
        print(b.manifest["description"])
    print(f"{n_cells:,} cells x {n_peaks:,} peaks x {n_genes:,} genes")
    cell_type = pd.Categorical(b.cells["cell_type"], b.cell_types)  # cells per type, and per split where recorded
    per_type = pd.DataFrame({"cells": pd.Series(cell_type).value_counts(sort=False)})
    if "split" in b.cells:
        splits = pd.crosstab(cell_type, b.cells["split"].to_numpy())
        per_type = per_type.join(splits[[c for c in ("train", "val", "test") if c in splits]])
    per_type.loc["total"] = per_type.sum()
    print(per_type.rename_axis("cell_type").reset_index().rename_axis(None, axis=1).to_string(index=False))
    print(_model_line(args, b))
    prov = pd.DataFrame({"layer": list(manifest.get("provenance", {})),
                         "provenance": list(manifest.get("provenance", {}).values())})
    if len(prov):
        prov["source"] = prov["layer"].map(manifest.get("sources", {})).fillna("")
        print(prov.to_string(index=False))
    markers = [f"{m.get('cell_type') or '?'} {m.get('gene')}" for m in manifest.get("markers") or []]
    if markers:
        print("markers: " + ", ".join(markers))
    for note in manifest.get("notes", []):
        print(f"note: {note}")
    print("(--json prints the whole manifest)")
    return 0


def _model_line(args: argparse.Namespace, bundle) -> str:
    """The model's file, id and median held-out r, or why there is none."""
    from grids_core.errors import ModelError
    from grids_core.train import PREDICTABLE_R, default_model_path, load_model, train_command

    path = Path(args.model) if args.model else default_model_path(args.bundle)
    if not path.exists():
        return f"model: none at {path} (train one: `{train_command(args.bundle, path)}`)"
    try:
        tm = load_model(path, bundle, "cpu")
    except ModelError as exc:
        return f"model {path}: unusable: {exc}"
    q = [v for v in tm.meta.get("quality", {}).values() if v == v]
    low = sum(v < PREDICTABLE_R for v in q)
    return (f"model {path} (id {tm.model_id}): median held-out r {tm.meta.get('median_r', float('nan')):.3f} over "
            f"{len(q)} genes; {low} below {PREDICTABLE_R} (their runs are flagged LOW)")


def cmd_compare(args: argparse.Namespace) -> int:
    from grids_core.explain.registry import methods
    from grids_core.jobs import run_explanation

    settings = _settings(args)
    names = list(methods()) if args.methods == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    if "grids" not in names:
        names.insert(0, "grids")
    unknown = [n for n in names if n not in methods()]
    if unknown:  # before any method runs
        raise UnknownNameError(f"Unknown method(s) {', '.join(unknown)}; available: {', '.join(methods())}.")
    # the GRIDS search options (-k, --init, --faithful, ...) tune GRIDS; the baselines run with their defaults,
    # so they share the stored runs of `grids explain --method NAME`
    defaults = {name: default for name, (_, default) in GRIDS_ONLY.items()}
    requests = {name: _request(argparse.Namespace(**{**vars(args), "method": name,
                                                     **({} if name == "grids" else defaults)}))
                for name in names}  # every setting checked before any method runs
    _note_k_above_pool(settings, requests["grids"])
    slow = [n for n in names if n in SLOW_METHODS]
    if slow:
        _note(f"note: {', '.join(slow)} take minutes per gene (unless stored); --methods picks a subset, e.g. "
              "--methods saliency,ablation,random.")
    rows, results = [], {}
    for name in names:
        req = requests[name]
        update, close = _progress_bar(f"{name} {args.gene}/{args.cell_type}")
        try:
            res, stored = run_explanation(settings, req, progress=update, force=args.force)
        finally:
            close()
        results[name] = res
        grids = set(results["grids"].subset)
        t = res.truth or {}
        rows.append({
            "method": name, "peaks": len(res.subset), "heldout_delta": res.heldout.get("delta"),
            "heldout_rel": res.heldout.get("relative"), "recall": t.get("recall"), "auprc": t.get("auprc"),
            "overlap_grids": len(grids & set(res.subset)), "J": res.objective, "runtime_s": res.runtime_s,
            "stored": stored,
        })
    import pandas as pd

    df = pd.DataFrame(rows)
    if df["recall"].isna().all():  # no planted truth (real data)
        df = df.drop(columns=["recall", "auprc"])
    print(f"\n{args.gene} in {args.cell_type}, L={args.L}: held-out delta on test cells (normalised counts; "
          "more negative = stronger), planted recall and AUPRC of the per-peak ranking, overlap with the "
          "GRIDS subset, J on training cells")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="—"))
    from grids_core.links import short_subset_note

    short = df[df["peaks"] < args.L]
    for name, n in zip(short["method"], short["peaks"], strict=True):
        print(f"NOTE: {short_subset_note(name, int(n), args.L)}")
    return 0


def cmd_stability(args: argparse.Namespace) -> int:
    from grids_core.jobs import load_context
    from grids_core.links import check_export_path, write_export
    from grids_core.stability import parse_seeds, seed_stability

    seeds = parse_seeds(args.seeds)
    if args.table and check_export_path(args.table) not in ("tsv", "csv"):
        raise SettingsError(f"--table writes a table: end {args.table} in .tsv or .csv.")
    settings = _settings(args)
    req = _request(args)
    _note_k_above_pool(settings, req)
    from grids_core.explain.registry import uses_seed

    if len(seeds) > 1 and not uses_seed(req.method, req.settings()):
        _note(f"note: {req.method} with these settings uses no random numbers, so every seed gives the same subset"
              + (" (GRIDS draws on the seed with --init random or --faithful)." if req.method == "grids" else "."))
    update, close = _progress_bar(f"{args.method} {args.gene}/{args.cell_type} x {len(seeds)} seeds")
    try:
        st = seed_stability(settings, req, seeds, progress=update, force=args.force)
    finally:
        close()
    bundle = load_context(settings).bundle
    import pandas as pd

    first = st.results[0]
    print(f"\n{args.method} {first.gene} in {first.cell_type}, L={args.L}, seeds {', '.join(map(str, seeds))}")
    per_seed = pd.DataFrame({
        "seed": st.seeds, "run": [r.run_id for r in st.results], "stored": st.stored,
        "J": [r.objective for r in st.results], "heldout_delta": [r.heldout.get("delta") for r in st.results],
        **({"recall": [(r.truth or {}).get("recall") for r in st.results]} if first.truth else {}),
    })
    print(per_seed.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"Jaccard of the subsets: mean {st.mean_jaccard:.3f}, min {st.min_jaccard:.3f} over "
          f"{len(seeds) * (len(seeds) - 1) // 2} pairs of seeds")
    freq = st.frequency(bundle)
    cols = ["peak", "peak_chrom", "peak_start", "peak_end", "distance_to_tss", "n_seeds", "mean_rank", "mean_drop_one"]
    cols += ["planted"] if first.truth else []
    print(f"peaks chosen by any seed ({len(freq)}; {int((freq['n_seeds'] == len(seeds)).sum())} by every seed):")
    print(freq[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.table:
        print(f"wrote {write_export(freq, args.table)}")
    return 0


def _check_scheduler_address(address: str) -> None:
    """A Dask scheduler address is tcp://HOST:PORT (or tls://, inproc://); the dashboard's http:// link is not."""
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme in ("http", "https"):
        raise SettingsError(f"--scheduler {address} is a web address (the Dask dashboard's?): give the scheduler's, "
                            "tcp://HOST:PORT (port 8786 by default), as `dask scheduler` prints it.")
    if parts.scheme not in ("tcp", "tls", "inproc", "ucx", "ws", "wss") or not parts.hostname or port is None:
        raise SettingsError(f"--scheduler {address!r} is not a scheduler address: give tcp://HOST:PORT (e.g. "
                            "tcp://127.0.0.1:8786), as `dask scheduler` prints it.")


def cmd_batch(args: argparse.Namespace) -> int:
    from grids_core.batch import DASHBOARD_REQUIREMENT, BatchInterrupted, expand_pairs, read_pairs, run_batch

    # every option is checked before the bundle is read or a cluster starts
    if args.pairs and (args.genes or args.cell_type):
        given = " and ".join(f for f, v in (("--genes", args.genes), ("--cell-type", args.cell_type)) if v)
        raise SettingsError(f"--pairs FILE names the gene and cell type of every pair, so {given} would be ignored: "
                            "give either --pairs FILE, or --cell-type TYPE with --genes all|G1,G2,...")
    if args.workers is not None and args.workers < 1:
        raise SettingsError(f"--workers must be at least 1 (got {args.workers}); leave it out for one per core.")
    template = _request(argparse.Namespace(**{**vars(args), "gene": "", "cell_type": ""}))
    if args.workers is not None and args.scheduler:
        _note("note: --workers sizes the LocalCluster only; the cluster at --scheduler keeps its own workers.")
    if args.scheduler:
        _check_scheduler_address(args.scheduler)
    settings = _settings(args)
    settings.bundle_dir, settings.model_path = settings.bundle_dir.resolve(), Path(settings.model_path).resolve()
    pairs = read_pairs(args.pairs) if args.pairs else None
    pairs = expand_pairs(settings, args.cell_type, args.genes, pairs)
    bar: list = []  # (update, close) once the batch knows what it will compute

    def planned(rep, n_todo: int) -> None:
        distinct = len(rep.runs)
        stored = "" if args.force else f", {distinct - n_todo} stored"
        bar.extend(_progress_bar(f"batch: {n_todo} of {distinct} pairs to compute{stored}"))

    def update(frac: float, msg: str) -> None:
        if bar:
            bar[0](frac, msg)

    def started(link: str | None) -> None:
        _note(f"Dask dashboard: {link}" if link else f"note: no Dask dashboard: it needs {DASHBOARD_REQUIREMENT} "
              f"on the scheduler (pip install '{DASHBOARD_REQUIREMENT}').")

    try:
        rep = run_batch(settings, pairs, template, scheduler=args.scheduler, n_workers=args.workers, force=args.force,
                        progress=update, on_plan=planned, on_start=started)
    except KeyboardInterrupt as exc:
        if bar:
            bar[1]()
        rep = exc.report if isinstance(exc, BatchInterrupted) else None
        print(_interrupted_text(rep, args.force) if rep else "interrupted: the pairs finished so far are stored; run "
              "the same command again to go on (stored pairs are reused).", file=sys.stderr)
        return 130
    finally:
        if bar:
            bar[1]()
    _print_batch_table(settings, rep)
    dup = f", {len(rep.duplicates)} named twice (run once)" if rep.duplicates else ""
    replaced = f" ({len(rep.replaced)} replacing stored runs)" if rep.replaced else ""
    print(f"{rep.total} pairs: {len(rep.computed)} computed{replaced}, {len(rep.skipped)} already stored, "
          f"{len(rep.failed)} failed{dup}")
    for key, err in list(rep.failed.items())[:20]:
        print(f"  failed {key}: {err}")
    return 0 if not rep.failed else 1


def _interrupted_text(rep, force: bool) -> str:
    """What Ctrl-C left: pairs stored, pairs left, and how to go on."""
    stored = len(rep.computed) + len(rep.skipped)
    failed = f", {len(rep.failed)} failed" if rep.failed else ""
    how = ("Run the same command again to finish: pairs already stored are reused, not recomputed."
           if not force else "Run the same command without --force to compute only the pairs left (the ones "
           "recomputed so far are stored; with --force every pair is recomputed again).")
    return (f"interrupted: {stored} of {len(rep.runs)} pairs are stored ({len(rep.computed)} computed in this run, "
            f"{len(rep.skipped)} before){failed}; {len(rep.left)} left. {how}")


def _print_batch_table(settings: Settings, rep) -> None:
    """One row per pair the batch stored: run id, whether it was computed now, held-out effect and confidence."""
    import pandas as pd

    from grids_core.jobs import load_context

    store, skipped = load_context(settings).store, set(rep.skipped)
    rows = []
    for run_id in rep.runs:
        res = store.get(run_id)
        if res is None:  # failed (listed below)
            continue
        rows.append({"run_id": run_id, "gene": res.gene, "cell_type": res.cell_type,
                     "status": "stored" if run_id in skipped else "computed",
                     "heldout_delta": res.heldout.get("delta"), **_confidence_columns(res)})
    if rows:
        print(pd.DataFrame(rows).to_string(index=False, na_rep="—", float_format=lambda v: f"{v:.4g}"))
        _low_confidence_note([r["confidence"] for r in rows])


def cmd_mnist(args: argparse.Namespace) -> int:
    from grids_core.mnist import METHODS
    from grids_core.mnist_runs import run_and_store, summary_table

    methods = tuple(METHODS) if args.methods == "all" else tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise SettingsError(f"--methods: {'unknown ' + ', '.join(map(repr, unknown)) if unknown else 'none given'}; "
                            f"choose from {', '.join(METHODS)} (or all).")
    if not 1 <= args.L <= 28 * 28 or args.k < 1:
        raise SettingsError(f"-L must be 1..784 pixels of the 28 x 28 image and -k >= 1 (got L={args.L}, k={args.k}).")
    if "grids" not in methods:  # every method is tested against GRIDS, the reference
        _note("note: GRIDS is the reference every method is tested against: it runs too.")
        methods = ("grids", *methods)
    update, close = _progress_bar("mnist")
    try:
        results = run_and_store(args.home, L=args.L, k=args.k, seed=args.seed, methods=methods, progress=update,
                                force=args.force, digits_dir=args.mnist_dir)
    finally:
        close()
    first = next(iter(results.values()))
    print(f"MNIST 3 vs 8: classifier test accuracy {first.heldout.get('test_accuracy', float('nan')):.3f}; "
          f"L={args.L} pixels set to 0, learned on training 8s, evaluated on {int(first.heldout.get('n_images', 0))} test 8s")
    print("dphi = phi(p(x)) - phi(p(x masked)), phi = log-odds of 8; p = one-sided Wilcoxon GRIDS > method")
    print(summary_table(results).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


# ---- parser -------------------------------------------------------------------------------------
def request_args(sp: argparse.ArgumentParser, seed: bool = True) -> None:
    """The settings of one explanation (shared by explain, compare, stability and batch)."""
    sp.add_argument("-L", type=int, default=10, help="subset size: peaks in the explanation (default: %(default)s)")
    sp.add_argument("-k", type=int, default=GRIDS_ONLY["k"][1],
                    help="GRIDS only: candidates evaluated exactly per step; capped at the candidate pool "
                         "(default: %(default)s)")
    sp.add_argument("--direction", default="close-lower", choices=list(DIRECTIONS),
                    help="peaks closed (v=0) or opened (v=1); expression lowered (sigma=+1) or raised (sigma=-1) "
                         "(default: %(default)s)")
    sp.add_argument("--beta", type=float, default=DEFAULT_SETTINGS["beta"],
                    help="specificity weight against other cell types, 0 to 100 (paper: 0.1; default: %(default)s)")
    if seed:
        sp.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    sp.add_argument("--window", type=int, default=None,
                    help="only peaks within this many bp of the TSS (default: genome-wide)")
    sp.add_argument("--init", default=GRIDS_ONLY["init"][1], choices=["gradient", "random", "single"],
                    help="GRIDS only: initial subset (default: %(default)s)")
    sp.add_argument("--faithful", action="store_true",
                    help="GRIDS only: the authors' reference behaviour (for comparison)")
    sp.add_argument("--max-sweeps", type=int, default=GRIDS_ONLY["max_sweeps"][1],
                    help="GRIDS only: step budget, in sweeps over the L rows (default: %(default)s)")
    sp.add_argument("--precision", default=GRIDS_ONLY["precision"][1], choices=["fp32", "bf16"],
                    help="GRIDS only: bf16 ranks candidates in bfloat16 and accepts on exact float32 (meant for GPUs "
                         "with bf16 units; default: %(default)s)")


METHOD_HELP = f"explanation method (default: %(default)s): {', '.join(METHOD_NAMES)}; {SLOW_TEXT} take minutes per gene"
EXPORT_HELP = ("write the links to one or more files, the format from the extension: .tsv, .csv, .bedpe, .interact "
               "or .bed (README, Export formats)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grids", description="GRIDS: subset explanations of an ATAC->RNA surrogate.")
    sub = p.add_subparsers(dest="command", required=True)

    def bundle_arg(sp: argparse.ArgumentParser, model: bool = True) -> None:
        sp.add_argument("--bundle", default=str(DEFAULT_BUNDLE), help="bundle directory (default: %(default)s)")
        if model:
            sp.add_argument("--model", default=None, help="model checkpoint (default: BUNDLE/models/default.pt)")
        sp.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")

    s = sub.add_parser("simulate", help="write the default semi-synthetic bundle")
    s.add_argument("--out", default=str(DEFAULT_BUNDLE),
                   help="bundle directory to write: new, empty, or a GRIDS bundle with --force (default: %(default)s)")
    s.add_argument("--cells", type=int, default=10_266, help="number of cells (default: %(default)s)")
    s.add_argument("--peaks", type=int, default=20_000,
                   help="peak count (127219 = the paper's width; default: %(default)s)")
    s.add_argument("--seed", type=int, default=0, help="random seed of the simulation (default: %(default)s)")
    s.add_argument("--confounded", action="store_true",
                   help="add a trans programme per marker pair that its decoys track: they predict the gene "
                        "but drive nothing (README, Benchmarks)")
    s.add_argument("--force", action="store_true",
                   help="replace an existing GRIDS bundle at --out (any other file or directory is refused)")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("prepare", help="build a bundle from your multiome data (10x ARC h5, h5ad/h5mu, labels, GTF, TADs, Hi-C)")
    s.add_argument("--out", required=True,
                   help="bundle directory to write: a new or empty directory, or an existing GRIDS bundle with "
                        "--force; never one holding your input files")
    src = s.add_argument_group("cells (one of)")
    src.add_argument("--tenx-h5", dest="tenx_h5", help="Cell Ranger ARC filtered_feature_bc_matrix.h5")
    src.add_argument("--h5mu", help="MuData file with modalities rna and atac")
    src.add_argument("--rna-h5ad", dest="rna_h5ad", help="AnnData of RNA counts (with --atac-h5ad)")
    src.add_argument("--atac-h5ad", dest="atac_h5ad", help="AnnData of ATAC peak counts (with --rna-h5ad)")
    src.add_argument("--rna-layer", dest="rna_layer", help="AnnData layer with raw RNA counts ('raw' = .raw.X; default: layers['counts'] when present, else X)")
    src.add_argument("--atac-layer", dest="atac_layer", help="AnnData layer with ATAC counts ('raw' = .raw.X; default: layers['counts'] when present, else X)")
    src.add_argument("--unpaired", action="store_true", help="ATAC and RNA are different cells (matched by cell type)")
    lab = s.add_argument_group("labels and per-cell metrics")
    lab.add_argument("--labels", help="TSV/CSV with a barcode and a cell-type column")
    lab.add_argument("--rna-labels", dest="rna_labels", help="labels of the RNA cells (unpaired data)")
    lab.add_argument("--atac-labels", dest="atac_labels", help="labels of the ATAC cells (unpaired data)")
    lab.add_argument("--label-barcode-col", dest="label_barcode_col", default="barcode",
                     help="barcode column of the labels table (default: %(default)s)")
    lab.add_argument("--label-col", dest="label_col", default="cell_type",
                     help="cell-type column of the labels table, or of the AnnData obs without --labels "
                          "(default: %(default)s)")
    lab.add_argument("--metrics", help="per-cell QC table, e.g. cellranger-arc per_barcode_metrics.csv")
    lab.add_argument("--metrics-barcode-col", dest="metrics_barcode_col", default="barcode",
                     help="barcode column of the metrics table (default: %(default)s)")
    lab.add_argument("--fragments-col", dest="fragments_col", help="per-cell ATAC fragments column (default: auto)")
    lab.add_argument("--tss-col", dest="tss_col", help="per-cell TSS enrichment column (default: auto)")
    ann = s.add_argument_group("genome and annotation")
    ann.add_argument("--genome", default="hg38", help="genome build of the data (default: %(default)s)")
    ann.add_argument("--chrom-sizes", dest="chrom_sizes", help="chromosome sizes of a build other than hg38: UCSC .chrom.sizes (name<TAB>length, header line "
                          "optional; default: hg38 shipped)")
    ann.add_argument("--chrom-prefix", dest="chrom_prefix", help="add this prefix to chromosome names ('chr' for 1 -> chr1, MT -> chrM; default: none)")
    ann.add_argument("--gtf", help="gene annotation GTF/GTF.gz (default: the 10x feature intervals, which carry no "
                     "strand: genes then get strand '.' and the interval start as TSS)")
    ann.add_argument("--gtf-name-attr", dest="gtf_name_attr", default="gene_name",
                     help="GTF attribute holding the gene symbol (default: %(default)s)")
    ann.add_argument("--tads", help="TAD domains BED (default: none)")
    ann.add_argument("--cool", help="Hi-C .cool/.mcool (contacts around each marker; needs --markers; default: none)")
    ann.add_argument("--hic-resolution", dest="hic_resolution", type=int, default=10_000,
                     help="Hi-C bin size in bp: the .cool's bin size or one resolution of the .mcool "
                          "(default: %(default)s)")
    ann.add_argument("--hic-flank", dest="hic_flank", type=int, default=1_000_000,
                     help="bp of Hi-C kept on each side of a marker gene (default: %(default)s)")
    ann.add_argument("--hic-raw", dest="hic_balance", action="store_const", const=False, default=None,
                     help="raw contact counts even when the cooler has balancing weights")
    sel = s.add_argument_group("QC and selection")
    sel.add_argument("--markers", default="", help="genes always kept (GENE or CELLTYPE:GENE, comma-separated; default: none)")
    sel.add_argument("--n-genes", dest="n_genes", type=int, default=3000,
                     help="top variable genes kept, besides the markers (default: %(default)s)")
    sel.add_argument("--min-atac-counts", dest="min_atac_counts", type=float, default=1000,
                     help="a cell passes with more ATAC fragments than this (peak counts when no fragments column "
                          "is found) (default: %(default)s)")
    sel.add_argument("--min-rna-genes", dest="min_rna_genes", type=float, default=200,
                     help="a cell passes with more detected genes than this (default: %(default)s)")
    sel.add_argument("--min-tss-enrichment", dest="min_tss_enrichment", type=float, default=2.0,
                     help="a cell passes with a TSS enrichment above this, when a column gives it "
                          "(default: %(default)s)")
    sel.add_argument("--min-cells", dest="min_cells", type=int, default=20,
                     help="fewest cells per cell type after QC (default: %(default)s)")
    sel.add_argument("--drop-small-types", dest="drop_small_types", action="store_true",
                     help="drop cell types below --min-cells instead of failing")
    sel.add_argument("--min-barcode-overlap", dest="min_barcode_overlap", type=float, default=0.5,
                     help="fraction of the smallest barcode set that must match to proceed on the intersection "
                          "(default: %(default)s)")
    sel.add_argument("--merge-overlapping-peaks", dest="merge_overlapping_peaks", action="store_true",
                     help="merge each group of overlapping peaks into one (counts summed) instead of failing")
    sel.add_argument("--seed", type=int, default=0,
                     help="seed of the train/val/test splits (and unpaired matching) (default: %(default)s)")
    s.add_argument("--force", action="store_true",
                   help="replace an existing GRIDS bundle at --out (any other file or directory is refused)")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("train", help="train the surrogate on a bundle")
    bundle_arg(s, model=False)
    s.add_argument("--out", "--model", dest="out", default=None,
                   help="checkpoint to write (default: BUNDLE/models/default.pt, which explain and the app load)")
    s.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    for name in ("atac", "rna", "maps", "paired", "cis"):
        s.add_argument(f"--steps-{name}", dest=f"steps_{name}", type=int, default=None)
    s.add_argument("--cis-hubs", type=int, default=None,
                   help="saturating hubs per gene over its cis peaks (default 3; 0 = the paper's reference architecture)")
    s.add_argument("--cis-window", type=int, default=None, help="bp around each TSS feeding its hubs (default 500000)")
    s.add_argument("--promoter-window", type=int, default=None,
                   help="peaks within this many bp of a TSS also get an additive weight beside the hubs "
                        "(default 1000; 0 = none; needs --cis-hubs > 0)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("explain", help="explain one gene in one cell type")
    bundle_arg(s)
    s.add_argument("--gene", required=True)
    s.add_argument("--cell-type", required=True)
    s.add_argument("--method", default="grids", help=METHOD_HELP)
    request_args(s)
    s.add_argument("--force", action="store_true", help="recompute even if a stored result exists")
    s.add_argument("--export", nargs="*", default=None, metavar="FILE", help=EXPORT_HELP)
    s.set_defaults(func=cmd_explain)

    compare_help = (f"GRIDS and the baselines at equal L for one gene x cell type; {SLOW_TEXT} take minutes per "
                    "gene, so --methods picks a subset")
    s = sub.add_parser("compare", help=compare_help, description=compare_help + ". The GRIDS search options (-k, "
                       "--init, --faithful, --max-sweeps, --precision) apply to GRIDS; the baselines run with their "
                       "defaults.")
    bundle_arg(s)
    s.add_argument("--gene", required=True)
    s.add_argument("--cell-type", required=True)
    s.add_argument("--methods", default="all",
                   help=f"'all' or a comma-separated list of {', '.join(METHOD_NAMES[1:])} (GRIDS is always included; "
                        f"{SLOW_TEXT} take minutes per gene; default: %(default)s)")
    request_args(s)
    s.add_argument("--force", action="store_true")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("stability", help="run one explanation with several seeds: Jaccard of the subsets, peak frequency")
    bundle_arg(s)
    s.add_argument("--gene", required=True)
    s.add_argument("--cell-type", required=True)
    s.add_argument("--method", default="grids", help=METHOD_HELP)
    request_args(s, seed=False)
    s.add_argument("--seeds", default="0-4", help="seeds to compare: a list (0,1,2) and/or ranges (0-4); default %(default)s")
    s.add_argument("--force", action="store_true", help="recompute even if stored results exist")
    s.add_argument("--table", help="write the per-peak frequency table to FILE.tsv or FILE.csv")
    s.set_defaults(func=cmd_stability, seed=0)

    s = sub.add_parser("batch", help="explain many gene x cell type pairs on Dask (resumable)")
    bundle_arg(s)
    s.add_argument("--pairs", help="TSV/CSV with columns gene, cell_type (instead of --cell-type and --genes)")
    s.add_argument("--cell-type", help="with --genes: every listed gene in this cell type")
    s.add_argument("--genes", help="with --cell-type: 'all' or a comma-separated list")
    s.add_argument("--scheduler", help="address of an existing Dask scheduler (tcp://HOST:PORT); default: LocalCluster")
    s.add_argument("--workers", type=int, default=None, help="LocalCluster workers, at least 1 (default: one per core)")
    s.add_argument("--method", default="grids", help=METHOD_HELP)
    request_args(s)
    s.add_argument("--force", action="store_true", help="recompute the pairs already stored and replace them")
    s.set_defaults(func=cmd_batch)

    s = sub.add_parser("show", help="print a stored run")
    bundle_arg(s)
    s.add_argument("run", help="run id (or a unique prefix)")
    s.add_argument("--export", nargs="*", default=None, metavar="FILE", help=EXPORT_HELP)
    s.add_argument("--json", action="store_true", help="print the run as JSON (missing numbers as null)")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("runs", help="list stored runs")
    bundle_arg(s)
    s.add_argument("--gene")
    s.add_argument("--cell-type")
    s.add_argument("--method")
    s.set_defaults(func=cmd_runs)

    s = sub.add_parser("genes", help="genes of the bundle with the surrogate's held-out r")
    bundle_arg(s)
    s.set_defaults(func=cmd_genes)

    s = sub.add_parser("mnist", help="MNIST 3-vs-8 masking benchmark (GRIDS vs baselines)")
    s.add_argument("--home", default=str(DEFAULT_HOME), help="where the classifier and results are kept")
    s.add_argument("-L", type=int, default=64)
    s.add_argument("-k", type=int, default=32)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--methods", default="all",
                   help="'all' or a comma-separated list of: grids,random,saliency,ablation,smoothgrad,ig,sage,lime,cxplain,fimap")
    s.add_argument("--mnist-dir", default=None, help="folder with the standard MNIST IDX files (default: shipped subset)")
    s.add_argument("--force", action="store_true")
    s.set_defaults(func=cmd_mnist)

    s = sub.add_parser("info", help="a bundle's counts (cells per cell type), its model's held-out r and provenance")
    s.add_argument("--bundle", default=str(DEFAULT_BUNDLE), help="bundle directory (default: %(default)s)")
    s.add_argument("--model", default=None, help="model checkpoint (default: BUNDLE/models/default.pt)")
    s.add_argument("--json", action="store_true", help="print the bundle's manifest as JSON instead")
    s.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GridsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `grids runs | head`: the reader left; stay quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # e.g. an output directory the user cannot write
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
