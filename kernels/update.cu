/* Sort-inverse update: per-cluster sums, counts and the inertia of n rows, deterministic.
 *
 * Instead of one atomic add per row into k×d sums, the rows are ordered by label into the
 * permutation `perm`, so that every cluster's rows form one contiguous segment (row ids
 * ascending inside it: both sorts are stable). Then:
 *
 *   sort     k <= 2048 (or k <= 4096 with at most 8 MiB of tile counts; see sweep_sort): a
 *            counting sort in three passes over tiles of 4096 rows,
 *              count    each tile's count of every label (shared-memory atomics: integers,
 *                       exact) into its row of a tile × cluster table, and the tile's fp64
 *                       inertia partial
 *              colscan  per cluster, the exclusive prefix of its counts over the tiles and
 *                       its total
 *              segstart (one block) the clusters' segment starts: the prefix of the totals
 *              sweep    per tile, the rows ranked by label in shared memory (ballots, fixed
 *                       order) and written out in that order: each cluster's rows of the tile
 *                       land contiguously at its segment start + its rows in earlier tiles
 *            larger k: iota (vals[i] = i, and the inertia partials), CUB
 *            DeviceRadixSort::SortPairs (labels, vals) -> (keys, perm) on bits [0, ⌈log2 k⌉)
 *            and the segment bounds from the sorted keys
 *   plan     counts; pieces per cluster = min(⌈count/P⌉, MAX_PIECES); the inertia
 * Then one of two reduces, by the mean segment n / k:
 *   chunks   (n <= S k, S = FKM_UPD_SHORT_ROWS = 256) the sorted positions in ranges of
 *            FKM_UPD_SUB = 256, one row lane (CW column lanes) per range, walked in order:
 *            each run of one label summed in fp64 and written once, into the cluster's sums
 *            when its whole segment lies in the range, else into the range's head or tail
 *            slot; a fixed-order combine adds the slots of segments over several ranges.
 *            Every range costs the same whatever the cluster sizes (H100, 1M × 8192, the
 *            assign's labels inside bench_gpu's iteration: update 0.223 -> 0.194-0.198 ms;
 *            bench_update, uniform: 1M × 65536 0.293 -> 0.252; bench/NOTES.md history 33)
 *   pieces   (longer segments)
 *     scan     item_off = exclusive prefix of the pieces (one "item" = one piece)
 *     items    per item: its cluster and its rows [r0, r1) of the segment (balanced split)
 *     reduce   persistent blocks take the items in turn (an integer atomic hands them out;
 *              the result of an item does not depend on which block computes it): the
 *              item's rows gathered through perm with 16-byte loads, accumulated in fp64 by
 *              R row lanes × C column lanes, the R lanes combined by a fixed tree; the
 *              piece's partial sum goes to the workspace
 *     combine  a cluster's only piece was written to its sums by the reduce; otherwise
 *              level 1: each group of ≤ 32 consecutive pieces of a cluster summed in piece
 *              order (into sums when the cluster has ≤ 32 pieces, else in place into the
 *              group's first slot); level 2: the groups of larger clusters, in order.
 *
 * Weighted (weights given): every row's values and distance are multiplied by its weight in
 * fp64 and each piece also sums its rows' weights (an extra column of the partials), so the
 * counts are the clusters' weight sums, combined in the same fixed order as the sums.
 *
 * Every reduction order is a function of (n, k, d, mode) and of the labels only, never of
 * timing: two calls give bitwise equal stats. No floating-point atomics anywhere (integer
 * atomics hand out work and mark segment bounds, exactly). Labels must lie in [0, k); one
 * outside is a contract violation: memory stays safe and the result deterministic, but such
 * a row may be counted in some cluster or in none.
 *
 * Measured (H100, N=8M K=1024 D=128 f16, uniform labels): about 1.02 ms, of which the reduce
 * is 0.77 ms (2.8 TB/s of rows; a plain read of the rows takes 0.70 ms) and the sort phase
 * (iota, radix sort, bounds) 0.22 ms. A one-pass tile counting sort with cub::BlockRadixSort
 * per tile (0.25 ms) and a warp-level __match_any_sync scatter (0.30 ms) were slower then.
 * H200 (2026-12-02, same shape): 0.76 ms with the radix sort (ncu: iota 27 us, CUB 158 us,
 * bounds 12 us; the reduce 504 us against a plain read of 476 us). The counting sort
 * (count 38 + colscan 17 + sweep 81 us) took it to 0.70 ms, 1M × 1024 from 0.162 to 0.129 ms
 * (bench_update 50 N K, alternating with the previous version, 4 rounds). What did not pay on
 * the way (ncu, 8M × 1024): one warp per tile advancing the cursors with direct 4-byte stores
 * to perm (183 us for that pass alone: scattered stores), a decoupled look-back per cluster
 * instead of colscan (sweep 152 us against 116 with __match_any_sync ranks: the walk back is
 * one dependent load per tile), and __match_any_sync instead of the ballots (116 against 81).
 * 2026-12-03: 16-byte loads in count, 128 colscan blocks, segstart, the ballot count at
 * compile time: count 23 + colscan 10 + segstart 3 + sweep 77 us, the update 0.683 ms (ncu and
 * bench_update A/B, H200; bench/NOTES.md, history 27); the sweep's second step (uint4 zeroing,
 * full-tile path, 32-bit indices, one lookup per row in the write-out) 77 -> 67 us, the update
 * 0.674 ms. Lost (history 28): the fp16 -> fp64 conversion without F2F (the reduce is
 * DRAM-bound at 88 %), one setup block for segstart, plan, scan and items (21 us alone).
 *
 * Workspace (fkm_k_update_workspace): perm (n row ids: 32-bit when n < 2^32); for the counting
 * sort the tile × cluster counts (⌈n/4096⌉ × k + 2k row ids: the totals and segment starts; k <=
 * 2048 keeps them under (n + 4096) / 2 row ids, less than the radix sort's buffers), else vals
 * (n row ids); the sorted keys (n: the radix sort's output, the chunk reduce's input); CUB's
 * temporary storage (radix sort, scan of the pieces), O(k) bounds and offsets, ⌈n/4096⌉
 * inertia partials; for the piece reduce the per-item metadata and the piece partials, at most
 * (⌈n/P⌉ + min(n, k)) × (d + 1) doubles, P chosen so that ⌈n/P⌉ × d × 8 ≤ 64 MiB; for the
 * chunk reduce two slots of d + 1 doubles per range, ranges lengthened where they would pass
 * 64 MiB. */
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"
#include "fkm_kernels.h"
#include "store.cuh"

/* Tuning knobs (compile-time; bench/bench_update.cu builds a variant). */
#ifndef FKM_UPD_ROWS_PER_LANE
#define FKM_UPD_ROWS_PER_LANE 128 /* target rows per row lane in one piece */
#endif
#ifndef FKM_UPD_UNROLL
#define FKM_UPD_UNROLL 8 /* aligned rows in flight per thread in the reduce (H200: 8 is 21 % faster than 4) */
#endif
#ifndef FKM_UPD_PREFETCH
#define FKM_UPD_PREFETCH 1 /* aligned rows: the next batch's row ids loaded under this batch's rows */
#endif
#ifndef FKM_UPD_MIN_BLOCKS
#define FKM_UPD_MIN_BLOCKS 5 /* reduce blocks per SM the register allocation must allow */
#endif
#ifndef FKM_UPD_MAX_PIECES
#define FKM_UPD_MAX_PIECES 4096 /* pieces of one cluster at most */
#endif

