/* The CPU backend: OpenMP threads over tiles of rows, distances from BLAS sgemm tiles
 * (‖x‖² − 2x·c + ‖c‖², never the n×k matrix; −2x·c alone under cosine and ip), the argmin
 * fused per tile, then an exact
 * fp64 re-check of the rows whose two best candidates are closer than the fp32 error bound,
 * and a sort-inverse update (counting sort by label, each cluster reduced in row order), so
 * the result does not depend on the number of threads. Rows are processed in chunks whose
 * statistics are added in chunk order; rows either stay in memory (as float32) or are re-read
 * from the file through the read-ahead every step. */
#include "backend.h"
#include "half.h"
#include "prefetch.h"
#include "rowsrc.h"
#include "util.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { TILE_M = 256, TILE_K = 512, PREFETCH_ROWS = 16 };

typedef struct cpu_ctx {
    int64_t k, d, n;
    int ip;           /* metric COSINE or IP: the largest x·c wins (‖x‖², ‖c‖² taken as 0) */
    double offset;    /* a row's distance: offset − x·c (COSINE 1, IP 0) */
    int normalize;    /* COSINE: finalize scales each centroid to unit length */
    int64_t chunk;    /* rows per chunk */
    float *x;         /* n×d float32 when resident, else NULL */
    double *xnorm;    /* n: ‖x‖² in fp64 (resident), or one chunk's */
    fkm_prefetch *pf; /* the file residency's read-ahead, else NULL */
    fkm_dtype src_dt;
    float *cx;        /* one chunk as float32 (file residency) */
    float *c;         /* k×d */
    float *cnorm;     /* k: ‖c‖² (fp32 of the fp64 value); 0 under ip */
    double cmax;      /* max ‖c‖ */
    int32_t *labels;  /* n */
    float *w;         /* n row weights, or NULL (all ones) */
    int32_t *prev;    /* n: the labels at the last changed() call, or NULL */
    double *stats;    /* k×d + k + 1: the sum over chunks */
    double *part;     /* k×d + k + 1: one chunk's */
    int64_t *order;   /* chunk: rows sorted by label */
    int64_t *offsets; /* k + 1 */
    float *tiles;     /* per thread tile_stride floats */
    size_t tile_stride; /* ≥ TILE_M × TILE_K, and ≥ k for recheck's dots */
    int nthreads;
    size_t bytes;
} cpu_ctx;

/* −x·c in fp64 (float products are exact in fp64) */
static double negdot64(const float *x, const float *c, int64_t d)
{
    double acc = 0;
    for (int64_t t = 0; t < d; t++) acc -= (double)x[t] * (double)c[t];
    return acc;
}

static double dist64(const float *x, const float *c, int64_t d)
{
    double acc = 0;
    for (int64_t t = 0; t < d; t++) {
        double diff = (double)x[t] - (double)c[t];
        acc += diff * diff;
    }
    return acc;
}

/* float32 copies of m rows (converted from half bits when needed) and their fp64 norms. */
static void to_f32(const void *src, fkm_dtype dt, int64_t m, int64_t d, float *x, double *xnorm)
{
    if (dt == FKM_DT_F16) {
        const uint16_t *h = src;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < m * d; i++) x[i] = fkm_half_to_float(h[i]);
    } else if (src != x) {
        memcpy(x, src, (size_t)(m * d) * sizeof(float));
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; i++) {
        double acc = 0;
        for (int64_t t = 0; t < d; t++) acc += (double)x[i * d + t] * x[i * d + t];
        xnorm[i] = acc;
    }
}

