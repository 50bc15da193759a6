#!/usr/bin/python3
"""Independent checks (numpy + h5py, fp64) for the init and stop-rule tests.

  check_init.py same A B...                /centroids /counts /labels of A and each B bitwise equal
  check_init.py rows OUT INPUT DSET        every centroid of OUT is a row of INPUT:DSET
  check_init.py mean-inertia A... -- B...  mean inertia of the A files < mean of the B files
  check_init.py dup OUT N D DISTINCT       write N rows of only DISTINCT different values as /data
  check_init.py shift-stop FULL_LOG LOG INIT S
        LOG (a run with --shift-tol S from INIT's /centroids) stopped at the first iteration of
        FULL_LOG (the same run without the rule) whose max_shift <= S * RMS norm of INIT's
        centroids (computed here), and not before
  check_init.py assign INPUT DSET CENTROIDS OUT [TOL]
        OUT (fkm assign --distances) vs numpy fp64: /labels the nearest of CENTROIDS' /centroids
        (but near-ties), /distances within TOL (1e-6) relative, where a GPU's expansion
        ‖x‖²+‖c‖²−2x·c may lose TOL·(‖x‖²+‖c‖²), /counts = bincount(/labels), inertia
  check_init.py sample-ref INPUT DSET INIT OUT ITERS M SEED
        --max-points-per-centroid M: fp64 Lloyd for ITERS iterations from INIT on the k·M rows
        that fkm's sampler draws from SEED (re-implemented here: splitmix64 counters, Floyd),
        then labels, counts and inertia of all rows, against OUT
  check_init.py reassign-stop INPUT DSET INIT LOG R
        fp64 Lloyd from INIT: the fraction of labels that changed each iteration equals LOG's
        `reassigned` (but near-ties), and LOG stopped at the first iteration where it is <= R
"""
import json
import sys

import h5py
import numpy as np


def fail(msg):
    print("check_init: FAIL: " + msg)
    sys.exit(1)


def same(a, others):
    fa = h5py.File(a, "r")
    for b in others:
        fb = h5py.File(b, "r")
        for k in ("centroids", "counts", "labels"):
            if (k in fa) != (k in fb):
                fail("%s in one of %s %s only" % (k, a, b))
            if k in fa and fa[k][...].tobytes() != fb[k][...].tobytes():
                fail("/%s of %s and %s differ" % (k, a, b))
    print("check_init: same ok (%d files)" % (1 + len(others)))


def rows(out, inp, dset):
    c = h5py.File(out, "r")["/centroids"][...].astype(np.float32)
    x = h5py.File(inp, "r")[dset][...].astype(np.float32)
    xs = {r.tobytes() for r in x}
    bad = sum(1 for r in c if r.tobytes() not in xs)
    if bad:
        fail("%d of %d centroids are not rows of the input" % (bad, len(c)))
    print("check_init: rows ok (%d centroids are input rows)" % len(c))


def mean_inertia(args):
    i = args.index("--")
    a = [float(h5py.File(f, "r").attrs["inertia"]) for f in args[:i]]
    b = [float(h5py.File(f, "r").attrs["inertia"]) for f in args[i + 1:]]
    print("check_init: mean inertia %.6g vs %.6g" % (np.mean(a), np.mean(b)))
    if not np.mean(a) < np.mean(b):
        fail("mean inertia %.6g is not below %.6g" % (np.mean(a), np.mean(b)))


def dup(out, n, d, distinct):
    rng = np.random.default_rng(n * 31 + d)
    base = rng.normal(size=(distinct, d)).astype(np.float32) * 5
    x = base[np.arange(n) % distinct]
    with h5py.File(out, "w") as f:
        f["/data"] = x


def log_iters(path):
    its = [json.loads(l) for l in open(path) if l.strip()]
    return [r for r in its if "iter" in r], [r for r in its if r.get("done")][0]


def shift_stop(full, log, init, s):
    c = h5py.File(init, "r")["/centroids"][...].astype(np.float64)
    scale = np.sqrt((c * c).sum() / c.shape[0])
    fi, _ = log_iters(full)
    li, done = log_iters(log)
    want = next((r["iter"] for r in fi if r["max_shift"] <= s * scale), None)
    if want is None or want == fi[-1]["iter"]:
        fail("the threshold %g x %g is not crossed inside the full run" % (s, scale))
    if li[-1]["iter"] != want or not done["converged"]:
        fail("stopped after iteration %d (converged %s), expected %d" % (li[-1]["iter"], done["converged"], want))
    for a, b in zip(fi, li):
        if a["max_shift"] != b["max_shift"]:
            fail("the runs differ at iteration %d" % a["iter"])
    print("check_init: shift-stop ok (stopped at %d, scale %.6g)" % (want, scale))


def assign(x, c):
    d = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
    lab = np.argmin(d, 1)
    part = np.partition(d, 1, axis=1)
    # near-ties: a gap under 1e-5 relative (the GPU exact mode's guarantee) may go either way
    return lab, part[:, 1] - part[:, 0] > 1e-5 * np.maximum(part[:, 0], 1e-30)