namespace {

constexpr int THREADS = 256;                  /* every kernel here */
constexpr int64_t MAX_PIECES = FKM_UPD_MAX_PIECES;
constexpr int GROUP = 32;                     /* combine level 1: pieces per group */
constexpr int TILE_ITEMS = 16;                /* rows per thread in a tile */
constexpr int TILE = THREADS * TILE_ITEMS;    /* rows per inertia partial */
constexpr int BOUNDS_BLOCKS = 2048;           /* grid of the bounds kernel at most */
constexpr int64_t PARTIAL_BYTES = 64ll << 20; /* budget of the row-proportional partials */
#ifndef FKM_UPD_SHORT_ROWS
#define FKM_UPD_SHORT_ROWS 256 /* mean segment at most this many rows: the chunk reduce */
#endif
#ifndef FKM_UPD_SUB
#define FKM_UPD_SUB 256 /* chunk reduce: sorted positions per row lane */
#endif
constexpr size_t ALIGN = 256;

inline unsigned blocks_for(int64_t threads) { return (unsigned)((threads + THREADS - 1) / THREADS); }

/* Work decomposition of the reduce kernel for one element size. */
struct Geo {
    int vec;           /* elements per 16-byte vector */
    int nvec;          /* vectors covering the d columns */
    int C;             /* column lanes (threads per row lane) */
    int R;             /* row lanes */
    int64_t P;         /* rows per piece (before the per-cluster cap) */
    int64_t max_items; /* pieces of all clusters at most */
};

/* Calls whose mean segment n / k is at most this many rows take the chunk reduce (env
 * FKM_UPDATE_SHORT_ROWS, benches and tests: 0 = never). */
int64_t short_rows()
{
    static const char *e = getenv("FKM_UPDATE_SHORT_ROWS");
    static const int64_t v = e ? atoll(e) : FKM_UPD_SHORT_ROWS;
    return v;
}

/* Sorted positions per row lane of the chunk reduce (env FKM_UPDATE_SUB, benches). */
int64_t sub_rows()
{
    static const char *e = getenv("FKM_UPDATE_SUB");
    static const int64_t v = e && atoll(e) > 0 ? atoll(e) : FKM_UPD_SUB;
    return v;
}

int rows_per_lane()
{
    static const int rpl = getenv("FKM_UPDATE_ROWS_PER_LANE") /* tuning (benches) */
                               ? atoi(getenv("FKM_UPDATE_ROWS_PER_LANE"))
                               : 0;
    return rpl > 0 ? rpl : FKM_UPD_ROWS_PER_LANE;
}

Geo geometry(int elem_bytes, int64_t n, int64_t k, int d)
{
    Geo g;
    g.vec = 16 / elem_bytes;
    g.nvec = (d + g.vec - 1) / g.vec;
    g.C = g.nvec < THREADS ? g.nvec : THREADS;
    g.R = THREADS / g.C;
    int64_t P = (int64_t)g.R * rows_per_lane();
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

struct Layout {
    size_t perm, vals, keys, hist, start, end, npieces, item_off, icl, ir0, ir1, counter, ipart,
        partials, temp;
    size_t temp_bytes, total;
    int64_t ntiles;
    bool counting; /* the counting sort (sweep_sort), else the radix sort */
    bool chunk;    /* the chunk reduce (short mean segments), else the piece reduce */
    int64_t sub, nsub; /* chunk reduce: sorted positions per row lane, row lanes */
};

constexpr int64_t SWEEP_KMAX = 4096, SWEEP_KBIG = 2048;
constexpr size_t SWEEP_BIG_HIST = 8u << 20;
template <typename IdxT> size_t sweep_smem(int64_t k);
/* The counting sort or CUB's radix sort. The counting sort's passes cost O(k) per tile of 4096
 * rows besides their O(rows) work, and its tile × cluster counts go through L2 three times.
 * Measured against the radix sort (H200, bench_update 30, f16, d = 128, uniform labels): a win
 * for k <= 2048; at k = 3000 and 4096 with N = 1M (4 MB of counts) 0.150-0.161 against
 * 0.170-0.181 ms, but at 8M x 4096 (32 MB) 0.825-0.832 against 0.773-0.776, and at k = 8192
 * (one 208 KB sweep block per SM) 0.232 against 0.195-0.208 at N = 1M and 1.193 against 0.775
 * at 8M. So: k <= 2048, or k <= 4096 with at most 8 MiB of counts, where k_sweep's shared
 * memory (24 or 28 bytes per cluster + 16 KB: 112 KB at k = 4096) fits the device's opt-in
 * limit (227 KB on sm_90, 163 on sm_80, 99 on sm_86/89). */
template <typename IdxT> bool sweep_sort(int64_t ntiles, int64_t k)
{
    if (k <= SWEEP_KBIG) return true; /* 72 KB of shared memory at most: every sm_80+ device */
    if (k > SWEEP_KMAX || (size_t)ntiles * (size_t)k * sizeof(IdxT) > SWEEP_BIG_HIST) return false;
    int dev = 0, optin = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
        (void)cudaGetLastError(); /* no device: the radix sort's path reports it */
        return false;
    }
    return sweep_smem<IdxT>(k) + 256 <= (size_t)optin; /* 256: k_sweep's static shared memory */
}

/* The chunk reduce where the mean segment is short: ⌈n / k⌉ <= short_rows(), i.e. n <= S k. */
inline bool chunk_reduce(int64_t n, int64_t k) { return short_rows() > 0 && (n + k - 1) / k <= short_rows(); }

/* The workspace of a call on n rows with the given reduce (chunk_reduce(n, k) for the call). */
template <typename IdxT> cudaError_t layout(int64_t n, int64_t k, int d, bool ch, Layout *L)
{
    size_t sb = 0, cb = 0;
    L->ntiles = (n + TILE - 1) / TILE;
    const bool cs = L->counting = sweep_sort<IdxT>(L->ntiles, k);
    L->chunk = ch;
    /* chunk reduce: two slots (head, tail) of d + 1 doubles per row lane, at most
     * PARTIAL_BYTES of them (longer ranges where n is large) */
    int64_t sub = sub_rows(), cap = PARTIAL_BYTES / (2 * ((int64_t)d + 1) * 8);
    if (cap < 1) cap = 1;
    if ((n + sub - 1) / sub > cap) sub = (n + cap - 1) / cap;
    L->sub = sub;
    L->nsub = (n + sub - 1) / sub;
    /* counting sort: every tile's count of every cluster (tile-major), the k cluster totals,
     * the k segment starts */
    const int64_t nhist = cs ? L->ntiles * k + 2 * k : 0;
    cudaError_t e = cudaSuccess;
    if (!cs) {
        const int bits = sort_bits(k);
        if (sizeof(IdxT) == 4)
            e = cub::DeviceRadixSort::SortPairs(nullptr, sb, (const uint32_t *)nullptr,
                                                (uint32_t *)nullptr, (const IdxT *)nullptr,
                                                (IdxT *)nullptr, (uint32_t)n, 0, bits);
        else
            e = cub::DeviceRadixSort::SortPairs(nullptr, sb, (const uint32_t *)nullptr,
                                                (uint32_t *)nullptr, (const IdxT *)nullptr,
                                                (IdxT *)nullptr, (int64_t)n, 0, bits);
    }
    if (e != cudaSuccess) return e;
    e = cub::DeviceScan::ExclusiveSum(nullptr, cb, (const int64_t *)nullptr, (int64_t *)nullptr,
                                      (int64_t)(k + 1));
    if (e != cudaSuccess) return e;
    L->temp_bytes = sb > cb ? sb : cb;
    /* the piece reduce's items and partials: the larger of the two element sizes'
     * decompositions (mode is not known here); none for the chunk reduce, whose slots take
     * the partials' place */
    Geo g2 = geometry(2, n, k, d), g4 = geometry(4, n, k, d);
    const int64_t items = ch ? 0 : g2.max_items > g4.max_items ? g2.max_items : g4.max_items;
    const size_t npart = ch ? (size_t)L->nsub * 2 * ((size_t)d + 1) : (size_t)items * ((size_t)d + 1);
    const size_t nsort = cs ? 0 : (size_t)n; /* vals: the radix sort's only */
    const size_t nkeys = cs && !ch ? 0 : (size_t)n; /* sorted labels: the radix sort's output, the chunk reduce's input */
    size_t off = 0;
    L->perm = off;     off = align_up(off + (size_t)n * sizeof(IdxT));
    L->vals = off;     off = align_up(off + nsort * sizeof(IdxT));
    L->keys = off;     off = align_up(off + nkeys * sizeof(uint32_t));
    L->hist = off;     off = align_up(off + (size_t)nhist * sizeof(IdxT));
    L->start = off;    off = align_up(off + (size_t)k * sizeof(uint64_t));
    L->end = off;      off = align_up(off + (size_t)k * sizeof(uint64_t));
    L->npieces = off;  off = align_up(off + (size_t)(k + 1) * sizeof(int64_t));
    L->item_off = off; off = align_up(off + (size_t)(k + 1) * sizeof(int64_t));
    L->icl = off;      off = align_up(off + (size_t)items * sizeof(int32_t));
    L->ir0 = off;      off = align_up(off + (size_t)items * sizeof(int64_t));
    L->ir1 = off;      off = align_up(off + (size_t)items * sizeof(int64_t));
    L->counter = off;  off = align_up(off + sizeof(unsigned long long)); /* the reduce's next item */
    L->ipart = off;    off = align_up(off + (size_t)L->ntiles * sizeof(double));
    /* d + 1 columns: the weighted update keeps each piece's weight sum beside its sums */
    L->partials = off; off = align_up(off + npart * sizeof(double));
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

/* A tile's rows, 4 consecutive per thread and step: step i of thread t holds rows
 * tile·TILE + i·4·THREADS + 4t + {0..3}, so every step is one coalesced 16-byte load per
 * thread where the array is 16-byte aligned (in range), scalar loads otherwise: same values,
 * same order. */
constexpr int TVEC = 4, TILE_STEPS = TILE_ITEMS / TVEC;
__device__ __forceinline__ int64_t tile_row(int64_t tile, int i)
{
    return tile * TILE + (int64_t)i * (TVEC * THREADS) + (int64_t)threadIdx.x * TVEC;
}
template <typename T> /* 4-byte T; rows past n get `fill` */
__device__ __forceinline__ void load_row4(const T *__restrict__ p, int64_t r, int64_t n, bool vec, T fill,
                                          bool stream, T *v)
{
    static_assert(sizeof(T) == 4, "load_row4 reads 4-byte elements");
    if (vec && r + TVEC <= n) {
        const int4 *q = reinterpret_cast<const int4 *>(p + r);
        const int4 t = stream ? __ldcs(q) : __ldg(q);
        memcpy(v, &t, sizeof t);
    } else {
#pragma unroll
        for (int e = 0; e < TVEC; e++) v[e] = r + e < n ? p[r + e] : fill;
    }
}
inline bool aligned16(const void *p) { return (uintptr_t)p % 16 == 0; }

/* fp64 sum of min_dist (times the row's weight when w is given) over one tile, in a fixed
 * order (each thread its rows of tile_row in step order, then a tree). Every thread must call
 * it. min_dist is read streaming (evict first): nothing later reads it, and the labels the
 * sweep reads again should stay in L2 instead. */
__device__ __forceinline__ double tile_inertia(const float *__restrict__ min_dist,
                                               const float *__restrict__ w, int64_t n,
                                               int64_t tile, bool vmd, bool vw, double *sh)
{
    float md[TILE_ITEMS], wt[TILE_ITEMS];
#pragma unroll
    for (int i = 0; i < TILE_STEPS; i++) {
        load_row4(min_dist, tile_row(tile, i), n, vmd, 0.0f, true, md + i * TVEC);
        if (w) load_row4(w, tile_row(tile, i), n, vw, 0.0f, true, wt + i * TVEC);
    }
    double s = 0.0;
#pragma unroll
    for (int i = 0; i < TILE_ITEMS; i++) s += w ? (double)wt[i] * (double)md[i] : (double)md[i];
    sh[threadIdx.x] = s;
    block_tree_sum(sh);
    return sh[0];
}

/* Row ids and the per-tile inertia partials. */
template <typename IdxT>
__global__ void __launch_bounds__(THREADS)
    k_iota(IdxT *__restrict__ vals, const float *__restrict__ min_dist, const float *__restrict__ w,
           int64_t n, bool vmd, bool vw, double *__restrict__ ipart)
{
    __shared__ double sh[THREADS];
    const int64_t tile = blockIdx.x;
#pragma unroll
    for (int i = 0; i < TILE_ITEMS; i++) {
        const int64_t r = tile * TILE + i * THREADS + threadIdx.x;
        if (r < n) vals[r] = (IdxT)r;
    }
    const double in = tile_inertia(min_dist, w, n, tile, vmd, vw, sh);
    if (threadIdx.x == 0) ipart[tile] = in;
}

/* Counting sort, pass 1 (one block per tile of TILE rows): the tile's count of every cluster
 * (shared-memory atomics: integers, exact) into its row of hist (tile-major), and the tile's
 * inertia partial as k_iota's. Labels and distances in 16-byte loads, all issued before the
 * first is used (ncu, 8M × 1024, H200: 4-byte loads, 16 consecutive rows per thread for the
 * distances, took 40.6 us for 67 MB). */
template <typename IdxT>
__global__ void __launch_bounds__(THREADS)
    k_count(const int32_t *__restrict__ labels, const float *__restrict__ min_dist,
            const float *__restrict__ w, int64_t n, int64_t k, bool vlab, bool vmd, bool vw,
            IdxT *__restrict__ hist, double *__restrict__ ipart)
{
    extern __shared__ uint32_t count_smem[]; /* k counts */
    __shared__ double sh[THREADS];
    const int64_t tile = blockIdx.x;
    int32_t lab[TILE_ITEMS];
#pragma unroll
    for (int i = 0; i < TILE_STEPS; i++) load_row4(labels, tile_row(tile, i), n, vlab, -1, false, lab + i * TVEC);
    for (int64_t j = threadIdx.x; j < k; j += THREADS) count_smem[j] = 0;
    __syncthreads();
#pragma unroll
    for (int i = 0; i < TILE_ITEMS; i++) { /* past n: -1; a label outside [0, k) is not counted */
        const uint32_t l = (uint32_t)lab[i];
        if (l < (uint64_t)k) atomicAdd(&count_smem[l], 1u);
    }
    const double in = tile_inertia(min_dist, w, n, tile, vmd, vw, sh); /* its first barrier orders the atomics */
    for (int64_t j = threadIdx.x; j < k; j += THREADS) hist[tile * k + j] = (IdxT)count_smem[j];
    if (threadIdx.x == 0) ipart[tile] = in;
}

/* Inclusive prefix of x over the warp's lanes (all 32 must call it). */
template <typename V> __device__ __forceinline__ V warp_inclusive_scan(V x, int lane)
{
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const V y = __shfl_up_sync(0xFFFFFFFFu, x, o);
        if (lane >= o) x += y;
    }
    return x;
}

/* Counting sort, pass 2: per cluster, the exclusive prefix of its tile counts over the tiles
 * (in place: hist[t·k + j] becomes the number of j's rows in tiles before t) and its total
 * (totals[j]). A block takes CS_CL clusters and cuts the tiles into CS_ST consecutive streams,
 * one thread per (stream, cluster): a warp reads 4 tiles × 8 clusters (32-byte pieces of hist
 * rows); the streams' sums are scanned per cluster in shared memory between the two passes.
 * (32 clusters × 32 warps per block gave 32 blocks at k = 1024: 16.2 us for 8 MB, ncu, H200.) */
constexpr int CS_CL = 8, CS_ST = 1024 / CS_CL;
template <typename IdxT>
__global__ void __launch_bounds__(1024)
    k_colscan(IdxT *__restrict__ hist, int64_t ntiles, int64_t k, IdxT *__restrict__ totals)
{
    __shared__ IdxT ws[CS_CL][CS_ST + 1];
    const int cl = threadIdx.x % CS_CL, q = threadIdx.x / CS_CL;
    const int64_t j = (int64_t)blockIdx.x * CS_CL + cl;
    const int64_t per = (ntiles + CS_ST - 1) / CS_ST, t0 = q * per, t1 = t0 + per < ntiles ? t0 + per : ntiles;
    constexpr int U = 8; /* loads in flight (16 spilled at 64 registers) */
    IdxT sum = 0;
    if (j < k)
        for (int64_t t = t0; t < t1; t += U) {
            IdxT v[U];
#pragma unroll
            for (int u = 0; u < U; u++) v[u] = t + u < t1 ? hist[(t + u) * k + j] : (IdxT)0;
#pragma unroll
            for (int u = 0; u < U; u++) sum += v[u];
        }
    ws[cl][q] = sum;
    __syncthreads();
    if (threadIdx.x < 32 * CS_CL) { /* warp c scans cluster c's streams, 4 consecutive per lane */
        const int c = threadIdx.x >> 5, lane = threadIdx.x & 31;
        constexpr int E = CS_ST / 32;
        IdxT e[E], run = 0;
#pragma unroll
        for (int i = 0; i < E; i++) { e[i] = ws[c][lane * E + i]; run += e[i]; }
        const IdxT x = warp_inclusive_scan(run, lane);
        const int64_t jc = (int64_t)blockIdx.x * CS_CL + c;
        if (lane == 31 && jc < k) totals[jc] = x;
        run = x - run;
#pragma unroll
        for (int i = 0; i < E; i++) { ws[c][lane * E + i] = run; run += e[i]; }
    }
    __syncthreads();
    IdxT pre = ws[cl][q];
    if (j >= k) return;
    for (int64_t t = t0; t < t1; t += U) {
        IdxT v[U];
#pragma unroll
        for (int u = 0; u < U; u++) v[u] = t + u < t1 ? hist[(t + u) * k + j] : (IdxT)0;
#pragma unroll
        for (int u = 0; u < U; u++)
            if (t + u < t1) {
                hist[(t + u) * k + j] = pre;
                pre += v[u];
            }
    }
}

/* Exclusive prefix of in[0, m) into out[0, m) (may alias), by every thread of the block: each
 * thread a run of ⌈m / THREADS⌉ consecutive entries, then a scan of the run sums. */
template <typename V>
__device__ __forceinline__ void block_exclusive_scan(const V *in, V *out, int m, V *warp_sums)
{
    const int per = (m + THREADS - 1) / THREADS, b0 = (int)threadIdx.x * per;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    V sum = 0;
    for (int i = 0; i < per; i++)
        if (b0 + i < m) sum += in[b0 + i];
    const V x = warp_inclusive_scan(sum, lane);
    if (lane == 31) warp_sums[warp] = x;
    __syncthreads();
    V run = x - sum;
    for (int i = 0; i < warp; i++) run += warp_sums[i];
    for (int i = 0; i < per; i++)
        if (b0 + i < m) {
            const V v = in[b0 + i];
            out[b0 + i] = run;
            run += v;
        }
    __syncthreads();
}

/* Counting sort, between passes 2 and 3 (one block): the clusters' segment starts, the
 * exclusive prefix of the totals over clusters (base), and the segment bounds. */
template <typename IdxT>
__global__ void __launch_bounds__(THREADS)
    k_segstart(const IdxT *__restrict__ totals, int64_t k, IdxT *__restrict__ base,
               unsigned long long *__restrict__ start, unsigned long long *__restrict__ end)
{
    __shared__ IdxT ws[THREADS / 32];
    block_exclusive_scan<IdxT>(totals, base, (int)k, ws); /* ends in a barrier: base is visible */
    for (int64_t j = threadIdx.x; j < k; j += THREADS) {
        start[j] = (unsigned long long)base[j];
        end[j] = (unsigned long long)(base[j] + totals[j]);
    }
}

constexpr int SWEEP_WARPS = THREADS / 32;
constexpr int SWEEP_WARP_ROWS = TILE / SWEEP_WARPS; /* 512 consecutive rows per warp */
static_assert(SWEEP_KMAX <= 65536 && SWEEP_WARP_ROWS <= 65536 && TILE <= 65536,
              "k_sweep keeps labels, ranks and tile rows in 16 bits");

/* Shared memory of k_sweep for k clusters: whist (SWEEP_WARPS × k 16-bit counts, 16 bytes per
 * cluster, first so that it is zeroed in 16-byte stores), gpos and tstart (k each: the tile's
 * counts, then in place their exclusive prefix), srow and slab (TILE each). */
static_assert(SWEEP_WARPS * sizeof(uint16_t) == sizeof(uint4), "k_sweep zeroes whist as k uint4");
template <typename IdxT> size_t sweep_smem(int64_t k)
{
    return (size_t)k * (SWEEP_WARPS * sizeof(uint16_t) + sizeof(uint32_t) + sizeof(IdxT)) +
           (size_t)TILE * 2 * sizeof(uint16_t);
}

/* Counting sort, pass 3 (one block per tile of TILE rows):
 *   rank     warp w owns rows [512 w, 512 w + 512) of the tile, 32 at a time: a row's rank is
 *            its warp's count of its label so far plus the earlier lanes with that label (one
 *            ballot per label bit, BITS of them, known at compile time; with __match_any_sync
 *            the sweep took 116 us instead of 81 at N = 8M, K = 1024 on an H200, and a run-time
 *            bit count doubled the loop's instructions); the highest such lane advances the count
 *   offsets  per cluster: the warps' counts scanned (in place), the tile's count, in place its
 *            exclusive prefix over clusters (the cluster's first slot in the sorted tile), and
 *            the cluster's first row in perm, its segment start (k_segstart) plus its rows in
 *            earlier tiles (pass 2), loaded while the labels are in flight
 *   stage    the rows in sorted order in shared memory, then written out: consecutive slots
 *            of one cluster go to consecutive positions of perm (and their labels to keys,
 *            when given)
 * Stable: a cluster's rows come out in row order. */
template <typename IdxT, int BITS>
__global__ void __launch_bounds__(THREADS, 4)
    k_sweep(const int32_t *__restrict__ labels, int64_t n, int64_t k, const IdxT *__restrict__ before,
            const IdxT *__restrict__ base, IdxT *__restrict__ perm, uint32_t *__restrict__ keys)
{
    extern __shared__ __align__(16) unsigned char sweep_smem_raw[];
    uint16_t *whist = reinterpret_cast<uint16_t *>(sweep_smem_raw);           /* SWEEP_WARPS × k */
    IdxT *gpos = reinterpret_cast<IdxT *>(whist + SWEEP_WARPS * k);           /* k */
    uint32_t *tstart = reinterpret_cast<uint32_t *>(gpos + k);                /* k */
    uint16_t *srow = reinterpret_cast<uint16_t *>(tstart + k);                /* TILE */
    uint16_t *slab = srow + TILE;                                             /* TILE */
    __shared__ uint32_t s_wsum[SWEEP_WARPS], s_last; /* s_last: the last cluster's tile count */
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, kk = (int)k; /* k <= SWEEP_KMAX */
    const int64_t tile = blockIdx.x;
    const int64_t r0 = tile * TILE + warp * SWEEP_WARP_ROWS;

    constexpr int P = SWEEP_WARP_ROWS / 32;
    uint32_t lab[P]; /* the label, then label | rank << 16 (labels < 2^12, ranks < 2^9) */
    const int32_t *lw = labels + r0 + lane;
    if (r0 + SWEEP_WARP_ROWS <= n) { /* all the warp's rows (no row checks) */
#pragma unroll
        for (int p = 0; p < P; p++) {
            const uint32_t l = (uint32_t)lw[p * 32];
            lab[p] = l < (uint32_t)kk ? l : 0xFFFFFFFFu;
        }
    } else { /* past n or outside [0, k): all ones, left out */
#pragma unroll
        for (int p = 0; p < P; p++) {
            const uint32_t l = r0 + p * 32 + lane < n ? (uint32_t)lw[p * 32] : 0xFFFFFFFFu;
            lab[p] = l < (uint32_t)kk ? l : 0xFFFFFFFFu;
        }
    }
    const IdxT *bt = before + tile * k;
    for (int j = tid; j < kk; j += THREADS) {
        reinterpret_cast<uint4 *>(whist)[j] = make_uint4(0u, 0u, 0u, 0u);
        gpos[j] = base[j] + bt[j];
    }
    __syncthreads();

    /* rank */
    const unsigned below = (1u << lane) - 1u;
    uint16_t *wh = whist + warp * kk;
#pragma unroll
    for (int p = 0; p < P; p++) {
        const bool ok = lab[p] != 0xFFFFFFFFu;
        unsigned peers = __ballot_sync(0xFFFFFFFFu, ok); /* the lanes with my label: one ballot per bit */
#pragma unroll
        for (int b = 0; b < BITS; b++) {
            const uint32_t bit = (lab[p] >> b) & 1u;
            peers &= ~(__ballot_sync(0xFFFFFFFFu, bit) ^ (0u - bit)); /* the lanes whose bit b is mine */
        }
        const uint32_t c = ok ? wh[lab[p]] : 0u;
        __syncwarp(); /* every lane has read the count before the group's last lane moves it */
        if (ok && lane == 31 - __clz(peers)) wh[lab[p]] = (uint16_t)(c + __popc(peers));
        if (ok) lab[p] |= (c + __popc(peers & below)) << 16;
        __syncwarp();
    }
    __syncthreads();

    /* offsets: the warps' counts scanned in place and the tile's count per cluster (consecutive
     * clusters in consecutive threads: no bank conflicts); in place the tile's prefix over
     * clusters; gpos
     * less that prefix, so that sorted slot e of cluster l goes to perm[gpos[l] + e]
     * (base[l] + before[l] >= tstart[l], so never negative) */
    for (int j = tid; j < kk; j += THREADS) {
        uint32_t sum = 0;
#pragma unroll
        for (int v = 0; v < SWEEP_WARPS; v++) {
            const uint32_t c = whist[v * kk + j];
            whist[v * kk + j] = (uint16_t)sum;
            sum += c;
        }
        tstart[j] = sum;
        if (j == kk - 1) s_last = sum;
    }
    __syncthreads();
    block_exclusive_scan<uint32_t>(tstart, tstart, kk, s_wsum); /* in place; ends in a barrier */
    for (int j = tid; j < kk; j += THREADS) gpos[j] -= (IdxT)tstart[j];

    /* stage in sorted order, then write out */
#pragma unroll
    for (int p = 0; p < P; p++)
        if (lab[p] != 0xFFFFFFFFu) {
            const uint32_t l = lab[p] & 0xFFFFu, slot = tstart[l] + wh[l] + (lab[p] >> 16);
            srow[slot] = (uint16_t)(warp * SWEEP_WARP_ROWS + p * 32 + lane);
            slab[slot] = (uint16_t)l;
        }
    __syncthreads();
    const uint32_t m = tstart[kk - 1] + s_last; /* rows of the tile with a label in [0, k) */
    for (uint32_t e = tid; e < m; e += THREADS) {
        const IdxT at = gpos[slab[e]] + (IdxT)e;
        perm[at] = (IdxT)(tile * TILE + srow[e]);
        if (keys) keys[at] = slab[e]; /* the sorted labels, for the chunk reduce */
    }
}

/* Segment bounds from the sorted keys, 4 consecutive keys per thread (one 16-byte load when
 * aligned): start = min, end = max over the boundary marks (integer atomics: exact whatever
 * the order; one mark each unless labels break the contract). start was set to all ones,
 * end to zero. */
__global__ void __launch_bounds__(THREADS)
    k_bounds(const uint32_t *__restrict__ keys, int64_t n, int64_t k, bool vec,
             unsigned long long *__restrict__ start, unsigned long long *__restrict__ end)
{
    const int64_t stride = (int64_t)gridDim.x * THREADS;
    for (int64_t q = (int64_t)blockIdx.x * THREADS + threadIdx.x; q * 4 < n; q += stride) {
        const int64_t i0 = q * 4;
        uint32_t v[6]; /* v[0] = keys[i0 - 1], v[1..4] = keys[i0 .. i0 + 3], v[5] = keys[i0 + 4] */
        if (vec && i0 + 3 < n) {
            const uint4 t = *reinterpret_cast<const uint4 *>(keys + i0);
            v[1] = t.x;
            v[2] = t.y;
            v[3] = t.z;
            v[4] = t.w;
        } else {
#pragma unroll
            for (int e = 0; e < 4; e++) v[1 + e] = i0 + e < n ? keys[i0 + e] : 0u;
        }
        v[0] = i0 > 0 ? keys[i0 - 1] : 0u;
        v[5] = i0 + 4 < n ? keys[i0 + 4] : 0u;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int64_t i = i0 + e;
            const uint32_t key = v[1 + e];
            if (i >= n || (int64_t)key >= k) continue; /* past the end, or a label outside [0, k) */
            if (i == 0 || v[e] != key) atomicMin(&start[key], (unsigned long long)i);
            if (i == n - 1 || v[2 + e] != key) atomicMax(&end[key], (unsigned long long)(i + 1));
        }
    }
}

