"""MNIST 3-vs-8: the paper's image experiment (ALGORITHM §3, §6), engine side only.

Data (the shipped 500 + 500 subset, or standard IDX files), a seeded stratified split, the MLP classifier
(784 -> 128 -> 64 -> 2, ReLU) exposed as a two-stage model (stage 1 = first Linear layer), the GRIDS
objective (pixels set to black, minimise the log-odds of class 8 over training images of 8), simple
baselines, and the evaluation on test images of 8 (Δφ per image, paired Wilcoxon GRIDS vs each method).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from grids_core.errors import InputError, ModelError
from grids_core.explain.base import DenseAffineStage1, Objective, to_dense
from grids_core.explain.grids import SearchResult, candidate_pool, evaluate_subset, grids_search

Progress = Callable[[float, str], None]
"""The engine's progress callback: ``progress(fraction_done, message)``, fraction in [0, 1]."""

DIGIT_NEG, DIGIT_POS = 3, 8
IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]

# ----------------------------------------------------------------------------------------------- IDX files

# IDX dtype code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    """File contents, transparently gunzipped when the file is gzip (by magic bytes)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"Cannot read IDX file {path}: {e}. Check the path and permissions.") from e
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise InputError(
            f"IDX file {path} is a corrupt or truncated gzip archive ({e}). "
            "Download the file again (or gunzip it and check it decompresses without error)."
        ) from e


def read_idx(path: Path | str) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a native-endian numpy array.

    Layout: 2 zero bytes, a dtype code, the number of dims d, then d big-endian uint32 sizes, then the
    data, big-endian, row-major. Raises ``InputError`` for a bad magic number or a wrong byte count.
    """
    path = Path(path)
    buf = _read_bytes(path)
    fix = "Download the file again; it must be an unmodified MNIST-style IDX file (optionally .gz)."
    if len(buf) < 4:
        raise InputError(f"IDX file {path} is too short for a header: {len(buf)} bytes, expected at least 4. {fix}")
    zero1, zero2, code, ndim = buf[0], buf[1], buf[2], buf[3]
    if zero1 != 0 or zero2 != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise InputError(
            f"{path} is not an IDX file: magic number 0x{buf[:4].hex()} (expected 0x0000 followed by a dtype "
            f"code in {{{', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)}}} and a dimension count >= 1). {fix}"
        )
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise InputError(
            f"IDX file {path} is truncated in its header: {len(buf)} bytes, expected at least {header} "
            f"for {ndim} dimensions. {fix}"
        )
    dims = struct.unpack(f">{ndim}I", buf[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = header + math.prod(dims) * dtype.itemsize
    if len(buf) != expected:
        what = "truncated" if len(buf) < expected else "longer than its header says"
        raise InputError(
            f"IDX file {path} is {what}: expected {expected} bytes (header {header} + shape {tuple(dims)} "
            f"x {dtype.itemsize} byte(s)), found {len(buf)} bytes (decompressed). {fix}"
        )
    arr = np.frombuffer(buf, dtype=dtype, offset=header, count=math.prod(dims)).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: Path | str, arr: np.ndarray) -> None:
    """Write ``arr`` as an (uncompressed, or gzipped if the name ends in .gz) IDX file."""
    arr = np.asarray(arr)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
    code = codes.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise InputError(f"Cannot write dtype {arr.dtype} as IDX; use one of uint8, int8, int16, int32, float32, float64.")
    data = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data += arr.astype(np.dtype(_IDX_DTYPES[code]), copy=False).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _find_idx(mnist_dir: Path, prefix: str, kind: str) -> Path | None:
    """``{prefix}-{kind}`` in the usual spellings (dash or dot before idx, optional .gz), or None."""
    for stem in (f"{prefix}-{kind}", f"{prefix}-{kind.replace('-idx', '.idx')}"):
        for name in (stem, f"{stem}.gz"):
            if (mnist_dir / name).is_file():
                return mnist_dir / name
    return None


# ----------------------------------------------------------------------------------------------------- data


def _keep_3_8(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flattened float images in [0, 1] and binary labels (1 = digit 8) of the 3s and 8s only."""
    keep = (labels == DIGIT_NEG) | (labels == DIGIT_POS)
    x = images[keep].reshape(int(keep.sum()), -1).astype(np.float32) / 255.0
    y = (labels[keep] == DIGIT_POS).astype(np.int64)
    return x, y


