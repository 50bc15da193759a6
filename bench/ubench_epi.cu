/* Issue cost of the assign epilogue's per-distance instruction patterns (bench/NOTES.md, history
 * 13). Each thread folds 32 "products" (registers, as the wgmma accumulators are) into four
 * running minima per pass, as one consumer thread of assign_v3 folds a 128-column tile; the
 * pattern is the EPI variant's. One block per SM, W warps per scheduler; prints SM cycles per
 * warp-distance per scheduler: at W = 1 what a lone epilogue warp takes (latency and issue), at
 * W = 8 the pipes' throughput.
 * Usage: ubench_epi [passes]      (GPU machine; cuobjdump -sass shows each pattern's SASS) */
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

#include "assign_common.cuh" /* lop3_sel, opaque_u32 */

#define CK(x)                                                                                    \
    do {                                                                                         \
        cudaError_t e_ = (x);                                                                    \
        if (e_ != cudaSuccess) {                                                                 \
            fprintf(stderr, "ubench_epi: %s: %s\n", #x, cudaGetErrorString(e_));                 \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)

constexpr int NE = 8, NR = 4; /* elements per row chain per pass, row chains */

/* P: 0 fma alone (v30), 1 fma + min (v31), 2 fma + compare + 2 selects into the tile's
 * (min, column) (EPI 5), 3 packed integer keys, lop3 pair + integer min (EPI 10), 4 packed keys
 * as floats (>= 0) made by and + or, with a float min (no 3-input integer min), 5 packed
 * integer keys by one lop3_sel + integer min (EPI 12: ptxas pairs the mins into VIMNMX3), 6 as 4
 * with lop3_sel (EPI 11), 7 as 5 with two chains per row (even / odd elements: EPI 13) */
template <int P>
__global__ void __launch_bounds__(1024) ub(float *out, const float *in, int passes, float seed)
{
    /* the products come from memory, so that ptxas keeps them in registers instead of
     * recomputing them each pass */
    float acc[NR][NE];
#pragma unroll
    for (int r = 0; r < NR; ++r)
#pragma unroll
        for (int i = 0; i < NE; ++i) acc[r][i] = in[(r * NE + i) * blockDim.x + threadIdx.x];
    const uint32_t m31 = fkm::opaque_u32(31u);
    float cn = seed + 2.f;
    float tb[NR];
    int ti[NR], ti2[NR];
#pragma unroll
    for (int r = 0; r < NR; ++r) {
        tb[r] = 1e30f;
        ti[r] = ti2[r] = P == 3 || P == 5 || P == 7 ? 0x7fffffff : 0;
    }
    __syncthreads();
    const long long t0 = clock64();
#pragma unroll 1
    for (int s = 0; s < passes; ++s) {
#pragma unroll
        for (int i = 0; i < NE; ++i)
#pragma unroll
            for (int r = 0; r < NR; ++r) {
                const float v = fmaf(-2.f, acc[r][i], cn + (float)(i & 1));
                if constexpr (P == 0) tb[r] = fmaf(-2.f, acc[r][i], tb[r]);
                else if constexpr (P == 1) tb[r] = fminf(tb[r], v);
                else if constexpr (P == 2) {
                    const bool lt = v < tb[r];
                    tb[r] = lt ? v : tb[r];
                    ti[r] = lt ? i : ti[r];
                } else if constexpr (P == 3) {
                    ti[r] = min(ti[r], (__float_as_int(v) | 31) ^ (31 ^ i));
                } else if constexpr (P == 4) {
                    tb[r] = fminf(tb[r], __int_as_float((__float_as_int(v) & ~31) | i));
                } else if constexpr (P == 5) {
                    ti[r] = min(ti[r], (int)fkm::lop3_sel(__float_as_uint(v), (uint32_t)i, m31));
                } else if constexpr (P == 7) {
                    int &q = i & 1 ? ti2[r] : ti[r];
                    q = min(q, (int)fkm::lop3_sel(__float_as_uint(v), (uint32_t)i, m31));
                } else {
                    tb[r] = fminf(tb[r], __uint_as_float(fkm::lop3_sel(__float_as_uint(v), (uint32_t)i, m31)));
                }
            }
        cn += 1.f; /* the products are the same each pass; the norms are not */
    }
    __syncthreads();
    const long long t1 = clock64();
    float sum = 0.f;
#pragma unroll
    for (int r = 0; r < NR; ++r) sum += tb[r] + (float)min(ti[r], ti2[r]);
    out[blockIdx.x * blockDim.x + threadIdx.x] = sum;
    if (threadIdx.x == 0) reinterpret_cast<long long *>(out + gridDim.x * blockDim.x)[blockIdx.x] = t1 - t0;
}

template <int P> static double run(int sms, int warps_per_sched, int passes, float *buf, const float *in, long long *hc)
{
    const int threads = 128 * warps_per_sched;
    ub<P><<<sms, threads>>>(buf, in, passes, 1e-3f);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(hc, buf + (size_t)sms * threads, sizeof(long long) * sms, cudaMemcpyDeviceToHost));
    double m = 0;
    for (int b = 0; b < sms; ++b) m += (double)hc[b];
    m /= sms;
    /* cycles per warp-distance per scheduler: each scheduler runs warps_per_sched warps, each
     * folds passes * NE * NR distances per lane */
    return m / ((double)warps_per_sched * passes * NE * NR);
}

int main(int argc, char **argv)
{
    const int passes = argc > 1 ? atoi(argv[1]) : 4096;
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const int sms = prop.multiProcessorCount;
    float *buf;
    CK(cudaMalloc(&buf, (size_t)sms * 1024 * sizeof(float) + sms * sizeof(long long)));
    long long *hc = (long long *)malloc(sizeof(long long) * sms);
    float *in;
    CK(cudaMalloc(&in, sizeof(float) * NR * NE * 1024));
    {
        float *h = (float *)malloc(sizeof(float) * NR * NE * 1024);
        for (int q = 0; q < NR * NE * 1024; ++q) h[q] = 1e-3f * (float)((q * 7919) % 1009);
        CK(cudaMemcpy(in, h, sizeof(float) * NR * NE * 1024, cudaMemcpyHostToDevice));
        free(h);
    }
    const char *names[] = {"fma alone (v30)", "fma + min (v31)", "fma + cmp + 2 sel (EPI 5)",
                           "int keys, lop3 x2 + imin (EPI 10)", "float keys, and|or + fmin",
                           "int keys, lop3_sel + imin (EPI 12)", "float keys, lop3_sel + fmin (EPI 11)",
                           "int keys, EPI 12, 2 chains a row (EPI 13)"};
    printf("%s, %d SMs: SM cycles per warp-distance per scheduler (passes %d, %d rows x %d per pass)\n", prop.name,
           sms, passes, NR, NE);
    printf("%-36s %8s %8s %8s %8s\n", "pattern", "W=1", "W=2", "W=4", "W=8");
    for (int p = 0; p < 8; ++p) {
        double c[4];
        const int ws[4] = {1, 2, 4, 8};
        for (int q = 0; q < 4; ++q) {
            switch (p) {
            case 0: c[q] = run<0>(sms, ws[q], passes, buf, in, hc); break;
            case 1: c[q] = run<1>(sms, ws[q], passes, buf, in, hc); break;
            case 2: c[q] = run<2>(sms, ws[q], passes, buf, in, hc); break;
            case 3: c[q] = run<3>(sms, ws[q], passes, buf, in, hc); break;
            case 4: c[q] = run<4>(sms, ws[q], passes, buf, in, hc); break;
            case 5: c[q] = run<5>(sms, ws[q], passes, buf, in, hc); break;
            case 6: c[q] = run<6>(sms, ws[q], passes, buf, in, hc); break;
            default: c[q] = run<7>(sms, ws[q], passes, buf, in, hc); break;
            }
        }
        printf("%-36s %8.3f %8.3f %8.3f %8.3f\n", names[p], c[0], c[1], c[2], c[3]);
    }
    CK(cudaFree(buf));
    CK(cudaFree(in));
    free(hc);
    return 0;
}
