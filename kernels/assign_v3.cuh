/* FlashAssign v3: warp-specialised Hopper kernel (sm_90a) for 16-bit rows with 64 < d <= 128.
 *
 * Why another kernel: v2's warpgroups all pass one __syncthreads per centroid tile, so they
 * issue their wgmma together and run their argmin epilogues together, and the tensor cores idle
 * during the epilogue (v11 5.49 ms against 4.11 ms without epilogue, bench/NOTES.md). Here the
 * warpgroups only meet through mbarriers and named barriers, and one warpgroup's epilogue runs
 * while the other's matrix work is on the tensor cores.
 *
 * Block: 3 warpgroups (384 threads), persistent grid (one block per SM) over point tiles of
 * BM = 256 rows.
 *   - Warpgroup 0, the producer: gives its registers away (setmaxnreg 40); one thread issues
 *     TMA tile copies (cp.async.bulk.tensor, 128-byte swizzle = the K-major layout wgmma reads
 *     through a descriptor) of the point tile X (2 x 256 rows x 128 B) and of each centroid tile
 *     C (2 x 128 rows x 128 B) with its 128 norms, into an S-stage ring. Each stage has a "full"
 *     mbarrier (the copies' bytes complete it) and an "empty" one (the 8 consumer warps arrive
 *     when done with it). Rows and columns past the matrix are zero-filled by the copy engine.
 *   - Warpgroups 1 and 2, the consumers (setmaxnreg 232): each owns 128 rows of the point tile
 *     (two m64 halves, MH = 2), keeps their A fragments in registers for the whole centroid sweep
 *     (ldmatrix from the swizzled X tile at the start of a point tile, after which the producer
 *     may overwrite X with the next tile), and per centroid tile issues 16 wgmma m64n128k16
 *     (A from registers, B from the stage), waits for them, and folds the 128 x 128 products
 *     into a running (best, index) per row (the epilogue), then releases the stage.
 *   - Ping-pong (PP): the two consumers take turns issuing their wgmma (named barriers 1 and 2,
 *     as FlashAttention-3 does), so their tiles go to the tensor cores back to back and each
 *     one's epilogue runs under the other's matrix work (1024 tensor clocks per warpgroup tile
 *     against ~300-550 issue slots of epilogue per scheduler).
 *
 * Epilogue variants (EPI): 1 = per element d = ||c||^2 - 2 acc, (best, idx) by compare+select (4
 * instructions); 2 = two-level: d computed in place and the row minimum first (ffma + fmnmx),
 * the index pass (compare + select, lowest column of the minimum) only for row slots whose
 * minimum beats the running best (warp-uniform vote; rare once the best has settled, i.e. for
 * large k); 3 = 1 with best = fminf(best, d) beside the compare (the min no longer waits for
 * it) and two running (best, index) chains per row slot (even / odd column groups, merged
 * lexicographically at the end), so that ~8 chains per thread overlap instead of 4; 4 = 2 with
 * four partial minima per row slot and the index pass as two interleaved scans; 5 = 1 with the
 * tile's own (minimum, column) per row slot, the column an immediate, merged once per tile;
 * 10 = packed integer keys (distance offset to >= 0, its low 5 mantissa bits replaced by the
 * column's code; metric IP runs 5); 11 and 12 = the same keys made by one lop3, folded by a
 * float minimum (11) or an integer one (12); 17 = 12 with the fma done by the wgmma (the
 * accumulators start from -(||c||^2 + b) / 2); 0 = no epilogue, 6 = the fma alone, 7 = fma +
 * minimum without index (timing only: outputs are garbage). All but 10-12 and 17 give the
 * labels of v2 (same products, same distances, ties to the lowest index); 10-12 and 17 compare
 * distances to 19 bits, offset by the largest ||x||^2 of a thread's 4 rows (17: a warp's 32), or
 * by each row's own where those differ 8x or more (prow: a point tile's warp with outliers).
 * XPF: the finalize's row norms are read at the start of the tile's sweep. EARLY: the next
 * stage's full barrier is tested (mbarrier test_wait, which does not block) before the
 * epilogue and waited on only if it was not complete, so its ~200-cycle latency passes under the
 * epilogue. TRACE (diagnostics): block 0's consumers stamp the SM clock at five points per step.
 * SPLIT: each consumer's two m64 halves alternate on the tensor cores (one half's epilogue
 * under its own wgmma of the other half); see the loop.
 * Columns past k in the last centroid tile get -inf products, hence +inf distances.
 * Metric IP: ||c||^2 is taken as 0 (norms not copied nor read), md = ip_offset + best / 2. */
#ifndef FKM_ASSIGN_V3_CUH
#define FKM_ASSIGN_V3_CUH

#include <cuda.h> /* CUtensorMap */

#include "assign_common.cuh"
#include "assign_v1.cuh" /* AssignParams */
#include "assign_v3_sched.cuh"

