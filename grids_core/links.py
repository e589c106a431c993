"""Linkage tables (one tidy row per gene x peak) and their exports: TSV/CSV, BEDPE, UCSC interact, BED."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from grids_core.bundle import Bundle
from grids_core.errors import SettingsError
from grids_core.fileio import publish_mode
from grids_core.results import DEFAULT_SETTINGS, ExplanationResult

COLUMNS = [
    "gene", "gene_id", "gene_chrom", "tss", "strand", "peak", "peak_chrom", "peak_start", "peak_end", "peak_mid",
    "distance_to_tss", "cell_type", "rank", "drop_one", "single", "method", "direction", "beta", "run_id",
]
FORMATS = ("tsv", "csv", "bedpe", "interact", "bed")


def direction_words(settings: dict) -> tuple[str, str]:
    """('close' | 'open', 'lower' | 'raise'): what a run perturbed and which way it moved the gene (the CLI's
    and the app's wording)."""
    peaks = "close" if float(settings.get("value", 0) or 0) == 0 else "open"
    return peaks, ("lower" if float(settings.get("sign", 1) or 1) > 0 else "raise")


def direction_name(settings: dict) -> str:
    """The ``--direction`` value of a run's settings: close-lower, close-raise, open-raise or open-lower."""
    return "-".join(direction_words(settings))


def direction_label(settings: dict) -> str:
    """'close → lower' etc., as the app's Runs page and run header word it."""
    peaks, goal = direction_words(settings)
    return f"{peaks} → {goal}"


def mode_label(settings: dict) -> str:
    """The search options of a run that differ from the defaults ('faithful', 'init random', 'bf16',
    'max-sweeps 3'), comma-separated; '' for a default run."""
    d = DEFAULT_SETTINGS
    bits = ["faithful"] if settings.get("faithful", d["faithful"]) else []
    if settings.get("init", d["init"]) != d["init"]:
        bits.append(f"init {settings['init']}")
    if settings.get("precision", d["precision"]) != d["precision"]:
        bits.append(str(settings["precision"]))
    if settings.get("max_sweeps", d["max_sweeps"]) != d["max_sweeps"]:
        bits.append(f"max-sweeps {settings['max_sweeps']}")
    return ", ".join(bits)


def seeks_activators(settings: dict) -> bool:
    """close → lower and open → raise look for peaks that activate the gene; the other two directions for
    peaks that act against it."""
    return direction_words(settings) in {("close", "lower"), ("open", "raise")}


def short_subset_note(method: str, n: int, L: int) -> str:
    """Why a method linked ``n`` < L peaks, and what its held-out effect then measures."""
    where = " (those within ±500 kb of the TSS)" if method == "correlation" else ""
    return (f"{n} peaks are linked, not L = {L}: {method} scores only {n} peaks of the candidate pool{where}. Its "
            f"held-out effect is that of {n} peaks: compare it with other methods at L = {n}.")


def reading_notes(links: pd.DataFrame, settings: dict, truth: dict | None) -> list[str]:
    """Notes that keep a result from being misread (the CLI prints them, the app shows them with the run):
    planted recall in a direction that does not look for the planted activators, fewer links than L (a method
    that scores only part of the pool), and links that all lie off the gene's chromosome."""
    if not len(links):
        return []
    gene, chrom = str(links["gene"].iloc[0]), str(links["gene_chrom"].iloc[0])
    peaks, goal = direction_words(settings)
    notes = []
    if truth and not seeks_activators(settings):
        notes.append(f"The planted drivers of this bundle activate {gene}; a {peaks} → {goal} run looks for peaks "
                     f"whose {'closing' if peaks == 'close' else 'opening'} {goal}s it, so it is not expected to "
                     "recover them (the recall is shown for completeness).")
    want = int(settings.get("L") or 0)
    if len(links) < want:
        notes.append(short_subset_note(str(links["method"].iloc[0]) if "method" in links else "this method",
                                       len(links), want))
    if (links["peak_chrom"] != chrom).all():
        notes.append(f"Every linked peak lies off {gene}'s chromosome ({chrom}): trans links reflect what the "
                     "surrogate learned across cells (a cell-state programme, for example), not cis regulation. A "
                     "cis window (the app's 'cis window (kb)', --window on the command line) restricts the search "
                     "to peaks near the TSS.")
    return notes


_SHARES = {"overlaps_gene": "overlap the gene body", "within_10mb": "within 10 Mb of the TSS",
           "same_chromosome": "on the gene's chromosome"}
_DISTANCES = {"closest_distance": "closest peak to the TSS (on its chromosome)",
              "median_distance": "median distance to the TSS (peaks on its chromosome)"}


def locality_rows(locality: dict) -> list[tuple[str, str]]:
    """(label, value) rows of a result's locality metrics, for the CLI and the app; each TAD row names its
    domain (source and 1-based span), since a semi-synthetic bundle can hold a simulated and a real one."""
    rows = []
    for key, label in _SHARES.items():
        if isinstance(locality.get(key), int | float):
            rows.append((f"{label} (% of peaks)", f"{100 * locality[key]:.0f} %"))
    for key in ("tad", "other_tad"):
        tad, share = locality.get(key), locality.get(f"inside_{key}")
        if tad and isinstance(share, int | float):
            start, end, source = tad
            rows.append((f"inside the gene's TAD, {source} {int(start) + 1:,}-{int(end):,} (% of peaks)",
                         f"{100 * share:.0f} %"))
    for key, label in _DISTANCES.items():
        if isinstance(locality.get(key), int | float):
            rows.append((label, f"{locality[key]:,.0f} bp"))
    return rows


def linkage_table(bundle: Bundle, result: ExplanationResult) -> pd.DataFrame:
    """Tidy links of a result; distance_to_tss is signed along the gene's strand (upstream < 0; along the genome
    when the strand is unknown, '.')."""
    g = bundle.gene_row(result.gene)
    idx = np.asarray(result.subset, dtype=np.int64)
    p = bundle.peaks.iloc[idx].reset_index(drop=True)
    mid = ((p["start"] + p["end"]) // 2).astype(np.int64)
    sign = -1 if g["strand"] == "-" else 1  # '.' (strand unknown): genomic orientation
    same = p["chrom"] == g["chrom"]
    dist = pd.Series(np.where(same, (mid - int(g["tss"])) * sign, np.nan)).astype("Int64")
    n = len(idx)
    single = list(result.single) if len(result.single) == n else [np.nan] * n
    return pd.DataFrame(
        {
            "gene": result.gene,
            "gene_id": g["gene_id"],
            "gene_chrom": g["chrom"],
            "tss": int(g["tss"]),
            "strand": g["strand"],
            "peak": p["name"],
            "peak_chrom": p["chrom"],
            "peak_start": p["start"].astype(np.int64),
            "peak_end": p["end"].astype(np.int64),
            "peak_mid": mid,
            "distance_to_tss": dist,
            "cell_type": result.cell_type,
            "rank": np.arange(1, n + 1),
            "drop_one": np.asarray(result.drop_one, dtype=float)[:n] if len(result.drop_one) else np.nan,
            "single": single,
            "method": result.method,
            "direction": direction_name(result.settings),
            "beta": float(result.settings.get("beta", 0.0) or 0.0),
            "run_id": result.run_id,
        },
        columns=COLUMNS,
    )


def _token(x) -> str:
    """A BED-family field: whitespace would split the column, so it becomes '_'."""
    return "_".join(str(x).split()) or "."


def _by_position(df: pd.DataFrame, chrom: str, start: str) -> pd.DataFrame:
    """Rows sorted as ``sort -k1,1 -k2,2n`` (what bedToBigBed, tabix and pairix expect)."""
    return df.sort_values([chrom, start], kind="stable", key=lambda c: c.astype(str) if c.name == chrom else c)


def _scores(effects: pd.Series) -> np.ndarray:
    """BED scores 0-1000: |effect| relative to the largest; 0 where the effect is unknown."""
    eff = np.abs(effects.astype(float).to_numpy())
    top = np.nanmax(eff) if np.isfinite(eff).any() else 0.0
    return np.where(np.isfinite(eff), np.round(1000 * eff / (top if top > 0 else 1.0)), 0).astype(int)


def to_bed(links: pd.DataFrame) -> str:
    """BED6 of the linked peaks, sorted: name gene|peak, score 0-1000 by |drop-one effect|, no strand."""
    rows = _by_position(links.assign(bed_score=_scores(links["drop_one"])), "peak_chrom", "peak_start")
    return "".join(
        f"{r.peak_chrom}\t{r.peak_start}\t{r.peak_end}\t{_token(r.gene)}|{_token(r.peak)}\t{r.bed_score}\t.\n"
        for r in rows.itertuples(index=False)
    )


def to_bedpe(links: pd.DataFrame) -> str:
    """BEDPE sorted by the peak: peak interval, then a 1-bp TSS interval; name gene|peak, score = drop-one
    effect ('.' when unknown)."""
    out = io.StringIO()
    out.write("#chrom1\tstart1\tend1\tchrom2\tstart2\tend2\tname\tscore\tstrand1\tstrand2\tcell_type\tmethod\trank\n")
    for r in _by_position(links, "peak_chrom", "peak_start").itertuples(index=False):
        out.write(
            f"{r.peak_chrom}\t{r.peak_start}\t{r.peak_end}\t{r.gene_chrom}\t{r.tss}\t{r.tss + 1}\t"
            f"{_token(r.gene)}|{_token(r.peak)}\t{_fmt(r.drop_one)}\t.\t{r.strand}\t{_token(r.cell_type)}\t"
            f"{_token(r.method)}\t{r.rank}\n"
        )
    return out.getvalue()


def _quoted(text: str) -> str:
    """Text safe inside a double-quoted track-line value."""
    return str(text).replace('"', "'")


def to_interact(links: pd.DataFrame, track_line: bool = True) -> str:
    """UCSC interact (bed5+13), sorted: source = peak midpoint, target = TSS; score 0-1000 by |effect|,
    value = the effect (0 and grey when unknown); two records for a link across chromosomes."""
    out = io.StringIO()
    if track_line:
        first = links.iloc[0] if len(links) else None
        title = f"{first.method} {first.gene} {first.cell_type}" if first is not None else "GRIDS links"
        detail = f"{first.method} links, run {first.run_id}" if first is not None else "(no links)"
        out.write(
            f'track type=interact name="{_quoted(title)}" description="{_quoted(detail)}" '
            "interactDirectional=true maxHeightPixels=200:100:50\n"
        )
    records = []
    for r, score in zip(links.itertuples(index=False), _scores(links["drop_one"]), strict=True):
        e = float(r.drop_one)
        src, tgt = int(r.peak_mid), int(r.tss)
        color = "#999999" if not np.isfinite(e) else "#B2182B" if e >= 0 else "#2166AC"
        fields = (f"{_token(r.gene)}|{_token(r.peak)}\t{score}\t{_fmt(e) if np.isfinite(e) else 0}\t"
                  f"{_token(r.cell_type)}\t{color}\t{r.peak_chrom}\t{src}\t{src + 1}\t{_token(r.peak)}\t.\t"
                  f"{r.gene_chrom}\t{tgt}\t{tgt + 1}\t{_token(r.gene)}\t{r.strand}")
        if r.peak_chrom == r.gene_chrom:
            records.append((r.peak_chrom, min(src, tgt), max(src, tgt) + 1, fields))
        else:  # interact.as: "for interchromosomal, use 2 records", one at each end
            records += [(r.peak_chrom, src, src + 1, fields), (r.gene_chrom, tgt, tgt + 1, fields)]
    for chrom, start, end, fields in sorted(records, key=lambda rec: (str(rec[0]), rec[1])):
        out.write(f"{chrom}\t{start}\t{end}\t{fields}\n")
    return out.getvalue()


def export_text(links: pd.DataFrame, fmt: str) -> str:
    """The linkage table rendered in one of FORMATS."""
    fmt = fmt.lower().lstrip(".")
    if fmt == "tsv":
        return links.to_csv(sep="\t", index=False)
    if fmt == "csv":
        return links.to_csv(index=False)
    if fmt == "bedpe":
        return to_bedpe(links)
    if fmt == "interact":
        return to_interact(links)
    if fmt == "bed":
        return to_bed(links)
    raise SettingsError(f"Unknown export format {fmt!r}: use one of {', '.join(FORMATS)}.")


def format_from_path(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    aliases = {"txt": "tsv", "inter": "interact"}
    fmt = aliases.get(suffix, suffix)
    if fmt not in FORMATS:
        raise SettingsError(f"Cannot tell the export format of {path}: end the name in .tsv, .csv, .bedpe, .interact or .bed.")
    return fmt


def check_export_path(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The export format of ``path``; a clear error when it cannot be written (before any work is done)."""
    path = Path(path)
    fmt = fmt or format_from_path(path)
    if path.is_dir():
        raise SettingsError(f"Cannot write {path}: it is a directory. Give a file name such as {path / ('links.' + fmt)}.")
    parent = path.parent
    if not parent.is_dir():
        raise SettingsError(f"Cannot write {path}: the directory {parent} does not exist. Create it first.")
    if not os.access(parent, os.W_OK):
        raise SettingsError(f"Cannot write {path}: no permission to write in {parent}.")
    return fmt


def write_export(links: pd.DataFrame, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write an export atomically (temp file + rename) with the umask's permissions."""
    path = Path(path)
    text = export_text(links, check_export_path(path, fmt))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        publish_mode(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise SettingsError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _fmt(x) -> str:
    """A number for a BED-family column; '.' when missing."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "."
    return f"{v:.6g}" if np.isfinite(v) else "."
