/* Sort-inverse update: per-cluster sums, counts and the inertia of n rows, deterministic.
 *
 * Instead of one atomic add per row into k×d sums, the (label, row id) pairs are sorted
 * with CUB's radix sort on the ⌈log2 k⌉ low bits of the label, so that every cluster's rows
 * form one contiguous segment of the sorted order (row ids ascending inside it: the sort is
 * stable). Then:
 *
 *   1. iota + inertia  vals[i] = i; per-block fp64 sums of min_dist (fixed grid for a given n)
 *   2. radix sort      (labels, vals) -> (keys, perm), ⌈log2 k⌉ bits (skipped for k = 1)
 *   3. bounds          segment [start, end) of every cluster from the sorted keys
 *   4. plan            counts; pieces per cluster = min(⌈count/P⌉, MAX_PIECES); the inertia
 *   5. scan            item_off = exclusive prefix of the pieces (one "item" = one piece)
 *   6. reduce          one block per item: its rows (gathered through perm, 16-byte loads),
 *                      accumulated in fp64 by R row lanes × C column lanes, then the R lanes
 *                      combined by a fixed tree; the piece's partial sum goes to the workspace
 *   7. combine         sums[j] = fp64 sum of cluster j's partials in piece order
 *
 * Every reduction order is a function of (n, k, d, mode) and of the labels only, never of
 * timing: two calls give bitwise equal stats. Atomics are not used at all.
 *
 * Workspace (fkm_k_update_workspace): vals, perm (n row ids each: 32-bit when n < 2^32),
 * sorted keys (n), segment bounds and piece offsets (O(k)), CUB temporary storage (the sort
 * keeps its own n keys + n ids there), inertia partials (≤ 1024), and the piece partials,
 * at most (⌈n/P⌉ + min(n, k)) × d doubles with P chosen so that ⌈n/P⌉ × d × 8 ≤ 64 MiB. */
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

#include "cuda_check.h"
#include "fkm_kernels.h"

