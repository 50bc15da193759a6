/* The v3 assign kernels' work schedule (kernels/assign_v3.cuh: v3_plan, v3_sched_for, v3_item),
 * run on the host for every block of the grid the launch would use, on shapes off every tile
 * size and for 1 to 1025 schedulers (SMs, or block pairs with MC), with and without the split
 * last round (TAIL) and the pairs:
 *   - every (point tile, centroid tile) step is swept exactly once;
 *   - an item covering only part of a tile's centroid tiles lies in the last round's rows
 *     [row0, n), which fit the workspace (v3_tail_rows), and the kernel's first tail row
 *     (R x grid x BM) is the launch's row0;
 *   - the two blocks of a pair (MC) sweep the same centroid tiles in the same order (their
 *     producers copy one half of each tile into both) with point tiles 2u and 2u + 1; the one
 *     tile past the matrix (an odd tile count) only in the second block;
 *   - the schedulers' step counts differ by at most 1 with the split, by at most one sweep
 *     without it.
 * Host only: runs without a GPU (label unit). */
#include <cstdint>
#include <cstdio>
#include <vector>

extern "C" {
#include "test_util.h"
}
#include "assign_v3.cuh"

using namespace fkm;

static int g_configs = 0;

static void check(int64_t n, int64_t k, int64_t scheds, bool mc, bool tail_ok)
{
    char what[128];
    snprintf(what, sizeof what, "n=%lld k=%lld scheds=%lld%s%s", (long long)n, (long long)k, (long long)scheds,
             mc ? " pairs" : "", tail_ok ? " split" : "");
    const int fails0 = t_failures;
    const int64_t nPT = (n + V3_BM - 1) / V3_BM;
    const int nJ = (int)((k + V3_BN - 1) / V3_BN);
    const int mul = mc ? 2 : 1;
    const V3Plan pl = v3_plan(n, scheds, mc, tail_ok);
    CHECK(pl.grid >= mul && pl.grid <= scheds * mul && pl.grid % mul == 0, "%s: grid %d", what, pl.grid);
    CHECK(pl.units == (nPT + mul - 1) / mul, "%s: %lld units", what, (long long)pl.units);
    if (pl.tail)
        CHECK(pl.row0 % V3_BM == 0 && pl.row0 >= 0 && pl.row0 < n && pl.rows == n - pl.row0 &&
                  pl.rows <= v3_tail_rows(n),
              "%s: tail rows [%lld, +%lld), workspace %lld", what, (long long)pl.row0, (long long)pl.rows,
              (long long)v3_tail_rows(n));
    if (t_failures > fails0) return;

    std::vector<uint8_t> cover((size_t)(nPT * nJ), 0);
    std::vector<int64_t> steps;
    struct Item {
        int64_t tile;
        int j0, j1;
    };
    std::vector<Item> prev; /* the first block of the current pair's items */
    for (int64_t B = 0; B < pl.grid && t_failures == fails0; ++B) {
        const V3Sched q = v3_sched_for(nPT, nJ, pl.tail, pl.grid, B, mc, (int)(B & 1));
        if (pl.tail)
            CHECK(q.R * pl.grid * V3_BM == pl.row0, "%s: block %lld: the kernel's first tail row %lld, launch %lld",
                  what, (long long)B, (long long)(q.R * pl.grid * V3_BM), (long long)pl.row0);
        std::vector<Item> mine;
        int64_t nsteps = 0;
        for (int it = 0; it < q.items; ++it) {
            Item m;
            v3_item(q, it, nJ, &m.tile, &m.j0, &m.j1);
            mine.push_back(m);
            nsteps += m.j1 - m.j0;
            CHECK(m.j0 >= 0 && m.j0 < m.j1 && m.j1 <= nJ && m.tile >= 0, "%s: block %lld item %d: tile %lld [%d, %d)",
                  what, (long long)B, it, (long long)m.tile, m.j0, m.j1);
            if (t_failures > fails0) return;
            if (m.tile >= nPT) { /* past the matrix: only a pair's second tile of an odd count */
                CHECK(mc && (B & 1) && m.tile == nPT && nPT % 2 == 1, "%s: block %lld: tile %lld of %lld", what,
                      (long long)B, (long long)m.tile, (long long)nPT);
                continue;
            }
            if (m.j0 > 0 || m.j1 < nJ)
                CHECK(pl.tail && m.tile * V3_BM >= pl.row0, "%s: block %lld: part [%d, %d) of tile %lld outside the "
                      "merged rows from %lld", what, (long long)B, m.j0, m.j1, (long long)m.tile, (long long)pl.row0);
            for (int j = m.j0; j < m.j1; ++j) cover[(size_t)(m.tile * nJ + j)]++;
        }
        if (mc && (B & 1)) {
            bool same = mine.size() == prev.size();
            for (size_t i = 0; same && i < mine.size(); ++i)
                same = mine[i].j0 == prev[i].j0 && mine[i].j1 == prev[i].j1 && mine[i].tile == prev[i].tile + 1 &&
                       prev[i].tile % 2 == 0;
            CHECK(same, "%s: blocks %lld and %lld (a pair) sweep different items (%zu and %zu)", what, (long long)B - 1,
                  (long long)B, prev.size(), mine.size());
        }
        prev = mine;
        if (!mc || !(B & 1)) steps.push_back(nsteps);
    }
    if (t_failures > fails0) return;
    int64_t twice = 0, never = 0, first = -1;
    for (size_t i = 0; i < cover.size(); ++i) {
        twice += cover[i] > 1;
        never += cover[i] == 0;
        if (cover[i] != 1 && first < 0) first = (int64_t)i;
    }
    CHECK(twice == 0 && never == 0, "%s: %lld steps swept twice, %lld never (first: tile %lld, centroid tile %lld)",
          what, (long long)twice, (long long)never, (long long)(first / nJ), (long long)(first % nJ));
    int64_t lo = INT64_MAX, hi = 0;
    for (int64_t s : steps) {
        lo = s < lo ? s : lo;
        hi = s > hi ? s : hi;
    }
    CHECK(hi - lo <= (pl.tail ? 1 : nJ), "%s: scheduler steps from %lld to %lld", what, (long long)lo, (long long)hi);
    g_configs++;
}

int main(void)
{
    const int64_t ns[] = {1, 255, 256, 257, 1000, 77777, 200000, 1048576, 1048576 + 300, 8388608};
    const int64_t ks[] = {1, 7, 128, 129, 1000, 1024, 8192, 65536};
    const int64_t scheds[] = {1, 2, 3, 7, 65, 66, 131, 132, 1024, 1025};
    for (int64_t n : ns)
        for (int64_t k : ks)
            for (int64_t g : scheds) {
                /* the largest matrices (up to 2^24 steps) at the H100's and H200's own counts only */
                const int64_t nsteps = (n + V3_BM - 1) / V3_BM * ((k + V3_BN - 1) / V3_BN);
                if (nsteps > (1 << 21) && g != 66 && g != 132) continue;
                for (int mc = 0; mc < 2; ++mc)
                    for (int tail = 0; tail < 2; ++tail) check(n, k, g, mc != 0, tail != 0);
            }
    printf("test_v3_sched: %d configurations\n", g_configs);
    return t_finish("test_v3_sched");
}
