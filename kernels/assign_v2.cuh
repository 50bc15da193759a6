/* FlashAssign v2: Hopper wgmma kernel for 16-bit rows with d <= 128 (sm_90a).
 *
 * Persistent grid, one 256-thread block (2 warpgroups) per SM. A block owns point tiles of 256
 * rows (each warpgroup 128 rows = two m64 halves); the point tile's A fragments live in
 * registers for the whole centroid sweep (loaded once with ldmatrix from a swizzled shared
 * copy, which is then refilled with the next point tile in the background). Centroid tiles of
 * 64 rows x d stream through an S-stage cp.async ring in the 128-byte-swizzled K-major layout
 * that wgmma reads through a matrix descriptor. Two accumulator sets: while the tensor cores
 * run tile s (wgmma.mma_async, m64n64k16, A from registers, B from shared memory), the threads
 * fold tile s-1 into the running (min, index) -> the argmin epilogue overlaps the matrix work.
 * Only labels and min distances are written. */
#ifndef FKM_ASSIGN_V2_CUH
#define FKM_ASSIGN_V2_CUH

#include "assign_common.cuh"
#include "assign_v1.cuh" /* AssignParams */

namespace fkm {

constexpr int V2_BN = 64;
constexpr int V2_S = 5;  /* centroid-tile ring */
constexpr int V2_PD = 3; /* prefetch distance (steps); S - PD = 2 keeps a tile's cn alive for its epilogue */

template <int V> struct IC {
    static constexpr int value = V;
};

/* KS: k16 steps (d <= 16*KS); MH: m64 halves per warpgroup; NWG: warpgroups per block. */
static inline size_t v2_smem_bytes(int ks, int bm)
{
    int nkc = ks / 4;
    return 1024 /* alignment slack */ + (size_t)nkc * bm * 128 + (size_t)V2_S * nkc * V2_BN * 128 +
           (size_t)V2_S * V2_BN * 4;
}

template <bool BF16, int KS, int MH, int NWG>
__global__ void __launch_bounds__(128 * NWG, 1) assign_v2_kernel(const AssignParams p)
{
    constexpr int V2_BM = 64 * MH * NWG, V2_T = 128 * NWG;
    constexpr int NKC = KS / 4;
    constexpr uint32_t X_BYTES = NKC * V2_BM * 128;
    constexpr uint32_t C_BYTES = NKC * V2_BN * 128;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t raw = smem_u32(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u;
    const uint32_t sX = sbase, sC = sbase + X_BYTES;
    const uint32_t sCnAddr = sC + V2_S * C_BYTES;
    float *sCn = reinterpret_cast<float *>(smem_raw + (sCnAddr - raw));

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wg = warp >> 2, w = warp & 3;
    const int g = lane >> 2, t = lane & 3;
    const int64_t nPT = (p.n + V2_BM - 1) / V2_BM;
    const int nJ = (int)((p.k + V2_BN - 1) / V2_BN);
    const int nIt = (int)((nPT - blockIdx.x + gridDim.x - 1) / gridDim.x);
    if (nIt <= 0) return;
    const int total = nIt * nJ;

    auto tile_row0 = [&](int it) -> int64_t { return ((int64_t)blockIdx.x + (int64_t)it * gridDim.x) * V2_BM; };

    auto load_x = [&](int it) {
        const int tid = tid_volatile();
        const int64_t r0 = tile_row0(it);
#pragma unroll
        for (int i = 0; i < (V2_BM * 8 * NKC + V2_T - 1) / V2_T; ++i) {
            int q = tid + i * V2_T;
            if (V2_BM * 8 * NKC % V2_T != 0 && q >= V2_BM * 8 * NKC) break;
            int kc = q / (V2_BM * 8), rem = q % (V2_BM * 8);
            int r = rem >> 3, c = rem & 7;
            int64_t row = r0 + r;
            int kb = kc * 128 + c * 16;
            bool v = row < p.n && kb < p.row_bytes;
            const char *src = v ? p.x + row * p.ldx_bytes + kb : p.x;
            cp_async16(sX + kc * (V2_BM * 128) + r * 128 + ((c ^ (r & 7)) << 4), src, v);
        }
    };
    auto load_c = [&](int s) {
        const int tid = tid_volatile();
        const int j = s % nJ, buf = s % V2_S;
        const int64_t r0 = (int64_t)j * V2_BN;
        const uint32_t dst = sC + buf * C_BYTES;
#pragma unroll
        for (int i = 0; i < (V2_BN * 8 * NKC + V2_T - 1) / V2_T; ++i) {
            int q = tid + i * V2_T;
            if (V2_BN * 8 * NKC % V2_T != 0 && q >= V2_BN * 8 * NKC) break;
            int kc = q / (V2_BN * 8), rem = q % (V2_BN * 8);
            int r = rem >> 3, c = rem & 7;
            int64_t row = r0 + r;
            int kb = kc * 128 + c * 16;
            bool v = row < p.k && kb < p.row_bytes;
            const char *src = v ? p.c + row * p.ldc_bytes + kb : p.c;
            cp_async16(dst + kc * (V2_BN * 128) + r * 128 + ((c ^ (r & 7)) << 4), src, v);
        }
        if (tid < V2_BN) {
            int64_t col = r0 + tid;
            if (col < p.k) cp_async4(sCnAddr + (buf * V2_BN + tid) * 4, p.cn + col);
            else sCn[buf * V2_BN + tid] = FKM_INF;
        }
    };

    /* prologue: X(0) with C(0) in the first group, then C(1..PD-1) */
    load_x(0);
#pragma unroll
    for (int q = 0; q < V2_PD; ++q) {
        if (q < total) load_c(q);
        cp_async_commit();
    }
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();

    float acc[2][MH][32];
    uint32_t a[MH][KS][4];
    float best[MH][2];
    int bidx[MH][2];
#pragma unroll
    for (int b = 0; b < 2; ++b)
#pragma unroll
        for (int h = 0; h < MH; ++h) {
#pragma unroll
            for (int i = 0; i < 32; ++i) acc[b][h][i] = 0.f;
            best[b][h] = FKM_INF;
            bidx[b][h] = 0;
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
                    p.md[row] = fmaxf(p.xn[row] + best[h][r], 0.f);
                }
                best[h][r] = FKM_INF;
                bidx[h][r] = 0;
            }
    };

