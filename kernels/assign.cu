/* FlashAssign: distances fused with an online argmin (fkm_kernels.h), and its dispatch.
 *
 *   v1 (assign_v1.cuh): mma.sync kernel; every mode, any d (tf32, exact, and 16-bit d > 128).
 *   v2 (assign_v2.cuh): wgmma kernel; 16-bit rows with d <= 128 (the common, fast case), in the
 *       configuration measured fastest for the shape (launch_v2 below; bench/NOTES.md).
 *   v3 (assign_v3.cuh): warp-specialised wgmma kernel (TMA producer warpgroup, mbarrier ring,
 *       two consumer warpgroups, one folding its tile while the other's wgmma runs); 16-bit
 *       rows with 64 < d <= 128 (launch_v3 below).
 * v2 and v3 are compiled for sm_90a only (their bodies are empty in the fallback pass) and run
 * only on devices of compute capability 9.0; every other device runs v1.
 *
 * Exact mode (float32 rows, labels equal to an fp64 reference wherever the best and second
 * best distances differ by more than 1e-5 relative) runs in three launches:
 *   1. exact_prep: ||x||^2 and ||c||^2 accumulated in fp64, rounded once to fp32 (so the
 *      caller's norms are not trusted for the bound), and max ||c||^2;
 *   2. v1 with 3xTF32 (x = hi + lo, x.c ~ lo*hi + hi*lo + hi*hi), tracking best and second
 *      best of t_j = ||c_j||^2 - 2 x.c_j, and a per-point bound E >= |t~_j - t_j| for all j:
 *        E = ecoef_dot * ||x|| * max||c|| + ecoef_cn * max||c||^2,
 *        ecoef_dot = 1.05 * (2 * (3 * 2^-22 + (6d + 32) * 2^-23) + 2^-23)
 *          (split error 3 * 2^-22 sum|x_i c_i|; the tensor cores' fp32 accumulation of 3d
 *          products, each k=8 block aligned and truncated at once -- <= ~(27/8) d 2^-23
 *          sum|x_i c_i| in the worst case, doubled because the hardware rounding is not
 *          documented; the final fma's rounding; sum|x_i c_i| <= ||x|| ||c||),
 *        ecoef_cn = 1.05 * 2^-23 (norm rounding and the fma's rounding).
 *      A point is certain when t~_2 - t~_1 > 2E; every other point is appended to a list;
 *   3. exact_fix: for the listed points, sum (x - c)^2 in fp64 over all k centroids (exact
 *      differences, fp64 accumulation), ties to the lowest index.
 *
 * Metric IP (largest inner product) runs the same kernels with ||c||^2 taken as 0 in every
 * t_j (the bound keeps its max||c|| terms: still an upper bound) and -x.c in exact_fix. */
#include "fkm_kernels.h"
#include "assign_internal.h"
#include "assign_v1.cuh"
#include "assign_v2.cuh"
#include "assign_v3.cuh"

#include <cuda.h>
#include <cudaTypedefs.h> /* PFN_cuTensorMapEncodeTiled */
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

using namespace fkm;

static int g_force_version = 0;
static thread_local int g_last_version = 0;

extern "C" int fkm_k_assign_force_version(int v)
{
    int old = g_force_version;
    g_force_version = v;
    return old;
}
extern "C" int fkm_k_assign_last_version(void) { return g_last_version; }

/* The trace of the last TRACE launch (versions 42, 43): dst gets up to max_steps steps of
 * both consumers, [consumer][step][V3_TRACE_PTS] SM clocks; returns the steps per consumer the
 * kernel keeps (V3_TRACE_STEPS) and clears the trace, or a negative CUDA error. */
extern "C" int fkm_k_assign_v3_trace(unsigned long long *dst, int max_steps)
{
    using namespace fkm;
    static unsigned long long buf[2][V3_TRACE_STEPS][V3_TRACE_PTS];
    cudaError_t e = cudaMemcpyFromSymbol(buf, v3_trace, sizeof buf);
    if (e != cudaSuccess) return -(int)e;
    const int n = max_steps < V3_TRACE_STEPS ? max_steps : V3_TRACE_STEPS;
    for (int c = 0; c < 2; ++c)
        memcpy(dst + (size_t)c * n * V3_TRACE_PTS, buf[c], (size_t)n * V3_TRACE_PTS * sizeof(unsigned long long));
    memset(buf, 0, sizeof buf);
    e = cudaMemcpyToSymbol(v3_trace, buf, sizeof buf);
    return e == cudaSuccess ? V3_TRACE_STEPS : -(int)e;
}

static size_t al256(size_t b) { return (b + 255) & ~(size_t)255; }

/* fp16/bf16 with 64 < d <= 128 (the v3 kernels' TAIL): the last round's merge, per row of it
 * an order key and label (u64) then a distance key (u32), v3_tail_rows(n) rows (v3_plan). */
static bool v3_tail_mode(fkm_kmode mode, int d) { return (mode == FKM_K_F16 || mode == FKM_K_BF16) && d > 64 && d <= 128; }

