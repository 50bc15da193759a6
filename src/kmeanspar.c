/* k-means|| (Bahmani, Moseley, Vattani, Kumar, Vassilvitskii, 2012): the scalable init.
 * A few passes over all rows, each keeping about ell rows drawn with probability ∝ D², then a
 * weighted k-means++ on the few candidates. See init.h for the contract. */
#include "comm.h"
#include "half.h"
#include "init.h"
#include "kmeanspp.h"
#include "rng.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cands {
    float *x;     /* m×d */
    int64_t *ids; /* m global row numbers */
    int64_t m, cap;
} cands;

static int cands_grow(cands *c, int64_t m, int64_t d, fkm_error *err)
{
    if (m <= c->cap) return FKM_OK;
    int64_t cap = c->cap ? c->cap : 64;
    while (cap < m) cap *= 2;
    float *x = realloc(c->x, (size_t)(cap * d) * sizeof(float));
    if (x) c->x = x;
    int64_t *ids = x ? realloc(c->ids, (size_t)cap * sizeof(int64_t)) : NULL;
    if (ids) c->ids = ids;
    if (!x || !ids)
        return fkm_fail(err, FKM_ENOMEM, "out of host memory: %lld k-means|| candidates of %lld values",
                        (long long)cap, (long long)d);
    c->cap = cap;
    return FKM_OK;
}

/* Append every rank's selected local rows sel[0..ns) to c, in global row order (rank order,
 * then local order), on every rank. Collective. */
static int gather_selected(fkm_comm *comm, const fkm_rowsrc *src, int64_t row0, const int64_t *sel,
                           int64_t ns, cands *c, fkm_error *err)
{
    const int64_t d = src->d;
    double *cnt = fkm_calloc((size_t)comm->size, sizeof(double), "candidate counts", err);
    int s = fkm_comm_agree(comm, err);
    if (!s) {
        cnt[comm->rank] = (double)ns;
        s = fkm_comm_allreduce_sum_f64(comm, cnt, comm->size, err);
    }
    int64_t off = 0, total = 0;
    for (int r = 0; !s && r < comm->size; r++) {
        if (r < comm->rank) off += (int64_t)cnt[r];
        total += (int64_t)cnt[r];
    }
    free(cnt);
    if (s || total == 0) return s;
    /* global ids first (exact in a double below 2^53), then the rows */
    int64_t *ids = fkm_malloc((size_t)total * sizeof(int64_t), "candidate ids", err);
    double *gid = ids ? fkm_calloc((size_t)total, sizeof(double), "candidate ids", err) : NULL;
    if (gid)
        for (int64_t j = 0; j < ns; j++) gid[off + j] = (double)(row0 + sel[j]);
    if (!(s = fkm_comm_agree(comm, err))) s = fkm_comm_allreduce_sum_f64(comm, gid, total, err);
    if (!s)
        for (int64_t j = 0; j < total; j++) ids[j] = (int64_t)gid[j];
    free(gid);
    if (!s) {
        cands_grow(c, c->m + total, d, err);
        s = fkm_comm_agree(comm, err);
    }
    if (!s) s = fkm_gather_rows(comm, src, row0, ids, total, c->x + c->m * d, err);
    if (!s) {
        memcpy(c->ids + c->m, ids, (size_t)total * sizeof(int64_t));
        c->m += total;
    }
    free(ids);
    return s;
}

/* The first candidate: one global row drawn with probability ∝ w (uniformly without weights),
 * by the largest key log(u_i) / w_i, u_i uniform per global row (Efraimidis and Spirakis):
 * each key depends on the row alone, so the draw is the same for any split over ranks. Ties
 * (none in practice) go to the lowest row. Rows of weight 0 have key −∞ and are never drawn
 * (the weights were checked: not all 0). Collective. */
static int first_row(fkm_comm *comm, const float *w, int64_t row0, int64_t nl, int64_t n,
                     uint64_t seed, int64_t *first, fkm_error *err)
{
    double v[2] = {-INFINITY, -INFINITY}; /* the best key, then −(its row) */
    for (int64_t i = 0; i < nl; i++) {
        const double wi = w ? (double)w[i] : 1.0;
        if (!(wi > 0)) continue;
        const double u = fkm_rand_unit(seed, FKM_STREAM_KMPAR, (uint64_t)(row0 + i));
        const double key = log(u) / wi; /* u = 0: −∞, the least likely */
        if (key > v[0] || v[1] == -INFINITY) v[0] = key, v[1] = -(double)(row0 + i);
    }
    double best = v[0];
    int s = fkm_comm_allreduce_max_f64(comm, &best, 1, err);
    if (s) return s;
    double id = v[0] == best && v[1] != -INFINITY ? v[1] : -(double)n; /* the lowest row holding it */
    if ((s = fkm_comm_allreduce_max_f64(comm, &id, 1, err))) return s;
    *first = (int64_t)-id;
    if (*first < 0 || *first >= n) *first = 0; /* no row of positive weight: cannot happen */
    return FKM_OK;
}

