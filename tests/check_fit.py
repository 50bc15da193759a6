#!/usr/bin/python3
"""Independent checks of fkm's output files (numpy + h5py, fp64).

  check_fit.py ref INPUT DSET INIT OUT ITERS [--metric cosine|ip] [--weights FILE:DSET]
                                               fp64 Lloyd from INIT's /centroids for ITERS
                                               iterations must give OUT's centroids, labels,
                                               counts and inertia (and /distances when there);
                                               cosine: spherical k-means on unit rows, ip: the
                                               largest inner product, as the README defines them;
                                               weights: means of w·x over Σ w, inertia Σ w·dist
                                               (a weighted mean for cosine/ip), /weights = Σ w
  check_fit.py same A B                        every dataset and attribute bitwise equal
  check_fit.py same --datasets-only A B        every dataset bitwise equal (attributes such as
                                               init, which name the input, may differ)
  check_fit.py close A B                       labels equal (but exact ties), centroids within
                                               1e-6 relative, counts equal
  check_fit.py layout OUT N D K                the output layout of the README
  check_fit.py initfile INPUT DSET K OUT       write K rows of INPUT (every N/K-th) as /centroids
"""
import sys

import h5py
import numpy as np


def fail(msg):
    print("check_fit: FAIL: " + msg)
    sys.exit(1)


def assign(x, c):
    # exact fp64 squared distances, ties to the lowest index (argmin's rule)
    d = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
    # refine with direct differences for the rows where the expansion may mislead
    lab = np.argmin(d, 1)
    part = np.partition(d, 1, axis=1) if c.shape[0] > 1 else np.stack([d[:, 0], d[:, 0] + 1], 1)
    close = np.nonzero(part[:, 1] - part[:, 0] < 1e-9 * (np.abs(d).max(1) + 1))[0]
    for i in close:
        dd = ((x[i][None, :] - c) ** 2).sum(1)
        lab[i] = int(np.argmin(dd))
    best = ((x - c[lab]) ** 2).sum(1)
    return lab, best, part


def unit(a):
    n = np.sqrt((a * a).sum(1))
    n[n == 0] = 1
    return a / n[:, None]


def assign_ip(x, c, offset):
    # the largest x.c (ties to the lowest index); distance offset - x.c; part: the two
    # smallest "distances" -x.c per row
    s = -(x @ c.T)
    lab = np.argmin(s, 1)
    part = np.partition(s, 1, axis=1) if c.shape[0] > 1 else np.stack([s[:, 0], s[:, 0] + 1], 1)
    best = offset - (x * c[lab]).sum(1)
    return lab, best, part


def load_vec(spec):
    path, _, ds = spec.partition(":")
    if path.endswith(".npy"):
        return np.load(path).reshape(-1).astype(np.float64)
    return h5py.File(path, "r")[ds or "/weights"][...].reshape(-1).astype(np.float64)


def ref(inp, dset, init, out, iters, metric="l2", weights=None):
    x = h5py.File(inp, "r")[dset][...].astype(np.float64)
    w = load_vec(weights) if weights else np.ones(x.shape[0])
    c = h5py.File(init, "r")["/centroids"][...].astype(np.float32).astype(np.float64)
    k = c.shape[0]
    if metric == "cosine":
        x = unit(x)
        c = unit(c).astype(np.float32).astype(np.float64)
    offset = 1.0 if metric == "cosine" else 0.0
    step = (lambda x, c: assign(x, c)) if metric == "l2" else (lambda x, c: assign_ip(x, c, offset))
    for _ in range(iters):
        lab, _, _ = step(x, c)
        cnt = np.bincount(lab, weights=w, minlength=k)
        sums = np.zeros_like(c)
        np.add.at(sums, lab, w[:, None] * x)
        nz = cnt > 0
        m = sums[nz] / cnt[nz][:, None]
        c[nz] = (unit(m) if metric == "cosine" else m).astype(np.float32).astype(np.float64)
    lab, best, part = step(x, c)
    f = h5py.File(out, "r")
    oc = f["/centroids"][...].astype(np.float64)
    rel = np.abs(oc - c).max() / max(np.abs(c).max(), 1e-30)
    if rel > 1e-5:
        fail("centroids differ from the fp64 reference by %.3g relative" % rel)
    ol = f["/labels"][...]
    gap = part[:, 1] - part[:, 0] if k > 1 else np.full(len(lab), np.inf)
    if metric == "l2":
        clear = gap > 1e-5 * np.maximum(part[:, 0], 1e-30)
    else:  # scores x.c: relative to the largest |x.c| possible for the row
        scale = np.sqrt((x * x).sum(1)) * np.sqrt((c * c).sum(1)).max()
        clear = gap > 1e-5 * np.maximum(scale, 1e-30)
    bad = np.count_nonzero((ol != lab) & clear)
    if bad:
        fail("%d labels differ from the fp64 reference" % bad)
    cnt = np.bincount(ol, minlength=k)
    if not np.array_equal(cnt, f["/counts"][...]):
        fail("/counts disagree with /labels")
    if weights:
        ws = np.bincount(ol, weights=w, minlength=k)
        if "weights" not in f or np.abs(f["/weights"][...] - ws).max() > 1e-9 * max(ws.max(), 1):
            fail("/weights missing or not the clusters' weight sums")
    elif "weights" in f:
        fail("/weights written by an unweighted run")
    inertia = float(f.attrs["inertia"])
    want = (w * best).sum() if metric == "l2" else (w * best).sum() / w.sum()
    if abs(inertia - want) > 1e-6 * max(abs(want), 1e-3):
        fail("inertia %.17g vs reference %.17g" % (inertia, want))
    if str(f.attrs["metric"]) != metric:
        fail("attribute metric is %s, not %s" % (f.attrs["metric"], metric))
    if "distances" in f:
        od = f["/distances"][...].astype(np.float64)
        # reference distances to the output's own labels (they may differ at near-ties)
        rd = ((x - oc[ol]) ** 2).sum(1) if metric == "l2" else offset - (x * oc[ol]).sum(1)
        derr = np.abs(od - rd).max() / max(np.abs(rd).max(), 1e-30)
        if derr > 1e-5:
            fail("/distances differ from the reference by %.3g relative" % derr)
    if metric == "cosine":
        nrm = np.sqrt((oc * oc).sum(1))
        if np.abs(nrm - 1).max() > 1e-5:
            fail("cosine centroids are not unit vectors (| ||c|| - 1 | up to %.3g)" % np.abs(nrm - 1).max())
    print("check_fit: ref ok (centroid rel err %.2g, %d near-ties skipped)" % (rel, np.count_nonzero(~clear)))


