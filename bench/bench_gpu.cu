/* bench_gpu: FlashAssign and a full Lloyd iteration on one GPU, against cuBLAS and a naive
 * baseline, in one run.
 *
 *   ceilings: cuBLAS bf16 GEMM 8192^3 (fp32 accumulate, bf16 out) = the card's measured peak;
 *             device-to-device copy of 1 GiB (bytes read + written) = bandwidth.
 *   per case (mode, N, K, D):
 *     floor       max(2NKD / peak, N*D*2 bytes / bandwidth)   (definition of targets.md)
 *     assign      fkm_k_assign alone, per kernel version (v1 mma.sync, v2 wgmma 4x64 rows,
 *                 v2b wgmma 2x128 rows) and the automatic choice
 *     iteration   assign + fkm_k_update + fkm_k_finalize with the centroids back to the compute
 *                 type and their norms (what the CUDA backend runs per Lloyd step on one GPU);
 *                 then the same with an event after the assign (the split), and the assign
 *                 alone again, now with cluster means as centroids: at the power cap it runs
 *                 slower on them than on the data points it starts from (bench/NOTES.md,
 *                 history 34)
 *     cublas      bf16 GEMM of the same shape (N x K x D, bf16 out, chunked over N to <= 2 GiB
 *                 of output): what materialising the products alone costs
 *     naive       GEMM into fp32 N x K distances (chunked) + argmin kernel + atomicAdd scatter
 *                 of the sums (f16 GEMM for fp16, TF32 GEMM for tf32, SGEMM for exact)
 * Times: CUDA events around each run, median of reps after warm-up. The data (>= 256 MB per
 * case) is several times the L2, so inputs are not rotated.
 * Data: Gaussian mixture, 1024 components, centres N(0, 1) per coordinate, noise sd 0.3;
 * centroids = K points drawn from the data.
 *
 * Usage: bench_gpu [--quick] [--auto-only] [--versions 0,11,17,...] [--rounds R] [case-name-substring ...]
 *   --auto-only: time only the automatic kernel choice and v1 (not every v2/v3 configuration);
 *   --versions: the kernel versions to time (0 = automatic choice), for 16-bit d <= 128 cases;
 *   --rounds R: the versions timed in turn, R rounds: medians, and each version's median ratio
 *     to the first listed one in the same round (the clock drifts over a run);
 *   --assign-only: no iteration, cuBLAS or naive baselines (for profiling the assign kernels). */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "assign_internal.h"
#include "fkm_kernels.h"

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (cudaError_t)(call);                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define CB(call)                                                                                   \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            fprintf(stderr, "%s:%d: %s failed: cublas status %d\n", __FILE__, __LINE__, #call, (int)s_); \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* ---------------- data ---------------- */
__device__ __forceinline__ uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}
__device__ __forceinline__ float gauss(uint64_t key)
{
    uint64_t h = mix64(key);
    float u1 = ((h >> 40) + 1) * (1.0f / 16777217.0f), u2 = ((h >> 16) & 0xFFFFFF) * (1.0f / 16777216.0f);
    return sqrtf(-2.f * logf(u1)) * cospif(2.f * u2);
}
__global__ void k_mixture(float *x, int64_t n, int d, int comps, uint64_t seed)
{
    int64_t total = n * d;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / d;
        int t = (int)(i - r * d);
        int comp = (int)(mix64(seed ^ (uint64_t)r * 0x9E3779B97F4A7C15ULL) % (uint64_t)comps);
        float centre = gauss((seed + 12345) * 1000003ULL + (uint64_t)comp * d + t);
        x[i] = centre + 0.3f * gauss(seed * 7919ULL + (uint64_t)i * 0xD1B54A32D192ED03ULL + 1);
    }
}
__global__ void k_pick_rows(const float *x, int64_t n, int d, float *c, int64_t k, uint64_t seed)
{
    int64_t total = k * d;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t j = i / d;
        int t = (int)(i - j * d);
        int64_t r = (int64_t)(mix64(seed * 31 + (uint64_t)j) % (uint64_t)n);
        c[i] = x[r * d + t];
    }
}
__global__ void k_fill_bf16(__nv_bfloat16 *p, int64_t n, uint64_t seed)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        p[i] = __float2bfloat16(gauss(seed + (uint64_t)i));
}

