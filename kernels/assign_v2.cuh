/* FlashAssign v2: Hopper wgmma kernel for 16-bit rows with d <= 128 (sm_90a).
 *
 * Persistent grid, one block per SM, NWG warpgroups per block, each owning MH*64 rows of the
 * block's point tile (BM = 64*MH*NWG = 256 rows in every configuration used). The point tile's
 * A fragments live in registers for the whole centroid sweep (loaded once with ldmatrix from a
 * 128-byte-swizzled shared copy, which is then refilled with the block's next point tile in the
 * background). Centroid tiles of BN rows x d stream through an S-stage cp.async ring in the
 * 128-byte-swizzled K-major layout that wgmma reads through a matrix descriptor; each step
 * issues the tile's wgmma.mma_async (m64nBNk16, A from registers, B from shared memory) before
 * the block barrier, so the barrier never finds the tensor cores idle. The argmin epilogue
 * overlaps the matrix work either inside a warpgroup (DB: two accumulator sets, the epilogue of
 * tile s-1 runs while tile s is in flight) or across warpgroups (one set, BN = 128: while one
 * warpgroup folds its tile, the others' wgmma are queued). Only labels and min distances are
 * written.
 *
 * Epilogue variants (EPI): 1 = for every element d = ||c||^2 - 2 acc, (best, idx) updated by
 * compare+select (4 instructions); 2 = first the row minimum of the tile (fma + min, 2
 * instructions), and the index pass only for row slots whose minimum beats the running best
 * (warp-uniform branch; rare once the running best has settled, i.e. for large k);
 * 0 = no epilogue (timing experiments only: outputs are garbage). */
#ifndef FKM_ASSIGN_V2_CUH
#define FKM_ASSIGN_V2_CUH

#include "assign_common.cuh"
#include "assign_v1.cuh" /* AssignParams */

namespace fkm {

/* Centroid-tile ring depth S and prefetch distance PD (C(s+1+PD) is issued in step s): with
 * two accumulator sets a tile's cn is read one step later, so S = PD + 3; with one, S = PD + 2. */
__host__ __device__ constexpr int v2_stages(bool db) { return db ? 6 : 4; }
__host__ __device__ constexpr int v2_pd(bool db) { return db ? 3 : 2; }

template <int V> struct IC {
    static constexpr int value = V;
};

/* KS: k16 steps (d <= 16*KS). */
static inline size_t v2_smem_bytes(int ks, int bm, int bn, bool db)
{
    int nkc = ks / 4, st = v2_stages(db);
    return 1024 /* alignment slack */ + (size_t)nkc * bm * 128 + (size_t)st * nkc * bn * 128 + (size_t)st * bn * 4;
}

/* DB: two accumulator sets per warpgroup (epilogue of tile s-1 overlaps wgmma of tile s inside
 * the warpgroup); without, one set, and the overlap comes from the other warpgroups' queued
 * wgmma while this one runs its epilogue. */
template <bool BF16, int KS, int MH, int NWG, int BN, int EPI, bool DB>
__global__ void __launch_bounds__(128 * NWG, 1) assign_v2_kernel(const AssignParams p)
{
    constexpr int V2_S = v2_stages(DB), V2_PD = v2_pd(DB);
    constexpr int BM = 64 * MH * NWG, T = 128 * NWG;
    constexpr int NKC = KS / 4;
    constexpr uint32_t X_BYTES = NKC * BM * 128;
    constexpr uint32_t C_BYTES = NKC * BN * 128;
    constexpr int NACC = BN / 2;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t raw = smem_u32(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;
    const uint32_t sX = sbase, sC = sbase + X_BYTES;
    const uint32_t sCnAddr = sC + V2_S * C_BYTES;
    float *sCn = reinterpret_cast<float *>(smem_raw + (sCnAddr - raw));

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wg = warp >> 2, w = warp & 3;
    const int g = lane >> 2, t = lane & 3;
    const int64_t nPT = (p.n + BM - 1) / BM;
    const int nJ = (int)((p.k + BN - 1) / BN);
    const int nIt = (int)((nPT - blockIdx.x + gridDim.x - 1) / gridDim.x);
    if (nIt <= 0) return;
    const int total = nIt * nJ;

    auto tile_row0 = [&](int it) -> int64_t { return ((int64_t)blockIdx.x + (int64_t)it * gridDim.x) * BM; };

    auto load_x = [&](int it) {
        const int tid = tid_volatile();
        const int64_t r0 = tile_row0(it);
#pragma unroll
        for (int i = 0; i < (BM * 8 * NKC + T - 1) / T; ++i) {
            int q = tid + i * T;
            if (BM * 8 * NKC % T != 0 && q >= BM * 8 * NKC) break;
            int kc = q / (BM * 8), rem = q % (BM * 8);
            int r = rem >> 3, c = rem & 7;
            int64_t row = r0 + r;
            int kb = kc * 128 + c * 16;
            bool v = row < p.n && kb < p.row_bytes;
            const char *src = v ? p.x + row * p.ldx_bytes + kb : p.x;
            cp_async16(sX + kc * (BM * 128) + r * 128 + ((c ^ (r & 7)) << 4), src, v);
        }
    };
    auto load_c = [&](int s) {
        const int tid = tid_volatile();
        const int j = s % nJ, buf = s % V2_S;
        const int64_t r0 = (int64_t)j * BN;
        const uint32_t dst = sC + buf * C_BYTES;
#pragma unroll
        for (int i = 0; i < (BN * 8 * NKC + T - 1) / T; ++i) {
            int q = tid + i * T;
            if (BN * 8 * NKC % T != 0 && q >= BN * 8 * NKC) break;
            int kc = q / (BN * 8), rem = q % (BN * 8);
            int r = rem >> 3, c = rem & 7;
            int64_t row = r0 + r;
            int kb = kc * 128 + c * 16;
            bool v = row < p.k && kb < p.row_bytes;
            const char *src = v ? p.c + row * p.ldc_bytes + kb : p.c;
            cp_async16(dst + kc * (BN * 128) + r * 128 + ((c ^ (r & 7)) << 4), src, v);
        }
        if (tid < BN) {
            int64_t col = r0 + tid;
            if (col >= p.k) sCn[buf * BN + tid] = FKM_INF;
            else if (p.ip) sCn[buf * BN + tid] = 0.f;
            else cp_async4(sCnAddr + (buf * BN + tid) * 4, p.cn + col);
        }
    };

    /* prologue: X(0) with C(0) in the first group, then C(1..PD) */
    load_x(0);
#pragma unroll
    for (int q = 0; q <= V2_PD; ++q) {
        if (q < total) load_c(q);
        cp_async_commit();
    }
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();

    float acc[DB ? 2 : 1][MH][NACC];
    uint32_t a[MH][KS][4];
    float best[MH][2];
    int bidx[MH][2];
#pragma unroll
    for (int h = 0; h < MH; ++h) {
#pragma unroll
        for (int i = 0; i < NACC; ++i)
#pragma unroll
            for (int b = 0; b < (DB ? 2 : 1); ++b) acc[b][h][i] = 0.f;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            best[h][r] = FKM_INF;
            bidx[h][r] = 0;
        }
    }

    auto finalize = [&](int it) {
        const int64_t r0 = tile_row0(it) + wg * (64 * MH) + w * 16 + g;
#pragma unroll
        for (int h = 0; h < MH; ++h)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
#pragma unroll
                for (int off = 1; off <= 2; off <<= 1) {
                    float ob = __shfl_xor_sync(0xffffffffu, best[h][r], off);
                    int oi = __shfl_xor_sync(0xffffffffu, bidx[h][r], off);
                    merge_best(best[h][r], bidx[h][r], ob, oi);
                }
                const int64_t row = r0 + h * 64 + r * 8;
                if (t == 0 && row < p.n) {
                    p.labels[row] = bidx[h][r];
                    p.md[row] = p.ip ? p.ip_offset + 0.5f * best[h][r] : fmaxf(p.xn[row] + best[h][r], 0.f);
                }
                best[h][r] = FKM_INF;
                bidx[h][r] = 0;
            }
    };