namespace {

constexpr int THREADS = 256;           /* every kernel here */
constexpr int ROWS_PER_LANE = 32;      /* target rows per row lane in one piece */
constexpr int64_t MAX_PIECES = 128;    /* pieces of one cluster at most (combine depth) */
constexpr int INERTIA_BLOCKS = 1024;   /* grid of the iota/inertia kernel at most */
constexpr int64_t PARTIAL_BYTES = 64ll << 20; /* budget of the row-proportional partials */
constexpr size_t ALIGN = 256;

inline int elem_bytes_of(fkm_kmode mode) { return (mode == FKM_K_F16 || mode == FKM_K_BF16) ? 2 : 4; }

/* Work decomposition of the reduce kernel for one element size. */
struct Geo {
    int vec;           /* elements per 16-byte vector */
    int nvec;          /* vectors covering the d columns */
    int C;             /* column lanes (threads per row lane) */
    int R;             /* row lanes */
    int64_t P;         /* rows per piece (before the per-cluster cap) */
    int64_t max_items; /* pieces of all clusters at most */
};

Geo geometry(int elem_bytes, int64_t n, int64_t k, int d)
{
    Geo g;
    g.vec = 16 / elem_bytes;
    g.nvec = (d + g.vec - 1) / g.vec;
    g.C = g.nvec < THREADS ? g.nvec : THREADS;
    g.R = THREADS / g.C;
    int64_t P = (int64_t)g.R * ROWS_PER_LANE;
    int64_t cap = PARTIAL_BYTES / ((int64_t)d * 8); /* row-proportional pieces at most */
    if (cap < 1024) cap = 1024;
    if (cap > 65536) cap = 65536;
    int64_t Pn = (n + cap - 1) / cap;
    if (Pn > P) P = Pn;
    g.P = P;
    g.max_items = (n + P - 1) / P + (n < k ? n : k);
    return g;
}

int sort_bits(int64_t k)
{
    int b = 0;
    while (b < 63 && ((int64_t)1 << b) < k) b++;
    return b;
}

inline size_t align_up(size_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

template <typename IdxT> struct Layout {
    size_t vals, perm, keys, start, end, npieces, item_off, ipart, partials, temp;
    size_t temp_bytes, total;
};

template <typename IdxT> cudaError_t sort_temp_bytes(int64_t n, int bits, size_t *bytes)
{
    *bytes = 0;
    if (bits == 0 || n == 0) return cudaSuccess;
    if (sizeof(IdxT) == 4)
        return cub::DeviceRadixSort::SortPairs(nullptr, *bytes, (const uint32_t *)nullptr,
                                               (uint32_t *)nullptr, (const IdxT *)nullptr,
                                               (IdxT *)nullptr, (uint32_t)n, 0, bits);
    return cub::DeviceRadixSort::SortPairs(nullptr, *bytes, (const uint32_t *)nullptr,
                                           (uint32_t *)nullptr, (const IdxT *)nullptr,
                                           (IdxT *)nullptr, (int64_t)n, 0, bits);
}

template <typename IdxT> cudaError_t layout(int64_t n, int64_t k, int d, Layout<IdxT> *L)
{
    size_t sb = 0, cb = 0;
    cudaError_t e = sort_temp_bytes<IdxT>(n, sort_bits(k), &sb);
    if (e != cudaSuccess) return e;
    e = cub::DeviceScan::ExclusiveSum(nullptr, cb, (const int64_t *)nullptr, (int64_t *)nullptr,
                                      (int64_t)(k + 1));
    if (e != cudaSuccess) return e;
    L->temp_bytes = sb > cb ? sb : cb;
    /* partials: the larger of the two element sizes' decompositions (mode is not known here) */
    Geo g2 = geometry(2, n, k, d), g4 = geometry(4, n, k, d);
    int64_t items = g2.max_items > g4.max_items ? g2.max_items : g4.max_items;
    size_t off = 0;
    L->vals = off;     off = align_up(off + (size_t)n * sizeof(IdxT));
    L->perm = off;     off = align_up(off + (size_t)n * sizeof(IdxT));
    L->keys = off;     off = align_up(off + (size_t)n * sizeof(uint32_t));
    L->start = off;    off = align_up(off + (size_t)k * sizeof(int64_t));
    L->end = off;      off = align_up(off + (size_t)k * sizeof(int64_t));
    L->npieces = off;  off = align_up(off + (size_t)(k + 1) * sizeof(int64_t));
    L->item_off = off; off = align_up(off + (size_t)(k + 1) * sizeof(int64_t));
    L->ipart = off;    off = align_up(off + (size_t)INERTIA_BLOCKS * sizeof(double));
    L->partials = off; off = align_up(off + (size_t)items * (size_t)d * sizeof(double));
    L->temp = off;     off = align_up(off + L->temp_bytes);
    L->total = off + ALIGN; /* slack to align a caller's base pointer */
    return cudaSuccess;
}

/* ---- kernels ---- */

/* Fixed-order tree sum of sh[0..THREADS) into sh[0]; every thread must call it. */
__device__ __forceinline__ void block_tree_sum(double *sh)
{
    __syncthreads();
#pragma unroll
    for (int s = THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
}

template <typename IdxT>
__global__ void __launch_bounds__(THREADS)
    k_iota_inertia(IdxT *__restrict__ vals, const float *__restrict__ min_dist, int64_t n,
                   double *__restrict__ ipart)
{
    __shared__ double sh[THREADS];
    double s = 0.0;
    const int64_t stride = (int64_t)gridDim.x * THREADS;
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += stride) {
        vals[i] = (IdxT)i;
        s += (double)min_dist[i];
    }
    sh[threadIdx.x] = s;
    block_tree_sum(sh);
    if (threadIdx.x == 0) ipart[blockIdx.x] = sh[0];
}

/* Segment bounds from the sorted keys; start/end were zeroed (empty clusters stay 0/0). */
__global__ void __launch_bounds__(THREADS)
    k_bounds(const uint32_t *__restrict__ keys, int64_t n, int64_t k, int64_t *__restrict__ start,
             int64_t *__restrict__ end)
{
    const int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    if (i >= n) return;
    const uint32_t key = keys[i];
    if ((int64_t)key >= k) return; /* a label outside [0, k): counted nowhere */
    if (i == 0 || keys[i - 1] != key) start[key] = i;
    if (i == n - 1 || keys[i + 1] != key) end[key] = i + 1;
}

/* Counts, pieces per cluster, and (block 0) the inertia from the per-block partials. */
__global__ void __launch_bounds__(THREADS)
    k_plan(const int64_t *__restrict__ start, const int64_t *__restrict__ end, int64_t k, int64_t P,
           int64_t *__restrict__ npieces, double *__restrict__ counts,
           const double *__restrict__ ipart, int nipart, double *__restrict__ inertia)
{
    const int64_t j = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    if (j < k) {
        const int64_t c = end[j] - start[j];
        int64_t np = (c + P - 1) / P;
        if (np > MAX_PIECES) np = MAX_PIECES;
        npieces[j] = np;
        counts[j] = (double)c;
    } else if (j == k) {
        npieces[k] = 0;
    }
    if (blockIdx.x == 0) {
        __shared__ double sh[THREADS];
        double s = 0.0;
        for (int i = threadIdx.x; i < nipart; i += THREADS) s += ipart[i];
        sh[threadIdx.x] = s;
        block_tree_sum(sh);
        if (threadIdx.x == 0) *inertia = sh[0];
    }
}

/* 16 bytes of stored elements, added into fp64 accumulators. */
template <typename T> struct Acc;
template <> struct Acc<__half> {
    static constexpr int VEC = 8;
    static __device__ __forceinline__ void add(double (&acc)[8], const int4 &v)
    {
        const __half2 *h = reinterpret_cast<const __half2 *>(&v);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 f = __half22float2(h[i]);
            acc[2 * i] += (double)f.x;
            acc[2 * i + 1] += (double)f.y;
        }
    }
};
template <> struct Acc<__nv_bfloat16> {
    static constexpr int VEC = 8;
    static __device__ __forceinline__ void add(double (&acc)[8], const int4 &v)
    {
        const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&v);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 f = __bfloat1622float2(h[i]);
            acc[2 * i] += (double)f.x;
            acc[2 * i + 1] += (double)f.y;
        }
    }
};
template <> struct Acc<float> {
    static constexpr int VEC = 4;
    static __device__ __forceinline__ void add(double (&acc)[4], const int4 &v)
    {
        acc[0] += (double)__int_as_float(v.x);
        acc[1] += (double)__int_as_float(v.y);
        acc[2] += (double)__int_as_float(v.z);
        acc[3] += (double)__int_as_float(v.w);
    }
};