/* ---------------- naive baseline kernels ---------------- */
/* one warp per row: label = argmin_j (cn[j] - 2 dot[j]), ties to the lowest index */
__global__ void k_argmin(const float *dot, int64_t rows, int64_t k, const float *xn, const float *cn, int32_t *lab,
                         float *md)
{
    const int lane = threadIdx.x & 31;
    int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;
    if (r >= rows) return;
    const float *row = dot + r * k;
    float best = INFINITY;
    int bi = 0;
    for (int64_t j = lane; j < k; j += 32) {
        float v = cn[j] - 2.f * row[j];
        if (v < best) {
            best = v;
            bi = (int)j;
        }
    }
    for (int off = 16; off; off >>= 1) {
        float ob = __shfl_xor_sync(0xffffffffu, best, off);
        int oi = __shfl_xor_sync(0xffffffffu, bi, off);
        if (ob < best || (ob == best && oi < bi)) {
            best = ob;
            bi = oi;
        }
    }
    if (lane == 0) {
        lab[r] = bi;
        md[r] = fmaxf(xn[r] + best, 0.f);
    }
}
template <typename T>
__global__ void k_scatter(const T *x, int64_t n, int d, int ld, const int32_t *lab, float *sums, float *counts)
{
    int64_t total = n * d;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / d;
        int t = (int)(i - r * d);
        int l = lab[r];
        atomicAdd(&sums[(int64_t)l * d + t], (float)x[r * ld + t]);
        if (t == 0) atomicAdd(&counts[l], 1.f);
    }
}

/* ---------------- timing ---------------- */
static cudaStream_t g_s;
static double time_ms(const std::function<void()> &fn, int warm = 2, int reps = -1)
{
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    float first = 0;
    for (int i = 0; i < warm; ++i) {
        CK(cudaEventRecord(a, g_s));
        fn();
        CK(cudaEventRecord(b, g_s));
        CK(cudaEventSynchronize(b));
        CK(cudaEventElapsedTime(&first, a, b));
    }
    if (reps < 0) reps = std::max(3, std::min(25, (int)(400.0 / std::max(first, 0.01f))));
    std::vector<float> t(reps);
    for (int i = 0; i < reps; ++i) {
        CK(cudaEventRecord(a, g_s));
        fn();
        CK(cudaEventRecord(b, g_s));
        CK(cudaEventSynchronize(b));
        CK(cudaEventElapsedTime(&t[i], a, b));
    }
    CK(cudaGetLastError());
    std::sort(t.begin(), t.end());
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    return t[reps / 2];
}

/* Medians of fn1's time, fn2's time and their sum when run back to back (an event between):
 * the parts inside a real iteration, where timing them apart has missed the iteration. */
static void time_split(const std::function<void()> &fn1, const std::function<void()> &fn2, int reps,
                       double *t1, double *t2, double *t12)
{
    cudaEvent_t e[3];
    for (auto &v : e) CK(cudaEventCreate(&v));
    std::vector<float> a, b, ab;
    for (int i = 0; i < reps + 2; ++i) {
        CK(cudaEventRecord(e[0], g_s));
        fn1();
        CK(cudaEventRecord(e[1], g_s));
        fn2();
        CK(cudaEventRecord(e[2], g_s));
        CK(cudaEventSynchronize(e[2]));
        float x, y;
        CK(cudaEventElapsedTime(&x, e[0], e[1]));
        CK(cudaEventElapsedTime(&y, e[1], e[2]));
        if (i < 2) continue; /* warm-up */
        a.push_back(x);
        b.push_back(y);
        ab.push_back(x + y);
    }
    for (auto &v : e) CK(cudaEventDestroy(v));
    auto med = [](std::vector<float> &v) { std::sort(v.begin(), v.end()); return (double)v[v.size() / 2]; };
    *t1 = med(a);
    *t2 = med(b);
    *t12 = med(ab);
}

struct Case {
    const char *name;
    fkm_kmode mode;
    int64_t n, k;
    int d;
    double fk_h100, fk_h100_assign, fk_h200, fk_h200_assign; /* flash-kmeans 0.2 figures (targets.md) */
};

static const char *mode_name(fkm_kmode m)
{
    return m == FKM_K_F16 ? "fp16" : m == FKM_K_BF16 ? "bf16" : m == FKM_K_TF32 ? "tf32" : "exact";
}

/* The trace of a TRACE version (42, 43): block 0's two consumers, per step, SM clocks at
 * [0] stage wait begins, [1] stage full, [2] wgmma committed, [3] wgmma complete, [4] stage
 * released, and on a point tile's last step [5] finalize done, [6] next X full. Prints the
 * point-tile change (finalize, wait for X, load_a up to the next step's [0]), the mean of each
 * phase (cycles; the point-tile change steps j = 0 apart),
 * the share of the window with a wgmma of 0, 1 or 2 consumers in flight ([1, 3]), and the tensor
 * cycles the steps need at full rate (1024 per consumer step) against the window. */
