/* Greedy k-means++ (Arthur & Vassilvitskii; scikit-learn's greedy variant) on rows in host
 * memory: the init of --init kmeans++ (on a sample of the rows) and the last step of
 * --init kmeans|| (on the weighted candidates).
 *
 * Distances to the `trials` candidates of a step come from one sgemm per tile of rows
 * (‖x‖² + ‖c‖² − 2x·c, norms in fp64, rows centred on their mean first so that the expansion
 * loses little to cancellation). Tiles are fixed (TILE rows), each sgemm runs on one thread,
 * and every sum over rows is taken tile by tile in tile order, so the result does not depend
 * on the number of threads. */
#include "kmeanspp.h"
#include "rng.h"
#include "util.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { TILE = 256 };

/* First index i with cum[i] > u (cum non-decreasing); -1 when none. */
static int64_t draw_index(const double *cum, int64_t m, double u)
{
    int64_t lo = 0, hi = m;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo < m ? lo : -1;
}

int fkm_kmeanspp(const float *x, const double *w, int64_t m, int64_t d, int64_t k, uint64_t seed,
                 int trials, float *out, int64_t *ids, fkm_error *err)
{
    if (m < 1 || k < 1 || d < 1)
        return fkm_fail(err, FKM_ERUNTIME, "k-means++: %lld rows, k = %lld, d = %lld", (long long)m,
                        (long long)k, (long long)d);
    if (trials <= 0) trials = 2 + (int)floor(log((double)k));
#ifdef FKM_HAVE_OPENBLAS_THREADS
    openblas_set_num_threads(1); /* threads come from OpenMP over tiles */
#endif
    const int64_t ntiles = (m + TILE - 1) / TILE;
    float *xc = fkm_malloc((size_t)(m * d) * sizeof(float), "k-means++ rows", err);
    double *xn = xc ? fkm_malloc((size_t)m * sizeof(double), "k-means++ norms", err) : NULL;
    double *closest = xn ? fkm_malloc((size_t)m * sizeof(double), "k-means++ distances", err) : NULL;
    double *cum = closest ? fkm_malloc((size_t)m * sizeof(double), "k-means++ sums", err) : NULL;
    double *cand = cum ? fkm_malloc((size_t)(m * trials) * sizeof(double), "k-means++ candidates", err) : NULL;
    float *dots = cand ? fkm_malloc((size_t)(m * trials) * sizeof(float), "k-means++ products", err) : NULL;
    float *cx = dots ? fkm_malloc((size_t)(trials * d) * sizeof(float), "k-means++ candidates", err) : NULL;
    double *part = cx ? fkm_malloc((size_t)(ntiles * trials) * sizeof(double), "k-means++ sums", err) : NULL;
    double *mean = part ? fkm_calloc((size_t)d, sizeof(double), "k-means++ mean", err) : NULL;
    int64_t *cid = mean ? fkm_malloc((size_t)trials * sizeof(int64_t), "k-means++ ids", err) : NULL;
    if (!cid) {
        free(xc), free(xn), free(closest), free(cum), free(cand), free(dots), free(cx), free(part), free(mean);
        return FKM_ENOMEM;
    }
    /* centre the rows (in fp64, sequentially: the same mean for any thread count) */
    for (int64_t i = 0; i < m; i++)
        for (int64_t t = 0; t < d; t++) mean[t] += x[i * d + t];
    for (int64_t t = 0; t < d; t++) mean[t] /= (double)m;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; i++) {
        double acc = 0;
        for (int64_t t = 0; t < d; t++) {
            float v = (float)((double)x[i * d + t] - mean[t]);
            xc[i * d + t] = v;
            acc += (double)v * v;
        }
        xn[i] = acc;
    }
    uint64_t draw = 0; /* counter of the uniform draws */
    double pot = 0;
    int64_t cur = -1;
    for (int64_t c = 0; c < k; c++) {
        int nt = c == 0 ? 1 : trials;
        /* candidates: rows drawn with probability ∝ w (first) or ∝ w·D² */
        if (c == 0) {
            double run = 0;
            for (int64_t i = 0; i < m; i++) cum[i] = run += w ? w[i] : 1.0;
        } else {
            double run = 0;
            for (int64_t i = 0; i < m; i++) cum[i] = run += (w ? w[i] : 1.0) * closest[i];
        }
        double total = cum[m - 1];
        for (int t = 0; t < nt; t++) {
            double u = fkm_rand_unit(seed, FKM_STREAM_KMPP, draw++) * total;
            int64_t i = total > 0 ? draw_index(cum, m, u) : -1;
            if (i < 0) { /* nothing left to draw from: the first row of positive weight */
                i = 0;
                while (w && i + 1 < m && !(w[i] > 0)) i++;
            }
            cid[t] = i;
            memcpy(cx + t * d, xc + i * d, (size_t)d * sizeof(float));
        }
        /* squared distances of every row to each candidate, and each candidate's potential */
#pragma omp parallel for schedule(dynamic, 4)
        for (int64_t b = 0; b < ntiles; b++) {
            const int64_t r0 = b * TILE, mt = m - r0 < TILE ? m - r0 : TILE;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)mt, nt, (int)d, 1.0f,
                        xc + r0 * d, (int)d, cx, (int)d, 0.0f, dots + r0 * nt, nt);
            for (int t = 0; t < nt; t++) {
                double acc = 0, cn = xn[cid[t]];
                for (int64_t i = r0; i < r0 + mt; i++) {
                    double dd = xn[i] + cn - 2.0 * (double)dots[i * nt + t];
                    if (dd < 0 || i == cid[t]) dd = 0;
                    if (c > 0 && closest[i] < dd) dd = closest[i];
                    cand[t * m + i] = dd;
                    acc += (w ? w[i] : 1.0) * dd;
                }
                part[b * nt + t] = acc;
            }
        }
        int best = 0;
        double best_pot = INFINITY;
        for (int t = 0; t < nt; t++) {
            double acc = 0;
            for (int64_t b = 0; b < ntiles; b++) acc += part[b * nt + t];
            if (acc < best_pot) {
                best_pot = acc;
                best = t;
            }
        }
        cur = cid[best];
        pot = best_pot;
        memcpy(closest, cand + (int64_t)best * m, (size_t)m * sizeof(double));
        memcpy(out + c * d, x + cur * d, (size_t)d * sizeof(float));
        if (ids) ids[c] = cur;
    }
    (void)pot;
    free(xc), free(xn), free(closest), free(cum), free(cand), free(dots), free(cx), free(part), free(mean), free(cid);
    return FKM_OK;
}
