"""Genomic intervals of user inputs: parsing, genome-build checks, peak sorting and overlap handling.

Coordinates are BED-like: 0-based, half-open (10x ``peaks.bed`` and feature ids ``chr1:100-600`` are read
as start=100, end=600). The declared build's chromosome sizes decide which names and coordinates fit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyranges as pr
import scipy.sparse as sp

from grids_core import reference
from grids_core.genome import sort_intervals
from grids_core.ingest.common import PathLike, input_error

INTERVAL_RE = re.compile(r"^(?P<chrom>.+?)[:_-](?P<start>\d+)[-_](?P<end>\d+)$")
# unplaced / alternate / decoy contigs: their features are dropped (and counted), never an error
SCAFFOLD_RE = re.compile(
    r"(_random$|_alt$|_fix$|_decoy$|^chrUn|^Un_|^(chr)?(KI|GL|JH|KN|KQ|KV|KZ|ML|MU)\d|^(chr)?EBV$|^HLA-"
    r"|^(chr)?(CHR_)?(HSCHR|HG\d)|_PATCH$|_CTG\d)",  # GRC patches and haplotypes (GENCODE, Ensembl names)
    re.IGNORECASE,
)
# records on other unknown contigs (a transgene such as EGFP, a spike-in) up to this fraction are dropped with
# the scaffolds; more means another build or species, an error
STRAY_CONTIG_FRACTION = 0.01
CHROMOSOME_RE = re.compile(r"^(chr)?(\d+|[IVX]+|[XYZWM]|MT|\d+[LR])$", re.IGNORECASE)
# GRCh37/hg19 primary chromosome lengths: used only to recognise hg19 coordinates in an hg38 bundle
HG19_SIZES = {
    "chr1": 249250621, "chr2": 243199373, "chr3": 198022430, "chr4": 191154276, "chr5": 180915260,
    "chr6": 171115067, "chr7": 159138663, "chr8": 146364022, "chr9": 141213431, "chr10": 135534747,
    "chr11": 135006516, "chr12": 133851895, "chr13": 115169878, "chr14": 107349540, "chr15": 102531392,
    "chr16": 90354753, "chr17": 81195210, "chr18": 78077248, "chr19": 59128983, "chr20": 63025520,
    "chr21": 48129895, "chr22": 51304566, "chrX": 155270560, "chrY": 59373566, "chrM": 16571,
}


@dataclass
class GenomeSpec:
    """The declared genome build: its name, chromosome sizes and an optional prefix fix for names."""

    build: str
    sizes: dict[str, int]
    chrom_prefix: str | None = None


def genome_spec(build: str = "hg38", chrom_sizes: PathLike | None = None, chrom_prefix: str | None = None) -> GenomeSpec:
    """Chromosome sizes of ``build``: shipped for hg38, else read from a two-column ``chrom_sizes`` file."""
    if chrom_sizes is not None:
        return GenomeSpec(build, read_chrom_sizes(chrom_sizes), chrom_prefix)
    if build.lower() not in ("hg38", "grch38"):
        raise input_error(None, "--genome", f"no chromosome sizes are shipped for build {build!r} (only hg38).",
                          "lift your coordinates over to hg38 (UCSC liftOver, CrossMap), or pass --chrom-sizes "
                          f"FILE for {build} (the app's genome browser assumes hg38 coordinates).")
    return GenomeSpec("hg38", reference.chrom_sizes(), chrom_prefix)


def read_chrom_sizes(path: PathLike) -> dict[str, int]:
    """Chromosome name -> length from a UCSC ``.chrom.sizes`` file (name<TAB>length; extra columns ignored).

    A first line whose length field is not an integer (``chrom<TAB>length``, ``#chrom size``) is a header.
    """
    from grids_core.ingest.labels import read_table

    fix = "use a UCSC .chrom.sizes file: one 'name<TAB>length' line per chromosome (a header line is allowed)."
    df = read_table(path, "chrom sizes", header=None)
    if df.shape[1] < 2:
        raise input_error(path, "--chrom-sizes columns", "needs two columns: chromosome name and length.", fix)
    names = df.iloc[:, 0].astype(str).str.strip()
    lengths = pd.to_numeric(df.iloc[:, 1].astype(str).str.strip(), errors="coerce")
    first = 0 if pd.notna(lengths.iloc[0]) else 1  # a header line
    names, lengths = names.iloc[first:], lengths.iloc[first:]
    if names.empty:
        raise input_error(path, "--chrom-sizes rows", "has a header but no chromosome lines.", fix)
    bad = lengths.isna() | (lengths <= 0) | (lengths != lengths.round()) | (names == "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise input_error(path, "--chrom-sizes length",
                          f"line {first + i + 1} ({names.iloc[i]!r}, {df.iloc[first + i, 1]!r}) has no positive "
                          f"integer length ({int(bad.sum())} such line(s)).", fix)
    dup = names[names.duplicated()]
    if len(dup):
        raise input_error(path, "--chrom-sizes name", f"lists chromosome {dup.iloc[0]!r} more than once.", fix)
    return {str(c): int(n) for c, n in zip(names, lengths, strict=True)}


def rename_coordinate_names(names: pd.Series, before: pd.Series, after: pd.Series, starts: pd.Series,
                            ends: pd.Series) -> pd.Series:
    """Feature names that spell the feature's own coordinates (``22:100-600``) on the renamed chromosome
    (``chr22:100-600``, separators kept); any other name (e.g. a REMO id) is returned unchanged."""
    names = pd.Series(np.asarray(names, dtype=object), dtype=object).astype(str)
    before = pd.Series(np.asarray(before, dtype=object)).astype(str)
    after = pd.Series(np.asarray(after, dtype=object)).astype(str)
    parsed = parse_intervals(names)
    own = ((parsed["chrom"] == before) & (parsed["start"] == np.asarray(starts))
           & (parsed["end"] == np.asarray(ends)) & (before != after)).to_numpy()
    out = names.to_numpy(dtype=object).copy()
    for i in np.flatnonzero(own):
        out[i] = after.iat[i] + names.iat[i][len(before.iat[i]):]
    return pd.Series(out, dtype=object)


def rename_chroms(chroms: pd.Series, prefix: str | None) -> pd.Series:
    """Add ``prefix`` to names that lack it (``MT`` becomes ``chrM``); no-op without a prefix."""
    chroms = chroms.astype(str)
    if not prefix:
        return chroms
    bare = chroms.where(chroms != "MT", "M")
    return bare.where(bare.str.startswith(prefix), prefix + bare)


def parse_intervals(strings: pd.Series | np.ndarray) -> pd.DataFrame:
    """``chr1:100-600`` / ``chr1-100-600`` / ``chr1_100_600`` strings as chrom, start, end (NaN if unparsable)."""
    s = pd.Series(np.asarray(strings, dtype=object)).astype(str).str.strip()
    m = s.str.extract(INTERVAL_RE)
    return pd.DataFrame({
        "chrom": m["chrom"],
        "start": pd.to_numeric(m["start"], errors="coerce"),
        "end": pd.to_numeric(m["end"], errors="coerce"),
    })


def check_build(
    df: pd.DataFrame, spec: GenomeSpec, path: PathLike | None, what: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rename chromosomes, check them and the coordinates against the build; returns (df, keep mask).

    Rows on unplaced/alt/patch contigs, and up to ``STRAY_CONTIG_FRACTION`` of rows on other unknown contigs
    (transgenes, spike-ins), are dropped (``keep`` False); Ensembl-style names, more rows on unknown
    chromosomes and coordinates outside the chromosome raise an ``InputError`` with the fix. A ``name``
    column that spells a row's coordinates is renamed with its chromosome.
    """
    df = df.copy()
    before = df["chrom"].astype(str)
    df["chrom"] = rename_chroms(df["chrom"], spec.chrom_prefix)
    if "name" in df.columns:  # coordinate-string names follow the renamed chromosome
        df["name"] = rename_coordinate_names(df["name"], before, df["chrom"], df["start"], df["end"]).to_numpy()
    known = df["chrom"].isin(spec.sizes).to_numpy()
    unknown = df.loc[~known, "chrom"]
    if len(unknown):
        names = pd.unique(unknown)
        prefixable = [c for c in names if f"chr{'M' if c == 'MT' else c}" in spec.sizes]
        if prefixable:
            raise input_error(
                path, f"{what} chromosome",
                f"{int(unknown.isin(prefixable).sum())} {what} are on chromosomes named like "
                f"{', '.join(map(repr, prefixable[:4]))} (Ensembl/NCBI style), but build {spec.build} names them "
                f"{', '.join(repr('chr' + ('M' if c == 'MT' else c)) for c in prefixable[:2])}.",
                "pass --chrom-prefix chr to add the prefix.",
            )
        unprefixable = [c for c in names if c.startswith("chr") and c[3:] in spec.sizes]
        if unprefixable:
            raise input_error(
                path, f"{what} chromosome",
                f"{what} use 'chr' names ({', '.join(map(repr, unprefixable[:3]))}) but the chromosome sizes "
                "of the build do not.", "use a chrom-sizes file with UCSC names, or rename the chromosomes.",
            )
        odd = [c for c in names if not SCAFFOLD_RE.search(c)]
        chromosome_like = [c for c in odd if CHROMOSOME_RE.match(c)]  # another genome's chromosome: never dropped
        if chromosome_like or (odd and unknown.isin(odd).sum() > STRAY_CONTIG_FRACTION * len(df)):
            odd = chromosome_like or odd
            raise input_error(
                path, f"{what} chromosome",
                f"{int(unknown.isin(odd).sum())} {what} are on chromosomes unknown to build {spec.build}: "
                f"{', '.join(map(repr, odd[:5]))} (the build has {', '.join(list(spec.sizes)[:3])}, ...).",
                "declare the right build with --genome/--chrom-sizes, or remove those records.",
            )
    keep = known
    kept = df[keep]
    start, end = kept["start"].to_numpy(), kept["end"].to_numpy()
    if (start < 0).any() or (end <= start).any():
        bad = kept[(start < 0) | (end <= start)].iloc[0]
        raise input_error(path, f"{what} start/end",
                          f"has an interval with start < 0 or end <= start, e.g. {bad['chrom']}:{bad['start']}-{bad['end']}.",
                          "fix or remove the malformed records.")
    size = kept["chrom"].map(spec.sizes).to_numpy()
    beyond = end > size
    if beyond.any():
        bad = kept[beyond]
        first = bad.iloc[0]
        hint = ""
        if spec.build == "hg38":
            hg19 = bad["chrom"].map(HG19_SIZES).to_numpy()
            if np.all(np.isfinite(hg19)) and np.all(bad["end"].to_numpy() <= hg19):
                hint = " The coordinates fit hg19/GRCh37: the data look aligned to hg19."
        raise input_error(
            path, f"{what} coordinates",
            f"{len(bad)} {what} end beyond their chromosome in {spec.build}, e.g. {first['chrom']}:{first['start']}-"
            f"{first['end']} (length of {first['chrom']}: {spec.sizes[first['chrom']]:,}).{hint}",
            f"lift the data over to {spec.build} (UCSC liftOver, CrossMap) or declare the build they use "
            "(--genome/--chrom-sizes).",
        )
    return df, keep


def sort_peaks(peaks: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, bool]:
    """Peaks in natural chromosome order then start; returns (sorted peaks, column order, was_unsorted)."""
    tmp = peaks.reset_index(drop=True)
    order = sort_intervals(tmp).index.to_numpy()
    was_unsorted = not np.array_equal(order, np.arange(len(tmp)))
    return tmp.iloc[order].reset_index(drop=True), order, was_unsorted


def overlap_clusters(peaks: pd.DataFrame) -> np.ndarray:
    """Cluster id per (sorted) peak: peaks sharing an id overlap by >= 1 bp (book-ended ones do not)."""
    if peaks.empty:
        return np.zeros(0, dtype=np.int64)
    g = pr.PyRanges(pd.DataFrame({
        "Chromosome": peaks["chrom"].astype(str).to_numpy(),
        "Start": peaks["start"].to_numpy(np.int64),
        "End": peaks["end"].to_numpy(np.int64),
        "idx": np.arange(len(peaks)),
    }))
    df = g.cluster(slack=-1).df
    raw = np.empty(len(peaks), dtype=np.int64)
    raw[df["idx"].to_numpy()] = df["Cluster"].to_numpy()
    _, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))  # renumber clusters by first appearance in the sorted order
    return rank[inverse]


