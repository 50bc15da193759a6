/* k-means++ (src/kmeanspp.c) against exact probabilities computed here in fp64, on a tiny
 * dataset over many seeds: the second centre is drawn ∝ D² (one trial), ∝ w·D² with weights,
 * and by the greedy best-of-two rule (scikit-learn's default trials for k = 2); each test also
 * checks that a uniform choice would have failed it. Then: the same centroids for any number of
 * threads, and the CPU backend's nearest() (k-means||) and changed() (--reassign-tol) against
 * an fp64 brute force; k-means||'s first candidate drawn ∝ w. */
#include "backend.h"
#include "comm.h"
#include "init.h"
#include "kmeanspp.h"
#include "rowsrc.h"
#include "test_util.h"
#include "util.h"

#include <math.h>
#include <omp.h>
#include <string.h>

enum { M = 7, D = 2, RUNS = 40000 };

static double d2(const float *a, const float *b, int d)
{
    double s = 0;
    for (int t = 0; t < d; t++) s += ((double)a[t] - b[t]) * ((double)a[t] - b[t]);
    return s;
}

/* Expected P(first = i, second = j) for k = 2 with `trials` (1 or 2) and weights w. cls[i][j] is
 * the smallest j' whose candidate ties with j given first = i: two rows that capture the same
 * rows have equal potentials in exact arithmetic (a near pair often does), and which of them the
 * float sums favour is rounding, so such cells are checked as one. */
static void expected(const float *x, const double *w, int trials, double p[M][M], int cls[M][M])
{
    double wsum = 0;
    for (int i = 0; i < M; i++) wsum += w[i];
    for (int i = 0; i < M; i++) {
        double q[M], qs = 0; /* D²-draw probabilities given first = i */
        for (int j = 0; j < M; j++) qs += q[j] = w[j] * d2(x + i * D, x + j * D, D);
        for (int j = 0; j < M; j++) q[j] /= qs;
        for (int j = 0; j < M; j++) p[i][j] = 0, cls[i][j] = j;
        if (trials == 1) {
            for (int j = 0; j < M; j++) p[i][j] = w[i] / wsum * q[j];
            continue;
        }
        /* best of two draws a, b by the potential Σ_r w_r·min(D²(i,r), D²(cand,r)); ties to a */
        double pot[M];
        for (int a = 0; a < M; a++) {
            pot[a] = 0;
            for (int r = 0; r < M; r++) {
                double u = d2(x + i * D, x + r * D, D), v = d2(x + a * D, x + r * D, D);
                pot[a] += w[r] * (u < v ? u : v);
            }
        }
        for (int a = 0; a < M; a++)
            for (int b = 0; b < M; b++) p[i][pot[a] <= pot[b] ? a : b] += w[i] / wsum * q[a] * q[b];
        for (int j = 0; j < M; j++)
            for (int a = 0; a < j; a++)
                if (cls[i][a] == a && fabs(pot[a] - pot[j]) <= 1e-9 * pot[j]) {
                    cls[i][j] = a;
                    break;
                }
    }
}

/* Frequencies of (first, second) over RUNS seeds against p: every cell within 5 sigma. Returns
 * the largest deviation in sigmas; also the largest deviation of a uniform second choice. */
