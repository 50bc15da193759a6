/* Row conversion into the compute type and row norms (fkm_kernels.h).
 *
 * Norms: ||row||^2 of the stored values accumulated in fp64 and rounded once to float32, for
 * every mode (the header asks for at least float32 accumulation). Cost: one pass over the rows,
 * memory-bound; fp64 makes the norms accurate to 2^-24 relative, which keeps the fp16/bf16/tf32
 * distances' error dominated by the dot products. (Exact mode does not rely on the caller's
 * norms at all: it recomputes them the same way inside fkm_k_assign.) */
#include "fkm_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "store.cuh"

extern "C" int fkm_k_elem_bytes(fkm_kmode mode) { return (mode == FKM_K_F16 || mode == FKM_K_BF16) ? 2 : 4; }

extern "C" int fkm_k_ld(fkm_kmode mode, int d)
{
    const int a = 16 / fkm_k_elem_bytes(mode);
    if (d <= 0) return 0;
    return (d + a - 1) / a * a;
}

namespace {

/* One warp per row (grid-stride over rows), lanes across the ld columns. */
template <typename T, typename S>
__global__ void __launch_bounds__(256) convert_kernel(const S *src, int64_t n, int d, T *dst, int ld)
{
    const int lane = threadIdx.x & 31;
    const int64_t nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = (((int64_t)blockIdx.x * blockDim.x) + threadIdx.x) >> 5; r < n; r += nw) {
        const S *in = src + r * (int64_t)d;
        T *out = dst + r * (int64_t)ld;
        for (int e = lane; e < ld; e += 32) {
            T v;
            if (e < d) {
                if constexpr (sizeof(S) == 4) v = Store<T>::from(in[e]);
                else v = Store<T>::from_h(__ushort_as_half(in[e]));
            } else {
                v = Store<T>::from(0.f);
            }
            out[e] = v;
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(256) norms_kernel(const T *x, int64_t n, int d, int ld, float *out)
{
    const int lane = threadIdx.x & 31;
    const int64_t nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = (((int64_t)blockIdx.x * blockDim.x) + threadIdx.x) >> 5; r < n; r += nw) {
        const T *row = x + r * (int64_t)ld;
        double s = 0.0;
        for (int e = lane; e < d; e += 32) s = norm_add(s, row[e]);
        s = warp_sum(s);
        if (lane == 0) out[r] = (float)s;
    }
}

unsigned grid_for_rows(int64_t n)
{
    int dev = 0, sms = 132;
    if (cudaGetDevice(&dev) == cudaSuccess) cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    int64_t want = (n + 7) / 8, cap = (int64_t)sms * 32;
    if (want < 1) want = 1;
    return (unsigned)(want < cap ? want : cap);
}

template <typename S> int convert_any(fkm_kmode mode, const S *src, int64_t n, int d, void *dst, int ld, cudaStream_t s)
{
    if (n < 0 || d < 1 || !ld_fits(mode, d, ld))
        return (int)cudaErrorInvalidValue;
    if (n == 0) return 0;
    if (!src || !dst) return (int)cudaErrorInvalidValue;
    const unsigned grid = grid_for_rows(n);
    return (int)with_store_type(mode, [&](auto tag) {
        using T = typename decltype(tag)::type;
        convert_kernel<T, S><<<grid, 256, 0, s>>>(src, n, d, static_cast<T *>(dst), ld);
        return cudaGetLastError();
    });
}

} // namespace

extern "C" int fkm_k_convert_rows(fkm_kmode mode, const float *src, int64_t n, int d, void *dst, int ld,
                                  fkm_stream s)
{
    return convert_any<float>(mode, src, n, d, dst, ld, (cudaStream_t)s);
}

extern "C" int fkm_k_convert_rows_f16(fkm_kmode mode, const uint16_t *src, int64_t n, int d, void *dst, int ld,
                                      fkm_stream s)
{
    return convert_any<uint16_t>(mode, src, n, d, dst, ld, (cudaStream_t)s);
}

extern "C" int fkm_k_row_norms(fkm_kmode mode, const void *x, int64_t n, int d, int ld, float *norms, fkm_stream s)
{
    if (n < 0 || d < 1 || ld < d) return (int)cudaErrorInvalidValue;
    if (n == 0) return 0;
    if (!x || !norms) return (int)cudaErrorInvalidValue;
    const unsigned grid = grid_for_rows(n);
    const cudaStream_t st = (cudaStream_t)s;
    return (int)with_store_type(mode, [&](auto tag) {
        using T = typename decltype(tag)::type;
        norms_kernel<T><<<grid, 256, 0, st>>>(static_cast<const T *>(x), n, d, ld, norms);
        return cudaGetLastError();
    });
}
