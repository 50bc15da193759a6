/* The CPU backend against the fp64 brute-force reference of test_util.c, on fresh random
 * data of awkward shapes; the sort-inverse update against a direct fp64 accumulation;
 * determinism across thread counts; the init sampler and the empty-cluster split. */
#include "backend.h"
#include "init.h"
#include "rowsrc.h"
#include "test_util.h"

#include <math.h>
#include <omp.h>
#include <string.h>

static double rel_err(double a, double b)
{
    double s = fabs(b) > 1e-300 ? fabs(b) : 1.0;
    return fabs(a - b) / s;
}

/* One step on (n, k, d): labels equal the reference wherever the fp64 gap is not a tie,
 * sums/counts/inertia match a direct fp64 accumulation over the backend's labels. */
static void check_step(int64_t n, int64_t k, int64_t d, int blobs, uint64_t seed)
{
    float *x = blobs ? t_blobs(n, d, 5, seed) : t_uniform(n, d, seed);
    float *c = malloc((size_t)(k * d) * sizeof *c);
    /* centroids: distinct random rows (so K = N is every row) plus a little noise */
    for (int64_t j = 0; j < k; j++)
        for (int64_t t = 0; t < d; t++) c[j * d + t] = x[((j * 7919) % n) * d + t] + (float)(0.01 * ((j + t) % 3));
    fkm_backend b;
    fkm_error err;
    CHECK(fkm_backend_cpu_create(&b, k, d, FKM_PREC_AUTO, FKM_METRIC_L2, &err) == 0, "create: %s", err.msg);
    fkm_rowsrc src;
    fkm_rowsrc_memory(&src, x, FKM_DT_F32, n, d);
    CHECK(b.set_source(b.ctx, &src, FKM_RES_DEVICE, n, &err) == 0, "set_source");
    CHECK(b.set_centroids(b.ctx, c, k, &err) == 0, "set_centroids");
    int64_t len = fkm_stats_len(k, d);
    memset(b.stats(b.ctx), 0xff, (size_t)len * sizeof(double)); /* poison */
    int32_t *lab = malloc((size_t)n * sizeof *lab), *ref = malloc((size_t)n * sizeof *ref);
    memset(lab, 0xff, (size_t)n * sizeof *lab);
    double *d1 = malloc((size_t)n * sizeof *d1), *d2 = malloc((size_t)n * sizeof *d2);
    CHECK(b.step(b.ctx, NULL, &err) == 0, "step");
    CHECK(b.labels(b.ctx, lab, &err) == 0, "labels");
    t_ref_assign(x, n, d, c, k, ref, d1, d2);
    int64_t bad = 0, ties = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!t_clear_gap(d1[i], d2[i], 1e-12)) {
            ties++;
            continue;
        }
        if (lab[i] != ref[i]) bad++;
    }
    CHECK(bad == 0, "n=%lld k=%lld d=%lld: %lld labels differ from fp64 (%lld ties skipped)",
          (long long)n, (long long)k, (long long)d, (long long)bad, (long long)ties);
    /* direct fp64 accumulation over the backend's own labels */
    double *sums = calloc((size_t)(k * d), sizeof *sums), *cnt = calloc((size_t)k, sizeof *cnt), in = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t j = lab[i];
        if (j < 0 || j >= k) {
            bad++;
            continue;
        }
        cnt[j]++;
        for (int64_t t = 0; t < d; t++) {
            sums[j * d + t] += x[i * d + t];
            double diff = (double)x[i * d + t] - c[j * d + t];
            in += diff * diff;
        }
    }
    CHECK(bad == 0, "labels out of range");
    double *st = malloc((size_t)len * sizeof *st);
    b.stats_to_host(b.ctx, st, &err);
    double worst = 0;
    for (int64_t j = 0; j < k; j++) {
        CHECK(st[k * d + j] == cnt[j], "count of cluster %lld: %g vs %g", (long long)j, st[k * d + j], cnt[j]);
        for (int64_t t = 0; t < d; t++) {
            double e = fabs(st[j * d + t] - sums[j * d + t]) / (fabs(sums[j * d + t]) + 1.0);
            if (e > worst) worst = e;
        }
    }
    CHECK(worst < 1e-12, "sums differ by %g", worst);
    CHECK(rel_err(st[len - 1], in) < 1e-10, "inertia %.17g vs %.17g", st[len - 1], in);
    /* finalize: c = sums / count for non-empty clusters, shift reported */
    double shift;
    int64_t empty;
    CHECK(b.finalize(b.ctx, &shift, &empty, &err) == 0, "finalize");
    float *c2 = malloc((size_t)(k * d) * sizeof *c2);
    b.get_centroids(b.ctx, c2, &err);
    int64_t e_ref = 0;
    double shift_ref = 0;
    for (int64_t j = 0; j < k; j++) {
        if (cnt[j] == 0) {
            e_ref++;
            CHECK(memcmp(c2 + j * d, c + j * d, (size_t)d * sizeof(float)) == 0, "empty cluster moved");
            continue;
        }
        double s2 = 0;
        for (int64_t t = 0; t < d; t++) {
            double want = sums[j * d + t] / cnt[j];
            CHECK(fabs(c2[j * d + t] - want) <= 1e-6 * (fabs(want) + 1e-3), "centroid %lld,%lld", (long long)j, (long long)t);
            s2 += (c2[j * d + t] - (double)c[j * d + t]) * (c2[j * d + t] - (double)c[j * d + t]);
        }
        if (s2 > shift_ref) shift_ref = s2;
    }
    CHECK(empty == e_ref, "empty %lld vs %lld", (long long)empty, (long long)e_ref);
    CHECK(rel_err(shift, sqrt(shift_ref)) < 1e-6, "shift %g vs %g", shift, sqrt(shift_ref));
    b.destroy(b.ctx);
    free(x); free(c); free(c2); free(lab); free(ref); free(d1); free(d2); free(sums); free(cnt); free(st);
}

