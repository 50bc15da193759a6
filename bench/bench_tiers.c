/* Out-of-core benchmark (targets.md #4), one GPU: per-iteration time of the CUDA backend
 * with the rows on the device, streamed from pinned host memory, and re-read from an HDF5
 * file, next to the two times the host tier cannot beat, measured in the same run: the
 * compute alone (device tier) and the host-to-device copy of every row alone.
 *
 *   bench_tiers N D K [chunk_rows=2097152] [reps=3] [file.h5 or -] [tiers=dhf]
 *
 * Rows are fp16, a Gaussian mixture generated in pinned memory (so the host tier streams
 * from it without a copy). With a file name, the rows are also written there (HDF5, fp16)
 * and the file tier reads them back every iteration; its read rate is printed.
 *
 * Tier letter a (the measured chunk rule, as `fkm fit` applies it when --chunk-rows is not
 * given): the backend's probe_stream rates and the chunk fkm_plan_chunk picks from them for
 * this shard, then the host tier with that chunk next to fixed chunks (the shard in 4 ... 256
 * chunks, the old fixed rule, and chunk_rows), each as a ratio to max(copy, compute) with the
 * compute of the whole shard in one chunk on the device (the model's compute without d), and
 * the model's predicted ratio; with a file, the file tier's read rate with the chosen chunk. */
#include "backend.h"
#include "chunkplan.h"
#include "half.h"
#include "io.h"
#include "rowsrc.h"
#include "util.h"

