/* io/ formats beyond HDF5 float32/float16: .npy (v1/v2/v3; <f4 <f2 <f8 |u1 |i1), the big-ann
 * .fbin/.u8bin/.i8bin, and HDF5 int8, uint8 and bfloat16 (uint16 + attribute dtype).
 * Every file is written here byte by byte (headers built in the test, independently of the
 * readers) from fresh random data, read back over many shard ranges and chunkings, and
 * compared exactly with float32 values computed here by formula; then malformed files,
 * each of which must give one line, FKM_EINPUT, naming the file. */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, fileno, ftruncate, pwrite */
#define _FILE_OFFSET_BITS 64
#include "io.h"
#include "test_util.h"
#include "util.h"

#include <errno.h>
#include <ftw.h>
#include <hdf5.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


static int64_t rnd_between(uint64_t *s, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(t_xs_next(s) % (uint64_t)(hi - lo + 1));
}

/* ---------- independent references: values by formula, bytes by shifting ---------- */

static double ref_half(uint16_t h)
{ /* IEEE binary16 by the textbook formula */
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 31 ? (m ? NAN : INFINITY)
               : e == 0 ? ldexp((double)m, -24)
                        : ldexp(1.0 + m / 1024.0, e - 15);
    return sign ? -v : v;
}

static double ref_bf16(uint16_t b)
{ /* bfloat16: 1 sign, 8 exponent (bias 127), 7 mantissa bits */
    int sign = b >> 15, e = (b >> 7) & 255, m = b & 127;
    double v = e == 255 ? (m ? NAN : INFINITY)
               : e == 0 ? ldexp((double)m, -133) /* m/128 × 2^-126 */
                        : ldexp(1.0 + m / 128.0, e - 127);
    return sign ? -v : v;
}

static int same_float(float a, float b)
{ /* bit-equal, or both NaN */
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

static void le16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void write_bytes(const char *path, const void *a, size_t na, const void *b, size_t nb)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "create %s", path);
    if (!f) return;
    if (na) CHECK(fwrite(a, 1, na, f) == na, "write %s", path);
    if (nb) CHECK(fwrite(b, 1, nb, f) == nb, "write %s", path);
    CHECK(fclose(f) == 0, "close %s", path);
}

/* A matrix in test form: little-endian element bytes on disk, the expected float32 values,
 * and the expected native bytes (half bits for float16, float32 for everything else). */
typedef enum { T_F32, T_F16, T_F64, T_U8, T_I8, T_BF16 } ttype;
static const size_t t_esize[] = {4, 2, 8, 1, 1, 2};
static const char *const t_name[] = {"f32", "f16", "f64", "u8", "i8", "bf16"};

typedef struct {
    int64_t n, d;
    ttype type;
    unsigned char *disk; /* n×d elements, little-endian */
    float *ref32;
    unsigned char *refnat;
    size_t natsize;
} tmat;

static tmat make_mat(int64_t n, int64_t d, ttype type, uint64_t *s)
{
    tmat m = {n, d, type, NULL, NULL, NULL, type == T_F16 ? 2 : 4};
    const size_t cnt = (size_t)(n * d), es = t_esize[type];
    m.disk = malloc(cnt * es + 1);
    m.ref32 = malloc(cnt * sizeof(float) + 1);
    m.refnat = malloc(cnt * m.natsize + 1);
    for (size_t i = 0; i < cnt; i++) {
        uint64_t x = t_xs_next(s);
        double v = 0;
        switch (type) {
        case T_F32: { /* every magnitude: uniform mantissa × 2^[-40, 40], both signs */
            double u = (double)(x >> 11) / 9007199254740992.0;
            float f = (float)ldexp(u + 0.5, (int)((x >> 3) % 81) - 40);
            if (x & 1) f = -f;
            uint32_t bits;
            memcpy(&bits, &f, 4);
            le32(m.disk + 4 * i, bits);
            v = f;
            break;
        }
        case T_F16: /* raw bit patterns: subnormals, ±0, ±inf and NaN included */
            le16(m.disk + 2 * i, (uint16_t)x);
            v = ref_half((uint16_t)x);
            break;
        case T_BF16:
            le16(m.disk + 2 * i, (uint16_t)x);
            v = ref_bf16((uint16_t)x);
            break;
        case T_F64: { /* values that need rounding to float32 */
            double dv = ((double)(x >> 11) / 9007199254740992.0 - 0.5) * 1e6;
            uint64_t bits;
            memcpy(&bits, &dv, 8);
            le64(m.disk + 8 * i, bits);
            v = dv;
            break;
        }
        case T_U8:
            m.disk[i] = (unsigned char)x;
            v = (double)(unsigned char)x;
            break;
        case T_I8:
            m.disk[i] = (unsigned char)x;
            v = (double)(int8_t)(unsigned char)x;
            break;
        }
        m.ref32[i] = (float)v;
        if (type == T_F16)
            memcpy(m.refnat + 2 * i, m.disk + 2 * i, 2); /* little-endian host assumed below */
        else
            memcpy(m.refnat + 4 * i, &m.ref32[i], 4);
    }
    return m;
}

static void free_mat(tmat *m)
{
    free(m->disk);
    free(m->ref32);
    free(m->refnat);
}

/* ---------- writers, by hand ---------- */

