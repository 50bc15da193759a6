/* The CUDA backend: the fkm_backend table (src/backend.h) over the kernels of
 * fkm_kernels.h, on one device and one stream.
 *
 * Device state: the rows in the mode's compute type (leading dimension fkm_k_ld) and their
 * norms; the centroids as dense float32 (c32, what finalize updates and get/set_centroids
 * move) plus their compute-type copy and norms, refreshed after every change; labels and min
 * distances of the last step (n each); the stats buffer [sums k×d | counts k | inertia],
 * which stays on the device (stats_on_device = 1).
 *
 * Residency (set_source): DEVICE keeps every row on the GPU, converted once. HOST and FILE
 * keep one chunk of chunk_rows rows (and its labels and distances) on the GPU and stream the
 * rows every step, each chunk's labels going to a pinned host array as they are made: HOST from a
 * pinned host copy of the shard made once, FILE through the read-ahead (prefetch.h): a reader
 * thread fills three pinned chunk buffers ahead of the GPU, and a buffer goes back to it once
 * its host-to-device copy has completed. Streamed tiers keep the n row norms on the device
 * when they fit (computed in the first pass, by the same kernel on the same rows, then
 * reused), else recompute each chunk's every pass. The
 * host-to-device copies run on a second stream into two device staging buffers, so the copy
 * of chunk c+1 overlaps the conversion, assignment and update of chunk c (events order each
 * staging buffer's reuse after its conversion, and each pinned buffer's after its copy). In every residency
 * each chunk's statistics are computed on their own and added in chunk order, so results
 * depend on chunk_rows but not on the residency. set_data(x) is set_source with the rows
 * of x, DEVICE, one chunk.
 *
 * Synchronisation: step() only enqueues (per chunk: upload, convert, norms; assign; update;
 * add), except for the waits that streaming needs; the host waits in the calls that must
 * return host data (stats_to_host, stats_tail_to_host, finalize, labels, get_centroids).
 * The step's times (assign and update, summed over chunks) are read from its events at the
 * first of stats_to_host, stats_tail_to_host or finalize that follows it and written into
 * the fkm_step_times the step was given (see backend.h). The stream is an ordinary
 * (blocking) stream, returned by stream() for NCCL. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <new>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cuda_check.h"
#include "fkm_kernels.h"
#include "prefetch.h"
#include "rowsrc.h"
#include "util.h"

#include <vector>

namespace {

constexpr size_t STAGE_BYTES = 64ull << 20; /* upload staging buffer at most */
constexpr int FILE_BUFS = 3; /* FILE: pinned read-ahead buffers: one being copied to the device
                                while the reader fills the next two */

struct Buf {
    void *p = nullptr;
    size_t bytes = 0;
};

struct Ctx {
    int device = 0;
    int64_t k = 0, d = 0;
    fkm_precision prec = FKM_PREC_AUTO;
    fkm_metric metric = FKM_METRIC_L2;
    fkm_kmode mode = FKM_K_EXACT;
    int mode_known = 0;
    int ldx = 0, ldc = 0;
    int64_t n = 0;
    int have_data = 0, have_c = 0;
    fkm_residency res = FKM_RES_DEVICE;
    int64_t chunk = 1;                 /* rows per statistics chunk */
    fkm_rowsrc src;                    /* HOST / FILE: where the rows come from each step */
    cudaStream_t s = nullptr;
    std::vector<cudaEvent_t> ev;       /* 3 per chunk: before assign, before update, after */
    int ev_used = 0;
    fkm_step_times *pending = nullptr; /* times to fill at the next synchronising call */
    Buf x, xnorm, labels, mind;        /* rows (all, or one chunk), labels and distances (all) */
    int norm_cache = 0;                /* HOST / FILE: xnorm holds all n norms (else one chunk's) */
    int norms_ready = 0;               /* ... and a whole pass has computed them */
    Buf stage[2];                      /* HOST / FILE: chunks as read (f32 or f16), on the device */
    fkm_prefetch *pf = nullptr;        /* FILE: the read-ahead thread and its pinned buffers */
    void *hshard = nullptr;            /* HOST: every row, pinned (as the source gave them) */
    const void *hview = nullptr;       /* HOST: the caller's pinned rows, or hshard */
    int32_t *h_labels = nullptr;       /* HOST / FILE: every label, pinned; the device holds a chunk's */
    int32_t *h_prev = nullptr;         /* HOST / FILE: the previous step's labels, for changed() */
    cudaStream_t cs = nullptr;         /* HOST / FILE: the copy stream */
    cudaEvent_t copied[2] = {nullptr, nullptr};   /* copy into stage[i] done */
    cudaEvent_t converted[2] = {nullptr, nullptr}; /* stage[i] read by its conversion */
    int pre0 = 0;                      /* HOST: chunk 0 of the next pass is in stage[0] already
                                          (copied during the last pass, event copied[0]) */
    size_t pin_bytes = 0;
    Buf c32, c, cnorm;                 /* centroids */
    Buf stats, part, out2;             /* device results; part: one chunk's stats */
    double *h_out2 = nullptr;          /* pinned, 2 doubles */
    double *h_tail = nullptr;          /* pinned, k + 1 doubles: counts and inertia */
    double *tail_dst = nullptr;        /* where the pending tail copy goes at the next sync */
    int64_t tail_count = 0;
    Buf aws, uws;                      /* assign / update workspaces (one chunk) */
    Buf prev, cnt;                     /* changed(): labels at its last call (n), a counter */
    int have_prev = 0;
    Buf w;                             /* set_weights: the row weights (DEVICE: all n; streamed: a chunk's) */
    float *h_w = nullptr;              /* streamed: all n weights, pinned, copied a chunk at a time */
    size_t cur = 0, peak = 0;
};

int dev_alloc(Ctx *x, Buf *b, size_t bytes, const char *what, fkm_error *err)
{
    if (b->p) {
        cudaFree(b->p);
        x->cur -= b->bytes;
        b->p = nullptr;
        b->bytes = 0;
    }
    int s = fkm_cuda_malloc(&b->p, bytes, what, err);
    if (s) return s;
    b->bytes = bytes;
    x->cur += bytes;
    if (x->cur > x->peak) x->peak = x->cur;
    return FKM_OK;
}

void dev_free(Ctx *x, Buf *b)
{
    if (b->p) cudaFree(b->p);
    x->cur -= b->bytes;
    b->p = nullptr;
    b->bytes = 0;
}

fkm_kmode pick_mode(fkm_precision prec, fkm_dtype dt)
{
    switch (prec) {
    case FKM_PREC_EXACT: return FKM_K_EXACT;
    case FKM_PREC_TF32: return FKM_K_TF32;
    case FKM_PREC_FP16: return FKM_K_F16;
    case FKM_PREC_BF16: return FKM_K_BF16;
    default: return dt == FKM_DT_F16 ? FKM_K_F16 : FKM_K_EXACT;
    }
}

/* The kernels' metric: COSINE and IP both take the largest x·c; a row's distance is
 * 1 − x·c (COSINE) or −x·c (IP). */
void set_metric(const Ctx *x, fkm_assign_args *a)
{
    a->metric = x->metric == FKM_METRIC_L2 ? FKM_KM_L2 : FKM_KM_IP;
    a->ip_offset = x->metric == FKM_METRIC_COSINE ? 1.0f : 0.0f;
}

/* The compute-type copy of c32 and its norms (after any change of c32). */
int refresh_centroids(Ctx *x, fkm_error *err)
{
    if (!x->mode_known || !x->have_c) return FKM_OK;
    FKM_CUDA_TRY(err, fkm_k_convert_rows(x->mode, (const float *)x->c32.p, x->k, (int)x->d, x->c.p,
                                         x->ldc, (fkm_stream)x->s));
    FKM_CUDA_TRY(err, fkm_k_row_norms(x->mode, x->c.p, x->k, (int)x->d, x->ldc,
                                      (float *)x->cnorm.p, (fkm_stream)x->s));
    return FKM_OK;
}

/* Set the mode (and the compute-type centroid buffer that depends on it). */
int set_mode(Ctx *x, fkm_kmode mode, fkm_error *err)
{
    if (x->mode_known && x->mode == mode) return FKM_OK;
    x->mode = mode;
    x->mode_known = 1;
    x->ldc = fkm_k_ld(mode, (int)x->d);
    int s = dev_alloc(x, &x->c, (size_t)x->k * x->ldc * fkm_k_elem_bytes(mode),
                      "the centroids (compute type)", err);
    if (s) return s;
    return refresh_centroids(x, err);
}