static int cpu_set_source(void *vp, const fkm_rowsrc *src, fkm_residency res, int64_t chunk_rows,
                          fkm_error *err)
{
    cpu_ctx *s = vp;
    const int64_t n = src->n, d = s->d;
    if (src->d != d)
        return fkm_fail(err, FKM_ERUNTIME, "cpu backend: rows have %lld columns, not %lld",
                        (long long)src->d, (long long)d);
    s->n = n;
    s->src_dt = src->dt;
    s->chunk = chunk_rows < 1 ? 1 : chunk_rows;
    if (s->chunk > n && n > 0) s->chunk = n;
    const int64_t cm = n < s->chunk ? (n > 0 ? n : 1) : s->chunk;
    s->labels = fkm_malloc((size_t)n * sizeof(int32_t), "labels", err);
    s->order = fkm_malloc((size_t)cm * sizeof(int64_t), "the label sort", err);
    if (!s->labels || !s->order) return FKM_ENOMEM;
    s->bytes += (size_t)n * sizeof(int32_t) + (size_t)cm * sizeof(int64_t);
    if (res == FKM_RES_FILE) {
        /* rows stay in the file: a chunk at a time, read ahead by another thread */
        s->cx = fkm_malloc((size_t)(cm * d) * sizeof(float), "a chunk of rows", err);
        s->xnorm = fkm_malloc((size_t)cm * sizeof(double), "row norms", err);
        if (!s->cx || !s->xnorm) return FKM_ENOMEM;
        s->bytes += (size_t)cm * (d * sizeof(float) * 3 + sizeof(double));
        return fkm_prefetch_create(&s->pf, src, s->chunk, 2, NULL, NULL, NULL, err);
    }
    /* DEVICE and HOST are the same place for the CPU: memory, as float32 */
    /* loaded in pieces of at most 64 MiB, so that reading needs no second copy of the shard */
    const size_t rb = fkm_rowsrc_row_bytes(src);
    int64_t piece = (int64_t)((64u << 20) / rb);
    piece = piece < 1 ? 1 : piece > cm ? cm : piece;
    s->x = malloc((size_t)(n * d) * sizeof(float) + 1);
    s->xnorm = malloc((size_t)n * sizeof(double) + 1);
    void *tmp = src->resident ? NULL : malloc((size_t)piece * rb);
    if (!s->x || !s->xnorm || (!src->resident && !tmp)) {
        free(tmp);
        return fkm_fail(err, FKM_ENOMEM,
                        "out of host memory: this rank's %lld rows need %.1f MiB as float32 "
                        "(--residency file streams them from the file instead; more ranks make "
                        "each rank's share smaller)",
                        (long long)n,
                        ((double)n * (double)(d * sizeof(float) + sizeof(double)) + (double)piece * rb) / (1 << 20));
    }
    s->bytes += (size_t)n * (d * sizeof(float) + sizeof(double));
    for (int64_t r0 = 0; r0 < n; r0 += piece) {
        int64_t m = n - r0 < piece ? n - r0 : piece;
        const void *rows = (const char *)src->resident + (size_t)r0 * rb;
        if (!src->resident) {
            int st = src->read(src->ctx, r0, m, tmp, err);
            if (st) {
                free(tmp);
                return st;
            }
            rows = tmp;
        }
        to_f32(rows, src->dt, m, d, s->x + r0 * d, s->xnorm + r0);
    }
    free(tmp);
    return FKM_OK;
}

/* cn[j] = ‖c_j‖² as fp32 (0 when ip: the assignment then maximises x·c); returns max ‖c_j‖,
 * which the rounding bound needs under every metric. */
static double centroid_norms(const float *c, int64_t k, int64_t d, int ip, float *cn)
{
    double cmax = 0;
    for (int64_t j = 0; j < k; j++) {
        double acc = 0;
        for (int64_t t = 0; t < d; t++) acc += (double)c[j * d + t] * c[j * d + t];
        cn[j] = ip ? 0.0f : (float)acc;
        if (sqrt(acc) > cmax) cmax = sqrt(acc);
    }
    return cmax;
}

static int cpu_set_centroids(void *vp, const float *c, int64_t k, fkm_error *err)
{
    cpu_ctx *s = vp;
    memcpy(s->c, c, (size_t)(k * s->d) * sizeof(float));
    s->cmax = centroid_norms(s->c, k, s->d, s->ip, s->cnorm);
    return FKM_OK;
}