/* The run seeds come from the test seed, so that each test seed draws afresh. */
static void check_freq(const char *what, const float *x, const double *w, int trials, uint64_t seed)
{
    static double p[M][M];
    static int cls[M][M];
    expected(x, w, trials, p, cls);
    static int cnt[M][M];
    memset(cnt, 0, sizeof cnt);
    fkm_error err;
    float out[2 * D];
    for (int s = 0; s < RUNS; s++) {
        int64_t ids[2];
        if (fkm_kmeanspp(x, w, M, D, 2, seed * RUNS + (uint64_t)s, trials == 2 ? 0 : trials, out, ids, &err)) {
            CHECK(0, "%s: kmeanspp failed: %s", what, err.msg);
            return;
        }
        cnt[ids[0]][cls[ids[0]][ids[1]]]++;
    }
    for (int i = 0; i < M; i++) /* a tie class's probability sits in its first cell */
        for (int j = 0; j < M; j++)
            if (cls[i][j] != j) p[i][cls[i][j]] += p[i][j], p[i][j] = 0;
    double worst = 0, worst_unif = 0;
    for (int i = 0; i < M; i++) {
        double pi = 0;
        for (int j = 0; j < M; j++) pi += p[i][j];
        for (int j = 0; j < M; j++) {
            double f = (double)cnt[i][j] / RUNS, sd = sqrt(p[i][j] * (1 - p[i][j]) / RUNS) + 1e-4;
            double z = fabs(f - p[i][j]) / sd;
            if (z > worst) worst = z;
            int size = 0; /* cells of j's tie class: a uniform pick lands in any of them */
            for (int t = 0; t < M; t++) size += cls[i][t] == j && t != i;
            double pu = size * pi / (M - 1), sdu = sqrt(pu * (1 - pu) / RUNS) + 1e-4;
            double zu = fabs(pu - p[i][j]) / sdu; /* a uniform second pick, seen exactly */
            if (zu > worst_unif) worst_unif = zu;
        }
    }
    printf("%s: worst cell %.2f sigma (a uniform second centre would be %.1f sigma off)\n", what,
           worst, worst_unif);
    CHECK(worst < 5, "%s: frequencies off by %.2f sigma", what, worst);
    CHECK(worst_unif > 10, "%s: the test cannot tell a uniform choice apart (%.1f sigma)", what, worst_unif);
}

static void test_distribution(uint64_t seed)
{
    float x[M * D];
    /* a fresh irregular layout: one far point, a tight pair, the rest spread */
    float *u = t_uniform(M, D, seed);
    for (int i = 0; i < M * D; i++) x[i] = 3.0f * u[i];
    x[0] = 9.0f, x[1] = -7.0f;
    x[2 * D] = x[3 * D] + 0.05f, x[2 * D + 1] = x[3 * D + 1] - 0.05f;
    free(u);
    double ones[M], w[M];
    for (int i = 0; i < M; i++) ones[i] = 1, w[i] = 1 + (i * 5) % 4;
    check_freq("D^2 sampling (1 trial)", x, ones, 1, seed);
    check_freq("weighted w*D^2 sampling (1 trial)", x, w, 1, seed);
    check_freq("greedy best of 2 (default trials for k=2)", x, ones, 2, seed);
    /* NULL weights are the unit weights */
    float a[2 * D], b[2 * D];
    fkm_error err;
    fkm_kmeanspp(x, NULL, M, D, 2, 77, 0, a, NULL, &err);
    fkm_kmeanspp(x, ones, M, D, 2, 77, 0, b, NULL, &err);
    CHECK(memcmp(a, b, sizeof a) == 0, "NULL weights differ from unit weights");
}

/* Same centroids for 1 and several threads; picks are rows; fewer distinct rows than k. */
static void test_threads(uint64_t seed)
{
    const int64_t m = 5000, d = 9, k = 60;
    float *x = t_blobs(m, d, 12, seed);
    float *c1 = malloc((size_t)(k * d) * sizeof(float)), *c4 = malloc((size_t)(k * d) * sizeof(float));
    int64_t ids[60];
    fkm_error err;
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK(fkm_kmeanspp(x, NULL, m, d, k, seed, 0, c1, ids, &err) == 0, "kmeanspp: %s", err.msg);
    omp_set_num_threads(nt > 1 ? nt : 4);
    CHECK(fkm_kmeanspp(x, NULL, m, d, k, seed, 0, c4, NULL, &err) == 0, "kmeanspp: %s", err.msg);
    omp_set_num_threads(nt);
    CHECK(memcmp(c1, c4, (size_t)(k * d) * sizeof(float)) == 0, "threads change the k-means++ centroids");
    int distinct = 1;
    for (int64_t j = 0; j < k; j++) {
        CHECK(memcmp(c1 + j * d, x + ids[j] * d, (size_t)d * sizeof(float)) == 0, "centre %lld is not row %lld",
              (long long)j, (long long)ids[j]);
        for (int64_t q = 0; q < j; q++) distinct &= ids[q] != ids[j];
    }
    CHECK(distinct, "k-means++ picked a row twice");
    /* 3 distinct rows, k = 5: no failure, every centre one of the rows */
    float y[6 * 2] = {0, 0, 0, 0, 1, 1, 1, 1, 5, 5, 5, 5};
    float cy[5 * 2];
    CHECK(fkm_kmeanspp(y, NULL, 6, 2, 5, seed, 0, cy, NULL, &err) == 0, "degenerate: %s", err.msg);
    free(x), free(c1), free(c4);
}