/* Write the last step's times where the step was asked to (after a synchronisation). */
void fill_times(Ctx *x)
{
    if (!x->pending) return;
    double a = 0, u = 0;
    for (int c = 0; c + 2 < x->ev_used; c += 3) {
        float ta = 0, tu = 0;
        if (cudaEventElapsedTime(&ta, x->ev[c], x->ev[c + 1]) == cudaSuccess &&
            cudaEventElapsedTime(&tu, x->ev[c + 1], x->ev[c + 2]) == cudaSuccess) {
            a += ta;
            u += tu;
        }
    }
    (void)cudaGetLastError();
    x->pending->ms_assign = a;
    x->pending->ms_update = u;
    x->pending = nullptr;
}

int sync(Ctx *x, fkm_error *err)
{
    FKM_CUDA_TRY(err, cudaStreamSynchronize(x->s));
    if (x->tail_dst) { /* a stats_tail_to_host copy has landed in the pinned buffer */
        memcpy(x->tail_dst, x->h_tail, (size_t)x->tail_count * sizeof(double));
        x->tail_dst = nullptr;
    }
    return FKM_OK;
}

#define CTX(vp) Ctx *x = static_cast<Ctx *>(vp)
#define ON_DEVICE(x) FKM_CUDA_TRY(err, cudaSetDevice((x)->device))

void free_rows(Ctx *x)
{
    x->have_data = 0;
    x->pending = nullptr;
    Buf *bufs[] = {&x->x, &x->xnorm, &x->labels, &x->mind, &x->stage[0], &x->stage[1], &x->part, &x->aws, &x->uws, &x->prev, &x->w};
    x->have_prev = 0;
    if (x->pre0 && x->cs) cudaStreamSynchronize(x->cs); /* before stage[0] goes */
    x->pre0 = 0;
    for (Buf *b : bufs) dev_free(x, b);
    if (x->h_w) cudaFreeHost(x->h_w);
    x->h_w = nullptr;
    x->norm_cache = x->norms_ready = 0;
    if (x->pf) { /* no copy may still read its buffers; then join the reader */
        if (x->cs) cudaStreamSynchronize(x->cs);
        fkm_prefetch_destroy(x->pf);
        x->pf = nullptr;
    }
    if (x->hshard) cudaFreeHost(x->hshard);
    x->hshard = nullptr;
    if (x->h_labels) cudaFreeHost(x->h_labels);
    x->h_labels = nullptr;
    free(x->h_prev);
    x->h_prev = nullptr;
    x->hview = nullptr;
    x->pin_bytes = 0;
}

/* Upload rows [r0, r0 + m) of the source (host type) from host memory `rows` into the
 * compute-type buffer at dst (row r0 - base of it), through the device staging buffer. */
int upload(Ctx *x, const void *rows, int64_t m, void *dst, void *stage, fkm_error *err)
{
    const size_t rb = fkm_rowsrc_row_bytes(&x->src);
    FKM_CUDA_TRY(err, cudaMemcpyAsync(stage, rows, (size_t)m * rb, cudaMemcpyHostToDevice, x->s));
    const int d = (int)x->d;
    FKM_CUDA_TRY(err, x->src.dt == FKM_DT_F16
                          ? fkm_k_convert_rows_f16(x->mode, (const uint16_t *)stage, m, d, dst,
                                                   x->ldx, (fkm_stream)x->s)
                          : fkm_k_convert_rows(x->mode, (const float *)stage, m, d, dst, x->ldx,
                                               (fkm_stream)x->s));
    return FKM_OK;
}

/* FILE with rows in host memory: the read-ahead copies them out (as a read would). */
int resident_read(void *ctx, int64_t r0, int64_t m, void *dst, fkm_error *err)
{
    (void)err;
    const Ctx *x = static_cast<const Ctx *>(ctx);
    const size_t rb = fkm_rowsrc_row_bytes(&x->src);
    memcpy(dst, (const char *)x->src.resident + (size_t)r0 * rb, (size_t)m * rb);
    return FKM_OK;
}

/* The read-ahead's buffers: pinned, so that copies from them run at full rate and async. */
void *pin_alloc(size_t bytes, void *user)
{
    (void)user;
    void *p = nullptr;
    if (cudaMallocHost(&p, bytes ? bytes : 1) != cudaSuccess) {
        (void)cudaGetLastError(); /* not sticky; the read-ahead reports the failure */
        return nullptr;
    }
    return p;
}

void pin_free(void *p, void *user)
{
    (void)user;
    if (cudaFreeHost(p) != cudaSuccess) (void)cudaGetLastError(); /* freeing: nothing to do */
}

/* Streamed tiers: keep every row's norm on the device (xnorm of n floats) when that fits in
 * the free device memory with a margin (for what comes later: nearest()'s buffers, the
 * communicator), so that only the first pass computes them; else xnorm stays one chunk's and
 * every pass recomputes them. Either way the same kernel on the same rows: same bits. */
int keep_norms(Ctx *x, fkm_error *err)
{
    const int64_t n = x->n;
    if (n <= 0) return FKM_OK;
    if (n <= x->chunk) { /* one chunk: xnorm holds every row's already */
        x->norm_cache = 1;
        return FKM_OK;
    }
    size_t fr = 0, tot = 0;
    FKM_CUDA_TRY(err, cudaMemGetInfo(&fr, &tot));
    const double margin = (double)tot / 20 > (double)(512u << 20) ? (double)tot / 20 : (double)(512u << 20);
    const size_t bytes = (size_t)n * sizeof(float);
    if ((double)bytes + margin > (double)fr) return FKM_OK;
    Buf all;
    fkm_error e2;
    if (dev_alloc(x, &all, bytes, "the row norms", &e2) != FKM_OK) return FKM_OK; /* recompute */
    dev_free(x, &x->xnorm);
    x->xnorm = all;
    x->norm_cache = 1;
    return FKM_OK;
}

