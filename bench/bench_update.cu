/* Timing of fkm_k_update (sort-inverse update) on the GPU, with CUDA events after warm-up,
 * median of N runs, over label layouts that matter: uniform, skewed (half the rows in one
 * cluster), sorted (sequential reads: the kernel's own bandwidth ceiling), one cluster, and
 * a few shapes. A read-only kernel over the same rows
 * gives the device's achievable read bandwidth, hence the floor.
 *
 *   bench_update [iters]        env: FKM_UPDATE_ROWS_PER_LANE=… to try piece sizes,
 *                               FKM_UPDATE_SHORT_ROWS=S (the chunk reduce where n <= S k; 0:
 *                               never) and FKM_UPDATE_SUB=… (its range length)
 *   bench_update iters n k      one case: f16, d = 128, uniform labels (for a profiler)
 * Built four times: bench_update (the library's kernels), bench_update_u4 (4 rows in flight
 * per thread in the reduce), bench_update_nopf (no prefetch of the next row ids) and
 * bench_update_mb4 (registers for 4 blocks per SM). */
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <vector>

#include "fkm_kernels.h"

#define CK(call)                                                                               \
    do {                                                                                       \
        cudaError_t e_ = (cudaError_t)(call);                                                  \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "%s:%d: %s: %s (%s)\n", __FILE__, __LINE__, cudaGetErrorName(e_), \
                    cudaGetErrorString(e_), #call);                                            \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

__device__ __forceinline__ uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

template <typename T> __global__ void k_fill_x(T *x, int64_t n, int d, int ld)
{
    const int64_t total = n * ld;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int c = (int)(e % ld);
        const float f = c < d ? (float)((int64_t)(mix(e) >> 40) - (1 << 23)) * (1.0f / (1 << 20)) : 0.0f;
        x[e] = (T)f;
    }
}

enum { L_UNIFORM, L_SKEW50, L_SORTED, L_ONE };
static const char *lname[] = {"uniform", "skew50%", "sorted", "one"};

__global__ void k_fill_labels(int32_t *lab, float *md, int64_t n, int64_t k, int mode)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const uint64_t h = mix((uint64_t)i ^ 0xabcdef12345ULL);
    int64_t l;
    if (mode == L_SORTED) l = i * k / n;
    else if (mode == L_ONE) l = k / 2;
    else if (mode == L_SKEW50 && (h & 1)) l = k / 3;
    else l = (int64_t)((h >> 8) % (uint64_t)k);
    lab[i] = (int32_t)l;
    md[i] = (float)(h >> 44) * (1.0f / 1048576.0f);
}

__global__ void k_read(const int4 *p, int64_t nv, int *out)
{
    int acc = 0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < nv; i += (int64_t)gridDim.x * blockDim.x) {
        const int4 v = __ldcs(p + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x7fffffff) out[0] = acc; /* keep the loads */
}

static int iters = 20;

template <typename F> static double median_ms(F f, cudaStream_t s)
{
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int w = 0; w < 3; w++) f();
    std::vector<float> ms;
    for (int it = 0; it < iters; it++) {
        CK(cudaEventRecord(e0, s));
        f();
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        float t;
        CK(cudaEventElapsedTime(&t, e0, e1));
        ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return ms[ms.size() / 2];
}

