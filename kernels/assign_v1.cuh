/* FlashAssign v1: mma.sync tensor-core kernel, every mode, any d, any k.
 *
 * Block: 128 points x 128 centroids per tile, 8 warps as 2 (points) x 4 (centroids), warp tile
 * 64 x 32. Rows are staged through shared memory in 128-byte chunks (64 halves or 32 floats),
 * 16-byte cp.async, XOR-swizzled so that ldmatrix reads are conflict-free. The point tile stays
 * resident in shared memory when it fits (XRES: d*elem <= 768 bytes); otherwise it is streamed
 * chunk by chunk next to the centroid chunk. The pipeline is the flat sequence of steps
 * (centroid tile j, chunk kc), S stages deep. After the last chunk of a tile each thread folds
 * its 64x32 accumulator slice into a running (min, index) per row: d = ||c||^2 - 2 x.c; ||x||^2
 * is added once at the end. Ties go to the lowest index (each thread visits its columns in
 * increasing order; merges compare (value, index)).
 *
 * OP_TF32X3 (exact mode) splits both operands into tf32 hi + lo and accumulates lo*hi + hi*lo
 * + hi*hi; it also tracks the second-best value and flags every point whose gap is within the
 * error bound (see assign.cu) for the fp64 fix-up kernel. */
#ifndef FKM_ASSIGN_V1_CUH
#define FKM_ASSIGN_V1_CUH

#include "assign_common.cuh"

