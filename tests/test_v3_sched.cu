/* The v3 assign kernels' work schedule (kernels/assign_v3_sched.cuh: v3_plan, v3_sched, v3_item),
 * run on the host for every block of the grid the launch would use, on shapes off every tile
 * size and for 1 to 1025 SMs, with and without the split last round (TAIL):
 *   - every (point tile, centroid tile) step is swept exactly once, and no tile past the matrix;
 *   - an item covering only part of a tile's centroid tiles lies in the last round's rows
 *     [row0, n), which fit the workspace (v3_tail_rows), and the kernel's first tail row
 *     (R x grid x BM) is the launch's row0;
 *   - the blocks' step counts differ by at most 1 with the split, by at most one sweep without.
 * Host only: runs without a GPU (label unit). */
#include <cstdint>
#include <cstdio>
#include <vector>

extern "C" {
#include "test_util.h"
}
#include "assign_v3_sched.cuh"

using namespace fkm;

static int g_configs = 0;

static void check(int64_t n, int64_t k, int64_t sms, bool tail_ok)
{
    char what[128];
    snprintf(what, sizeof what, "n=%lld k=%lld sms=%lld%s", (long long)n, (long long)k, (long long)sms,
             tail_ok ? " split" : "");
    const int fails0 = t_failures;
    const int64_t nPT = (n + V3_BM - 1) / V3_BM;
    const int nJ = (int)((k + V3_BN - 1) / V3_BN);
    const V3Plan pl = v3_plan(n, sms, tail_ok);
    CHECK(pl.grid >= 1 && pl.grid <= sms && pl.grid <= (pl.tail ? sms : nPT), "%s: grid %d", what, pl.grid);
    if (pl.tail)
        CHECK(pl.row0 % V3_BM == 0 && pl.row0 >= 0 && pl.row0 < n && pl.rows == n - pl.row0 &&
                  pl.rows <= v3_tail_rows(n),
              "%s: tail rows [%lld, +%lld), workspace %lld", what, (long long)pl.row0, (long long)pl.rows,
              (long long)v3_tail_rows(n));
    if (t_failures > fails0) return;

    std::vector<uint8_t> cover((size_t)(nPT * nJ), 0);
    std::vector<int64_t> steps;
    for (int64_t B = 0; B < pl.grid && t_failures == fails0; ++B) {
        const V3Sched q = v3_sched(nPT, nJ, pl.tail, pl.grid, B);
        if (pl.tail)
            CHECK(q.R * pl.grid * V3_BM == pl.row0, "%s: block %lld: the kernel's first tail row %lld, launch %lld",
                  what, (long long)B, (long long)(q.R * pl.grid * V3_BM), (long long)pl.row0);
        int64_t nsteps = 0;
        for (int it = 0; it < q.items; ++it) {
            int64_t tile;
            int j0, j1;
            v3_item(q, it, nJ, &tile, &j0, &j1);
            nsteps += j1 - j0;
            CHECK(j0 >= 0 && j0 < j1 && j1 <= nJ && tile >= 0 && tile < nPT, "%s: block %lld item %d: tile %lld of "
                  "%lld [%d, %d)", what, (long long)B, it, (long long)tile, (long long)nPT, j0, j1);
            if (t_failures > fails0) return;
            if (j0 > 0 || j1 < nJ)
                CHECK(pl.tail && tile * V3_BM >= pl.row0, "%s: block %lld: part [%d, %d) of tile %lld outside the "
                      "merged rows from %lld", what, (long long)B, j0, j1, (long long)tile, (long long)pl.row0);
            for (int j = j0; j < j1; ++j) cover[(size_t)(tile * nJ + j)]++;
        }
        steps.push_back(nsteps);
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
    CHECK(hi - lo <= (pl.tail ? 1 : nJ), "%s: block steps from %lld to %lld", what, (long long)lo, (long long)hi);
    g_configs++;
}

int main(void)
{
    const int64_t ns[] = {1, 255, 256, 257, 1000, 77777, 200000, 1048576, 1048576 + 300, 8388608};
    const int64_t ks[] = {1, 7, 128, 129, 1000, 1024, 8192, 65536};
    const int64_t sms[] = {1, 2, 3, 7, 65, 66, 131, 132, 1024, 1025};
    for (int64_t n : ns)
        for (int64_t k : ks)
            for (int64_t g : sms) {
                /* the largest matrices (up to 2^24 steps) at the H100's and H200's SM count only */
                const int64_t nsteps = (n + V3_BM - 1) / V3_BM * ((k + V3_BN - 1) / V3_BN);
                if (nsteps > (1 << 21) && g != 132) continue;
                for (int tail = 0; tail < 2; ++tail) check(n, k, g, tail != 0);
            }
    printf("test_v3_sched: %d configurations\n", g_configs);
    return t_finish("test_v3_sched");
}