/* Metrics cosine and ip on (n, k, d): labels are the largest x·c of the fp64 reference wherever
 * the gap is not a tie — half of the centroids are near-copies of the other half (1e-6 apart),
 * so the fp64 re-check decides many rows; the inertia is Σ (offset − x·c); finalize gives the
 * means, scaled to unit length under cosine; nearest() returns offset − x·c in fp64. */
static void check_step_metric(int64_t n, int64_t k, int64_t d, fkm_metric metric, uint64_t seed)
{
    float *x = t_blobs(n, d, 5, seed);
    const double offset = metric == FKM_METRIC_COSINE ? 1.0 : 0.0;
    if (metric == FKM_METRIC_COSINE) t_normalize_rows(x, n, d); /* as the driver hands them over */
    float *c = malloc((size_t)(k * d) * sizeof *c);
    for (int64_t j = 0; j < k; j++)
        for (int64_t t = 0; t < d; t++) {
            const int64_t src = j < (k + 1) / 2 ? j : j - (k + 1) / 2; /* near-copies */
            c[j * d + t] = x[((src * 7919) % n) * d + t] * (j == src ? 1.0f : 1.0f + 1e-6f * (float)((t % 3) - 1));
        }
    fkm_backend b;
    fkm_error err;
    CHECK(fkm_backend_cpu_create(&b, k, d, FKM_PREC_AUTO, metric, &err) == 0, "create: %s", err.msg);
    fkm_rowsrc src;
    fkm_rowsrc_memory(&src, x, FKM_DT_F32, n, d);
    CHECK(b.set_source(b.ctx, &src, FKM_RES_DEVICE, n, &err) == 0, "set_source");
    CHECK(b.set_centroids(b.ctx, c, k, &err) == 0, "set_centroids");
    const int64_t len = fkm_stats_len(k, d);
    int32_t *lab = malloc((size_t)n * sizeof *lab), *ref = malloc((size_t)n * sizeof *ref);
    double *d1 = malloc((size_t)n * sizeof *d1), *d2 = malloc((size_t)n * sizeof *d2);
    memset(lab, 0xff, (size_t)n * sizeof *lab);
    CHECK(b.step(b.ctx, NULL, &err) == 0, "step");
    CHECK(b.labels(b.ctx, lab, &err) == 0, "labels");
    t_ref_assign_ip(x, n, d, c, k, ref, d1, d2);
    const double cmax = t_max_row_norm(c, k, d);
    int64_t bad = 0, ties = 0;
    double *sums = calloc((size_t)(k * d), sizeof *sums), *cnt = calloc((size_t)k, sizeof *cnt), in = 0;
    for (int64_t i = 0; i < n; i++) {
        double xn = 0;
        for (int64_t t = 0; t < d; t++) xn += (double)x[i * d + t] * x[i * d + t];
        if (d2[i] - d1[i] <= 1e-12 * sqrt(xn) * cmax) ties++;
        else if (lab[i] != ref[i]) bad++;
        const int32_t j = lab[i];
        if (j < 0 || j >= k) continue;
        cnt[j]++;
        for (int64_t t = 0; t < d; t++) sums[j * d + t] += x[i * d + t];
        double dot = 0;
        for (int64_t t = 0; t < d; t++) dot += (double)x[i * d + t] * c[j * d + t];
        in += offset - dot;
    }
    CHECK(bad == 0, "metric %d n=%lld k=%lld d=%lld: %lld labels differ from fp64 (%lld ties skipped)", (int)metric,
          (long long)n, (long long)k, (long long)d, (long long)bad, (long long)ties);
    double *st = malloc((size_t)len * sizeof *st);
    b.stats_to_host(b.ctx, st, &err);
    for (int64_t j = 0; j < k; j++) CHECK(st[k * d + j] == cnt[j], "metric %d count %lld", (int)metric, (long long)j);
    CHECK(fabs(st[len - 1] - in) <= 1e-9 * (fabs(in) + (double)n), "metric %d inertia %.17g vs %.17g", (int)metric,
          st[len - 1], in);
    /* nearest() on the same centroids: labels as step, distances offset − x·c exactly rounded */
    float *dist = malloc((size_t)n * sizeof *dist);
    int32_t *lab2 = malloc((size_t)n * sizeof *lab2);
    CHECK(b.nearest(b.ctx, c, k, dist, lab2, &err) == 0, "nearest");
    int64_t badd = 0;
    for (int64_t i = 0; i < n; i++) {
        double dot = 0;
        for (int64_t t = 0; t < d; t++) dot += (double)x[i * d + t] * c[lab2[i] * d + t];
        if (lab2[i] != lab[i] || dist[i] != (float)(offset - dot)) badd++;
    }
    CHECK(badd == 0, "metric %d: nearest() differs from step or fp64 on %lld rows", (int)metric, (long long)badd);
    double shift;
    int64_t empty;
    CHECK(b.finalize(b.ctx, &shift, &empty, &err) == 0, "finalize");
    float *c2 = malloc((size_t)(k * d) * sizeof *c2);
    b.get_centroids(b.ctx, c2, &err);
    int64_t badc = 0;
    for (int64_t j = 0; j < k; j++) {
        if (cnt[j] == 0) continue;
        double n2 = 0;
        for (int64_t t = 0; t < d; t++) n2 += (sums[j * d + t] / cnt[j]) * (sums[j * d + t] / cnt[j]);
        const double scale = metric == FKM_METRIC_COSINE ? 1.0 / sqrt(n2) : 1.0;
        for (int64_t t = 0; t < d; t++) {
            const double want = sums[j * d + t] / cnt[j] * scale;
            if (fabs(c2[j * d + t] - want) > 1e-6 * (fabs(want) + 1e-6)) badc++;
        }
    }
    CHECK(badc == 0, "metric %d: %lld centroid values differ from the (normalised) means", (int)metric, (long long)badc);
    b.destroy(b.ctx);
    free(x); free(c); free(c2); free(lab); free(lab2); free(ref); free(d1); free(d2); free(sums); free(cnt); free(st); free(dist);
}