int fkm_kmeans_par(fkm_comm *comm, fkm_backend *be, const fkm_rowsrc *src, const float *w,
                   int64_t row0, int64_t n, int64_t k, uint64_t seed, int rounds, double ell,
                   int verbose, float *out, fkm_error *err)
{
    const int64_t d = src->d, nl = src->n;
    cands c = {NULL, NULL, 0, 0};
    if (!be->nearest) {
        fkm_fail(err, FKM_EINPUT, "--init kmeans||: the %s backend cannot compute distances to a "
                 "candidate set", be->name);
        return fkm_comm_agree(comm, err);
    }
    float *dist = fkm_malloc((size_t)(nl > 0 ? nl : 1) * sizeof(float), "k-means|| distances", err);
    int32_t *lab = dist ? fkm_malloc((size_t)(nl > 0 ? nl : 1) * sizeof(int32_t), "k-means|| labels", err) : NULL;
    int64_t *sel = lab ? fkm_malloc((size_t)(nl > 0 ? nl : 1) * sizeof(int64_t), "k-means|| draws", err) : NULL;
    int s = fkm_comm_agree(comm, err);
    int64_t first = 0;
    if (!s) s = first_row(comm, w, row0, nl, n, seed, &first, err);
    if (!s) {
        cands_grow(&c, 1, d, err);
        s = fkm_comm_agree(comm, err);
    }
    if (!s) {
        c.ids[0] = first;
        s = fkm_gather_rows(comm, src, row0, &first, 1, c.x, err);
        c.m = 1;
    }
    int done_rounds = 0;
    for (int r = 1; r <= rounds && !s; r++) {
        if (nl > 0) be->nearest(be->ctx, c.x, c.m, dist, NULL, err);
        if ((s = fkm_comm_agree(comm, err))) break;
        double phi = 0;
        for (int64_t i = 0; i < nl; i++) phi += w ? (double)w[i] * dist[i] : (double)dist[i];
        if ((s = fkm_comm_allreduce_sum_f64(comm, &phi, 1, err))) break;
        if (!(phi > 0)) break; /* every row is a candidate already */
        int64_t ns = 0;
        for (int64_t i = 0; i < nl; i++) {
            double u = fkm_rand_unit(seed, FKM_STREAM_KMPAR, (uint64_t)r * (uint64_t)n + (uint64_t)(row0 + i));
            if (u * phi < ell * (w ? (double)w[i] * dist[i] : (double)dist[i])) sel[ns++] = i;
        }
        s = gather_selected(comm, src, row0, sel, ns, &c, err);
        done_rounds = r;
    }
    if (!s && c.m < k) {
        /* too few candidates: all of them, then rows drawn uniformly that are not among them */
        int64_t want = k + c.m < n ? k + c.m : n, have = c.m;
        int64_t *ids = fkm_malloc((size_t)want * sizeof(int64_t), "k-means|| fill", err);
        int64_t add = 0;
        if (ids && fkm_sample_rows_stream(n, want, seed, FKM_STREAM_KMPAR, ids, err) == FKM_OK) {
            for (int64_t j = 0; j < want && have + add < k; j++) {
                int dup = 0;
                for (int64_t q = 0; q < have && !dup; q++) dup = c.ids[q] == ids[j];
                if (!dup) ids[add++] = ids[j];
            }
            memcpy(out, c.x, (size_t)(have * d) * sizeof(float));
        }
        if (!(s = fkm_comm_agree(comm, err)))
            s = fkm_gather_rows(comm, src, row0, ids, add, out + have * d, err);
        free(ids);
        if (!s && comm->rank == 0 && verbose > 1)
            printf("init k-means||: %d rounds gave %lld candidates (< k): %lld random rows added\n",
                   done_rounds, (long long)have, (long long)(k - have));
    } else if (!s) {
        /* weights: the rows (their weights) nearest to each candidate, summed over ranks */
        double *cw = fkm_calloc((size_t)c.m, sizeof(double), "k-means|| weights", err);
        if (cw && nl > 0) be->nearest(be->ctx, c.x, c.m, dist, lab, err);
        if (!(s = fkm_comm_agree(comm, err))) {
            for (int64_t i = 0; i < nl; i++) cw[lab[i]] += w ? (double)w[i] : 1.0;
            s = fkm_comm_allreduce_sum_f64(comm, cw, c.m, err);
        }
        if (!s) fkm_kmeanspp(c.x, cw, c.m, d, k, seed, 0, out, NULL, err);
        s = fkm_comm_agree(comm, err);
        free(cw);
        if (!s && comm->rank == 0 && verbose > 1)
            printf("init k-means||: %d rounds, %lld candidates, weighted k-means++ picked %lld\n",
                   done_rounds, (long long)c.m, (long long)k);
    }
    free(dist), free(lab), free(sel), free(c.x), free(c.ids);
    return s;
}