int cu_set_source(void *vp, const fkm_rowsrc *src, fkm_residency res, int64_t chunk_rows,
                  fkm_error *err)
{
    CTX(vp);
    ON_DEVICE(x);
    const int64_t n = src->n, d = x->d;
    if (src->d != d)
        return fkm_fail(err, FKM_EINPUT, "cuda backend: rows have %lld columns, the backend was "
                        "made for %lld", (long long)src->d, (long long)d);
    if (n < 0 || (n > 0 && !src->resident && !src->read))
        return fkm_fail(err, FKM_EINPUT, "cuda backend: bad row source (%lld rows)", (long long)n);
    int s;
    free_rows(x);
    if ((s = set_mode(x, pick_mode(x->prec, src->dt), err))) return s;
    const fkm_kmode m = x->mode;
    x->n = n;
    x->src = *src;
    x->res = res == FKM_RES_HOST || res == FKM_RES_FILE ? res : FKM_RES_DEVICE;
    x->chunk = chunk_rows < 1 ? 1 : chunk_rows;
    if (x->chunk > n) x->chunk = n > 0 ? n : 1;
    x->ldx = fkm_k_ld(m, (int)d);
    const size_t eb = (size_t)fkm_k_elem_bytes(m), rb = fkm_rowsrc_row_bytes(src);
    const int64_t nc = n > 0 ? (n + x->chunk - 1) / x->chunk : 0; /* statistics chunks */
    const int64_t xrows = x->res == FKM_RES_DEVICE ? n : (n > 0 ? x->chunk : 0);
    if ((s = dev_alloc(x, &x->x, (size_t)xrows * x->ldx * eb, "the rows (compute type)", err)) ||
        (s = dev_alloc(x, &x->xnorm, (size_t)xrows * sizeof(float), "the row norms", err)) ||
        (s = dev_alloc(x, &x->labels, (size_t)xrows * sizeof(int32_t), "the labels", err)) ||
        (s = dev_alloc(x, &x->mind, (size_t)xrows * sizeof(float), "the min distances", err)))
        return s;
    const int64_t cm = n > 0 ? x->chunk : 0;
    size_t ab = cm > 0 ? fkm_k_assign_workspace(m, cm, x->k, (int)d) : 0;
    size_t ub = fkm_k_update_workspace(cm, x->k, (int)d);
    if (ub == SIZE_MAX)
        return fkm_fail(err, FKM_ERUNTIME, "%s:%d: sizing the update workspace failed (CUB)",
                        __FILE__, __LINE__);
    if ((s = dev_alloc(x, &x->aws, ab, "the assign workspace", err)) ||
        (s = dev_alloc(x, &x->uws, ub, "the update workspace", err)) ||
        (s = dev_alloc(x, &x->part, nc > 1 ? x->stats.bytes : 0, "a chunk's statistics", err)))
        return s;
    /* events: 3 per chunk */
    while ((int64_t)x->ev.size() < 3 * (nc > 0 ? nc : 1)) {
        cudaEvent_t e;
        FKM_CUDA_TRY(err, cudaEventCreate(&e));
        x->ev.push_back(e);
    }
    if (x->res != FKM_RES_DEVICE) {
        /* streamed: two device staging chunks (and, for FILE, the read-ahead's pinned chunks) */
        for (int i = 0; i < 2; i++) {
            if ((s = dev_alloc(x, &x->stage[i], (size_t)cm * rb, "the upload staging buffers", err)))
                return s;
            if (!x->copied[i]) {
                FKM_CUDA_TRY(err, cudaEventCreateWithFlags(&x->copied[i], cudaEventDisableTiming));
                FKM_CUDA_TRY(err, cudaEventCreateWithFlags(&x->converted[i], cudaEventDisableTiming));
            }
        }
        if (!x->cs) FKM_CUDA_TRY(err, cudaStreamCreateWithFlags(&x->cs, cudaStreamNonBlocking));
        /* labels come to the host chunk by chunk: the device never holds all n */
        if (n > 0) FKM_CUDA_TRY(err, cudaMallocHost((void **)&x->h_labels, (size_t)n * sizeof(int32_t)));
        cudaPointerAttributes pa;
        const bool pinned = src->resident && cudaPointerGetAttributes(&pa, src->resident) == cudaSuccess &&
                            pa.type == cudaMemoryTypeHost;
        (void)cudaGetLastError();
        if (x->res == FKM_RES_HOST && n > 0 && pinned) {
            /* the caller's rows are pinned already: stream from them, no copy */
            x->hview = src->resident;
        } else if (x->res == FKM_RES_HOST && n > 0) {
            /* one pinned copy of the shard, filled in pieces; the source is not used again */
            FKM_CUDA_TRY(err, cudaMallocHost(&x->hshard, (size_t)n * rb));
            x->pin_bytes = (size_t)n * rb;
            int64_t piece = (int64_t)(STAGE_BYTES / rb);
            if (piece < 1) piece = 1;
            for (int64_t r0 = 0; r0 < n; r0 += piece) {
                const int64_t mm = n - r0 < piece ? n - r0 : piece;
                char *dst = (char *)x->hshard + (size_t)r0 * rb;
                if (src->resident) memcpy(dst, (const char *)src->resident + (size_t)r0 * rb, (size_t)mm * rb);
                else if ((s = src->read(src->ctx, r0, mm, dst, err))) return s;
            }
            x->hview = x->hshard;
            x->src.resident = nullptr;
            x->src.read = nullptr;
        } else if (x->res == FKM_RES_FILE && n > 0) {
            /* the read-ahead thread, into pinned buffers (rows held in memory are copied out
             * of it as the reads would have given them) */
            fkm_rowsrc rs = *src;
            if (src->resident) {
                rs.read = resident_read;
                rs.ctx = x;
            }
            if ((s = fkm_prefetch_create(&x->pf, &rs, x->chunk, FILE_BUFS, pin_alloc, pin_free, nullptr, err)))
                return s;
            x->pin_bytes = FILE_BUFS * (size_t)cm * rb;
        }
        if ((s = keep_norms(x, err))) return s;
        x->have_data = 1;
        return sync(x, err);
    }
    if (n > 0) {
        /* DEVICE: convert once, in pieces of at most 64 MiB through a staging buffer, so that
         * neither the host nor the device needs a second copy of the shard */
        int64_t piece = (int64_t)(STAGE_BYTES / rb);
        if (piece < 1) piece = 1;
        if (piece > n) piece = n;
        Buf stage;
        if ((s = dev_alloc(x, &stage, (size_t)piece * rb, "the upload staging buffer", err)))
            return s;
        void *tmp = nullptr;
        if (!src->resident && !(tmp = fkm_malloc((size_t)piece * rb, "a piece of rows", err)))
            s = FKM_ENOMEM;
        for (int64_t r0 = 0; r0 < n && !s; r0 += piece) {
            const int64_t mm = n - r0 < piece ? n - r0 : piece;
            const void *rows = (const char *)src->resident + (size_t)r0 * rb;
            if (!src->resident) {
                cudaError_t e = cudaStreamSynchronize(x->s); /* tmp is free again */
                if (e != cudaSuccess) {
                    s = fkm_cuda_fail(err, e, __FILE__, __LINE__, "cudaStreamSynchronize");
                    break;
                }
                if ((s = src->read(src->ctx, r0, mm, tmp, err))) break;
                rows = tmp;
            }
            s = upload(x, rows, mm, (char *)x->x.p + (size_t)r0 * x->ldx * eb, stage.p, err);
        }
        if (!s) {
            cudaError_t e = cudaStreamSynchronize(x->s); /* before the staging buffers go */
            if (e != cudaSuccess) s = fkm_cuda_fail(err, e, __FILE__, __LINE__, "cudaStreamSynchronize");
        }
        free(tmp);
        dev_free(x, &stage);
        if (s) return s;
        FKM_CUDA_TRY(err, fkm_k_row_norms(m, x->x.p, n, (int)d, x->ldx, (float *)x->xnorm.p,
                                          (fkm_stream)x->s));
    }
    x->src.resident = nullptr; /* DEVICE: the source is not used again */
    x->src.read = nullptr;
    if ((s = sync(x, err))) return s;
    x->have_data = 1;
    return FKM_OK;
}

/* set_data: a memory source, DEVICE residency, one chunk. */
int mem_read(void *ctx, int64_t r0, int64_t m, void *dst, fkm_error *err)
{
    (void)ctx; (void)r0; (void)m; (void)dst;
    return fkm_fail(err, FKM_ERUNTIME, "internal: memory source read");
}

int cu_set_data(void *vp, const void *host, fkm_dtype dt, int64_t n, int64_t d, fkm_error *err)
{
    if (n < 0 || (n > 0 && !host))
        return fkm_fail(err, FKM_EINPUT, "set_data: bad row count %lld", (long long)n);
    fkm_rowsrc src;
    memset(&src, 0, sizeof src);
    src.n = n;
    src.d = d;
    src.dt = dt;
    src.resident = n > 0 ? host : (const void *)&src; /* non-NULL: no read needed */
    src.read = mem_read;
    return cu_set_source(vp, &src, FKM_RES_DEVICE, n, err);
}

int cu_set_centroids(void *vp, const float *c, int64_t k, fkm_error *err)
{
    CTX(vp);
    ON_DEVICE(x);
    if (k != x->k)
        return fkm_fail(err, FKM_EINPUT, "set_centroids: %lld centroids, the backend was made for %lld",
                        (long long)k, (long long)x->k);
    FKM_CUDA_TRY(err, cudaMemcpyAsync(x->c32.p, c, (size_t)(x->k * x->d) * sizeof(float),
                                      cudaMemcpyHostToDevice, x->s));
    x->have_c = 1;
    return refresh_centroids(x, err);
}

int cu_get_centroids(void *vp, float *c, fkm_error *err)
{
    CTX(vp);
    ON_DEVICE(x);
    FKM_CUDA_TRY(err, cudaMemcpyAsync(c, x->c32.p, (size_t)(x->k * x->d) * sizeof(float),
                                      cudaMemcpyDeviceToHost, x->s));
    return sync(x, err);
}

/* FILE: the next chunk of the read-ahead's pass, which must be rows [r0, r0 + m), in a
 * pinned buffer (*rows) that stays ours until fkm_prefetch_release. A failed read is the
 * reader's message (the source names the file; the read-ahead adds the rows). *wait_ms
 * (may be NULL) grows by the time spent waiting for it. */
