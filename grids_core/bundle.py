"""The on-disk multiome bundle every part of the engine reads.

Layout of a bundle directory (schema version 1)::

    manifest.json   schema_version, bundle_id, genome_build, provenance per layer, checksums, counts
    atac.npz        cells x peaks, binary, scipy CSR (uint8)
    rna.npy         cells x genes, float32, log1p(counts per 10,000)
    cells.tsv       barcode, cell_type, split (train/val/test)
    peaks.tsv       chrom, start, end, name   (0-based half-open, natural chromosome order then start)
    genes.tsv       name, gene_id, chrom, start, end, strand, tss
    exons.tsv       chrom, start, end, gene_name, transcript_id, exon_number
    coverage.npz    cell_types [T], frac_open [T, peaks] (pseudobulk: fraction of cells of the type open)
    tads.tsv        chrom, start, end, source, simulated (0/1)
    hic.npz         per locus: <gene>__matrix [n, n], <gene>__meta [chrom_idx, start, bin_size]; chroms
    truth.tsv       (optional) gene, cell_type, peak, peak_index, group, logic

Writing goes to a temporary sibling directory that is renamed into place, so a crash never leaves a
half-written bundle, and an existing bundle is replaced only after the new one is complete. Only a GRIDS
bundle (``--force``) or an empty directory is ever replaced: any other file or directory is refused untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from grids_core.errors import BundleError, UnknownNameError, suggest
from grids_core.fileio import probe_writable_parent, publish_mode
from grids_core.genome import natural_chrom_key

SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test")
FILES = {
    "atac": "atac.npz",
    "rna": "rna.npy",
    "cells": "cells.tsv",
    "peaks": "peaks.tsv",
    "genes": "genes.tsv",
    "exons": "exons.tsv",
    "coverage": "coverage.npz",
    "tads": "tads.tsv",
    "hic": "hic.npz",
    "truth": "truth.tsv",
}
REQUIRED = ("atac", "rna", "cells", "peaks", "genes")


@dataclass
class Bundle:
    """An in-memory multiome bundle (see the module docstring for the on-disk layout)."""

    atac: sp.csr_matrix
    rna: np.ndarray
    cells: pd.DataFrame
    peaks: pd.DataFrame
    genes: pd.DataFrame
    exons: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EXON_COLS))
    coverage_types: list[str] = field(default_factory=list)
    coverage: np.ndarray | None = None
    tads: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TAD_COLS))
    hic: dict[str, dict] = field(default_factory=dict)
    truth: pd.DataFrame | None = None
    manifest: dict = field(default_factory=dict)
    path: Path | None = None

    # ---- identity -------------------------------------------------------------------------------
    @property
    def bundle_id(self) -> str:
        return str(self.manifest.get("bundle_id", ""))

    @property
    def genome_build(self) -> str:
        return str(self.manifest.get("genome_build", "hg38"))

    @property
    def cell_types(self) -> list[str]:
        return sorted(self.cells["cell_type"].unique().tolist(), key=_cell_type_order)

    @property
    def gene_names(self) -> list[str]:
        return self.genes["name"].tolist()

    def marker_pairs(self) -> list[tuple[str, str]]:
        """(cell_type, gene) marker pairs: the manifest's own (``grids prepare --markers``, the simulator),
        else the paper's Table 1 pairs whose gene and type the bundle has. A marker named without a cell
        type has cell_type ''."""
        listed = self.manifest.get("markers")
        if listed:
            return [(str(m.get("cell_type") or ""), str(m["gene"])) for m in listed if m.get("gene")]
        from grids_core.reference import MARKER_PAIRS

        genes, types = set(self.gene_names), set(self.cell_types)
        return [(c, g) for c, g in MARKER_PAIRS if g in genes and c in types]

    def is_simulated(self, layer: str) -> bool:
        return self.manifest.get("provenance", {}).get(layer) == "simulated"

    # ---- lookups with helpful errors ------------------------------------------------------------
    def gene_index(self, gene: str) -> int:
        """Column of ``gene`` in ``rna``: its name (any case) or its gene id (with or without the version
        suffix); unknown names raise with close suggestions."""
        gene = str(gene).strip()
        idx = self._gene_lookup().get(gene)
        if idx is None:
            idx = self._gene_lookup_upper().get(gene.upper())
        if idx is None:
            ids = self._gene_id_lookup()
            idx = ids.get(gene.upper())
            if idx is None:
                idx = ids.get(gene.upper().split(".")[0])
        if idx is None:
            raise UnknownNameError(
                f"Gene {gene!r} is not in this bundle ({len(self.genes)} genes)."
                + suggest(gene, self.gene_names)
                + f" Pick a gene from `grids genes --bundle {self.path or 'DIR'}` or add it as a marker when preparing the bundle."
            )
        return idx

    def gene_row(self, gene: str) -> pd.Series:
        return self.genes.iloc[self.gene_index(gene)]

    def gene_name(self, gene: str) -> str:
        """The bundle's name of ``gene`` (given by name in any case, or by gene id): how runs are keyed and stored."""
        return str(self.genes["name"].iloc[self.gene_index(gene)])

    def pair_truth(self, gene: str, cell_type: str) -> pd.DataFrame | None:
        """Planted truth rows of one gene x cell type (empty when none were planted); None without truth."""
        if self.truth is None:
            return None
        return self.truth[(self.truth["gene"] == gene) & (self.truth["cell_type"] == cell_type)]

    def check_cell_type(self, cell_type: str) -> str:
        """The bundle's name of ``cell_type`` (exact, else the one type equal to it ignoring case and
        surrounding spaces); unknown names raise with close suggestions."""
        if cell_type in self.cell_types:
            return cell_type
        folded = [c for c in self.cell_types if c.casefold() == str(cell_type).strip().casefold()]
        if len(folded) == 1:
            return folded[0]
        raise UnknownNameError(
            f"Cell type {cell_type!r} is not in this bundle (has: {', '.join(self.cell_types)})."
            + suggest(cell_type, self.cell_types)
        )

    def cell_mask(self, cell_type: str | None = None, split: str | None = None) -> np.ndarray:
        """Boolean mask over cells of a type and/or a split."""
        mask = np.ones(len(self.cells), dtype=bool)
        if cell_type is not None:
            mask &= (self.cells["cell_type"] == self.check_cell_type(cell_type)).to_numpy()
        if split is not None:
            if split not in SPLITS:
                raise UnknownNameError(f"Split {split!r} must be one of {SPLITS}.")
            mask &= (self.cells["split"] == split).to_numpy()
        return mask

    def _gene_lookup(self) -> dict[str, int]:
        if "_lookup" not in self.__dict__:
            self.__dict__["_lookup"] = {n: i for i, n in enumerate(self.genes["name"])}
        return self.__dict__["_lookup"]

    def _gene_id_lookup(self) -> dict[str, int]:
        """Gene ids (upper case), with and without their version suffix (the latter only where unique)."""
        if "_lookup_id" not in self.__dict__:
            out: dict[str, int] = {}
            if "gene_id" in self.genes:
                ids = [str(x).upper() for x in self.genes["gene_id"]]
                bare = pd.Series([x.split(".")[0] for x in ids])
                unique_bare = set(bare[~bare.duplicated(keep=False)])
                for i, (full, b) in enumerate(zip(ids, bare, strict=True)):
                    if full and full not in ("NAN", "NONE", "."):
                        out.setdefault(full, i)
                        if b in unique_bare:
                            out.setdefault(b, i)
            self.__dict__["_lookup_id"] = out
        return self.__dict__["_lookup_id"]

    def _gene_lookup_upper(self) -> dict[str, int]:
        if "_lookup_upper" not in self.__dict__:
            self.__dict__["_lookup_upper"] = {n.upper(): i for i, n in enumerate(self.genes["name"])}
        return self.__dict__["_lookup_upper"]

    # ---- derived --------------------------------------------------------------------------------
    def peak_midpoints(self) -> np.ndarray:
        return ((self.peaks["start"].to_numpy() + self.peaks["end"].to_numpy()) // 2).astype(np.int64)


EXON_COLS = ["chrom", "start", "end", "gene_name", "transcript_id", "exon_number"]
TAD_COLS = ["chrom", "start", "end", "source", "simulated"]
CELL_COLS = ["barcode", "cell_type", "split"]
PEAK_COLS = ["chrom", "start", "end", "name"]
GENE_COLS = ["name", "gene_id", "chrom", "start", "end", "strand", "tss"]
TRUTH_COLS = ["gene", "cell_type", "peak", "peak_index", "group", "logic"]
_TYPE_ORDER = ("Exc", "SST", "VIP", "Astro", "Endo", "Micro", "OPC", "Oligo")


def _cell_type_order(name: str) -> tuple[int, str]:
    return (_TYPE_ORDER.index(name) if name in _TYPE_ORDER else len(_TYPE_ORDER), name)


# ---- splits ------------------------------------------------------------------------------------
MIN_TRAIN_CELLS = 10  # training cells a cell type needs for an explanation (explain refuses fewer)


def stratified_split(
    labels: np.ndarray | pd.Series, seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
) -> np.ndarray:
    """Assign 'train'/'val'/'test' per cell, stratified by label, deterministic for ``seed``."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), dtype=object)
    for label in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == label)
        idx = idx[rng.permutation(len(idx))]
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        out[idx[:n_train]] = "train"
        out[idx[n_train : n_train + n_val]] = "val"
        out[idx[n_train + n_val :]] = "test"
    return out.astype(str)


# ---- pseudobulk ---------------------------------------------------------------------------------
def pseudobulk(atac: sp.csr_matrix, cell_types: pd.Series) -> tuple[list[str], np.ndarray]:
    """Fraction of cells of each type with each peak open: ([T names], [T, peaks] float32)."""
    names = sorted(pd.unique(cell_types).tolist(), key=_cell_type_order)
    codes = pd.Categorical(cell_types, categories=names).codes
    onehot = sp.csr_matrix(
        (np.ones(len(codes), dtype=np.float32), (codes, np.arange(len(codes)))), shape=(len(names), len(codes))
    )
    counts = np.asarray((onehot @ atac.astype(np.float32)).todense(), dtype=np.float32)
    sizes = np.bincount(codes, minlength=len(names)).astype(np.float32)
    return names, counts / np.maximum(sizes, 1)[:, None]


# ---- save ---------------------------------------------------------------------------------------
def save(bundle: Bundle, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Validate then write ``bundle`` atomically to directory ``out``; returns the path."""
    out = check_output_dir(out, overwrite)
    validate(bundle)
    if bundle.coverage is None:
        bundle.coverage_types, bundle.coverage = pseudobulk(bundle.atac, bundle.cells["cell_type"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        sp.save_npz(tmp / FILES["atac"], bundle.atac.astype(np.uint8).tocsr(), compressed=True)
        np.save(tmp / FILES["rna"], np.ascontiguousarray(bundle.rna, dtype=np.float32))
        _write_tsv(bundle.cells[CELL_COLS], tmp / FILES["cells"])
        _write_tsv(bundle.peaks[PEAK_COLS], tmp / FILES["peaks"])
        _write_tsv(bundle.genes[GENE_COLS], tmp / FILES["genes"])
        _write_tsv(bundle.exons.reindex(columns=EXON_COLS), tmp / FILES["exons"])
        _write_tsv(bundle.tads.reindex(columns=TAD_COLS), tmp / FILES["tads"])
        np.savez_compressed(
            tmp / FILES["coverage"], cell_types=np.array(bundle.coverage_types), frac_open=bundle.coverage
        )
        _save_hic(bundle.hic, tmp / FILES["hic"])
        if bundle.truth is not None:
            _write_tsv(bundle.truth[TRUTH_COLS], tmp / FILES["truth"])
        manifest = dict(bundle.manifest)
        manifest.setdefault("genome_build", "hg38")
        manifest.setdefault("bundle_id", content_id(tmp, manifest["genome_build"]))
        manifest["schema_version"] = SCHEMA_VERSION
        manifest["counts"] = {
            "cells": int(bundle.atac.shape[0]),
            "peaks": int(bundle.atac.shape[1]),
            "genes": int(bundle.rna.shape[1]),
            "atac_nonzero": int(bundle.atac.nnz),
        }
        manifest["checksums"] = {
            name: _sha256(tmp / fname) for name, fname in FILES.items() if (tmp / fname).exists()
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        publish_mode(tmp, directory=True)
        _replace_dir(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    bundle.manifest, bundle.path = manifest, out
    return out


def _replace_dir(new: Path, out: Path, overwrite: bool) -> None:
    """Move ``new`` to ``out``; an existing ``out`` must be an empty directory or (with ``overwrite``) a GRIDS
    bundle, checked again right before anything is moved so that nothing else is ever deleted."""
    old = None
    if os.path.lexists(out):
        _check_replaceable(out, overwrite)
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:6]}")
        out.rename(old)
    try:
        new.rename(out)
    except BaseException:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:  # its models and results belong to the old bundle id: they go with it
        shutil.rmtree(old, ignore_errors=True)


def _write_tsv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, sep="\t", index=False)


def _save_hic(hic: dict[str, dict], path: Path) -> None:
    chroms = sorted({v["chrom"] for v in hic.values()}, key=natural_chrom_key)
    arrays: dict[str, np.ndarray] = {"chroms": np.array(chroms, dtype=str)}
    for gene, v in hic.items():
        arrays[f"{gene}__matrix"] = np.asarray(v["matrix"], dtype=np.float32)
        arrays[f"{gene}__meta"] = np.array([chroms.index(v["chrom"]), v["start"], v["bin_size"]], dtype=np.int64)
        arrays[f"{gene}__simulated"] = np.array([bool(v.get("simulated", True))])
    np.savez_compressed(path, **arrays)


def content_id(directory: Path, genome_build: str) -> str:
    """A bundle id from its data: the same cells, peaks, genes and annotations give the same id on any machine
    (arrays are hashed by value, since ``.npz`` files carry their write time)."""
    h = hashlib.sha256(genome_build.encode())
    for name, fname in sorted(FILES.items()):
        path = directory / fname
        if not path.exists():
            continue
        h.update(name.encode())
        if path.suffix != ".npz":
            h.update(_sha256(path).encode())
            continue
        with np.load(path, allow_pickle=False) as arrays:
            for key in sorted(arrays.files):
                a = np.ascontiguousarray(arrays[key])
                h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
                h.update(a.tobytes())
    return h.hexdigest()[:12]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- load ---------------------------------------------------------------------------------------
def is_bundle_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a directory whose manifest.json is a GRIDS bundle manifest (of any schema version,
    checksums not verified: a damaged bundle can still be replaced)."""
    mpath = Path(path) / "manifest.json"
    try:
        if not mpath.is_file():
            return False
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(manifest, dict) and "schema_version" in manifest
            and isinstance(manifest.get("checksums"), dict) and set(manifest["checksums"]) <= set(FILES))


def _check_replaceable(out: Path, overwrite: bool) -> None:
    """Refuse an existing ``out`` that is not an empty directory, or a GRIDS bundle with ``overwrite``."""
    if out.is_symlink():
        raise BundleError(f"--out {out} is a symbolic link (to {os.readlink(out)}); it was left as it is. "
                          "Pick another --out, or pass the directory it points to.")
    if not out.is_dir():
        raise BundleError(f"--out {out} is a file, not a bundle directory; it was left as it is. "
                          "Pick another --out (a new or empty directory).")
    try:
        entries = sorted(p.name for p in out.iterdir())
    except OSError as exc:
        raise BundleError(f"Cannot list --out {out}: {exc.strerror or exc}. Pick another --out.") from exc
    if not entries:
        return
    if is_bundle_dir(out):
        if not overwrite:
            raise BundleError(f"{out} already exists and holds a GRIDS bundle. Pass --force to replace it (its "
                              "models and stored runs go with it), or pick another --out.")
        return
    raise BundleError(f"{out} already exists and is not a GRIDS bundle (it holds {len(entries)} "
                      f"entr{'y' if len(entries) == 1 else 'ies'}, e.g. {entries[0]!r}); it was left as it is. --force replaces only a GRIDS bundle or an empty "
                      "directory: pick another --out (a new or empty directory).")


def check_output_dir(out: str | os.PathLike, overwrite: bool = False, inputs: dict | None = None) -> Path:
    """Fail early (before any work) when a bundle cannot be written at ``out``.

    An existing ``out`` is accepted only when it is an empty directory, or a GRIDS bundle and ``overwrite``.
    ``inputs`` maps option names (``tenx_h5`` for ``--tenx-h5``) to input paths; an ``out`` that is, contains or
    lies inside one of them is refused.
    """
    out = Path(out)
    _check_not_overlapping(out, inputs or {})
    if os.path.lexists(out):
        _check_replaceable(out, overwrite)
    try:
        probe_writable_parent(out)
    except OSError as exc:
        raise BundleError(f"Cannot write a bundle in {out.parent}: {exc.strerror or exc}. Pick another --out.") from exc
    return out


def _check_not_overlapping(out: Path, inputs: dict) -> None:
    """Refuse an ``out`` that is, contains or lies inside an input file or directory."""
    target = out.resolve()
    for name, value in inputs.items():
        if value is None or str(value) == "":
            continue
        src = Path(value).resolve()
        option = "--" + name.replace("_", "-")
        if target == src or target in src.parents or src in target.parents:
            how = ("is" if target == src else "contains" if target in src.parents else "lies inside")
            raise BundleError(f"--out {out} {how} the {option} input {value}: writing the bundle there would "
                              "replace or mix with your input files. Nothing was changed. Pick an --out "
                              "outside your input files and folders.")


def require_bundle_dir(path: str | os.PathLike) -> Path:
    """``path`` as a Path when it is a bundle directory (has a manifest); a clear error otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BundleError(f"{path} is a file, not a bundle directory. Pass --bundle DIR, the directory written by "
                          "`grids simulate --out DIR` or `grids prepare --out DIR`.")
    if not path.is_dir():
        raise BundleError(f"No bundle at {path}: the directory does not exist. Create one with "
                          f"`grids simulate --out {path}` or `grids prepare --out {path} ...`.")
    if not (path / "manifest.json").exists():
        raise BundleError(f"{path / 'manifest.json'} is missing: {path} is not a GRIDS bundle (or it was "
                          "half-copied). Re-create it with `grids simulate` / `grids prepare`.")
    return path


def load(path: str | os.PathLike, *, verify_checksums: bool = True) -> Bundle:
    """Read and validate the bundle in directory ``path``."""
    path = require_bundle_dir(path)
    mpath = path / "manifest.json"
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mpath} is not valid JSON ({exc}). The bundle is corrupt; re-create it.") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("checksums", {}), dict):
        raise BundleError(f"{mpath} is not a bundle manifest (a JSON object with a 'checksums' object). "
                          "The bundle is corrupt; re-create it.")
    unknown = sorted(set(manifest.get("checksums", {})) - set(FILES))
    if unknown:
        raise BundleError(f"{mpath} lists checksums of unknown files {unknown}: the manifest was edited or comes "
                          "from another tool. Re-create the bundle.")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(
            f"{mpath}: schema_version {manifest.get('schema_version')!r}, this version reads {SCHEMA_VERSION}. "
            "Re-create the bundle with this version of grids."
        )
    for layer in REQUIRED:
        if not (path / FILES[layer]).exists():
            raise BundleError(f"{path / FILES[layer]} is missing from the bundle. Re-create the bundle.")
    if verify_checksums:
        for layer, digest in manifest.get("checksums", {}).items():
            f = path / FILES[layer]
            if not f.exists():
                raise BundleError(f"{f} is listed in the manifest but missing. Re-create the bundle.")
            if _sha256(f) != digest:
                raise BundleError(f"{f} does not match its checksum in manifest.json: the file was changed or truncated. Re-create the bundle.")
    try:
        atac = sp.load_npz(path / FILES["atac"]).tocsr()
        rna = np.load(path / FILES["rna"], allow_pickle=False)
        cells = _read_tsv(path / FILES["cells"], {"barcode": str, "cell_type": str, "split": str})
        peaks = _read_tsv(path / FILES["peaks"], {"chrom": str, "name": str})
        genes = _read_tsv(path / FILES["genes"], {"name": str, "gene_id": str, "chrom": str, "strand": str})
        exons = _read_optional_tsv(path / FILES["exons"], EXON_COLS, {"chrom": str, "gene_name": str, "transcript_id": str})
        tads = _read_optional_tsv(path / FILES["tads"], TAD_COLS, {"chrom": str, "source": str})
        truth = (
            _read_tsv(path / FILES["truth"], {"gene": str, "cell_type": str, "peak": str, "logic": str})
            if (path / FILES["truth"]).exists()
            else None
        )
        cov_types, cov = [], None
        if (path / FILES["coverage"]).exists():
            with np.load(path / FILES["coverage"], allow_pickle=False) as z:
                cov_types, cov = [str(s) for s in z["cell_types"]], z["frac_open"]
        hic = _load_hic(path / FILES["hic"]) if (path / FILES["hic"]).exists() else {}
    except BundleError:
        raise
    except Exception as exc:  # corrupt zip, bad header, ...
        raise BundleError(f"Could not read bundle {path}: {type(exc).__name__}: {exc}. Re-create the bundle.") from exc
    bundle = Bundle(atac, rna, cells, peaks, genes, exons, cov_types, cov, tads, hic, truth, manifest, path)
    validate(bundle)
    return bundle


def _read_tsv(path: Path, dtype: dict) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", dtype=dtype, keep_default_na=False)
    except Exception as exc:
        raise BundleError(f"{path} is not a readable TSV ({exc}). Re-create the bundle.") from exc


def _read_optional_tsv(path: Path, cols: list[str], dtype: dict) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame(columns=cols)
    return _read_tsv(path, dtype)


def _load_hic(path: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    with np.load(path, allow_pickle=False) as z:
        chroms = [str(c) for c in z["chroms"]]
        for key in z.files:
            if key.endswith("__matrix"):
                gene = key[: -len("__matrix")]
                meta = z[f"{gene}__meta"]
                out[gene] = {
                    "matrix": z[key],
                    "chrom": chroms[int(meta[0])],
                    "start": int(meta[1]),
                    "bin_size": int(meta[2]),
                    "simulated": bool(z[f"{gene}__simulated"][0]) if f"{gene}__simulated" in z.files else True,
                }
    return out


# ---- validate -----------------------------------------------------------------------------------
def validate(b: Bundle) -> None:
    """Raise ``BundleError`` naming the layer and the problem if the bundle is inconsistent."""
    where = f" in bundle {b.path}" if b.path else ""
    n_cells, n_peaks = b.atac.shape
    if not sp.isspmatrix_csr(b.atac) and not isinstance(b.atac, sp.csr_array):
        raise BundleError(f"atac{where} must be a CSR matrix, got {type(b.atac).__name__}.")
    if b.atac.nnz and not np.all(b.atac.data == 1):
        raise BundleError(f"atac.npz{where} must be binary (0/1); found values {np.unique(b.atac.data)[:5]}. Binarise peaks first.")
    if b.rna.ndim != 2 or b.rna.shape[0] != n_cells:
        raise BundleError(f"rna.npy{where} has shape {b.rna.shape}, expected ({n_cells}, genes) to match atac.")
    if not np.all(np.isfinite(b.rna)) or (b.rna.size and b.rna.min() < 0):
        raise BundleError(f"rna.npy{where} must be finite and non-negative (log1p of normalised counts).")
    for name, df, cols, n in (
        ("cells.tsv", b.cells, CELL_COLS, n_cells),
        ("peaks.tsv", b.peaks, PEAK_COLS, n_peaks),
        ("genes.tsv", b.genes, GENE_COLS, b.rna.shape[1]),
    ):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise BundleError(f"{name}{where} lacks columns {missing} (needs {cols}).")
        if len(df) != n:
            raise BundleError(f"{name}{where} has {len(df)} rows but the matrices need {n}.")
    if b.cells["barcode"].duplicated().any():
        raise BundleError(f"cells.tsv{where} has duplicated barcodes, e.g. {b.cells['barcode'][b.cells['barcode'].duplicated()].iloc[0]!r}.")
    bad_split = set(b.cells["split"]) - set(SPLITS)
    if bad_split:
        raise BundleError(f"cells.tsv{where}: split must be one of {SPLITS}, found {sorted(bad_split)}.")
    if (b.cells["cell_type"].astype(str).str.len() == 0).any():
        raise BundleError(f"cells.tsv{where} has cells with an empty cell_type.")
    if b.genes["name"].duplicated().any():
        raise BundleError(f"genes.tsv{where} has duplicated gene names, e.g. {b.genes['name'][b.genes['name'].duplicated()].iloc[0]!r}.")
    if not set(b.genes["strand"]).issubset({"+", "-", "."}):
        raise BundleError(f"genes.tsv{where}: strand must be '+', '-' or '.' (unknown).")
    starts = b.peaks["start"].to_numpy()
    if (b.peaks["end"].to_numpy() <= starts).any():
        raise BundleError(f"peaks.tsv{where} has peaks with end <= start.")
    rank = {c: i for i, c in enumerate(sorted(b.peaks["chrom"].unique(), key=natural_chrom_key))}
    chrom_rank = b.peaks["chrom"].map(rank).to_numpy()
    step_chrom, step_start = np.diff(chrom_rank), np.diff(starts)
    if (step_chrom < 0).any() or ((step_chrom == 0) & (step_start < 0)).any():
        raise BundleError(f"peaks.tsv{where} is not sorted by chromosome (natural order) then start. Sort peaks (and ATAC columns) first.")
    if b.coverage is not None and b.coverage.shape != (len(b.coverage_types), n_peaks):
        raise BundleError(f"coverage.npz{where} has shape {b.coverage.shape}, expected ({len(b.coverage_types)}, {n_peaks}).")
    if b.truth is not None and len(b.truth) and int(b.truth["peak_index"].max()) >= n_peaks:
        raise BundleError(f"truth.tsv{where} points at peak indices beyond the {n_peaks} peaks.")