/* A .npy file: magic, version, header length, the dict text padded with spaces to a
 * multiple of 64 and ended by '\n', then the data bytes. dict NULL: the usual one. */
static void write_npy(const char *path, int major, const char *descr, const char *fortran,
                      const char *shape, const char *dict, const void *data, size_t nbytes)
{
    char text[1024];
    if (dict)
        snprintf(text, sizeof text, "%s", dict);
    else
        snprintf(text, sizeof text, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr,
                 fortran, shape);
    size_t prefix = major == 1 ? 10 : 12, tl = strlen(text);
    size_t total = prefix + tl + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = tl + pad + 1;
    unsigned char *hdr = malloc(prefix + hlen);
    memcpy(hdr, "\x93NUMPY", 6);
    hdr[6] = (unsigned char)major;
    hdr[7] = 0;
    if (major == 1)
        le16(hdr + 8, (uint16_t)hlen);
    else
        le32(hdr + 8, (uint32_t)hlen);
    memcpy(hdr + prefix, text, tl);
    memset(hdr + prefix + tl, ' ', pad);
    hdr[prefix + hlen - 1] = '\n';
    write_bytes(path, hdr, prefix + hlen, data, nbytes);
    free(hdr);
}

static void write_bigann(const char *path, uint32_t rows, uint32_t cols, const void *data,
                         size_t nbytes)
{
    unsigned char hdr[8];
    le32(hdr, rows);
    le32(hdr + 4, cols);
    write_bytes(path, hdr, 8, data, nbytes);
}

/* ---------- the round trip ---------- */

static void check_reader(const char *label, const char *file, const char *dset, const tmat *m,
                         fkm_io_dtype want_dtype)
{
    fkm_error err;
    fkm_reader *r = NULL;
    fkm_dsinfo info;
    fkm_error_clear(&err);
    int st = fkm_reader_open(file, dset, &r, &info, &err);
    CHECK(st == FKM_OK && r, "%s: open: %s", label, err.msg);
    if (st) return;
    CHECK(info.n == m->n && info.d == m->d, "%s: shape %lld x %lld, want %lld x %lld", label,
          (long long)info.n, (long long)info.d, (long long)m->n, (long long)m->d);
    CHECK(info.dtype == want_dtype, "%s: dtype %d, want %d", label, info.dtype, want_dtype);

    const int64_t n = m->n, d = m->d;
    float *f = malloc((size_t)(n * d) * sizeof *f);
    unsigned char *nat = malloc((size_t)(n * d) * m->natsize);
    const int64_t sizes[] = {1, 7, 61, 0}; /* 0: the whole shard at once */
    int64_t bad32 = 0, badnat = 0, fails = 0, reads = 0;
    for (int p = 1; p <= 5; p++) {
        for (int rk = 0; rk < p; rk++) {
            int64_t row0, cnt;
            fkm_shard(n, p, rk, &row0, &cnt);
            for (int si = 0; si < 4; si++) {
                int64_t cs = sizes[si] ? sizes[si] : (cnt ? cnt : 1);
                memset(f, 0xa5, (size_t)(n * d) * sizeof *f);
                memset(nat, 0xa5, (size_t)(n * d) * m->natsize);
                for (int64_t a = row0; a < row0 + cnt; a += cs) {
                    int64_t k = row0 + cnt - a < cs ? row0 + cnt - a : cs;
                    if (fkm_reader_read_f32(r, a, k, f + a * d, &err)) fails++;
                    if (fkm_reader_read_native(r, a, k, nat + (size_t)(a * d) * m->natsize, &err))
                        fails++;
                    reads += 2;
                }
                for (int64_t i = row0 * d; i < (row0 + cnt) * d; i++) {
                    if (!same_float(f[i], m->ref32[i])) bad32++;
                    if (m->natsize == 4) { /* float32: NaN payloads may differ */
                        float a, b;
                        memcpy(&a, nat + i * 4, 4);
                        memcpy(&b, m->refnat + i * 4, 4);
                        if (!same_float(a, b)) badnat++;
                    } else if (memcmp(nat + i * 2, m->refnat + i * 2, 2)) { /* half bits */
                        badnat++;
                    }
                }
                /* nothing outside the shard was written */
                for (int64_t i = 0; i < row0 * d; i++) {
                    uint32_t w;
                    memcpy(&w, &f[i], 4);
                    if (w != 0xa5a5a5a5u) bad32++;
                }
            }
        }
    }
    CHECK(fails == 0, "%s: %lld of %lld reads failed (last: %s)", label, (long long)fails,
          (long long)reads, err.msg);
    CHECK(bad32 == 0, "%s: %lld float32 values differ", label, (long long)bad32);
    CHECK(badnat == 0, "%s: %lld native values differ", label, (long long)badnat);

    /* range errors are reported, an empty read is fine */
    CHECK(fkm_reader_read_f32(r, n - 1, 2, f, &err) == FKM_ERUNTIME, "%s: read past the end",
          label);
    CHECK(strstr(err.msg, "outside") && strstr(err.msg, file), "%s: message '%s'", label,
          err.msg);
    CHECK(fkm_reader_read_native(r, -1, 1, f, &err) == FKM_ERUNTIME, "%s: negative row", label);
    CHECK(fkm_reader_read_f32(r, 0, -1, f, &err) == FKM_ERUNTIME, "%s: negative count", label);
    CHECK(fkm_reader_read_native(r, n, 0, nat, &err) == FKM_OK, "%s: empty read", label);
    free(f);
    free(nat);
    fkm_reader_close(r);
}