int file_next(Ctx *x, int64_t r0, int64_t m, const void **rows, double *wait_ms, fkm_error *err)
{
    int64_t pr0 = -1, pm = 0;
    double w = 0;
    int s = fkm_prefetch_next(x->pf, rows, &pr0, &pm, &w, err);
    if (wait_ms) *wait_ms += w;
    if (s) return s;
    if (pr0 != r0 || pm != m)
        return fkm_fail(err, FKM_ERUNTIME, "internal: the read-ahead gave rows [%lld, %lld), the "
                        "backend expected [%lld, %lld)", (long long)pr0, (long long)(pr0 + pm),
                        (long long)r0, (long long)(r0 + m));
    return FKM_OK;
}

/* Streamed tiers, on the stream: m rows as read (f32 or f16, in stage) into x->x in the
 * compute type, and their norms into xnd unless a whole pass has cached them already. */
int convert_chunk(Ctx *x, const void *stage, int64_t m, float *xnd, fkm_error *err)
{
    const int d = (int)x->d;
    FKM_CUDA_TRY(err, x->src.dt == FKM_DT_F16
                          ? fkm_k_convert_rows_f16(x->mode, (const uint16_t *)stage, m, d, x->x.p,
                                                   x->ldx, (fkm_stream)x->s)
                          : fkm_k_convert_rows(x->mode, (const float *)stage, m, d, x->x.p, x->ldx,
                                               (fkm_stream)x->s));
    if (!x->norms_ready)
        FKM_CUDA_TRY(err, fkm_k_row_norms(x->mode, x->x.p, m, d, x->ldx, xnd, (fkm_stream)x->s));
    return FKM_OK;
}

__global__ void k_add_stats(double *__restrict__ acc, const double *__restrict__ part, int64_t len,
                            int first)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) acc[i] = first ? part[i] : acc[i] + part[i];
}

int cu_step(void *vp, fkm_step_times *t, fkm_error *err)
{
    CTX(vp);
    ON_DEVICE(x);
    x->pending = nullptr;
    x->ev_used = 0;
    if (t) t->ms_assign = t->ms_update = t->ms_io = 0;
    if (!x->have_data || !x->have_c)
        return fkm_fail(err, FKM_ERUNTIME, "cuda backend: step() before set_source() and set_centroids()");
    const int d = (int)x->d;
    const int64_t n = x->n, C = x->chunk, nc = n > 0 ? (n + C - 1) / C : 0;
    const int64_t len = fkm_stats_len(x->k, x->d);
    const size_t eb = (size_t)fkm_k_elem_bytes(x->mode);
    const bool streamed = x->res != FKM_RES_DEVICE;
    if (nc == 0) { /* no rows: zero statistics */
        FKM_CUDA_TRY(err, cudaEventRecord(x->ev[0], x->s));
        FKM_CUDA_TRY(err, cudaEventRecord(x->ev[1], x->s));
        FKM_CUDA_TRY(err, fkm_k_update(x->mode, nullptr, 0, d, x->ldx, nullptr, nullptr, nullptr, x->k,
                                       (double *)x->stats.p, nullptr, 0, (fkm_stream)x->s));
        FKM_CUDA_TRY(err, cudaEventRecord(x->ev[2], x->s));
        x->ev_used = 3;
        x->pending = t;
        return FKM_OK;
    }
    int s;
    const bool file = x->res == FKM_RES_FILE;
    const size_t rb = fkm_rowsrc_row_bytes(&x->src);
    double wait_ms = 0; /* FILE: the host waiting for reads, and for copies to free a buffer */
    /* A staging buffer is free once the conversion that last read it is done (converted[i];
     * never recorded = free): nothing here waits for the previous pass's compute, so the
     * copies of this pass may start while it ends. */
    if (file) { /* a new read-ahead pass (no copy of an abandoned one may still read a buffer) */
        FKM_CUDA_TRY(err, cudaStreamSynchronize(x->cs));
        fkm_prefetch_begin(x->pf);
    }
    for (int64_t c = 0; c < nc; c++) {
        const int64_t r0 = c * C, m = n - r0 < C ? n - r0 : C;
        const void *xc;
        const float *xn;
        if (streamed) {
            const int i = (int)(c & 1);
            const void *from = file ? nullptr : (const void *)((const char *)x->hview + (size_t)r0 * rb);
            if (file && (s = file_next(x, r0, m, &from, &wait_ms, err))) return s;
            if (c > 0 || !x->pre0) { /* copy stream: into stage[i] once its previous chunk is converted */
                FKM_CUDA_TRY(err, cudaStreamWaitEvent(x->cs, x->converted[i], 0));
                FKM_CUDA_TRY(err, cudaMemcpyAsync(x->stage[i].p, from, (size_t)m * rb, cudaMemcpyHostToDevice, x->cs));
                FKM_CUDA_TRY(err, cudaEventRecord(x->copied[i], x->cs));
            }
            if (c == 0) x->pre0 = 0;
            /* compute stream: convert (and, until cached, the norms) when the copy is in */
            FKM_CUDA_TRY(err, cudaStreamWaitEvent(x->s, x->copied[i], 0));
            float *xnd = (float *)x->xnorm.p + (x->norm_cache ? r0 : 0);
            if ((s = convert_chunk(x, x->stage[i].p, m, xnd, err))) return s;
            FKM_CUDA_TRY(err, cudaEventRecord(x->converted[i], x->s));
            xc = x->x.p;
            xn = xnd;
        } else {
            xc = (const char *)x->x.p + (size_t)r0 * x->ldx * eb;
            xn = (const float *)x->xnorm.p + r0;
        }
        int32_t *lab = (int32_t *)x->labels.p + (streamed ? 0 : r0);
        float *md = (float *)x->mind.p + (streamed ? 0 : r0);
        cudaEvent_t *ev = &x->ev[3 * c];
        FKM_CUDA_TRY(err, cudaEventRecord(ev[0], x->s));
        fkm_assign_args a;
        memset(&a, 0, sizeof a);
        a.mode = x->mode;
        a.x = xc;
        a.n = m;
        a.d = d;
        a.ldx = x->ldx;
        a.x_norm = xn;
        a.c = x->c.p;
        a.k = x->k;
        a.ldc = x->ldc;
        a.c_norm = (const float *)x->cnorm.p;
        a.labels = lab;
        a.min_dist = md;
        a.workspace = x->aws.bytes ? x->aws.p : nullptr;
        set_metric(x, &a);
        FKM_CUDA_TRY(err, fkm_k_assign(&a, (fkm_stream)x->s));
        FKM_CUDA_TRY(err, cudaEventRecord(ev[1], x->s));
        double *dst = nc > 1 ? (double *)x->part.p : (double *)x->stats.p;
        const float *wc = nullptr; /* this chunk's row weights (set_weights), or none */
        if (x->w.p && streamed) {
            FKM_CUDA_TRY(err, cudaMemcpyAsync(x->w.p, x->h_w + r0, (size_t)m * sizeof(float),
                                              cudaMemcpyHostToDevice, x->s));
            wc = (const float *)x->w.p;
        } else if (x->w.p) {
            wc = (const float *)x->w.p + r0;
        }
        FKM_CUDA_TRY(err, fkm_k_update(x->mode, xc, m, d, x->ldx, lab, md, wc, x->k, dst, x->uws.p,
                                       x->uws.bytes, (fkm_stream)x->s));
        if (nc > 1) { /* chunk statistics added in chunk order */
            k_add_stats<<<(unsigned)((len + 255) / 256), 256, 0, x->s>>>((double *)x->stats.p, dst, len,
                                                                         c == 0);
            FKM_CUDA_TRY(err, cudaGetLastError());
        }
        FKM_CUDA_TRY(err, cudaEventRecord(ev[2], x->s));
        x->ev_used = (int)(3 * (c + 1));
        if (streamed) /* this chunk's labels to the host before the next chunk overwrites them */
            FKM_CUDA_TRY(err, cudaMemcpyAsync(x->h_labels + r0, lab, (size_t)m * sizeof(int32_t),
                                              cudaMemcpyDeviceToHost, x->s));
        /* FILE: the pinned buffer goes back to the reader once its copy is done; this chunk's
         * work is queued already, so the GPU is busy while the host waits */
        if (file) {
            const double t0 = fkm_now_ms();
            FKM_CUDA_TRY(err, cudaEventSynchronize(x->copied[c & 1]));
            wait_ms += fkm_now_ms() - t0;
            fkm_prefetch_release(x->pf);
        }
    }
    if (streamed && x->norm_cache) x->norms_ready = 1; /* every chunk's norms are queued */
    if (streamed && !file) {
        /* HOST: the rows are the same every pass, so chunk 0 of the next one is copied now,
         * under this pass's last chunks and the finalize: a pass then starts with its first
         * chunk on the device (no pipeline fill), and the copy engine stays busy across passes */
        const int64_t m0 = n < C ? n : C;
        FKM_CUDA_TRY(err, cudaStreamWaitEvent(x->cs, x->converted[0], 0));
        FKM_CUDA_TRY(err, cudaMemcpyAsync(x->stage[0].p, x->hview, (size_t)m0 * rb, cudaMemcpyHostToDevice, x->cs));
        FKM_CUDA_TRY(err, cudaEventRecord(x->copied[0], x->cs));
        x->pre0 = 1;
    }
    if (t) t->ms_io = wait_ms;
    x->pending = t;
    return FKM_OK;
}

