"""Loaders for the real hg38 reference extracts in ``data/`` (built by scripts/build_reference_data.py).

Every loader is cached per data folder and returns a fresh copy, so callers may modify the result.
A missing or corrupt file raises :class:`grids_core.errors.BundleError` naming the file.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from grids_core.errors import BundleError
from grids_core.genome import sort_intervals

DATA_ENV_VAR = "GRIDS_DATA_DIR"
LOCUS_FLANK = 1_000_000

CELL_TYPES: tuple[str, ...] = ("Exc", "SST", "VIP", "Astro", "Endo", "Micro", "OPC", "Oligo")

# Paper Table 1: marker genes per cell type (GAD1/GAD2 mark both SST and VIP interneurons).
MARKER_PAIRS: tuple[tuple[str, str], ...] = (
    ("Astro", "ALDH1A1"),
    ("Astro", "AQP4"),
    ("Astro", "GJA1"),
    ("Endo", "CLDN5"),
    ("Endo", "FLT1"),
    ("Micro", "APBB1IP"),
    ("Micro", "CX3CR1"),
    ("OPC", "NXPH1"),
    ("OPC", "OLIG1"),
    ("OPC", "OLIG2"),
    ("Oligo", "MOBP"),
    ("Oligo", "MOG"),
    ("SST", "GAD1"),
    ("SST", "GAD2"),
    ("VIP", "GAD1"),
    ("VIP", "GAD2"),
)

# REMO v1 (remopy terms.json) cell-type terms that tag an element with each of our labels.
# Exc is every REMO term containing "glutamatergic".
REMO_TERM_MAP: dict[str, tuple[str, ...]] = {
    "Exc": (
        "L2/3-6 intratelencephalic projecting glutamatergic neuron",
        "L3 intratelencephalic projecting glutamatergic neuron",
        "L4 intratelencephalic projecting glutamatergic neuron",
        "L4/5 intratelencephalic projecting glutamatergic neuron",
        "L5 intratelencephalic projecting glutamatergic neuron",
        "L5/6 near-projecting glutamatergic neuron of the primary motor cortex",
        "L6 corticothalamic-projecting glutamatergic cortical neuron",
        "L6 intratelencephalic projecting glutamatergic neuron",
        "extratelencephalic-projecting glutamatergic cortical neuron",
        "glutamatergic neuron",
        "intratelencephalic-projecting glutamatergic cortical neuron",
    ),
    "SST": ("sst GABAergic interneuron", "sst chodl GABAergic interneuron"),
    "VIP": ("VIP GABAergic interneuron",),
    "Astro": ("astrocyte",),
    "Endo": (
        "endothelial cell",
        "capillary endothelial cell",
        "endothelial cell of artery",
        "vein endothelial cell",
    ),
    "Micro": ("microglial cell",),
    "OPC": ("oligodendrocyte precursor cell",),
    "Oligo": ("oligodendrocyte",),
}

FILES = {
    "markers": "markers.tsv",
    "genes": "genes.tsv.gz",
    "exons": "exons.tsv.gz",
    "cres": "cres.tsv.gz",
    "background": "remo_background.npz",
    "chrom_sizes": "hg38.chrom_sizes.tsv",
    "cytobands": "hg38.cytoband.tsv",
    "tads": "tads_gm12878_hg38.bed.gz",
    "mnist": "mnist_3_8.npz",
}

_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    zlib.error,
    zipfile.BadZipFile,
)


def data_dir() -> Path:
    """Folder holding the reference extracts: $GRIDS_DATA_DIR, else the repository's ``data/``."""
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "data"


def _fail(path: Path, why: str) -> BundleError:
    return BundleError(
        f"Reference data file {path} is {why}. Rebuild it with `python scripts/build_reference_data.py` "
        f"or re-clone the repository (set {DATA_ENV_VAR} to use another data folder)."
    )