/* workspace (exact mode): [ count:int32, cnmax:uint32 | pad to 256 ] [ xn: n f32 ] [ cn: k f32 ]
 * [ flagged rows: n int64 ]; fp16/bf16, 64 < d <= 128: v3_tail_rows(n) x 12 bytes. */
extern "C" size_t fkm_k_assign_workspace(fkm_kmode mode, int64_t n, int64_t k, int d)
{
    if (mode != FKM_K_EXACT) return v3_tail_mode(mode, d) && n > 0 ? al256((size_t)v3_tail_rows(n) * 12) : 0;
    if (n < 0) n = 0;
    if (k < 0) k = 0;
    return 256 + al256(4 * (size_t)n) + al256(4 * (size_t)k) + al256(8 * (size_t)n);
}

/* ---------------- exact mode helpers ---------------- */

__global__ void __launch_bounds__(256) exact_prep_kernel(const float *x, int64_t n, int64_t ldx, const float *c,
                                                         int64_t k, int64_t ldc, int d, float *xn, float *cn,
                                                         unsigned *cnmax_bits)
{
    const int lane = threadIdx.x & 31;
    const int64_t nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = (((int64_t)blockIdx.x * blockDim.x) + threadIdx.x) >> 5; r < n + k; r += nw) {
        const float *row = r < n ? x + r * ldx : c + (r - n) * ldc;
        double s = 0.0;
        for (int e = lane; e < d; e += 32) {
            double v = (double)row[e];
            s = fma(v, v, s);
        }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        if (lane == 0) {
            float f = (float)s;
            if (r < n) {
                xn[r] = f;
            } else {
                cn[r - n] = f;
                atomicMax(cnmax_bits, __float_as_uint(f)); /* f >= 0: integer order = float order */
            }
        }
    }
}

constexpr int FIX_P = 8;     /* flagged points per block iteration */
constexpr int FIX_DCH = 512; /* dims of x staged at a time */

/* IP: the score is -x.c in fp64 (largest inner product first), md = ip_offset - x.c. */
template <bool IP>
__global__ void __launch_bounds__(256) exact_fix_kernel(const float *x, int64_t ldx, const float *c, int64_t k,
                                                        int64_t ldc, int d, const int *count, const int64_t *list,
                                                        int32_t *labels, float *md, float ip_offset)
{
    __shared__ float sx[FIX_P][FIX_DCH];
    __shared__ double rb[FIX_P][8];
    __shared__ int ri[FIX_P][8];
    __shared__ int64_t srows[FIX_P];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int cnt = *count;
    const int ngroups = (cnt + FIX_P - 1) / FIX_P;
    const int dv = (d + 3) & ~3; /* rows are 16-byte aligned and zero padded to ld >= dv */
    for (int grp = blockIdx.x; grp < ngroups; grp += gridDim.x) {
        const int np = min(FIX_P, cnt - grp * FIX_P);
        if (tid < FIX_P) srows[tid] = list[grp * FIX_P + min(tid, np - 1)];
        double best[FIX_P];
        int bidx[FIX_P];
#pragma unroll
        for (int q = 0; q < FIX_P; ++q) {
            best[q] = __longlong_as_double(0x7ff0000000000000LL);
            bidx[q] = 0;
        }
        for (int64_t j0 = 0; j0 < k; j0 += 256) {
            const int64_t j = j0 + tid;
            const bool valid = j < k;
            double acc[FIX_P];
#pragma unroll
            for (int q = 0; q < FIX_P; ++q) acc[q] = 0.0;
            for (int dc = 0; dc < dv; dc += FIX_DCH) {
                const int len = min(FIX_DCH, dv - dc);
                __syncthreads();
                for (int q = tid; q < FIX_P * len; q += 256) {
                    int pp = q / len, e = q - pp * len;
                    sx[pp][e] = x[srows[pp] * ldx + dc + e];
                }
                __syncthreads();
                if (valid) {
                    const float4 *cr = reinterpret_cast<const float4 *>(c + j * ldc + dc);
                    for (int e4 = 0; e4 < len / 4; ++e4) {
                        const float4 cv = cr[e4];
#pragma unroll
                        for (int q = 0; q < FIX_P; ++q) {
                            if (IP) { /* products of floats are exact in fp64 */
                                acc[q] = fma(-(double)cv.x, (double)sx[q][4 * e4 + 0], acc[q]);
                                acc[q] = fma(-(double)cv.y, (double)sx[q][4 * e4 + 1], acc[q]);
                                acc[q] = fma(-(double)cv.z, (double)sx[q][4 * e4 + 2], acc[q]);
                                acc[q] = fma(-(double)cv.w, (double)sx[q][4 * e4 + 3], acc[q]);
                                continue;
                            }
                            double t0 = (double)cv.x - (double)sx[q][4 * e4 + 0];
                            double t1 = (double)cv.y - (double)sx[q][4 * e4 + 1];
                            double t2 = (double)cv.z - (double)sx[q][4 * e4 + 2];
                            double t3 = (double)cv.w - (double)sx[q][4 * e4 + 3];
                            acc[q] = fma(t0, t0, acc[q]);
                            acc[q] = fma(t1, t1, acc[q]);
                            acc[q] = fma(t2, t2, acc[q]);
                            acc[q] = fma(t3, t3, acc[q]);
                        }
                    }
                }
            }
            if (valid) {
#pragma unroll
                for (int q = 0; q < FIX_P; ++q)
                    if (acc[q] < best[q]) {
                        best[q] = acc[q];
                        bidx[q] = (int)j;
                    }
            }
        }
#pragma unroll
        for (int q = 0; q < FIX_P; ++q) {
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) {
                double ob = __shfl_xor_sync(0xffffffffu, best[q], off);
                int oi = __shfl_xor_sync(0xffffffffu, bidx[q], off);
                if (ob < best[q] || (ob == best[q] && oi < bidx[q])) {
                    best[q] = ob;
                    bidx[q] = oi;
                }
            }
            if (lane == 0) {
                rb[q][warp] = best[q];
                ri[q][warp] = bidx[q];
            }
        }
        __syncthreads();
        if (tid < np) {
            double b = rb[tid][0];
            int bi = ri[tid][0];
            for (int w = 1; w < 8; ++w)
                if (rb[tid][w] < b || (rb[tid][w] == b && ri[tid][w] < bi)) {
                    b = rb[tid][w];
                    bi = ri[tid][w];
                }
            const int64_t row = list[grp * FIX_P + tid];
            labels[row] = bi;
            md[row] = IP ? (float)((double)ip_offset + b) : (float)(b > 0.0 ? b : 0.0);
        }
        __syncthreads();
    }
}