/* Load the VEC elements [col0, col0 + VEC) of one row. ALIGNED: one 16-byte streaming load
 * (ld is a multiple of VEC and the base 16-byte aligned, so the vector stays inside the row);
 * otherwise element by element, columns ≥ d read as zero. */
template <typename T, bool ALIGNED>
__device__ __forceinline__ int4 load_vec(const T *__restrict__ row, int col0, int d)
{
    if (ALIGNED) return __ldcs(reinterpret_cast<const int4 *>(row + col0));
    constexpr int VEC = Acc<T>::VEC;
    T tmp[VEC];
#pragma unroll
    for (int e = 0; e < VEC; e++) tmp[e] = col0 + e < d ? row[col0 + e] : T(0.0f);
    int4 v;
    memcpy(&v, tmp, sizeof v);
    return v;
}

template <typename T, typename IdxT, bool ALIGNED>
__global__ void __launch_bounds__(THREADS)
    k_reduce(const T *__restrict__ x, int64_t ld, int d, int nvec, int C, int R,
             const IdxT *__restrict__ perm, const int64_t *__restrict__ seg_start,
             const int64_t *__restrict__ seg_end, const int64_t *__restrict__ item_off, int64_t k,
             double *__restrict__ partials)
{
    constexpr int VEC = Acc<T>::VEC;
    __shared__ double red[THREADS * VEC]; /* [VEC][R][C] */
    __shared__ int64_t s_j;
    const int64_t item = blockIdx.x;
    if (item >= item_off[k]) return; /* uniform over the block */
    if (threadIdx.x == 0) {          /* cluster of this item: item_off[j] <= item < item_off[j+1] */
        int64_t lo = 0, hi = k;
        while (hi - lo > 1) {
            const int64_t mid = lo + (hi - lo) / 2;
            if (item_off[mid] <= item) lo = mid;
            else hi = mid;
        }
        s_j = lo;
    }
    __syncthreads();
    const int64_t j = s_j;
    const int64_t q = item - item_off[j];
    const int64_t np = item_off[j + 1] - item_off[j];
    const int64_t a = seg_start[j], cnt = seg_end[j] - a;
    const int64_t r0 = a + q * cnt / np, r1 = a + (q + 1) * cnt / np; /* balanced, non-empty */

    const int tid = threadIdx.x;
    const int lane = tid / C, cc = tid - lane * C;
    const bool active = lane < R;
    double *out = partials + item * (int64_t)d;

    for (int v0 = 0; v0 < nvec; v0 += C) {
        const int v = v0 + cc;
        double acc[VEC];
#pragma unroll
        for (int e = 0; e < VEC; e++) acc[e] = 0.0;
        if (active && v < nvec) {
            const int col0 = v * VEC;
            int64_t r = r0 + lane;
            const int64_t Rs = R;
            for (; r + 3 * Rs < r1; r += 4 * Rs) {
                const int64_t i0 = (int64_t)perm[r], i1 = (int64_t)perm[r + Rs];
                const int64_t i2 = (int64_t)perm[r + 2 * Rs], i3 = (int64_t)perm[r + 3 * Rs];
                const int4 a0 = load_vec<T, ALIGNED>(x + i0 * ld, col0, d);
                const int4 a1 = load_vec<T, ALIGNED>(x + i1 * ld, col0, d);
                const int4 a2 = load_vec<T, ALIGNED>(x + i2 * ld, col0, d);
                const int4 a3 = load_vec<T, ALIGNED>(x + i3 * ld, col0, d);
                Acc<T>::add(acc, a0);
                Acc<T>::add(acc, a1);
                Acc<T>::add(acc, a2);
                Acc<T>::add(acc, a3);
            }
            for (; r < r1; r += Rs) {
                const int64_t i0 = (int64_t)perm[r];
                Acc<T>::add(acc, load_vec<T, ALIGNED>(x + i0 * ld, col0, d));
            }
        }
        /* combine the R row lanes: fixed pairwise tree over lanes */
        __syncthreads(); /* red is free (previous column tile written out) */
        if (active) {
#pragma unroll
            for (int e = 0; e < VEC; e++) red[(e * R + lane) * C + cc] = acc[e];
        }
        __syncthreads();
        for (int s = 1; s < R; s <<= 1) {
            const int nl = (R - s + 2 * s - 1) / (2 * s); /* lanes l = 0, 2s, 4s, ... with l + s < R */
            const int work = nl * C * VEC;
            for (int w = tid; w < work; w += THREADS) {
                const int e = w / (nl * C);
                const int rem = w - e * nl * C;
                const int li = rem / C, c = rem - li * C;
                const int l = li * 2 * s;
                red[(e * R + l) * C + c] += red[(e * R + l + s) * C + c];
            }
            __syncthreads();
        }
        for (int o = tid; o < C * VEC; o += THREADS) {
            const int c = o / VEC, e = o - c * VEC;
            const int col = (v0 + c) * VEC + e;
            if (v0 + c < nvec && col < d) out[col] = red[(e * R) * C + c];
        }
    }
}

