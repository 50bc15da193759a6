/* CPU backend benchmark (targets.md #6): time one Lloyd iteration (assign + update +
 * finalize) of the CPU backend on an in-memory Gaussian mixture, next to the machine's
 * measured sgemm rate, which sets the floor (2·N·K·D flops at that rate).
 *
 *   bench_cpu [N=200000] [D=128] [K=1024] [reps=5]
 */
#include "backend.h"
#include "rng.h"
#include "rowsrc.h"
#include "util.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 200000, d = argc > 2 ? atoll(argv[2]) : 128,
            k = argc > 3 ? atoll(argv[3]) : 1024;
    int reps = argc > 4 ? atoi(argv[4]) : 5;
    if (n < 1 || d < 1 || k < 1 || k > n || reps < 1) {
        fprintf(stderr, "usage: bench_cpu [N] [D] [K ≤ N] [reps]\n");
        return 2;
    }
    float *x = malloc((size_t)(n * d) * sizeof *x), *c = malloc((size_t)(k * d) * sizeof *c);
    const int64_t C = 64;
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) {
        uint64_t cl = fkm_rand_below(7, 1, (uint64_t)i, C);
        for (int64_t t = 0; t < d; t++)
            x[i * d + t] = (float)(20 * fkm_rand_unit(7, 2, cl * d + t) - 10 + fkm_rand_normal(7, 3, (uint64_t)(i * d + t)));
    }
    for (int64_t j = 0; j < k; j++)
        for (int64_t t = 0; t < d; t++) c[j * d + t] = x[((j * 104729) % n) * d + t];

    /* The ceiling: one multi-threaded sgemm of the same shape, in row blocks. */
    const int64_t blk = 8192;
    float *out = malloc((size_t)(blk * k) * sizeof *out);
#ifdef FKM_HAVE_OPENBLAS_THREADS
    openblas_set_num_threads(omp_get_max_threads());
#endif
    double best_gemm = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = fkm_now_ms();
        for (int64_t r0 = 0; r0 < n; r0 += blk) {
            int64_t m = n - r0 < blk ? n - r0 : blk;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)k, (int)d, 1.0f,
                        x + r0 * d, (int)d, c, (int)d, 0.0f, out, (int)k);
        }
        double t = fkm_now_ms() - t0;
        if (t < best_gemm) best_gemm = t;
    }
    free(out);
    double flops = 2.0 * (double)n * (double)k * (double)d;

    fkm_backend b;
    fkm_error err;
    fkm_rowsrc src;
    fkm_rowsrc_memory(&src, x, FKM_DT_F32, n, d);
    if (fkm_backend_cpu_create(&b, k, d, FKM_PREC_AUTO, FKM_METRIC_L2, &err) ||
        b.set_source(b.ctx, &src, FKM_RES_DEVICE, n, &err) ||
        b.set_centroids(b.ctx, c, k, &err)) {
        fprintf(stderr, "bench_cpu: %s\n", err.msg);
        return 1;
    }
    double *times = malloc((size_t)reps * sizeof *times), *ta = malloc((size_t)reps * sizeof *ta);
    fkm_step_times st;
    b.step(b.ctx, &st, &err); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double shift;
        int64_t empty;
        double t0 = fkm_now_ms();
        b.step(b.ctx, &st, &err);
        b.finalize(b.ctx, &shift, &empty, &err);
        times[r] = fkm_now_ms() - t0;
        ta[r] = st.ms_assign;
    }
    qsort(times, (size_t)reps, sizeof *times, cmp);
    qsort(ta, (size_t)reps, sizeof *ta, cmp);
    double med = times[reps / 2], meda = ta[reps / 2];
    printf("bench_cpu: N=%lld D=%lld K=%lld threads=%d fp32\n", (long long)n, (long long)d, (long long)k,
           omp_get_max_threads());
    printf("  sgemm ceiling      %8.1f ms  %6.1f GFLOP/s  (floor of the iteration)\n", best_gemm,
           flops / best_gemm * 1e-6);
    printf("  fkm iteration      %8.1f ms  %6.1f GFLOP/s  (median of %d; assign %.1f ms)\n", med,
           flops / med * 1e-6, reps, meda);
    printf("  iteration / floor  %8.2f\n", med / best_gemm);
    b.destroy(b.ctx);
    free(x); free(c); free(times); free(ta);
    return 0;
}