def reassign_stop(inp, dset, init, log, r):
    x = h5py.File(inp, "r")[dset][...].astype(np.float64)
    c = h5py.File(init, "r")["/centroids"][...].astype(np.float32).astype(np.float64)
    k = c.shape[0]
    li, done = log_iters(log)
    prev, prev_clear, want = None, None, None
    fracs = []
    for it in range(1, 200):
        lab, clear = assign(x, c)
        if prev is not None:
            frac = np.count_nonzero(lab != prev) / len(lab)
            unsure = np.count_nonzero(~(clear & prev_clear)) / len(lab)
            fracs.append((it, frac, unsure))
            if want is None and frac <= r:
                want = it
        if it >= li[-1]["iter"] and want is not None:
            break
        cnt = np.bincount(lab, minlength=k)
        sums = np.zeros_like(c)
        np.add.at(sums, lab, x)
        nz = cnt > 0
        c[nz] = (sums[nz] / cnt[nz][:, None]).astype(np.float32).astype(np.float64)
        prev, prev_clear = lab, clear
    if "reassigned" in li[0]:
        fail("iteration 1 has a reassigned fraction")
    for it, frac, unsure in fracs:
        if it > li[-1]["iter"]:
            break
        got = li[it - 1].get("reassigned")
        if got is None or abs(got - frac) > unsure + 1e-12:
            fail("iteration %d: reassigned %s, fp64 reference %.9g" % (it, got, frac))
    if want is None or li[-1]["iter"] != want or not done["converged"]:
        fail("stopped after iteration %d, the reference crosses %g at %s" % (li[-1]["iter"], r, want))
    print("check_init: reassign-stop ok (stopped at %d; fractions %s)" %
          (want, " ".join("%.4f" % f for _, f, _ in fracs[:want - 1])))


def assign_check(inp, dset, cent, out, tol="1e-6"):
    tol = float(tol)
    x = h5py.File(inp, "r")[dset][...].astype(np.float64)
    c = h5py.File(cent, "r")["/centroids"][...].astype(np.float64)
    f = h5py.File(out, "r")
    lab, clear = assign(x, c)
    ol = f["/labels"][...]
    if ol.shape != (len(x),) or ol.dtype != np.int32:
        fail("/labels is %s %s" % (ol.shape, ol.dtype))
    bad = np.count_nonzero((ol != lab) & clear)
    if bad:
        fail("%d labels differ from the fp64 reference" % bad)
    best = ((x - c[ol]) ** 2).sum(1)
    od = f["/distances"][...]
    if od.dtype != np.float32 or od.shape != (len(x),):
        fail("/distances is %s %s" % (od.shape, od.dtype))
    scale = best if tol <= 1e-6 else best + 1e-3 * ((x * x).sum(1) + (c[ol] * c[ol]).sum(1))
    rel = np.abs(od - best) / np.maximum(scale, 1e-30)
    if rel.max() > tol:
        fail("distances differ from fp64 by %.3g relative" % rel.max())
    if not np.array_equal(np.bincount(ol, minlength=len(c)), f["/counts"][...]):
        fail("/counts disagree with /labels")
    if abs(float(f.attrs["inertia"]) - best.sum()) > max(tol, 1e-6) * best.sum():
        fail("inertia %.17g vs %.17g" % (float(f.attrs["inertia"]), best.sum()))
    print("check_init: assign ok (%d rows, %d near-ties skipped, distance rel err %.2g)" %
          (len(x), np.count_nonzero(~clear), rel.max()))


M64 = (1 << 64) - 1


def mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def sample_rows(n, k, seed, stream):
    base = mix64(seed ^ mix64(stream))
    taken, ids = set(), []
    for j in range(n - k, n):
        t = mix64((base + j) & M64) % (j + 1)
        v = t if t not in taken else j
        taken.add(v)
        ids.append(v)
    return ids


def sample_ref(inp, dset, init, out, iters, m, seed):
    x = h5py.File(inp, "r")[dset][...].astype(np.float64)
    c = h5py.File(init, "r")["/centroids"][...].astype(np.float32).astype(np.float64)
    k = c.shape[0]
    ids = np.sort(np.array(sample_rows(len(x), k * m, seed, 9)))
    xs = x[ids]
    for _ in range(iters):
        lab, _ = assign(xs, c)
        cnt = np.bincount(lab, minlength=k)
        sums = np.zeros_like(c)
        np.add.at(sums, lab, xs)
        nz = cnt > 0
        c[nz] = (sums[nz] / cnt[nz][:, None]).astype(np.float32).astype(np.float64)
    f = h5py.File(out, "r")
    oc = f["/centroids"][...].astype(np.float64)
    rel = np.abs(oc - c).max() / np.abs(c).max()
    if rel > 1e-5:
        fail("centroids differ from Lloyd on the sample by %.3g relative" % rel)
    # and they are not what Lloyd on all rows gives
    lab, clear = assign(x, oc)
    ol = f["/labels"][...]
    if ol.shape != (len(x),):
        fail("/labels has %s rows, not %d" % (ol.shape, len(x)))
    bad = np.count_nonzero((ol != lab) & clear)
    if bad:
        fail("%d labels of all rows differ from the fp64 reference" % bad)
    if not np.array_equal(np.bincount(ol, minlength=k), f["/counts"][...]):
        fail("/counts are not those of all rows")
    best = ((x - oc[ol]) ** 2).sum(1).sum()
    if abs(float(f.attrs["inertia"]) - best) > 1e-6 * best:
        fail("inertia %.17g is not that of all rows (%.17g)" % (float(f.attrs["inertia"]), best))
    print("check_init: sample-ref ok (%d of %d rows trained on, centroid rel err %.2g)" % (len(xs), len(x), rel))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "same":
        same(args[0], args[1:])
    elif cmd == "rows":
        rows(*args)
    elif cmd == "mean-inertia":
        mean_inertia(args)
    elif cmd == "dup":
        dup(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "shift-stop":
        shift_stop(args[0], args[1], args[2], float(args[3]))
    elif cmd == "sample-ref":
        sample_ref(args[0], args[1], args[2], args[3], int(args[4]), int(args[5]), int(args[6]))
    elif cmd == "assign":
        assign_check(*args)
    elif cmd == "reassign-stop":
        reassign_stop(args[0], args[1], args[2], args[3], float(args[4]))
    else:
        fail("unknown command " + cmd)
