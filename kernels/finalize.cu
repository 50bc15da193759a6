/* Finalize on the device: new centroids from the global statistics, the largest centroid
 * shift and the number of empty clusters.
 *
 * One warp per cluster: c_new = (float)(sum / count) for every column (fp64 division, one
 * rounding; with normalize, times 1/‖sum / count‖ in fp64 before that rounding), shift² = Σ (c_new − c_old)² in fp64 over a fixed lane order and a fixed shuffle
 * tree. The maximum over clusters goes through an integer atomicMax on the bits of the
 * (non-negative) shift, and the empty count through atomicAdd of 1.0 on a double: both are
 * exact whatever the order, so out2 is bitwise deterministic. */
#include <cuda_runtime.h>

#include <stdint.h>

#include "cuda_check.h"
#include "fkm_kernels.h"

namespace {

constexpr int THREADS = 256;
constexpr int WARPS = THREADS / 32;

__global__ void __launch_bounds__(THREADS)
    k_finalize(const double *__restrict__ stats, int64_t k, int d, int normalize, float *__restrict__ c32,
               double *__restrict__ out2)
{
    const int64_t j = (int64_t)blockIdx.x * WARPS + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (j >= k) return;
    const double cnt = stats[k * (int64_t)d + j];
    if (!(cnt > 0.0)) {
        if (lane == 0) atomicAdd(&out2[1], 1.0);
        return;
    }
    const double *s = stats + j * (int64_t)d;
    float *c = c32 + j * (int64_t)d;
    /* normalize (spherical k-means): the mean scaled to unit length in fp64 before the one
     * rounding; a zero mean stays zero */
    double scale = 1.0;
    if (normalize) {
        double n2 = 0.0;
        for (int col = lane; col < d; col += 32) {
            const double v = s[col] / cnt;
            n2 += v * v;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) n2 += __shfl_xor_sync(0xffffffffu, n2, o);
        if (n2 > 0.0) scale = 1.0 / sqrt(n2);
    }
    double sh = 0.0;
    for (int col = lane; col < d; col += 32) {
        const float nv = (float)(s[col] / cnt * scale);
        const double diff = (double)nv - (double)c[col];
        sh += diff * diff;
        c[col] = nv;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sh += __shfl_xor_sync(0xffffffffu, sh, o);
    if (lane == 0)
        atomicMax(reinterpret_cast<unsigned long long *>(&out2[0]),
                  (unsigned long long)__double_as_longlong(sqrt(sh)));
}

} // namespace

extern "C" int fkm_k_finalize(const double *stats, int64_t k, int d, int normalize, float *c32,
                              double *out2, fkm_stream s)
{
    if (k < 1 || d < 1 || !stats || !c32 || !out2) return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)s;
    FKM_K_TRY(cudaMemsetAsync(out2, 0, 2 * sizeof(double), st)); /* +0.0, +0.0 */
    k_finalize<<<(unsigned)((k + WARPS - 1) / WARPS), THREADS, 0, st>>>(stats, k, d, normalize, c32, out2);
    FKM_K_LAUNCHED();
    return 0;
}