static int cpu_get_centroids(void *vp, float *c, fkm_error *err)
{
    cpu_ctx *s = vp;
    memcpy(c, s->c, (size_t)(s->k * s->d) * sizeof(float));
    return FKM_OK;
}

/* A set of centroids to assign to: the fit's, or nearest()'s. */
typedef struct cset {
    const float *c;     /* k×d */
    const float *cnorm; /* k: ‖c‖² (0 under ip) */
    double cmax;        /* max ‖c‖ */
    int64_t k, d;
    float *tiles;       /* per thread `stride` floats (≥ TILE_M × TILE_K and ≥ k) */
    size_t stride;
    int ip;             /* the largest x·c wins */
} cset;

static cset fit_set(const cpu_ctx *s)
{
    cset cs = {s->c, s->cnorm, s->cmax, s->k, s->d, s->tiles, s->tile_stride, s->ip};
    return cs;
}

/* Rows whose fp32 best and second-best are within 2·bound of each other: recompute every
 * candidate that could be the best in fp64 (ties to the lowest index). xnorm is 0 under ip,
 * where the exact score is −x·c. */
static int32_t recheck(const cset *s, const float *xi, double xnorm, float best32, double bound,
                       float *dots)
{
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)s->k, (int)s->d, 1.0f, s->c, (int)s->d, xi, 1,
                0.0f, dots, 1);
    double best = INFINITY;
    int32_t bi = 0;
    for (int64_t j = 0; j < s->k; j++) {
        double dj = xnorm + s->cnorm[j] - 2.0 * dots[j];
        if (dj > best32 + 2 * bound) continue;
        double e = s->ip ? negdot64(xi, s->c + j * s->d, s->d) : dist64(xi, s->c + j * s->d, s->d);
        if (e < best) {
            best = e;
            bi = (int32_t)j;
        }
    }
    return bi;
}

/* Merge one tile row (row[j] = −2x·c_j) into the running best / second-best of
 * ‖c‖² − 2x·c (‖x‖² is the same for every j and left out), in one pass: 16 independent
 * running (best, its first index, second) lanes in two 8-wide vectors (GCC vector extensions:
 * AVX2 where the CPU has it, two SSE halves elsewhere; compares and selects are exact, so
 * every build gives the same bits), then the lanes merged, ties to the lowest index. */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
#define SEL8(m, a, b) ((v8f)(((v8i)(a) & (m)) | ((v8i)(b) & ~(m)))) /* m ? a : b, per lane */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx2", "default")))
#endif
static void tile_argmin(const float *row, const float *cn, int64_t kk, int64_t j0, float *best,
                        float *second, int32_t *bidx)
{
    const float inf = INFINITY;
    v8f b[2] = {{inf, inf, inf, inf, inf, inf, inf, inf}, {inf, inf, inf, inf, inf, inf, inf, inf}};
    v8f s2[2] = {b[0], b[0]};
    v8i bi[2] = {{0}, {0}}, idx[2] = {{0, 1, 2, 3, 4, 5, 6, 7}, {8, 9, 10, 11, 12, 13, 14, 15}};
    int64_t j = 0;
    for (; j + 16 <= kk; j += 16) {
        for (int h = 0; h < 2; h++) {
            v8f r, c;
            memcpy(&r, row + j + 8 * h, sizeof r);
            memcpy(&c, cn + j + 8 * h, sizeof c);
            const v8f v = c + r;
            const v8i lt = v < b[h];
            const v8f hi = SEL8(lt, b[h], v); /* the one of v and b that is not the new best */
            s2[h] = SEL8(hi < s2[h], hi, s2[h]);
            bi[h] = (idx[h] & lt) | (bi[h] & ~lt);
            b[h] = SEL8(lt, v, b[h]);
            idx[h] += 16;
        }
    }
    float lb[16], ls[16];
    int32_t li[16];
    memcpy(lb, b, sizeof lb), memcpy(ls, s2, sizeof ls), memcpy(li, bi, sizeof li);
    for (int l = 0; j < kk; j++, l++) { /* the tail, one value per lane */
        const float v = cn[j] + row[j], hi = v < lb[l] ? lb[l] : v;
        ls[l] = hi < ls[l] ? hi : ls[l];
        if (v < lb[l]) lb[l] = v, li[l] = (int32_t)j;
    }
    int ml = 0;
    for (int l = 1; l < 16; l++)
        if (lb[l] < lb[ml] || (lb[l] == lb[ml] && li[l] < li[ml])) ml = l;
    float m2 = INFINITY;
    for (int l = 0; l < 16; l++) {
        m2 = ls[l] < m2 ? ls[l] : m2;
        if (l != ml) m2 = lb[l] < m2 ? lb[l] : m2;
    }
    const float m = lb[ml];
    if (!(m < *best)) {
        if (m < *second) *second = m;
        return;
    }
    *second = *best < m2 ? *best : m2;
    *best = m;
    *bidx = (int32_t)(j0 + li[ml]);
}