static const fkm_io_dtype io_dtype_of[] = {FKM_IO_F32, FKM_IO_F16, FKM_IO_F32,
                                           FKM_IO_U8,  FKM_IO_I8,  FKM_IO_BF16};

static void test_npy(uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 11;
    const struct {
        ttype type;
        const char *descr;
    } kinds[] = {{T_F32, "<f4"}, {T_F16, "<f2"}, {T_F64, "<f8"}, {T_U8, "|u1"},
                 {T_I8, "|i1"},  {T_U8, "<u1"},  {T_I8, ">i1"}};
    int file_no = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (int major = 1; major <= 3; major++) {
            /* shapes: random, plus one row and one column */
            const int64_t shapes[3][2] = {{rnd_between(&s, 40, 900), rnd_between(&s, 2, 19)},
                                          {1, rnd_between(&s, 1, 33)},
                                          {rnd_between(&s, 5, 300), 1}};
            for (int sh = 0; sh < 3; sh++) {
                tmat m = make_mat(shapes[sh][0], shapes[sh][1], kinds[k].type, &s);
                char name[64], shape[64], label[128];
                snprintf(name, sizeof name, "a%d.npy", file_no++);
                /* Python 2 numpy wrote longs as "3L" */
                if (major == 2 && sh == 0)
                    snprintf(shape, sizeof shape, "(%lldL, %lldL)", (long long)m.n,
                             (long long)m.d);
                else
                    snprintf(shape, sizeof shape, "(%lld, %lld)", (long long)m.n, (long long)m.d);
                const char *file = t_path(name);
                write_npy(file, major, kinds[k].descr, "False", shape, NULL, m.disk,
                          (size_t)(m.n * m.d) * t_esize[m.type]);
                snprintf(label, sizeof label, "npy v%d.0 %s %lldx%lld", major, kinds[k].descr,
                         (long long)m.n, (long long)m.d);
                check_reader(label, file, "/ignored", &m, io_dtype_of[m.type]);
                free_mat(&m);
            }
        }
    }

    /* other spellings of the same header: double quotes, another key order, no trailing
     * comma, no padding to 64, upper-case extension */
    tmat m = make_mat(77, 5, T_F32, &s);
    const size_t nb = (size_t)(77 * 5 * 4);
    write_npy(t_path("q.npy"), 1, NULL, NULL, NULL,
              "{\"shape\": (77, 5), \"fortran_order\": False, \"descr\": \"<f4\"}", m.disk, nb);
    check_reader("npy double quotes, key order", t_path("q.npy"), NULL, &m, FKM_IO_F32);
    {
        const char *text = "{'descr':'<f4','fortran_order':False,'shape':(77,5)}";
        size_t tl = strlen(text);
        unsigned char hdr[128];
        memcpy(hdr, "\x93NUMPY\x01\x00", 8);
        le16(hdr + 8, (uint16_t)tl);
        memcpy(hdr + 10, text, tl);
        write_bytes(t_path("UPPER.NPY"), hdr, 10 + tl, m.disk, nb);
        check_reader("npy unpadded, .NPY", t_path("UPPER.NPY"), NULL, &m, FKM_IO_F32);
    }
    free_mat(&m);
}

static void test_bigann(uint64_t seed)
{
    uint64_t s = seed * 0xD1B54A32D192ED03ULL + 5;
    const struct {
        ttype type;
        const char *ext;
    } kinds[] = {{T_F32, "fbin"}, {T_U8, "u8bin"}, {T_I8, "i8bin"}, {T_F32, "FBin"}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (int sh = 0; sh < 3; sh++) {
            int64_t n = sh == 1 ? 1 : rnd_between(&s, 30, 1200);
            int64_t d = sh == 2 ? 1 : rnd_between(&s, 1, 129);
            tmat m = make_mat(n, d, kinds[k].type, &s);
            char name[64], label[128];
            snprintf(name, sizeof name, "b%zu_%d.%s", k, sh, kinds[k].ext);
            write_bigann(t_path(name), (uint32_t)n, (uint32_t)d, m.disk,
                         (size_t)(n * d) * t_esize[m.type]);
            snprintf(label, sizeof label, ".%s %lldx%lld", kinds[k].ext, (long long)n,
                     (long long)d);
            check_reader(label, t_path(name), NULL, &m, io_dtype_of[m.type]);
            free_mat(&m);
        }
    }
}

/* 64-bit offsets: a sparse .u8bin of 2^16 × 2^16 + ... bytes (> 4 GiB), whose last rows are
 * written at an offset beyond 2^32 and read back through a shard range. */