/* nearest(): exact fp64 distances to the nearest of m centroids, labels as the reference;
 * it leaves the fit's labels alone. changed(): counts labels that moved between steps. */
static void test_nearest_changed(uint64_t seed)
{
    const int64_t n = 3001, d = 13, k = 7, m = 700; /* m > k: its own buffers */
    float *x = t_blobs(n, d, 9, seed), *c = t_uniform(m, d, seed + 1);
    for (int64_t i = 0; i < m * d; i++) c[i] *= 10;
    fkm_backend b;
    fkm_error err;
    CHECK(fkm_backend_cpu_create(&b, k, d, FKM_PREC_AUTO, FKM_METRIC_L2, &err) == 0, "create: %s", err.msg);
    fkm_rowsrc src;
    fkm_rowsrc_memory(&src, x, FKM_DT_F32, n, d);
    CHECK(b.set_source(b.ctx, &src, FKM_RES_DEVICE, 1000, &err) == 0, "set_source: %s", err.msg);
    CHECK(b.set_centroids(b.ctx, c, k, &err) == 0, "set_centroids");
    CHECK(b.step(b.ctx, NULL, &err) == 0, "step");
    int32_t *l0 = malloc((size_t)n * 4), *l1 = malloc((size_t)n * 4), *lab = malloc((size_t)n * 4), *ref = malloc((size_t)n * 4);
    b.labels(b.ctx, l0, &err);
    float *dist = malloc((size_t)n * sizeof(float));
    double *d1 = malloc((size_t)n * 8), *dd2 = malloc((size_t)n * 8);
    CHECK(b.nearest(b.ctx, c, m, dist, lab, &err) == 0, "nearest: %s", err.msg);
    t_ref_assign(x, n, d, c, m, ref, d1, dd2);
    int64_t bad = 0, badd = 0;
    for (int64_t i = 0; i < n; i++) {
        if (t_clear_gap(d1[i], dd2[i], 1e-6) && lab[i] != ref[i]) bad++;
        if (dist[i] != (float)d1[i] && fabs(dist[i] - d1[i]) > 1e-6 * d1[i]) badd++;
    }
    CHECK(bad == 0, "nearest: %lld labels differ from the fp64 reference", (long long)bad);
    CHECK(badd == 0, "nearest: %lld distances differ from fp64", (long long)badd);
    b.labels(b.ctx, l1, &err);
    CHECK(memcmp(l0, l1, (size_t)n * 4) == 0, "nearest() changed the fit's labels");
    int64_t cnt = 0;
    CHECK(b.changed(b.ctx, &cnt, &err) == 0 && cnt == -1, "first changed() gives %lld, not -1", (long long)cnt);
    /* move centroid 2 onto a row labelled otherwise (so that at least that row changes): the
     * count equals the labels that differ */
    float *c2 = malloc((size_t)(k * d) * sizeof(float));
    memcpy(c2, c, (size_t)(k * d) * sizeof(float));
    int64_t i0 = 0;
    while (i0 < n - 1 && l0[i0] == 2) i0++;
    for (int64_t t = 0; t < d; t++) c2[2 * d + t] = x[i0 * d + t];
    b.set_centroids(b.ctx, c2, k, &err);
    b.step(b.ctx, NULL, &err);
    b.labels(b.ctx, l1, &err);
    int64_t want = 0;
    for (int64_t i = 0; i < n; i++) want += l0[i] != l1[i];
    CHECK(b.changed(b.ctx, &cnt, &err) == 0 && cnt == want && want > 0, "changed() %lld, labels differ at %lld",
          (long long)cnt, (long long)want);
    b.step(b.ctx, NULL, &err);
    CHECK(b.changed(b.ctx, &cnt, &err) == 0 && cnt == 0, "changed() after an equal step: %lld", (long long)cnt);
    b.destroy(b.ctx);
    free(x), free(c), free(c2), free(l0), free(l1), free(lab), free(ref), free(dist), free(d1), free(dd2);
}