/* Labels of m rows x (norms xnorm) into labels. */
static void assign(const cset *s, const float *x, const double *xnorm, int64_t n, int32_t *labels)
{
    const int64_t k = s->k, d = s->d;
    /* Worst-case rounding of ‖x‖² + ‖c‖² − 2x·c in fp32 with d-term sums (Higham's γ). */
    const double u = FLT_EPSILON / 2, gam = (double)(d + 2) * u / (1 - (double)(d + 2) * u);
    const int64_t ntiles = (n + TILE_M - 1) / TILE_M;
#pragma omp parallel
    {
        float *tile = s->tiles + (size_t)omp_get_thread_num() * s->stride;
        float best[TILE_M], second[TILE_M];
        int32_t bidx[TILE_M];
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntiles; t++) {
            const int64_t r0 = t * TILE_M, m = (n - r0 < TILE_M) ? n - r0 : TILE_M;
            for (int64_t i = 0; i < m; i++) {
                best[i] = second[i] = INFINITY;
                bidx[i] = 0;
            }
            for (int64_t j0 = 0; j0 < k; j0 += TILE_K) {
                const int64_t kk = (k - j0 < TILE_K) ? k - j0 : TILE_K;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)kk, (int)d, -2.0f,
                            x + r0 * d, (int)d, s->c + j0 * d, (int)d, 0.0f, tile, (int)kk);
                for (int64_t i = 0; i < m; i++)
                    tile_argmin(tile + i * kk, s->cnorm + j0, kk, j0, &best[i], &second[i], &bidx[i]);
            }
            for (int64_t i = 0; i < m; i++) {
                double xr = sqrt(xnorm[r0 + i]) + s->cmax;
                double bound = gam * xr * xr; /* also bounds the error of −2x·c alone (ip) */
                const double xn = s->ip ? 0.0 : xnorm[r0 + i];
                if (k > 1 && (double)second[i] - (double)best[i] <= 2 * bound)
                    bidx[i] = recheck(s, x + (r0 + i) * d, xn, (float)(best[i] + xn), bound, tile);
                labels[r0 + i] = bidx[i];
            }
        }
    }
}

/* sj += wi·x, acc += wi·(x − c)² per coordinate, in fp64 (AVX2 where the CPU has it: no
 * fused multiply-add, so every build gives the same bits). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx2", "default")))
#endif
static void accum_row(double *restrict sj, double *restrict acc, const float *restrict xi,
                      const float *restrict cj, double wi, int64_t d)
{
    for (int64_t t = 0; t < d; t++) {
        const double v = xi[t], diff = v - cj[t];
        sj[t] += wi * v;
        acc[t] += wi * (diff * diff);
    }
}

/* One chunk's statistics into s->part: a counting sort of its rows by label, then each
 * cluster's sums and squared distances reduced in row order (deterministic whatever the
 * thread count). w: the chunk's row weights, or NULL (all ones: the same arithmetic, as
 * products by 1 are exact). */