#include <cuda_runtime.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK(call)                                                                           \
    do {                                                                                   \
        cudaError_t e_ = (call);                                                           \
        if (e_ != cudaSuccess) {                                                           \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median ms of one iteration (step + stats + finalize) over reps, after one warm-up. */
static double time_tier(const fkm_rowsrc *src, fkm_residency res, int64_t chunk, int64_t k,
                        const float *c0, int reps, double *ms_assign)
{
    fkm_backend b;
    fkm_error err;
    if (fkm_backend_cuda_create(&b, k, src->d, FKM_PREC_AUTO, FKM_METRIC_L2, 0, &err) ||
        b.set_source(b.ctx, src, res, chunk, &err) || b.set_centroids(b.ctx, c0, k, &err)) {
        fprintf(stderr, "bench_tiers: %s\n", err.msg);
        exit(1);
    }
    double *t = malloc(sizeof(double) * (size_t)(reps + 1)), *ta = malloc(sizeof(double) * (size_t)(reps + 1));
    double *tail = malloc(sizeof(double) * (size_t)fkm_stats_len(k, src->d));
    for (int r = 0; r <= reps; r++) {
        fkm_step_times st;
        double shift;
        int64_t empty;
        double t0 = fkm_now_ms();
        if (b.step(b.ctx, &st, &err) || b.stats_tail_to_host(b.ctx, tail, k + 1, &err) ||
            b.finalize(b.ctx, &shift, &empty, &err)) {
            fprintf(stderr, "bench_tiers: %s\n", err.msg);
            exit(1);
        }
        t[r] = fkm_now_ms() - t0;
        ta[r] = st.ms_assign;
        b.set_centroids(b.ctx, c0, k, &err); /* same work every repetition */
    }
    qsort(t + 1, (size_t)reps, sizeof *t, cmp);
    qsort(ta + 1, (size_t)reps, sizeof *ta, cmp);
    double med = t[1 + reps / 2];
    if (ms_assign) *ms_assign = ta[1 + reps / 2];
    b.destroy(b.ctx);
    free(t);
    free(ta);
    free(tail);
    return med;
}

static int cmp_i64_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

/* Tier letter a: the measured chunk rule against fixed chunks (see the top). */
static void measured_rule(const fkm_rowsrc *mem, const fkm_rowsrc *fs, int64_t n, int64_t d, int64_t k,
                          int64_t chunk, const float *c0, int reps, double h2d)
{
    fkm_backend b;
    fkm_error err;
    fkm_stream_rates rt;
    fkm_chunk_plan plan;
    const double rb = (double)d * 2;
    if (fkm_backend_cuda_create(&b, k, d, FKM_PREC_AUTO, FKM_METRIC_L2, 0, &err)) {
        fprintf(stderr, "bench_tiers: %s\n", err.msg);
        exit(1);
    }
    const double t0 = fkm_now_ms();
    const int ps = b.probe_stream(b.ctx, FKM_DT_F16, FKM_RES_HOST, &rt, &err);
    const double tprobe = fkm_now_ms() - t0;
    b.destroy(b.ctx);
    if (ps || fkm_plan_chunk(n, rb, &rt, &plan, &err)) {
        fprintf(stderr, "bench_tiers: measured rule: %s\n", err.msg);
        exit(1);
    }
    printf("  measured rule: probe %.0f ms: H2D %.1f GB/s, compute %.3g ns/row + %.3f ms/chunk\n"
           "    -> %lld chunks of %lld rows (%.1f MiB); model: copy %.2f ms, compute %.2f ms, "
           "predicted %.3f x max\n",
           tprobe, rt.copy_gbs, rt.ms_per_row * 1e6, rt.ms_fixed, (long long)plan.nchunks,
           (long long)plan.chunk, plan.chunk * rb / (1 << 20), plan.ms_copy, plan.ms_comp, plan.ratio);
    /* the compute floor: the whole shard in one chunk on the device (no per-chunk cost) */
    const double comp = time_tier(mem, FKM_RES_DEVICE, n, k, c0, reps, NULL);
    const double floor = comp > h2d ? comp : h2d;
    printf("    device tier, one chunk: %.2f ms; floor max(compute, H2D) = %.2f ms\n", comp, floor);
    /* the chunks to compare: the rule's, the shard in 4..256 chunks, the old fixed rule, the
     * command line's */
    int64_t cand[16];
    int nc = 0;
    cand[nc++] = plan.chunk;
    for (int64_t parts = 4; parts <= 256; parts *= 4) cand[nc++] = (n + parts - 1) / parts;
    double old = (double)n * rb / 16;
    old = old < 32.0 * (1 << 20) ? 32.0 * (1 << 20) : old > 256.0 * (1 << 20) ? 256.0 * (1 << 20) : old;
    cand[nc++] = (int64_t)(old / rb) < n ? (int64_t)(old / rb) : n;
    cand[nc++] = chunk < n ? chunk : n;
    qsort(cand, (size_t)nc, sizeof cand[0], cmp_i64_desc);
    for (int i = 0; i < nc; i++) {
        if (i > 0 && cand[i] == cand[i - 1]) continue;
        const int64_t c = cand[i] < 1 ? 1 : cand[i], parts = (n + c - 1) / c;
        const double host = time_tier(mem, FKM_RES_HOST, c, k, c0, reps, NULL);
        const double model = fkm_plan_time(plan.ms_copy, plan.ms_comp, rt.ms_fixed, parts, rt.carry) /
                             (plan.ms_copy > plan.ms_comp ? plan.ms_copy : plan.ms_comp);
        printf("    chunk %10lld (%5lld chunks, %7.1f MiB): host tier %9.2f ms = %.3f x max; model %.3f%s\n",
               (long long)c, (long long)parts, c * rb / (1 << 20), host, host / floor, model,
               c == plan.chunk ? "   <- the measured rule" : "");
    }
    if (fs) {
        const double tf = time_tier(fs, FKM_RES_FILE, plan.chunk, k, c0, reps, NULL);
        printf("    file tier with the rule's chunk: %.2f ms (read rate %.2f GB/s)\n", tf,
               (double)n * rb / tf * 1e-6);
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_tiers N D K [chunk_rows] [reps] [file.h5|-] [tiers=dhf, a: the measured chunk rule]\n");
        return 2;
    }
    const int64_t n = atoll(argv[1]), d = atoll(argv[2]), k = atoll(argv[3]);
    const int64_t chunk = argc > 4 ? atoll(argv[4]) : (int64_t)1 << 21;
    const int reps = argc > 5 ? atoi(argv[5]) : 3;
    const char *file = argc > 6 && strcmp(argv[6], "-") != 0 ? argv[6] : NULL;
    const char *tiers = argc > 7 ? argv[7] : "dhf";
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const size_t bytes = (size_t)n * (size_t)d * 2;
    printf("bench_tiers: %s, N=%lld D=%lld K=%lld fp16 (%.2f GB of rows), chunk_rows=%lld\n",
           prop.name, (long long)n, (long long)d, (long long)k, (double)bytes / 1e9, (long long)chunk);
    fflush(stdout);

    /* rows in pinned memory: 64 cluster centres in ±4, noise of 1, cheap per-thread generator */
    uint16_t *h;
    double tg = fkm_now_ms();
    CK(cudaMallocHost((void **)&h, bytes));
    float ctr[64 * 256];
    for (int i = 0; i < 64 * 256; i++) ctr[i] = (float)(((i * 2654435761u) >> 8) % 8000) / 1000.0f - 4.0f;
#pragma omp parallel
    {
        uint64_t s = 0x9E3779B97F4A7C15ULL * (uint64_t)(omp_get_thread_num() + 1);
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            const int cl = (int)(s % 64);
            for (int64_t t = 0; t < d; t++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                float noise = (float)((s >> 40) & 0xFFFF) / 32768.0f - 1.0f;
                h[i * d + t] = fkm_float_to_half(ctr[(cl * 256 + t % 256) % (64 * 256)] + noise);
            }
        }
    }
    printf("  generated in %.1f s\n", (fkm_now_ms() - tg) / 1e3);
    float *c0 = malloc(sizeof(float) * (size_t)(k * d));
    for (int64_t j = 0; j < k; j++)
        for (int64_t t = 0; t < d; t++) c0[j * d + t] = fkm_half_to_float(h[((j * 7919) % n) * d + t]);

    fkm_rowsrc mem;
    fkm_rowsrc_memory(&mem, h, FKM_DT_F16, n, d);

    /* the host-to-device copy alone: every row, in chunks, pinned → device */
    double h2d = 0;
    {
        void *dbuf;
        const size_t cb = (size_t)chunk * (size_t)d * 2;
        CK(cudaMalloc(&dbuf, cb));
        cudaEvent_t e0, e1; /* C: the typedefs of cuda_runtime.h */
        CK(cudaEventCreate(&e0));
        CK(cudaEventCreate(&e1));
        double best = 1e30;
        for (int r = 0; r < 3; r++) {
            CK(cudaEventRecord(e0, 0));
            for (size_t off = 0; off < bytes; off += cb)
                CK(cudaMemcpyAsync(dbuf, (char *)h + off, bytes - off < cb ? bytes - off : cb,
                                   cudaMemcpyHostToDevice, 0));
            CK(cudaEventRecord(e1, 0));
            CK(cudaEventSynchronize(e1));
            float ms;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            if (ms < best) best = ms;
        }
        h2d = best;
        CK(cudaFree(dbuf));
    }
    printf("  %-28s %10.2f ms  (%.1f GB/s)\n", "H2D copy of every row", h2d, (double)bytes / h2d * 1e-6);

    double dev = 0, ta = 0;
    if (strchr(tiers, 'd')) {
        dev = time_tier(&mem, FKM_RES_DEVICE, chunk, k, c0, reps, &ta);
        printf("  %-28s %10.2f ms  (assign %.2f ms, %.0f TFLOP/s)\n", "device tier (compute only)", dev, ta,
               2.0 * n * k * d / ta * 1e-9);
    }
    if (strchr(tiers, 'h')) {
        double host = time_tier(&mem, FKM_RES_HOST, chunk, k, c0, reps, NULL);
        double floor = dev > h2d ? dev : h2d;
        printf("  %-28s %10.2f ms  = %.3f x max(compute, H2D) (target <= 1.1)\n", "host tier (pinned)", host,
               host / floor);
    }
    fkm_reader *r = NULL;
    fkm_rowsrc fs;
    fkm_filesrc ff;
    if (file && (strchr(tiers, 'f') || strchr(tiers, 'a'))) {
        fkm_error err;
        /* write the rows as an HDF5 fp16 dataset through fkm's own writer path: gen's layout */
        fkm_gen_params g = {file, "/data", n, d, 64, FKM_IO_F16, 1, 4.0, 1.0};
        double tw = fkm_now_ms();
        if (fkm_gen(&g, &err)) {
            fprintf(stderr, "bench_tiers: %s\n", err.msg);
            return 1;
        }
        printf("  (wrote %s in %.1f s)\n", file, (fkm_now_ms() - tw) / 1e3);
        fkm_dsinfo info;
        if (fkm_reader_open(file, "/data", &r, &info, &err)) {
            fprintf(stderr, "bench_tiers: %s\n", err.msg);
            return 1;
        }
        fkm_rowsrc_file(&fs, &ff, r, &info, 0, n);
    }
    if (r && strchr(tiers, 'f')) {
        double tf = time_tier(&fs, FKM_RES_FILE, chunk, k, c0, reps, NULL);
        printf("  %-28s %10.2f ms  (read rate %.2f GB/s)\n", "file tier (HDF5 re-read)", tf, (double)bytes / tf * 1e-6);
    }
    if (strchr(tiers, 'a')) measured_rule(&mem, r ? &fs : NULL, n, d, k, chunk, c0, reps, h2d);
    fkm_reader_close(r);
    CK(cudaFreeHost(h));
    free(c0);
    return 0;
}
