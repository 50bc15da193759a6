/* Finalize on the device: new centroids from the global statistics, the largest centroid
 * shift and the number of empty clusters.
 *
 * One warp per cluster: c_new = (float)(sum / count) for every column (fp64 division, one
 * rounding; with normalize, times 1/‖sum / count‖ in fp64 before that rounding), shift² = Σ (c_new − c_old)² in fp64 over a fixed lane order and a fixed shuffle
 * tree. Warps loop over clusters (at most 8 blocks per SM); the maximum over clusters goes
 * through an integer atomicMax on the bits of the (non-negative) shift and the empty count
 * through atomicAdd of an integer-valued double, one of each per block: both are exact
 * whatever the order, so out2 is bitwise deterministic. */
#include <cuda_runtime.h>

#include <stdint.h>

#include "cuda_check.h"
#include "fkm_kernels.h"

namespace {

constexpr int THREADS = 256;
constexpr int WARPS = THREADS / 32;
constexpr int G = 4; /* column groups of 32 held in registers at a time */

__global__ void __launch_bounds__(THREADS)
    k_finalize(const double *__restrict__ stats, int64_t k, int d, int normalize, float *__restrict__ c32,
               double *__restrict__ out2)
{
    __shared__ unsigned long long s_max[WARPS];
    __shared__ int s_empty[WARPS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
    unsigned long long wmax = 0; /* bits of the largest shift of this warp's clusters (+0.0) */
    int wempty = 0;
    for (int64_t j = (int64_t)blockIdx.x * WARPS + warp; j < k; j += (int64_t)gridDim.x * WARPS) {
        const double *s = stats + j * (int64_t)d;
        float *c = c32 + j * (int64_t)d;
        /* columns c0 + lane + 32 g (g < G) of the sums and the old centroid, in registers */
        double sv[G];
        float cv[G];
        auto load = [&](int c0) {
#pragma unroll
            for (int g = 0; g < G; ++g) {
                const int col = c0 + lane + 32 * g;
                sv[g] = col < d ? s[col] : 0.0;
                cv[g] = col < d ? c[col] : 0.f;
            }
        };
        /* the count and the first 32 G columns loaded together, before anything waits on them:
         * one memory round trip per cluster at d <= 128 instead of one per 32 columns (0.6 ms
         * at K = 65536, d = 128 on an H200 with the loads in the column loop) */
        const double cnt = stats[k * (int64_t)d + j];
        load(0);
        if (!(cnt > 0.0)) {
            ++wempty;
            continue;
        }
        /* normalize (spherical k-means): the mean scaled to unit length in fp64 before the one
         * rounding; a zero mean stays zero */
        double scale = 1.0;
        if (normalize) {
            double n2 = 0.0;
#pragma unroll
            for (int g = 0; g < G; ++g) {
                const double v = sv[g] / cnt;
                n2 += v * v;
            }
            for (int col = 32 * G + lane; col < d; col += 32) {
                const double v = s[col] / cnt;
                n2 += v * v;
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) n2 += __shfl_xor_sync(0xffffffffu, n2, o);
            if (n2 > 0.0) scale = 1.0 / sqrt(n2);
        }
        double sh = 0.0;
        for (int c0 = 0; c0 < d; c0 += 32 * G) {
            if (c0) load(c0);
#pragma unroll
            for (int g = 0; g < G; ++g) {
                const int col = c0 + lane + 32 * g;
                if (col < d) {
                    const float nv = (float)(sv[g] / cnt * scale);
                    const double diff = (double)nv - (double)cv[g];
                    sh += diff * diff;
                    c[col] = nv;
                }
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sh += __shfl_xor_sync(0xffffffffu, sh, o);
        const unsigned long long bits = (unsigned long long)__double_as_longlong(sqrt(sh));
        wmax = bits > wmax ? bits : wmax;
    }
    /* one atomic of each kind per block: 65536 same-address atomics (one per cluster) took
     * 0.54 ms at K = 65536 on an H200 */
    if (lane == 0) {
        s_max[warp] = wmax;
        s_empty[warp] = wempty;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned long long m = 0;
        int e = 0;
        for (int w = 0; w < WARPS; ++w) {
            m = s_max[w] > m ? s_max[w] : m;
            e += s_empty[w];
        }
        if (m) atomicMax(reinterpret_cast<unsigned long long *>(&out2[0]), m);
        if (e) atomicAdd(&out2[1], (double)e);
    }
}

} // namespace

extern "C" int fkm_k_finalize(const double *stats, int64_t k, int d, int normalize, float *c32,
                              double *out2, fkm_stream s)
{
    if (k < 1 || d < 1 || !stats || !c32 || !out2) return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)s;
    FKM_K_TRY(cudaMemsetAsync(out2, 0, 2 * sizeof(double), st)); /* +0.0, +0.0 */
    int dev = 0, sms = 0;
    FKM_K_TRY(cudaGetDevice(&dev));
    FKM_K_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    const int64_t need = (k + WARPS - 1) / WARPS, cap = 8 * (int64_t)(sms > 0 ? sms : 1);
    k_finalize<<<(unsigned)(need < cap ? need : cap), THREADS, 0, st>>>(stats, k, d, normalize, c32, out2);
    FKM_K_LAUNCHED();
    return 0;
}