namespace fkm {

constexpr int V3_KS = 8, V3_NKC = 2, V3_T = 384; /* V3_BM, V3_BN: assign_v3_sched.cuh */
constexpr uint32_t V3_X_BYTES = V3_NKC * V3_BM * 128; /* 64 KB */
constexpr uint32_t V3_C_BYTES = V3_NKC * V3_BN * 128; /* 32 KB */
constexpr uint32_t V3_CN_BYTES = V3_BN * 4;
constexpr uint32_t V3_XN_BYTES = V3_BM * 4; /* the point tile's row norms (EPI 10) */
/* EPI 17: each consumer warp's accumulator start values, 16 bytes per (8-column group, quad
 * lane): 8 warps x 16 x 4 x 16 B */
constexpr uint32_t V3_IN_WARP_BYTES = (V3_BN / 8) * 4 * 16, V3_IN_BYTES = 8 * V3_IN_WARP_BYTES;
/* Consumer and producer register budgets: 2 x 128 x 232 + 128 x 40 = 64512 = 384 x 168 (the
 * block's allocation at launch); the split consumers (more loop state live across the wgmma
 * of the other half) take 240, the producer then 24: 2 x 128 x 240 + 128 x 24 = 64512. */
template <bool SPLIT> __host__ __device__ constexpr int v3_reg_consumer() { return SPLIT ? 240 : 232; }
template <bool SPLIT> __host__ __device__ constexpr int v3_reg_producer() { return SPLIT ? 24 : 40; }
/* Named barrier ids of the ping-pong (0 is __syncthreads). */
constexpr int V3_BAR_PP = 1;

template <bool B> struct V3Flag {
    static constexpr bool value = B;
};
/* which m64 half of a consumer's rows a step touches: 0, 1, or -1 = both */
template <int H> struct V3Half {
    static constexpr int value = H;
};

/* X tile, S centroid stages, S norm stages, the point tile's row norms, 2S + 2 mbarriers, EPI
 * 17's start values (16-byte aligned after the barriers), and slack to align to 1024 B (the
 * 128-byte swizzle pattern repeats every 1024 B and is taken from the address). */
static inline size_t v3_smem_bytes(int S, int EPI)
{
    return 1024 + V3_X_BYTES + (size_t)S * (V3_C_BYTES + V3_CN_BYTES) + V3_XN_BYTES + (size_t)(2 * S + 2) * 8 +
           (EPI == 17 ? 16 + V3_IN_BYTES : 0);
}

/* Loop options (the template's F, a sum of these). */
constexpr int V3_SPLIT = 1;   /* the split consumers (see the loop) */
constexpr int V3_XPF = 2;     /* the finalize's row norms read at the start of the tile's sweep */
constexpr int V3_TRACE = 4;   /* timing diagnostics: block 0 stamps each step (v3_trace below) */
constexpr int V3_EARLY = 8;   /* the next stage's full barrier tested before the epilogue */
constexpr int V3_TAIL = 16;   /* the last round's point tiles split along k over all blocks (v3_sched) */

/* Order-preserving maps of floats to unsigned integers (and back) for the tail's merge. */
__device__ __forceinline__ unsigned v3_ord(float f)
{
    const unsigned u = __float_as_uint(f == 0.f ? 0.f : f); /* -0 as +0: they compare equal */
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}
__device__ __forceinline__ float v3_unord(unsigned u) { return __uint_as_float((u & 0x80000000u) ? u & 0x7fffffffu : ~u); }

/* Rows of the last round that a split item touched (key not all ones) get their merged label
 * and distance; the others were written by the item that covered their whole tile. */
__global__ void __launch_bounds__(256) v3_tail_finish_kernel(const unsigned long long *key, const unsigned *mdk,
                                                              int64_t row0, int64_t rows, int32_t *labels, float *md)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows) return;
    const unsigned long long kk = key[i];
    if (kk == ~0ull) return;
    labels[row0 + i] = (int32_t)(uint32_t)kk;
    md[row0 + i] = v3_unord(mdk[i]);
}

/* TRACE: SM clock stamps of block 0's consumers (warp 0, lane 0 of each), per step s <
 * V3_TRACE_STEPS: [0] before the wait for the stage, [1] stage full (and, PP, its turn), [2]
 * wgmma committed, [3] wgmma complete, [4] epilogue done and the stage released; on an item's
 * last step also [5] finalize done and [6] the next point tile's X full (then load_a, and the
 * next step's [0]). Read by fkm_k_assign_v3_trace (benches only). */
constexpr int V3_TRACE_STEPS = 1024, V3_TRACE_PTS = 7;
__device__ unsigned long long v3_trace[2][V3_TRACE_STEPS][V3_TRACE_PTS];