static void test_large_offsets(uint64_t seed)
{
    const char *file = t_path("big.u8bin");
    const uint32_t rows = 70000, cols = 65536; /* 4.59e9 bytes, mostly holes */
    const int64_t bytes = 8 + (int64_t)rows * cols;
    FILE *f = fopen(file, "wb");
    if (!f || ftruncate(fileno(f), (off_t)bytes) != 0) {
        printf("skipping the >4 GiB sparse file test: %s\n", strerror(errno));
        if (f) fclose(f);
        remove(file);
        return;
    }
    unsigned char hdr[8];
    le32(hdr, rows);
    le32(hdr + 4, cols);
    CHECK(pwrite(fileno(f), hdr, 8, 0) == 8, "header");
    const int64_t row0 = rows - 3;
    unsigned char *tail = malloc((size_t)3 * cols);
    uint64_t s = seed | 1;
    for (size_t i = 0; i < (size_t)3 * cols; i++) tail[i] = (unsigned char)t_xs_next(&s);
    CHECK(pwrite(fileno(f), tail, (size_t)3 * cols, (off_t)(8 + row0 * cols)) ==
              (ssize_t)3 * cols,
          "tail");
    fclose(f);

    fkm_error err;
    fkm_reader *r = NULL;
    fkm_dsinfo info;
    CHECK(fkm_reader_open(file, NULL, &r, &info, &err) == FKM_OK, "open big: %s", err.msg);
    if (r) {
        CHECK(info.n == rows && info.d == cols && info.dtype == FKM_IO_U8, "big: shape/dtype");
        float *x = malloc((size_t)4 * cols * sizeof *x);
        /* rows [rows-4, rows): a hole row then the three written ones */
        CHECK(fkm_reader_read_f32(r, rows - 4, 4, x, &err) == FKM_OK, "read big: %s", err.msg);
        int bad = 0;
        for (size_t j = 0; j < cols; j++) bad += x[j] != 0.0f;
        for (size_t i = 0; i < (size_t)3 * cols; i++) bad += x[cols + i] != (float)tail[i];
        CHECK(bad == 0, "big: %d values differ beyond 4 GiB", bad);
        free(x);
        fkm_reader_close(r);
    }
    free(tail);
    remove(file);
}

/* ---------- HDF5 int8, uint8, bfloat16 ---------- */

static void put(hid_t file, const char *name, const tmat *m, hid_t ftype, hid_t mtype,
                const void *buf, const hsize_t *chunk)
{
    hsize_t dims[2] = {(hsize_t)m->n, (hsize_t)m->d};
    hid_t space = H5Screate_simple(2, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (chunk) { /* a chunk may not exceed a fixed dimension */
        hsize_t c[2] = {chunk[0] < dims[0] ? chunk[0] : dims[0],
                        chunk[1] < dims[1] ? chunk[1] : dims[1]};
        H5Pset_chunk(dcpl, 2, c);
    }
    hid_t ds = H5Dcreate2(file, name, ftype, space, lcpl, dcpl, H5P_DEFAULT);
    CHECK(ds >= 0, "create %s", name);
    CHECK(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, "write %s", name);
    H5Dclose(ds);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
}

/* attribute dtype on a dataset: a string (variable or fixed length; UTF-8 as h5py writes
 * them when utf8), or an int when str is NULL */
static void put_dtype_attr(hid_t file, const char *dset, const char *str, int vlen, int utf8)
{
    hid_t ds = H5Dopen2(file, dset, H5P_DEFAULT), sp = H5Screate(H5S_SCALAR), t, a;
    if (!str) {
        int v = 16;
        a = H5Acreate2(ds, "dtype", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT, &v);
    } else {
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, vlen ? H5T_VARIABLE : strlen(str));
        if (!vlen) H5Tset_strpad(t, H5T_STR_NULLPAD); /* as h5py writes fixed strings */
        if (utf8) H5Tset_cset(t, H5T_CSET_UTF8);
        a = H5Acreate2(ds, "dtype", t, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, vlen ? (const void *)&str : (const void *)str);
        H5Tclose(t);
    }
    CHECK(a >= 0, "attribute on %s", dset);
    H5Aclose(a);
    H5Sclose(sp);
    H5Dclose(ds);
}

