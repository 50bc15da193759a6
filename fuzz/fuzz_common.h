/* Shared by the harnesses: a private temporary directory, writing the input to a file there,
 * and the checks every harness makes on what fkm_reader_open returns. A broken promise
 * calls abort(), which libFuzzer (and the replay driver) report as a crash. */
#ifndef FKM_FUZZ_COMMON_H
#define FKM_FUZZ_COMMON_H

#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */
#include "io.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fz_dir[64];

static int fz_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void fz_cleanup(void)
{
    if (fz_dir[0]) nftw(fz_dir, fz_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* The path of NAME in this process's temporary directory (made on the first call). */
static const char *fz_path(const char *name)
{
    static char buf[256];
    if (!fz_dir[0]) {
        /* memory-backed when there is one: a file is written per input */
        struct stat st;
        const char *base = getenv("FUZZ_TMPDIR");
        if (!base) base = stat("/dev/shm", &st) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fz_dir, sizeof fz_dir, "%s/fkm_fuzz.XXXXXX", base);
        if (!mkdtemp(fz_dir)) {
            perror("mkdtemp");
            abort();
        }
        atexit(fz_cleanup);
    }
    snprintf(buf, sizeof buf, "%s/%s", fz_dir, name);
    return buf;
}

static void fz_write(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

#define FZ_ASSERT(cond, ...)                                                                 \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz: broken promise: %s: ", #cond);                            \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fprintf(stderr, "\n");                                                           \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* Open FILE (DATASET for HDF5) and check the contract: on failure a one-line FKM_EINPUT (or
 * FKM_ENOMEM) message naming the file and a NULL reader; on success a sane shape whose rows
 * read back in both forms (must_read: every in-range read succeeds, as for the raw formats
 * whose size was checked), and out-of-range reads are refused. Returns the status. */
static int fz_open_and_read(const char *file, const char *dataset, int must_read)
{
    fkm_error err;
    fkm_reader *r = (fkm_reader *)&err;
    fkm_dsinfo info;
    int st = fkm_reader_open(file, dataset, &r, &info, &err);
    if (getenv("FUZZ_VERBOSE")) /* what each input gave, for looking at a corpus */
        fprintf(stderr, "open: %s\n", st ? err.msg : "ok");
    if (st != FKM_OK) {
        FZ_ASSERT(r == NULL, "reader not NULL after status %d", st);
        FZ_ASSERT(st == FKM_EINPUT || st == FKM_ENOMEM, "status %d: %s", st, err.msg);
        FZ_ASSERT(err.status == st, "err.status %d vs %d", err.status, st);
        FZ_ASSERT(strstr(err.msg, file) != NULL, "message does not name the file: %s", err.msg);
        FZ_ASSERT(strchr(err.msg, '\n') == NULL && strchr(err.msg, '\r') == NULL,
                  "message is not one line: %s", err.msg);
        return st;
    }
    FZ_ASSERT(r != NULL && info.n >= 1 && info.d >= 1, "n %lld d %lld", (long long)info.n,
              (long long)info.d);
    FZ_ASSERT(info.dtype >= FKM_IO_F32 && info.dtype <= FKM_IO_I8, "dtype %d", info.dtype);
    /* read the first and the last few rows, when a row is of a reasonable size */
    if (info.d <= 65536) {
        int64_t rows = info.n < 4 ? info.n : 4;
        float *buf = malloc((size_t)(rows * info.d) * sizeof *buf);
        FZ_ASSERT(buf != NULL, "malloc");
        int64_t starts[2] = {0, info.n - rows};
        for (int i = 0; i < 2; i++) {
            int s1 = fkm_reader_read_f32(r, starts[i], rows, buf, &err);
            FZ_ASSERT(!must_read || s1 == FKM_OK, "read_f32 [%lld, +%lld): %s",
                      (long long)starts[i], (long long)rows, err.msg);
            int s2 = fkm_reader_read_native(r, starts[i], rows, buf, &err);
            FZ_ASSERT(!must_read || s2 == FKM_OK, "read_native: %s", err.msg);
        }
        FZ_ASSERT(fkm_reader_read_f32(r, info.n, 1, buf, &err) == FKM_ERUNTIME,
                  "a read past the end was not refused");
        FZ_ASSERT(fkm_reader_read_native(r, -1, 1, buf, &err) == FKM_ERUNTIME,
                  "a negative row was not refused");
        free(buf);
    }
    fkm_reader_close(r);
    return st;
}

#endif
