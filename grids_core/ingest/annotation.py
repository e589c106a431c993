"""Gene records for the RNA features (from a GTF or from the features' own intervals) and marker lookup."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from grids_core.errors import suggest
from grids_core.ingest.common import Modality, PathLike, input_error
from grids_core.ingest.intervals import GenomeSpec, check_build, rename_chroms

_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d+(\.\d+)?$")
_VERSION = re.compile(r"\.\d+$")


UNKNOWN_STRAND = "."  # BED/BEDPE/interact spelling of "no strand"; distances to TSS then run along the genome


@dataclass
class Annotation:
    """Per RNA feature: bundle gene name and record (NaN coordinates where unannotated), plus exons."""

    genes: pd.DataFrame  # one row per RNA feature: name, gene_id, chrom, start, end, strand, tss, eligible
    exons: pd.DataFrame
    source: str
    strand_known: bool


def _unique(names: pd.Series) -> pd.Series:
    """Make names unique the way AnnData does (second 'X' becomes 'X-1')."""
    seen: dict[str, int] = {}
    out = []
    taken = set(names)
    for n in names:
        if n in seen:
            k = seen[n]
            while f"{n}-{k}" in taken:
                k += 1
            seen[n] = k + 1
            out.append(f"{n}-{k}")
            taken.add(f"{n}-{k}")
        else:
            seen[n] = 1
            out.append(n)
    return pd.Series(out, index=names.index)


def annotate(
    rna: Modality, spec: GenomeSpec, gtf: tuple[pd.DataFrame, pd.DataFrame] | None, gtf_path: PathLike | None = None
) -> Annotation:
    """Match RNA features to gene records (GTF by version-less id, then by name; else the features' intervals)."""
    var = rna.var.reset_index(drop=True)
    names = var["name"].astype(str)
    ids = var["gene_id"].astype(str)
    out = pd.DataFrame({"name": names, "gene_id": ids})
    if gtf is not None:
        g, exons = gtf
        g, keep = check_build(g, spec, gtf_path, "GTF genes")
        g = g[keep]
        by_id = g.assign(k=g["gene_id"].str.replace(_VERSION, "", regex=True)).drop_duplicates("k").set_index("k")
        by_name = g[g["name"] != ""].drop_duplicates("name").set_index("name")
        rec = by_id.reindex(ids.str.replace(_VERSION, "", regex=True).to_numpy())
        rec.index = out.index
        miss = rec["chrom"].isna()
        by_n = by_name.reindex(names[miss].to_numpy())
        by_n.index = out.index[miss]
        rec.loc[miss, by_n.columns] = by_n
        ens_like = names.str.match(_ENSEMBL.pattern) & rec["name"].notna() & (rec["name"].fillna("") != "")
        out.loc[ens_like, "name"] = rec.loc[ens_like, "name"]
        out["gtf_gene_id"] = rec["gene_id"]
        for col in ("chrom", "start", "end", "strand", "tss"):
            out[col] = rec[col].to_numpy()
        exons = exons.copy()
        exons["chrom"] = rename_chroms(exons["chrom"], spec.chrom_prefix)
        exons = exons[exons["chrom"].isin(spec.sizes)]
        source, strand_known = f"GTF {gtf_path}", True
    else:
        if "chrom" not in var or not var["chrom"].notna().any():
            raise input_error(rna.path, "gene coordinates", "the RNA features carry no genomic intervals, so genes "
                              "cannot be placed on the genome.", "pass the annotation the data were counted with: --gtf genes.gtf.gz.")
        coords = var[["chrom", "start", "end"]].copy()
        ok = coords["chrom"].notna() & coords["start"].notna() & coords["end"].notna()
        c = coords[ok].astype({"start": np.int64, "end": np.int64})
        c, keep = check_build(c, spec, rna.path, "gene intervals")
        c = c[keep]
        strand = var["strand"] if "strand" in var else pd.Series([None] * len(var))
        strand_known = bool(strand.isin(["+", "-"]).all())
        for col in ("chrom", "start", "end"):
            out[col] = c[col].reindex(out.index)
        out["strand"] = np.where(strand.isin(["+", "-"]), strand, UNKNOWN_STRAND)
        out["tss"] = np.where(out["strand"] == "-", out["end"] - 1, out["start"])  # unknown strand: interval start
        exons = pd.DataFrame(columns=["chrom", "start", "end", "gene_name", "transcript_id", "exon_number", "gene_id"])
        source = f"{rna.path} feature intervals" + ("" if strand_known else
                                                      " (no strand: strand '.', TSS taken as the interval start)")
    if gtf is not None and "chrom" in var and var["chrom"].notna().any():
        feats = var[["chrom", "start", "end"]].assign(chrom=rename_chroms(var["chrom"].astype(str), spec.chrom_prefix))
        _check_same_place(out, feats, rna.path, "gene intervals vs GTF",
                          f"the GTF {gtf_path} and the gene intervals in {rna.path}",
                          "pass the GTF the matrix was counted with (the genes.gtf.gz of its Cell Ranger ARC reference).")
    if spec.build == "hg38":
        from grids_core import reference

        ref = reference.genes()
        ref = ref[~ref["gene_name"].duplicated(keep=False)].set_index("gene_name")  # multi-copy names: no one place
        known = out["name"].isin(ref.index)
        shipped = ref.reindex(out.loc[known, "name"])[["chrom", "start", "end"]].set_axis(out.index[known])
        _check_same_place(out[known], shipped, gtf_path if gtf is not None else rna.path, "genome build",
                          "these gene coordinates and GENCODE v44 (hg38)",
                          "lift the coordinates over to hg38 (UCSC liftOver, CrossMap) or declare their build with "
                          "--genome and --chrom-sizes.")
    out["eligible"] = out["chrom"].notna() & (out["name"] != "")
    out["name"] = _unique(out["name"].astype(str))
    return Annotation(out, exons, source, strand_known)


MIN_SHARED_GENES = 5  # genes placed by both sources before their positions are compared


def _check_same_place(a: pd.DataFrame, b: pd.DataFrame, path: PathLike | None, field_: str, sources: str,
                      fix: str) -> None:
    """Raise when most genes placed by both ``a`` and ``b`` (same index) do not overlap: another build."""
    both = a["chrom"].notna() & b["chrom"].reindex(a.index).notna()
    if both.sum() < MIN_SHARED_GENES:
        return
    x, y = a[both], b.reindex(a.index)[both]
    same = (x["chrom"].astype(str) == y["chrom"].astype(str)) & (x["start"].astype(float) < y["end"].astype(float)) \
        & (y["start"].astype(float) < x["end"].astype(float))
    if same.mean() >= 0.5:
        return
    bare_x, bare_y = (c["chrom"].astype(str).str.replace(r"^chr", "", regex=True) for c in (x, y))
    if ((bare_x == bare_y) & (x["start"].astype(float) < y["end"].astype(float))
            & (y["start"].astype(float) < x["end"].astype(float))).mean() >= 0.5:
        raise input_error(
            path, field_,
            f"{sources} name chromosomes differently (e.g. {y['chrom'].iloc[0]!r} vs {x['chrom'].iloc[0]!r}); "
            "the positions agree.",
            "pass --chrom-prefix chr to add the prefix to names without it (Ensembl style '1' -> UCSC 'chr1').",
        )
    wrong = same.index[~same]
    if "name" in a:  # a gene with one record makes a clearer example than a multi-copy family
        single = ~a["name"].duplicated(keep=False)
        wrong = wrong[single.reindex(wrong).to_numpy()].append(wrong[~single.reindex(wrong).to_numpy()])
    i = wrong[0]
    raise input_error(
        path, field_,
        f"{int((~same).sum())} of {int(both.sum())} genes are placed differently by {sources} (e.g. "
        f"{a.loc[i, 'name'] if 'name' in a else i}: {x.loc[i, 'chrom']}:{int(x.loc[i, 'start'])}-{int(x.loc[i, 'end'])} "
        f"vs {y.loc[i, 'chrom']}:{int(y.loc[i, 'start'])}-{int(y.loc[i, 'end'])}): they come from different genome builds.",
        fix,
    )


def parse_markers(markers) -> list[tuple[str | None, str]]:
    """'GAD1,SST:GAD2' or a list of such items -> [(cell_type or None, gene)]."""
    items = markers.split(",") if isinstance(markers, str) else list(markers or [])
    out = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        ct, _, gene = item.rpartition(":")
        out.append((ct.strip() or None, gene.strip()))
    return out


def resolve_markers(
    pairs: list[tuple[str | None, str]], ann: Annotation, rna: Modality, cell_types: set[str] | None
) -> list[tuple[str | None, int]]:
    """(cell type, RNA feature index) per marker; absent or unplaceable genes (and, given ``cell_types``,
    unknown cell types) raise with suggestions."""
    names = ann.genes["name"]
    exact = {n: i for i, n in enumerate(names)}
    upper: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        upper.setdefault(n.upper(), []).append(i)
    out = []
    for ct, gene in pairs:
        idx = exact.get(gene)
        if idx is None and len(upper.get(gene.upper(), [])) == 1:
            idx = upper[gene.upper()][0]
        if idx is None:
            raise input_error(rna.path, "marker genes", f"requested marker {gene!r} is not among the "
                              f"{len(names)} RNA features.{suggest(gene, names.tolist())}",
                              "check the spelling (gene symbols as in the RNA features) or remove it from --markers.")
        if not bool(ann.genes["eligible"].iloc[idx]):
            raise input_error(rna.path, "marker genes", f"marker {gene!r} has no gene record ({ann.source}), so its "
                              "locus is unknown.", "pass a GTF that contains it (--gtf) or remove it from --markers.")
        if ct is not None and cell_types is not None and ct not in cell_types:
            raise input_error(rna.path, "marker cell type", f"marker {ct}:{gene} names cell type {ct!r}, which is not "
                              f"in the bundle (kept: {', '.join(sorted(map(str, cell_types)))}).{suggest(ct, sorted(cell_types))}",
                              "use a label from the labels table, or --drop-small-types / --min-cells if it was dropped.")
        out.append((ct, idx))
    return out