static void test_hdf5_types(uint64_t seed)
{
    uint64_t s = seed * 0xA24BAED4963EE407ULL + 3;
    const char *file = t_path("types.h5");
    hid_t fid = H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(fid >= 0, "create %s", file);

    tmat u8 = make_mat(rnd_between(&s, 100, 1500), rnd_between(&s, 1, 20), T_U8, &s);
    tmat i8 = make_mat(rnd_between(&s, 100, 1500), rnd_between(&s, 1, 20), T_I8, &s);
    tmat bf = make_mat(rnd_between(&s, 100, 1500), rnd_between(&s, 1, 20), T_BF16, &s);
    hsize_t ch[2] = {13, 3};
    put(fid, "/u8", &u8, H5T_STD_U8LE, H5T_NATIVE_UCHAR, u8.disk, ch);
    put(fid, "/i8", &i8, H5T_STD_I8LE, H5T_NATIVE_SCHAR, i8.disk, NULL);
    /* bfloat16 bits as uint16, little- and big-endian on disk, chunked and contiguous */
    uint16_t *bits = malloc((size_t)(bf.n * bf.d) * 2);
    for (int64_t i = 0; i < bf.n * bf.d; i++)
        bits[i] = (uint16_t)(bf.disk[2 * i] | bf.disk[2 * i + 1] << 8);
    put(fid, "/bf16", &bf, H5T_STD_U16LE, H5T_NATIVE_UINT16, bits, ch);
    put(fid, "/g/bf16_be", &bf, H5T_STD_U16BE, H5T_NATIVE_UINT16, bits, NULL);
    put(fid, "/bf16_utf8", &bf, H5T_STD_U16LE, H5T_NATIVE_UINT16, bits, NULL);
    put_dtype_attr(fid, "/bf16", "bfloat16", 1, 0);
    put_dtype_attr(fid, "/g/bf16_be", "bfloat16", 0, 0);
    put_dtype_attr(fid, "/bf16_utf8", "bfloat16", 1, 1);
    /* malformed bfloat16 markings */
    put(fid, "/u16", &bf, H5T_STD_U16LE, H5T_NATIVE_UINT16, bits, NULL);
    put(fid, "/u16_f16", &bf, H5T_STD_U16LE, H5T_NATIVE_UINT16, bits, NULL);
    put_dtype_attr(fid, "/u16_f16", "float16", 0, 1);
    put(fid, "/i16_bf", &bf, H5T_STD_I16LE, H5T_NATIVE_UINT16, bits, NULL);
    put_dtype_attr(fid, "/i16_bf", "bfloat16", 1, 0);
    put(fid, "/u16_int", &bf, H5T_STD_U16LE, H5T_NATIVE_UINT16, bits, NULL);
    put_dtype_attr(fid, "/u16_int", NULL, 0, 0);
    H5Fclose(fid);

    check_reader("hdf5 uint8 chunked", file, "/u8", &u8, FKM_IO_U8);
    check_reader("hdf5 int8", file, "i8", &i8, FKM_IO_I8);
    check_reader("hdf5 bfloat16 LE vlen attr", file, "/bf16", &bf, FKM_IO_BF16);
    check_reader("hdf5 bfloat16 BE fixed attr", file, "/g/bf16_be", &bf, FKM_IO_BF16);
    check_reader("hdf5 bfloat16 UTF-8 vlen attr", file, "/bf16_utf8", &bf, FKM_IO_BF16);

    /* fkm_load_matrix from every new type too */
    float *c = NULL;
    fkm_error err;
    CHECK(fkm_load_matrix(file, "/bf16", 0, 0, &c, &err) == FKM_EINPUT || c,
          "load bf16: %s", err.msg); /* random bits hold inf/NaN: a clean rejection is fine */
    free(c);
    c = NULL;
    CHECK(fkm_load_matrix(file, "/i8", i8.n, i8.d, &c, &err) == FKM_OK && c, "load i8: %s",
          err.msg);
    if (c) CHECK(memcmp(c, i8.ref32, (size_t)(i8.n * i8.d) * 4) == 0, "load i8 values");
    free(c);

    free(bits);
    free_mat(&u8);
    free_mat(&i8);
    free_mat(&bf);
}

/* ---------- errors ---------- */

static void expect_open_error(const char *file, const char *phrase)
{
    fkm_error err;
    fkm_reader *r = (fkm_reader *)&err; /* must be reset to NULL */
    fkm_dsinfo info;
    fkm_error_clear(&err);
    int st = fkm_reader_open(file, NULL, &r, &info, &err);
    CHECK(st == FKM_EINPUT, "%s: status %d, want FKM_EINPUT (%s)", file, st, err.msg);
    CHECK(err.status == FKM_EINPUT, "%s: err.status %d", file, err.status);
    CHECK(r == NULL, "%s: reader not NULL on error", file);
    CHECK(strstr(err.msg, file) != NULL, "message '%s' does not name '%s'", err.msg, file);
    CHECK(strstr(err.msg, phrase) != NULL, "message '%s' lacks '%s'", err.msg, phrase);
    CHECK(strchr(err.msg, '\n') == NULL && strchr(err.msg, '\r') == NULL,
          "message '%s' is not one line", err.msg);
    if (st == FKM_OK) fkm_reader_close(r);
}

static void expect_h5_error(const char *file, const char *dset, const char *phrase)
{
    fkm_error err;
    fkm_reader *r = NULL;
    int st = fkm_reader_open(file, dset, &r, NULL, &err);
    CHECK(st == FKM_EINPUT && !r, "%s:%s: status %d (%s)", file, dset, st, err.msg);
    CHECK(strstr(err.msg, file) && strstr(err.msg, dset) && strstr(err.msg, phrase),
          "%s: message '%s' lacks '%s'", dset, err.msg, phrase);
    if (r) fkm_reader_close(r);
}

/* write a .npy with the usual header and `nbytes` of data */
static const char *npy_case(const char *name, int major, const char *descr, const char *fortran,
                            const char *shape, size_t nbytes)
{
    const char *file = t_path(name);
    unsigned char *data = calloc(1, nbytes + 1);
    write_npy(file, major, descr, fortran, shape, NULL, data, nbytes);
    free(data);
    return file;
}

static const char *npy_dict(const char *name, const char *dict, size_t nbytes)
{
    const char *file = t_path(name);
    unsigned char *data = calloc(1, nbytes + 1);
    write_npy(file, 1, NULL, NULL, NULL, dict, data, nbytes);
    free(data);
    return file;
}