static void update(cpu_ctx *s, const float *x, int64_t n, const int32_t *labels, const float *w)
{
    const int64_t k = s->k, d = s->d;
    double *sums = s->part, *counts = s->part + k * d, *inertia = counts + k;
    memset(s->offsets, 0, (size_t)(k + 1) * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) s->offsets[labels[i] + 1]++;
    for (int64_t j = 0; j < k; j++) s->offsets[j + 1] += s->offsets[j];
    {
        int64_t *next = s->offsets; /* reuse as a cursor, then restore */
        for (int64_t i = 0; i < n; i++) s->order[next[labels[i]]++] = i;
        for (int64_t j = k; j > 0; j--) s->offsets[j] = s->offsets[j - 1];
        s->offsets[0] = 0;
    }
    double *part = (double *)s->tiles; /* per-cluster inertia, k doubles fit in the tiles */
#pragma omp parallel
    {
        /* Squared distances accumulate per coordinate, so the loop over t vectorises and
         * the order of every sum stays fixed. */
        double *acc = malloc((size_t)d * sizeof(double));
#pragma omp for schedule(dynamic, 8)
        for (int64_t j = 0; j < k; j++) {
            double *sj = sums + j * d;
            const float *cj = s->c + j * d;
            double wsum = 0;
            for (int64_t t = 0; t < d; t++) sj[t] = acc[t] = 0;
            const int64_t p1 = s->offsets[j + 1];
            for (int64_t p = s->offsets[j]; p < p1; p++) {
                if (p + PREFETCH_ROWS < p1) { /* the rows come in label order, i.e. scattered:
                                                 ask for them ahead instead of waiting on each */
                    const char *ahead = (const char *)(x + s->order[p + PREFETCH_ROWS] * d);
                    for (int64_t b = 0; b < d * (int64_t)sizeof(float); b += 64) __builtin_prefetch(ahead + b);
                }
                const float *xi = x + s->order[p] * d;
                const double wi = w ? (double)w[s->order[p]] : 1.0;
                wsum += wi;
                accum_row(sj, acc, xi, cj, wi, d);
            }
            double in = 0;
            counts[j] = w ? wsum : (double)(s->offsets[j + 1] - s->offsets[j]);
            if (s->ip) { /* Σ (offset − x·c) = offset·count − (Σ x)·c */
                in = s->offset * counts[j];
                for (int64_t t = 0; t < d; t++) in -= sj[t] * (double)cj[t];
            } else {
                for (int64_t t = 0; t < d; t++) in += acc[t];
            }
            part[j] = in;
        }
        free(acc);
    }
    double total = 0;
    for (int64_t j = 0; j < k; j++) total += part[j];
    *inertia = total;
}

/* stats += part, in chunk order */
static void add_part(cpu_ctx *s)
{
    const int64_t len = fkm_stats_len(s->k, s->d);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < len; i++) s->stats[i] += s->part[i];
}


static double *cpu_stats(void *vp) { return ((cpu_ctx *)vp)->stats; }

static int cpu_stats_to_host(void *vp, double *host, fkm_error *err)
{
    cpu_ctx *s = vp;
    if (host != s->stats) memcpy(host, s->stats, (size_t)fkm_stats_len(s->k, s->d) * sizeof(double));
    return FKM_OK;
}

static int cpu_stats_from_host(void *vp, const double *host, fkm_error *err)
{
    cpu_ctx *s = vp;
    if (host != s->stats) memcpy(s->stats, host, (size_t)fkm_stats_len(s->k, s->d) * sizeof(double));
    return FKM_OK;
}

static int cpu_stats_tail_to_host(void *vp, double *host, int64_t count, fkm_error *err)
{
    cpu_ctx *s = vp;
    int64_t len = fkm_stats_len(s->k, s->d);
    memcpy(host + len - count, s->stats + len - count, (size_t)count * sizeof(double));
    return FKM_OK;
}