/* sums[j][col] = Σ over cluster j's pieces, in piece order; one warp per (cluster, 32 columns). */
__global__ void __launch_bounds__(THREADS)
    k_combine(const double *__restrict__ partials, const int64_t *__restrict__ item_off, int64_t k,
              int d, int ntiles, double *__restrict__ sums)
{
    const int64_t w = ((int64_t)blockIdx.x * THREADS + threadIdx.x) / 32;
    const int lane = threadIdx.x & 31;
    if (w >= k * ntiles) return;
    const int64_t j = w / ntiles;
    const int col = (int)(w - j * ntiles) * 32 + lane;
    if (col >= d) return;
    const int64_t a = item_off[j], b = item_off[j + 1];
    const double *p = partials + col;
    const int64_t dd = d;
    double s = 0.0;
    int64_t q = a;
    for (; q + 8 <= b; q += 8) {
        double v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) v[u] = p[(q + u) * dd];
#pragma unroll
        for (int u = 0; u < 8; u++) s += v[u];
    }
    for (; q < b; q++) s += p[q * dd];
    sums[j * dd + col] = s;
}

template <typename T, typename IdxT>
cudaError_t launch_reduce(const void *x, int64_t ld, int d, const Geo &g, const IdxT *perm,
                          const int64_t *start, const int64_t *end, const int64_t *item_off,
                          int64_t k, double *partials, cudaStream_t s)
{
    const bool aligned = ((uintptr_t)x % 16 == 0) && (ld % g.vec == 0);
    const T *xt = static_cast<const T *>(x);
    if (aligned)
        k_reduce<T, IdxT, true><<<(unsigned)g.max_items, THREADS, 0, s>>>(
            xt, ld, d, g.nvec, g.C, g.R, perm, start, end, item_off, k, partials);
    else
        k_reduce<T, IdxT, false><<<(unsigned)g.max_items, THREADS, 0, s>>>(
            xt, ld, d, g.nvec, g.C, g.R, perm, start, end, item_off, k, partials);
    return cudaGetLastError();
}