static void test_npy_errors(void)
{
    /* the contract's cases */
    expect_open_error(npy_case("fortran.npy", 1, "<f4", "True", "(10, 4)", 160),
                      "Fortran-order arrays are not supported");
    expect_open_error(npy_case("be.npy", 1, ">f4", "False", "(10, 4)", 160),
                      "big-endian arrays are not supported");
    expect_open_error(npy_case("be8.npy", 2, ">f8", "False", "(10, 4)", 320), "big-endian");
    expect_open_error(npy_case("be2.npy", 3, ">f2", "False", "(10, 4)", 80), "big-endian");
    expect_open_error(npy_case("one.npy", 1, "<f4", "False", "(10,)", 40),
                      "array is 1-D (shape (10,)), expected 2-D");
    expect_open_error(npy_case("three.npy", 1, "<f4", "False", "(2, 3, 4)", 96),
                      "array is 3-D (shape (2, 3, 4)), expected 2-D");
    expect_open_error(npy_case("zero_d.npy", 1, "<f4", "False", "()", 4), "is 0-D");
    expect_open_error(npy_case("obj.npy", 1, "|O", "False", "(3, 2)", 48),
                      "object arrays are not supported");
    expect_open_error(npy_dict("struct.npy", "{'descr': [('a', '<f4'), ('b', '<f4')], "
                                             "'fortran_order': False, 'shape': (3, 2), }",
                               48),
                      "structured");
    expect_open_error(npy_case("i4.npy", 1, "<i4", "False", "(3, 2)", 24),
                      "dtype '<i4' is not supported");
    expect_open_error(npy_case("c8.npy", 1, "<c8", "False", "(3, 2)", 48), "not supported");
    expect_open_error(npy_case("u2.npy", 1, "<u2", "False", "(3, 2)", 12), "not supported");
    expect_open_error(npy_case("rows0.npy", 1, "<f4", "False", "(0, 4)", 0), "has 0 rows");
    expect_open_error(npy_case("cols0.npy", 1, "<f4", "False", "(4, 0)", 0), "has 0 columns");
    /* the data does not match the header */
    expect_open_error(npy_case("short.npy", 1, "<f4", "False", "(10, 4)", 159), "(truncated?)");
    expect_open_error(npy_case("long.npy", 1, "<f4", "False", "(10, 4)", 161), "trailing bytes");
    expect_open_error(npy_case("none.npy", 2, "<f2", "False", "(10, 4)", 0),
                      "header says 128 + 10×4×2 = 208");
    expect_open_error(npy_case("overflow.npy", 1, "<f8", "False",
                               "(4294967296, 4294967296)", 8),
                      "more than a file can hold");
    expect_open_error(npy_case("overflow2.npy", 1, "<f4", "False",
                               "(99999999999999999999, 2)", 8),
                      "larger than 2^63");
    expect_open_error(npy_case("neg.npy", 1, "<f4", "False", "(-3, 2)", 24),
                      "non-negative integer");
    expect_open_error(npy_case("paren.npy", 1, "<f4", "False", "(6)", 24), "must be a tuple");
    expect_open_error(npy_case("list.npy", 1, "<f4", "False", "[3, 2]", 24), "must be a tuple");
    expect_open_error(npy_case("fo.npy", 1, "<f4", "0", "(3, 2)", 24), "True or False");
    /* malformed headers */
    expect_open_error(npy_dict("nodescr.npy", "{'fortran_order': False, 'shape': (3, 2)}", 24),
                      "key 'descr' missing");
    expect_open_error(npy_dict("twice.npy",
                               "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
                               "'shape': (3, 2)}",
                               24),
                      "given twice");
    expect_open_error(npy_dict("extra.npy",
                               "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), "
                               "'colour': 'red'}",
                               24),
                      "unexpected key 'colour'");
    expect_open_error(npy_dict("nodict.npy", "['descr', '<f4']", 24), "malformed .npy header");
    expect_open_error(npy_dict("unterm.npy", "{'descr': '<f4, 'fortran_order': False}", 24),
                      "malformed .npy header");
    expect_open_error(npy_dict("after.npy",
                               "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2)} x",
                               24),
                      "after the closing");
    expect_open_error(npy_dict("ctrl.npy",
                               "{'descr': '<f\r4', 'fortran_order': False, 'shape': (3, 2)}", 24),
                      "control character");

    /* broken prefixes */
    unsigned char pre[16] = "\x93NUMPY\x01\x00";
    write_bytes(t_path("empty.npy"), NULL, 0, NULL, 0);
    expect_open_error(t_path("empty.npy"), "file is 0 bytes, too short for a .npy header");
    write_bytes(t_path("nine.npy"), pre, 9, NULL, 0);
    expect_open_error(t_path("nine.npy"), "too short");
    static const char zip[] = "PK\x03\x04 this is a zip";
    write_bytes(t_path("magic.npy"), zip, sizeof zip - 1, NULL, 0);
    expect_open_error(t_path("magic.npy"), "not a NumPy .npy file");
    memcpy(pre, "\x93NUMPY\x04\x00", 8);
    le16(pre + 8, 4);
    write_bytes(t_path("v4.npy"), pre, 10, "{}  ", 4);
    expect_open_error(t_path("v4.npy"), "version 4.0 is not supported");
    memcpy(pre, "\x93NUMPY\x01\x00", 8);
    le16(pre + 8, 500); /* header longer than the file */
    write_bytes(t_path("hlie.npy"), pre, 10, "{'descr': '<f4'}", 16);
    expect_open_error(t_path("hlie.npy"), "header says it is 10 + 500 bytes");
    memcpy(pre, "\x93NUMPY\x02\x00", 8);
    le32(pre + 8, 0xfffffff0u); /* absurd v2 header length */
    write_bytes(t_path("hbig.npy"), pre, 12, "{}", 2);
    expect_open_error(t_path("hbig.npy"), "over the");
    memcpy(pre, "\x93NUMPY\x02\x00", 8);
    write_bytes(t_path("v2short.npy"), pre, 11, NULL, 0); /* 11 bytes: no room for the length */
    expect_open_error(t_path("v2short.npy"), "too short for its header");

    /* not a file */
    expect_open_error(t_path("missing.npy"), "no such file");
    mkdir(t_path("dir.npy"), 0700);
    expect_open_error(t_path("dir.npy"), "is a directory");
    /* a .npy under another name: the HDF5 reader says what it is */
    npy_case("looks.h5", 1, "<f4", "False", "(2, 2)", 16);
    expect_open_error(t_path("looks.h5"), "name it with the .npy extension");
}