static int cpu_finalize(void *vp, double *max_shift, int64_t *n_empty, fkm_error *err)
{
    cpu_ctx *s = vp;
    const int64_t k = s->k, d = s->d;
    const double *sums = s->stats, *counts = s->stats + k * d;
    double shift2 = 0;
    int64_t empty = 0;
    for (int64_t j = 0; j < k; j++) {
        if (counts[j] <= 0) {
            empty++;
            continue;
        }
        double acc = 0, scale = 1; /* normalize: as the CUDA finalize, in fp64 before rounding */
        if (s->normalize) {
            double n2 = 0;
            for (int64_t t = 0; t < d; t++) n2 += (sums[j * d + t] / counts[j]) * (sums[j * d + t] / counts[j]);
            if (n2 > 0) scale = 1.0 / sqrt(n2);
        }
        for (int64_t t = 0; t < d; t++) {
            float v = (float)(sums[j * d + t] / counts[j] * scale);
            double diff = (double)v - s->c[j * d + t];
            acc += diff * diff;
            s->c[j * d + t] = v;
        }
        if (acc > shift2) shift2 = acc;
    }
    *max_shift = sqrt(shift2);
    *n_empty = empty;
    return cpu_set_centroids(s, s->c, k, err);
}

static int cpu_labels(void *vp, int32_t *out, fkm_error *err)
{
    cpu_ctx *s = vp;
    memcpy(out, s->labels, (size_t)s->n * sizeof(int32_t));
    return FKM_OK;
}

/* The rows of the shard chunk by chunk, as float32 with fp64 norms: f(x, xnorm, m, r0, arg)
 * for each chunk [r0, r0 + m). *tio gets the time spent waiting for rows. */
static int for_each_chunk(cpu_ctx *s, int (*f)(const float *, const double *, int64_t, int64_t, void *),
                          void *arg, double *tio, fkm_error *err)
{
    const int64_t d = s->d;
    if (s->pf) fkm_prefetch_begin(s->pf);
    for (int64_t r0 = 0; r0 < s->n; r0 += s->chunk) {
        int64_t m = s->n - r0 < s->chunk ? s->n - r0 : s->chunk;
        const float *x = s->x ? s->x + r0 * d : NULL;
        const double *xn = s->x ? s->xnorm + r0 : s->xnorm;
        if (s->pf) {
            const void *rows;
            int64_t pr0, pm;
            double w;
            int st = fkm_prefetch_next(s->pf, &rows, &pr0, &pm, &w, err);
            if (st) return st;
            double t0 = fkm_now_ms();
            to_f32(rows, s->src_dt, pm, d, s->cx, s->xnorm);
            fkm_prefetch_release(s->pf);
            if (tio) *tio += w + fkm_now_ms() - t0;
            x = s->cx;
        }
        int st = f(x, xn, m, r0, arg);
        if (st) return st;
    }
    return FKM_OK;
}

typedef struct step_arg {
    cpu_ctx *s;
    double ta, tu;
} step_arg;

/* One chunk of a step: labels, then the chunk's statistics added in chunk order. */
static int step_chunk(const float *x, const double *xn, int64_t m, int64_t r0, void *vp)
{
    step_arg *a = vp;
    cpu_ctx *s = a->s;
    double t0 = fkm_now_ms();
    cset cs = fit_set(s);
    assign(&cs, x, xn, m, s->labels + r0);
    double t1 = fkm_now_ms();
    update(s, x, m, s->labels + r0, s->w ? s->w + r0 : NULL);
    add_part(s);
    a->ta += t1 - t0;
    a->tu += fkm_now_ms() - t1;
    return FKM_OK;
}