def items(path):
    f = h5py.File(path, "r")
    d = {k: f[k][...] for k in f.keys()}
    a = {k: f.attrs[k] for k in f.attrs.keys()}
    return d, a


def same(a, b, datasets_only=False):
    da, aa = items(a)
    db, ab = items(b)
    if sorted(da) != sorted(db):
        fail("datasets differ: %s vs %s" % (sorted(da), sorted(db)))
    for k in da:
        if da[k].tobytes() != db[k].tobytes():
            fail("dataset %s differs" % k)
    for k in [] if datasets_only else aa:
        if str(aa[k]) != str(ab.get(k)):
            fail("attribute %s differs: %s vs %s" % (k, aa[k], ab.get(k)))
    print("check_fit: same ok")


def close(a, b):
    da, _ = items(a)
    db, _ = items(b)
    ca, cb = da["centroids"].astype(np.float64), db["centroids"].astype(np.float64)
    rel = np.abs(ca - cb).max() / max(np.abs(ca).max(), 1e-30)
    if rel > 1e-6:
        fail("centroids differ by %.3g relative" % rel)
    if "labels" in da:
        n = np.count_nonzero(da["labels"] != db["labels"])
        if n:
            fail("%d labels differ" % n)
    if not np.array_equal(da["counts"], db["counts"]):
        fail("counts differ")
    print("check_fit: close ok (centroid rel diff %.2g)" % rel)


def layout(out, n, d, k):
    f = h5py.File(out, "r")
    if f["/centroids"].shape != (k, d) or f["/centroids"].dtype != np.float32:
        fail("/centroids is %s %s" % (f["/centroids"].shape, f["/centroids"].dtype))
    if f["/counts"].shape != (k,) or f["/counts"].dtype != np.int64:
        fail("/counts is %s %s" % (f["/counts"].shape, f["/counts"].dtype))
    if f["/counts"][...].sum() != n:
        fail("counts sum to %d, not %d" % (f["/counts"][...].sum(), n))
    if "labels" in f:
        lab = f["/labels"]
        if lab.shape != (n,) or lab.dtype != np.int32:
            fail("/labels is %s %s" % (lab.shape, lab.dtype))
        if lab[...].min() < 0 or lab[...].max() >= k:
            fail("labels out of range")
    for a in "k d n iterations inertia converged seed metric init version".split():
        if a not in f.attrs:
            fail("attribute %s missing" % a)
    if int(f.attrs["k"]) != k or int(f.attrs["d"]) != d or int(f.attrs["n"]) != n:
        fail("attributes k d n wrong")
    print("check_fit: layout ok")


def initfile(inp, dset, k, out):
    x = h5py.File(inp, "r")[dset]
    n = x.shape[0]
    idx = [(i * n) // k for i in range(k)]
    with h5py.File(out, "w") as f:
        f["/centroids"] = np.stack([x[i] for i in idx]).astype(np.float32)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "ref":
        metric = args[args.index("--metric") + 1] if "--metric" in args else "l2"
        weights = args[args.index("--weights") + 1] if "--weights" in args else None
        ref(args[0], args[1], args[2], args[3], int(args[4]), metric, weights)
    elif cmd == "same":
        only = "--datasets-only" in args
        same(*[a for a in args if a != "--datasets-only"], datasets_only=only)
    elif cmd == "close":
        close(*args)
    elif cmd == "layout":
        layout(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "initfile":
        initfile(args[0], args[1], int(args[2]), args[3])
    else:
        fail("unknown command " + cmd)
