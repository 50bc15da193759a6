/* A raw C-order n×d array of one little-endian element type at a byte offset of a file: the
 * body of .npy and of the big-ann .fbin/.u8bin/.i8bin files. Rows are read with pread at
 * 64-bit offsets, so each rank reads only its own range; short reads are errors. */
#define _FILE_OFFSET_BITS 64
#define _POSIX_C_SOURCE 200809L
#include "reader_impl.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* elements converted per pass of read_f32: bounds the scratch buffer to 8 MiB */
#define RAW_BLOCK_ELEMS ((size_t)1 << 20)

typedef struct {
    int fd;
    int64_t offset;   /* byte offset of element [0][0] */
    void *scratch;    /* up to RAW_BLOCK_ELEMS elements for converting reads, grown on demand */
    size_t scratch_elems;
} raw_state;

static int host_is_le(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* little-endian file bytes -> host order, in place (nothing to do on little-endian hosts) */
static void to_host(void *buf, size_t count, size_t esize)
{
    if (esize == 1 || host_is_le()) return;
    unsigned char *p = buf;
    for (size_t i = 0; i < count; i++, p += esize)
        for (size_t a = 0, b = esize - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

int fkm_raw_open_file(const fkm_reader *r, int *fd, int64_t *size, fkm_error *err)
{
    struct stat st;
    *fd = -1;
    int f = open(r->file, O_RDONLY | O_CLOEXEC);
    if (f < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return fkm_fail(err, FKM_EINPUT, "%s '%s': no such file", r->role, r->file);
        return fkm_fail(err, FKM_EINPUT, "%s '%s': cannot be opened: %s", r->role, r->file,
                        strerror(e));
    }
    if (fstat(f, &st) != 0) {
        int e = errno;
        close(f);
        return fkm_fail(err, FKM_EINPUT, "%s '%s': cannot stat it: %s", r->role, r->file,
                        strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(f);
        return fkm_fail(err, FKM_EINPUT, "%s '%s': is a directory, expected a file", r->role,
                        r->file);
    }
    if (!S_ISREG(st.st_mode)) { /* a pipe or device has no size to check against the header */
        close(f);
        return fkm_fail(err, FKM_EINPUT, "%s '%s': is not a regular file", r->role, r->file);
    }
    *fd = f;
    *size = (int64_t)st.st_size;
    return FKM_OK;
}

int fkm_raw_pread(const fkm_reader *r, int fd, void *buf, size_t len, int64_t off, int header,
                  fkm_error *err)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < len) {
        size_t want = len - done;
        if (want > ((size_t)1 << 30)) want = (size_t)1 << 30; /* pread caps near 2 GiB */
        ssize_t got = pread(fd, p + done, want, (off_t)(off + (int64_t)done));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0)
            return fkm_fail(err, header ? FKM_EINPUT : FKM_ERUNTIME,
                            "%s '%s': reading %zu bytes at offset %lld failed: %s", r->role,
                            r->file, len, (long long)off, strerror(errno));
        if (got == 0) {
            if (header)
                return fkm_fail(err, FKM_EINPUT,
                                "%s '%s': file is %lld bytes, too short for its header", r->role,
                                r->file, (long long)(off + (int64_t)done));
            return fkm_fail(err, FKM_ERUNTIME,
                            "%s '%s': file ended at byte %lld while reading %zu bytes at offset "
                            "%lld (was it truncated while fkm ran?)",
                            r->role, r->file, (long long)(off + (int64_t)done), len,
                            (long long)off);
        }
        done += (size_t)got;
    }
    return FKM_OK;
}

int fkm_raw_check_size(const fkm_reader *r, int64_t offset, int64_t size, fkm_error *err)
{
    const int64_t esize = (int64_t)fkm_elem_size(r->elem);
    int64_t elems, bytes, total;
    if (__builtin_mul_overflow(r->n, r->d, &elems) ||
        __builtin_mul_overflow(elems, esize, &bytes) ||
        __builtin_add_overflow(bytes, offset, &total))
        return fkm_fail(err, FKM_EINPUT,
                        "%s '%s': header says %lld × %lld elements of %lld bytes: more than a "
                        "file can hold (a corrupt header?)",
                        r->role, r->file, (long long)r->n, (long long)r->d, (long long)esize);
    if (total != size)
        return fkm_fail(err, FKM_EINPUT, "%s '%s': file is %lld bytes, header says %lld + "
                        "%lld×%lld×%lld = %lld%s",
                        r->role, r->file, (long long)size, (long long)offset, (long long)r->n,
                        (long long)r->d, (long long)esize, (long long)total,
                        size < total ? " (truncated?)" : " (trailing bytes, or a different type?)");
    return FKM_OK;
}

static void raw_close(fkm_reader *r)
{
    raw_state *s = r->impl;
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    free(s->scratch);
    free(s);
    r->impl = NULL;
}

static int raw_read(fkm_reader *r, int64_t row0, int64_t nrows, void *dst, int f32,
                    fkm_error *err)
{
    raw_state *s = r->impl;
    const size_t esize = fkm_elem_size(r->elem);
    const size_t count = (size_t)nrows * (size_t)r->d;
    /* in range: the size check at open proved offset + n×d×esize fits the file */
    const int64_t off = s->offset + row0 * r->d * (int64_t)esize;

    /* the file's own bytes are the answer: float32, or float16 bits when native */
    if (r->elem == FKM_EL_F32 || (!f32 && r->elem == FKM_EL_F16)) {
        int st = fkm_raw_pread(r, s->fd, dst, count * esize, off, 0, err);
        if (!st) to_host(dst, count, esize);
        return st;
    }
    /* every other case converts to float32, a block at a time through the scratch buffer */
    const size_t want = count < RAW_BLOCK_ELEMS ? count : RAW_BLOCK_ELEMS;
    if (want > s->scratch_elems) {
        free(s->scratch);
        s->scratch_elems = 0;
        s->scratch = fkm_malloc(want * esize, "read buffer", err);
        if (!s->scratch) return FKM_ENOMEM;
        s->scratch_elems = want;
    }
    float *out = dst;
    for (size_t done = 0; done < count;) {
        size_t m = count - done < RAW_BLOCK_ELEMS ? count - done : RAW_BLOCK_ELEMS;
        int st = fkm_raw_pread(r, s->fd, s->scratch, m * esize, off + (int64_t)(done * esize), 0,
                               err);
        if (st) return st;
        to_host(s->scratch, m, esize);
        fkm_elem_to_f32(r->elem, s->scratch, m, out + done);
        done += m;
    }
    return FKM_OK;
}

static const fkm_reader_ops raw_ops = {raw_read, raw_close};

int fkm_raw_attach(fkm_reader *r, int fd, int64_t offset, fkm_error *err)
{
    raw_state *s = fkm_calloc(1, sizeof *s, "reader", err);
    if (!s) {
        close(fd);
        return FKM_ENOMEM;
    }
    s->fd = fd;
    s->offset = offset;
    r->impl = s;
    r->ops = &raw_ops;
    r->dtype = fkm_elem_dtype(r->elem);
    return FKM_OK;
}