/* ---------------- dispatch ---------------- */

static int num_sms(void)
{
    static int cache[64];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return 132;
    if (dev >= 0 && dev < 64 && cache[dev]) return cache[dev];
    int v = 0;
    cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev);
    if (v <= 0) v = 1;
    if (dev >= 0 && dev < 64) cache[dev] = v;
    return v;
}

/* wgmma (sm_90a) kernels need a device of compute capability exactly 9.0. */
static bool device_has_wgmma(void)
{
    static int cache[64]; /* 0 unknown, 1 yes, 2 no */
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    if (dev >= 0 && dev < 64 && cache[dev]) return cache[dev] == 1;
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    const bool yes = major == 9 && minor == 0;
    if (dev >= 0 && dev < 64) cache[dev] = yes ? 1 : 2;
    return yes;
}

template <int OP> static cudaError_t launch_v1(const AssignParams &p, cudaStream_t s)
{
    const int nkc = (p.row_bytes + 127) / 128;
    const bool xres = nkc <= 6;
    const size_t smem = v1_smem_bytes(xres, nkc);
    const int64_t grid = (p.n + V1_BM - 1) / V1_BM;
    if (grid > 0x7fffffffLL) return cudaErrorInvalidConfiguration;
    cudaError_t e;
    if (xres) {
        e = cudaFuncSetAttribute(assign_v1_kernel<OP, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
        assign_v1_kernel<OP, true><<<(unsigned)grid, V1_T, smem, s>>>(p, nkc);
    } else {
        e = cudaFuncSetAttribute(assign_v1_kernel<OP, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
        assign_v1_kernel<OP, false><<<(unsigned)grid, V1_T, smem, s>>>(p, nkc);
    }
    return cudaGetLastError();
}

template <bool BF16, int KS, int MH, int NWG, int BN, int EPI, bool DB = true>
static cudaError_t launch_v2_cfg(const AssignParams &p, cudaStream_t s)
{
    constexpr int BM = 64 * MH * NWG;
    const size_t smem = v2_smem_bytes(KS, BM, BN, DB);
    const int64_t npt = (p.n + BM - 1) / BM;
    const int grid = (int)(npt < num_sms() ? npt : num_sms());
    auto kern = assign_v2_kernel<BF16, KS, MH, NWG, BN, EPI, DB>;
    cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    kern<<<grid, 128 * NWG, smem, s>>>(p);
    return cudaGetLastError();
}
/* v2 configurations (version numbers of fkm_k_assign_force_version), as
 * (m64 halves per warpgroup MH, warpgroups NWG, centroid tile BN, epilogue EPI, accumulator
 * sets per warpgroup):
 *   2 = automatic (default): for 64 < d <= 128, by k (measured on an H100, bench/NOTES.md):
 *       k <= 2048: 10; larger: 11, where the v3 kernel is not chosen instead (auto_v3 below:
 *       v3 for k >= 1024). For d <= 64: (1, 4, 64, 1, 2). (13 was measured 9% faster than 11
 *       at k = 65536 on an H100; the v3 kernels are faster still.)
 *   5 = (1, 4,  64, 1, 2)   3 = (2, 2,  64, 1, 2)   4 = (1, 4,  64, 2, 2)   9 = (2, 2,  64, 2, 2)
 *  10 = (1, 4, 128, 1, 1)  11 = (2, 2, 128, 1, 1)  12 = (1, 4, 128, 2, 1)  13 = (2, 2, 128, 2, 1)
 *   7 = (1, 4, 64, 0, 2), 8 = (2, 2, 64, 0, 2), 14 = (1, 4, 128, 0, 1), 15 = (2, 2, 128, 0, 1):
 *       no epilogue, timing experiments only (wrong outputs).
 * Versions 3..15 exist for 64 < d <= 128; elsewhere they fall back to the default. */
template <bool BF16> static cudaError_t launch_v2(const AssignParams &p, int d, int variant, int *used, cudaStream_t s)
{
    if (d > 64) {
        if (variant == 2) variant = p.k <= 2048 ? 10 : 11;
        *used = variant;
        switch (variant) {
        case 3: return launch_v2_cfg<BF16, 8, 2, 2, 64, 1>(p, s);
        case 4: return launch_v2_cfg<BF16, 8, 1, 4, 64, 2>(p, s);
        case 5: return launch_v2_cfg<BF16, 8, 1, 4, 64, 1>(p, s);
        case 7: return launch_v2_cfg<BF16, 8, 1, 4, 64, 0>(p, s);
        case 8: return launch_v2_cfg<BF16, 8, 2, 2, 64, 0>(p, s);
        case 9: return launch_v2_cfg<BF16, 8, 2, 2, 64, 2>(p, s);
        case 10: return launch_v2_cfg<BF16, 8, 1, 4, 128, 1, false>(p, s);
        case 11: return launch_v2_cfg<BF16, 8, 2, 2, 128, 1, false>(p, s);
        case 12: return launch_v2_cfg<BF16, 8, 1, 4, 128, 2, false>(p, s);
        case 13: return launch_v2_cfg<BF16, 8, 2, 2, 128, 2, false>(p, s);
        case 14: return launch_v2_cfg<BF16, 8, 1, 4, 128, 0, false>(p, s);
        case 15: return launch_v2_cfg<BF16, 8, 2, 2, 128, 0, false>(p, s);
        default: *used = 11; return launch_v2_cfg<BF16, 8, 2, 2, 128, 1, false>(p, s);
        }
    }
    if (variant == 3) {
        *used = 3;
        return launch_v2_cfg<BF16, 4, 2, 2, 64, 1>(p, s);
    }
    *used = 2;
    return launch_v2_cfg<BF16, 4, 1, 4, 64, 1>(p, s);
}

/* ---- v3: tensor maps (TMA descriptors) and configurations ---- */

/* cuTensorMapEncodeTiled through the runtime's driver entry point (no link against libcuda). */
static PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder(void)
{
    static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
        void *f = nullptr;
        cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
            q != cudaDriverEntryPointSuccess)
            f = nullptr;
        return (PFN_cuTensorMapEncodeTiled_v12000)f;
    }();
    return fn;
}