static void trace_summary(int ver, int nJ)
{
    constexpr int MAXS = 1024, NP = 7;
    static unsigned long long tr[2][MAXS][NP];
    const int kept = fkm_k_assign_v3_trace(&tr[0][0][0], MAXS);
    if (kept <= 0) {
        printf("  trace v%d: none (%d)\n", ver, kept);
        return;
    }
    int ns = 0; /* steps both consumers stamped completely */
    while (ns < MAXS && tr[0][ns][4] && tr[1][ns][4]) ++ns;
    const int s0 = ns > 64 ? 16 : 0; /* skip the start */
    if (ns - s0 < 8) {
        printf("  trace v%d: %d steps only\n", ver, ns);
        return;
    }
    for (int c = 0; c < 2; ++c) { /* the point-tile changes: finalize, wait for X, load_a */
        double f = 0, xw = 0, la = 0;
        int nc = 0;
        for (int s = s0; s + 1 < ns; ++s)
            if (s % nJ == nJ - 1 && tr[c][s][5] && tr[c][s][6]) {
                f += (double)(tr[c][s][5] - tr[c][s][4]);
                xw += (double)(tr[c][s][6] - tr[c][s][5]);
                la += (double)(tr[c][s + 1][0] - tr[c][s][6]);
                nc++;
            }
        if (nc)
            printf("  trace v%d consumer %d tile change (%4d): finalize %6.0f  wait for X %6.0f  load_a %6.0f\n", ver, c,
                   nc, f / nc, xw / nc, la / nc);
    }
    for (int c = 0; c < 2; ++c) {
        double m[2][5] = {{0}}; /* [j == 0][wait, issue, wgmma, epilogue, period] */
        int cnt[2] = {0, 0};
        for (int s = s0; s + 1 < ns; ++s) {
            const int z = s % nJ == 0;
            const unsigned long long *t = tr[c][s];
            m[z][0] += (double)(t[1] - t[0]);
            m[z][1] += (double)(t[2] - t[1]);
            m[z][2] += (double)(t[3] - t[2]);
            m[z][3] += (double)(t[4] - t[3]);
            m[z][4] += (double)(tr[c][s + 1][0] - t[0]);
            cnt[z]++;
        }
        for (int z = 0; z < 2; ++z)
            if (cnt[z])
                printf("  trace v%d consumer %d %s (%4d steps): wait %6.0f  issue %5.0f  wgmma %6.0f  epilogue %6.0f  period %6.0f\n",
                       ver, c, z ? "j=0 " : "j>0 ", cnt[z], m[z][0] / cnt[z], m[z][1] / cnt[z], m[z][2] / cnt[z],
                       m[z][3] / cnt[z], m[z][4] / cnt[z]);
    }
    /* wgmma in flight: events +1 at [1], -1 at [3], over [begin, end) of the window */
    std::vector<std::pair<unsigned long long, int>> ev;
    const unsigned long long b = std::max(tr[0][s0][0], tr[1][s0][0]);
    const unsigned long long e = std::min(tr[0][ns - 1][4], tr[1][ns - 1][4]);
    int steps_in = 0;
    for (int c = 0; c < 2; ++c)
        for (int s = s0; s < ns; ++s) {
            const unsigned long long lo = std::max(tr[c][s][1], b), hi = std::min(tr[c][s][3], e);
            if (lo >= hi) continue;
            ev.push_back({lo, +1});
            ev.push_back({hi, -1});
            steps_in++;
        }
    std::sort(ev.begin(), ev.end());
    double in[3] = {0, 0, 0};
    int cur = 0;
    unsigned long long last = b;
    for (auto &p : ev) {
        in[std::min(cur, 2)] += (double)(p.first - last);
        last = p.first;
        cur += p.second;
    }
    in[std::min(cur, 2)] += (double)(e - last);
    const double win = (double)(e - b);
    printf("  trace v%d window %.0f cycles: in flight 0 / 1 / 2 wgmma %.1f / %.1f / %.1f %%; "
           "%d steps x 1024 = %.1f %% of the window\n",
           ver, win, 100 * in[0] / win, 100 * in[1] / win, 100 * in[2] / win, steps_in, 100.0 * steps_in * 1024 / win);
    /* a few steps raw, relative to the first shown, for a timeline */
    const int r0 = std::min(ns - 12, s0 + 2 * nJ - 3 > s0 ? s0 + 2 * nJ - 3 : s0);
    const unsigned long long base = std::min(tr[0][r0][0], tr[1][r0][0]);
    for (int s = r0; s < r0 + 8 && s < ns; ++s)
        printf("    s %4d%s  c0 %7lld %7lld %7lld %7lld %7lld   c1 %7lld %7lld %7lld %7lld %7lld\n", s,
               s % nJ == 0 ? "*" : " ", (long long)(tr[0][s][0] - base), (long long)(tr[0][s][1] - base),
               (long long)(tr[0][s][2] - base), (long long)(tr[0][s][3] - base), (long long)(tr[0][s][4] - base),
               (long long)(tr[1][s][0] - base), (long long)(tr[1][s][1] - base), (long long)(tr[1][s][2] - base),
               (long long)(tr[1][s][3] - base), (long long)(tr[1][s][4] - base));
}