double *cu_stats(void *vp) { return (double *)static_cast<Ctx *>(vp)->stats.p; }

int cu_stats_to_host(void *vp, double *host, fkm_error *err)
{
    CTX(vp);
    ON_DEVICE(x);
    FKM_CUDA_TRY(err, cudaMemcpyAsync(host, x->stats.p, x->stats.bytes, cudaMemcpyDeviceToHost, x->s));
    int s = sync(x, err);
    if (!s) fill_times(x);
    return s;
}

int cu_stats_tail_to_host(void *vp, double *host, int64_t count, fkm_error *err)
{
    CTX(vp);
    ON_DEVICE(x);
    const int64_t len = fkm_stats_len(x->k, x->d);
    if (count < 0 || count > len)
        return fkm_fail(err, FKM_ERUNTIME, "stats_tail_to_host: count %lld outside [0, %lld]",
                        (long long)count, (long long)len);
    if (count > x->k + 1) { /* more than the pinned buffer holds: copy now */
        FKM_CUDA_TRY(err, cudaMemcpyAsync(host + (len - count), (double *)x->stats.p + (len - count),
                                          (size_t)count * sizeof(double), cudaMemcpyDeviceToHost, x->s));
        int s = sync(x, err);
        if (!s) fill_times(x);
        return s;
    }
    /* Enqueue only: the values land at the next synchronising call (finalize, usually), so
     * one Lloyd iteration waits for the GPU once. */
    if (count > 0)
        FKM_CUDA_TRY(err, cudaMemcpyAsync(x->h_tail, (double *)x->stats.p + (len - count),
                                          (size_t)count * sizeof(double), cudaMemcpyDeviceToHost, x->s));
    x->tail_dst = count > 0 ? host + (len - count) : nullptr;
    x->tail_count = count;
    return FKM_OK;
}

int cu_stats_from_host(void *vp, const double *host, fkm_error *err)
{
    CTX(vp);
    ON_DEVICE(x);
    FKM_CUDA_TRY(err, cudaMemcpyAsync(x->stats.p, host, x->stats.bytes, cudaMemcpyHostToDevice, x->s));
    return FKM_OK;
}

int cu_finalize(void *vp, double *max_shift, int64_t *n_empty, fkm_error *err)
{
    CTX(vp);
    ON_DEVICE(x);
    if (!x->have_c) return fkm_fail(err, FKM_ERUNTIME, "cuda backend: finalize() before set_centroids()");
    /* the compute-type copy and its norms in the same pass (what refresh_centroids gives) */
    FKM_CUDA_TRY(err, fkm_k_finalize((const double *)x->stats.p, x->k, (int)x->d,
                                     x->metric == FKM_METRIC_COSINE, (float *)x->c32.p,
                                     (double *)x->out2.p, x->mode, x->mode_known ? x->c.p : nullptr,
                                     x->ldc, (float *)x->cnorm.p, (fkm_stream)x->s));
    FKM_CUDA_TRY(err, cudaMemcpyAsync(x->h_out2, x->out2.p, 2 * sizeof(double),
                                      cudaMemcpyDeviceToHost, x->s));
    const int s = sync(x, err);
    if (s) return s;
    fill_times(x);
    if (max_shift) *max_shift = x->h_out2[0];
    if (n_empty) *n_empty = (int64_t)x->h_out2[1];
    return FKM_OK;
}

int cu_labels(void *vp, int32_t *out, fkm_error *err)
{
    CTX(vp);
    ON_DEVICE(x);
    if (x->h_labels) { /* streamed: the labels are on the host already */
        int s = sync(x, err);
        if (!s) memcpy(out, x->h_labels, (size_t)x->n * sizeof(int32_t));
        return s;
    }
    if (x->n > 0)
        FKM_CUDA_TRY(err, cudaMemcpyAsync(out, x->labels.p, (size_t)x->n * sizeof(int32_t),
                                          cudaMemcpyDeviceToHost, x->s));
    return sync(x, err);
}

/* nearest(): rows [r0, r0 + m) of a streamed shard into x->x (compute type) and their norms
 * into *xn (x->xnorm, at r0 when it holds every row's), synchronously through stage[0] (no
 * overlap: k-means|| runs it a few times only). FILE: through a read-ahead pass of its own,
 * begun at the first chunk (nearest() walks the chunks in order). */
int load_chunk_sync(Ctx *x, int64_t r0, int64_t m, const float **xn, fkm_error *err)
{
    const size_t rb = fkm_rowsrc_row_bytes(&x->src);
    const bool file = x->res == FKM_RES_FILE;
    const void *from = file ? nullptr : (const void *)((const char *)x->hview + (size_t)r0 * rb);
    int s;
    if (x->pre0) { /* stage[0] is reused here: the next step copies its chunk 0 again */
        FKM_CUDA_TRY(err, cudaStreamSynchronize(x->cs));
        x->pre0 = 0;
    }
    if (file) {
        if (r0 == 0) {
            FKM_CUDA_TRY(err, cudaStreamSynchronize(x->cs));
            fkm_prefetch_begin(x->pf);
        }
        if ((s = file_next(x, r0, m, &from, nullptr, err))) return s;
    }
    float *xnd = (float *)x->xnorm.p + (x->norm_cache ? r0 : 0);
    cudaError_t e = cudaMemcpyAsync(x->stage[0].p, from, (size_t)m * rb, cudaMemcpyHostToDevice, x->s);
    s = e != cudaSuccess ? fkm_cuda_fail(err, e, __FILE__, __LINE__, "cudaMemcpyAsync")
                         : convert_chunk(x, x->stage[0].p, m, xnd, err);
    if (!s) s = sync(x, err); /* stage[0] and the pinned buffer are free again */
    else cudaStreamSynchronize(x->s); /* also after a failure, before the buffer goes back */
    if (file) fkm_prefetch_release(x->pf);
    if (s) return s;
    if (x->norm_cache && r0 + m == x->n) x->norms_ready = 1; /* a whole pass, in order */
    *xn = xnd;
    return FKM_OK;
}

/* nearest() with its temporary device buffers t[0..5]: the m centroids as float32, in the
 * compute type, their norms, one chunk's labels and distances, the assign workspace. */