namespace fkm {

enum { OP_F16 = 0, OP_BF16 = 1, OP_TF32 = 2, OP_TF32X3 = 3 };

struct AssignParams {
    const char *x;
    int64_t n;
    int64_t ldx_bytes;
    const char *c;
    int64_t k;
    int64_t ldc_bytes;
    int row_bytes;       /* bytes of each row that are read: round_up(d*elem, 16) */
    const float *xn;     /* n */
    const float *cn;     /* k */
    int32_t *labels;
    float *md;
    int ip;              /* metric IP: ||c||^2 and ||x||^2 are taken as 0 (cn, xn not read) */
    float ip_offset;     /* IP: md = ip_offset + best / 2 = ip_offset - x.c */
    /* exact mode */
    const float *cnmax;  /* device scalar: max ||c||^2 */
    int *flag_count;
    int64_t *flag_list;
    float ecoef_dot;     /* E = ecoef_dot * ||x|| * ||c||max + ecoef_cn * ||c||max^2 */
    float ecoef_cn;
    /* v3 with TAIL: the last round's point tiles, split along k over all blocks, merge their
     * partial (distance, label) here: per row of that round, an order key << 32 | label and
     * the order key of min_dist (atomicMin; all ones before the kernel). NULL: no split. */
    unsigned long long *tail_key;
    unsigned *tail_md;
};

constexpr int V1_BM = 128, V1_BN = 128, V1_T = 256;
constexpr int V1_S_RES = 4, V1_S_STR = 3;

template <int OP> struct V1Cfg {
    static constexpr int MINB = (OP == OP_TF32X3) ? 1 : 2;
};

__host__ __device__ constexpr int v1_stages(bool xres) { return xres ? V1_S_RES : V1_S_STR; }
__host__ __device__ constexpr int v1_stage_bytes(bool xres) { return xres ? V1_BN * 128 : (V1_BM + V1_BN) * 128; }
/* Dynamic shared memory of one v1 block. */
static inline size_t v1_smem_bytes(bool xres, int nkc)
{
    size_t b = (size_t)v1_stages(xres) * v1_stage_bytes(xres) + (xres ? (size_t)nkc * V1_BM * 128 : 0);
    size_t red = (size_t)4 * V1_BM * 12; /* final cross-warp reduction reuses the buffer */
    return b > red ? b : red;
}

/* R rows x 128 bytes (chunk starting at byte kb0 of each row) -> swizzled shared tile. */
template <int R>
__device__ __forceinline__ void v1_load_tile(uint32_t dst, const char *g, int64_t r0, int64_t nrows,
                                             int64_t ldb, int kb0, int row_bytes, int tid)
{
#pragma unroll
    for (int i = 0; i < R * 8 / V1_T; ++i) {
        int q = tid + i * V1_T;
        int r = q >> 3, c = q & 7;
        int64_t row = r0 + r;
        int kb = kb0 + c * 16;
        bool v = row < nrows && kb < row_bytes;
        const char *src = v ? g + row * ldb + kb : g;
        cp_async16(dst + r * 128 + ((c ^ (r & 7)) << 4), src, v);
    }
}

template <int OP, bool XRES>
__global__ void __launch_bounds__(V1_T, V1Cfg<OP>::MINB) assign_v1_kernel(const AssignParams p, const int nkc)
{
    constexpr int S = v1_stages(XRES);
    constexpr int STAGE = v1_stage_bytes(XRES);
    constexpr bool EXACT = OP == OP_TF32X3;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t sbase = smem_u32(smem_raw);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp >> 2, wn = warp & 3;
    const int g = lane >> 2, t = lane & 3;
    const int64_t row0 = (int64_t)blockIdx.x * V1_BM;
    const int nJ = (int)((p.k + V1_BN - 1) / V1_BN);
    const int total = nJ * nkc;
    const uint32_t sX = sbase;
    const uint32_t sStage = sbase + (XRES ? (uint32_t)nkc * V1_BM * 128 : 0u);

    auto load_stage = [&](int s) {
        const int tid = tid_volatile();
        int j = s / nkc, kc = s - j * nkc;
        uint32_t st = sStage + (uint32_t)(s % S) * STAGE;
        v1_load_tile<V1_BN>(st, p.c, (int64_t)j * V1_BN, p.k, p.ldc_bytes, kc * 128, p.row_bytes, tid);
        if (!XRES)
            v1_load_tile<V1_BM>(st + V1_BN * 128, p.x, row0, p.n, p.ldx_bytes, kc * 128, p.row_bytes, tid);
    };

    /* prologue */
    if (XRES) {
        for (int kc = 0; kc < nkc; ++kc)
            v1_load_tile<V1_BM>(sX + kc * V1_BM * 128, p.x, row0, p.n, p.ldx_bytes, kc * 128, p.row_bytes, tid);
    }
#pragma unroll
    for (int q = 0; q < S - 1; ++q) {
        if (q < total) load_stage(q);
        cp_async_commit();
    }

    float acc[4][4][4];
    float best[4][2], second[4][2];
    int bidx[4][2];
#pragma unroll
    for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
#pragma unroll
            for (int q = 0; q < 4; ++q) acc[mi][ni][q] = 0.f;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            best[mi][h] = FKM_INF;
            second[mi][h] = FKM_INF;
            bidx[mi][h] = 0;
        }
    }

    for (int s = 0; s < total; ++s) {
        cp_async_wait<S - 2>();
        __syncthreads();
        if (s + S - 1 < total) load_stage(s + S - 1);
        cp_async_commit();

        const int j = s / nkc, kc = s - j * nkc;
        const int lane = tid_volatile() & 31;
        const uint32_t cs = sStage + (uint32_t)(s % S) * STAGE;
        const uint32_t xs = XRES ? sX + (uint32_t)kc * V1_BM * 128 : cs + V1_BN * 128;
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) {
            uint32_t a[4][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 4; ++mi) {
                int row = wm * 64 + mi * 16 + (lane & 15);
                int ch = ks * 2 + (lane >> 4);
                ldsm_x4(xs + row * 128 + ((ch ^ (lane & 7)) << 4), a[mi][0], a[mi][1], a[mi][2], a[mi][3]);
            }
#pragma unroll
            for (int nj = 0; nj < 2; ++nj) {
                int nr = wn * 32 + nj * 16 + (lane & 7) + ((lane >> 4) << 3);
                int ch = ks * 2 + ((lane >> 3) & 1);
                ldsm_x4(cs + nr * 128 + ((ch ^ (lane & 7)) << 4), b[2 * nj][0], b[2 * nj][1], b[2 * nj + 1][0],
                        b[2 * nj + 1][1]);
            }
            if (OP == OP_F16 || OP == OP_BF16) {
#pragma unroll
                for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                    for (int ni = 0; ni < 4; ++ni) {
                        if (OP == OP_F16) mma_f16(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
                        else mma_bf16(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
                    }
            } else if (OP == OP_TF32) {
#pragma unroll
                for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                    for (int q = 0; q < 4; ++q) a[mi][q] = to_tf32(__uint_as_float(a[mi][q]));
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) {
                    b[ni][0] = to_tf32(__uint_as_float(b[ni][0]));
                    b[ni][1] = to_tf32(__uint_as_float(b[ni][1]));
                }
#pragma unroll
                for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                    for (int ni = 0; ni < 4; ++ni) mma_tf32(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
            } else { /* OP_TF32X3 */
                uint32_t ah[4][4], al[4][4], bh[4][2], bl[4][2];
#pragma unroll
                for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                    for (int q = 0; q < 4; ++q) split_tf32(a[mi][q], ah[mi][q], al[mi][q]);
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) {
                    split_tf32(b[ni][0], bh[ni][0], bl[ni][0]);
                    split_tf32(b[ni][1], bh[ni][1], bl[ni][1]);
                }
#pragma unroll
                for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                    for (int ni = 0; ni < 4; ++ni) {
                        mma_tf32(acc[mi][ni], al[mi], bh[ni][0], bh[ni][1]);
                        mma_tf32(acc[mi][ni], ah[mi], bl[ni][0], bl[ni][1]);
                        mma_tf32(acc[mi][ni], ah[mi], bh[ni][0], bh[ni][1]);
                    }
            }
        }

        if (kc == nkc - 1) { /* epilogue of centroid tile j */
            const int jb = j * V1_BN + wn * 32 + 2 * t;
#pragma unroll
            for (int ni = 0; ni < 4; ++ni)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int col = jb + ni * 8 + e;
                    const float cv = col < p.k ? (p.ip ? 0.f : __ldg(p.cn + col)) : FKM_INF;
#pragma unroll
                    for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                        for (int h = 0; h < 2; ++h) {
                            float dd = fmaf(-2.f, acc[mi][ni][2 * h + e], cv);
                            if (EXACT) upd_best2(best[mi][h], bidx[mi][h], second[mi][h], dd, col);
                            else upd_best(best[mi][h], bidx[mi][h], dd, col);
                        }
                }
#pragma unroll
            for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni)
