#!/usr/bin/env python3
"""Independent float64 reference for eval/challenges.cpp, written from the definitions: writes
tests/data/challenges/<case>_gt.npy (int64 [S, H, W]), <case>_prob.npy (float32 [S, H, W]),
<case>_ref.npy / <case>_pred.npy (CTC instance frames) and expected.json.

Brute force where the C++ uses formulas: the Rand counts over all ordered pixel pairs, the
information scores from the entropies of relabelled pixels, simple points by counting components
of the 3x3 patch, splits by relabelling the whole slice without the pixel. The border thinning is
the Vincent-Soille flooding in Fiji's order (its definition is the algorithm). numpy only.
"""
import json
import os
from collections import deque

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "challenges")


def thresholds():
    t, th = [], 0.0
    while th <= 1.0:
        t.append(th)
        th += 0.1
    return t


def components4(on):
    h, w = on.shape
    lab = np.zeros((h, w), np.int64)
    nxt = 0
    for y in range(h):
        for x in range(w):
            if on[y, x] and not lab[y, x]:
                nxt += 1
                lab[y, x] = nxt
                q = [(y, x)]
                while q:
                    cy, cx = q.pop()
                    for ny, nx in ((cy, cx - 1), (cy - 1, cx), (cy, cx + 1), (cy + 1, cx)):
                        if 0 <= ny < h and 0 <= nx < w and on[ny, nx] and not lab[ny, nx]:
                            lab[ny, nx] = nxt
                            q.append((ny, nx))
    return lab


def watershed(border):
    """Vincent-Soille on levels {0, 1}; pixels of a level in column-major order; neighbours L, U, R, D."""
    h, w = border.shape
    MASK, WSHED, INIT, INQ = -2, 0, -1, -3
    lab = np.full((h, w), INIT, np.int64)

    def nbrs(y, x):
        return [(yy, xx) for yy, xx in ((y, x - 1), (y - 1, x), (y, x + 1), (y + 1, x)) if 0 <= yy < h and 0 <= xx < w]

    fifo, flag, cur = deque(), False, 0
    for level in (0, 1):
        pix = [(y, x) for x in range(w) for y in range(h) if int(border[y, x] != 0) == level]
        if not pix:
            continue
        for y, x in pix:
            lab[y, x] = MASK
            if any(lab[q] >= WSHED for q in nbrs(y, x)):
                fifo.append((y, x))
                lab[y, x] = INQ
        while fifo:
            p = fifo.popleft()
            for q in nbrs(*p):
                if lab[q] > 0:
                    if lab[p] == INQ or (lab[p] == WSHED and flag):
                        lab[p] = lab[q]
                    elif lab[p] > 0 and lab[p] != lab[q]:
                        lab[p] = WSHED
                        flag = False
                elif lab[q] == WSHED:
                    if lab[p] == INQ:
                        lab[p] = WSHED
                        flag = True
                elif lab[q] == MASK:
                    lab[q] = INQ
                    fifo.append(q)
        for y, x in pix:
            if lab[y, x] == MASK:
                cur += 1
                lab[y, x] = cur
                fifo.append((y, x))
                while fifo:
                    p = fifo.popleft()
                    for q in nbrs(*p):
                        if lab[q] == MASK:
                            fifo.append(q)
                            lab[q] = cur
    lab[lab < 0] = 0
    return lab


def fscore(tp, fp, fn):
    p = 1.0 if fp == 0 else tp / (tp + fp)
    r = 1.0 if fn == 0 else tp / (tp + fn)
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def rand_pairs(a, b):
    """Ordered pairs (self-pairs included) of the ground truth's foreground pixels."""
    keep = a.reshape(-1) != 0
    ga, pb = a.reshape(-1)[keep], b.reshape(-1)[keep]
    n = len(ga)
    same_g = ga[:, None] == ga[None, :]
    same_p = (pb[:, None] == pb[None, :]) & (pb[:, None] != 0)
    same_p |= np.eye(n, dtype=bool)  # a boundary pixel is its own segment
    tp = float(np.sum(same_g & same_p))
    return tp, float(np.sum(same_p & ~same_g)), float(np.sum(same_g & ~same_p))


def entropy(labels):
    _, counts = np.unique(labels, return_counts=True, axis=0)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def info_f(a, b):
    keep = a.reshape(-1) != 0
    ga, pb = a.reshape(-1)[keep], b.reshape(-1)[keep].copy()
    zeros = np.nonzero(pb == 0)[0]
    pb[zeros] = -1 - np.arange(len(zeros))  # singletons
    ha, hb = entropy(ga), entropy(pb)
    hab = entropy(np.stack([ga, pb], axis=1))
    mi = ha + hb - hab
    prec, rec = (mi / ha if ha else 0.0), (mi / hb if hb else 0.0)
    if ha == 0:
        prec, rec = 0.0, 1.0
    if hb == 0:
        prec, rec = 1.0, 0.0
    return 2 * prec * rec / (prec + rec) if prec + rec else float("nan")


