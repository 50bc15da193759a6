#!/usr/bin/python3
"""Model of the v3 assign kernels' packed-key epilogue (EPI 12 and 17) in numpy, on data with
norm outliers: how many labels fall outside test_gpu_assign's tolerance with one offset per
thread (EPI 12: the largest ||x||^2 of a thread's 4 rows) or per warp (EPI 17: of its 32 rows),
and with the per-row offsets the kernels take where a group's norms are 8x apart (prow).

The model: products of the stored 16-bit values summed in fp64 then rounded to fp32 (the
tensor cores' own rounding is not modelled), the fold's fp32 operations, the key's low 5
mantissa bits replaced by the column code. Run with Debian's python (numpy):

    /usr/bin/python3 bench/key_precision.py [n] [scale]

scale: the factor applied to every 16th row (16: squared norms 256x their neighbours')."""
import sys

import numpy as np

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
scale = float(sys.argv[2]) if len(sys.argv) > 2 else 16.0
d, k, ratio = 128, 1000, 8.0
rng = np.random.default_rng(1)
ctr = rng.uniform(-10, 10, (16, d))  # the blobs of tests/test_util.c


def blobs(m):
    return ctr[rng.integers(0, 16, m)] + rng.standard_normal((m, d))


def f16(a):
    return a.astype(np.float16).astype(np.float64)


X, C = f16(blobs(n)), f16(blobs(k))
X[5::16] *= scale
X = f16(X)
xn, cn = (X * X).sum(1), (C * C).sum(1)
D = xn[:, None] + cn[None, :] - 2 * X @ C.T  # fp64 reference
d1 = D.min(1)
tol = 2 * (2 * d + 64) * 2.0**-23 * (xn + cn.max())  # test_gpu_assign, fp16
acc = (X @ C.T).astype(np.float32)

# a consumer warpgroup holds 128 rows of the 256-row point tile; its warp w rows w*16 + g
# (+ 8) of each 64-row half; a thread (g) rows g, g + 8, g + 64, g + 72
loc = np.arange(n) % 256
tile = np.arange(n) // 256
cons, warp, g = loc // 128, loc % 64 // 16, loc % 8
warpid = (tile * 2 + cons) * 4 + warp
thread = warpid * 8 + g


def group_max_min(ids):
    mx, mn = np.zeros(n), np.zeros(n)
    for q in np.unique(ids):
        m = ids == q
        mx[m], mn[m] = xn[m].max(), xn[m].min()
    return mx, mn


def labels(v):
    key = (v.view(np.int32) & ~31).astype(np.int64)  # code bits cleared; ties to the lower column
    return np.argmin(key * 64 + np.arange(k)[None, :] % 32, 1)


def report(name, lab):
    ex = D[np.arange(n), lab] - d1
    print(f"{name:34s} labels out of tolerance: {int((ex > tol).sum()):6d} of {n}, "
          f"worst excess / tolerance {(ex / tol).max():.3g}")


f32 = np.float32
tmax, tmin = group_max_min(thread)
wmax, _ = group_max_min(warpid)
# the row's own offset: d = (||c||^2 - 2 x.c) + ||x||^2
pr_rows = ((cn[None, :].astype(f32) - 2 * acc) + xn[:, None].astype(f32)).astype(f32)
# EPI 12: d' = (||c||^2 + boff) - 2 x.c with boff the thread's largest ||x||^2
v12 = ((cn[None, :].astype(f32) + tmax[:, None].astype(f32)) - 2 * acc).astype(f32)
report("EPI 12, one offset per thread", labels(v12))
# EPI 17: the accumulators start from -(||c||^2 + b) / 2, b the warp's largest ||x||^2
init = (-(cn[None, :] + wmax[:, None]) / 2).astype(f32)
v17 = (-2 * (init.astype(np.float64) + X @ C.T).astype(f32)).astype(f32)
report("EPI 17, one offset per warp", labels(v17))
# prow: where a thread's (EPI 17: the warp's) largest ||x||^2 is 8x a row's, the warp's rows
# take their own offsets for the point tile
prow12, prow17 = np.zeros(n, bool), np.zeros(n, bool)
for q in np.unique(warpid):
    m = warpid == q
    prow12[m] = (tmax[m] > ratio * tmin[m]).any()
    prow17[m] = (wmax[m] > ratio * tmin[m]).any()
report(f"EPI 12 + prow ({prow12.sum()} rows)", labels(np.where(prow12[:, None], pr_rows, v12)))
report(f"EPI 17 + prow ({prow17.sum()} rows)", labels(np.where(prow17[:, None], pr_rows, v17)))