#pragma unroll
                    for (int q = 0; q < 4; ++q) acc[mi][ni][q] = 0.f;
        }
    }

    /* quad merge (lanes sharing a row) */
#pragma unroll
    for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int off = 1; off <= 2; off <<= 1) {
                float ob = __shfl_xor_sync(0xffffffffu, best[mi][h], off);
                int oi = __shfl_xor_sync(0xffffffffu, bidx[mi][h], off);
                if (EXACT) {
                    float os = __shfl_xor_sync(0xffffffffu, second[mi][h], off);
                    merge_best2(best[mi][h], bidx[mi][h], second[mi][h], ob, oi, os);
                } else {
                    merge_best(best[mi][h], bidx[mi][h], ob, oi);
                }
            }
    cp_async_wait<0>();
    __syncthreads();
    float *rb = reinterpret_cast<float *>(smem_raw);
    int *ri = reinterpret_cast<int *>(rb + 4 * V1_BM);
    float *rs = reinterpret_cast<float *>(ri + 4 * V1_BM);
    if (t == 0) {
#pragma unroll
        for (int mi = 0; mi < 4; ++mi)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                int r = wm * 64 + mi * 16 + h * 8 + g;
                rb[wn * V1_BM + r] = best[mi][h];
                ri[wn * V1_BM + r] = bidx[mi][h];
                if (EXACT) rs[wn * V1_BM + r] = second[mi][h];
            }
    }
    __syncthreads();
    if (tid < V1_BM) {
        const int r = tid;
        const int64_t row = row0 + r;
        if (row < p.n) {
            float b = rb[r], s2 = EXACT ? rs[r] : 0.f;
            int bi = ri[r];
#pragma unroll
            for (int q = 1; q < 4; ++q) {
                if (EXACT) merge_best2(b, bi, s2, rb[q * V1_BM + r], ri[q * V1_BM + r], rs[q * V1_BM + r]);
                else merge_best(b, bi, rb[q * V1_BM + r], ri[q * V1_BM + r]);
            }
            p.labels[row] = bi;
            p.md[row] = p.ip ? p.ip_offset + 0.5f * b : fmaxf(p.xn[row] + b, 0.f);
            if (EXACT) {
                const float xn = p.xn[row]; /* exact mode's own fp64-rounded norms, also for IP */
                const float cm = *p.cnmax;
                const float E = p.ecoef_dot * sqrtf(xn) * sqrtf(cm) + p.ecoef_cn * cm;
                if (!(s2 - b > 2.f * E)) {
                    int slot = atomicAdd(p.flag_count, 1);
                    p.flag_list[slot] = row;
                }
            }
        }
    }
}

} // namespace fkm
#endif