int main(int argc, char **argv)
{
    bool quick = false, auto_only = false, assign_only = false;
    int rounds = 1; /* --rounds R: the versions timed in turn R times (medians; against clock drift) */
    std::vector<std::string> filters;
    /* every selectable version: v1 mma.sync, v2 configurations, v3 configurations; numbers up to
     * MAX_VERSION (the per-version tables below are indexed by it) */
    constexpr int MAX_VERSION = 127;
    std::vector<int> all_versions = {0, 1, 5, 3, 4, 9, 10, 11, 12, 13, 7, 8, 14, 15, 16, 17, 18, 20, 21, 22, 23, 24, 19, 25, 29, 33, 34, 35, 36, 37, 38, 48, 53, 66, 75, 76, 28, 30, 31};
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--auto-only")) auto_only = true;
        else if (!strcmp(argv[i], "--assign-only")) assign_only = true;
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            rounds = atoi(argv[++i]);
            if (rounds < 1 || rounds > 100) {
                fprintf(stderr, "bench_gpu: --rounds wants 1..100\n");
                return 2;
            }
        }
        else if (!strcmp(argv[i], "--versions") && i + 1 < argc) {
            all_versions.clear();
            for (const char *q = argv[++i]; *q;) {
                char *end;
                long v = strtol(q, &end, 10);
                if (end == q || v < 0 || v > MAX_VERSION) {
                    fprintf(stderr, "bench_gpu: bad --versions list\n");
                    return 2;
                }
                all_versions.push_back((int)v);
                q = *end == ',' ? end + 1 : end;
            }
            if (all_versions.empty() || all_versions[0] != 0) all_versions.insert(all_versions.begin(), 0);
        } else filters.push_back(argv[i]);
    }
    auto timing_only = [](int v) { return v == 7 || v == 8 || v == 14 || v == 15 || v == 19 || v == 28 || v == 30 || v == 31; };
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("bench_gpu: no CUDA device\n");
        return 77;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const bool h200 = strstr(prop.name, "H200") != nullptr;
    printf("device: %s, %d SMs, L2 %.0f MB, %.1f GB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize / 1e6,
           prop.totalGlobalMem / 1e9);
    CK(cudaStreamCreateWithFlags(&g_s, cudaStreamNonBlocking));
    cublasHandle_t cb;
    CB(cublasCreate(&cb));
    CB(cublasSetStream(cb, g_s));
    const float one = 1.f, zero = 0.f;

    /* ---- ceilings ---- */
    double peak_tflops, bw_tbs;
    {
        const int S = 8192;
        __nv_bfloat16 *A, *B, *C;
        CK(cudaMalloc(&A, (size_t)S * S * 2));
        CK(cudaMalloc(&B, (size_t)S * S * 2));
        CK(cudaMalloc(&C, (size_t)S * S * 2));
        k_fill_bf16<<<1024, 256, 0, g_s>>>(A, (int64_t)S * S, 1);
        k_fill_bf16<<<1024, 256, 0, g_s>>>(B, (int64_t)S * S, 2);
        double ms = time_ms(
            [&] {
                CB(cublasGemmEx(cb, CUBLAS_OP_T, CUBLAS_OP_N, S, S, S, &one, A, CUDA_R_16BF, S, B, CUDA_R_16BF, S,
                                &zero, C, CUDA_R_16BF, S, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            },
            3, 15);
        peak_tflops = 2.0 * S * S * (double)S / (ms * 1e-3) / 1e12;
        CK(cudaFree(A));
        CK(cudaFree(B));
        CK(cudaFree(C));
        const size_t bytes = (size_t)1 << 30;
        void *src, *dst;
        CK(cudaMalloc(&src, bytes));
        CK(cudaMalloc(&dst, bytes));
        CK(cudaMemsetAsync(src, 1, bytes, g_s));
        double cms = time_ms([&] { CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_s)); }, 3, 15);
        bw_tbs = 2.0 * bytes / (cms * 1e-3) / 1e12;
        CK(cudaFree(src));
        CK(cudaFree(dst));
        printf("measured: bf16 GEMM 8192^3 %.1f TFLOP/s (%.3f ms); D2D copy %.2f TB/s (read+write)\n", peak_tflops, ms,
               bw_tbs);
    }

    std::vector<Case> cases = {
        {"fp16-1M-1k", FKM_K_F16, 1 << 20, 1024, 128, 1.28, 0.83, 1.24, 0.83},
        {"fp16-1M-8k", FKM_K_F16, 1 << 20, 8192, 128, 6.31, 5.75, 6.28, 5.77},
        {"fp16-8M-1k", FKM_K_F16, 8 << 20, 1024, 128, 8.14, 6.21, 7.88, 6.37},
        {"fp16-1M-64k", FKM_K_F16, 1 << 20, 65536, 128, 46.8, 46.0, 47.9, 46.7},
        {"fp16-1M-16k", FKM_K_F16, 1 << 20, 16384, 128, 0, 0, 0, 0},
        {"fp16-1M-32k", FKM_K_F16, 1 << 20, 32768, 128, 0, 0, 0, 0},
        {"bf16-1M-8k", FKM_K_BF16, 1 << 20, 8192, 128, 0, 0, 0, 0},
        {"tf32-1M-8k", FKM_K_TF32, 1 << 20, 8192, 128, 0, 0, 0, 0},
        {"exact-1M-8k", FKM_K_EXACT, 1 << 20, 8192, 128, 0, 0, 0, 0},
    };
    if (quick)
        for (auto &c : cases) c.n = std::min<int64_t>(c.n, 1 << 18);

    struct Row {
        std::string line;
    };
    std::vector<std::string> table, vtable, ptable;
    for (const Case &cs : cases) {
        if (!filters.empty()) {
            bool any = false;
            for (auto &f : filters) any |= strstr(cs.name, f.c_str()) != nullptr;
            if (!any) continue;
        }
        const int64_t n = cs.n, k = cs.k;
        const int d = cs.d;
        const fkm_kmode mode = cs.mode;
        const int ld = fkm_k_ld(mode, d), eb = fkm_k_elem_bytes(mode);
        printf("\n== %s: mode %s N=%lld K=%lld D=%d ==\n", cs.name, mode_name(mode), (long long)n, (long long)k, d);
        fflush(stdout);
        float *xf, *cf, *xn, *cn, *md, *c32;
        void *x, *c;
        int32_t *lab;
        CK(cudaMalloc(&xf, (size_t)n * d * 4));
        CK(cudaMalloc(&cf, (size_t)k * d * 4));
        CK(cudaMalloc(&x, (size_t)n * ld * eb));
        CK(cudaMalloc(&c, (size_t)k * ld * eb));
        CK(cudaMalloc(&xn, (size_t)n * 4));
        CK(cudaMalloc(&cn, (size_t)k * 4));
        CK(cudaMalloc(&lab, (size_t)n * 4));
        CK(cudaMalloc(&md, (size_t)n * 4));
        CK(cudaMalloc(&c32, (size_t)k * d * 4));
        k_mixture<<<4096, 256, 0, g_s>>>(xf, n, d, 1024, 42);
        k_pick_rows<<<1024, 256, 0, g_s>>>(xf, n, d, cf, k, 7);
        CK(fkm_k_convert_rows(mode, xf, n, d, x, ld, (fkm_stream)g_s));
        CK(fkm_k_convert_rows(mode, cf, k, d, c, ld, (fkm_stream)g_s));
        CK(fkm_k_row_norms(mode, x, n, d, ld, xn, (fkm_stream)g_s));
        CK(fkm_k_row_norms(mode, c, k, d, ld, cn, (fkm_stream)g_s));
        CK(cudaMemcpyAsync(c32, cf, (size_t)k * d * 4, cudaMemcpyDeviceToDevice, g_s));
        size_t wsb = fkm_k_assign_workspace(mode, n, k, d);
        void *ws = nullptr;
        if (wsb) CK(cudaMalloc(&ws, wsb));
        CK(cudaStreamSynchronize(g_s));

        fkm_assign_args a;
        memset(&a, 0, sizeof a);
        a.mode = mode;
        a.x = x;
        a.n = n;
        a.d = d;
        a.ldx = ld;
        a.x_norm = xn;
        a.c = c;
        a.k = k;
        a.ldc = ld;
        a.c_norm = cn;
        a.labels = lab;
        a.min_dist = md;
        a.workspace = ws;
        auto assign = [&] { CK(fkm_k_assign(&a, (fkm_stream)g_s)); };

        const double flops = 2.0 * n * k * d;
        const double floor_ms =
            std::max(flops / (peak_tflops * 1e12), (double)n * d * 2 / (bw_tbs * 1e12)) * 1e3;

        /* assign alone, per version (0 = automatic choice; see assign.cu for the numbers) */
        const bool v2able = (mode == FKM_K_F16 || mode == FKM_K_BF16) && d <= 128;
        std::vector<int> versions = {0};
        if (v2able) versions = all_versions;
        if (v2able && auto_only) versions = {0, 1};
        int auto_ver = 0;
        double t_v[MAX_VERSION + 1] = {0};
        /* rounds > 1: every version once per round, in list order; the GPU's clock drifts with its
         * temperature and power over a run (the first-timed version was seen up to 10 % faster),
         * so a version is reported as its median over the rounds and as the median over rounds
         * of its time divided by that of the first listed version in the same round */
        std::vector<std::vector<double>> t_r(MAX_VERSION + 1);
        auto report = [&](int ver, double ms, const std::string &extra) {
            printf("  assign %-5s: %8.3f ms  %6.1f TFLOP/s  (%4.1f%% of peak)%s%s\n",
                   ver == 0 ? "auto" : ("v" + std::to_string(ver)).c_str(), ms, flops / (ms * 1e9),
                   100.0 * flops / (ms * 1e9) / peak_tflops, extra.c_str(),
                   timing_only(ver) ? "  [no epilogue: timing only]" : "");
            fflush(stdout);
        };
        for (int rd = 0; rd < rounds; ++rd)
            for (int ver : versions) {
                fkm_k_assign_force_version(ver);
                double ms = time_ms(assign);
                t_r[ver].push_back(ms);
                if (ver == 0) auto_ver = fkm_k_assign_last_version();
                if (rd == 0 && (ver == 42 || ver == 43)) trace_summary(ver, (int)((k + 127) / 128));
                if (rounds > 1) continue;
                t_v[ver] = ms;
                report(ver, ms, "");
            }
        if (rounds > 1) {
            auto median = [](std::vector<double> v) {
                std::sort(v.begin(), v.end());
                return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
            };
            const int ref = versions.size() > 1 ? versions[1] : 0;
            for (int ver : versions) {
                if (t_r[ver].empty() || t_v[ver] > 0) continue; /* a version listed twice: once */
                std::vector<double> ratio;
                for (int rd = 0; rd < rounds; ++rd) ratio.push_back(t_r[ver][rd] / t_r[ref][rd]);
                t_v[ver] = median(t_r[ver]);
                char ex[96];
                snprintf(ex, sizeof ex, "  rounds %d: %.3f..%.3f, x v%d %.3f", rounds,
                         *std::min_element(t_r[ver].begin(), t_r[ver].end()),
                         *std::max_element(t_r[ver].begin(), t_r[ver].end()), ref, median(ratio));
                report(ver, t_v[ver], ex);
            }
        }
        if (v2able && !auto_only) {
            char vb[1024];
            int o = snprintf(vb, sizeof vb, "| %-11s |", cs.name);
            for (size_t q = 1; q < versions.size(); ++q) o += snprintf(vb + o, sizeof vb - o, " %6.3f |", t_v[versions[q]]);
            vtable.push_back(vb);
            /* the same as % of the measured GEMM peak */
            o = snprintf(vb, sizeof vb, "| %-11s |", cs.name);
            for (size_t q = 1; q < versions.size(); ++q)
                o += snprintf(vb + o, sizeof vb - o, " %5.1f%% |", 100.0 * flops / (t_v[versions[q]] * 1e9) / peak_tflops);
            ptable.push_back(vb);
        }
        /* the automatic choice (what fkm_k_assign does by default) is used below */
        fkm_k_assign_force_version(0);
        const double t_assign = t_v[0];
        printf("  automatic choice: v%d\n", auto_ver);
        int flagged = -1;
        if (ws && mode == FKM_K_EXACT) {
            assign();
            CK(cudaStreamSynchronize(g_s));
            CK(cudaMemcpy(&flagged, (char *)ws + FKM_EXACT_WS_FLAG_COUNT_OFFSET, 4, cudaMemcpyDeviceToHost));
            printf("  exact: %d of %lld points (%.3f%%) re-decided in fp64\n", flagged, (long long)n,
                   100.0 * flagged / n);
        }

        /* full iteration */
        double t_it = 0, t_upd = 0;
        if (!assign_only) {
            size_t ub = fkm_k_update_workspace(n, k, d);
            void *uws;
            double *stats, *out2;
            CK(cudaMalloc(&uws, ub ? ub : 16));
            CK(cudaMalloc(&stats, (size_t)(k * d + k + 1) * 8));
            CK(cudaMalloc(&out2, 16));
            auto update = [&] {
                CK(fkm_k_update(mode, x, n, d, ld, lab, md, nullptr, k, stats, uws, ub, (fkm_stream)g_s));
            };
            /* the rest: new centroids from the stats, back to the compute type, their norms
             * (one fused kernel, as the backend runs it; apart for comparison) */
            auto rest = [&] { CK(fkm_k_finalize(stats, k, d, 0, c32, out2, mode, c, ld, cn, (fkm_stream)g_s)); };
            auto fin = [&] { CK(fkm_k_finalize(stats, k, d, 0, c32, out2, mode, nullptr, 0, nullptr, (fkm_stream)g_s)); };
            auto cvt = [&] { CK(fkm_k_convert_rows(mode, c32, k, d, c, ld, (fkm_stream)g_s)); };
            auto nrm = [&] { CK(fkm_k_row_norms(mode, c, k, d, ld, cn, (fkm_stream)g_s)); };
            auto iter = [&] {
                assign();
                update();
                rest();
            };
            assign();
            t_upd = time_ms(update);
            const double t_rest = time_ms(rest);
            const double t_fin = time_ms(fin), t_cvt = time_ms(cvt), t_nrm = time_ms(nrm);
            t_it = time_ms(iter);
            double s_a, s_u, s_it;
            time_split(assign, [&] { update(); rest(); }, 9, &s_a, &s_u, &s_it);
            /* the assign alone again, now with the iterations' centroids (cluster means) */
            const double t_assign_means = time_ms(assign);
            printf("  update     : %8.3f ms (%.1f%% of assign)\n", t_upd, 100.0 * t_upd / t_assign);
            printf("  finalize+convert+norms: %8.3f ms fused (apart: %.3f + %.3f + %.3f)\n", t_rest, t_fin, t_cvt, t_nrm);
            printf("  iteration  : %8.3f ms (assign + update + rest = %.3f)\n", t_it, t_assign + t_upd + t_rest);
            printf("  iteration split: assign %.3f + update and rest %.3f = %.3f ms; the assign alone after it %.3f\n",
                   s_a, s_u, s_it, t_assign_means);
            CK(cudaFree(uws));
            CK(cudaFree(stats));
            CK(cudaFree(out2));
        }

        /* cuBLAS bf16 GEMM of the same shape, chunked over N */
        double t_gemm = 0;
        if (!assign_only) {
            __nv_bfloat16 *xb, *cbf, *out;
            CK(cudaMalloc(&xb, (size_t)n * ld * 2));
            CK(cudaMalloc(&cbf, (size_t)k * ld * 2));
            CK(fkm_k_convert_rows(FKM_K_BF16, xf, n, d, xb, fkm_k_ld(FKM_K_BF16, d), (fkm_stream)g_s));
            CK(fkm_k_convert_rows(FKM_K_BF16, cf, k, d, cbf, fkm_k_ld(FKM_K_BF16, d), (fkm_stream)g_s));
            const int ldb = fkm_k_ld(FKM_K_BF16, d);
            int64_t chunk = std::min<int64_t>(n, ((int64_t)2 << 30) / (k * 2));
            CK(cudaMalloc(&out, (size_t)chunk * k * 2));
            t_gemm = time_ms(
                [&] {
                    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
                        int rows = (int)std::min(chunk, n - r0);
                        CB(cublasGemmEx(cb, CUBLAS_OP_T, CUBLAS_OP_N, (int)k, rows, d, &one, cbf, CUDA_R_16BF, ldb,
                                        xb + r0 * ldb, CUDA_R_16BF, ldb, &zero, out, CUDA_R_16BF, (int)k,
                                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
                    }
                },
                1);
            printf("  cuBLAS bf16 GEMM same shape: %8.3f ms (%.1f TFLOP/s)\n", t_gemm, flops / (t_gemm * 1e9));
            CK(cudaFree(xb));
            CK(cudaFree(cbf));
            CK(cudaFree(out));
        }

        /* naive: GEMM -> fp32 distances (chunked) + argmin + atomic scatter */
        double t_naive = 0;
        if (!assign_only) {
            int64_t chunk = std::min<int64_t>(n, ((int64_t)2 << 30) / (k * 4));
            float *dot, *sums, *counts;
            CK(cudaMalloc(&dot, (size_t)chunk * k * 4));
            CK(cudaMalloc(&sums, (size_t)k * d * 4));
            CK(cudaMalloc(&counts, (size_t)k * 4));
            cudaDataType_t dt = mode == FKM_K_F16 ? CUDA_R_16F : mode == FKM_K_BF16 ? CUDA_R_16BF : CUDA_R_32F;
            cublasComputeType_t ct = mode == FKM_K_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
            t_naive = time_ms(
                [&] {
                    CK(cudaMemsetAsync(sums, 0, (size_t)k * d * 4, g_s));
                    CK(cudaMemsetAsync(counts, 0, (size_t)k * 4, g_s));
                    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
                        int rows = (int)std::min(chunk, n - r0);
                        CB(cublasGemmEx(cb, CUBLAS_OP_T, CUBLAS_OP_N, (int)k, rows, d, &one, c, dt, ld,
                                        (const char *)x + (size_t)r0 * ld * eb, dt, ld, &zero, dot, CUDA_R_32F, (int)k,
                                        ct, CUBLAS_GEMM_DEFAULT));
                        k_argmin<<<(unsigned)((rows * 32 + 255) / 256), 256, 0, g_s>>>(dot, rows, k, xn + r0, cn,
                                                                                        lab + r0, md + r0);
                    }
                    if (eb == 2) {
                        if (mode == FKM_K_F16)
                            k_scatter<__half><<<8192, 256, 0, g_s>>>((const __half *)x, n, d, ld, lab, sums, counts);
                        else
                            k_scatter<__nv_bfloat16>
                                <<<8192, 256, 0, g_s>>>((const __nv_bfloat16 *)x, n, d, ld, lab, sums, counts);
                    } else {
                        k_scatter<float><<<8192, 256, 0, g_s>>>((const float *)x, n, d, ld, lab, sums, counts);
                    }
                },
                1, n * k > ((int64_t)1 << 34) ? 2 : 3);
            printf("  naive (GEMM + argmin + atomics): %8.3f ms\n", t_naive);
            CK(cudaFree(dot));
            CK(cudaFree(sums));
            CK(cudaFree(counts));
        }

        char buf[512];
        const double fk = h200 ? cs.fk_h200 : cs.fk_h100, fka = h200 ? cs.fk_h200_assign : cs.fk_h100_assign;
        char fkbuf[64] = "-";
        if (fk > 0) snprintf(fkbuf, sizeof fkbuf, "%.2f (%.2f)", fk, fka);
        char vname[16];
        snprintf(vname, sizeof vname, "v%d", auto_ver);
        snprintf(buf, sizeof buf,
                 "| %-11s | %6.2f | %7.3f | %-4s | %7.3f | %6.1f | %5.1f%% | %7.2f | %8.1f | %6.1fx | %-13s | %s |",
                 cs.name, floor_ms, t_assign, vname, t_it, flops / (t_assign * 1e9),
                 100.0 * flops / (t_assign * 1e9) / peak_tflops,
                 t_gemm, t_naive, t_naive / t_it, fkbuf,
                 fk > 0 ? (std::to_string(fk / t_it).substr(0, 4) + "x").c_str() : "-");
        table.push_back(buf);
        if (flagged >= 0) {
            snprintf(buf, sizeof buf, "|   (exact: %d points, %.3f%%, re-decided in fp64) |", flagged, 100.0 * flagged / n);
            table.push_back(buf);
        }

        CK(cudaFree(xf));
        CK(cudaFree(cf));
        CK(cudaFree(x));
        CK(cudaFree(c));
        CK(cudaFree(xn));
        CK(cudaFree(cn));
        CK(cudaFree(lab));
        CK(cudaFree(md));
        CK(cudaFree(c32));
        if (ws) CK(cudaFree(ws));
    }

    printf("\n%s; peak = measured bf16 GEMM %.1f TFLOP/s, bandwidth %.2f TB/s. Times in ms, medians.\n", prop.name,
           peak_tflops, bw_tbs);
    printf("| case        | floor  | assign  | ver  | iter    | TFLOP/s| %%peak  | cuBLAS  | naive    "
           "| naive/it| flash-kmeans  | fk/iter |\n");
    printf("|-------------|--------|---------|------|---------|--------|--------|---------|----------"
           "|---------|---------------|---------|\n");
    for (auto &l : table) printf("%s\n", l.c_str());
    if (!vtable.empty()) {
        printf("\nassign ms per kernel version (v1 mma.sync; v3..v15 wgmma (v2 family), v16..v24 warp-specialised "
               "TMA wgmma (v3 family), see kernels/assign.cu; v7, v8, v14, v15, v19 = no epilogue, timing only)\n");
        std::string hdr = "| case        |", sep = "|-------------|";
        for (size_t q = 1; q < all_versions.size(); ++q) {
            char h[32];
            snprintf(h, sizeof h, " %5s%s |", ("v" + std::to_string(all_versions[q])).c_str(),
                     timing_only(all_versions[q]) ? "*" : " ");
            hdr += h;
            sep += "--------|";
        }
        printf("%s\n%s\n", hdr.c_str(), sep.c_str());
        for (auto &l : vtable) printf("%s\n", l.c_str());
        printf("\nthe same as %% of the measured bf16 GEMM peak (* = no epilogue)\n%s\n%s\n", hdr.c_str(), sep.c_str());
        for (auto &l : ptable) printf("%s\n", l.c_str());
    }
    printf("(assign = fkm_k_assign's automatic kernel choice (ver); iter = that assign + update + finalize + centroid "
           "convert + norms; TFLOP/s and %%peak of assign; flash-kmeans = targets.md figure for this card: iteration "
           "(assign); cuBLAS = bf16 GEMM of the same shape writing N x K)\n");
    CB(cublasDestroy(cb));
    return 0;
}