def load_digits(mnist_dir: Path | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images of 3 and 8 as ``X`` float32 [n, 784] in [0, 1] and ``y`` int64 (1 = digit 8, 0 = digit 3).

    Default: the shipped subset (``grids_core.reference.mnist_digits``). With ``mnist_dir``: the standard
    IDX files there (``train-*`` and/or ``t10k-*``, optionally gzipped), concatenated train then t10k.
    """
    if mnist_dir is None:
        from grids_core.reference import mnist_digits

        images, labels = mnist_digits()
        return _keep_3_8(np.asarray(images), np.asarray(labels))
    mnist_dir = Path(mnist_dir)
    if not mnist_dir.is_dir():
        raise InputError(f"MNIST folder {mnist_dir} does not exist. Pass the folder holding the IDX files.")
    parts = []
    for prefix in ("train", "t10k"):
        img_path = _find_idx(mnist_dir, prefix, "images-idx3-ubyte")
        lab_path = _find_idx(mnist_dir, prefix, "labels-idx1-ubyte")
        if img_path is None and lab_path is None:
            continue
        if img_path is None or lab_path is None:
            missing = f"{prefix}-{'images-idx3' if img_path is None else 'labels-idx1'}-ubyte[.gz]"
            raise InputError(f"{mnist_dir} has only one of the {prefix} IDX pair: {missing} is missing. Add it.")
        images, labels = read_idx(img_path), read_idx(lab_path)
        if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE or images.dtype != np.uint8:
            raise InputError(
                f"{img_path} holds {images.dtype} images of shape {images.shape[1:]}; expected uint8 28x28. "
                "Use the MNIST image file (idx3-ubyte)."
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise InputError(
                f"{lab_path} has {labels.shape} labels for {images.shape[0]} images in {img_path.name}. "
                "Use the label file that belongs to the image file."
            )
        parts.append(_keep_3_8(images, labels))
    if not parts:
        raise InputError(
            f"No MNIST IDX files in {mnist_dir}: expected train-images-idx3-ubyte[.gz] + "
            "train-labels-idx1-ubyte[.gz] and/or t10k-images-idx3-ubyte[.gz] + t10k-labels-idx1-ubyte[.gz]."
        )
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def split(
    y: np.ndarray | int, seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
) -> dict[str, np.ndarray]:
    """Seeded train/val/test index split, stratified by label (pass ``y``); an int n gives a plain split.

    Each split's indices are sorted. Same inputs + seed -> same split.
    """
    labels = np.zeros(int(y), dtype=np.int64) if np.isscalar(y) else np.asarray(y)
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        out["train"].append(idx[:n_train])
        out["val"].append(idx[n_train : n_train + n_val])
        out["test"].append(idx[n_train + n_val :])
    return {k: np.sort(np.concatenate(v)) if v else np.zeros(0, np.int64) for k, v in out.items()}


# ------------------------------------------------------------------------------------------------ classifier


class MnistMLP(nn.Module, DenseAffineStage1):
    """MLP n_in -> 128 -> 64 -> 2 with ReLU; class 1 = digit 8. Two-stage: stage1 = ``fc1`` (affine)."""

    def __init__(self, n_in: int = N_PIXELS, hidden: tuple[int, int] = (128, 64), n_classes: int = 2):
        super().__init__()
        self.config = {"n_in": int(n_in), "hidden": [int(h) for h in hidden], "n_classes": int(n_classes)}
        self.fc1 = nn.Linear(n_in, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], n_classes)

    def stage1_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(c [H], W [N, H])`` of the first layer, detached (explainers never train the model)."""
        return self.fc1.bias.detach(), self.fc1.weight.detach().T

    def stage2(self, h: torch.Tensor) -> torch.Tensor:
        """Logits [B, 2] from first-layer pre-activations [B, 128]."""
        return self.fc3(torch.relu(self.fc2(torch.relu(h))))

    def log_odds_8(self, h: torch.Tensor) -> torch.Tensor:
        """``φ(p8) = log p8 - log(1 - p8)`` from pre-activations; for two classes exactly logit8 - logit3."""
        logits = self.stage2(h)
        return logits[:, 1] - logits[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, 2] of flattened images [B, 784]."""
        return self.stage2(self.fc1(x))

    @property
    def device(self) -> torch.device:
        return self.fc1.weight.device


def log_odds(p: np.ndarray | torch.Tensor) -> np.ndarray:
    """``φ(p) = log p - log(1 - p)`` (the paper's metric) on probabilities, as float64 numpy."""
    p = np.asarray(p.detach().cpu() if isinstance(p, torch.Tensor) else p, dtype=np.float64)
    return np.log(p) - np.log1p(-p)


def _new_model(seed: int, config: dict | None = None, device: torch.device | str = "cpu") -> MnistMLP:
    """Model with weights drawn from ``seed`` without touching the global torch RNG."""
    config = config or {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MnistMLP(**config)
    return model.to(device)


def _loss(model: MnistMLP, x: torch.Tensor, y: torch.Tensor, batch: int = 4096) -> float:
    """Mean cross-entropy of the model on (x, y), in eval mode, without gradients."""
    with torch.no_grad():
        total = sum(
            nn.functional.cross_entropy(model(x[i : i + batch]), y[i : i + batch], reduction="sum").item()
            for i in range(0, len(x), batch)
        )
    return total / max(len(x), 1)


def predict_proba_8(model: MnistMLP, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """p(digit 8) per image, float64 numpy."""
    xt = to_dense(x, model.device)
    with torch.no_grad():
        return torch.softmax(model(xt).double(), dim=1)[:, 1].cpu().numpy()


def accuracy(model: MnistMLP, x: np.ndarray | torch.Tensor, y: np.ndarray) -> float:
    """Fraction of images classified correctly (argmax of the two logits)."""
    return float(np.mean((predict_proba_8(model, x) > 0.5).astype(np.int64) == np.asarray(y)))


def train_classifier(
    X: np.ndarray,
    y: np.ndarray,
    split: dict[str, np.ndarray],
    seed: int = 0,
    max_epochs: int = 50,
    lr: float = 1e-4,
    batch_size: int = 64,
    eval_every: int = 10,
    patience_steps: int = 200,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> tuple[MnistMLP, dict]:
    """Train the MLP with Adam; early stopping on validation loss (checked every ``eval_every`` steps,
    patience in steps, best weights restored). Deterministic for a seed on CPU.

    Returns ``(model, info)``; info: test/val/train accuracy, best val loss, epochs, steps, best step,
    stopped early, train seconds and the settings.
    """
    t0 = time.perf_counter()
    dev = torch.device(device)
    xt = torch.from_numpy(np.asarray(X, dtype=np.float32)).to(dev)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(dev)
    tr, va, te = (torch.from_numpy(np.asarray(split[k], dtype=np.int64)).to(dev) for k in ("train", "val", "test"))
    if len(tr) == 0 or len(va) == 0:
        raise InputError(f"Training needs non-empty train and val splits; got {len(tr)} train, {len(va)} val.")
    model = _new_model(seed, device=dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    best_loss, best_step, best_state = math.inf, 0, None
    step, epoch, stopped_early = 0, 0, False
    x_tr, y_tr, x_va, y_va = xt[tr], yt[tr], xt[va], yt[va]
    for epoch in range(1, max_epochs + 1):  # noqa: B007 - epoch is reported after the loop
        model.train()
        order = torch.from_numpy(rng.permutation(len(tr))).to(dev)
        for i in range(0, len(order), batch_size):
            b = order[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x_tr[b]), y_tr[b]).backward()
            opt.step()
            step += 1
            if step % eval_every == 0:
                model.eval()
                val = _loss(model, x_va, y_va)
                model.train()
                if val < best_loss:
                    best_loss, best_step = val, step
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                elif step - best_step >= patience_steps:
                    stopped_early = True
                    break
        if progress is not None:
            progress(epoch / max_epochs, f"epoch {epoch}/{max_epochs}, best val loss {best_loss:.4f}")
        if stopped_early:
            break
    model.eval()
    val = _loss(model, x_va, y_va)
    if val < best_loss or best_state is None:
        best_loss, best_step = val, step
    else:
        model.load_state_dict(best_state)
    info = {
        "test_accuracy": accuracy(model, xt[te], y[split["test"]]) if len(te) else float("nan"),
        "val_accuracy": accuracy(model, x_va, y[split["val"]]),
        "train_accuracy": accuracy(model, x_tr, y[split["train"]]),
        "best_val_loss": float(best_loss),
        "epochs": int(epoch),
        "steps": int(step),
        "best_step": int(best_step),
        "stopped_early": bool(stopped_early),
        "train_seconds": time.perf_counter() - t0,
        "n_train": len(tr),
        "n_val": len(va),
        "n_test": len(te),
        "seed": int(seed),
        "lr": float(lr),
        "batch_size": int(batch_size),
        "max_epochs": int(max_epochs),
        "eval_every": int(eval_every),
        "patience_steps": int(patience_steps),
    }
    return model, info


def save_classifier(model: MnistMLP, path: Path | str, info: dict | None = None) -> None:
    """Save state_dict + architecture config (+ training info) with ``torch.save``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save({"kind": "mnist_mlp", "config": model.config, "state_dict": state, "info": dict(info or {})}, tmp)
        os.replace(tmp, path)  # atomic: a cancelled save never leaves a half-written checkpoint
    finally:
        tmp.unlink(missing_ok=True)


def load_classifier(path: Path | str, device: torch.device | str = "cpu") -> tuple[MnistMLP, dict]:
    """Load a classifier saved by ``save_classifier`` (``weights_only=True``); returns ``(model, info)``."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or ckpt.get("kind") != "mnist_mlp":
            raise ValueError("not an MNIST classifier checkpoint")
        model = MnistMLP(**ckpt["config"])
        model.load_state_dict(ckpt["state_dict"])
    except FileNotFoundError as e:
        raise ModelError(f"MNIST classifier {path} does not exist. Train one first (train_classifier).") from e
    except Exception as e:  # noqa: BLE001 - any unpickling/shape problem means a bad checkpoint
        raise ModelError(
            f"MNIST classifier {path} is corrupt or not a classifier checkpoint ({e}). Delete it and retrain."
        ) from e
    return model.to(device).eval(), dict(ckpt.get("info", {}))


# ------------------------------------------------------------------------------------ objective and baselines


def mnist_objective(model: MnistMLP, X_train_8: np.ndarray | torch.Tensor) -> Objective:
    """GRIDS objective: pixels of S set to 0 (black), minimise mean log-odds of 8 over training 8s."""
    model.eval()
    return Objective(
        model=model,
        readout=model.log_odds_8,
        x_target=to_dense(X_train_8, model.device),
        value=0.0,
        sign=1.0,
        name="MNIST: log-odds of digit 8 over training images of 8",
    )


def perturb(x: np.ndarray | torch.Tensor, subset: np.ndarray, value: float = 0.0) -> torch.Tensor:
    """Copy of dense inputs with the features in ``subset`` set to ``value``."""
    out = to_dense(x).clone()
    out[:, torch.as_tensor(np.asarray(subset, dtype=np.int64))] = value
    return out


def _baseline_subset(name: str) -> Callable[..., np.ndarray]:
    """Top-L pixels of a baseline scorer from grids_core.explain.baselines (CXPlain on 2x2 windows)."""

    def fn(objective: Objective, L: int, seed: int = 0) -> np.ndarray:
        from grids_core.explain.baselines import SCORERS, top_l

        options = {"image_shape": IMAGE_SHAPE} if name == "cxplain" else {}
        pool = candidate_pool(objective)
        scores = SCORERS[name].fn(objective, pool, L=L, seed=seed, progress=None, cancel=None, **options)
        return np.asarray(top_l(scores, pool, L), dtype=np.int64)

    fn.__name__ = f"{name}_subset"
    fn.__doc__ = f"Top-L pixels by the {name} baseline."
    return fn


def grids_subset(objective: Objective, L: int, seed: int = 0, k: int = 32, **kwargs) -> np.ndarray:
    """The GRIDS subset (``grids_core.explain.grids.grids_search``)."""
    return np.asarray(grids_search(objective, L, k=k, seed=seed, **kwargs).subset, dtype=np.int64)


MethodFn = Callable[[Objective, int, int], np.ndarray]
BASELINES = ("random", "saliency", "ablation", "smoothgrad", "ig", "sage", "lime", "cxplain", "fimap")
METHODS: dict[str, MethodFn] = {"grids": grids_subset, **{name: _baseline_subset(name) for name in BASELINES}}
"""Method registry: name -> ``fn(objective, L, seed) -> subset`` (pixel indices). Baselines plug in here."""


# -------------------------------------------------------------------------------------------------- evaluation


@dataclass
class MaskEvaluation:
    """Per-image Δφ per method, the per-method summary and the paired Wilcoxon tests."""

    delta: dict[str, np.ndarray]
    summary: pd.DataFrame
    wilcoxon: pd.DataFrame
    phi_original: np.ndarray


def log_odds_8(model: MnistMLP, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """φ(p(8)) per image (computed stably as logit8 - logit3), float64 numpy."""
    xt = to_dense(x, model.device)
    with torch.no_grad():
        return model.log_odds_8(model.stage1(xt)).double().cpu().numpy()


def evaluate_masks(
    model: MnistMLP,
    X_test: np.ndarray,
    y_test: np.ndarray,
    masks: dict[str, np.ndarray],
    reference: str = "grids",
    value: float = 0.0,
) -> MaskEvaluation:
    """Effect of each method's pixel subset on the test images of 8.

    Per image ``Δφ = φ(p(x)) - φ(p(x with S set to value))`` (positive = evidence for 8 removed). Summary
    per method: median/mean Δφ, accuracy on 8s before/after and its drop, fraction of masked 8s classified
    as 3. Wilcoxon: paired signed-rank test ``reference`` > each other method (alternative="greater").
    """
    x8 = np.asarray(X_test)[np.asarray(y_test) == 1]
    phi0 = log_odds_8(model, x8)
    acc0 = float(np.mean(phi0 > 0))
    delta: dict[str, np.ndarray] = {}
    rows = []
    for name, subset in masks.items():
        phi1 = log_odds_8(model, perturb(x8, subset, value))
        delta[name] = phi0 - phi1
        rows.append(
            {
                "method": name,
                "L": len(subset),
                "n_images": len(x8),
                "median_delta_phi": float(np.median(delta[name])) if len(x8) else float("nan"),
                "mean_delta_phi": float(np.mean(delta[name])) if len(x8) else float("nan"),
                "accuracy_8_before": acc0,
                "accuracy_8_after": float(np.mean(phi1 > 0)),
                "accuracy_drop": acc0 - float(np.mean(phi1 > 0)),
                "fraction_now_3": float(np.mean(phi1 < 0)),
            }
        )
    summary = pd.DataFrame(rows).set_index("method") if rows else pd.DataFrame()
    tests = []
    if reference in delta:
        for name, d in delta.items():
            if name == reference:
                continue
            diff = delta[reference] - d
            try:
                res = stats.wilcoxon(delta[reference], d, alternative="greater")
                stat, p = float(res.statistic), float(res.pvalue)
            except ValueError:  # all differences zero (identical subsets) or too few images
                stat, p = float("nan"), float("nan")
            tests.append(
                {
                    "method": name,
                    "reference": reference,
                    "median_difference": float(np.median(diff)) if len(diff) else float("nan"),
                    "statistic": stat,
                    "p_value": p,
                    "n_images": len(diff),
                }
            )
    wilcoxon = pd.DataFrame(tests).set_index("method") if tests else pd.DataFrame()
    return MaskEvaluation(delta=delta, summary=summary, wilcoxon=wilcoxon, phi_original=phi0)


# -------------------------------------------------------------------------------------------------- experiment


@dataclass
class MnistExperiment:
    """Everything one MNIST run produced (settings, classifier info, subsets, Δφ, tables, timings)."""

    settings: dict
    model_info: dict
    subsets: dict[str, np.ndarray]
    delta: dict[str, np.ndarray]
    summary: pd.DataFrame
    wilcoxon: pd.DataFrame
    train_objective: dict[str, float]
    timings: dict[str, float]
    split: dict[str, np.ndarray]
    grids_result: SearchResult | None = None
    model: MnistMLP | None = field(default=None, repr=False)


def run_mnist_experiment(
    L: int = 64,
    k: int = 32,
    seed: int = 0,
    methods: tuple[str, ...] = ("grids", "random", "saliency", "ablation"),
    progress: Progress | None = None,
    mnist_dir: Path | str | None = None,
    model_path: Path | str | None = None,
    data: tuple[np.ndarray, np.ndarray] | None = None,
    model: MnistMLP | None = None,
    train_kwargs: dict | None = None,
) -> MnistExperiment:
    """Load digits, split, train (or load ``model_path`` / use ``model``), learn each method's L-pixel
    subset on training 8s, and evaluate on test 8s (Δφ, summary, Wilcoxon GRIDS vs the rest).
    """
    from grids_core.errors import UnknownNameError, suggest

    for m in methods:
        if m not in METHODS:
            raise UnknownNameError(f"Unknown MNIST method {m!r}.{suggest(m, METHODS)} Known: {', '.join(METHODS)}.")

    def report(msg: str, frac: float) -> None:
        if progress is not None:
            progress(frac, msg)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    X, y = data if data is not None else load_digits(mnist_dir)
    parts = split(y, seed)
    timings["load"] = time.perf_counter() - t0
    report(f"loaded {len(y)} images", 0.05)

    t0 = time.perf_counter()
    if model is not None:
        info = {"test_accuracy": accuracy(model, X[parts["test"]], y[parts["test"]]), "source": "given"}
    elif model_path is not None and Path(model_path).is_file():
        model, info = load_classifier(model_path)
        info = {**info, "source": str(model_path)}
    else:
        kw = {"progress": lambda f, m: report(f"training: {m}", 0.05 + 0.15 * f), **(train_kwargs or {})}
        model, info = train_classifier(X, y, parts, seed=seed, **kw)
        if model_path is not None:
            save_classifier(model, model_path, info)
    timings["classifier"] = time.perf_counter() - t0
    report(f"classifier ready (test accuracy {info['test_accuracy']:.3f})", 0.2)

    tr = parts["train"]
    objective = mnist_objective(model, X[tr][y[tr] == 1])
    subsets: dict[str, np.ndarray] = {}
    grids_result = None
    for i, m in enumerate(methods):
        t0 = time.perf_counter()
        if m == "grids":
            lo, span = 0.2 + 0.7 * i / len(methods), 0.7 / len(methods)

            def sub(f: float, msg: str, lo: float = lo, span: float = span) -> None:
                report(f"grids: {msg}", lo + span * f)

            grids_result = grids_search(objective, L, k=k, seed=seed, progress=sub)
            subsets[m] = np.asarray(grids_result.subset, dtype=np.int64)
        else:
            subsets[m] = np.asarray(METHODS[m](objective, L, seed), dtype=np.int64)
        timings[m] = time.perf_counter() - t0
        report(f"{m}: {len(subsets[m])} pixels in {timings[m]:.2f} s", 0.2 + 0.7 * (i + 1) / len(methods))

    train_objective = {m: evaluate_subset(objective, s) for m, s in subsets.items()}
    train_objective["none"] = evaluate_subset(objective, np.zeros(0, np.int64))
    t0 = time.perf_counter()
    te = parts["test"]
    ev = evaluate_masks(model, X[te], y[te], subsets, reference="grids" if "grids" in subsets else methods[0])
    timings["evaluate"] = time.perf_counter() - t0
    report("done", 1.0)
    return MnistExperiment(
        settings={"L": int(L), "k": int(k), "seed": int(seed), "methods": list(methods), "value": 0.0, "sign": 1.0},
        model_info=info,
        subsets=subsets,
        delta=ev.delta,
        summary=ev.summary,
        wilcoxon=ev.wilcoxon,
        train_objective=train_objective,
        timings=timings,
        split=parts,
        grids_result=grids_result,
        model=model,
    )


__all__ = [
    "METHODS",
    "MaskEvaluation",
    "MnistExperiment",
    "MnistMLP",
    "accuracy",
    "candidate_pool",
    "evaluate_subset",
    "evaluate_masks",
    "grids_subset",
    "BASELINES",
    "load_classifier",
    "load_digits",
    "log_odds",
    "log_odds_8",
    "mnist_objective",
    "perturb",
    "read_idx",
    "run_mnist_experiment",
    "save_classifier",
    "split",
    "train_classifier",
    "write_idx",
]