/* Counts (weighted: left to the combine), pieces per cluster, and (block 0) the inertia from
 * its partials. */
__global__ void __launch_bounds__(THREADS)
    k_plan(const unsigned long long *__restrict__ start, const unsigned long long *__restrict__ end,
           int64_t k, int64_t P, bool weighted, int64_t *__restrict__ npieces,
           double *__restrict__ counts, const double *__restrict__ ipart, int64_t nipart,
           double *__restrict__ inertia)
{
    const int64_t j = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    if (j < k) {
        const int64_t c = end[j] > start[j] ? (int64_t)(end[j] - start[j]) : 0;
        int64_t np = (c + P - 1) / P;
        if (np > MAX_PIECES) np = MAX_PIECES;
        npieces[j] = np;
        if (!weighted) counts[j] = (double)c;
    } else if (j == k) {
        npieces[k] = 0;
    }
    if (blockIdx.x == 0) {
        __shared__ double sh[THREADS];
        double s = 0.0;
        for (int64_t i = threadIdx.x; i < nipart; i += THREADS) s += ipart[i];
        sh[threadIdx.x] = s;
        block_tree_sum(sh);
        if (threadIdx.x == 0) *inertia = sh[0];
    }
}

/* Per-item metadata, one thread per item: its cluster j (item_off[j] <= item < item_off[j+1]),
 * stored as -1 - j when the item is j's only piece (the reduce then writes j's sums itself),
 * and its rows [r0, r1) (balanced split, every piece non-empty). */