static void test_bigann_errors(void)
{
    unsigned char junk[2000];
    memset(junk, 0x3c, sizeof junk);
    /* the size check, with the message of the contract */
    write_bigann(t_path("x.fbin"), 10, 4, junk, 1000 - 8);
    expect_open_error(t_path("x.fbin"), "file is 1000 bytes, header says 8 + 10×4×4 = 168");
    write_bigann(t_path("short.fbin"), 10, 4, junk, 159);
    expect_open_error(t_path("short.fbin"), "file is 167 bytes, header says 8 + 10×4×4 = 168");
    write_bigann(t_path("short.u8bin"), 10, 4, junk, 39);
    expect_open_error(t_path("short.u8bin"), "header says 8 + 10×4×1 = 48");
    write_bigann(t_path("long.i8bin"), 10, 4, junk, 41);
    expect_open_error(t_path("long.i8bin"), "file is 49 bytes");
    /* a .u8bin's data named .fbin is too short by 4x */
    write_bigann(t_path("kind.fbin"), 10, 4, junk, 40);
    expect_open_error(t_path("kind.fbin"), "truncated");
    write_bigann(t_path("rows0.fbin"), 0, 4, NULL, 0);
    expect_open_error(t_path("rows0.fbin"), "has 0 rows");
    write_bigann(t_path("cols0.u8bin"), 10, 0, NULL, 0);
    expect_open_error(t_path("cols0.u8bin"), "has 0 columns");
    write_bigann(t_path("both0.i8bin"), 0, 0, NULL, 0);
    expect_open_error(t_path("both0.i8bin"), "has 0 rows");
    write_bigann(t_path("ovf.fbin"), 0xffffffffu, 0xffffffffu, junk, 16);
    expect_open_error(t_path("ovf.fbin"), "more than a file can hold");
    /* (2^32-1)×(2^31-1) bytes fits in 64 bits: then it is the size check that speaks */
    write_bigann(t_path("huge.u8bin"), 0xffffffffu, 0x7fffffffu, junk, 16);
    expect_open_error(t_path("huge.u8bin"),
                      "file is 24 bytes, header says 8 + 4294967295×2147483647×1 = "
                      "9223372030412324873");
    write_bytes(t_path("tiny.fbin"), junk, 5, NULL, 0);
    expect_open_error(t_path("tiny.fbin"), "file is 5 bytes, shorter than the 8-byte .fbin header");
    write_bytes(t_path("empty.i8bin"), NULL, 0, NULL, 0);
    expect_open_error(t_path("empty.i8bin"), "file is 0 bytes");
    expect_open_error(t_path("missing.u8bin"), "no such file");
    mkdir(t_path("dir.fbin"), 0700);
    expect_open_error(t_path("dir.fbin"), "is a directory");
}

static void test_hdf5_type_errors(void)
{
    const char *file = t_path("types.h5");
    expect_h5_error(file, "/u16", "if it holds bfloat16 bits, add the attribute dtype");
    expect_h5_error(file, "/u16_f16", "dtype = \"float16\"; only \"bfloat16\" is understood");
    expect_h5_error(file, "/i16_bf", "stored as int16");
    expect_h5_error(file, "/u16_int", "is not one string");
}

/* A file truncated after it was opened: the read fails (short read), it does not invent
 * data. */
static void test_truncated_after_open(uint64_t seed)
{
    uint64_t s = seed + 99;
    tmat m = make_mat(100, 8, T_F32, &s);
    tmat q = make_mat(100, 8, T_U8, &s);
    const char *ff = t_path("shrink.fbin"), *fn = t_path("shrink.npy");
    write_bigann(ff, 100, 8, m.disk, 3200);
    write_npy(fn, 1, "|u1", "False", "(100, 8)", NULL, q.disk, 800);
    const char *files[] = {ff, fn};
    for (int i = 0; i < 2; i++) {
        fkm_error err;
        fkm_reader *r = NULL;
        float x[800];
        CHECK(fkm_reader_open(files[i], NULL, &r, NULL, &err) == FKM_OK, "open: %s", err.msg);
        if (!r) continue;
        CHECK(truncate(files[i], 500) == 0, "truncate");
        CHECK(fkm_reader_read_f32(r, 0, 4, x, &err) == FKM_OK, "rows before the cut: %s",
              err.msg);
        int st = fkm_reader_read_f32(r, 90, 10, x, &err);
        CHECK(st == FKM_ERUNTIME && strstr(err.msg, files[i]) && strstr(err.msg, "file ended"),
              "short read: %d '%s'", st, err.msg);
        st = fkm_reader_read_native(r, 50, 50, x, &err);
        CHECK(st == FKM_ERUNTIME, "short native read: %d '%s'", st, err.msg);
        fkm_reader_close(r);
    }
    free_mat(&m);
    free_mat(&q);
}