/* rows x inner 16-bit elements with a row stride in bytes, copied as boxes of 64 elements (128
 * bytes, 128-byte swizzle) x box_rows; whatever lies outside the matrix reads as zero. */
static bool encode_rows_map(CUtensorMap *m, const void *base, uint64_t inner, uint64_t rows, uint64_t stride_bytes,
                            uint32_t box_rows)
{
    PFN_cuTensorMapEncodeTiled_v12000 enc = tensor_map_encoder();
    if (!enc) return false;
    cuuint64_t dims[2] = {inner, rows};
    cuuint64_t strides[1] = {stride_bytes};
    cuuint32_t box[2] = {64, box_rows};
    cuuint32_t estr[2] = {1, 1};
    return enc(m, CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, const_cast<void *>(base), dims, strides, box, estr,
               CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}
/* k float32 norms, boxes of `box` (V3_BN for the centroids, V3_BM for the point tile). */
static bool encode_norms_map(CUtensorMap *m, const float *base, uint64_t k, uint32_t box)
{
    PFN_cuTensorMapEncodeTiled_v12000 enc = tensor_map_encoder();
    if (!enc) return false;
    cuuint64_t dims[1] = {k};
    cuuint64_t strides[1] = {0}; /* rank 1: none is read */
    cuuint32_t boxd[1] = {box};
    cuuint32_t estr[1] = {1};
    return enc(m, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 1, const_cast<float *>(base), dims, strides, boxd, estr,
               CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

/* Whether v3 can run these arguments: 64 < d <= 128 (two 128-byte k-chunks), row indices that
 * the copy engine's int32 coordinates reach, a block's steps (point tiles x centroid tiles) in
 * an int, 16-byte aligned norms (TMA) unless IP. */
static bool v3_applies(const AssignParams &p, int d)
{
    const int64_t steps = ((p.n + V3_BM - 1) / V3_BM / num_sms() + 1) * ((p.k + V3_BN - 1) / V3_BN);
    return d > 64 && d <= 128 && p.n <= 0x7fffffffLL - V3_BM && steps < 0x7fffffffLL &&
           (p.ip || ((uintptr_t)p.cn & 15u) == 0);
}

/* TAIL (with a workspace, p.tail_key): a grid of one block per SM whatever n, the merge's rows
 * set to all ones before the kernel and written out after it (v3_sched). */
template <bool BF16, int S, int EPI, bool PP, int F = 0>
static cudaError_t launch_v3_cfg(const AssignParams &p, const CUtensorMap &tx, const CUtensorMap &tc,
                                 const CUtensorMap &tn, const CUtensorMap &txn, cudaStream_t s)
{
    const size_t smem = v3_smem_bytes(S, EPI);
    const V3Plan pl = v3_plan(p.n, num_sms(), (F & V3_TAIL) && p.tail_key);
    const int64_t rows = pl.rows; /* the last round's rows, at most v3_tail_rows(n) */
    AssignParams q = p;
    cudaError_t e;
    if (pl.tail) {
        q.tail_md = (unsigned *)(q.tail_key + rows);
        if ((e = cudaMemsetAsync(q.tail_key, 0xFF, (size_t)rows * 12, s)) != cudaSuccess) return e;
    } else {
        q.tail_key = nullptr;
        q.tail_md = nullptr;
    }
    auto kern = assign_v3_kernel<BF16, S, EPI, PP, F>;
    e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    kern<<<pl.grid, V3_T, smem, s>>>(q, tx, tc, tn, txn);
    if ((e = cudaGetLastError()) != cudaSuccess || !pl.tail) return e;
    v3_tail_finish_kernel<<<(unsigned)((rows + 255) / 256), 256, 0, s>>>(q.tail_key, q.tail_md, pl.row0, rows, p.labels, p.md);
    return cudaGetLastError();
}

/* v3 configurations (version numbers of fkm_k_assign_force_version), as (ring stages S,
 * epilogue EPI, ping-pong PP); all BM = 256 (2 consumer warpgroups x 128 rows), BN = 128:
 *  16 = (4, 1, on)   17 = (4, 2, on)   18 = (4, 2, off)   20 = (4, 1, off)
 *  21 = (4, 3, on)   22 = (4, 3, off)  23 = (4, 4, on)    24 = (4, 4, off)
 *  19 = (4, 0, on): no epilogue, timing experiments only (wrong outputs).
 * Split (each consumer's two m64 halves alternate on the tensor cores, so that one half's
 * epilogue runs under the other half's wgmma; no ping-pong):
 *  25 = (4, 5)   28 = (4, 0): no epilogue, timing only. (26 = split EPI 2, 27 = split EPI 1
 *  and 32 = EPI 9, two-level against the quad-merged row best, were measured slower on an H200
 *  and removed: bench/NOTES.md.)
 *  29 = (4, 5, off) unsplit.
 *  33 = (4, 10, off): packed (distance, column) integer keys, unsplit (metric IP: as 29).
 *  30 = (4, 6, off), 31 = (4, 7, off): timing only (the fma alone; fma + minimum, no index).
 *  34 = 29 and 35 = (4, 11, off) with the finalize's row norms read at the tile's start (XPF);
 *  36 = (4, 11, off): packed keys as floats (lop3 + fmnmx per distance; metric IP: as 29).
 *  37 = (4, 12, off) with XPF: packed integer keys made by one lop3 (VIMNMX3 folds two).
 *  38 = 37 with ping-pong.
 *  42 = 37 and 43 = 38 with TRACE (block 0's consumers stamp every step; fkm_k_assign_v3_trace).
 *  48 = 37 with EARLY (the next stage's full barrier tested, without blocking, before the
 *  epilogue, and waited on only if it was not complete).
 *  53 = 48 with TAIL (given the workspace: the last round of point tiles split along k over all
 *  SMs, v3_sched in assign_v3_sched.cuh; without a workspace it runs as 48).
 *  66 = 53 with ping-pong (the consumers take turns issuing their wgmma).
 *  75 / 76 = 53 / 66 with EPI 17: the wgmma accumulate onto -(||c||^2 + b) / 2, loaded from a
 *  per-warp buffer by broadcast 16-byte loads (b: the largest ||x||^2 of the warp's 32 rows),
 *  so the keys are made from the accumulators without EPI 12's fma per distance.
 *  (64 / 65 = 53 with three consumers of 64 rows each (BM = 192, 512 threads), 4 / 5 stages,
 *  were measured no faster, 3-5 % slower at K = 1024, on an H100 and removed: history 36.
 *  67 / 68 = 66 / 53 with a two-level EPI 12 (the raw minimum of d' first, the packed-key fold
 *  only for row slots where a row improves), 73 / 74 the same with the fold's d' recomputed,
 *  69 = 66 without EARLY, and 70 / 71 / 72 = 53 / 66 / 67 in clusters of two blocks with each
 *  centroid tile multicast by halves (TMA multicast) were measured slower on an H100, by up
 *  to 32 % and the pairs by 24-34 %, and removed: history 37.)
 *  (54 = 53 loading the next tile's A fragments under a tile's last epilogue, 55 = 54 with
 *  TRACE, and 56 = 53 with a two-level EPI 12 (the raw minimum of d' first, the packed-key fold
 *  only for row slots where a row improves) were measured 1-3 %, and 56 6-17 %, slower than 53
 *  on an H200 and removed: bench/NOTES.md, history 23; 58 = 53 with each tile's finalize
 *  deferred under the next tile's first wgmma, bitwise equal to 53, was 1 % slower at 8M x 1024
 *  and 1M x 8192 and removed: history 30; 59 / 60 = 42 / 53 with the finalize's parameters held
 *  in registers (no faster) and 61 = 42 storing nothing (a diagnostic ptxas reduced to nothing)
 *  were removed: history 31; 62 = 53 loading an item's A fragments k-step by k-step between its
 *  first step's wgmma (1-2 % slower) and 53 with the next item's X barrier tested early (slower
 *  at 8M x 1024) were removed: history 32.)
 *  (44 = 37 with two key chains per row slot, 46 = 37 with turns handed over when 12 of the 16
 *  wgmma completed, 49 = 46 + EARLY, and the split loop with each half's wgmma issue interleaved
 *  with the other half's fold were measured no faster / 14 % slower on an H200 and removed.)
 *  (39 = 37 releasing each stage without the proxy fence, 40 / 41 = 37 / 39 with consumer 1 half
 *  a sweep behind consumer 0 were measured no faster / 4-8 % slower on an H200 and removed.)
 * EPI 5: EPI 1 with the column of the tile's own minimum as an immediate, merged into the
 * running best once per tile (no per-column index registers).
 * EPI 1 / 2: the epilogues of v2 (select chain; two-level); 3 / 4: the same with short
 * dependency chains (two running bests per row slot; four partial minima); assign_v3.cuh.
 * Returns false (nothing launched) when v3 does not apply or a tensor map cannot be made; the
 * caller then runs v2. *used: the version launched (33 runs as 29 where the row norms are not
 * 16-byte aligned). */
template <bool BF16>
static bool launch_v3(const AssignParams &p, int d, int variant, int *used, cudaError_t *err, cudaStream_t s)
{
    if (!v3_applies(p, d)) return false;
    CUtensorMap tx, tc, tn, txn;
    memset(&tn, 0, sizeof tn);
    memset(&txn, 0, sizeof txn);
    /* the packed keys (EPI 10-12: 33, 35-38) read the point tile's row norms by TMA (16-byte
     * aligned); else their EPI 5 twin (34 where they prefetch the norms, XPF) */
    const bool keys = variant == 33 || variant >= 35;
    if (keys && !p.ip && ((uintptr_t)p.xn & 15u)) variant = variant == 33 || variant == 36 ? 29 : 34;
    const uint64_t inner = (uint64_t)p.row_bytes / 2;
    if (!encode_rows_map(&tx, p.x, inner, (uint64_t)p.n, (uint64_t)p.ldx_bytes, V3_BM) ||
        !encode_rows_map(&tc, p.c, inner, (uint64_t)p.k, (uint64_t)p.ldc_bytes, V3_BN) ||
        (!p.ip && !encode_norms_map(&tn, p.cn, (uint64_t)p.k, V3_BN)) ||
        (keys && !p.ip && !encode_norms_map(&txn, p.xn, (uint64_t)p.n, V3_BM)))
        return false;
    *used = variant;
    switch (variant) {
    case 16: *err = launch_v3_cfg<BF16, 4, 1, true>(p, tx, tc, tn, txn, s); return true;
    case 17: *err = launch_v3_cfg<BF16, 4, 2, true>(p, tx, tc, tn, txn, s); return true;
    case 18: *err = launch_v3_cfg<BF16, 4, 2, false>(p, tx, tc, tn, txn, s); return true;
    case 19: *err = launch_v3_cfg<BF16, 4, 0, true>(p, tx, tc, tn, txn, s); return true;
    case 20: *err = launch_v3_cfg<BF16, 4, 1, false>(p, tx, tc, tn, txn, s); return true;
    case 21: *err = launch_v3_cfg<BF16, 4, 3, true>(p, tx, tc, tn, txn, s); return true;
    case 22: *err = launch_v3_cfg<BF16, 4, 3, false>(p, tx, tc, tn, txn, s); return true;
    case 23: *err = launch_v3_cfg<BF16, 4, 4, true>(p, tx, tc, tn, txn, s); return true;
    case 24: *err = launch_v3_cfg<BF16, 4, 4, false>(p, tx, tc, tn, txn, s); return true;
    case 25: *err = launch_v3_cfg<BF16, 4, 5, false, V3_SPLIT>(p, tx, tc, tn, txn, s); return true;
    case 28: *err = launch_v3_cfg<BF16, 4, 0, false, V3_SPLIT>(p, tx, tc, tn, txn, s); return true;
    case 29: *err = launch_v3_cfg<BF16, 4, 5, false>(p, tx, tc, tn, txn, s); return true;
    case 30: *err = launch_v3_cfg<BF16, 4, 6, false>(p, tx, tc, tn, txn, s); return true;
    case 31: *err = launch_v3_cfg<BF16, 4, 7, false>(p, tx, tc, tn, txn, s); return true;
    case 33: *err = launch_v3_cfg<BF16, 4, 10, false>(p, tx, tc, tn, txn, s); return true;
    case 34: *err = launch_v3_cfg<BF16, 4, 5, false, V3_XPF>(p, tx, tc, tn, txn, s); return true;
    case 35: *err = launch_v3_cfg<BF16, 4, 11, false, V3_XPF>(p, tx, tc, tn, txn, s); return true;
    case 36: *err = launch_v3_cfg<BF16, 4, 11, false>(p, tx, tc, tn, txn, s); return true;
    case 37: *err = launch_v3_cfg<BF16, 4, 12, false, V3_XPF>(p, tx, tc, tn, txn, s); return true;
    case 38: *err = launch_v3_cfg<BF16, 4, 12, true, V3_XPF>(p, tx, tc, tn, txn, s); return true;
    case 42: *err = launch_v3_cfg<BF16, 4, 12, false, V3_XPF | V3_TRACE>(p, tx, tc, tn, txn, s); return true;
    case 43: *err = launch_v3_cfg<BF16, 4, 12, true, V3_XPF | V3_TRACE>(p, tx, tc, tn, txn, s); return true;
    case 48: *err = launch_v3_cfg<BF16, 4, 12, false, V3_XPF | V3_EARLY>(p, tx, tc, tn, txn, s); return true;
    case 53: *err = launch_v3_cfg<BF16, 4, 12, false, V3_XPF | V3_EARLY | V3_TAIL>(p, tx, tc, tn, txn, s); return true;
    case 66: *err = launch_v3_cfg<BF16, 4, 12, true, V3_XPF | V3_EARLY | V3_TAIL>(p, tx, tc, tn, txn, s); return true;
    case 75: *err = launch_v3_cfg<BF16, 4, 17, false, V3_XPF | V3_EARLY | V3_TAIL>(p, tx, tc, tn, txn, s); return true;
    case 76: *err = launch_v3_cfg<BF16, 4, 17, true, V3_XPF | V3_EARLY | V3_TAIL>(p, tx, tc, tn, txn, s); return true;
    default: return false;
    }
}

/* The automatic choice on a compute capability 9.0 device for 64 < d <= 128 (2 = the v2
 * configuration launch_v2 picks; also where v3 does not apply). Measured on an H200
 * (bench/NOTES.md): the v3 family is 25-45% faster than v2 at every measured shape (K >= 1024).
 * fp16 and bf16: v48 = v37 (packed integer keys made by one lop3, two folded per VIMNMX3, and
 * the finalize's row norms read at the sweep's start; 4-9 % ahead of v29, the fp16 default
 * before, and 8-9 % of v16, bf16) with EARLY (the next stage's barrier tested before the
 * epilogue: a consumer's wait on an already full stage went from ~200 to ~40 cycles per step in
 * the trace); v48 against v37 in three runs of 2026-12-02 (second session): faster in 11 of 15
 * pairings, by up to 3 % (bench/NOTES.md, history 18); v53 = v48 with TAIL (the last round
 * of point tiles split along k over all SMs), given the workspace: median ratios to v48 of
 * 0.963-0.989 at K >= 8192 and at N = 8M, 0.995 and 1.006 at 1M x 1024, in two benches of
 * versions timed in turn (H200 at its power limit; bench/NOTES.md, history 22 and 24).
 * Without a workspace v53 runs as v48. It
 * falls back to v34 (EPI 5 with the same prefetch) where the row norms are not 16-byte
 * aligned. From K = 16384 on, v66 = v53 with ping-pong: median ratios to v53 of 0.962-0.993 at
 * K = 16384, 32768 and 65536 (one 1.001 at 32768) against 1.016 at 8192 and 1.03-1.06 at 1024,
 * H100, history 36. Below K = 1024 nothing was measured, so v2 stays. */
static int auto_v3(int64_t k) { return k < 1024 ? 2 : k < 16384 ? 53 : 66; }

/* FKM_ASSIGN_AUTO_VERSION=N (tests only): the automatic choice becomes version N wherever it
 * applies, so that tests written against the automatic choice (test_gpu_metric) can exercise a
 * candidate before it is made the default. */
static int auto_override(void)
{
    static const int v = [] {
        const char *e = getenv("FKM_ASSIGN_AUTO_VERSION");
        return e ? atoi(e) : 0;
    }();
    return v;
}

static bool aligned16(const void *ptr) { return ((uintptr_t)ptr & 15u) == 0; }

extern "C" int fkm_k_assign(const fkm_assign_args *a, fkm_stream stream)
{
    if (!a) return (int)cudaErrorInvalidValue;
    const cudaStream_t s = (cudaStream_t)stream;
    const fkm_kmode mode = a->mode;
    if (mode != FKM_K_EXACT && mode != FKM_K_TF32 && mode != FKM_K_F16 && mode != FKM_K_BF16)
        return (int)cudaErrorInvalidValue;
    if (a->n < 0 || a->k < 1 || a->k > 0x7fffffffLL || a->d < 1) return (int)cudaErrorInvalidValue;
    if (a->n == 0) return 0;
    const int elem = fkm_k_elem_bytes(mode);
    const int align_elems = 16 / elem;
    if (a->ldx < a->d || a->ldc < a->d || a->ldx % align_elems || a->ldc % align_elems)
        return (int)cudaErrorInvalidValue;
    if (!a->x || !a->c || !a->labels || !a->min_dist || !aligned16(a->x) || !aligned16(a->c))
        return (int)cudaErrorInvalidValue;
    if (a->metric != FKM_KM_L2 && a->metric != FKM_KM_IP) return (int)cudaErrorInvalidValue;
    const bool ip = a->metric == FKM_KM_IP;
    if (mode != FKM_K_EXACT && !ip && (!a->x_norm || !a->c_norm)) return (int)cudaErrorInvalidValue;

    AssignParams p;
    p.x = (const char *)a->x;
    p.n = a->n;
    p.ldx_bytes = (int64_t)a->ldx * elem;
    p.c = (const char *)a->c;
    p.k = a->k;
    p.ldc_bytes = (int64_t)a->ldc * elem;
    p.row_bytes = (int)(((int64_t)a->d * elem + 15) / 16 * 16);
    p.xn = a->x_norm;
    p.cn = a->c_norm;
    p.labels = a->labels;
    p.md = a->min_dist;
    p.ip = ip ? 1 : 0;
    p.ip_offset = a->ip_offset;
    p.cnmax = nullptr;
    p.flag_count = nullptr;
    p.flag_list = nullptr;
    p.ecoef_dot = 0.f;
    p.ecoef_cn = 0.f;
    /* the v3 TAIL's merge rows (fkm_k_assign_workspace); v3_applies holds where the size is > 0 */
    p.tail_key = v3_tail_mode(mode, a->d) && a->workspace ? (unsigned long long *)a->workspace : nullptr;
    p.tail_md = nullptr; /* placed behind the keys at launch (their count is the last round's rows) */

    const bool v2_ok = (mode == FKM_K_F16 || mode == FKM_K_BF16) && a->d <= 128 && device_has_wgmma();
    cudaError_t e = cudaSuccess;
    switch (mode) {
    case FKM_K_F16:
    case FKM_K_BF16:
        if (v2_ok && g_force_version != 1) {
            int variant = g_force_version >= 2 ? g_force_version : 2;
            if (variant == 2 && auto_override() >= 2) variant = auto_override();
            if (variant == 2) variant = auto_v3(a->k);
            const int v3var = variant >= 16 && variant <= 76 ? variant : 0;
            int used = 2;
            if (v3var && (mode == FKM_K_F16 ? launch_v3<false>(p, a->d, v3var, &used, &e, s)
                                            : launch_v3<true>(p, a->d, v3var, &used, &e, s))) {
                g_last_version = used;
                break;
            }
            e = mode == FKM_K_F16 ? launch_v2<false>(p, a->d, v3var ? 2 : variant, &used, s)
                                  : launch_v2<true>(p, a->d, v3var ? 2 : variant, &used, s);
            g_last_version = used;
        } else {
            g_last_version = 1;
            e = mode == FKM_K_F16 ? launch_v1<OP_F16>(p, s) : launch_v1<OP_BF16>(p, s);
        }
        break;
    case FKM_K_TF32:
        g_last_version = 1;
        e = launch_v1<OP_TF32>(p, s);
        break;
    case FKM_K_EXACT: {
        g_last_version = 1;
        if (!a->workspace) return (int)cudaErrorInvalidValue;
        char *ws = (char *)a->workspace;
        const int64_t n = a->n, k = a->k;
        int *count = (int *)ws;
        unsigned *cnmax_bits = (unsigned *)(ws + 4);
        float *xn = (float *)(ws + 256);
        float *cn = (float *)(ws + 256 + al256(4 * (size_t)n));
        int64_t *list = (int64_t *)(ws + 256 + al256(4 * (size_t)n) + al256(4 * (size_t)k));
        e = cudaMemsetAsync(ws, 0, 8, s);
        if (e != cudaSuccess) return (int)e;
        {
            int64_t blocks = (n + k + 7) / 8;
            int maxb = num_sms() * 16;
            exact_prep_kernel<<<(unsigned)(blocks < maxb ? blocks : maxb), 256, 0, s>>>(
                (const float *)a->x, n, a->ldx, (const float *)a->c, k, a->ldc, a->d, xn, cn, cnmax_bits);
            e = cudaGetLastError();
            if (e != cudaSuccess) return (int)e;
        }
        const double u = ldexp(1.0, -23);
        const double edot = 3.0 * ldexp(1.0, -22) + (6.0 * a->d + 32.0) * u;
        p.xn = xn;
        p.cn = cn;
        p.cnmax = (const float *)cnmax_bits;
        p.flag_count = count;
        p.flag_list = list;
        p.ecoef_dot = (float)(1.05 * (2.0 * edot + u));
        p.ecoef_cn = (float)(1.05 * u);
        e = launch_v1<OP_TF32X3>(p, s);
        if (e != cudaSuccess) return (int)e;
        {
            int64_t groups = (n + FIX_P - 1) / FIX_P;
            int maxb = num_sms() * 4;
            const unsigned blocks = (unsigned)(groups < maxb ? groups : maxb);
            if (p.ip)
                exact_fix_kernel<true><<<blocks, 256, 0, s>>>((const float *)a->x, a->ldx, (const float *)a->c, k,
                                                              a->ldc, a->d, count, list, a->labels, a->min_dist,
                                                              a->ip_offset);
            else
                exact_fix_kernel<false><<<blocks, 256, 0, s>>>((const float *)a->x, a->ldx, (const float *)a->c, k,
                                                               a->ldc, a->d, count, list, a->labels, a->min_dist,
                                                               0.f);
            e = cudaGetLastError();
        }
        break;
    }
    }
    return (int)e;
}