def count_patch_components(patch):
    """4-connected components of the 1s of a 3x3 patch (centre excluded) that touch a 4-neighbour."""
    on = patch.copy()
    on[1, 1] = 0
    lab = components4(on)
    return len({lab[y, x] for y, x in ((0, 1), (1, 0), (1, 2), (2, 1)) if lab[y, x]})


def warp(gt, prob, th):
    h, w = gt.shape
    src = np.zeros((h + 2, w + 2), np.uint8)
    src[1:-1, 1:-1] = gt > 0
    real = np.zeros((h + 2, w + 2), np.float32)
    real[1:-1, 1:-1] = prob
    tgt = (real > th).astype(np.uint8)
    before, mism = None, []
    while True:
        diff = int(np.sum(src != tgt))
        if diff == 0:
            mism = []
            break
        if diff == before:
            break
        before = diff
        mism = [(x, y, np.float32(abs(float(real[y, x]) - th))) for x in range(1, w + 1) for y in range(1, h + 1) if src[y, x] != tgt[y, x]]
        mism.sort(key=lambda m: -m[2])  # stable
        for x, y, _ in mism:
            if count_patch_components(src[y - 1 : y + 2, x - 1 : x + 2]) == 1:
                src[y, x] = 1 - src[y, x]
    warped = src[1:-1, 1:-1]
    comp = components4(warped)
    kinds = {"split": 0, "merge": 0, "other": 0}
    for x, y, _ in mism:
        x, y = x - 1, y - 1
        ids = {int(comp[yy, xx]) for yy in range(y - 1, y + 2) for xx in range(x - 1, x + 2)
               if (yy, xx) != (y, x) and 0 <= yy < h and 0 <= xx < w}
        on = warped[y, x] != 0
        if len(ids) <= 1:
            kinds["other"] += 1
        elif len(ids) == 2:
            if not on:
                kinds["other"] += 1
                continue
            cut = warped.copy()
            cut[y, x] = 0
            c2 = components4(cut)
            ids2 = {int(c2[yy, xx]) for yy in range(y - 1, y + 2) for xx in range(x - 1, x + 2)
                    if (yy, xx) != (y, x) and 0 <= yy < h and 0 <= xx < w}
            kinds["split" if len(ids2) > 2 else "other"] += 1
        else:
            kinds["split" if on else "merge"] += 1
    return kinds["split"], kinds["merge"]


def isbi(gt, prob):
    S = gt.shape[0]
    out = {}
    best = {"v_rand": (-1, 0), "v_info": (-1, 0), "rand": (-1, 0), "pixel": (-1, 0), "warp": (float("inf"), 0, 0, 0)}
    for th in thresholds():
        vr = vi = 0.0
        rs = [0.0, 0.0, 0.0]
        ps = [0.0, 0.0, 0.0]
        sm = [0, 0]
        for s in range(S):
            g = gt[s].astype(np.float32).astype(np.float64)
            p = prob[s].astype(np.float64)
            a = components4(g > th)
            region = p > th
            thin = watershed(~region)
            tp, fp, fn = rand_pairs(a, thin)
            vr += fscore(tp, fp, fn)
            vi += info_f(a, thin)
            tp, fp, fn = rand_pairs(a, components4(region))
            rs = [rs[0] + tp, rs[1] + fp, rs[2] + fn]
            cell = g > 0
            ps = [ps[0] + np.sum(region & cell), ps[1] + np.sum(region & ~cell), ps[2] + np.sum(~region & cell)]
            sp, mg = warp(gt[s], prob[s], th)
            sm = [sm[0] + sp, sm[1] + mg]
        vr /= S
        vi /= S
        fr, fpx = fscore(*rs), fscore(*map(float, ps))
        if vr > best["v_rand"][0]:
            best["v_rand"] = (vr, th)
        if vi > best["v_info"][0]:
            best["v_info"] = (vi, th)
        if fr > best["rand"][0]:
            best["rand"] = (fr, th)
        if fpx > best["pixel"][0]:
            best["pixel"] = (fpx, th)
        werr = (sm[0] + sm[1]) / (S * gt.shape[1] * gt.shape[2])
        if werr < best["warp"][0]:
            best["warp"] = (werr, th, sm[0], sm[1])
    out["v_rand"], out["v_rand_threshold"] = best["v_rand"]
    out["v_info"], out["v_info_threshold"] = best["v_info"]
    out["rand_error"], out["rand_threshold"] = 1 - best["rand"][0], best["rand"][1]
    out["pixel_error"], out["pixel_threshold"] = 1 - best["pixel"][0], best["pixel"][1]
    out["warping_error"], out["warping_threshold"], out["splits"], out["mergers"] = best["warp"]
    return out


