"""Gene annotation from a GTF / GTF.gz (GENCODE, Ensembl, Cell Ranger references).

Gene records give name, id, chrom, start, end, strand and TSS (0-based half-open; TSS = start on '+',
end - 1 on '-'); when a GTF has no ``gene`` lines they are assembled from its transcripts/exons. Exons
are kept for one transcript per gene (MANE_Select, else Ensembl_canonical, else the one with most exons).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from grids_core.ingest.common import PathLike, input_error, reading, require_file
from grids_core.ingest.intervals import SCAFFOLD_RE

_COLS = ["chrom", "source", "feature", "start", "end", "score", "strand", "frame", "attributes"]
_FIX = "pass a GTF (9 tab-separated columns, attributes like gene_name \"GAD1\";), e.g. GENCODE's or the Cell Ranger reference's genes.gtf.gz."
_CHUNK = 250_000


def _attr(attrs: pd.Series, key: str) -> pd.Series:
    """Value of attribute ``key``: quoted (``gene_name "GAD1";``) or bare (GENCODE's ``exon_number 1;``)."""
    m = attrs.str.extract(rf'(?:^|;)\s*{key} (?:"([^"]*)"|([^";\s]+))')
    return m[0].fillna(m[1])


def read_gtf(path: PathLike, name_attr: str = "gene_name") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(genes, exons) of a GTF: genes name/gene_id/chrom/start/end/strand/tss, exons as the bundle wants."""
    path = require_file(path, "GTF")
    genes, exons = [], []
    n_rows = 0
    with reading(path, "a GTF", _FIX):
        with open(path, "rb") as fh:
            head = fh.read(4096)
        if head.startswith(b"\x89HDF") or (b"\x00" in head and not head.startswith(b"\x1f\x8b")):
            raise input_error(path, "file type", "is a binary file, not a GTF.", _FIX)
        reader = pd.read_csv(path, sep="\t", comment="#", header=None, names=_COLS, dtype=str, quoting=3,
                             keep_default_na=False, na_filter=False, chunksize=_CHUNK)
        for chunk in reader:
            short = (chunk["attributes"] == "") | (chunk["strand"] == "")
            if short.any():
                row = chunk[short].iloc[0]
                n = int((row != "").sum())
                raise input_error(path, "columns", f"has a line with {n} tab-separated columns, a GTF has 9 "
                                  f"(is this a BED or GFF file?): {chr(9).join(v for v in row if v)[:80]!r}.", _FIX)
            n_rows += len(chunk)
            chunk = chunk[chunk["feature"].isin(("gene", "transcript", "exon"))]
            if chunk.empty:
                continue
            if "=" in chunk["attributes"].iloc[0] and '"' not in chunk["attributes"].iloc[0]:
                raise input_error(path, "attributes", "uses key=value attributes: this is GFF3, not GTF.",
                                  "convert it with `gffread -T` or AGAT, or pass a GTF.")
            start = pd.to_numeric(chunk["start"], errors="coerce")
            end = pd.to_numeric(chunk["end"], errors="coerce")
            if start.isna().any() or end.isna().any():
                raise input_error(path, "start/end", f"has a non-integer coordinate, e.g. {chunk['start'][start.isna()].head(1).tolist() or chunk['end'][end.isna()].head(1).tolist()}.", _FIX)
            a = chunk["attributes"]
            part = pd.DataFrame({
                "feature": chunk["feature"].to_numpy(),
                "chrom": chunk["chrom"].to_numpy(),
                "start": start.to_numpy(np.int64) - 1,  # GTF is 1-based, closed
                "end": end.to_numpy(np.int64),
                "strand": chunk["strand"].to_numpy(),
                "gene_id": _attr(a, "gene_id").to_numpy(),
                "name": _attr(a, name_attr).to_numpy(),
            })
            is_exon = part["feature"].to_numpy() == "exon"
            genes.append(part[~is_exon])
            if is_exon.any():
                ea = a[is_exon]
                e = part[is_exon].drop(columns="feature").assign(
                    transcript_id=_attr(ea, "transcript_id").to_numpy(),
                    exon_number=pd.to_numeric(_attr(ea, "exon_number"), errors="coerce").to_numpy(),
                    rank=np.select([ea.str.contains('tag "MANE_Select"', regex=False).to_numpy(),
                                    ea.str.contains('tag "Ensembl_canonical"', regex=False).to_numpy()], [0, 1], 2),
                )
                exons.append(e)
                genes.append(part[is_exon])
    if n_rows == 0 or not genes:
        raise input_error(path, "rows", "has no gene, transcript or exon records.", _FIX)
    allg = pd.concat(genes, ignore_index=True)
    if allg["gene_id"].isna().all():
        raise input_error(path, "attributes", "has no gene_id attributes.", _FIX)
    if allg["name"].isna().all() or (allg["name"].fillna("") == "").all():
        raise input_error(path, f"attributes/{name_attr}",
                          f"has no {name_attr} attributes, so genes cannot be matched to the RNA features by name.",
                          "use a GTF with gene names (GENCODE/Ensembl/Cell Ranger), or name the attribute holding "
                          "gene symbols with --gtf-name-attr (e.g. gene_id when the ids are symbols).")
    genes_df = _gene_records(allg)
    exons_df = _one_transcript_per_gene(pd.concat(exons, ignore_index=True)) if exons else pd.DataFrame(
        columns=["chrom", "start", "end", "gene_name", "transcript_id", "exon_number"])
    return genes_df, exons_df


def _gene_records(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per gene: ``gene`` lines when present, else the span of its transcripts/exons.

    A gene id found on several chromosomes or strands (UCSC GTFs, whose gene_id is the symbol, repeat a gene
    on alt/fix contigs and at paralogous loci) keeps one locus: on a primary chromosome, with the most
    records, first in the file on ties; the span is never merged across loci.
    """
    has_gene = rows["feature"] == "gene"
    src = rows[has_gene] if has_gene.any() else rows
    src = src.dropna(subset=["gene_id"])
    loci = src.groupby(["gene_id", "chrom", "strand"], sort=False).agg(
        name=("name", "first"), start=("start", "min"), end=("end", "max"), n=("start", "size"))
    loci = loci.reset_index()
    chroms = loci["chrom"].astype(str)
    loci["scaffold"] = chroms.map({c: bool(SCAFFOLD_RE.search(c)) for c in chroms.unique()})
    loci["order"] = np.arange(len(loci))
    g = loci.sort_values(["gene_id", "scaffold", "n", "order"], ascending=[True, True, False, True], kind="stable")
    g = g.drop_duplicates("gene_id").sort_values("order")
    g["name"] = g["name"].fillna("")
    g = g[g["strand"].isin(["+", "-"])]
    g["tss"] = np.where(g["strand"] == "+", g["start"], g["end"] - 1).astype(np.int64)
    return g[["name", "gene_id", "chrom", "start", "end", "strand", "tss"]].reset_index(drop=True)


def _one_transcript_per_gene(e: pd.DataFrame) -> pd.DataFrame:
    """Exons of the preferred transcript of each gene (MANE > Ensembl canonical > most exons)."""
    e = e.dropna(subset=["transcript_id"])
    if e.empty:
        return pd.DataFrame(columns=["chrom", "start", "end", "gene_name", "transcript_id", "exon_number"])
    t = e.groupby("transcript_id", sort=False).agg(gene=("gene_id", "first"), rank=("rank", "min"), n=("start", "size"))
    t = t.reset_index().sort_values(["gene", "rank", "n", "transcript_id"], ascending=[True, True, False, True])
    keep = set(t.drop_duplicates("gene")["transcript_id"])
    out = e[e["transcript_id"].isin(keep)].copy()
    missing = out["exon_number"].isna()
    if missing.any():
        order = out.groupby("transcript_id")["start"].rank(method="first")
        out.loc[missing, "exon_number"] = order[missing]
    out["exon_number"] = out["exon_number"].astype(np.int64)
    out = out.rename(columns={"name": "gene_name"})
    out["gene_name"] = out["gene_name"].fillna("")
    return out[["chrom", "start", "end", "gene_name", "transcript_id", "exon_number", "gene_id"]].reset_index(drop=True)
