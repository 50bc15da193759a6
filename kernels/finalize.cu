/* Finalize on the device: new centroids from the global statistics, the largest centroid
 * shift and the number of empty clusters.
 *
 * One warp per cluster: c_new = (float)(sum / count) for every column (fp64 division, one
 * rounding; with normalize, times 1/‖sum / count‖ in fp64 before that rounding), shift² = Σ (c_new − c_old)² in fp64 over a fixed lane order and a fixed shuffle
 * tree. Warps loop over clusters (at most 8 blocks per SM); the maximum over clusters goes
 * through an integer atomicMax on the bits of the (non-negative) shift and the empty count
 * through atomicAdd of an integer-valued double, one of each per block: both are exact
 * whatever the order, so out2 is bitwise deterministic. Optionally the same warp also writes
 * the new centroid in the compute type and its norm (the backend's per-step refresh). */
#include <cuda_runtime.h>

#include <stdint.h>

#include "cuda_check.h"
#include "fkm_kernels.h"
#include "store.cuh"

namespace {

constexpr int THREADS = 256;
constexpr int WARPS = THREADS / 32;
constexpr int G = 4; /* column groups of 32 held in registers at a time */

/* OUT: also the centroids in the compute type T (cc, leading dimension ldc, zero padding) and
 * their norms (cn), as fkm_k_convert_rows and fkm_k_row_norms of the new c32 would give them
 * (same conversions, same summation order: store.cuh), in the same pass: two launches and a
 * re-read of c32 fewer per Lloyd step. Empty clusters convert their unchanged centroid. */
template <typename T, bool OUT>
__global__ void __launch_bounds__(THREADS)
    k_finalize(const double *__restrict__ stats, int64_t k, int d, int normalize, float *__restrict__ c32,
               double *__restrict__ out2, T *__restrict__ cc, int ldc, float *__restrict__ cn)
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
        const bool empty = !(cnt > 0.0);
        if (empty) {
            ++wempty;
            if (!OUT) continue;
        }
        /* normalize (spherical k-means): the mean scaled to unit length in fp64 before the one
         * rounding; a zero mean stays zero */
        double scale = 1.0;
        if (normalize && !empty) {
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
            n2 = warp_sum(n2);
            if (n2 > 0.0) scale = 1.0 / sqrt(n2);
        }
        double sh = 0.0, nn = 0.0;
        T *crow = OUT ? cc + j * (int64_t)ldc : nullptr;
        for (int c0 = 0; c0 < d; c0 += 32 * G) {
            if (c0) load(c0);
#pragma unroll
            for (int g = 0; g < G; ++g) {
                const int col = c0 + lane + 32 * g;
                if (col < d) {
                    float nv = cv[g];
                    if (!empty) {
                        nv = (float)(sv[g] / cnt * scale);
                        const double diff = (double)nv - (double)cv[g];
                        sh += diff * diff;
                        c[col] = nv;
                    }
                    if (OUT) {
                        const T t = Store<T>::from(nv);
                        crow[col] = t;
                        nn = norm_add(nn, t);
                    }
                }
            }
        }
        if (OUT) {
            for (int col = d + lane; col < ldc; col += 32) crow[col] = Store<T>::from(0.f);
            nn = warp_sum(nn);
            if (lane == 0) cn[j] = (float)nn;
        }
        if (empty) continue;
        sh = warp_sum(sh);
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

template <typename T, bool OUT>
cudaError_t launch(const double *stats, int64_t k, int d, int normalize, float *c32, double *out2, void *c,
                   int ldc, float *cnorm, unsigned grid, cudaStream_t st)
{
    k_finalize<T, OUT><<<grid, THREADS, 0, st>>>(stats, k, d, normalize, c32, out2, static_cast<T *>(c), ldc, cnorm);
    return cudaGetLastError();
}

extern "C" int fkm_k_finalize(const double *stats, int64_t k, int d, int normalize, float *c32,
                              double *out2, fkm_kmode mode, void *c, int ldc, float *cnorm, fkm_stream s)
{
    if (k < 1 || d < 1 || !stats || !c32 || !out2) return (int)cudaErrorInvalidValue;
    if (c && (!cnorm || !ld_fits(mode, d, ldc)))
        return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)s;
    FKM_K_TRY(cudaMemsetAsync(out2, 0, 2 * sizeof(double), st)); /* +0.0, +0.0 */
    int dev = 0, sms = 0;
    FKM_K_TRY(cudaGetDevice(&dev));
    FKM_K_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    const int64_t need = (k + WARPS - 1) / WARPS, cap = 8 * (int64_t)(sms > 0 ? sms : 1);
    const unsigned grid = (unsigned)(need < cap ? need : cap);
    if (!c) return (int)launch<float, false>(stats, k, d, normalize, c32, out2, nullptr, 0, nullptr, grid, st);
    return (int)with_store_type(mode, [&](auto tag) {
        return launch<typename decltype(tag)::type, true>(stats, k, d, normalize, c32, out2, c, ldc, cnorm, grid, st);
    });
}
