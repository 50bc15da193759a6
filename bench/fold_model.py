#!/usr/bin/env python3
"""How often EPI 15's fold runs (kernels/assign_v3.cuh; bench/NOTES.md, history 37).

EPI 15 takes the minimum of d' = ||c||^2 - 2 x.c per row over each 128-centroid tile, and runs
the packed-key fold for a row slot (8 rows of a warp) only when one of its rows beats its
running best. This model counts the (slot, tile) pairs where that happens, on bench_gpu's data:
a 1024-component Gaussian mixture (centres N(0, 1), noise sd 0.3), D = 128, centroids = K data
points, tiles swept in order. Rows in the data's order (random components), or sorted by their
nearest centroid (slots of rows sharing it); the running best starting at +inf, or seeded with
an ideal upper bound (1e-4 relative above the row's minimum, what a previous iteration's bound
could give at best).

Usage (Debian's numpy, ~1 minute on 2 cores): /usr/bin/python3 bench/fold_model.py 1024 8192 65536
"""
import sys

import numpy as np

D, COMPS, BN, CHUNK = 128, 1024, 128, 1024
rng = np.random.default_rng(1)
centres = rng.standard_normal((COMPS, D)).astype(np.float32)


def sample(n):
    return centres[rng.integers(0, COMPS, n)] + 0.3 * rng.standard_normal((n, D)).astype(np.float32)


def fold_fractions(k, n, sort_rows):
    c, x = sample(k), sample(n)
    cn = (c * c).sum(1)
    nj = k // BN
    tmin = np.empty((n, nj), np.float32)
    label = np.empty(n, np.int64)
    for a in range(0, n, CHUNK):
        dp = cn[None, :] - 2 * x[a:a + CHUNK] @ c.T
        tmin[a:a + CHUNK] = dp.reshape(dp.shape[0], nj, BN).min(2)
        label[a:a + CHUNK] = dp.argmin(1)
    if sort_rows:
        tmin = tmin[np.argsort(label, kind="stable")]
    best = tmin.min(1)
    before = np.concatenate([np.full((n, 1), np.inf, np.float32), np.minimum.accumulate(tmin, 1)[:, :-1]], 1)
    improves = tmin < before
    seeded = improves & (tmin < (best + 1e-4 * np.abs(best) + 1e-3)[:, None])
    slots = n // 8
    return (improves[:slots * 8].reshape(slots, 8, nj).any(1).mean(),
            seeded[:slots * 8].reshape(slots, 8, nj).any(1).mean())


for k in [int(a) for a in sys.argv[1:]] or [1024, 8192, 65536]:
    if k % BN:
        sys.exit(f"fold_model.py: K = {k} is not a multiple of {BN}")
    for sort_rows in (False, True):
        n = 16384 if k >= 32768 else 32768
        none, seed = fold_fractions(k, n, sort_rows)
        print(f"K={k:6d} rows={n} {'sorted by label' if sort_rows else 'data order     '}: "
              f"fold fraction {none:.3f} from +inf, {seed:.3f} seeded", flush=True)
