/* Greedy k-means++ on rows held in host memory (see kmeanspp.c). */
#ifndef FKM_KMEANSPP_H
#define FKM_KMEANSPP_H

#include "fkm.h"
#include <stdint.h>

/* Pick k of the m rows x (m×d float32, row-major) as initial centroids, written to out
 * (k×d), as scikit-learn's greedy k-means++: the first row with probability ∝ w (uniform
 * when w is NULL); then each further centre is the best, by the resulting potential
 * Σ w·min(D², d(x, cand)²), of `trials` rows drawn with probability ∝ w·D² (D² = squared
 * distance to the nearest centre chosen so far). trials ≤ 0 means 2 + ⌊ln k⌋. When every
 * w·D² is 0 (fewer distinct rows than k), the draw returns the first row of positive weight.
 * A pure function of (x, w, k, seed, trials): the same on every rank and for any number of
 * threads. ids (may be NULL) gets the chosen row indices. Cost: k·trials·m·d multiply-adds
 * (sgemm), plus m·(d + trials) memory. */
int fkm_kmeanspp(const float *x, const double *w, int64_t m, int64_t d, int64_t k, uint64_t seed,
                 int trials, float *out, int64_t *ids, fkm_error *err);

#endif