template <typename IdxT>
int run(fkm_kmode mode, const void *x, int64_t n, int d, int ld, const int32_t *labels,
        const float *min_dist, int64_t k, double *stats, void *workspace, size_t workspace_bytes,
        cudaStream_t s)
{
    Layout<IdxT> L;
    FKM_K_TRY(layout<IdxT>(n, k, d, &L));
    if (workspace_bytes < L.total || !workspace) return (int)cudaErrorInvalidValue;
    char *base = (char *)(((uintptr_t)workspace + ALIGN - 1) / ALIGN * ALIGN);
    IdxT *vals = (IdxT *)(base + L.vals);
    IdxT *perm_buf = (IdxT *)(base + L.perm);
    uint32_t *keys_buf = (uint32_t *)(base + L.keys);
    int64_t *start = (int64_t *)(base + L.start);
    int64_t *end = (int64_t *)(base + L.end);
    int64_t *npieces = (int64_t *)(base + L.npieces);
    int64_t *item_off = (int64_t *)(base + L.item_off);
    double *ipart = (double *)(base + L.ipart);
    double *partials = (double *)(base + L.partials);
    void *temp = base + L.temp;

    const Geo g = geometry(elem_bytes_of(mode), n, k, d);
    double *sums = stats, *counts = stats + k * (int64_t)d, *inertia = counts + k;

    int64_t gi = (n + THREADS - 1) / THREADS;
    const int nipart = (int)(gi < INERTIA_BLOCKS ? gi : INERTIA_BLOCKS);
    k_iota_inertia<IdxT><<<nipart, THREADS, 0, s>>>(vals, min_dist, n, ipart);
    FKM_K_LAUNCHED();

    const uint32_t *keys = (const uint32_t *)labels; /* k = 1: every label is 0 already */
    const IdxT *perm = vals;
    const int bits = sort_bits(k);
    if (bits > 0) {
        size_t tb = L.temp_bytes;
        if (sizeof(IdxT) == 4)
            FKM_K_TRY(cub::DeviceRadixSort::SortPairs(temp, tb, (const uint32_t *)labels, keys_buf,
                                                      (const IdxT *)vals, perm_buf, (uint32_t)n, 0,
                                                      bits, s));
        else
            FKM_K_TRY(cub::DeviceRadixSort::SortPairs(temp, tb, (const uint32_t *)labels, keys_buf,
                                                      (const IdxT *)vals, perm_buf, (int64_t)n, 0,
                                                      bits, s));
        keys = keys_buf;
        perm = perm_buf;
    }

    FKM_K_TRY(cudaMemsetAsync(start, 0, (size_t)k * sizeof(int64_t), s));
    FKM_K_TRY(cudaMemsetAsync(end, 0, (size_t)k * sizeof(int64_t), s));
    k_bounds<<<(unsigned)((n + THREADS - 1) / THREADS), THREADS, 0, s>>>(keys, n, k, start, end);
    FKM_K_LAUNCHED();
    k_plan<<<(unsigned)((k + 1 + THREADS - 1) / THREADS), THREADS, 0, s>>>(
        start, end, k, g.P, npieces, counts, ipart, nipart, inertia);
    FKM_K_LAUNCHED();
    {
        size_t tb = L.temp_bytes;
        FKM_K_TRY(cub::DeviceScan::ExclusiveSum(temp, tb, (const int64_t *)npieces, item_off,
                                                (int64_t)(k + 1), s));
    }
    cudaError_t e;
    if (mode == FKM_K_F16)
        e = launch_reduce<__half, IdxT>(x, ld, d, g, perm, start, end, item_off, k, partials, s);
    else if (mode == FKM_K_BF16)
        e = launch_reduce<__nv_bfloat16, IdxT>(x, ld, d, g, perm, start, end, item_off, k,
                                               partials, s);
    else
        e = launch_reduce<float, IdxT>(x, ld, d, g, perm, start, end, item_off, k, partials, s);
    FKM_K_TRY(e);
    const int ntiles = (d + 31) / 32;
    const int64_t warps = k * ntiles;
    k_combine<<<(unsigned)((warps * 32 + THREADS - 1) / THREADS), THREADS, 0, s>>>(
        partials, item_off, k, d, ntiles, sums);
    FKM_K_LAUNCHED();
    return 0;
}

} // namespace