/* ---------- fkm info and init files ---------- */

static void capture_info(const char *file, char *text, size_t len, int *st, fkm_error *err)
{
    const char *cap = t_path("info.txt");
    fflush(stdout);
    int saved = dup(fileno(stdout));
    FILE *fp = fopen(cap, "w");
    dup2(fileno(fp), fileno(stdout));
    *st = fkm_info(file, err);
    fflush(stdout);
    dup2(saved, fileno(stdout));
    close(saved);
    fclose(fp);
    fp = fopen(cap, "r");
    size_t got = fread(text, 1, len - 1, fp);
    text[got] = '\0';
    fclose(fp);
}

static void test_info_and_init(uint64_t seed)
{
    uint64_t s = seed + 7;
    char text[4096], want[512];
    fkm_error err;
    int st;
    tmat m = make_mat(6, 3, T_F64, &s);
    const char *f64 = t_path("info.npy");
    write_npy(f64, 2, "<f8", "False", "(6, 3)", NULL, m.disk, 6 * 3 * 8);
    capture_info(f64, text, sizeof text, &st, &err);
    snprintf(want, sizeof want, "%s  shape 6 x 3  float64  npy v2.0\n", f64);
    CHECK(st == FKM_OK && strcmp(text, want) == 0, "info npy: %d '%s' (%s)", st, text, err.msg);

    tmat u = make_mat(9, 4, T_U8, &s);
    const char *ub = t_path("info.u8bin");
    write_bigann(ub, 9, 4, u.disk, 36);
    capture_info(ub, text, sizeof text, &st, &err);
    snprintf(want, sizeof want, "%s  shape 9 x 4  uint8  u8bin\n", ub);
    CHECK(st == FKM_OK && strcmp(text, want) == 0, "info u8bin: %d '%s' (%s)", st, text, err.msg);

    capture_info(t_path("fortran.npy"), text, sizeof text, &st, &err);
    CHECK(st == FKM_EINPUT && strstr(err.msg, "Fortran") && text[0] == '\0', "info bad npy: '%s'",
          err.msg);
    capture_info(t_path("types.h5"), text, sizeof text, &st, &err);
    CHECK(st == FKM_OK && strstr(text, "/bf16  shape") && strstr(text, "bfloat16 (uint16 bits)") &&
              strstr(text, "/u8  shape") && strstr(text, "uint8") && strstr(text, "int8"),
          "info h5 new types: %d '%s'", st, text);

    /* init matrices from .npy and .fbin; the dataset argument is ignored */
    float *c = NULL;
    CHECK(fkm_load_matrix(f64, "/centroids", 6, 3, &c, &err) == FKM_OK && c, "init npy: %s",
          err.msg);
    if (c) CHECK(memcmp(c, m.ref32, sizeof(float) * 18) == 0, "init npy values");
    free(c);
    c = NULL;
    st = fkm_load_matrix(f64, NULL, 6, 4, &c, &err);
    CHECK(st == FKM_EINPUT && !c && strstr(err.msg, "init '") &&
              strstr(err.msg, "info.npy': has 3 columns, data has 4"),
          "init npy wrong d: '%s'", err.msg);
    tmat ff = make_mat(5, 2, T_F32, &s);
    ff.ref32[7] = INFINITY;
    le32(ff.disk + 28, 0x7f800000u);
    write_bigann(t_path("init.fbin"), 5, 2, ff.disk, 40);
    st = fkm_load_matrix(t_path("init.fbin"), NULL, 0, 2, &c, &err);
    CHECK(st == FKM_EINPUT && !c && strstr(err.msg, "init.fbin': row 3 column 1 is inf"),
          "init fbin inf: '%s'", err.msg);
    st = fkm_load_matrix(t_path("fortran.npy"), NULL, 0, 0, &c, &err);
    CHECK(st == FKM_EINPUT && strstr(err.msg, "init '") && strstr(err.msg, "Fortran"),
          "init fortran: '%s'", err.msg);
    free_mat(&m);
    free_mat(&u);
    free_mat(&ff);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

int main(void)
{
    uint64_t seed = t_seed();
    const uint16_t one = 1;
    if (*(const unsigned char *)&one != 1) {
        printf("test_formats: skipped on a big-endian host (expected values assume LE)\n");
        return SKIP_CODE;
    }
    snprintf(t_dir, sizeof t_dir, "/tmp/fkm_test_formats.XXXXXX");
    if (!mkdtemp(t_dir)) {
        perror("mkdtemp");
        return 1;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    test_npy(seed);
    test_bigann(seed);
    test_large_offsets(seed);
    test_hdf5_types(seed);
    test_npy_errors();
    test_bigann_errors();
    test_hdf5_type_errors();
    test_truncated_after_open(seed);
    test_info_and_init(seed);
    ssize_t open_ids = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    CHECK(open_ids == 0, "%zd HDF5 objects still open", open_ids);
    nftw(t_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return t_finish("test_formats");
}
