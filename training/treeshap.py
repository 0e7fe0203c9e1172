"""Exact path-dependent TreeSHAP for LightGBM boosters, fast: per-leaf pattern tables.

What LightGBM's `pred_contrib` computes for one row and one tree is a sum over the
tree's leaves. A leaf's share of each feature's contribution depends on the row only
through which of the leaf's path conditions the row meets, feature by feature: for
each of the k distinct features on the path, "the row goes the leaf's way at every
split on this feature" (1) or not (0). The rest (the leaf value, the cover fractions
of the splits) is fixed by the tree. So each leaf gets a table over its 2^k patterns,
built once per model with the usual TreeSHAP path weights (extend / unwind), and a
row then costs, per tree, one decision per split and one table look-up per leaf.
The numbers are the same Shapley values as `pred_contrib` (differences of the order
of 1e-15, from summation order), at an order of magnitude more rows per second.

Decisions follow LightGBM's own exactly (`Tree::NumericalDecision`,
`Tree::CategoricalDecision`, after its predictor has read |x| <= 1e-35f as 0): missing types None (NaN is read as 0), Zero (|x| <=
1e-35f goes the default way, NaN too) and NaN (NaN goes the default way); categorical
splits send a row left when its category is in the split's set, and right when it is
missing, negative or not listed.

Trees this cannot take are left to LightGBM's `pred_contrib`, per run of consecutive
trees: more than `max_path_features` distinct features on a leaf's path (a table of
2^k rows), a node with zero data count (cover fractions undefined). `Engine.summary()`
says how many trees went which way. Linear trees have no TreeSHAP values (LightGBM
refuses them too): `Engine` raises `ValueError` for them.

Compilation (numba) is cached on disk next to this file, or in NUMBA_CACHE_DIR.
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# LightGBM's kZeroThreshold is the float literal 1e-35f, compared as a double.
_ZERO = float(np.float32(1e-35))
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}
MAX_PATH_FEATURES = 16
# Rows per block: each leaf's path and table are applied to a whole block of rows in one
# pass of long, branch-free loops (measured fastest at 2-4k rows: 1.6x 256 rows).
BLOCK_ROWS = 4096
# Rows below which another thread is not worth starting.
MIN_ROWS_PER_THREAD = 256


@dataclass
class _Flat:
    """A booster's trees as flat arrays (one row per node / leaf / path step)."""

    # per tree
    node_off: np.ndarray
    node_cnt: np.ndarray
    leaf_off: np.ndarray
    leaf_cnt: np.ndarray
    fast: np.ndarray           # bool: this tree goes through the tables
    # per internal node
    feat: np.ndarray
    thr: np.ndarray
    categorical: np.ndarray    # bool
    missing: np.ndarray        # 0 None, 1 Zero, 2 NaN
    default_left: np.ndarray   # bool
    cat_off: np.ndarray        # offset into cat_words (categorical nodes)
    cat_len: np.ndarray        # words in the node's bitset
    cat_words: np.ndarray      # uint32 bitsets of all categorical nodes
    # per leaf
    value: np.ndarray
    k: np.ndarray
    path_off: np.ndarray
    path_len: np.ndarray
    lfeat_off: np.ndarray      # offset into lfeat / lzero (k entries per leaf)
    tab_off: np.ndarray        # offset into the tables (k x 2^k entries per leaf, feature-major)
    # per path step of a leaf
    step_node: np.ndarray      # node index local to the tree
    step_bit: np.ndarray       # 1 << (the feature's position among the leaf's k)
    step_left: np.ndarray      # bool: the leaf lies left of this node
    # per (leaf, distinct path feature)
    lfeat: np.ndarray          # global feature index
    lzero: np.ndarray          # product of the cover fractions of its splits on the path