int nearest_body(Ctx *x, const float *c, int64_t m, float *dist, int32_t *labels, Buf *t,
                 fkm_error *err)
{
    const int d = (int)x->d;
    const int64_t n = x->n, C = x->chunk, cm = n < C ? n : C;
    const size_t eb = (size_t)fkm_k_elem_bytes(x->mode);
    int s;
    if ((s = dev_alloc(x, &t[0], (size_t)(m * d) * sizeof(float), "k-means|| centroids", err)) ||
        (s = dev_alloc(x, &t[1], (size_t)m * x->ldc * eb, "k-means|| centroids (compute type)", err)) ||
        (s = dev_alloc(x, &t[2], (size_t)m * sizeof(float), "k-means|| centroid norms", err)) ||
        (s = dev_alloc(x, &t[3], (size_t)cm * sizeof(int32_t), "k-means|| labels", err)) ||
        (s = dev_alloc(x, &t[4], (size_t)cm * sizeof(float), "k-means|| distances", err)) ||
        (s = dev_alloc(x, &t[5], fkm_k_assign_workspace(x->mode, cm, m, d), "the assign workspace", err)))
        return s;
    FKM_CUDA_TRY(err, cudaMemcpyAsync(t[0].p, c, (size_t)(m * d) * sizeof(float), cudaMemcpyHostToDevice, x->s));
    FKM_CUDA_TRY(err, fkm_k_convert_rows(x->mode, (const float *)t[0].p, m, d, t[1].p, x->ldc, (fkm_stream)x->s));
    FKM_CUDA_TRY(err, fkm_k_row_norms(x->mode, t[1].p, m, d, x->ldc, (float *)t[2].p, (fkm_stream)x->s));
    for (int64_t r0 = 0; r0 < n; r0 += C) {
        const int64_t mm = n - r0 < C ? n - r0 : C;
        const void *xc = (const char *)x->x.p + (size_t)r0 * x->ldx * eb;
        const float *xn = (const float *)x->xnorm.p + r0;
        if (x->res != FKM_RES_DEVICE) {
            if ((s = load_chunk_sync(x, r0, mm, &xn, err))) return s;
            xc = x->x.p;
        }
        fkm_assign_args a;
        memset(&a, 0, sizeof a);
        a.mode = x->mode;
        a.x = xc;
        a.n = mm;
        a.d = d;
        a.ldx = x->ldx;
        a.x_norm = xn;
        a.c = t[1].p;
        a.k = m;
        a.ldc = x->ldc;
        a.c_norm = (const float *)t[2].p;
        a.labels = (int32_t *)t[3].p;
        a.min_dist = (float *)t[4].p;
        a.workspace = t[5].bytes ? t[5].p : nullptr;
        set_metric(x, &a);
        FKM_CUDA_TRY(err, fkm_k_assign(&a, (fkm_stream)x->s));
        FKM_CUDA_TRY(err, cudaMemcpyAsync(dist + r0, t[4].p, (size_t)mm * sizeof(float), cudaMemcpyDeviceToHost, x->s));
        if (labels)
            FKM_CUDA_TRY(err, cudaMemcpyAsync(labels + r0, t[3].p, (size_t)mm * sizeof(int32_t),
                                              cudaMemcpyDeviceToHost, x->s));
        if ((s = sync(x, err))) return s;
    }
    return sync(x, err);
}

int cu_nearest(void *vp, const float *c, int64_t m, float *dist, int32_t *labels, fkm_error *err)
{
    CTX(vp);
    ON_DEVICE(x);
    if (!x->have_data)
        return fkm_fail(err, FKM_ERUNTIME, "cuda backend: nearest() before set_source()");
    if (m < 1 || m > INT32_MAX)
        return fkm_fail(err, FKM_ERUNTIME, "cuda backend: nearest() of %lld centroids", (long long)m);
    if (x->n == 0) return FKM_OK;
    Buf t[6];
    int s = nearest_body(x, c, m, dist, labels, t, err);
    cudaStreamSynchronize(x->s); /* before the buffers go, also after a failure */
    for (Buf &b : t) dev_free(x, &b);
    return s;
}

__global__ void k_changed(const int32_t *__restrict__ lab, int32_t *__restrict__ prev, int64_t n,
                          unsigned long long *count)
{
    unsigned long long c = 0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int32_t l = lab[i];
        c += l != prev[i];
        prev[i] = l;
    }
    if (c) atomicAdd(count, c); /* integer: the total does not depend on the order */
}

int cu_changed(void *vp, int64_t *count, fkm_error *err)
{
    CTX(vp);
    ON_DEVICE(x);
    int s;
    const int64_t n = x->n;
    if (x->h_labels) { /* streamed: compare on the host, where the labels are */
        if ((s = sync(x, err))) return s;
        if (!x->h_prev) {
            x->h_prev = (int32_t *)malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
            if (!x->h_prev) return fkm_fail(err, FKM_ENOMEM, "out of host memory: the previous labels");
            memcpy(x->h_prev, x->h_labels, (size_t)n * sizeof(int32_t));
            *count = -1;
            return FKM_OK;
        }
        int64_t c = 0;
        for (int64_t i = 0; i < n; i++) {
            c += x->h_labels[i] != x->h_prev[i];
            x->h_prev[i] = x->h_labels[i];
        }
        *count = c;
        return FKM_OK;
    }
    if (!x->prev.p || !x->cnt.p) {
        if ((s = dev_alloc(x, &x->prev, (size_t)(n > 0 ? n : 1) * sizeof(int32_t), "the previous labels", err)) ||
            (s = dev_alloc(x, &x->cnt, sizeof(unsigned long long), "a counter", err)))
            return s;
        x->have_prev = 0;
    }
    if (!x->have_prev) {
        if (n > 0)
            FKM_CUDA_TRY(err, cudaMemcpyAsync(x->prev.p, x->labels.p, (size_t)n * sizeof(int32_t),
                                              cudaMemcpyDeviceToDevice, x->s));
        x->have_prev = 1;
        *count = -1;
        return sync(x, err);
    }
    FKM_CUDA_TRY(err, cudaMemsetAsync(x->cnt.p, 0, sizeof(unsigned long long), x->s));
    if (n > 0) {
        int64_t blocks = (n + 255) / 256;
        if (blocks > 4096) blocks = 4096;
        k_changed<<<(unsigned)blocks, 256, 0, x->s>>>((const int32_t *)x->labels.p, (int32_t *)x->prev.p, n,
                                                    (unsigned long long *)x->cnt.p);
        FKM_CUDA_TRY(err, cudaGetLastError());
    }
    FKM_CUDA_TRY(err, cudaMemcpyAsync(x->h_out2, x->cnt.p, sizeof(unsigned long long),
                                      cudaMemcpyDeviceToHost, x->s));
    if ((s = sync(x, err))) return s;
    unsigned long long c;
    memcpy(&c, x->h_out2, sizeof c);
    *count = (int64_t)c;
    return FKM_OK;
}

/* ---- probe_stream (backend.h): what a streamed step costs on this device ----
 * The probe runs the real thing: set_source (HOST, from pinned synthetic rows) and step on
 * this backend, between two events; so the per-row and per-chunk costs are those of the
 * streamed path as it stands (convert, norms, assign, update, the chunk's labels to the
 * host, the statistics added), and the backend is left as created. */

constexpr size_t PROBE_COPY_BYTES = 32ull << 20; /* one timed host-to-device copy */
constexpr size_t PROBE_ROW_BYTES = 64ull << 20;  /* the synthetic rows, at most */
constexpr int64_t PROBE_TINY = 256;              /* rows of a "tiny" chunk: one row tile */
constexpr int64_t PROBE_FIRST = 16384;           /* rows of the first, sizing, chunk */
constexpr double PROBE_TARGET_MS = 10.0;         /* the timed chunk's compute, about */
constexpr unsigned PROBE_HEAD_NS = 2000000;      /* the GPU waits this long before a timed step */

/* splitmix64's finaliser: a fixed pseudo-random 64-bit value of an index */
__device__ __forceinline__ uint64_t probe_hash(uint64_t i)
{
    i += 0x9E3779B97F4A7C15ull;
    i = (i ^ (i >> 30)) * 0xBF58476D1CE4E5B9ull;
    i = (i ^ (i >> 27)) * 0x94D049BB133111EBull;
    return i ^ (i >> 31);
}

__device__ __forceinline__ float probe_unit(uint64_t i) /* in [-1, 1) */
{
    return (float)(probe_hash(i) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

__global__ void k_probe_centroids(float *__restrict__ c, int64_t len)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += (int64_t)gridDim.x * blockDim.x)
        c[i] = probe_unit((uint64_t)i);
}

/* m synthetic rows as a source hands them out (float32, or half bits): each a centroid drawn
 * from its row index plus noise of a quarter of the centroids' spread, so that rows are not
 * zeros, labels spread over all k clusters, and every row has a clear nearest centroid as in
 * clustered data (the exact mode's fp64 re-check stays as rare as there). */
