/* The v3 assign kernels' work schedule: which (point tile, centroid tiles) items each block
 * sweeps, and the launch's grid and split last round. Host-callable, so that the tests check
 * the schedule itself (test_v3_sched) and count its split runs (test_gpu_assign). */
#ifndef FKM_ASSIGN_V3_SCHED_CUH
#define FKM_ASSIGN_V3_SCHED_CUH

#include <stdint.h>

namespace fkm {

/* point tile rows (2 consumer warpgroups x 128) and centroid tile columns */
constexpr int V3_BM = 256, V3_BN = 128;

/* Which (point tile, centroid tiles [j0, j1)) items a block sweeps. Round-robin, block b takes
 * tiles b, b + G, ... (G blocks); with R = nPT / G full rounds the last round holds only
 * r = nPT mod G tiles, so r blocks run a whole sweep more than the others (at N = 1M, BM = 256,
 * 132 SMs: 32 rounds of work for 31.03 of it). TAIL splits that round's r x nJ steps, in tile
 * then centroid-tile order, into G equal ranges, one per block; an item that covers part of a
 * tile only merges its rows' (distance, label) into p.tail_key / p.tail_md, and
 * v3_tail_finish_kernel writes them out. Without TAIL, block b < r takes tile R G + b whole. */
struct V3Sched {
    int64_t R;      /* full rounds */
    int64_t lo, hi; /* this block's steps [lo, hi) of the last round (r x nJ steps) */
    int items;
    int64_t G, b;   /* blocks of the grid, this block */
};
__host__ __device__ inline V3Sched v3_sched(int64_t nPT, int nJ, bool tail, int64_t G, int64_t b)
{
    V3Sched q;
    q.G = G;
    q.b = b;
    q.R = nPT / G;
    const int64_t r = nPT - q.R * G;
    if (tail) {
        q.lo = b * r * nJ / G;
        q.hi = (b + 1) * r * nJ / G;
    } else {
        q.lo = b < r ? b * nJ : 0;
        q.hi = b < r ? q.lo + nJ : 0;
    }
    q.items = (int)(q.R + (q.hi > q.lo ? (q.hi - 1) / nJ - q.lo / nJ + 1 : 0));
    return q;
}
/* item it of the block: point tile *tile, centroid tiles [*j0, *j1) */
__host__ __device__ inline void v3_item(const V3Sched &q, int it, int nJ, int64_t *tile, int *j0, int *j1)
{
    if (it < q.R) {
        *tile = q.b + (int64_t)it * q.G;
        *j0 = 0;
        *j1 = nJ;
    } else {
        const int64_t t = q.lo / nJ + (it - q.R); /* tile of the last round */
        *tile = q.R * q.G + t;
        *j0 = (int)(q.lo > t * nJ ? q.lo - t * nJ : 0);
        *j1 = (int)(q.hi - t * nJ < nJ ? q.hi - t * nJ : nJ);
    }
}
/* The launch (host): with `sms` blocks at most (one per SM), whether the last round is split
 * (TAIL given the workspace, tail_ok), the grid, and the last round's rows [row0, row0 + rows)
 * that the split merges through the workspace (at most v3_tail_rows(n) of them). The split is
 * not used on devices of more than V3_TAIL_MAX_SMS. */
constexpr int64_t V3_TAIL_MAX_SMS = 1024;
inline int64_t v3_tail_rows(int64_t n)
{
    const int64_t npt = (n + V3_BM - 1) / V3_BM;
    return (npt < V3_TAIL_MAX_SMS ? npt : V3_TAIL_MAX_SMS) * V3_BM;
}
struct V3Plan {
    bool tail;
    int grid;
    int64_t row0, rows;
};
inline V3Plan v3_plan(int64_t n, int64_t sms, bool tail_ok)
{
    V3Plan pl;
    const int64_t npt = (n + V3_BM - 1) / V3_BM;
    pl.tail = tail_ok && sms <= V3_TAIL_MAX_SMS && npt % sms != 0;
    pl.grid = (int)(pl.tail || npt > sms ? sms : npt);
    pl.row0 = pl.tail ? npt / sms * sms * V3_BM : 0;
    pl.rows = pl.tail ? n - pl.row0 : 0;
    return pl;
}

} // namespace fkm
#endif