static void run_case(fkm_kmode mode, int64_t n, int64_t k, int d, int lmode, cudaStream_t s)
{
    const int eb = (mode == FKM_K_F16 || mode == FKM_K_BF16) ? 2 : 4;
    const int ld = (d + 16 / eb - 1) / (16 / eb) * (16 / eb);
    void *x;
    int32_t *lab;
    float *md;
    double *stats;
    void *ws;
    CK(cudaMalloc(&x, (size_t)(n * ld) * eb));
    CK(cudaMalloc(&lab, (size_t)n * 4));
    CK(cudaMalloc(&md, (size_t)n * 4));
    CK(cudaMalloc(&stats, (size_t)(k * d + k + 1) * 8));
    if (eb == 2) k_fill_x<__half><<<4096, 256, 0, s>>>((__half *)x, n, d, ld);
    else k_fill_x<float><<<4096, 256, 0, s>>>((float *)x, n, d, ld);
    k_fill_labels<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(lab, md, n, k, lmode);
    CK(cudaGetLastError());
    const size_t wsb = fkm_k_update_workspace(n, k, d);
    CK(cudaMalloc(&ws, wsb));
    double ms = median_ms([&] { CK(fkm_k_update(mode, x, n, d, ld, lab, md, nullptr, k, stats, ws, wsb, (fkm_stream)s)); }, s);
    const double gb = (double)n * ld * eb / 1e9;
    printf("%-5s n=%-8lld k=%-6lld d=%-5d %-8s %8.3f ms  %6.0f GB/s of rows  ws %.0f MiB\n",
           eb == 2 ? "f16" : "f32", (long long)n, (long long)k, d, lname[lmode], ms,
           gb / (ms * 1e-3), (double)wsb / (1 << 20));
    fflush(stdout);
    CK(cudaFree(x));
    CK(cudaFree(lab));
    CK(cudaFree(md));
    CK(cudaFree(stats));
    CK(cudaFree(ws));
}

int main(int argc, char **argv)
{
    if (argc > 1) iters = atoi(argv[1]);
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("bench_update: no CUDA device\n");
        return 77;
    }
    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    printf("device: %s, %d SMs, L2 %d MB\n", p.name, p.multiProcessorCount, p.l2CacheSize >> 20);
    cudaStream_t s;
    CK(cudaStreamCreate(&s));
    {   /* read ceiling over 2 GiB */
        const int64_t bytes = 2ll << 30;
        int4 *buf;
        int *o;
        CK(cudaMalloc(&buf, bytes));
        CK(cudaMalloc(&o, 4));
        CK(cudaMemsetAsync(buf, 1, bytes, s));
        double ms = median_ms([&] { k_read<<<p.multiProcessorCount * 8, 512, 0, s>>>(buf, bytes / 16, o); }, s);
        printf("read-only kernel: %.3f ms for %.2f GB = %.0f GB/s\n", ms, bytes / 1e9, bytes / 1e9 / (ms * 1e-3));
        CK(cudaFree(buf));
        CK(cudaFree(o));
    }
    if (argc > 3) {
        const long long n = atoll(argv[2]), k = atoll(argv[3]);
        if (n < 1 || k < 1 || k > n) {
            fprintf(stderr, "bench_update: need 1 <= k <= n (got n=%s k=%s)\n", argv[2], argv[3]);
            return 2;
        }
        run_case(FKM_K_F16, n, k, 128, L_UNIFORM, s);
        return 0;
    }
    const int64_t N = 8ll << 20;
    /* the iteration targets' shapes (bench_gpu), then label layouts and other shapes */
    run_case(FKM_K_F16, 1ll << 20, 1024, 128, L_UNIFORM, s);
    run_case(FKM_K_F16, 1ll << 20, 8192, 128, L_UNIFORM, s);
    run_case(FKM_K_F16, 1ll << 20, 65536, 128, L_UNIFORM, s);
    run_case(FKM_K_F16, N, 1024, 128, L_UNIFORM, s);
    run_case(FKM_K_F16, N, 1024, 128, L_SORTED, s);
    run_case(FKM_K_F16, N, 1024, 128, L_SKEW50, s);
    run_case(FKM_K_F16, N, 1024, 128, L_ONE, s);
    run_case(FKM_K_F16, N, 256, 128, L_UNIFORM, s);
    run_case(FKM_K_F16, N, 65536, 128, L_UNIFORM, s);
    run_case(FKM_K_F16, 1ll << 20, 1024, 1024, L_UNIFORM, s);
    run_case(FKM_K_EXACT, N, 1024, 128, L_UNIFORM, s);
    return 0;
}