    auto epilogue = [&](auto qtag, int s) {
        constexpr int Q = decltype(qtag)::value;
        const int it = s / nJ, j = s - it * nJ;
        const float *cnb = sCn + (s % V2_S) * V2_BN;
        const int jb = j * V2_BN + 2 * t;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
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
        if (j == nJ - 1) finalize(it);
    };

    auto step = [&](auto ptag, int s) {
        constexpr int P = decltype(ptag)::value;
        const int it = s / nJ, j = s - it * nJ;
        if (s > 0) {
            if (j == 0 && nJ - 2 < V2_PD - 1) cp_async_wait<0>();
            else cp_async_wait<V2_PD - 1>();
            fence_proxy_async();
            __syncthreads();
        }
        if (s + V2_PD < total) load_c(s + V2_PD);
        if (s >= 1 && (s - 1) % nJ == 0) {
            const int itn = (s - 1) / nJ + 1;
            if (itn < nIt) load_x(itn);
        }
        cp_async_commit();
        if (j == 0) {
            const int lane = tid_volatile() & 31;
            if (nJ == 1 && s > 0) { /* X(it) was issued just above */
                cp_async_wait<0>();
                __syncthreads();
            }
#pragma unroll
            for (int h = 0; h < MH; ++h)
#pragma unroll
                for (int ks = 0; ks < KS; ++ks) {
                    const int row = wg * (64 * MH) + h * 64 + w * 16 + (lane & 15);
                    const int ch = ks * 2 + (lane >> 4);
                    ldsm_x4(sX + (ch >> 3) * (V2_BM * 128) + row * 128 + (((ch & 7) ^ (lane & 7)) << 4), a[h][ks][0],
                            a[h][ks][1], a[h][ks][2], a[h][ks][3]);
                }
        }
        const uint32_t cb = sC + (s % V2_S) * C_BYTES;
#pragma unroll
        for (int h = 0; h < MH; ++h)
#pragma unroll
            for (int i = 0; i < 32; ++i) reg_fence(acc[P][h][i]);
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < KS; ++ks) {
            const uint64_t desc = sw128_desc(cb + (ks >> 2) * (V2_BN * 128) + (ks & 3) * 32);
#pragma unroll
            for (int h = 0; h < MH; ++h) wgmma_m64n64k16_rs<BF16>(acc[P][h], a[h][ks], desc, ks > 0 ? 1 : 0);
        }
        wgmma_commit();
        if (s > 0) epilogue(IC<P ^ 1>{}, s - 1);
        wgmma_wait<0>();
#pragma unroll
        for (int h = 0; h < MH; ++h)
#pragma unroll
            for (int i = 0; i < 32; ++i) reg_fence(acc[P][h][i]);
    };

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
}

} // namespace fkm
#endif