def _path(folder: str, key: str) -> Path:
    path = Path(folder) / FILES[key]
    if not path.is_file():
        raise _fail(path, "missing")
    return path


def _read_table(
    folder: str, key: str, columns: tuple[str, ...], int_cols: tuple[str, ...] = ()
) -> pd.DataFrame:
    path = _path(folder, key)
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
        df = df.rename(columns={df.columns[0]: df.columns[0].lstrip("#")})
        if tuple(df.columns) != columns:
            raise ValueError(f"columns {list(df.columns)} != {list(columns)}")
        if df.empty:
            raise ValueError("no rows")
        for col in int_cols:
            df[col] = df[col].astype(np.int64)
        if "start" in int_cols and "end" in int_cols and not bool((df["end"] > df["start"]).all()):
            raise ValueError("an interval has end <= start")
    except _READ_ERRORS as exc:
        raise _fail(path, f"corrupt ({exc})") from exc
    return df


def _load_npz(folder: str, key: str, arrays: tuple[str, ...]) -> dict[str, np.ndarray]:
    path = _path(folder, key)
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {name: z[name] for name in arrays}
    except _READ_ERRORS as exc:
        raise _fail(path, f"corrupt ({exc})") from exc
    return out


@lru_cache(maxsize=8)
def _markers(folder: str) -> pd.DataFrame:
    df = _read_table(folder, "markers", ("cell_type", "gene"))
    if set(df["cell_type"]) - set(CELL_TYPES):
        raise _fail(_path(folder, "markers"), "corrupt (unknown cell type)")
    return df


@lru_cache(maxsize=8)
def _genes(folder: str) -> pd.DataFrame:
    cols = ("chrom", "start", "end", "gene_name", "gene_id", "strand", "gene_type")
    return _read_table(folder, "genes", cols, ("start", "end"))


@lru_cache(maxsize=8)
def _exons(folder: str) -> pd.DataFrame:
    cols = ("chrom", "start", "end", "exon_id", "gene_name", "exon_number", "transcript_id")
    return _read_table(folder, "exons", cols, ("start", "end", "exon_number"))


@lru_cache(maxsize=8)
def _cres(folder: str) -> pd.DataFrame:
    df = _read_table(folder, "cres", ("chrom", "start", "end", "name", "cell_types"), ("start", "end"))
    labels = {lab for s in df["cell_types"] if s for lab in s.split(";")}
    if labels - set(CELL_TYPES):
        raise _fail(_path(folder, "cres"), f"corrupt (unknown labels {sorted(labels - set(CELL_TYPES))})")
    return df


@lru_cache(maxsize=8)
def _background(folder: str) -> pd.DataFrame:
    z = _load_npz(folder, "background", ("chroms", "chrom", "start", "length", "cell_type_bits"))
    path = _path(folder, "background")
    try:
        chroms = z["chroms"].astype(str)
        n = len(z["start"])
        if not (len(z["chrom"]) == len(z["length"]) == len(z["cell_type_bits"]) == n) or n == 0:
            raise ValueError("arrays differ in length or are empty")
        start = z["start"].astype(np.int64)
        df = pd.DataFrame(
            {
                "chrom": chroms[z["chrom"].astype(np.int64)].astype(object),
                "start": start,
                "end": start + z["length"].astype(np.int64),
                "cell_type_bits": z["cell_type_bits"].astype(np.uint8),
            }
        )
    except _READ_ERRORS as exc:
        raise _fail(path, f"corrupt ({exc})") from exc
    return df


@lru_cache(maxsize=8)
def _chrom_sizes(folder: str) -> dict[str, int]:
    df = _read_table(folder, "chrom_sizes", ("chrom", "length"), ("length",))
    return dict(zip(df["chrom"], df["length"].astype(int), strict=True))


@lru_cache(maxsize=8)
def _cytobands(folder: str) -> pd.DataFrame:
    return _read_table(folder, "cytobands", ("chrom", "start", "end", "band", "stain"), ("start", "end"))


