/* The empty-cluster policy shared by every backend. */
#include "backend.h"
#include "rng.h"

#include <math.h>

/* Each empty cluster j (in index order) takes the centroid of the largest cluster L (lowest
 * index among equals), both moved apart by a small seeded ± step in every coordinate (as
 * FAISS does), and the two share L's count for the next choice. The next Lloyd iteration
 * then splits L's rows between them. */
void fkm_split_empty(float *c, double *counts, int64_t k, int64_t d, uint64_t seed, int iter)
{
    const double eps = 1.0 / 1024;
    for (int64_t j = 0; j < k; j++) {
        if (counts[j] > 0) continue;
        int64_t L = 0;
        for (int64_t m = 1; m < k; m++)
            if (counts[m] > counts[L]) L = m;
        if (counts[L] <= 1) return; /* nothing left to split */
        double norm = 0;
        for (int64_t t = 0; t < d; t++) norm += (double)c[L * d + t] * c[L * d + t];
        const double floor = 1e-6 * (1.0 + sqrt(norm / (double)d));
        for (int64_t t = 0; t < d; t++) {
            double v = c[L * d + t], a = fabs(v) > floor ? fabs(v) : floor;
            uint64_t idx = ((uint64_t)iter * (uint64_t)k + (uint64_t)j) * (uint64_t)d + (uint64_t)t;
            double step = (fkm_rand64(seed, FKM_STREAM_SPLIT, idx) & 1) ? eps * a : -eps * a;
            c[j * d + t] = (float)(v + step);
            c[L * d + t] = (float)(v - step);
        }
        counts[L] = counts[j] = counts[L] / 2;
    }
}