extern "C" size_t fkm_k_update_workspace(int64_t n, int64_t k, int d)
{
    if (n <= 0 || k < 1 || d < 1) return 0;
    cudaError_t e;
    size_t total;
    if ((uint64_t)n <= 0xFFFFFFFFull) {
        Layout<uint32_t> L;
        e = layout<uint32_t>(n, k, d, &L);
        total = L.total;
    } else {
        Layout<uint64_t> L;
        e = layout<uint64_t>(n, k, d, &L);
        total = L.total;
    }
    return e == cudaSuccess ? total : SIZE_MAX;
}

extern "C" int fkm_k_update(fkm_kmode mode, const void *x, int64_t n, int d, int ld,
                            const int32_t *labels, const float *min_dist, int64_t k, double *stats,
                            void *workspace, size_t workspace_bytes, fkm_stream s)
{
    if (n < 0 || k < 1 || k > INT32_MAX || d < 1 || ld < d || !stats ||
        (mode != FKM_K_EXACT && mode != FKM_K_TF32 && mode != FKM_K_F16 && mode != FKM_K_BF16))
        return (int)cudaErrorInvalidValue;
    cudaStream_t st = (cudaStream_t)s;
    if (n == 0) { /* no rows: zero sums, counts and inertia */
        FKM_K_TRY(cudaMemsetAsync(stats, 0, (size_t)(k * (int64_t)d + k + 1) * sizeof(double), st));
        return 0;
    }
    if (!x || !labels || !min_dist) return (int)cudaErrorInvalidValue;
    if ((uint64_t)n <= 0xFFFFFFFFull)
        return run<uint32_t>(mode, x, n, d, ld, labels, min_dist, k, stats, workspace,
                             workspace_bytes, st);
    return run<uint64_t>(mode, x, n, d, ld, labels, min_dist, k, stats, workspace,
                         workspace_bytes, st);
}