/* The stats must be bitwise the same with 1 and 2 threads. */
static void check_thread_independence(uint64_t seed)
{
    const int64_t n = 5003, k = 37, d = 19;
    float *x = t_blobs(n, d, 6, seed), *c = t_uniform(k, d, seed + 1);
    double *st[2];
    int64_t len = fkm_stats_len(k, d);
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r + 1);
        fkm_backend b;
        fkm_error err;
        fkm_backend_cpu_create(&b, k, d, FKM_PREC_AUTO, FKM_METRIC_L2, &err);
        fkm_rowsrc src;
        fkm_rowsrc_memory(&src, x, FKM_DT_F32, n, d);
        b.set_source(b.ctx, &src, FKM_RES_DEVICE, n, &err);
        b.set_centroids(b.ctx, c, k, &err);
        b.step(b.ctx, NULL, &err);
        st[r] = malloc((size_t)len * sizeof(double));
        b.stats_to_host(b.ctx, st[r], &err);
        b.destroy(b.ctx);
    }
    CHECK(memcmp(st[0], st[1], (size_t)len * sizeof(double)) == 0, "stats differ between 1 and 2 threads");
    free(st[0]); free(st[1]); free(x); free(c);
}

static void check_sampler(void)
{
    fkm_error err;
    int64_t n = 1000, k = 1000, *ids = malloc((size_t)k * sizeof *ids), *ids2 = malloc((size_t)k * sizeof *ids2);
    CHECK(fkm_sample_rows(n, k, 42, ids, &err) == 0, "sample");
    char *seen = calloc((size_t)n, 1);
    for (int64_t j = 0; j < k; j++) {
        CHECK(ids[j] >= 0 && ids[j] < n, "id out of range");
        if (ids[j] >= 0 && ids[j] < n) {
            CHECK(!seen[ids[j]], "id %lld drawn twice", (long long)ids[j]);
            seen[ids[j]] = 1;
        }
    }
    fkm_sample_rows(n, k, 42, ids2, &err);
    CHECK(memcmp(ids, ids2, (size_t)k * sizeof *ids) == 0, "sampler not deterministic");
    /* a large n: distinct, in range; roughly uniform mean */
    int64_t big = (int64_t)3 << 32;
    fkm_sample_rows(big, 500, 7, ids, &err);
    double mean = 0;
    for (int j = 0; j < 500; j++) {
        CHECK(ids[j] >= 0 && ids[j] < big, "big id out of range");
        for (int m = 0; m < j; m++) CHECK(ids[m] != ids[j], "big id repeated");
        mean += (double)ids[j] / 500;
    }
    CHECK(fabs(mean / (double)big - 0.5) < 0.1, "sample mean %g of range", mean / (double)big);
    free(ids); free(ids2); free(seen);
}