    auto epilogue = [&](auto qtag, int s) {
        constexpr int Q = decltype(qtag)::value;
        const int it = s / nJ, j = s - it * nJ;
        const float *cnb = sCn + (s % V2_S) * BN;
        const int jb = j * BN + 2 * t;
        if constexpr (EPI == 0) {
            (void)cnb;
            (void)jb;
#pragma unroll
            for (int h = 0; h < MH; ++h) best[h][0] = fminf(best[h][0], acc[Q][h][0]);
        } else if constexpr (EPI == 1) {
#pragma unroll
            for (int i = 0; i < BN / 8; ++i) {
                const float2 cv = *reinterpret_cast<const float2 *>(cnb + 8 * i + 2 * t);
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int col = jb + 8 * i + e;
                    const float cvv = e ? cv.y : cv.x;
#pragma unroll
                    for (int h = 0; h < MH; ++h)
#pragma unroll
                        for (int r = 0; r < 2; ++r)
                            upd_best(best[h][r], bidx[h][r], fmaf(-2.f, acc[Q][h][4 * i + 2 * r + e], cvv), col);
                }
            }
        } else {
            float m[MH][2];
#pragma unroll
            for (int h = 0; h < MH; ++h) m[h][0] = m[h][1] = FKM_INF;
#pragma unroll
            for (int i = 0; i < BN / 8; ++i) {
                const float2 cv = *reinterpret_cast<const float2 *>(cnb + 8 * i + 2 * t);
#pragma unroll
                for (int e = 0; e < 2; ++e)
#pragma unroll
                    for (int h = 0; h < MH; ++h)
#pragma unroll
                        for (int r = 0; r < 2; ++r)
                            m[h][r] = fminf(m[h][r], fmaf(-2.f, acc[Q][h][4 * i + 2 * r + e], e ? cv.y : cv.x));
            }
#pragma unroll
            for (int h = 0; h < MH; ++h)
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    const bool imp = m[h][r] < best[h][r];
                    if (__any_sync(0xffffffffu, imp)) { /* warp-uniform */
#pragma unroll
                        for (int i = 0; i < BN / 8; ++i) {
                            const float2 cv = *reinterpret_cast<const float2 *>(cnb + 8 * i + 2 * t);
#pragma unroll
                            for (int e = 0; e < 2; ++e)
                                upd_best(best[h][r], bidx[h][r],
                                         fmaf(-2.f, acc[Q][h][4 * i + 2 * r + e], e ? cv.y : cv.x), jb + 8 * i + e);
                        }
                    }
                }
        }
        if (j == nJ - 1) finalize(it);
    };

    /* Step s. On entry C(s) has landed and is visible to all, and no wgmma is in flight.
     *   1. first step of a point tile: A fragments of the tile from sX (ldmatrix);
     *   2. issue wgmma(s) into acc[P] (async);
     *   3. while it runs: wait for C(s+1) (and X of the next tile when step s+1 starts one),
     *      fence.proxy.async, __syncthreads -- so the block-wide barrier never finds the tensor
     *      cores idle;
     *   4. issue the loads of C(s+1+PD) (its ring slot was last used by step s-2: its wgmma
     *      and epilogue are complete, everyone is past the barrier) and, in the first step of
     *      a point tile, X of the next point tile (sX was read in item 1, before the barrier);
     *   5. epilogue of step s-1 on acc[P^1] (its cn slot is refilled in step s+1 at the
     *      earliest, after that step's barrier);
     *   6. wait for wgmma(s).
     * cp.async groups: one per step (item 4) plus PD+1 in the prologue; C(s+1) was committed
     * PD-1 groups before item 3 of step s, X(it+1) nJ-2 groups before the last step of it. */
    auto step = [&](auto ptag, int s) {
        constexpr int P = decltype(ptag)::value;
        const int it = s / nJ, j = s - it * nJ;
        if (j == 0) {
            const int lane = tid_volatile() & 31;
            if (nJ == 1 && s > 0) { /* X(it) was issued in the previous step, after its barrier */
                cp_async_wait<0>();
                __syncthreads();
            }
#pragma unroll
            for (int h = 0; h < MH; ++h)
#pragma unroll
                for (int ks = 0; ks < KS; ++ks) {
                    const int row = wg * (64 * MH) + h * 64 + w * 16 + (lane & 15);
                    const int ch = ks * 2 + (lane >> 4);
                    ldsm_x4(sX + (ch >> 3) * (BM * 128) + row * 128 + (((ch & 7) ^ (lane & 7)) << 4), a[h][ks][0],
                            a[h][ks][1], a[h][ks][2], a[h][ks][3]);
                }
        }
        const uint32_t cb = sC + (s % V2_S) * C_BYTES;
#pragma unroll
        for (int h = 0; h < MH; ++h)
#pragma unroll
            for (int i = 0; i < NACC; ++i) reg_fence(acc[P][h][i]);
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < KS; ++ks) {
            const uint64_t desc = sw128_desc(cb + (ks >> 2) * (BN * 128) + (ks & 3) * 32);
#pragma unroll
            for (int h = 0; h < MH; ++h) wgmma_rs<BF16, BN>(acc[P][h], a[h][ks], desc, ks > 0 ? 1 : 0);
        }
        wgmma_commit();
        if (s + 1 < total) {
            const bool next_new_tile = (j == nJ - 1);
            if (next_new_tile && nJ - 2 < V2_PD - 1) cp_async_wait<0>();
            else cp_async_wait<V2_PD - 1>();
            fence_proxy_async();
            __syncthreads();
            if (s + 1 + V2_PD < total) load_c(s + 1 + V2_PD);
            if (j == 0 && it + 1 < nIt) load_x(it + 1);
            cp_async_commit();
        }
        if constexpr (DB) {
            if (s > 0) epilogue(IC<(P ^ 1)>{}, s - 1);
        }
        wgmma_wait<0>();
#pragma unroll
        for (int h = 0; h < MH; ++h)
#pragma unroll
            for (int i = 0; i < NACC; ++i) reg_fence(acc[P][h][i]);
        if constexpr (!DB) epilogue(IC<0>{}, s);
    };

    if constexpr (DB) {
        for (int s = 0; s < total; s += 2) {
            /* Nothing is pending here; saying so lets ptxas see that the previous tile's
             * accumulators are complete (without it, it injects a wait that serialises the
             * epilogue with the next tile's wgmma). */
            wgmma_wait<0>();
            step(IC<0>{}, s);
            if (s + 1 < total) step(IC<1>{}, s + 1);
        }
        if ((total - 1) & 1) epilogue(IC<1>{}, total - 1);
        else epilogue(IC<0>{}, total - 1);
    } else {
        for (int s = 0; s < total; ++s) step(IC<0>{}, s);
    }
}

} // namespace fkm
#endif