static int cpu_step(void *vp, fkm_step_times *t, fkm_error *err)
{
    cpu_ctx *s = vp;
    step_arg a = {s, 0, 0};
    double tio = 0;
    memset(s->stats, 0, (size_t)fkm_stats_len(s->k, s->d) * sizeof(double));
    int st = for_each_chunk(s, step_chunk, &a, &tio, err);
    if (st) return st;
    if (t) {
        t->ms_assign = a.ta;
        t->ms_update = a.tu;
        t->ms_io = tio;
    }
    return FKM_OK;
}

typedef struct nearest_arg {
    cset cs;
    double offset;   /* ip: a row's distance is offset − x·c */
    float *dist;
    int32_t *labels; /* n, or NULL: then lab (one chunk) */
    int32_t *lab;
} nearest_arg;

static int nearest_chunk(const float *x, const double *xn, int64_t m, int64_t r0, void *vp)
{
    nearest_arg *a = vp;
    int32_t *lab = a->labels ? a->labels + r0 : a->lab;
    assign(&a->cs, x, xn, m, lab);
    const int64_t d = a->cs.d;
    const double off = a->offset;
    if (a->cs.ip) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < m; i++) a->dist[r0 + i] = (float)(off + negdot64(x + i * d, a->cs.c + lab[i] * d, d));
    } else {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < m; i++) a->dist[r0 + i] = (float)dist64(x + i * d, a->cs.c + lab[i] * d, d);
    }
    return FKM_OK;
}

static int cpu_nearest(void *vp, const float *c, int64_t m, float *dist, int32_t *labels,
                       fkm_error *err)
{
    cpu_ctx *s = vp;
    const int64_t d = s->d;
    if (m < 1 || m > INT32_MAX)
        return fkm_fail(err, FKM_ERUNTIME, "cpu backend: nearest() of %lld centroids", (long long)m);
    nearest_arg a;
    memset(&a, 0, sizeof a);
    size_t stride = (size_t)TILE_M * TILE_K;
    if (stride < (size_t)m) stride = (size_t)m;
    float *cn = fkm_malloc((size_t)m * sizeof(float), "centroid norms", err);
    float *tiles = cn ? fkm_malloc(stride * (size_t)s->nthreads * sizeof(float), "distance tiles", err) : NULL;
    int32_t *lab = tiles && !labels ? fkm_malloc((size_t)(s->chunk > 0 ? s->chunk : 1) * sizeof(int32_t), "labels", err)
                                    : NULL;
    if (!tiles || (!labels && !lab)) {
        free(cn), free(tiles);
        return FKM_ENOMEM;
    }
    double cmax = centroid_norms(c, m, d, s->ip, cn);
    cset cs = {c, cn, cmax, m, d, tiles, stride, s->ip};
    a.cs = cs;
    a.offset = s->offset;
    a.dist = dist;
    a.labels = labels;
    a.lab = lab;
    int st = for_each_chunk(s, nearest_chunk, &a, NULL, err);
    free(cn), free(tiles), free(lab);
    return st;
}

static int cpu_set_weights(void *vp, const float *w, fkm_error *err)
{
    cpu_ctx *s = vp;
    free(s->w);
    s->w = NULL;
    if (!w) return FKM_OK;
    if (!(s->w = fkm_malloc((size_t)(s->n > 0 ? s->n : 1) * sizeof(float), "row weights", err)))
        return FKM_ENOMEM;
    memcpy(s->w, w, (size_t)s->n * sizeof(float));
    s->bytes += (size_t)s->n * sizeof(float);
    return FKM_OK;
}

static int cpu_changed(void *vp, int64_t *count, fkm_error *err)
{
    cpu_ctx *s = vp;
    if (!s->prev) {
        s->prev = fkm_malloc((size_t)(s->n > 0 ? s->n : 1) * sizeof(int32_t), "previous labels", err);
        if (!s->prev) return FKM_ENOMEM;
        s->bytes += (size_t)s->n * sizeof(int32_t);
        *count = -1;
    } else {
        int64_t c = 0;
#pragma omp parallel for schedule(static) reduction(+ : c)
        for (int64_t i = 0; i < s->n; i++) c += s->labels[i] != s->prev[i];
        *count = c;
    }
    memcpy(s->prev, s->labels, (size_t)s->n * sizeof(int32_t));
    return FKM_OK;
}