def ctc(ref, pred):
    refs = matched = fn = fp = ns = 0
    jac = 0.0
    for r, p in zip(ref, pred):
        match_count = {}
        for rid in np.unique(r[r > 0]):
            R = r == rid
            refs += 1
            hit = None
            for sid in np.unique(p[R & (p > 0)]):
                S = p == sid
                if np.sum(R & S) > 0.5 * np.sum(R):
                    hit = sid
            if hit is None:
                fn += 1
                continue
            S = p == hit
            matched += 1
            jac += np.sum(R & S) / np.sum(R | S)
            match_count[hit] = match_count.get(hit, 0) + 1
        for sid in np.unique(p[p > 0]):
            if sid not in match_count:
                fp += 1
            else:
                ns += match_count[sid] - 1
    aogm = 5 * ns + 10 * fn + fp
    return {"seg": jac / refs, "det": 1 - min(aogm, 10 * refs) / (10 * refs), "references": refs, "matched": matched,
            "false_negatives": fn, "false_positives": fp, "splits": ns}


def cells(rng, h, w, k, membrane=1):
    """Voronoi cells of k random seeds with `membrane`-pixel borders (0) between them: 255 inside."""
    seeds = rng.uniform([0, 0], [h, w], size=(k, 2))
    yy, xx = np.mgrid[0:h, 0:w]
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    owner = np.argmin(d, axis=2)
    edge = np.zeros((h, w), bool)
    for dy, dx in [(0, 1), (1, 0)][: 2 if membrane else 0]:
        diff = owner[dy:, dx:] != owner[: h - dy, : w - dx]
        edge[dy:, dx:] |= diff
    return owner + 1, np.where(edge, 0, 255).astype(np.int64)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(7)
    expected = {}
    S, H, W = 3, 26, 30
    for case in ("isbi_a", "isbi_b"):
        gts, probs = [], []
        for s in range(S):
            _, gt = cells(rng, H, W, int(rng.integers(5, 9)))
            # A proposal: the truth blurred by noise, with a cut through a cell and a gap bridged.
            p = np.where(gt > 0, 0.8, 0.15) + rng.normal(0, 0.12, size=gt.shape)
            y = int(rng.integers(4, H - 4))
            p[y, :] = np.minimum(p[y, :], rng.uniform(0.0, 0.3))
            x = int(rng.integers(4, W - 4))
            p[:, x] = np.maximum(p[:, x], rng.uniform(0.6, 1.0))
            probs.append(np.clip(p, 0, 1).astype(np.float32))
            gts.append(gt)
        gt, prob = np.stack(gts), np.stack(probs)
        np.save(os.path.join(OUT, case + "_gt.npy"), gt)
        np.save(os.path.join(OUT, case + "_prob.npy"), prob)
        expected[case] = isbi(gt, prob)
        print(case, expected[case])
    # CTC: instance frames; the prediction merges, splits, misses, shifts and adds objects.
    refs, preds = [], []
    for f in range(3):
        owner, gt = cells(rng, 40, 44, 9)
        ref = np.where(gt > 0, owner, 0)
        ref[rng.random(ref.shape) < 0.02] = 0
        pred = ref.copy()
        ids = list(np.unique(ref[ref > 0]))
        a, b, c, d = ids[0], ids[1], ids[2], ids[3]
        pred[ref == b] = a  # b merged into a
        ys, xs = np.nonzero(ref == c)
        half = xs < np.median(xs)
        pred[ys[half], xs[half]] = 100 + f  # c split in two
        pred[ref == d] = 0  # d missed
        pred[0:3, 0:3] = 200 + f  # an extra object
        pred = np.roll(pred, 1, axis=1)
        refs.append(ref.astype(np.int64))
        preds.append(pred.astype(np.int64))
    np.save(os.path.join(OUT, "ctc_ref.npy"), np.stack(refs))
    np.save(os.path.join(OUT, "ctc_pred.npy"), np.stack(preds))
    expected["ctc"] = ctc(refs, preds)
    print("ctc", expected["ctc"])
    # Border thinning alone, checked label for label (as partitions) on a larger slice.
    _, gt = cells(rng, 37, 41, 12, membrane=1)
    border = (gt == 0) | (rng.random(gt.shape) < 0.15)
    np.save(os.path.join(OUT, "thin_border.npy"), border.astype(np.int64))
    np.save(os.path.join(OUT, "thin_labels.npy"), watershed(border))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, default=float)


if __name__ == "__main__":
    main()