@lru_cache(maxsize=8)
def _tads(folder: str) -> pd.DataFrame:
    return _read_table(folder, "tads", ("chrom", "start", "end", "source"), ("start", "end"))


@lru_cache(maxsize=8)
def _mnist(folder: str) -> tuple[np.ndarray, np.ndarray]:
    z = _load_npz(folder, "mnist", ("images", "labels"))
    images, labels = z["images"], z["labels"]
    if (
        images.ndim != 3
        or images.shape[1:] != (28, 28)
        or len(images) != len(labels)
        or images.dtype != np.uint8
    ):
        raise _fail(
            _path(folder, "mnist"), f"corrupt (images {images.shape} {images.dtype}, labels {labels.shape})"
        )
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def markers() -> pd.DataFrame:
    """The 16 marker (cell_type, gene) pairs of paper Table 1 as a DataFrame."""
    return _markers(str(data_dir())).copy()


def genes() -> pd.DataFrame:
    """GENCODE v44 genes in the marker loci: chrom,start,end,gene_name,gene_id,strand,gene_type (0-based)."""
    return _genes(str(data_dir())).copy()


def exons() -> pd.DataFrame:
    """MANE exons of the shipped genes: chrom,start,end,exon_id,gene_name,exon_number,transcript_id."""
    return _exons(str(data_dir())).copy()


def cres() -> pd.DataFrame:
    """REMO v1 elements in the marker loci: chrom,start,end,name,cell_types (';'-joined labels or '')."""
    return _cres(str(data_dir())).copy()


def background_elements() -> pd.DataFrame:
    """Seeded genome-wide sample of REMO elements outside the loci: chrom,start,end,cell_type_bits."""
    return _background(str(data_dir())).copy()


def chrom_sizes() -> dict[str, int]:
    """hg38 primary chromosome lengths (chr1-22, X, Y, M)."""
    return dict(_chrom_sizes(str(data_dir())))


def cytobands() -> pd.DataFrame:
    """hg38 cytogenetic bands: chrom,start,end,band,stain."""
    return _cytobands(str(data_dir())).copy()


def tads() -> pd.DataFrame:
    """GM12878 Arrowhead domains (Rao 2014) lifted to hg38: chrom,start,end,source."""
    return _tads(str(data_dir())).copy()


def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits 3 and 8: images uint8 [n, 28, 28] (0-255) and labels uint8 (read-only arrays)."""
    return _mnist(str(data_dir()))


def marker_loci() -> pd.DataFrame:
    """Per marker gene: gene, chrom, start, end of gene body +/- LOCUS_FLANK, clipped to the chromosome."""
    g = genes()
    sizes = chrom_sizes()
    names = list(dict.fromkeys(gene for _, gene in MARKER_PAIRS))
    g = g[g["gene_name"].isin(names)].drop_duplicates("gene_name").set_index("gene_name")
    missing = [n for n in names if n not in g.index]
    if missing:
        raise _fail(data_dir() / FILES["genes"], f"corrupt (marker genes {missing} absent)")
    rows = []
    for name in names:
        chrom, start, end = g.loc[name, ["chrom", "start", "end"]]
        lo = max(0, int(start) - LOCUS_FLANK)
        hi = min(int(sizes.get(chrom, int(end) + LOCUS_FLANK)), int(end) + LOCUS_FLANK)
        rows.append((name, chrom, lo, hi))
    return sort_intervals(pd.DataFrame(rows, columns=["gene", "chrom", "start", "end"])).reset_index(
        drop=True
    )


def clear_caches() -> None:
    """Forget every cached file (for tests that point GRIDS_DATA_DIR elsewhere)."""
    for fn in (_markers, _genes, _exons, _cres, _background, _chrom_sizes, _cytobands, _tads, _mnist):
        fn.cache_clear()