__global__ void k_probe_rows(const float *__restrict__ c, int64_t k, int d, int64_t m, int f16, void *dst)
{
    const int64_t len = m * d;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / d, t = i % d;
        const int64_t j = (int64_t)(probe_hash((uint64_t)r ^ 0x5DEECE66Dull) % (uint64_t)k);
        const float v = c[j * d + t] + 0.25f * probe_unit((uint64_t)i + (1ull << 62));
        if (f16) ((__half *)dst)[i] = __float2half_rn(v);
        else ((float *)dst)[i] = v;
    }
}

/* Keeps the GPU busy for ns while the host queues the step that follows, so that the step is
 * timed as a pipeline runs: the host ahead of the GPU, launch gaps hidden. */
__global__ void k_probe_wait(unsigned ns)
{
    uint64_t t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
        __nanosleep(1000);
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while (t - t0 < ns);
}

unsigned probe_blocks(int64_t len)
{
    const int64_t b = (len + 255) / 256;
    return (unsigned)(b < 1 ? 1 : b > 4096 ? 4096 : b);
}

double median(double *v, int n)
{
    for (int i = 1; i < n; i++) /* insertion sort: a handful of values */
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            const double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

struct Probe {
    fkm_rowsrc src;       /* the synthetic rows, pinned (HOST streams them without a copy) */
    void *host = nullptr; /* those rows */
    Buf dev;              /* device buffer: copy target, then where the rows are made */
    cudaEvent_t ev[2] = {nullptr, nullptr};
};

/* ms of one streamed step over the first m synthetic rows in chunks of `chunk` rows. */
int probe_step(Ctx *x, Probe *P, int64_t m, int64_t chunk, double *ms, fkm_error *err)
{
    fkm_rowsrc src = P->src;
    src.n = m;
    int s;
    if ((s = cu_set_source(x, &src, FKM_RES_HOST, chunk, err)) || (s = refresh_centroids(x, err))) return s;
    k_probe_wait<<<1, 1, 0, x->s>>>(PROBE_HEAD_NS);
    FKM_CUDA_TRY(err, cudaGetLastError());
    FKM_CUDA_TRY(err, cudaEventRecord(P->ev[0], x->s));
    /* the step's copies start after ev[0] (cu_step's first copy waits for no compute, so it
     * would otherwise run under the head wait, untimed, and the compute's share come out low) */
    FKM_CUDA_TRY(err, cudaStreamWaitEvent(x->cs, P->ev[0], 0));
    if ((s = cu_step(x, nullptr, err))) return s;
    FKM_CUDA_TRY(err, cudaEventRecord(P->ev[1], x->s));
    FKM_CUDA_TRY(err, cudaEventSynchronize(P->ev[1]));
    float t = 0;
    FKM_CUDA_TRY(err, cudaEventElapsedTime(&t, P->ev[0], P->ev[1]));
    *ms = t;
    return FKM_OK;
}

int probe_body(Ctx *x, Probe *P, fkm_dtype dt, fkm_stream_rates *r, fkm_error *err)
{
    const int d = (int)x->d;
    const int64_t k = x->k;
    const size_t rb = (size_t)d * (dt == FKM_DT_F16 ? 2 : 4);
    int64_t mmax = (int64_t)(PROBE_ROW_BYTES / rb);
    if (mmax < 1) mmax = 1;
    const int64_t tiny = mmax < PROBE_TINY ? mmax : PROBE_TINY;
    const size_t bytes = PROBE_COPY_BYTES > (size_t)mmax * rb ? PROBE_COPY_BYTES : (size_t)mmax * rb;
    int s;
    if ((s = dev_alloc(x, &P->dev, bytes, "the stream probe's rows", err))) return s;
    FKM_CUDA_TRY(err, cudaMallocHost(&P->host, bytes));
    for (int i = 0; i < 2; i++) FKM_CUDA_TRY(err, cudaEventCreate(&P->ev[i]));

    /* the pinned host-to-device copy rate: the median of five copies after a warm-up */
    double t[5];
    for (int i = -1; i < 5; i++) {
        FKM_CUDA_TRY(err, cudaEventRecord(P->ev[0], x->s));
        FKM_CUDA_TRY(err, cudaMemcpyAsync(P->dev.p, P->host, PROBE_COPY_BYTES, cudaMemcpyHostToDevice, x->s));
        FKM_CUDA_TRY(err, cudaEventRecord(P->ev[1], x->s));
        FKM_CUDA_TRY(err, cudaEventSynchronize(P->ev[1]));
        float ms = 0;
        FKM_CUDA_TRY(err, cudaEventElapsedTime(&ms, P->ev[0], P->ev[1]));
        if (i >= 0) t[i] = ms;
    }
    const double copy_ms = median(t, 5);
    if (!(copy_ms > 0)) return fkm_fail(err, FKM_ERUNTIME, "cuda backend: the stream probe's copy took no time");
    const double ms_per_byte = copy_ms / (double)PROBE_COPY_BYTES;

    /* k random centroids (the fit's c32, as set_centroids would leave it) and the rows near
     * them, made on the device and brought to the pinned host buffer */
    k_probe_centroids<<<probe_blocks(k * d), 256, 0, x->s>>>((float *)x->c32.p, k * d);
    FKM_CUDA_TRY(err, cudaGetLastError());
    x->have_c = 1;
    k_probe_rows<<<probe_blocks(mmax * d), 256, 0, x->s>>>((const float *)x->c32.p, k, d, mmax,
                                                           dt == FKM_DT_F16, P->dev.p);
    FKM_CUDA_TRY(err, cudaGetLastError());
    FKM_CUDA_TRY(err, cudaMemcpyAsync(P->host, P->dev.p, (size_t)mmax * rb, cudaMemcpyDeviceToHost, x->s));
    FKM_CUDA_TRY(err, cudaStreamSynchronize(x->s));
    dev_free(x, &P->dev);
    memset(&P->src, 0, sizeof P->src);
    P->src.n = mmax;
    P->src.d = x->d;
    P->src.dt = dt;
    P->src.resident = P->host;

    /* warm-up (a kernel's first launch loads it), then a first chunk that sizes the timed one
     * (its compute is its time less its copy: in one chunk they do not overlap) and a tiny one */
    double w = 0, t0 = 0;
    const int64_t m0 = mmax < PROBE_FIRST ? mmax : PROBE_FIRST;
    if ((s = probe_step(x, P, tiny, tiny, &w, err)) || (s = probe_step(x, P, m0, m0, &t0, err)) ||
        (s = probe_step(x, P, tiny, tiny, &w, err)))
        return s;
    const double c0 = t0 - (double)m0 * rb * ms_per_byte;
    int64_t m = m0;
    if (c0 > 0 && c0 < PROBE_TARGET_MS) {
        const double want = (double)m0 * PROBE_TARGET_MS / c0;
        m = want >= (double)mmax ? mmax : (int64_t)want;
        if (m < m0) m = m0;
    }
    /* the timed rounds: one chunk of m rows (copy, then compute), and R tiny chunks in a row
     * (their copies, a few KiB, overlap the compute); R up to 8 and the rounds 3 while they
     * stay short, fewer for a very large k·d (the probe stays well under a second) */
    int64_t R = w > 0 ? (int64_t)(20.0 / w) : 8;
    R = R < 1 ? 1 : R > 8 ? 8 : R;
    if (R * tiny > mmax) R = mmax / tiny > 0 ? mmax / tiny : 1;
    const int rounds = t0 * (double)m / (double)m0 + (double)R * w < 30 ? 3 : 1;
    double tm[3], tr[3];
    for (int i = 0; i < rounds; i++)
        if ((s = probe_step(x, P, m, m, &tm[i], err)) || (s = probe_step(x, P, R * tiny, tiny, &tr[i], err)))
            return s;
    /* m rows in one chunk: copy(m) + f + m·p;  R tiny chunks: R·(f + tiny·p). The tiny chunk's
     * time is the fixed cost of any chunk: launches, the sort's passes, the k×d statistics
     * written and added, and the assign's last wave (one row tile sweeping all k centroids) */
    const double a = median(tm, rounds) - (double)m * rb * ms_per_byte, b = median(tr, rounds) / (double)R;
    double per_row = m > tiny && a > b ? (a - b) / (double)(m - tiny) : (a > 0 ? a : b) / (double)m;
    const double fixed = b - (double)tiny * per_row;
    r->copy_gbs = 1e-6 / ms_per_byte;
    r->ms_per_row = per_row;
    r->ms_fixed = fixed > 0 ? fixed : 0;
    if (!(per_row > 0))
        return fkm_fail(err, FKM_ERUNTIME, "cuda backend: the stream probe measured no compute");
    return FKM_OK;
}

int cu_probe_stream(void *vp, fkm_dtype dt, fkm_residency res, fkm_stream_rates *r, fkm_error *err)
{
    CTX(vp);
    ON_DEVICE(x);
    if (res != FKM_RES_HOST && res != FKM_RES_FILE)
        return fkm_fail(err, FKM_EINPUT, "cuda backend: probe_stream of residency %d (not streamed)", (int)res);
    if (x->have_data || x->have_c)
        return fkm_fail(err, FKM_ERUNTIME, "cuda backend: probe_stream after set_source or set_centroids");
    const size_t peak = x->peak;
    Probe P;
    int s = probe_body(x, &P, dt, r, err);
    r->carry = res == FKM_RES_HOST; /* cu_step copies the next pass's first chunk early */
    cudaStreamSynchronize(x->s); /* before the buffers go, also after a failure */
    free_rows(x);                /* the backend as it was made: no rows, no centroids */
    x->have_c = 0;
    x->n = 0;
    dev_free(x, &P.dev);
    if (P.host) cudaFreeHost(P.host);
    for (cudaEvent_t e : P.ev)
        if (e) cudaEventDestroy(e);
    x->peak = peak; /* the probe's buffers are gone before the fit: its peak is the fit's own */
    return s;
}

/* set_weights (backend.h): DEVICE keeps all n on the device; the streamed residencies keep
 * them pinned on the host and copy each chunk's before its update (the device holds one
 * chunk's, as with the rows). */
int cu_set_weights(void *vp, const float *w, fkm_error *err)
{
    CTX(vp);
    ON_DEVICE(x);
    int s = sync(x, err); /* no step may still read the old weights */
    if (s) return s;
    dev_free(x, &x->w);
    if (x->h_w) cudaFreeHost(x->h_w);
    x->h_w = nullptr;
    if (!w || x->n == 0) return FKM_OK;
    const size_t bytes = (size_t)x->n * sizeof(float);
    if (x->res == FKM_RES_DEVICE) {
        if ((s = dev_alloc(x, &x->w, bytes, "the row weights", err))) return s;
        FKM_CUDA_TRY(err, cudaMemcpyAsync(x->w.p, w, bytes, cudaMemcpyHostToDevice, x->s));
        return sync(x, err);
    }
    FKM_CUDA_TRY(err, cudaMallocHost((void **)&x->h_w, bytes));
    memcpy(x->h_w, w, bytes);
    return dev_alloc(x, &x->w, (size_t)x->chunk * sizeof(float), "a chunk's row weights", err);
}

void *cu_stream(void *vp) { return (void *)static_cast<Ctx *>(vp)->s; }

size_t cu_peak_bytes(void *vp) { return static_cast<Ctx *>(vp)->peak; }

void cu_destroy(void *vp)
{
    Ctx *x = static_cast<Ctx *>(vp);
    if (!x) return;
    cudaSetDevice(x->device);
    if (x->s) cudaStreamSynchronize(x->s);
    free_rows(x);
    Buf *bufs[] = {&x->c32, &x->c, &x->cnorm, &x->stats, &x->out2, &x->cnt};
    for (Buf *b : bufs) dev_free(x, b);
    if (x->h_out2) cudaFreeHost(x->h_out2);
    if (x->h_tail) cudaFreeHost(x->h_tail);
    for (cudaEvent_t e : x->ev)
        if (e) cudaEventDestroy(e);
    for (int i = 0; i < 2; i++) {
        if (x->copied[i]) cudaEventDestroy(x->copied[i]);
        if (x->converted[i]) cudaEventDestroy(x->converted[i]);
    }
    if (x->cs) {
        cudaStreamSynchronize(x->cs);
        cudaStreamDestroy(x->cs);
    }
    if (x->s) cudaStreamDestroy(x->s);
    (void)cudaGetLastError();
    delete x;
}

int create(Ctx *x, fkm_error *err)
{
    ON_DEVICE(x);
    FKM_CUDA_TRY(err, cudaStreamCreate(&x->s));
    FKM_CUDA_TRY(err, cudaMallocHost((void **)&x->h_out2, 2 * sizeof(double)));
    FKM_CUDA_TRY(err, cudaMallocHost((void **)&x->h_tail, (size_t)(x->k + 1) * sizeof(double)));
    const size_t len = (size_t)fkm_stats_len(x->k, x->d);
    int s;
    if ((s = dev_alloc(x, &x->c32, (size_t)(x->k * x->d) * sizeof(float), "the centroids", err)) ||
        (s = dev_alloc(x, &x->cnorm, (size_t)x->k * sizeof(float), "the centroid norms", err)) ||
        (s = dev_alloc(x, &x->stats, len * sizeof(double), "the cluster statistics", err)) ||
        (s = dev_alloc(x, &x->out2, 2 * sizeof(double), "the finalize scalars", err)))
        return s;
    FKM_CUDA_TRY(err, cudaMemsetAsync(x->stats.p, 0, len * sizeof(double), x->s));
    if (x->prec != FKM_PREC_AUTO && (s = set_mode(x, pick_mode(x->prec, FKM_DT_F32), err))) return s;
    return sync(x, err);
}

} // namespace

