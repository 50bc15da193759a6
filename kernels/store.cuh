/* The compute types' element conversions and the row norm's summation, shared by the
 * conversion kernels and the finalize (which writes the compute-type centroids and their norms
 * itself): both must give the same bits. */
#ifndef FKM_STORE_CUH
#define FKM_STORE_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "fkm_kernels.h"

namespace {

/* A leading dimension that holds d columns of mode's compute type in 16-byte aligned rows. */
inline bool ld_fits(fkm_kmode mode, int d, int ld)
{
    return ld >= fkm_k_ld(mode, d) && ld % (16 / fkm_k_elem_bytes(mode)) == 0;
}

template <typename T> struct Store;
template <> struct Store<__half> {
    static __device__ __forceinline__ __half from(float v) { return __float2half_rn(v); }
    static __device__ __forceinline__ __half from_h(__half v) { return v; }
    static __device__ __forceinline__ float val(__half v) { return __half2float(v); }
};
template <> struct Store<__nv_bfloat16> {
    static __device__ __forceinline__ __nv_bfloat16 from(float v) { return __float2bfloat16_rn(v); }
    static __device__ __forceinline__ __nv_bfloat16 from_h(__half v) { return __float2bfloat16_rn(__half2float(v)); }
    static __device__ __forceinline__ float val(__nv_bfloat16 v) { return __bfloat162float(v); }
};
template <> struct Store<float> {
    static __device__ __forceinline__ float from(float v) { return v; }
    static __device__ __forceinline__ float from_h(__half v) { return __half2float(v); }
    static __device__ __forceinline__ float val(float v) { return v; }
};

/* The compute type that mode stores, handed to f as TypeTag<T>{} (T = __half, __nv_bfloat16 or
 * float): the one mode → type mapping of the kernels' launchers. An unknown mode gives
 * cudaErrorInvalidValue without calling f. */
template <typename T> struct TypeTag {
    using type = T;
};
template <typename F> cudaError_t with_store_type(fkm_kmode mode, F &&f)
{
    switch (mode) {
    case FKM_K_F16: return f(TypeTag<__half>{});
    case FKM_K_BF16: return f(TypeTag<__nv_bfloat16>{});
    case FKM_K_EXACT:
    case FKM_K_TF32: return f(TypeTag<float>{});
    }
    return cudaErrorInvalidValue;
}

/* One element of ‖row‖²: fp64, lane-strided order (element lane, lane + 32, ...). */
template <typename T> __device__ __forceinline__ double norm_add(double s, T v)
{
    const double x = (double)Store<T>::val(v);
    return fma(x, x, s);
}

/* The lanes' partial sums in a fixed xor tree (every lane gets the total). */
__device__ __forceinline__ double warp_sum(double s)
{
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    return s;
}

} // namespace

#endif