/* k-means||'s first candidate (k = 1, no rounds: the result is that row) over many seeds:
 * drawn ∝ w (uniformly without weights), never a row of weight 0; a uniform draw would fail. */
static void test_kmpar_first(fkm_comm *comm, const double *wd, const char *what, uint64_t seed)
{
    enum { R = 20000 };
    float x[M * D], w[M];
    for (int i = 0; i < M; i++) x[i * D] = (float)i, x[i * D + 1] = (float)(i * i), w[i] = (float)wd[i];
    fkm_backend b;
    fkm_error err;
    fkm_rowsrc src;
    fkm_rowsrc_memory(&src, x, FKM_DT_F32, M, D);
    CHECK(fkm_backend_cpu_create(&b, 1, D, FKM_PREC_AUTO, FKM_METRIC_L2, &err) == 0 &&
              b.set_source(b.ctx, &src, FKM_RES_DEVICE, M, &err) == 0,
          "%s: backend: %s", what, err.msg);
    int cnt[M] = {0};
    double wsum = 0;
    for (int i = 0; i < M; i++) wsum += wd[i];
    for (int r = 0; r < R; r++) {
        float out[D];
        fkm_error_clear(&err);
        if (fkm_kmeans_par(comm, &b, &src, wd[0] < 0 ? NULL : w, 0, M, 1, seed * R + (uint64_t)r, 0, 2.0, 0,
                           out, &err)) {
            CHECK(0, "%s: kmeans|| failed: %s", what, err.msg);
            break;
        }
        cnt[(int)out[0]]++;
    }
    b.destroy(b.ctx);
    double worst = 0, worst_unif = 0;
    for (int i = 0; i < M; i++) {
        const double p = wd[0] < 0 ? 1.0 / M : wd[i] / wsum, f = (double)cnt[i] / R;
        const double sd = sqrt(p * (1 - p) / R) + 1e-4, z = fabs(f - p) / sd;
        if (z > worst) worst = z;
        const double zu = fabs(1.0 / M - p) / (sqrt((1.0 / M) * (1 - 1.0 / M) / R) + 1e-4);
        if (zu > worst_unif) worst_unif = zu;
        if (p == 0) CHECK(cnt[i] == 0, "%s: row %d of weight 0 drawn %d times", what, i, cnt[i]);
    }
    printf("%s: worst row %.2f sigma (a uniform first row would be %.1f sigma off)\n", what, worst, worst_unif);
    CHECK(worst < 5, "%s: frequencies off by %.2f sigma", what, worst);
    if (wd[0] >= 0) CHECK(worst_unif > 10, "%s: the test cannot tell a uniform draw apart", what);
}

int main(void)
{
    uint64_t seed = t_seed();
    fkm_comm comm;
    fkm_error err;
    if (fkm_comm_init(&comm, &err)) {
        fprintf(stderr, "test_kmeanspp: %s\n", err.msg);
        return 1;
    }
    test_distribution(seed);
    test_threads(seed);
    test_nearest_changed(seed);
    const double wts[M] = {1, 2, 0, 3, 1, 4, 2}, none[M] = {-1};
    test_kmpar_first(&comm, wts, "k-means|| first row, weighted", seed);
    test_kmpar_first(&comm, none, "k-means|| first row, unweighted", seed + 1);
    fkm_comm_finalize(&comm);
    return t_finish("test_kmeanspp");
}