def merge_overlapping(peaks: pd.DataFrame, x: sp.csr_matrix, clusters: np.ndarray) -> tuple[pd.DataFrame, sp.csr_matrix]:
    """Merge each overlap cluster into one peak (union interval); its ATAC column is the sum of the members."""
    n = int(clusters.max()) + 1 if len(clusters) else 0
    agg = pd.DataFrame({"chrom": peaks["chrom"].to_numpy(), "start": peaks["start"].to_numpy(),
                        "end": peaks["end"].to_numpy(), "c": clusters}).groupby("c", sort=True)
    merged = pd.DataFrame({"chrom": agg["chrom"].first(), "start": agg["start"].min(), "end": agg["end"].max()})
    merged = merged.reset_index(drop=True)
    sizes = np.bincount(clusters, minlength=n)
    old_names = peaks["name"].to_numpy()
    first_of = np.unique(clusters, return_index=True)[1]
    merged["name"] = [
        old_names[first_of[c]] if sizes[c] == 1 else f"{merged.at[c, 'chrom']}:{merged.at[c, 'start']}-{merged.at[c, 'end']}"
        for c in range(n)
    ]
    member = sp.csr_matrix((np.ones(len(clusters), dtype=x.dtype), (np.arange(len(clusters)), clusters)),
                           shape=(len(clusters), n))
    return merged, (x @ member).tocsr()