static void check_split(void)
{
    const int64_t k = 4, d = 3;
    float c[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0};
    double counts[4] = {10, 0, 30, 0};
    fkm_split_empty(c, counts, k, d, 99, 3);
    /* cluster 1 splits from cluster 2 (largest), then cluster 3 from the largest left (0 or 2: 15 vs 10 → 2) */
    CHECK(counts[1] > 0 && counts[3] > 0, "empties not filled");
    for (int t = 0; t < 3; t++) {
        CHECK(fabsf(c[1 * 3 + t] - 7 - t) < 0.05f, "split centroid far from its parent");
        CHECK(c[1 * 3 + t] != c[2 * 3 + t], "split centroid equals its parent");
    }
}

int main(void)
{
    uint64_t seed = t_seed();
    const int64_t shapes[][3] = {{1, 1, 1},     {2, 2, 3},     {257, 1, 3},   {1000, 7, 1},
                                 {999, 999, 5}, {1001, 33, 257}, {5000, 600, 16}, {3001, 1030, 130}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int blobs = 0; blobs < 2; blobs++)
            check_step(shapes[s][0], shapes[s][1], shapes[s][2], blobs, seed + s * 2 + (uint64_t)blobs);
    const int64_t mshapes[][3] = {{1, 1, 1}, {300, 2, 3}, {2001, 64, 17}, {3001, 700, 130}};
    for (size_t s = 0; s < sizeof mshapes / sizeof mshapes[0]; s++) {
        check_step_metric(mshapes[s][0], mshapes[s][1], mshapes[s][2], FKM_METRIC_COSINE, seed + 100 + s);
        check_step_metric(mshapes[s][0], mshapes[s][1], mshapes[s][2], FKM_METRIC_IP, seed + 200 + s);
    }
    check_thread_independence(seed);
    check_sampler();
    check_split();
    return t_finish("test_cpu_backend");
}
