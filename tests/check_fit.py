#!/usr/bin/python3
"""Independent checks of fkm's output files (numpy + h5py, fp64).

  check_fit.py ref INPUT DSET INIT OUT ITERS   fp64 Lloyd from INIT's /centroids for ITERS
                                               iterations must give OUT's centroids, labels,
                                               counts and inertia
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


def ref(inp, dset, init, out, iters):
    x = h5py.File(inp, "r")[dset][...].astype(np.float64)
    c = h5py.File(init, "r")["/centroids"][...].astype(np.float32).astype(np.float64)
    k = c.shape[0]
    for _ in range(iters):
        lab, _, _ = assign(x, c)
        cnt = np.bincount(lab, minlength=k)
        sums = np.zeros_like(c)
        np.add.at(sums, lab, x)
        nz = cnt > 0
        c[nz] = (sums[nz] / cnt[nz][:, None]).astype(np.float32).astype(np.float64)
    lab, best, part = assign(x, c)
    f = h5py.File(out, "r")
    oc = f["/centroids"][...].astype(np.float64)
    rel = np.abs(oc - c).max() / max(np.abs(c).max(), 1e-30)
    if rel > 1e-5:
        fail("centroids differ from the fp64 reference by %.3g relative" % rel)
    ol = f["/labels"][...]
    gap = part[:, 1] - part[:, 0] if k > 1 else np.full(len(lab), np.inf)
    clear = gap > 1e-5 * np.maximum(part[:, 0], 1e-30)
    bad = np.count_nonzero((ol != lab) & clear)
    if bad:
        fail("%d labels differ from the fp64 reference" % bad)
    cnt = np.bincount(ol, minlength=k)
    if not np.array_equal(cnt, f["/counts"][...]):
        fail("/counts disagree with /labels")
    inertia = float(f.attrs["inertia"])
    if abs(inertia - best.sum()) > 1e-6 * best.sum():
        fail("inertia %.17g vs reference %.17g" % (inertia, best.sum()))
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
        ref(args[0], args[1], args[2], args[3], int(args[4]))
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