extern "C" int fkm_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" void fkm_cuda_mem_info(int device, size_t *free_bytes, size_t *total_bytes)
{
    *free_bytes = *total_bytes = 0;
    int prev = 0;
    if (cudaGetDevice(&prev) != cudaSuccess || cudaSetDevice(device) != cudaSuccess ||
        cudaMemGetInfo(free_bytes, total_bytes) != cudaSuccess)
        *free_bytes = *total_bytes = 0;
    cudaSetDevice(prev);
    (void)cudaGetLastError();
}

extern "C" int fkm_backend_cuda_create(fkm_backend *b, int64_t k, int64_t d, fkm_precision prec,
                                       fkm_metric metric, int device, fkm_error *err)
{
    if (metric != FKM_METRIC_L2 && metric != FKM_METRIC_COSINE && metric != FKM_METRIC_IP)
        return fkm_fail(err, FKM_EINPUT, "cuda backend: unknown metric %d", (int)metric);
    if (k < 1 || k > INT32_MAX || d < 1 || d > INT32_MAX)
        return fkm_fail(err, FKM_EINPUT, "cuda backend: k = %lld and d = %lld must lie in [1, 2^31)",
                        (long long)k, (long long)d);
    if (prec < FKM_PREC_AUTO || prec > FKM_PREC_BF16)
        return fkm_fail(err, FKM_EINPUT, "cuda backend: unknown precision %d", (int)prec);
    const int ndev = fkm_cuda_device_count();
    if (device < 0 || device >= ndev)
        return fkm_fail(err, FKM_EINPUT, "cuda backend: device %d does not exist (%d visible)",
                        device, ndev);
    Ctx *x = new (std::nothrow) Ctx;
    if (!x) return fkm_fail(err, FKM_ENOMEM, "out of host memory: the CUDA backend");
    x->device = device;
    x->k = k;
    x->d = d;
    x->prec = prec;
    x->metric = metric;
    int s = create(x, err);
    if (s) {
        cu_destroy(x);
        return s;
    }
    memset(b, 0, sizeof *b);
    b->name = "cuda";
    b->ctx = x;
    b->stats_on_device = 1;
    b->set_data = cu_set_data;
    b->set_source = cu_set_source;
    b->set_centroids = cu_set_centroids;
    b->get_centroids = cu_get_centroids;
    b->step = cu_step;
    b->stats = cu_stats;
    b->stats_to_host = cu_stats_to_host;
    b->stats_from_host = cu_stats_from_host;
    b->finalize = cu_finalize;
    b->labels = cu_labels;
    b->stats_tail_to_host = cu_stats_tail_to_host;
    b->stream = cu_stream;
    b->nearest = cu_nearest;
    b->changed = cu_changed;
    b->set_weights = cu_set_weights;
    b->peak_bytes = cu_peak_bytes;
    b->destroy = cu_destroy;
    b->probe_stream = cu_probe_stream;
    return FKM_OK;
}