class Engine:
    """Fast exact contributions of one booster (up to `num_iteration` trees).

    Build once per model (tables take about a second for ~150 trees of 31 leaves) and
    call `contributions` on float64 matrices laid out as `booster.feature_name()`, with
    categorical features as LightGBM's integer codes (NaN for missing).
    """

    def __init__(self, booster: Any, num_iteration: int | None = None,
                 max_path_features: int = MAX_PATH_FEATURES) -> None:
        self.booster = booster
        total = booster.num_trees()
        self.num_trees = total if not num_iteration or num_iteration <= 0 else min(total, int(num_iteration))
        self.n_features = booster.num_feature()
        dump = booster.dump_model(num_iteration=self.num_trees)
        self.flat, self.bias, reasons = _flatten(dump["tree_info"][: self.num_trees], max_path_features)
        self.reasons = reasons
        self.tables = _build_tables(self.flat)
        self.fallback_runs = _runs(~self.flat.fast)

    # -- what went where ------------------------------------------------------------
    @property
    def fast_trees(self) -> int:
        return int(self.flat.fast.sum())

    def summary(self) -> str:
        """'fast TreeSHAP (144 trees)' or with the trees left to LightGBM and why."""
        slow = self.num_trees - self.fast_trees
        if slow == 0:
            return f"fast TreeSHAP ({self.num_trees} trees)"
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.reasons.items()))
        return f"fast TreeSHAP ({self.fast_trees} trees) + LightGBM pred_contrib ({slow} trees: {why})"

    # -- computing ------------------------------------------------------------------
    def contributions(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """Rows x (features + 1) contributions, the last column the bias, like `pred_contrib`.

        Args:
            x: float64 matrix, one column per booster feature (categoricals as codes).
            threads: worker threads (rows are split between them).
        """
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix with {self.n_features} columns, got shape {x.shape}")
        n = x.shape[0]
        phi = np.zeros((n, self.n_features + 1), dtype=np.float64)
        if n and self.fast_trees:
            f = self.flat
            args = (f.node_off, f.node_cnt, f.leaf_off, f.leaf_cnt, f.fast, f.feat, f.thr, f.categorical,
                    f.missing, f.default_left, f.cat_off, f.cat_len, f.cat_words, f.k, f.path_off, f.path_len,
                    f.lfeat_off, f.tab_off, f.step_node, f.step_bit, f.step_left, f.lfeat, self.tables,
                    int(f.node_cnt.max(initial=1)), BLOCK_ROWS)
            kernel = _kernel()
            workers = max(1, min(int(threads), math.ceil(n / MIN_ROWS_PER_THREAD)))
            if workers == 1:
                kernel(x, 0, n, phi, *args)
            else:
                bounds = np.linspace(0, n, workers + 1).astype(np.int64)
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    jobs = [pool.submit(kernel, x, int(bounds[i]), int(bounds[i + 1]), phi, *args)
                            for i in range(workers)]
                    for job in jobs:
                        job.result()
        phi[:, -1] = self.bias
        if n and self.fallback_runs:
            for start, count in self.fallback_runs:
                phi += self.booster.predict(x, pred_contrib=True, start_iteration=start, num_iteration=count,
                                            num_threads=max(1, int(threads)))
        return phi


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True in `mask`."""
    out, start = [], None
    for i, m in enumerate(list(mask) + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i - start))
            start = None
    return out


def _flatten(trees: list[dict], max_k: int) -> tuple[_Flat, float, dict[str, int]]:
    node_off, node_cnt, leaf_off, leaf_cnt, fast = [], [], [], [], []
    feat, thr, categorical, missing, default_left, cat_off, cat_len, cat_words = [], [], [], [], [], [], [], []
    value, k_arr, path_off, path_len, lfeat_off, tab_off = [], [], [], [], [], []
    step_node, step_bit, step_left, lfeat, lzero = [], [], [], [], []
    bias = 0.0
    reasons: dict[str, int] = {}
    tab_total = 0
    for tree in trees:
        root = tree["tree_structure"]
        nodes: list[dict] = []
        leaves: list[tuple[dict, list[tuple[int, bool, float]]]] = []
        why = _collect(root, nodes, leaves, [], max_k)
        total_count = float(root.get("internal_count", root.get("leaf_count", 0)) or 0)
        node_off.append(len(feat))
        node_cnt.append(len(nodes) if why is None else 0)
        leaf_off.append(len(value))
        if why is not None:
            reasons[why] = reasons.get(why, 0) + 1
            fast.append(False)
            leaf_cnt.append(0)
            continue
        fast.append(True)
        if not nodes:  # a single leaf: only the bias
            bias += float(root["leaf_value"])
            leaf_cnt.append(0)
            continue
        local = {id(n): i for i, n in enumerate(nodes)}
        for n in nodes:
            feat.append(int(n["split_feature"]))
            is_cat = n["decision_type"] == "=="
            categorical.append(is_cat)
            missing.append(_MISSING[n.get("missing_type", "None")])
            default_left.append(bool(n.get("default_left", False)))
            if is_cat:
                cats = [int(c) for c in str(n["threshold"]).split("||") if c != ""]
                words = np.zeros(max(cats) // 32 + 1 if cats else 1, dtype=np.uint32)
                for c in cats:
                    words[c // 32] |= np.uint32(1 << (c % 32))
                cat_off.append(len(cat_words))
                cat_len.append(len(words))
                cat_words.extend(int(w) for w in words)
                thr.append(0.0)
            else:
                cat_off.append(0)
                cat_len.append(0)
                thr.append(float(n["threshold"]))
        for leaf, path in leaves:
            v = float(leaf["leaf_value"])
            bias += v * float(leaf["leaf_count"]) / total_count
            order: list[int] = []    # distinct features in order of first appearance
            zero: dict[int, float] = {}
            for node, _, frac in path:
                f = int(node["split_feature"])
                if f not in zero:
                    order.append(f)
                    zero[f] = 1.0
                zero[f] *= frac
            k = len(order)
            value.append(v)
            k_arr.append(k)
            path_off.append(len(step_node))
            path_len.append(len(path))
            lfeat_off.append(len(lfeat))
            tab_off.append(tab_total)
            tab_total += (1 << k) * k
            pos = {f: j for j, f in enumerate(order)}
            for node, left, _ in path:
                step_node.append(local[id(node)])
                step_bit.append(1 << pos[int(node["split_feature"])])
                step_left.append(left)
            lfeat.extend(order)
            lzero.extend(zero[f] for f in order)
        leaf_cnt.append(len(leaves))
    flat = _Flat(
        node_off=np.array(node_off, np.int64), node_cnt=np.array(node_cnt, np.int64),
        leaf_off=np.array(leaf_off, np.int64), leaf_cnt=np.array(leaf_cnt, np.int64),
        fast=np.array(fast, bool),
        feat=np.array(feat, np.int64), thr=np.array(thr, np.float64), categorical=np.array(categorical, bool),
        missing=np.array(missing, np.int8), default_left=np.array(default_left, bool),
        cat_off=np.array(cat_off, np.int64), cat_len=np.array(cat_len, np.int64),
        cat_words=np.array(cat_words, np.uint32),
        value=np.array(value, np.float64), k=np.array(k_arr, np.int64), path_off=np.array(path_off, np.int64),
        path_len=np.array(path_len, np.int64), lfeat_off=np.array(lfeat_off, np.int64),
        tab_off=np.array(tab_off, np.int64),
        step_node=np.array(step_node, np.int64), step_bit=np.array(step_bit, np.int64),
        step_left=np.array(step_left, np.int64), lfeat=np.array(lfeat, np.int64), lzero=np.array(lzero, np.float64),
    )
    return flat, bias, reasons


def _collect(node: dict, nodes: list, leaves: list, path: list, max_k: int) -> str | None:
    """Walk a dumped tree: internal nodes in `nodes`, (leaf, path) in `leaves`.

    Returns a reason when the tree must be left to LightGBM, else None.
    """
    if "leaf_value" in node and "split_index" not in node:
        if "leaf_coeff" in node or "leaf_const" in node:
            raise ValueError("SHAP contributions are not defined for linear trees (linear_tree=true); "
                             "train without linear_tree to explain the model")
        if path and len({int(n["split_feature"]) for n, _, _ in path}) > max_k:
            return f"paths with more than {max_k} features"
        leaves.append((node, list(path)))
        return None
    count = float(node.get("internal_count", 0) or 0)
    children = (node["left_child"], node["right_child"])
    counts = [float(c.get("internal_count", c.get("leaf_count", 0)) or 0) for c in children]
    if count <= 0 or min(counts) <= 0:
        return "zero data counts"
    nodes.append(node)
    for child, left, c in zip(children, (True, False), counts):
        path.append((node, left, c / count))
        why = _collect(child, nodes, leaves, path, max_k)
        path.pop()
        if why is not None:
            return why
    return None


def _build_tables(f: _Flat) -> np.ndarray:
    total = int(((1 << f.k) * f.k).sum()) if len(f.k) else 0
    tables = np.zeros(total, dtype=np.float64)
    if total:
        _tables_kernel()(f.k, f.value, f.lfeat_off, f.lzero, f.tab_off, tables)
    return tables


# -- numba kernels (compiled on first use, cached on disk) ------------------------------

_KERNELS: dict[str, Any] = {}
_COMPILE_LOCK = threading.Lock()


def _tables_kernel() -> Any:
    return _kernels()["tables"]


def _kernel() -> Any:
    return _kernels()["rows"]


def _kernels() -> dict[str, Any]:
    with _COMPILE_LOCK:
        if not _KERNELS:
            _compile()
    return _KERNELS


def _compile() -> None:
    import numba

    ZERO = _ZERO

    @numba.njit(cache=True, nogil=True)
    def leaf_tables(k_arr, value, lfeat_off, lzero, tab_off, out):  # pragma: no cover - compiled
        kmax = 1
        for L in range(k_arr.shape[0]):
            if k_arr[L] > kmax:
                kmax = k_arr[L]
        pz = np.empty(kmax + 1)
        po = np.empty(kmax + 1)
        pw = np.empty(kmax + 1)
        for L in range(k_arr.shape[0]):
            k = k_arr[L]
            if k == 0:
                continue
            v = value[L]
            zo = lfeat_off[L]
            base = tab_off[L]
            for mask in range(1 << k):
                # extend the path: a root element (z = o = 1), then the k features
                pz[0] = 1.0
                po[0] = 1.0
                pw[0] = 1.0
                for d in range(1, k + 1):
                    z = lzero[zo + d - 1]
                    o = 1.0 if (mask >> (d - 1)) & 1 else 0.0
                    pz[d] = z
                    po[d] = o
                    pw[d] = 0.0
                    for i in range(d - 1, -1, -1):
                        pw[i + 1] += o * pw[i] * (i + 1) / (d + 1)
                        pw[i] = z * pw[i] * (d - i) / (d + 1)
                # unwind each feature: its Shapley weight over the others
                for d in range(1, k + 1):
                    o = po[d]
                    z = pz[d]
                    total = 0.0
                    if o != 0.0:
                        nxt = pw[k]
                        for i in range(k - 1, -1, -1):
                            tmp = nxt / ((i + 1) * o)
                            total += tmp
                            nxt = pw[i] - tmp * z * (k - i)
                    else:
                        for i in range(k - 1, -1, -1):
                            total += pw[i] / (z * (k - i))
                    out[base + (d - 1) * (1 << k) + mask] = total * (k + 1) * (o - z) * v

    @numba.njit(cache=True, nogil=True)
    def rows(x, r0, r1, phi, node_off, node_cnt, leaf_off, leaf_cnt, fast, feat, thr, categorical, missing,
             default_left, cat_off, cat_len, cat_words, k_arr, path_off, path_len, lfeat_off, tab_off, step_node,
             step_bit, step_left, lfeat, tables, max_nodes, block):  # pragma: no cover - compiled
        # Within a block of rows everything is laid out rows-innermost (feature x row,
        # node x row), so the inner loops run over contiguous rows with no branches
        # the data decides, and each leaf's table is read for the whole block at once.
        n_feat = x.shape[1]
        xb = np.empty((n_feat, block))
        acc = np.empty((phi.shape[1], block))
        dec = np.empty((max_nodes, block), dtype=np.uint8)
        masks = np.empty(block, dtype=np.int64)
        for b0 in range(r0, r1, block):
            nb = min(block, r1 - b0)
            for r in range(nb):
                for f in range(n_feat):
                    v = x[b0 + r, f]
                    # LightGBM's predictor keeps only |v| > kZeroThreshold (and NaN): the rest is 0
                    xb[f, r] = 0.0 if -ZERO <= v <= ZERO else v
            acc[:, :nb] = 0.0
            for t in range(node_off.shape[0]):
                nn = node_cnt[t]
                if not fast[t] or nn == 0:
                    continue
                no = node_off[t]
                for j in range(nn):
                    node = no + j
                    f = feat[node]
                    if categorical[node]:
                        # LightGBM: missing or negative -> right; left when in the split's set
                        co = cat_off[node]
                        cl = cat_len[node]
                        for r in range(nb):
                            v = xb[f, r]
                            left = 0
                            if not math.isnan(v):
                                iv = int(v)
                                if iv >= 0 and (iv >> 5) < cl:
                                    left = (cat_words[co + (iv >> 5)] >> np.uint32(iv & 31)) & np.uint32(1)
                            dec[j, r] = left
                    else:
                        th = thr[node]
                        mt = missing[node]
                        dl = np.uint8(1) if default_left[node] else np.uint8(0)
                        for r in range(nb):
                            v = xb[f, r]
                            nan = math.isnan(v)
                            if nan and mt != 2:
                                v = 0.0
                            if (mt == 1 and -ZERO <= v <= ZERO) or (mt == 2 and nan):
                                dec[j, r] = dl
                            else:
                                dec[j, r] = np.uint8(1) if v <= th else np.uint8(0)
                for L in range(leaf_off[t], leaf_off[t] + leaf_cnt[t]):
                    k = k_arr[L]
                    full = (1 << k) - 1
                    for r in range(nb):
                        masks[r] = full
                    for p in range(path_off[L], path_off[L] + path_len[L]):
                        nd = step_node[p]
                        bit = step_bit[p]
                        lf = step_left[p]
                        for r in range(nb):
                            masks[r] &= ~(bit * (np.int64(dec[nd, r]) ^ lf))
                    t0 = tab_off[L]
                    f0 = lfeat_off[L]
                    size = 1 << k
                    for j in range(k):
                        fj = lfeat[f0 + j]
                        tj = t0 + j * size
                        for r in range(nb):
                            acc[fj, r] += tables[tj + masks[r]]
            for r in range(nb):
                for f in range(phi.shape[1]):
                    phi[b0 + r, f] = acc[f, r]

    _KERNELS["tables"] = leaf_tables
    _KERNELS["rows"] = rows