static size_t cpu_peak_bytes(void *vp) { return ((cpu_ctx *)vp)->bytes; }

static void cpu_destroy(void *vp)
{
    cpu_ctx *s = vp;
    if (!s) return;
    fkm_prefetch_destroy(s->pf);
    free(s->x);
    free(s->cx);
    free(s->part);
    free(s->xnorm);
    free(s->c);
    free(s->cnorm);
    free(s->labels);
    free(s->w);
    free(s->prev);
    free(s->stats);
    free(s->order);
    free(s->offsets);
    free(s->tiles);
    free(s);
}

int fkm_backend_cpu_create(fkm_backend *b, int64_t k, int64_t d, fkm_precision prec,
                           fkm_metric metric, fkm_error *err)
{
    if (metric != FKM_METRIC_L2 && metric != FKM_METRIC_COSINE && metric != FKM_METRIC_IP)
        return fkm_fail(err, FKM_EINPUT, "cpu backend: unknown metric %d", (int)metric);
#ifdef FKM_HAVE_OPENBLAS_THREADS
    /* Threads come from OpenMP over tiles; BLAS runs one thread per tile. */
    openblas_set_num_threads(1);
#endif
    cpu_ctx *s = fkm_calloc(1, sizeof *s, "the CPU backend", err);
    if (!s) return FKM_ENOMEM;
    s->k = k;
    s->d = d;
    s->ip = metric != FKM_METRIC_L2;
    s->offset = metric == FKM_METRIC_COSINE ? 1.0 : 0.0;
    s->normalize = metric == FKM_METRIC_COSINE;
    s->nthreads = omp_get_max_threads();
    size_t tile_floats = (size_t)TILE_M * TILE_K;
    if (tile_floats * sizeof(float) < (size_t)k * sizeof(double)) tile_floats = (size_t)k * 2;
    if (tile_floats < (size_t)k) tile_floats = (size_t)k; /* recheck's k dots */
    s->tile_stride = tile_floats;
    s->c = fkm_malloc((size_t)(k * d) * sizeof(float), "centroids", err);
    s->cnorm = fkm_malloc((size_t)k * sizeof(float), "centroid norms", err);
    s->stats = fkm_calloc((size_t)fkm_stats_len(k, d), sizeof(double), "cluster sums", err);
    s->part = fkm_calloc((size_t)fkm_stats_len(k, d), sizeof(double), "cluster sums", err);
    s->offsets = fkm_malloc((size_t)(k + 1) * sizeof(int64_t), "cluster offsets", err);
    s->tiles = fkm_malloc(tile_floats * (size_t)s->nthreads * sizeof(float), "distance tiles", err);
    if (!s->c || !s->cnorm || !s->stats || !s->part || !s->offsets || !s->tiles) {
        cpu_destroy(s);
        return FKM_ENOMEM;
    }
    s->bytes = (size_t)k * d * (sizeof(float) + sizeof(double)) + tile_floats * s->nthreads * 4;
    memset(b, 0, sizeof *b);
    b->name = "cpu";
    b->ctx = s;
    b->stats_on_device = 0;
    b->set_source = cpu_set_source;
    b->set_centroids = cpu_set_centroids;
    b->get_centroids = cpu_get_centroids;
    b->step = cpu_step;
    b->stats = cpu_stats;
    b->stats_to_host = cpu_stats_to_host;
    b->stats_from_host = cpu_stats_from_host;
    b->stats_tail_to_host = cpu_stats_tail_to_host;
    b->finalize = cpu_finalize;
    b->labels = cpu_labels;
    b->peak_bytes = cpu_peak_bytes;
    b->nearest = cpu_nearest;
    b->changed = cpu_changed;
    b->set_weights = cpu_set_weights;
    b->destroy = cpu_destroy;
    return FKM_OK;
}
