/* 64-bit row indices end to end on the CPU (issue #5): a sparse .u8bin of N = 2^31 + 1000 rows
 * of D = 2 (4 GiB of zeros on disk, almost none allocated) with known rows written past row
 * 2^31; the shard split of N over 1..7 ranks, the file row source, and a skip source whose
 * rows lie past 2^31 must all address them correctly, and the CPU backend must assign and
 * count rows read from beyond 2^31. */
#include "backend.h"
#include "io.h"
#include "rowsrc.h"
#include "test_util.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static uint8_t marker(int64_t row, int t) { return (uint8_t)((row * 31 + t * 7 + 1) % 251 + 1); }

int main(void)
{
    const int64_t N = ((int64_t)1 << 31) + 1000, D = 2;
    const int64_t marked[] = {((int64_t)1 << 31) - 1, (int64_t)1 << 31, ((int64_t)1 << 31) + 1,
                              ((int64_t)1 << 31) + 500, N - 1};
    const int nm = sizeof marked / sizeof marked[0];
    char path[] = "/tmp/fkm_bigindex_XXXXXX.u8bin";
    int fd = mkstemps(path, 6);
    if (fd < 0) {
        printf("cannot create a temporary file: %s; skipped\n", strerror(errno));
        return SKIP_CODE;
    }
    uint32_t hdr[2] = {(uint32_t)N, (uint32_t)D};
    int ok = write(fd, hdr, sizeof hdr) == (ssize_t)sizeof hdr &&
             ftruncate(fd, (off_t)(8 + N * D)) == 0; /* sparse: zeros read back */
    for (int i = 0; i < nm && ok; i++) {
        uint8_t v[2] = {marker(marked[i], 0), marker(marked[i], 1)};
        ok = pwrite(fd, v, 2, (off_t)(8 + marked[i] * D)) == 2;
    }
    close(fd);
    if (!ok) {
        printf("cannot write the sparse file (%s); skipped\n", strerror(errno));
        unlink(path);
        return SKIP_CODE;
    }
    fkm_reader *r = NULL;
    fkm_dsinfo info;
    fkm_error err;
    CHECK(fkm_reader_open(path, NULL, &r, &info, &err) == FKM_OK, "open: %s", err.msg);
    if (!r) return t_finish("test_bigindex");
    CHECK(info.n == N && info.d == D, "shape %lld x %lld", (long long)info.n, (long long)info.d);

    /* every shard split covers [0, N) exactly, and each marked row is read where it lies */
    for (int p = 1; p <= 7; p++) {
        int64_t next = 0;
        for (int rank = 0; rank < p; rank++) {
            int64_t row0, cnt;
            fkm_shard(N, p, rank, &row0, &cnt);
            CHECK(row0 == next, "p=%d rank %d starts at %lld, not %lld", p, rank, (long long)row0, (long long)next);
            next = row0 + cnt;
            fkm_rowsrc src;
            fkm_filesrc fs;
            fkm_rowsrc_file(&src, &fs, r, &info, row0, cnt);
            for (int i = 0; i < nm; i++) {
                if (marked[i] < row0 || marked[i] >= row0 + cnt) continue;
                float v[2] = {-1, -1};
                CHECK(src.read(src.ctx, marked[i] - row0, 1, v, &err) == FKM_OK, "read: %s", err.msg);
                CHECK(v[0] == marker(marked[i], 0) && v[1] == marker(marked[i], 1),
                      "p=%d: row %lld read as %g %g", p, (long long)marked[i], v[0], v[1]);
            }
        }
        CHECK(next == N, "p=%d: shards end at %lld", p, (long long)next);
    }

    /* the last 1000 rows as a source (local indices small, global ones past 2^31), with two
     * rows skipped: the skip source maps around them */
    const int64_t row0 = N - 1000;
    fkm_rowsrc tail, skipped;
    fkm_filesrc fs;
    fkm_skipsrc ks;
    fkm_rowsrc_file(&tail, &fs, r, &info, row0, 1000);
    const int64_t bad[] = {1, 499}; /* global 2^31 + 1 and 2^31 + 499 */
    fkm_rowsrc_skip(&skipped, &ks, &tail, bad, 2);
    CHECK(fkm_skipsrc_base_row(&ks, 1) == 2 && fkm_skipsrc_base_row(&ks, 498) == 500,
          "skip mapping %lld %lld", (long long)fkm_skipsrc_base_row(&ks, 1),
          (long long)fkm_skipsrc_base_row(&ks, 498));
    float rows[998 * 2];
    CHECK(skipped.read(skipped.ctx, 0, 998, rows, &err) == FKM_OK, "skip read: %s", err.msg);
    /* global row 2^31 + 500 is local 500, skip-local 498 */
    CHECK(rows[498 * 2] == marker(((int64_t)1 << 31) + 500, 0), "skip source row past 2^31");

    /* the CPU backend on those rows, streamed from the file in chunks of 97 rows: two centroids,
     * the zero row and the marked row; every marked row lands on the marked centroid */
    fkm_backend b;
    CHECK(fkm_backend_cpu_create(&b, 2, D, FKM_PREC_AUTO, FKM_METRIC_L2, &err) == FKM_OK, "cpu: %s", err.msg);
    float c[4] = {0, 0, marker(((int64_t)1 << 31) + 500, 0), marker(((int64_t)1 << 31) + 500, 1)};
    CHECK(b.set_source(b.ctx, &tail, FKM_RES_FILE, 97, &err) == FKM_OK, "set_source: %s", err.msg);
    CHECK(b.set_centroids(b.ctx, c, 2, &err) == FKM_OK, "set_centroids");
    CHECK(b.step(b.ctx, NULL, &err) == FKM_OK, "step: %s", err.msg);
    double st[2 * 2 + 2 + 1];
    b.stats_to_host(b.ctx, st, &err);
    CHECK(st[4] + st[5] == 1000, "counts %g + %g", st[4], st[5]);
    int32_t lab[1000];
    b.labels(b.ctx, lab, &err);
    CHECK(lab[500] == 1 && lab[0] == 0, "labels %d %d", lab[500], lab[0]);
    b.destroy(b.ctx);
    fkm_reader_close(r);
    unlink(path);
    return t_finish("test_bigindex");
}