template <bool BF16, int S, int EPI, bool PP, int F>
__global__ void __launch_bounds__(V3_T, 1)
    assign_v3_kernel(const AssignParams p, const __grid_constant__ CUtensorMap tmx,
                     const __grid_constant__ CUtensorMap tmc, const __grid_constant__ CUtensorMap tmn,
                     const __grid_constant__ CUtensorMap tmxn)
{
#if FKM_SM90A
    constexpr bool SPLIT = (F & V3_SPLIT) != 0, XPF = (F & V3_XPF) != 0, TRACE = (F & V3_TRACE) != 0;
    constexpr bool EARLY = (F & V3_EARLY) != 0, TAIL = (F & V3_TAIL) != 0;
    static_assert(!(SPLIT && (EARLY || TAIL)), "unsplit loop option");
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t raw = smem_u32(smem_raw);
    const uint32_t sX = (raw + 1023u) & ~1023u;
    const uint32_t sC = sX + V3_X_BYTES;
    const uint32_t sCnAddr = sC + S * V3_C_BYTES;
    const uint32_t sXnAddr = sCnAddr + S * V3_CN_BYTES;
    const uint32_t sBar = sXnAddr + V3_XN_BYTES;
    /* EPI 17: the consumer warps' accumulator start values, behind the barriers (so that the
     * other versions' layout is unchanged) */
    const uint32_t sInAddr = (sBar + (2u * S + 2u) * 8u + 15u) & ~15u;
    const float *sCn = reinterpret_cast<const float *>(smem_raw + (sCnAddr - raw));
    const float *sXn = reinterpret_cast<const float *>(smem_raw + (sXnAddr - raw));
    /* EPI 10-12, 17 (metric L2): distances offset by the largest row norm of the thread's rows
     * (17: the warp's; each row's own under prow), so that they are >= 0 and compare as integers
     * (below) */
    const bool xoff = EPI >= 10 && !p.ip;
    /* EPI 17 (metric L2): the wgmma accumulate onto -(||c||^2 + b) / 2 (see the epilogue) */
    const bool accinit = EPI == 17 && !p.ip;
    /* barriers: full[S], empty[S], xfull, xempty */
    const uint32_t xfull = sBar + 16u * S, xempty = xfull + 8u;

    const int64_t nPT = (p.n + V3_BM - 1) / V3_BM;
    const int nJ = (int)((p.k + V3_BN - 1) / V3_BN);
    const V3Sched sched = v3_sched(nPT, nJ, TAIL && p.tail_key != nullptr, gridDim.x, blockIdx.x);
    const int nIt = sched.items;
    static_assert(!(SPLIT && PP), "the split consumers do not take turns");
    static_assert(!(SPLIT && (EPI >= 10 || XPF || TRACE)), "one row offset / norm set per point tile: unsplit only");
    if (nIt <= 0) return; /* uniform over the block, before any barrier */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wg = warp >> 2;

    if (tid == 0) {
        for (int st = 0; st < S; ++st) {
            mbar_init(sBar + 8u * st, 1);       /* full: the producer's arrive + tx bytes */
            mbar_init(sBar + 8u * (S + st), 8); /* empty: one arrive per consumer warp */
        }
        mbar_init(xfull, 1);
        mbar_init(xempty, 8);
        mbar_init_fence();
        tma_prefetch_desc(&tmx);
        tma_prefetch_desc(&tmc);
        if (!p.ip) tma_prefetch_desc(&tmn);
        if (xoff) tma_prefetch_desc(&tmxn);
    }
    __syncthreads();

    if (wg == 0) {
        /* ---------------- producer ---------------- */
        setmaxnreg_dec<v3_reg_producer<SPLIT>()>();
        if (tid == 0) {
            const bool ip = p.ip != 0;
            const uint32_t c_tx = V3_C_BYTES + (ip ? 0u : V3_CN_BYTES);
            /* The next point tile's X goes in after step min(S, steps of the item) of an item:
             * by then (S steps ahead of the consumers, or at the item's end when it has fewer
             * steps) the consumers have taken the current X into registers, or are about to, so
             * the wait is short. */
            auto load_x = [&](int it) {
                int64_t tile;
                int j0, j1;
                v3_item(sched, it, nJ, &tile, &j0, &j1);
                const int row0 = (int)(tile * V3_BM);
                mbar_arrive_expect_tx(xfull, V3_X_BYTES + (xoff ? V3_XN_BYTES : 0u));
#pragma unroll
                for (int kc = 0; kc < V3_NKC; ++kc) tma_load_2d(sX + kc * (V3_BM * 128), &tmx, kc * 64, row0, xfull);
                if (xoff) tma_load_1d(sXnAddr, &tmxn, row0, xfull);
            };
            load_x(0);
            int st = 0;
            uint32_t ph = 0;
            for (int it = 0; it < nIt; ++it) {
                int64_t tile;
                int j0, j1;
                v3_item(sched, it, nJ, &tile, &j0, &j1);
                const int jx = j0 + (j1 - j0 < S ? j1 - j0 : S) - 1;
                for (int j = j0; j < j1; ++j) {
                    const uint32_t full = sBar + 8u * st;
                    mbar_wait(sBar + 8u * (S + st), ph ^ 1u); /* a fresh barrier passes parity 1 */
                    mbar_arrive_expect_tx(full, c_tx);
                    const uint32_t dst = sC + st * V3_C_BYTES;
#pragma unroll
                    for (int kc = 0; kc < V3_NKC; ++kc)
                        tma_load_2d(dst + kc * (V3_BN * 128), &tmc, kc * 64, j * V3_BN, full);
                    if (!ip) tma_load_1d(sCnAddr + st * V3_CN_BYTES, &tmn, j * V3_BN, full);
                    if (++st == S) {
                        st = 0;
                        ph ^= 1u;
                    }
                    if (j == jx && it + 1 < nIt) {
                        mbar_wait(xempty, (uint32_t)it & 1u);
                        load_x(it + 1);
                    }
                }
            }
        }
    } else {
        /* ---------------- consumers ---------------- */
        setmaxnreg_inc<v3_reg_consumer<SPLIT>()>();
        const int c = wg - 1; /* consumer index: rows c*128 .. c*128+127 of the point tile */
        const int w = warp & 3, g = lane >> 2, t = lane & 3;
        const int total = (int)(sched.R * nJ + (sched.hi - sched.lo)); /* steps of this block */
        const int64_t tail_row0 = sched.R * gridDim.x * V3_BM;   /* first row of the last round */
        /* valid columns of the last centroid tile (BN when k is a multiple of BN) */
        const int krem = (int)(p.k - (int64_t)(nJ - 1) * V3_BN);

        float acc[2][64];
        uint32_t a[2][V3_KS][4];
        /* running (best, index) per row slot (h, r), in NQ independent chains (EPI 3: even and
         * odd column groups, so that the compare/select chains overlap), merged at the end */
        constexpr int NQ = EPI == 3 ? 2 : 1;
        const float none = accinit ? -FKM_INF : FKM_INF; /* no best yet (EPI 17: as its key's float, below) */
        float best[2][2][NQ];
        int bidx[2][2][NQ];
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int r = 0; r < 2; ++r)
#pragma unroll
                for (int q = 0; q < NQ; ++q) {
                    best[h][r][q] = none;
                    bidx[h][r][q] = 0;
                }
        float boff = 0.f; /* EPI 10-12: the largest ||x||^2 of this thread's 4 rows of the tile (17: its warp's 32) */
        /* EPI 10-12, 17: the warp's rows mix norms too far apart for one offset (load_a), so this
         * point tile's distances take each row's own norm (warp-uniform) */
        bool prow = false;
        /* XPF: the four rows' ||x||^2, read when the tile's sweep starts, so that the finalize
         * does not wait on a global load at the point-tile change */
        float xnr[2][2] = {{0.f, 0.f}, {0.f, 0.f}};
        const uint32_t m31 = opaque_u32(31u); /* EPI 11, 12: the code's bits, a register operand of its lop3 */

        /* part: the item covered only some centroid tiles (TAIL): merged into p.tail_* instead */
        auto finalize = [&](int64_t tile, bool part, auto htag) {
            constexpr int HS = decltype(htag)::value;
            const int64_t r0 = tile * V3_BM + c * 128 + w * 16 + g;
            /* After the quad's butterfly each of its lanes holds every row slot's result; lane t
             * keeps slot t (h = t >> 1, r = t & 1; of one half HS, slot r = t for t < 2) and
             * writes it: one guarded store per output instead of lane 0 storing four behind
             * branches. */
            float wb = FKM_INF, wx = 0.f;
            int wi = 0;
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    if (HS >= 0 && h != HS) continue;
                    /* EPI 17 keeps the best as its key's float, -d' / 2 (-inf: none yet) */
                    float b = accinit ? -2.f * best[h][r][0] : best[h][r][0];
                    int bi = bidx[h][r][0];
#pragma unroll
                    for (int q = 1; q < NQ; ++q) merge_best(b, bi, best[h][r][q], bidx[h][r][q]);
#pragma unroll
                    for (int off = 1; off <= 2; off <<= 1) {
                        float ob = __shfl_xor_sync(0xffffffffu, b, off);
                        int oi = __shfl_xor_sync(0xffffffffu, bi, off);
                        merge_best(b, bi, ob, oi);
                    }
                    const bool mine = t == (HS >= 0 ? r : 2 * h + r);
                    wb = mine ? b : wb;
                    wi = mine ? bi : wi;
                    if (XPF) wx = mine ? xnr[h][r] : wx;
#pragma unroll
                    for (int q = 0; q < NQ; ++q) {
                        best[h][r][q] = none;
                        bidx[h][r][q] = 0;
                    }
                }
            const int64_t row = r0 + (HS >= 0 ? HS : t >> 1) * 64 + (HS >= 0 ? t : t & 1) * 8;
            if ((HS < 0 || t < 2) && row < p.n) {
                const float mdv = p.ip ? p.ip_offset + 0.5f * wb : fmaxf(prow ? wb : (XPF ? wx : p.xn[row]) + (wb - boff), 0.f);
                if (TAIL && part) {
                    /* min_dist is non-decreasing in b, so the smallest of the parts' is the
                     * winner's; b's order then the lower label, as merge_best */
                    atomicMin(p.tail_key + (row - tail_row0), (unsigned long long)v3_ord(wb) << 32 | (uint32_t)wi);
                    atomicMin(p.tail_md + (row - tail_row0), v3_ord(mdv));
                } else {
                    p.labels[row] = wi;
                    p.md[row] = mdv;
                }
            }
        };

        /* Columns past k in the last centroid tile: -inf products, hence +inf distances. Done right
         * after the half's wgmma completed, with no wgmma in flight: ptxas serialises the wgmma
         * pipeline when non-wgmma instructions write accumulator registers while one is pending. */
        auto mask_tail = [&](auto htag, int j) {
            constexpr int HS = decltype(htag)::value;
            constexpr int H0 = HS < 0 ? 0 : HS, H1 = HS < 0 ? 2 : HS + 1;
            if (j == nJ - 1 && krem < V3_BN) { /* warp-uniform; once per point tile at most */
#pragma unroll
                for (int i = 0; i < V3_BN / 8; ++i)
#pragma unroll
                    for (int e = 0; e < 2; ++e)
                        if (8 * i + 2 * t + e >= krem)
#pragma unroll
                            for (int h = H0; h < H1; ++h)
#pragma unroll
                                for (int r = 0; r < 2; ++r) acc[h][4 * i + 2 * r + e] = -FKM_INF;
            }
        };

        /* IPZ: metric IP, ||c||^2 = 0 (the norms were not copied). The accumulators are only read
         * (EPI 4 excepted, which runs with nothing pending), so one half can be folded while the
         * other half's wgmma is in flight. */
        auto epilogue = [&](auto iptag, auto prtag, auto htag, int j, int st) {
            constexpr bool IPZ = decltype(iptag)::value;
            constexpr bool PR = decltype(prtag)::value; /* EPI 10-12, 17 with prow: the row's own offset */
            constexpr int HS = decltype(htag)::value;
            constexpr int H0 = HS < 0 ? 0 : HS, H1 = HS < 0 ? 2 : HS + 1; /* halves [H0, H1) */
            constexpr int E = EPI >= 10 && IPZ ? 5 : EPI; /* metric IP: the packed keys (EPI 10-12, 17) run as EPI 5 */
            const float *cnb = sCn + st * V3_BN;
            const int jb = j * V3_BN + 2 * t;
            (void)IPZ;
            if constexpr (E == 0) { /* keep both halves' accumulators live */
                (void)cnb;
                (void)jb;
                best[H0][0][0] = fminf(best[H0][0][0], acc[H0][0] + acc[H1 - 1][0]);
            } else if constexpr (E == 3) {
                /* d, then best = min(best, d) and the index where d < best: the min does not wait
                 * for the compare, and the two chains per row slot run side by side */
#pragma unroll
                for (int i = 0; i < V3_BN / 8; ++i) {
                    const float2 cv = IPZ ? make_float2(0.f, 0.f) : *reinterpret_cast<const float2 *>(cnb + 8 * i + 2 * t);
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const int col = jb + 8 * i + e;
                        const float cvv = e ? cv.y : cv.x;
#pragma unroll
                        for (int h = H0; h < H1; ++h)
#pragma unroll
                            for (int r = 0; r < 2; ++r) {
                                const float v = fmaf(-2.f, acc[h][4 * i + 2 * r + e], cvv);
                                float &b = best[h][r][i & (NQ - 1)];
                                const bool lt = v < b;
                                b = fminf(b, v);
                                bidx[h][r][i & (NQ - 1)] = lt ? col : bidx[h][r][i & (NQ - 1)];
                            }
                    }
                }
            } else if constexpr (E == 4) {
                /* two-level with short dependency chains: four partial minima per row slot, and
                 * the index pass as two interleaved scans */
                float m4[2][2][4];
#pragma unroll
                for (int h = H0; h < H1; ++h)
#pragma unroll
                    for (int r = 0; r < 2; ++r)
#pragma unroll
                        for (int q = 0; q < 4; ++q) m4[h][r][q] = FKM_INF;
#pragma unroll
                for (int i = 0; i < V3_BN / 8; ++i) {
                    const float2 cv = IPZ ? make_float2(0.f, 0.f) : *reinterpret_cast<const float2 *>(cnb + 8 * i + 2 * t);
#pragma unroll
                    for (int e = 0; e < 2; ++e)
#pragma unroll
                        for (int h = H0; h < H1; ++h)
#pragma unroll
                            for (int r = 0; r < 2; ++r) {
                                float &v = acc[h][4 * i + 2 * r + e];
                                v = fmaf(-2.f, v, e ? cv.y : cv.x);
                                m4[h][r][i & 3] = fminf(m4[h][r][i & 3], v);
                            }
                }
#pragma unroll
                for (int h = H0; h < H1; ++h)
#pragma unroll
                    for (int r = 0; r < 2; ++r) {
                        const float m = fminf(fminf(m4[h][r][0], m4[h][r][1]), fminf(m4[h][r][2], m4[h][r][3]));
                        if (__any_sync(0xffffffffu, m < best[h][r][0])) { /* warp-uniform */
                            int c0 = 1 << 20, c1 = 1 << 20;
#pragma unroll
                            for (int i = V3_BN / 8 - 1; i >= 0; --i)
#pragma unroll
                                for (int e = 1; e >= 0; --e) {
                                    const bool hit = acc[h][4 * i + 2 * r + e] == m;
                                    if (i & 1) c1 = hit ? 8 * i + e : c1;
                                    else c0 = hit ? 8 * i + e : c0;
                                }
                            if (m < best[h][r][0]) {
                                best[h][r][0] = m;
                                bidx[h][r][0] = jb + min(c0, c1);
                            }
                        }
                    }
            } else if constexpr (E == 6 || E == 7) {
                /* timing only: 6 = the distances' fma alone (summed), 7 = fma + running minimum
                 * (no index): what the epilogue costs without its compare/select chains */
                float m[2][2];
#pragma unroll
                for (int h = H0; h < H1; ++h) m[h][0] = m[h][1] = 0.f;
#pragma unroll
                for (int i = 0; i < V3_BN / 8; ++i) {
                    const float2 cv = IPZ ? make_float2(0.f, 0.f) : *reinterpret_cast<const float2 *>(cnb + 8 * i + 2 * t);
#pragma unroll
                    for (int e = 0; e < 2; ++e)
#pragma unroll
                        for (int h = H0; h < H1; ++h)
#pragma unroll
                            for (int r = 0; r < 2; ++r) {
                                if constexpr (E == 6) m[h][r] = fmaf(-2.f, acc[h][4 * i + 2 * r + e], m[h][r]);
                                else m[h][r] = fminf(m[h][r], fmaf(-2.f, acc[h][4 * i + 2 * r + e], e ? cv.y : cv.x));
                            }
                }
#pragma unroll
                for (int h = H0; h < H1; ++h)
#pragma unroll
                    for (int r = 0; r < 2; ++r) best[h][r][0] = fminf(best[h][r][0], m[h][r]);
            } else if constexpr (E == 10 || E == 11 || E == 12 || E == 17) {
                /* packed keys: with d' = ||c||^2 + boff - 2 x.c >= 0 (boff >= ||x||^2 of the row),
                 * the bits of d' order as integers; the low 5 mantissa bits are replaced by the
                 * column's code 2i + e (increasing with the column, so equal values go to the
                 * lower column) and one integer minimum per element keeps value and column: fma,
                 * lop3, imnmx per element instead of fma, compare, two selects. The chain starts
                 * from the running best (its code bits zero: a later tile wins only with a
                 * smaller value). Values are kept to 19 bits (2^-18 relative to d'), inside the
                 * fp32 accumulation's error bound while boff < 8 ||x||^2 (else prow, PR: the
                 * offset is the row's own ||x||^2, one add more per element); tiny negative d'
                 * (rounding at distance ~0) compare below every positive one. */
                /* EPI 11 and 12 make the key with one lop3 (m31 ? code : bits, the code an
                 * immediate, the mask a register) instead of ptxas' two for EPI 10; 11 keeps it a
                 * float >= 0 (whose order is its bits' integer order) and takes a two-input float
                 * minimum (fmnmx), 12 an integer minimum (ptxas pairs them into a three-input
                 * VIMNMX3). Merged into the running best (code bits zero) once per tile. */
                /* EPI 17: the accumulators started from -(||c||^2 + b) / 2 (init_buf, load_init),
                 * so they hold D = -d' / 2 <= 0 with d' as above and the fma is gone. A negative
                 * float's bits, as an unsigned integer, grow with its magnitude, so the smallest
                 * unsigned key is the smallest d', with the same code bits. Tiny positive D
                 * (rounding at distance ~0) compare below every negative one, D = -inf (the
                 * columns past k) above every finite one. */
                (void)cnb;
                int tk[2][2];
#pragma unroll
                for (int h = H0; h < H1; ++h)
#pragma unroll
                    for (int r = 0; r < 2; ++r) tk[h][r] = __float_as_int(best[h][r][0]);
#pragma unroll
                for (int i = 0; i < V3_BN / 8; ++i) {
                    float c0 = 0.f, c1 = 0.f;
                    if constexpr (E != 17) {
                        const float2 cv = *reinterpret_cast<const float2 *>(cnb + 8 * i + 2 * t);
                        c0 = cv.x + boff;
                        c1 = cv.y + boff;
                    }
#pragma unroll
                    for (int e = 0; e < 2; ++e)
#pragma unroll
                        for (int h = H0; h < H1; ++h)
#pragma unroll
                            for (int r = 0; r < 2; ++r) {
                                const uint32_t code = 2 * i + e;
                                if constexpr (E == 17) {
                                    float D = acc[h][4 * i + 2 * r + e];
                                    if constexpr (PR) D = fmaf(-0.5f, xnr[h][r], D);
                                    tk[h][r] = (int)min((uint32_t)tk[h][r], lop3_sel(__float_as_uint(D), code, m31));
                                    continue;
                                }
                                float v = fmaf(-2.f, acc[h][4 * i + 2 * r + e], e ? c1 : c0);
                                if constexpr (PR) v += xnr[h][r];
                                if constexpr (E == 10) tk[h][r] = min(tk[h][r], (__float_as_int(v) | 31) ^ (int)(31 ^ code));
                                else {
                                    const int key = (int)lop3_sel(__float_as_uint(v), code, m31);
                                    tk[h][r] = E == 11 ? __float_as_int(fminf(__int_as_float(tk[h][r]), __int_as_float(key)))
                                                       : min(tk[h][r], key);
                                }
                            }
                }
#pragma unroll
                for (int h = H0; h < H1; ++h)
#pragma unroll
                    for (int r = 0; r < 2; ++r)
                        if (E == 11   ? __int_as_float(tk[h][r]) < best[h][r][0]
                            : E == 17 ? (uint32_t)tk[h][r] < __float_as_uint(best[h][r][0])
                                      : tk[h][r] < __float_as_int(best[h][r][0])) {
                            const int code = tk[h][r] & 31;
                            best[h][r][0] = __int_as_float(tk[h][r] & ~31);
                            bidx[h][r][0] = jb + 8 * (code >> 1) + (code & 1);
                        }
            } else if constexpr (E == 5) {
                /* the tile's own (minimum, column) per row slot with the column as an immediate
                 * (no per-column index registers), merged into the running best once per tile */
                float tb[2][2];
                int ti[2][2];
#pragma unroll
                for (int h = H0; h < H1; ++h)
#pragma unroll
                    for (int r = 0; r < 2; ++r) {
                        tb[h][r] = FKM_INF;
                        ti[h][r] = 0;
                    }
#pragma unroll
                for (int i = 0; i < V3_BN / 8; ++i) {
                    const float2 cv = IPZ ? make_float2(0.f, 0.f) : *reinterpret_cast<const float2 *>(cnb + 8 * i + 2 * t);
#pragma unroll
                    for (int e = 0; e < 2; ++e)
#pragma unroll
                        for (int h = H0; h < H1; ++h)
#pragma unroll
                            for (int r = 0; r < 2; ++r)
                                upd_best(tb[h][r], ti[h][r], fmaf(-2.f, acc[h][4 * i + 2 * r + e], e ? cv.y : cv.x), 8 * i + e);
                }
#pragma unroll
                for (int h = H0; h < H1; ++h)
#pragma unroll
                    for (int r = 0; r < 2; ++r) upd_best(best[h][r][0], bidx[h][r][0], tb[h][r], jb + ti[h][r]);
            } else if constexpr (E == 1) {
#pragma unroll
                for (int i = 0; i < V3_BN / 8; ++i) {
                    const float2 cv = IPZ ? make_float2(0.f, 0.f) : *reinterpret_cast<const float2 *>(cnb + 8 * i + 2 * t);
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const int col = jb + 8 * i + e;
                        const float cvv = e ? cv.y : cv.x;
#pragma unroll
                        for (int h = H0; h < H1; ++h)
#pragma unroll
                            for (int r = 0; r < 2; ++r)
                                upd_best(best[h][r][0], bidx[h][r][0], fmaf(-2.f, acc[h][4 * i + 2 * r + e], cvv), col);
                    }
                }
            } else {
                float m[2][2];
#pragma unroll
                for (int h = H0; h < H1; ++h) m[h][0] = m[h][1] = FKM_INF;
#pragma unroll
                for (int i = 0; i < V3_BN / 8; ++i) {
                    const float2 cv = IPZ ? make_float2(0.f, 0.f) : *reinterpret_cast<const float2 *>(cnb + 8 * i + 2 * t);
#pragma unroll
                    for (int e = 0; e < 2; ++e)
#pragma unroll
                        for (int h = H0; h < H1; ++h)
#pragma unroll
                            for (int r = 0; r < 2; ++r)
                                m[h][r] = fminf(m[h][r], fmaf(-2.f, acc[h][4 * i + 2 * r + e], e ? cv.y : cv.x));
                }
#pragma unroll
                for (int h = H0; h < H1; ++h)
#pragma unroll
                    for (int r = 0; r < 2; ++r) {
                        if (__any_sync(0xffffffffu, m[h][r] < best[h][r][0])) { /* warp-uniform */
                            /* lowest column holding the minimum: scan downwards, keep the last hit
                             * (the same fma as above, so the same value) */
                            int ci = 0;
#pragma unroll
                            for (int i = V3_BN / 8 - 1; i >= 0; --i) {
                                const float2 cv = IPZ ? make_float2(0.f, 0.f) : *reinterpret_cast<const float2 *>(cnb + 8 * i + 2 * t);
#pragma unroll
                                for (int e = 1; e >= 0; --e)
                                    ci = fmaf(-2.f, acc[h][4 * i + 2 * r + e], e ? cv.y : cv.x) == m[h][r] ? 8 * i + e : ci;
                            }
                            if (m[h][r] < best[h][r][0]) {
                                best[h][r][0] = m[h][r];
                                bidx[h][r][0] = jb + ci;
                            }
                        }
                    }
            }
        };

        /* A fragments of this warpgroup's 128 rows of the point tile in X, for the whole sweep */
        auto load_a = [&](int64_t tile) {
            const int ln = tid_volatile() & 31;
            if (xoff) { /* rows c*128 + h*64 + w*16 + g + 8r; past n the copy engine wrote 0 */
                const int r0 = c * 128 + w * 16 + g;
                boff = fmaxf(fmaxf(sXn[r0], sXn[r0 + 8]), fmaxf(sXn[r0 + 64], sXn[r0 + 72]));
                if (EPI == 17) /* one offset for the warp's 32 rows: its start values are shared */
#pragma unroll
                    for (int off = 4; off <= 16; off <<= 1) boff = fmaxf(boff, __shfl_xor_sync(0xffffffffu, boff, off));
                /* A key keeps 2^-18 of d' = d + boff - ||x||^2 (the code bits), which is inside the
                 * error bound of d's fp32 accumulation only while boff is within a few times the
                 * row's ||x||^2 + ||c||^2; where a row shares its offset with one of 8x its squared
                 * norm or more (an outlier, a zero row, the padding past n), the warp's rows take
                 * their own for this point tile. */
                const float mn = fminf(fminf(sXn[r0], sXn[r0 + 8]), fminf(sXn[r0 + 64], sXn[r0 + 72]));
                prow = __any_sync(0xffffffffu, boff > 8.f * mn);
                if (prow) boff = 0.f;
            }
            if ((XPF || xoff) && !p.ip) { /* EPI 10-12, 17: the norms of prow */
#pragma unroll
                for (int h = 0; h < 2; ++h)
#pragma unroll
                    for (int r = 0; r < 2; ++r) {
                        const int rl = c * 128 + h * 64 + w * 16 + g + 8 * r; /* row in the tile */
                        const int64_t row = tile * V3_BM + rl;
                        xnr[h][r] = xoff ? sXn[rl] : (row < p.n ? p.xn[row] : 0.f);
                    }
            }
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
                for (int ks = 0; ks < V3_KS; ++ks) {
                    const int row = c * 128 + h * 64 + w * 16 + (ln & 15);
                    const int ch = ks * 2 + (ln >> 4);
                    ldsm_x4(sX + (ch >> 3) * (V3_BM * 128) + row * 128 + (((ch & 7) ^ (ln & 7)) << 4), a[h][ks][0],
                            a[h][ks][1], a[h][ks][2], a[h][ks][3]);
                }
        };
        auto release_x = [&] {
            /* X may be overwritten once its A fragments are certainly in registers: after the
             * first wgmma that read them has completed, not right after the ldmatrix (whose
             * shared-memory reads can still be in flight when an arrive issued behind them
             * lands: releasing X there let the next tile's TMA overwrite it under the reads,
             * seen on an H200 as runs that differ), with a proxy fence ordering these generic
             * reads before the copy engine's writes. */
            fence_proxy_async();
            __syncwarp();
            if (lane == 0) mbar_arrive(xempty);
        };
        auto release_stage = [&](int st) {
            fence_proxy_async(); /* the norms' generic reads before the next TMA write of the stage */
            __syncwarp();
            if (lane == 0) mbar_arrive(sBar + 8u * (S + st)); /* stage free (wgmma done, norms read) */
        };
        /* EPI 17: the accumulators' start values for centroid tile j (in stage st), -(||c||^2 +
         * b) / 2 per column (-inf past k: +inf distances), are the same for the warp's 32 rows;
         * each lane computes 4 columns into the warp's buffer, 16 bytes per (8-column group, quad
         * lane t) holding (c, c + 1, c, c + 1) for c = 8i + 2t, which is the accumulator order of
         * rows g and g + 8, and then takes its 128 values by 32 broadcast 16-byte loads instead of
         * an fma per distance. */
        const uint32_t inbAddr = sInAddr + (c * 4 + w) * V3_IN_WARP_BYTES;
        float4 *const inb = reinterpret_cast<float4 *>(smem_raw + (inbAddr - raw));
        auto init_buf = [&](int j, int st) {
            const float4 cv = reinterpret_cast<const float4 *>(sCn + st * V3_BN)[lane];
            const float nb = -0.5f * boff;
            float v[4] = {fmaf(cv.x, -0.5f, nb), fmaf(cv.y, -0.5f, nb), fmaf(cv.z, -0.5f, nb), fmaf(cv.w, -0.5f, nb)};
            if (j == nJ - 1 && krem < V3_BN) /* warp-uniform */
#pragma unroll
                for (int q = 0; q < 4; ++q) v[q] = 4 * lane + q >= krem ? -FKM_INF : v[q];
            inb[2 * lane] = make_float4(v[0], v[1], v[0], v[1]);
            inb[2 * lane + 1] = make_float4(v[2], v[3], v[2], v[3]);
            __syncwarp();
        };
        auto load_init = [&] {
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
                for (int i = 0; i < V3_BN / 8; ++i)
                    lds_v4_each(inbAddr + (4 * i + t) * 16, acc[h][4 * i], acc[h][4 * i + 1], acc[h][4 * i + 2], acc[h][4 * i + 3]);
        };
        auto epi = [&](auto htag, int j, int st) {
            if (p.ip) epilogue(V3Flag<true>{}, V3Flag<false>{}, htag, j, st);
            else if (EPI >= 10 && prow) epilogue(V3Flag<false>{}, V3Flag<EPI >= 10>{}, htag, j, st);
            else epilogue(V3Flag<false>{}, V3Flag<false>{}, htag, j, st);
        };

        if constexpr (SPLIT) {
            /* Each half's epilogue runs under this warpgroup's own wgmma of the other half:
             *   h0(s) done | issue h1(s); epilogue h0(s); wait | issue h0(s+1); epilogue h1(s); wait
             * so one m64 x 128 product group is on the tensor cores while the other is folded, and
             * nothing is pending at the loop's back edge (ptxas then keeps the overlap). The first
             * step of a point tile releases X once both halves' first wgmma have completed; its
             * last step loads the next tile's A fragments between the two halves. */
            auto issue = [&](auto htag, int st) {
                constexpr int H = decltype(htag)::value;
                const uint32_t cb = sC + st * V3_C_BYTES;
#pragma unroll
                for (int i = 0; i < 64; ++i) reg_fence(acc[H][i]);
                wgmma_fence();
#pragma unroll
                for (int ks = 0; ks < V3_KS; ++ks)
                    wgmma_rs<BF16, V3_BN>(acc[H], a[H][ks], sw128_desc(cb + (ks >> 2) * (V3_BN * 128) + (ks & 3) * 32),
                                          ks > 0 ? 1 : 0);
                wgmma_commit();
            };
            auto wait = [&](auto htag) {
                constexpr int H = decltype(htag)::value;
                wgmma_wait<0>();
#pragma unroll
                for (int i = 0; i < 64; ++i) reg_fence(acc[H][i]);
            };
            /* step s uses stage s % S with parity (s / S) & 1 (S is a power of two) */
            static_assert((S & (S - 1)) == 0, "S must be a power of two");
            auto full_bar = [&](int s) { return sBar + 8u * (uint32_t)(s % S); };
            auto full_par = [&](int s) { return (uint32_t)(s / S) & 1u; };
            int it = 0, j = 0;
            mbar_wait(xfull, 0u);
            load_a(blockIdx.x);
            mbar_wait(full_bar(0), 0u);
            issue(V3Half<0>{}, 0);
            wait(V3Half<0>{});
            mask_tail(V3Half<0>{}, 0);
            for (int s = 0; s < total; ++s) {
                const int st = s % S;
                issue(V3Half<1>{}, st);
                epi(V3Half<0>{}, j, st);
                if (j == nJ - 1) finalize(blockIdx.x + (int64_t)it * gridDim.x, false, V3Half<0>{});
                wait(V3Half<1>{});
                mask_tail(V3Half<1>{}, j);
                if (j == 0) release_x();
                if (s + 1 < total) {
                    if (j == nJ - 1) {
                        mbar_wait(xfull, (uint32_t)(it + 1) & 1u);
                        load_a(blockIdx.x + (int64_t)(it + 1) * gridDim.x);
                    }
                    mbar_wait(full_bar(s + 1), full_par(s + 1));
                    issue(V3Half<0>{}, (s + 1) % S);
                }
                epi(V3Half<1>{}, j, st);
                release_stage(st);
                if (j == nJ - 1) finalize(blockIdx.x + (int64_t)it * gridDim.x, false, V3Half<1>{});
                if (++j == nJ) {
                    j = 0;
                    ++it;
                }
                /* unconditional (nothing is pending after the last step): a wait under `more`
                 * would leave ptxas a path with h0 pending at the back edge, and it would then
                 * serialise the loop */
                wait(V3Half<0>{});
                mask_tail(V3Half<0>{}, j);
            }
        } else {
            int st = 0, s = 0;
            uint32_t ph = 0;
            const bool tracer = TRACE && blockIdx.x == 0 && w == 0 && lane == 0;
            auto stamp_at = [&](int si, int q) {
                if (tracer && si >= 0 && si < V3_TRACE_STEPS) {
                    unsigned long long t;
                    asm volatile("mov.u64 %0, %%clock64;" : "=l"(t)::"memory");
                    v3_trace[c][si][q] = t;
                }
            };
            auto stamp = [&](int q) { stamp_at(s, q); };
            bool ready = false; /* EARLY: the next step's stage already full when tested */
            bool pre = false;   /* EPI 17: the next step's start values written when it was */
            if (PP && c == 1) named_bar_arrive(V3_BAR_PP, 256); /* consumer 0 goes first */
            for (int it = 0; it < nIt; ++it) {
                int64_t tile;
                int j0, j1;
                v3_item(sched, it, nJ, &tile, &j0, &j1);
                /* A fragments of this warpgroup's 128 rows, for the whole sweep */
                mbar_wait(xfull, (uint32_t)it & 1u);
                stamp_at(s - 1, 6);
                load_a(tile);

                for (int j = j0; j < j1; ++j, ++s) {
                    stamp(0);
                    if (!(EARLY && ready)) mbar_wait(sBar + 8u * st, ph);
                    if (accinit) {
                        if (!pre) init_buf(j, st);
                        load_init();
                    }
                    if (PP) named_bar_sync(V3_BAR_PP + c, 256); /* my turn on the tensor cores */
                    stamp(1);
                    const uint32_t cb = sC + st * V3_C_BYTES;
#pragma unroll
                    for (int h = 0; h < 2; ++h)
#pragma unroll
                        for (int i = 0; i < 64; ++i) reg_fence(acc[h][i]);
                    wgmma_fence();
#pragma unroll
                    for (int ks = 0; ks < V3_KS; ++ks) {
                        const uint64_t desc = sw128_desc(cb + (ks >> 2) * (V3_BN * 128) + (ks & 3) * 32);
#pragma unroll
                        for (int h = 0; h < 2; ++h) wgmma_rs<BF16, V3_BN>(acc[h], a[h][ks], desc, ks > 0 || accinit ? 1 : 0);
                    }
                    wgmma_commit();
                    /* the other consumer's turn; consumer 0 has no turn after consumer 1's last step */
                    if (PP && !(c == 1 && s == total - 1)) named_bar_arrive(V3_BAR_PP + (c ^ 1), 256);
                    stamp(2);
                    wgmma_wait<0>();
#pragma unroll
                    for (int h = 0; h < 2; ++h)
#pragma unroll
                        for (int i = 0; i < 64; ++i) reg_fence(acc[h][i]);
                    stamp(3);
                    if (EARLY) { /* the next step's stage: st + 1 (mod S), its parity flips at the wrap */
                        const int sn = st + 1 == S ? 0 : st + 1;
                        ready = s + 1 < total && mbar_try_wait<true>(sBar + 8u * sn, sn == 0 ? ph ^ 1u : ph);
                        /* EPI 17: the next step's start values now, off the path to its wgmma
                         * (within an item: the next item's offset comes with its point tile) */
                        pre = accinit && ready && j + 1 < j1;
                        if (pre) init_buf(j + 1, sn);
                    }
                    if (!accinit) mask_tail(V3Half<-1>{}, j);
                    if (j == j0) release_x();
                    epi(V3Half<-1>{}, j, st);
                    release_stage(st);
                    stamp(4);
                    if (++st == S) {
                        st = 0;
                        ph ^= 1u;
                    }
                }
                finalize(tile, j0 > 0 || j1 < nJ, V3Half<-1>{});
                stamp_at(s - 1, 5);
            }
        }
    }
#else
    (void)p, (void)tmx, (void)tmc, (void)tmn, (void)tmxn;
#endif
}

} // namespace fkm
#endif