__global__ void __launch_bounds__(THREADS)
    k_items(const unsigned long long *__restrict__ start, const unsigned long long *__restrict__ end,
            const int64_t *__restrict__ item_off, int64_t k, int64_t max_items,
            int32_t *__restrict__ icl, int64_t *__restrict__ ir0, int64_t *__restrict__ ir1)
{
    const int64_t item = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    if (item >= max_items || item >= item_off[k]) return;
    int64_t lo = 0, hi = k;
    while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (item_off[mid] <= item) lo = mid;
        else hi = mid;
    }
    const int64_t q = item - item_off[lo], np = item_off[lo + 1] - item_off[lo];
    const int64_t s0 = (int64_t)start[lo], cnt = (int64_t)(end[lo] - start[lo]);
    const int64_t r0 = s0 + q * cnt / np, r1 = s0 + (q + 1) * cnt / np;
    icl[item] = np == 1 ? (int32_t)(-1 - lo) : (int32_t)lo;
    ir0[item] = r0;
    ir1[item] = r1;
}

template <typename T> struct Acc;
/* 16 bytes of stored elements, added into fp64 accumulators; W: each times the row's weight
 * w (in fp64: exact, the product of two floats). */
template <> struct Acc<__half> {
    static constexpr int VEC = 8;
    template <bool W> static __device__ __forceinline__ void add(double (&acc)[8], const int4 &v, double w)
    {
        const __half2 *h = reinterpret_cast<const __half2 *>(&v);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 f = __half22float2(h[i]);
            acc[2 * i] += W ? (double)f.x * w : (double)f.x;
            acc[2 * i + 1] += W ? (double)f.y * w : (double)f.y;
        }
    }
};
template <> struct Acc<__nv_bfloat16> {
    static constexpr int VEC = 8;
    template <bool W> static __device__ __forceinline__ void add(double (&acc)[8], const int4 &v, double w)
    {
        const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&v);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 f = __bfloat1622float2(h[i]);
            acc[2 * i] += W ? (double)f.x * w : (double)f.x;
            acc[2 * i + 1] += W ? (double)f.y * w : (double)f.y;
        }
    }
};
template <> struct Acc<float> {
    static constexpr int VEC = 4;
    template <bool W> static __device__ __forceinline__ void add(double (&acc)[4], const int4 &v, double w)
    {
        acc[0] += W ? (double)__int_as_float(v.x) * w : (double)__int_as_float(v.x);
        acc[1] += W ? (double)__int_as_float(v.y) * w : (double)__int_as_float(v.y);
        acc[2] += W ? (double)__int_as_float(v.z) * w : (double)__int_as_float(v.z);
        acc[3] += W ? (double)__int_as_float(v.w) * w : (double)__int_as_float(v.w);
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

/* acc += elements [col0, col0 + VEC) of the rows perm[r], r = r, r + step, ... < r1, in that
 * order (U rows in flight), each times its weight when W. PF (aligned rows): the next U row ids
 * are loaded while this batch's rows are in flight, so that a batch costs one memory latency
 * instead of two (perm, then the rows it names). */
template <typename T, typename IdxT, bool ALIGNED, bool W>
__device__ __forceinline__ void accum_rows(double (&acc)[Acc<T>::VEC], const T *__restrict__ x, int64_t ld, int d,
                                           int col0, const IdxT *__restrict__ perm, const float *__restrict__ w,
                                           int64_t r, int64_t r1, int64_t step)
{
    /* unaligned rows (per-element loads) keep 4 in flight: 8 spilled there (600+ bytes) */
    constexpr int U = ALIGNED ? FKM_UPD_UNROLL : 4;
    /* not for weighted or 64-bit ids: at the 48 registers of 5 blocks per SM those spilled */
    constexpr bool PF = ALIGNED && !W && sizeof(IdxT) == 4 && FKM_UPD_PREFETCH;
    IdxT id[U];
    if (PF && r + (U - 1) * step < r1) {
#pragma unroll
        for (int u = 0; u < U; u++) id[u] = perm[r + u * step];
    }
    for (; r + (U - 1) * step < r1; r += U * step) {
        int4 vv[U];
        double wv[U];
        if (!PF) {
#pragma unroll
            for (int u = 0; u < U; u++) id[u] = perm[r + u * step];
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            vv[u] = load_vec<T, ALIGNED>(x + (int64_t)id[u] * ld, col0, d);
            wv[u] = W ? (double)w[id[u]] : 1.0;
        }
        if (PF) { /* the next batch's ids (a row past r1 reads as row 0: never used) */
            const int64_t rn = r + U * step;
#pragma unroll
            for (int u = 0; u < U; u++) id[u] = rn + u * step < r1 ? perm[rn + u * step] : (IdxT)0;
        }
#pragma unroll
        for (int u = 0; u < U; u++) Acc<T>::template add<W>(acc, vv[u], wv[u]);
    }
    for (; r < r1; r += step) {
        const int64_t i0 = (int64_t)perm[r];
        Acc<T>::template add<W>(acc, load_vec<T, ALIGNED>(x + i0 * ld, col0, d), W ? (double)w[i0] : 1.0);
    }
}

/* Where an item's column sums (out) and weight sum (out_w, W only) go: a cluster's only piece
 * (c = -1 - j) straight into its sums and count, any other piece into its partial row of
 * d + W doubles, for the combine. */
template <bool W>
__device__ __forceinline__ void item_out(int32_t c, int64_t item, int d, double *partials, double *sums,
                                         double *counts, double **out, double **out_w)
{
    if (c < 0) {
        const int64_t j = -1 - (int64_t)c;
        *out = sums + j * d;
        *out_w = counts + j;
    } else {
        *out = partials + item * (int64_t)(d + (W ? 1 : 0));
        *out_w = *out + d;
    }
}

/* Persistent: each block takes items from the counter until none is left. W: rows weighted
 * by w; the item's weight sum goes to column d of its partial row (rows of pd = d + 1). */
template <typename T, typename IdxT, bool ALIGNED, bool W>
__global__ void __launch_bounds__(THREADS, FKM_UPD_MIN_BLOCKS)
    k_reduce(const T *__restrict__ x, int64_t ld, int d, int nvec, int C, int R,
             const IdxT *__restrict__ perm, const float *__restrict__ w,
             const int64_t *__restrict__ item_off, int64_t k,
             const int32_t *__restrict__ icl, const int64_t *__restrict__ ir0, const int64_t *__restrict__ ir1,
             unsigned long long *__restrict__ counter, double *__restrict__ partials,
             double *__restrict__ sums, double *__restrict__ counts)
{
    constexpr int VEC = Acc<T>::VEC;
    __shared__ double red[THREADS * VEC]; /* [VEC][R][C] */
    __shared__ int64_t s_item;
    const int64_t total = item_off[k];
    const int tid = threadIdx.x;
    const int lane = tid / C, cc = tid - lane * C;
    const bool active = lane < R;
    const int64_t Rs = R;

    for (;;) {
        if (tid == 0) s_item = (int64_t)atomicAdd(counter, 1ull);
        __syncthreads();
        const int64_t li = s_item;
        if (li >= total) break; /* uniform over the block */
        const int64_t item = li;
        const int64_t r0 = ir0[item], r1 = ir1[item];
        double *out, *out_w;
        item_out<W>(icl[item], item, d, partials, sums, counts, &out, &out_w);

        for (int v0 = 0; v0 < nvec; v0 += C) {
            const int v = v0 + cc;
            double acc[VEC];
#pragma unroll
            for (int e = 0; e < VEC; e++) acc[e] = 0.0;
            if (active && v < nvec) {
                accum_rows<T, IdxT, ALIGNED, W>(acc, x, ld, d, v * VEC, perm, w, r0 + lane, r1, Rs);
            }
            /* combine the R row lanes by a fixed pairwise tree (level s: lane l += lane l + s,
             * l a multiple of 2s); its levels inside a warp (C a power of two below 32: 32 / C
             * row lanes per warp) by shuffles (H200, 1M × 8192: the reduce 125 -> 115 us,
             * bench/NOTES.md history 30) */
            int s0 = 1;
            if (C < 32 && 32 % C == 0) {
                for (; s0 < 32 / C && s0 < R; s0 <<= 1) { /* every thread of the warp shuffles */
#pragma unroll
                    for (int e = 0; e < VEC; e++) {
                        const double o = __shfl_down_sync(0xffffffffu, acc[e], s0 * C);
                        if (lane % (2 * s0) == 0 && lane + s0 < R) acc[e] += o;
                    }
                }
            }
            __syncthreads(); /* red is free (previous tile written out), s_item read by all */
            if (active && lane % s0 == 0) {
#pragma unroll
                for (int e = 0; e < VEC; e++) red[(e * R + lane) * C + cc] = acc[e];
            }
            __syncthreads();
            /* the levels across warps: each (element, column) by one thread, in the same order,
             * with no more barriers (1M × 8192: the reduce 115 -> 102 us, history 30) */
            for (int o = tid; o < C * VEC; o += THREADS) {
                const int e = o / C, c = o - e * C;
                double *p = red + e * R * C + c; /* lane l at p[l * C] */
                for (int s = s0; s < R; s <<= 1)
                    for (int l = 0; l + s < R; l += 2 * s) p[l * C] += p[(l + s) * C];
                const int col = (v0 + c) * VEC + e;
                if (v0 + c < nvec && col < d) out[col] = p[0];
            }
        }
        if (W) { /* the item's weight sum: row lanes in order of their rows, then the same tree */
            double ws = 0.0;
            if (active && cc == 0)
                for (int64_t r = r0 + lane; r < r1; r += Rs) ws += (double)w[(int64_t)perm[r]];
            __syncthreads();
            if (active && cc == 0) red[lane] = ws;
            __syncthreads();
            for (int s = 1; s < R; s <<= 1) {
                if (tid < R && tid % (2 * s) == 0 && tid + s < R) red[tid] += red[tid + s];
                __syncthreads();
            }
            if (tid == 0) *out_w = red[0];
        }
        __syncthreads(); /* red and s_item reused by the next item */
    }
}

/* Chunk reduce (calls with short mean segments): the sorted positions cut into ranges of
 * `sub`, one row lane (CW = min(nvec, 32) column lanes, RL = 32 / CW row lanes per warp) per
 * range q = [q0, q1). The lane walks its range in order, U rows in flight (the next batch's
 * row ids and labels loaded under this batch's rows), adding each row to the running sum of
 * its label's piece; where the label changes, and at q1, the piece is written: into the
 * cluster's sums when its whole segment lies in the range, else into slot 2q (head: the
 * segment began before q0) or 2q + 1 (tail: it goes on past q1), rows of pd = d + W doubles
 * (W: the weight sum in column d). Both slots are always written (zeros where unused), so what
 * the combine reads depends on the labels alone, also where they break the contract; labels
 * >= k (the radix sort leaves them among the others) are not added. Rows from *limit on (the
 * counting sort sorts only rows with a label in [0, k)) are not read.
 * A range's work is `sub` rows whatever the cluster sizes, where the piece reduce's one block
 * per piece waits on the largest pieces of skewed labels and on a block tree per piece. */
template <typename T, typename IdxT, bool ALIGNED, bool W>
__global__ void __launch_bounds__(THREADS)
    k_chunks(const T *__restrict__ x, int64_t ld, int d, int nvec, const IdxT *__restrict__ perm,
             const uint32_t *__restrict__ keys, const float *__restrict__ w, int64_t n,
             const unsigned long long *__restrict__ limit, int64_t k, int64_t sub, int64_t nsub,
             double *__restrict__ slots, double *__restrict__ sums, double *__restrict__ counts)
{
    constexpr int VEC = Acc<T>::VEC;
    constexpr int U = ALIGNED ? FKM_UPD_UNROLL : 4;
    const int lane = threadIdx.x & 31;
    const int CW = nvec < 32 ? nvec : 32, RL = 32 / CW;
    const int rl = lane / CW, cl = lane - rl * CW;
    const int64_t q = ((int64_t)blockIdx.x * THREADS + threadIdx.x) / 32 * RL + rl;
    if (rl >= RL || q >= nsub) return; /* no warp-wide operation below */
    const int pd = d + (W ? 1 : 0);
    double *head = slots + 2 * q * pd, *tail = head + pd;
    const int64_t m = limit && (int64_t)*limit < n ? (int64_t)*limit : n;
    const int64_t q0 = q * sub, q1 = q0 + sub < m ? q0 + sub : m;
    /* the range's first segment began before it, its last goes on past it */
    const bool before = q0 < q1 && q0 > 0 && keys[q0 - 1] == keys[q0];
    const bool after = q0 < q1 && q1 < m && keys[q1] == keys[q1 - 1];
    for (int v0 = 0; v0 < nvec; v0 += CW) {
        const int v = v0 + cl;
        if (v >= nvec) continue;
        const int col0 = v * VEC;
        const bool wl = W && v0 == 0 && cl == 0; /* the lane that writes the weight column */
        double acc[VEC], ws = 0.0;
#pragma unroll
        for (int e = 0; e < VEC; e++) acc[e] = 0.0;
        bool first = true, hw = false, tw = false;
        uint32_t cur = q0 < q1 ? keys[q0] : 0u;
        auto put = [&](bool last) {
            double *dst = nullptr, *dw = nullptr;
            if (first && before) {
                dst = head;
                dw = head + d;
                hw = true;
            } else if (last && after) {
                dst = tail;
                dw = tail + d;
                tw = true;
            } else if (cur < (uint64_t)k) {
                dst = sums + (int64_t)cur * d;
                dw = counts + cur;
            }
            if (dst) {
#pragma unroll
                for (int e = 0; e < VEC; e++)
                    if (col0 + e < d) dst[col0 + e] = acc[e];
                if (wl) *dw = ws;
            }
        };
        IdxT nid[U];
        uint32_t nky[U];
        auto fetch = [&](int64_t p) { /* row ids and labels of positions p .. p + U - 1 */
#pragma unroll
            for (int u = 0; u < U; u++) {
                const bool in = p + u < q1;
                nid[u] = in ? perm[p + u] : (IdxT)0;
                nky[u] = in ? keys[p + u] : cur;
            }
        };
        fetch(q0);
        for (int64_t p = q0; p < q1; p += U) {
            IdxT id[U];
            uint32_t ky[U];
            int4 vv[U];
            double wv[U];
#pragma unroll
            for (int u = 0; u < U; u++) {
                id[u] = nid[u];
                ky[u] = nky[u];
                const bool in = p + u < q1;
                vv[u] = in ? load_vec<T, ALIGNED>(x + (int64_t)id[u] * ld, col0, d) : make_int4(0, 0, 0, 0);
                wv[u] = W && in ? (double)w[id[u]] : 1.0;
            }
            fetch(p + U);
#pragma unroll
            for (int u = 0; u < U; u++)
                if (p + u < q1) {
                    if (ky[u] != cur) {
                        put(false);
                        cur = ky[u];
                        first = false;
#pragma unroll
                        for (int e = 0; e < VEC; e++) acc[e] = 0.0;
                        ws = 0.0;
                    }
                    if (cur < (uint64_t)k) {
                        Acc<T>::template add<W>(acc, vv[u], wv[u]);
                        if (W) ws += wv[u];
                    }
                }
        }
        if (q0 < q1) put(true);
#pragma unroll
        for (int e = 0; e < VEC; e++)
            if (col0 + e < d) {
                if (!hw) head[col0 + e] = 0.0;
                if (!tw) tail[col0 + e] = 0.0;
            }
        if (wl && !hw) head[d] = 0.0;
        if (wl && !tw) tail[d] = 0.0;
    }
}

/* One warp per (cluster, 32 columns) of k clusters × ntc tiles of 32 of ncols columns: this
 * thread's cluster j and column col, false past either end. */
__device__ __forceinline__ bool cluster_column(int64_t k, int ntc, int ncols, int64_t *j, int *col)
{
    const int64_t w = ((int64_t)blockIdx.x * THREADS + threadIdx.x) / 32;
    if (w >= k * ntc) return false;
    *j = w / ntc;
    *col = (int)(w - *j * ntc) * 32 + (int)(threadIdx.x & 31);
    return *col < ncols;
}

/* The chunk reduce's combine: one warp per (cluster, 32 of its ncols = d + W columns). A
 * segment inside one range was written by k_chunks; one over ranges q0 < q1 is the tail slot
 * of q0 plus the head slots of q0 + 1, ..., q1, in that order; an empty cluster gets zeros. */
__global__ void __launch_bounds__(THREADS)
    k_chunk_combine(const double *__restrict__ slots, const unsigned long long *__restrict__ start,
                    const unsigned long long *__restrict__ end, int64_t k, int d, int ncols, int ntc,
                    int64_t sub, double *__restrict__ sums, double *__restrict__ counts)
{
    int64_t j;
    int col;
    if (!cluster_column(k, ntc, ncols, &j, &col)) return;
    double *dst = col < d ? sums + j * (int64_t)d + col : counts + j;
    if (end[j] <= start[j]) { /* empty (the radix path's bounds: start all ones, end 0) */
        *dst = 0.0;
        return;
    }
    const int64_t q0 = (int64_t)start[j] / sub, q1 = ((int64_t)end[j] - 1) / sub;
    if (q0 == q1) return;
    double acc = slots[(2 * q0 + 1) * ncols + col];
    for (int64_t q = q0 + 1; q <= q1; q++) acc += slots[2 * q * ncols + col];
    *dst = acc;
}

/* Sum of the partial rows q0, q0 + step, ... < q1 of one column, in order. */
__device__ __forceinline__ double sum_rows(const double *__restrict__ p, int64_t q0, int64_t q1,
                                           int64_t stride, int64_t step)
{
    double s = 0.0;
    int64_t q = q0;
    for (; q + 7 * step < q1; q += 8 * step) {
        double v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) v[u] = p[(q + u * step) * stride];
#pragma unroll
        for (int u = 0; u < 8; u++) s += v[u];
    }
    for (; q < q1; q += step) s += p[q * stride];
    return s;
}

/* Combine level 1: one warp per (group leader item, 32 columns); partial rows of pd doubles,
 * ncols of them used (d, or d + 1 with the weight sums). */
__global__ void __launch_bounds__(THREADS)
    k_combine1(double *__restrict__ partials, const int32_t *__restrict__ icl,
               const int64_t *__restrict__ item_off, int64_t k, int64_t max_items, int d,
               int ncols, int ntiles, double *__restrict__ sums, double *__restrict__ counts)
{
    const int64_t w = ((int64_t)blockIdx.x * THREADS + threadIdx.x) / 32;
    const int lane = threadIdx.x & 31;
    if (w >= max_items * ntiles) return;
    const int64_t b = w / ntiles;
    if (b >= item_off[k]) return;
    const int col = (int)(w - b * ntiles) * 32 + lane;
    if (col >= ncols) return;
    if (icl[b] < 0) return; /* the cluster's only piece: written by the reduce */
    const int64_t j = icl[b], a = item_off[j], np = item_off[j + 1] - a, q = b - a;
    if (q % GROUP) return;
    const int64_t e = q + GROUP < np ? q + GROUP : np;
    const double s = sum_rows(partials + col, a + q, a + e, ncols, 1);
    if (np <= GROUP) *(col < d ? sums + j * (int64_t)d + col : counts + j) = s;
    else partials[b * (int64_t)ncols + col] = s; /* in place: only this thread reads slot b */
}

/* Combine level 2: one warp per (cluster, 32 columns); empty clusters get zeros. */
__global__ void __launch_bounds__(THREADS)
    k_combine2(const double *__restrict__ partials, const int64_t *__restrict__ item_off, int64_t k,
               int d, int ncols, int ntiles, double *__restrict__ sums, double *__restrict__ counts)
{
    int64_t j;
    int col;
    if (!cluster_column(k, ntiles, ncols, &j, &col)) return;
    const int64_t a = item_off[j], np = item_off[j + 1] - a;
    double *dst = col < d ? sums + j * (int64_t)d + col : counts + j;
    if (np == 0) *dst = 0.0;
    else if (np > GROUP) *dst = sum_rows(partials + col, a, a + np, ncols, GROUP);
}

/* The reduce's inputs and outputs, for the launch: the piece reduce's items, or the chunk
 * reduce's sorted labels and ranges (chunk). */
template <typename IdxT> struct ReduceArgs {
    const IdxT *perm;
    const float *w;
    const int64_t *item_off, *ir0, *ir1;
    const int32_t *icl;
    int64_t k;
    unsigned long long *counter;
    double *partials, *sums, *counts;
    bool chunk;
    const uint32_t *keys;
    const unsigned long long *limit;
    int64_t n, sub, nsub;
};

template <typename T, typename IdxT, bool ALIGNED, bool W>
cudaError_t launch_reduce_t(const T *x, int64_t ld, int d, const Geo &g, const ReduceArgs<IdxT> &a, cudaStream_t s)
{
    if (a.chunk) { /* one row lane per range */
        const int CW = g.nvec < 32 ? g.nvec : 32, RL = 32 / CW;
        const int64_t warps = (a.nsub + RL - 1) / RL;
        k_chunks<T, IdxT, ALIGNED, W><<<blocks_for(warps * 32), THREADS, 0, s>>>(
            x, ld, d, g.nvec, a.perm, a.keys, a.w, a.n, a.limit, a.k, a.sub, a.nsub, a.partials, a.sums,
            a.counts);
        return cudaGetLastError();
    }
    int dev = 0, sms = 0, per_sm = 0;
    cudaError_t e;
    if ((e = cudaGetDevice(&dev)) != cudaSuccess) return e;
    if ((e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess) return e;
    if ((e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k_reduce<T, IdxT, ALIGNED, W>,
                                                           THREADS, 0)) != cudaSuccess)
        return e;
    int64_t grid = (int64_t)sms * (per_sm > 0 ? per_sm : 1);
    if (grid > g.max_items) grid = g.max_items;
    k_reduce<T, IdxT, ALIGNED, W><<<(unsigned)grid, THREADS, 0, s>>>(
        x, ld, d, g.nvec, g.C, g.R, a.perm, a.w, a.item_off, a.k, a.icl, a.ir0, a.ir1, a.counter,
        a.partials, a.sums, a.counts);
    return cudaGetLastError();
}

template <typename T, typename IdxT>
cudaError_t launch_reduce(const void *x, int64_t ld, int d, const Geo &g, const ReduceArgs<IdxT> &a, cudaStream_t s)
{
    const T *xt = static_cast<const T *>(x);
    const bool al = ((uintptr_t)x % 16 == 0) && (ld % g.vec == 0);
    if (a.w)
        return al ? launch_reduce_t<T, IdxT, true, true>(xt, ld, d, g, a, s)
                  : launch_reduce_t<T, IdxT, false, true>(xt, ld, d, g, a, s);
    return al ? launch_reduce_t<T, IdxT, true, false>(xt, ld, d, g, a, s)
              : launch_reduce_t<T, IdxT, false, false>(xt, ld, d, g, a, s);
}

/* k_sweep with the fewest ballots that cover the labels' bits (each instantiation costs
 * compile time: five sizes). */
template <typename IdxT, int BITS>
cudaError_t launch_sweep_b(const int32_t *labels, int64_t n, int64_t k, const IdxT *before, const IdxT *segbase,
                           IdxT *perm, uint32_t *keys, unsigned ntiles, cudaStream_t s)
{
    const size_t smem = sweep_smem<IdxT>(k);
    const cudaError_t e = cudaFuncSetAttribute(k_sweep<IdxT, BITS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    k_sweep<IdxT, BITS><<<ntiles, THREADS, smem, s>>>(labels, n, k, before, segbase, perm, keys);
    return cudaGetLastError();
}
template <typename IdxT>
cudaError_t launch_sweep(const int32_t *labels, int64_t n, int64_t k, const IdxT *before, const IdxT *segbase,
                         IdxT *perm, uint32_t *keys, unsigned ntiles, cudaStream_t s)
{
    static_assert(SWEEP_KMAX <= 4096, "k_sweep's widest instantiation takes 12 label bits");
    const int bits = sort_bits(k);
    if (bits <= 4) return launch_sweep_b<IdxT, 4>(labels, n, k, before, segbase, perm, keys, ntiles, s);
    if (bits <= 8) return launch_sweep_b<IdxT, 8>(labels, n, k, before, segbase, perm, keys, ntiles, s);
    if (bits <= 10) return launch_sweep_b<IdxT, 10>(labels, n, k, before, segbase, perm, keys, ntiles, s);
    if (bits <= 11) return launch_sweep_b<IdxT, 11>(labels, n, k, before, segbase, perm, keys, ntiles, s);
    return launch_sweep_b<IdxT, 12>(labels, n, k, before, segbase, perm, keys, ntiles, s);
}

template <typename IdxT>
int run(fkm_kmode mode, const void *x, int64_t n, int d, int ld, const int32_t *labels,
        const float *min_dist, const float *w, int64_t k, double *stats, void *workspace,
        size_t workspace_bytes, cudaStream_t s)
{
    Layout L;
    FKM_K_TRY(layout<IdxT>(n, k, d, chunk_reduce(n, k), &L));
    if (workspace_bytes < L.total || !workspace) return (int)cudaErrorInvalidValue;
    char *base = (char *)(((uintptr_t)workspace + ALIGN - 1) / ALIGN * ALIGN);
    IdxT *perm = (IdxT *)(base + L.perm);
    unsigned long long *start = (unsigned long long *)(base + L.start);
    unsigned long long *end = (unsigned long long *)(base + L.end);
    int64_t *npieces = (int64_t *)(base + L.npieces);
    int64_t *item_off = (int64_t *)(base + L.item_off);
    int32_t *icl = (int32_t *)(base + L.icl);
    int64_t *ir0 = (int64_t *)(base + L.ir0), *ir1 = (int64_t *)(base + L.ir1);
    uint32_t *keys = (uint32_t *)(base + L.keys);
    unsigned long long *counter = (unsigned long long *)(base + L.counter);
    double *ipart = (double *)(base + L.ipart);
    double *partials = (double *)(base + L.partials);
    void *temp = base + L.temp;

    const Geo g = geometry(fkm_k_elem_bytes(mode), n, k, d);
    double *sums = stats, *counts = stats + k * (int64_t)d, *inertia = counts + k;
    const unsigned ntiles = (unsigned)L.ntiles;

    /* perm: every cluster's rows contiguous and ascending, and the inertia partials, by the
     * counting sort (hist, scan, scatter) or by iota and the CUB radix sort of (label, row id)
     * on the label's ⌈log2 k⌉ low bits; then the segment bounds */
    if (L.counting) {
        IdxT *hist = (IdxT *)(base + L.hist), *totals = hist + L.ntiles * k, *segbase = totals + k;
        k_count<IdxT><<<ntiles, THREADS, (size_t)k * sizeof(uint32_t), s>>>(
            labels, min_dist, w, n, k, aligned16(labels), aligned16(min_dist), aligned16(w), hist, ipart);
        FKM_K_LAUNCHED();
        k_colscan<IdxT><<<(unsigned)((k + CS_CL - 1) / CS_CL), 1024, 0, s>>>(hist, L.ntiles, k, totals);
        FKM_K_LAUNCHED();
        k_segstart<IdxT><<<1, THREADS, 0, s>>>(totals, k, segbase, start, end);
        FKM_K_LAUNCHED();
        FKM_K_TRY(launch_sweep<IdxT>(labels, n, k, hist, segbase, perm, L.chunk ? keys : nullptr, ntiles, s));
    } else {
        IdxT *vals = (IdxT *)(base + L.vals);
        const int bits = sort_bits(k);
        k_iota<IdxT><<<ntiles, THREADS, 0, s>>>(vals, min_dist, w, n, aligned16(min_dist), aligned16(w), ipart);
        FKM_K_LAUNCHED();
        size_t tb = L.temp_bytes;
        if (sizeof(IdxT) == 4)
            FKM_K_TRY(cub::DeviceRadixSort::SortPairs(temp, tb, (const uint32_t *)labels, keys,
                                                      (const IdxT *)vals, perm, (uint32_t)n, 0,
                                                      bits, s));
        else
            FKM_K_TRY(cub::DeviceRadixSort::SortPairs(temp, tb, (const uint32_t *)labels, keys,
                                                      (const IdxT *)vals, perm, (int64_t)n, 0,
                                                      bits, s));
        FKM_K_TRY(cudaMemsetAsync(start, 0xFF, (size_t)k * sizeof(uint64_t), s));
        FKM_K_TRY(cudaMemsetAsync(end, 0, (size_t)k * sizeof(uint64_t), s));
        const int64_t gb = (n + 4 * THREADS - 1) / (4 * THREADS);
        k_bounds<<<(unsigned)(gb < BOUNDS_BLOCKS ? gb : BOUNDS_BLOCKS), THREADS, 0, s>>>(
            keys, n, k, (uintptr_t)keys % 16 == 0, start, end);
        FKM_K_LAUNCHED();
    }

    /* plan (counts, inertia); the piece reduce's scan and items */
    k_plan<<<blocks_for(k + 1), THREADS, 0, s>>>(start, end, k, g.P, w != nullptr, npieces, counts,
                                                  ipart, L.ntiles, inertia);
    FKM_K_LAUNCHED();
    if (!L.chunk) {
        FKM_K_TRY(cudaMemsetAsync(counter, 0, sizeof(unsigned long long), s));
        size_t tb = L.temp_bytes;
        FKM_K_TRY(cub::DeviceScan::ExclusiveSum(temp, tb, (const int64_t *)npieces, item_off,
                                                (int64_t)(k + 1), s));
        k_items<<<blocks_for(g.max_items), THREADS, 0, s>>>(start, end, item_off, k, g.max_items, icl,
                                                             ir0, ir1);
        FKM_K_LAUNCHED();
    }
    /* reduce */
    const ReduceArgs<IdxT> ra = {perm,   w,      item_off, ir0,    ir1, icl,   k,     counter, partials,
                                 sums,   counts, L.chunk,  keys,
                                 L.counting ? end + (k - 1) : nullptr, /* the counting sort: rows sorted */
                                 n,      L.sub,  L.nsub};
    FKM_K_TRY(with_store_type(mode, [&](auto tag) {
        return launch_reduce<typename decltype(tag)::type, IdxT>(x, ld, d, g, ra, s);
    }));
    /* combine (weighted: one more column, the weight sums, which become the counts) */
    const int ncols = d + (w ? 1 : 0), ntc = (ncols + 31) / 32;
    if (L.chunk) {
        k_chunk_combine<<<blocks_for(k * ntc * 32), THREADS, 0, s>>>(partials, start, end, k, d, ncols, ntc,
                                                                      L.sub, sums, counts);
        FKM_K_LAUNCHED();
        return 0;
    }
    k_combine1<<<blocks_for(g.max_items * ntc * 32), THREADS, 0, s>>>(
        partials, icl, item_off, k, g.max_items, d, ncols, ntc, sums, counts);
    FKM_K_LAUNCHED();
    k_combine2<<<blocks_for(k * ntc * 32), THREADS, 0, s>>>(partials, item_off, k, d, ncols, ntc, sums,
                                                             counts);
    FKM_K_LAUNCHED();
    return 0;
}

} // namespace

extern "C" size_t fkm_k_update_workspace(int64_t n, int64_t k, int d)
{
    if (n <= 0 || k < 1 || d < 1) return 0;
    /* A call on fewer rows (the streamed backend's last chunk) may take the chunk reduce where
     * n rows take the piece reduce, and need more (sorted keys, two slots per range): so also
     * the chunk reduce's workspace at the most rows that take it, S k (< n in that case). Each
     * reduce's workspace grows with the rows. */
    const int64_t rows[2] = {n, !chunk_reduce(n, k) && short_rows() > 0 ? short_rows() * k : 0};
    size_t total = 0;
    for (int64_t r : rows) {
        if (r <= 0) continue;
        Layout L;
        cudaError_t e = (uint64_t)r <= 0xFFFFFFFFull ? layout<uint32_t>(r, k, d, chunk_reduce(r, k), &L)
                                                     : layout<uint64_t>(r, k, d, chunk_reduce(r, k), &L);
        if (e != cudaSuccess) return SIZE_MAX;
        if (L.total > total) total = L.total;
    }
    return total;
}

extern "C" int fkm_k_update(fkm_kmode mode, const void *x, int64_t n, int d, int ld,
                            const int32_t *labels, const float *min_dist, const float *weights,
                            int64_t k, double *stats, void *workspace, size_t workspace_bytes,
                            fkm_stream s)
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
        return run<uint32_t>(mode, x, n, d, ld, labels, min_dist, weights, k, stats, workspace,
                             workspace_bytes, st);
    return run<uint64_t>(mode, x, n, d, ld, labels, min_dist, weights, k, stats, workspace,
                         workspace_bytes, st);
}
