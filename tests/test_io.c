/* io/ tests: the HDF5 reader over many shard and chunk boundaries (float32, float16 and
 * float64, both byte orders, chunked and contiguous, non-root paths), its input errors, the
 * half conversions, fkm_load_matrix, fkm_gen, the output writers and fkm_info.
 * Files are written here with the raw HDF5 API into a fresh temporary directory. */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, fileno */
#include "half.h"
#include "io.h"
#include "io_internal.h"
#include "rng.h"
#include "test_util.h"
#include "util.h"

#include <ftw.h>
#include <hdf5.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* ---------- independent half reference and HDF5 helpers ---------- */

/* IEEE half by the textbook formula (double arithmetic, no bit tricks). */
static double ref_half(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, -24);
    else
        v = ldexp(1.0 + m / 1024.0, e - 15);
    return sign ? -v : v;
}

/* A half type as the brief's recipe: copy of a 32-bit IEEE float type, then narrowed. */
static hid_t half_type(int big_endian)
{
    hid_t t = H5Tcopy(big_endian ? H5T_IEEE_F32BE : H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
}

/* Write a dataset (creating intermediate groups) into an open file. chunk may be NULL. */
static void put(hid_t file, const char *name, int rank, const hsize_t *dims, hid_t ftype,
                hid_t mtype, const void *buf, const hsize_t *chunk)
{
    hid_t space = rank < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (chunk) H5Pset_chunk(dcpl, rank, chunk);
    hid_t d = H5Dcreate2(file, name, ftype, space, lcpl, dcpl, H5P_DEFAULT);
    CHECK(d >= 0, "create %s", name);
    if (buf) CHECK(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, "write %s", name);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(space);
}

static int same_float(float a, float b)
{ /* bit-equal, or both NaN (payloads may differ between converters) */
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* ---------- half conversions ---------- */

static void test_half(uint64_t seed)
{
    /* half -> float: all 65536 patterns against the formula and against HDF5's converter */
    static uint16_t hb[65536];
    static float hf[65536];
    for (int i = 0; i < 65536; i++) hb[i] = (uint16_t)i;
    memcpy(hf, hb, sizeof hb); /* H5Tconvert works in place in a buffer of the larger size */
    hid_t ht = half_type(0);
    CHECK(H5Tconvert(ht, H5T_NATIVE_FLOAT, 65536, hf, NULL, H5P_DEFAULT) >= 0, "H5Tconvert");
    int bad = 0, bad_h5 = 0;
    for (int i = 0; i < 65536; i++) {
        float f = fkm_half_to_float((uint16_t)i);
        double r = ref_half((uint16_t)i);
        if (!(isnan(r) ? isnan(f) : ((double)f == r && !!signbit(f) == !!signbit(r)))) bad++;
        if (!same_float(f, hf[i])) bad_h5++;
    }
    CHECK(bad == 0, "%d half patterns differ from the formula", bad);
    CHECK(bad_h5 == 0, "%d half patterns differ from HDF5's conversion", bad_h5);
    H5Tclose(ht);

    /* float -> half: round trip of every non-NaN half, and ties to even at every midpoint */
    int rt = 0, tie = 0, near = 0;
    for (int i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        if (((h >> 10) & 31) == 31 && (h & 1023)) continue; /* NaN */
        if (fkm_float_to_half(fkm_half_to_float(h)) != h) rt++;
        if ((h & 0x7fff) >= 0x7c00) continue; /* inf has no upper neighbour */
        uint16_t up = (uint16_t)(h + 1); /* next magnitude, same sign */
        double a = ref_half(h), b = ref_half(up);
        if ((up & 0x7fff) == 0x7c00) b = copysign(65536.0, a); /* where inf begins */
        double mid = 0.5 * (a + b);
        float fm = (float)mid; /* exact: 12 significant bits */
        uint16_t even = (h & 1) ? up : h;
        if ((up & 0x7fff) == 0x7c00) even = up; /* 65520 rounds to inf */
        if (fkm_float_to_half(fm) != even) tie++;
        /* just below / above the midpoint */
        if (fkm_float_to_half(nextafterf(fm, 0.0f)) != h) near++;
        if (fkm_float_to_half(nextafterf(fm, signbit(fm) ? -INFINITY : INFINITY)) != up) near++;
    }
    CHECK(rt == 0, "%d halves do not survive half->float->half", rt);
    CHECK(tie == 0, "%d midpoints not rounded to even", tie);
    CHECK(near == 0, "%d near-midpoint values rounded the wrong way", near);
    CHECK(fkm_float_to_half(65519.99f) == 0x7bff, "65519.99 -> %04x", fkm_float_to_half(65519.99f));
    CHECK(fkm_float_to_half(65520.0f) == 0x7c00, "65520 -> inf");
    CHECK(fkm_float_to_half(-1e30f) == 0xfc00, "-1e30 -> -inf");
    CHECK(fkm_float_to_half(INFINITY) == 0x7c00, "inf");
    CHECK(fkm_float_to_half(1e-30f) == 0 && fkm_float_to_half(-1e-30f) == 0x8000, "tiny -> ±0");
    uint16_t hn = fkm_float_to_half(NAN);
    CHECK(((hn >> 10) & 31) == 31 && (hn & 1023), "NaN -> %04x", hn);

    /* random floats over the whole range: nearest half (no neighbour closer) */
    uint64_t s = seed | 1;
    int far = 0;
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = (uint32_t)t_xs_next(&s);
        float f;
        memcpy(&f, &bits, 4);
        if (!isfinite(f) || fabsf(f) >= 65504.0f) continue;
        uint16_t h = fkm_float_to_half(f);
        double e = fabs((double)f - ref_half(h));
        for (int dlt = -1; dlt <= 1; dlt += 2) {
            uint16_t o = (uint16_t)(h + dlt);
            if ((o & 0x7fff) > 0x7bff || ((o ^ h) & 0x8000)) continue; /* left the finite range */
            if (fabs((double)f - ref_half(o)) < e) far++;
        }
    }
    CHECK(far == 0, "%d random floats not rounded to the nearest half", far);
}

/* ---------- reader round trips ---------- */

typedef struct {
    const char *label, *file, *dset;
    int64_t n, d;
    fkm_io_dtype dtype;
    int chunked;
    int64_t chunk[2];
    float *ref32; /* expected read_f32 */
    void *refnat; /* expected read_native */
    size_t natsize; /* bytes per native element */
} rcase;

static void check_reader(const rcase *c)
{
    fkm_error err;
    fkm_reader *r = NULL;
    fkm_dsinfo info;
    fkm_error_clear(&err);
    int st = fkm_reader_open(c->file, c->dset, &r, &info, &err);
    CHECK(st == FKM_OK && r, "%s: open: %s", c->label, err.msg);
    if (st) return;
    CHECK(info.n == c->n && info.d == c->d, "%s: shape %lld x %lld", c->label, (long long)info.n,
          (long long)info.d);
    CHECK(info.dtype == c->dtype, "%s: dtype %d", c->label, info.dtype);
    CHECK(info.chunked == c->chunked, "%s: chunked %d", c->label, info.chunked);
    if (c->chunked)
        CHECK(info.chunk[0] == c->chunk[0] && info.chunk[1] == c->chunk[1], "%s: chunk %lld x %lld",
              c->label, (long long)info.chunk[0], (long long)info.chunk[1]);

    const int64_t d = c->d;
    float *f = malloc((size_t)(c->n * d) * sizeof *f);
    unsigned char *nat = malloc((size_t)(c->n * d) * c->natsize);
    const int64_t sizes[] = {7, 61, 257, 0}; /* 0: the whole shard at once */
    int bad32 = 0, badnat = 0, fails = 0;
    for (int p = 1; p <= 5; p++) {
        for (int rk = 0; rk < p; rk++) {
            int64_t row0, cnt;
            fkm_shard(c->n, p, rk, &row0, &cnt);
            for (int si = 0; si < 4; si++) {
                int64_t cs = sizes[si] ? sizes[si] : (cnt ? cnt : 1);
                memset(f, 0xa5, (size_t)(c->n * d) * sizeof *f);
                memset(nat, 0xa5, (size_t)(c->n * d) * c->natsize);
                for (int64_t a = row0; a < row0 + cnt; a += cs) {
                    int64_t m = row0 + cnt - a < cs ? row0 + cnt - a : cs;
                    if (fkm_reader_read_f32(r, a, m, f + a * d, &err)) fails++;
                    if (fkm_reader_read_native(r, a, m, nat + (size_t)(a * d) * c->natsize, &err))
                        fails++;
                }
                for (int64_t i = row0 * d; i < (row0 + cnt) * d; i++) {
                    if (!same_float(f[i], c->ref32[i])) bad32++;
                    if (memcmp(nat + i * c->natsize, (unsigned char *)c->refnat + i * c->natsize,
                               c->natsize))
                        badnat++;
                }
            }
        }
    }
    CHECK(fails == 0, "%s: %d reads failed (last: %s)", c->label, fails, err.msg);
    CHECK(bad32 == 0, "%s: %d float32 values differ", c->label, bad32);
    CHECK(badnat == 0, "%s: %d native values differ", c->label, badnat);

    /* range errors are reported, an empty read is fine */
    CHECK(fkm_reader_read_f32(r, c->n - 1, 2, f, &err) == FKM_ERUNTIME, "%s: read past the end",
          c->label);
    CHECK(strstr(err.msg, "outside") != NULL, "%s: message '%s'", c->label, err.msg);
    CHECK(fkm_reader_read_f32(r, -1, 1, f, &err) != FKM_OK, "%s: negative row", c->label);
    CHECK(fkm_reader_read_native(r, c->n, 0, nat, &err) == FKM_OK, "%s: empty read", c->label);
    free(f);
    free(nat);
    fkm_reader_close(r);
}

static void test_reader(uint64_t seed)
{
    const char *file = t_path("read.h5");
    hid_t fid = H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(fid >= 0, "create %s", file);
    hid_t hle = half_type(0), hbe = half_type(1);
    uint64_t s = seed * 31 + 7;

    /* float32: values of every magnitude (uniform × random powers of two) */
    int64_t n1 = 1003, d1 = 13;
    float *a = t_uniform(n1, d1, seed);
    for (int64_t i = 0; i < n1 * d1; i++) a[i] = ldexpf(a[i], (int)(t_xs_next(&s) % 60) - 30);
    hsize_t dims1[2] = {(hsize_t)n1, (hsize_t)d1}, ch1[2] = {37, 5};
    put(fid, "/group/sub/emb", 2, dims1, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, a, ch1);
    put(fid, "/be32", 2, dims1, H5T_IEEE_F32BE, H5T_NATIVE_FLOAT, a, ch1);

    int64_t n2 = 517, d2 = 8;
    float *b = t_uniform(n2, d2, seed + 1);
    hsize_t dims2[2] = {(hsize_t)n2, (hsize_t)d2};
    put(fid, "/data", 2, dims2, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, b, NULL);

    /* float16: random bit patterns (subnormals, ±0, some ±inf and NaN included) */
    int64_t n3 = 777, d3 = 9;
    uint16_t *h = malloc((size_t)(n3 * d3) * sizeof *h);
    for (int64_t i = 0; i < n3 * d3; i++) h[i] = (uint16_t)t_xs_next(&s);
    hsize_t dims3[2] = {(hsize_t)n3, (hsize_t)d3}, ch3[2] = {11, 4};
    put(fid, "/a/b/half", 2, dims3, hle, hle, h, ch3);
    put(fid, "/a/b/half_be", 2, dims3, hbe, hle, h, NULL); /* HDF5 swaps the bytes on disk */
    float *h32 = malloc((size_t)(n3 * d3) * sizeof *h32);
    for (int64_t i = 0; i < n3 * d3; i++) h32[i] = (float)ref_half(h[i]);

    /* float64: converted to float32 by the reader; native is float32 too */
    int64_t n4 = 301, d4 = 5;
    double *c = malloc((size_t)(n4 * d4) * sizeof *c);
    float *c32 = malloc((size_t)(n4 * d4) * sizeof *c32);
    for (int64_t i = 0; i < n4 * d4; i++) {
        c[i] = ((double)(t_xs_next(&s) >> 11) / 9007199254740992.0 - 0.5) * 1e3;
        c32[i] = (float)c[i];
    }
    hsize_t dims4[2] = {(hsize_t)n4, (hsize_t)d4}, ch4[2] = {3, 5};
    put(fid, "/f64", 2, dims4, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, c, ch4);
    H5Fclose(fid);

    /* the half reference must also agree with HDF5's own reading of the file as float */
    fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    float *hh5 = malloc((size_t)(n3 * d3) * sizeof *hh5);
    hid_t ds = H5Dopen2(fid, "/a/b/half_be", H5P_DEFAULT);
    CHECK(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, hh5) >= 0, "H5Dread half");
    int diff = 0;
    for (int64_t i = 0; i < n3 * d3; i++) diff += !same_float(hh5[i], h32[i]);
    CHECK(diff == 0, "%d halves: the test's reference differs from HDF5's conversion", diff);
    H5Dclose(ds);
    H5Fclose(fid);

    rcase cases[] = {
        {"f32 chunked /group/sub/emb",
         file,
         "/group/sub/emb",
         n1,
         d1,
         FKM_IO_F32,
         1,
         {37, 5},
         a,
         a,
         4},
        {"f32 big-endian", file, "be32", n1, d1, FKM_IO_F32, 1, {37, 5}, a, a, 4},
        {"f32 contiguous /data", file, NULL, n2, d2, FKM_IO_F32, 0, {0, 0}, b, b, 4},
        {"f16 chunked", file, "/a/b/half", n3, d3, FKM_IO_F16, 1, {11, 4}, h32, h, 2},
        {"f16 big-endian contiguous",
         file,
         "/a/b/half_be",
         n3,
         d3,
         FKM_IO_F16,
         0,
         {0, 0},
         h32,
         h,
         2},
        {"f64 chunked", file, "/f64", n4, d4, FKM_IO_F32, 1, {3, 5}, c32, c32, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_reader(&cases[i]);

    H5Tclose(hle);
    H5Tclose(hbe);
    free(a);
    free(b);
    free(h);
    free(h32);
    free(hh5);
    free(c);
    free(c32);
}

/* ---------- input errors ---------- */

static void expect_open_error(const char *file, const char *dset, const char *phrase)
{
    fkm_error err;
    fkm_reader *r = (fkm_reader *)&err; /* must be reset to NULL */
    fkm_dsinfo info;
    fkm_error_clear(&err);
    int st = fkm_reader_open(file, dset, &r, &info, &err);
    CHECK(st == FKM_EINPUT, "%s:%s: status %d (%s)", file, dset ? dset : "", st, err.msg);
    CHECK(err.status == FKM_EINPUT, "%s:%s: err.status %d", file, dset ? dset : "", err.status);
    CHECK(r == NULL, "%s:%s: reader not NULL on error", file, dset ? dset : "");
    CHECK(strstr(err.msg, file) != NULL, "message '%s' does not name '%s'", err.msg, file);
    CHECK(strstr(err.msg, phrase) != NULL, "message '%s' lacks '%s'", err.msg, phrase);
    CHECK(strchr(err.msg, '\n') == NULL, "message '%s' is not one line", err.msg);
    if (st == FKM_OK) fkm_reader_close(r);
}

static void test_errors(void)
{
    const char *file = t_path("bad.h5");
    hid_t fid = H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    float v[24];
    int32_t iv[24];
    for (int i = 0; i < 24; i++) {
        v[i] = (float)i * 0.5f + 1.0f;
        iv[i] = i + 1;
    }
    hsize_t d1[1] = {24}, d3[3] = {2, 3, 4}, d0[2] = {0, 4}, dc0[2] = {4, 0}, d2[2] = {6, 4};
    put(fid, "/one", 1, d1, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, v, NULL);
    put(fid, "/three", 3, d3, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, v, NULL);
    put(fid, "/norows", 2, d0, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, NULL, NULL);
    put(fid, "/nocols", 2, dc0, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, NULL, NULL);
    put(fid, "/ints", 2, d2, H5T_STD_I32LE, H5T_NATIVE_INT32, iv, NULL);
    put(fid, "/scalar", -1, NULL, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, v, NULL);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 8);
    char strs[6][4][8];
    memset(strs, 'x', sizeof strs);
    put(fid, "/strings", 2, d2, st, st, strs, NULL);
    H5Tclose(st);
    /* a 16-bit float that is not IEEE half (bfloat16 layout) must not pass as float16 */
    hid_t bf = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(bf, 15, 7, 8, 0, 7);
    H5Tset_size(bf, 2);
    H5Tset_ebias(bf, 127);
    put(fid, "/bf16", 2, d2, bf, H5T_NATIVE_FLOAT, v, NULL);
    H5Tclose(bf);
    H5Gclose(H5Gcreate2(fid, "/grp", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(fid);

    const char *text = t_path("notes.txt");
    FILE *fp = fopen(text, "w");
    fprintf(fp, "this is not an HDF5 file\n");
    fclose(fp);

    expect_open_error(t_path("missing.h5"), "/data", "no such file");
    expect_open_error(t_path("nodir/missing.h5"), "/data", "no such file");
    expect_open_error(text, "/data", "not an HDF5 file");
    expect_open_error(t_dir, "/data", "is a directory");
    expect_open_error(file, "/data", "dataset '/data' not found");
    expect_open_error(file, "/grp/x/y", "not found");
    expect_open_error(file, "/grp", "is a group");
    expect_open_error(file, "/one", "is 1-D, expected 2-D");
    expect_open_error(file, "/three", "is 3-D, expected 2-D");
    expect_open_error(file, "/scalar", "expected 2-D");
    expect_open_error(file, "/norows", "has 0 rows");
    expect_open_error(file, "/nocols", "has 0 columns");
    expect_open_error(file, "/ints", "has type int32, expected float32 or float16");
    expect_open_error(file, "/strings", "has type string, expected float32 or float16");
    expect_open_error(file, "/bf16", "not IEEE half");
}

/* ---------- fkm_load_matrix ---------- */

static void test_load_matrix(uint64_t seed)
{
    const char *file = t_path("init.h5");
    fkm_error err;
    float *c = NULL;
    float *ref = t_blobs(4, 8, 2, seed);
    uint16_t hbits[32];
    float href[32];
    for (int i = 0; i < 32; i++) {
        hbits[i] = fkm_float_to_half(ref[i]);
        href[i] = (float)ref_half(hbits[i]);
    }
    hid_t fid = H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t hle = half_type(0);
    hsize_t dims[2] = {4, 8};
    put(fid, "/centroids", 2, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ref, NULL);
    put(fid, "/c16", 2, dims, hle, hle, hbits, NULL);
    float bad[32];
    memcpy(bad, ref, sizeof bad);
    bad[2 * 8 + 5] = NAN;
    put(fid, "/nan", 2, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, bad, NULL);
    H5Tclose(hle);
    H5Fclose(fid);

    CHECK(fkm_load_matrix(file, "/centroids", 4, 8, &c, &err) == FKM_OK && c, "load: %s", err.msg);
    if (c) CHECK(memcmp(c, ref, sizeof(float) * 32) == 0, "float32 init values differ");
    free(c);
    c = NULL;
    CHECK(fkm_load_matrix(file, NULL, 0, 8, &c, &err) == FKM_OK && c, "load any k: %s", err.msg);
    free(c);
    c = NULL;
    CHECK(fkm_load_matrix(file, "/c16", 4, 8, &c, &err) == FKM_OK && c, "load f16: %s", err.msg);
    if (c) CHECK(memcmp(c, href, sizeof href) == 0, "float16 init values differ");
    free(c);
    c = NULL;

    int st = fkm_load_matrix(file, "/centroids", 4, 7, &c, &err);
    CHECK(st == FKM_EINPUT && !c, "wrong d: status %d", st);
    CHECK(strstr(err.msg, "init '") &&
              strstr(err.msg, "init.h5:/centroids': has 8 columns, data has 7"),
          "wrong d message '%s'", err.msg);
    st = fkm_load_matrix(file, "/centroids", 5, 8, &c, &err);
    CHECK(st == FKM_EINPUT && !c, "wrong k: status %d", st);
    CHECK(strstr(err.msg, "init.h5:/centroids': has 4 rows, --k is 5"), "wrong k message '%s'",
          err.msg);
    st = fkm_load_matrix(file, "/nan", 4, 8, &c, &err);
    CHECK(st == FKM_EINPUT && !c && strstr(err.msg, "row 2 column 5"), "NaN init: %d '%s'", st,
          err.msg);
    st = fkm_load_matrix(t_path("nope.h5"), "/centroids", 4, 8, &c, &err);
    CHECK(st == FKM_EINPUT && !c && strstr(err.msg, "init '") && strstr(err.msg, "no such file"),
          "missing init: %d '%s'", st, err.msg);
    st = fkm_load_matrix(file, "/nothere", 4, 8, &c, &err);
    CHECK(st == FKM_EINPUT && strstr(err.msg, "'/nothere' not found"), "missing init dataset '%s'",
          err.msg);
    free(ref);
}

/* ---------- fkm_gen ---------- */

/* Read the whole dataset in the file's native type; NULL (and a failed check) on error. */
static void *read_all(const char *file, const char *dset, fkm_dsinfo *info)
{
    fkm_error err;
    fkm_reader *r;
    if (fkm_reader_open(file, dset, &r, info, &err)) {
        CHECK(0, "open %s: %s", file, err.msg);
        return NULL;
    }
    size_t es = info->dtype == FKM_IO_F16 ? 2 : 4;
    void *buf = malloc((size_t)(info->n * info->d) * es);
    CHECK(fkm_reader_read_native(r, 0, info->n, buf, &err) == FKM_OK, "read %s: %s", file, err.msg);
    fkm_reader_close(r);
    return buf;
}

static int no_tmp_files(void)
{ /* no "<name>.tmp.<pid>" left in the directory */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q '\\.tmp\\.'", t_dir);
    return system(cmd) != 0;
}

static void test_gen(uint64_t seed)
{
    fkm_error err;
    for (int t = 0; t < 2; t++) {
        fkm_io_dtype dt = t ? FKM_IO_F16 : FKM_IO_F32;
        size_t es = t ? 2 : 4;
        fkm_gen_params g = {
            t_path(t ? "g16a.h5" : "g32a.h5"), "/g/x", 1000, 7, 5, dt, seed, 10.0, 1.0};
        CHECK(fkm_gen(&g, &err) == FKM_OK, "gen %d: %s", t, err.msg);
        fkm_gen_params g2 = g;
        g2.output = t_path(t ? "g16b.h5" : "g32b.h5");
        CHECK(fkm_gen_blocked(&g2, 7, &err) == FKM_OK, "gen blocked %d: %s", t, err.msg);
        fkm_gen_params g3 = g;
        g3.output = t_path(t ? "g16c.h5" : "g32c.h5");
        g3.seed = seed + 1;
        CHECK(fkm_gen_blocked(&g3, 333, &err) == FKM_OK, "gen other seed %d: %s", t, err.msg);

        fkm_dsinfo ia, ib, ic;
        unsigned char *a = read_all(g.output, "/g/x", &ia);
        unsigned char *b = read_all(g2.output, "/g/x", &ib);
        unsigned char *c = read_all(g3.output, "/g/x", &ic);
        if (a && b && c) {
            CHECK(ia.n == 1000 && ia.d == 7 && ia.dtype == dt && ia.chunked, "gen %d: shape/type",
                  t);
            size_t bytes = 1000 * 7 * es;
            CHECK(memcmp(a, b, bytes) == 0, "gen %d: block size changed the data", t);
            CHECK(memcmp(a, c, bytes) != 0, "gen %d: another seed gave the same data", t);
            /* every value: finite and the mixture formula of (seed, row, column) */
            int nonfinite = 0, off = 0;
            for (int64_t i = 0; i < 1000; i++) {
                uint64_t cl = fkm_rand_below(seed, FKM_STREAM_GEN_LABEL, (uint64_t)i, 5);
                for (int64_t j = 0; j < 7; j++) {
                    double ctr = 10.0 * (2.0 * fkm_rand_unit(seed, FKM_STREAM_GEN_CENTER,
                                                             cl * 7 + (uint64_t)j) -
                                         1.0);
                    double want =
                        ctr + fkm_rand_normal(seed, FKM_STREAM_GEN_NOISE, (uint64_t)(i * 7 + j));
                    double got = t ? ref_half(((uint16_t *)a)[i * 7 + j]) : ((float *)a)[i * 7 + j];
                    if (!isfinite(got)) nonfinite++;
                    double tol = t ? fabs(want) * 4.9e-4 + 1e-7 : fabs(want) * 6e-8 + 1e-30;
                    if (fabs(got - want) > tol) off++;
                }
            }
            CHECK(nonfinite == 0, "gen %d: %d values not finite", t, nonfinite);
            CHECK(off == 0, "gen %d: %d values differ from the mixture formula", t, off);
        }
        free(a);
        free(b);
        free(c);

        /* attributes clusters and seed on the dataset */
        hid_t fid = H5Fopen(g.output, H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t ds = H5Dopen2(fid, "/g/x", H5P_DEFAULT);
        int64_t cl = 0;
        uint64_t sd = 0;
        hid_t at = H5Aopen(ds, "clusters", H5P_DEFAULT);
        CHECK(at >= 0 && H5Aread(at, H5T_NATIVE_INT64, &cl) >= 0 && cl == 5, "gen clusters attr");
        H5Aclose(at);
        at = H5Aopen(ds, "seed", H5P_DEFAULT);
        CHECK(at >= 0 && H5Aread(at, H5T_NATIVE_UINT64, &sd) >= 0 && sd == seed, "gen seed attr");
        H5Aclose(at);
        H5Dclose(ds);
        H5Fclose(fid);
    }
    /* a row larger than 1 MiB: one-row chunks */
    fkm_gen_params gw = {t_path("wide.h5"), "wide", 3, 300000, 2, FKM_IO_F32, seed, 10, 1};
    CHECK(fkm_gen(&gw, &err) == FKM_OK, "gen wide: %s", err.msg);
    fkm_dsinfo iw;
    free(read_all(gw.output, "/wide", &iw));
    CHECK(iw.n == 3 && iw.d == 300000 && iw.chunk[0] == 1, "wide: chunk %lld",
          (long long)iw.chunk[0]);

    /* validation: each names its flag, and nothing is written */
    struct {
        fkm_gen_params g;
        const char *phrase;
    } bad[] = {
        {{t_path("v.h5"), "/data", 0, 4, 2, FKM_IO_F32, 1, 10, 1}, "--n must be ≥ 1"},
        {{t_path("v.h5"), "/data", 10, 0, 2, FKM_IO_F32, 1, 10, 1}, "--d must be ≥ 1"},
        {{t_path("v.h5"), "/data", 10, 4, 0, FKM_IO_F32, 1, 10, 1}, "--clusters must be ≥ 1"},
        {{t_path("v.h5"), "/data", 10, 4, 2, FKM_IO_F32, 1, 10, -1}, "--sigma"},
        {{t_path("nodir/v.h5"), "/data", 10, 4, 2, FKM_IO_F32, 1, 10, 1}, "does not exist"},
        {{t_dir, "/data", 10, 4, 2, FKM_IO_F32, 1, 10, 1}, "is a directory"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = fkm_gen(&bad[i].g, &err);
        CHECK(st == FKM_EINPUT && strstr(err.msg, bad[i].phrase), "gen bad %zu: %d '%s'", i, st,
              err.msg);
    }
    CHECK(access(t_path("v.h5"), F_OK) != 0, "invalid gen left a file");
    /* an HDF5 failure (the root group as the dataset path) leaves no temporary behind */
    fkm_gen_params gf = {t_path("fail.h5"), "/", 10, 4, 2, FKM_IO_F32, 1, 10, 1};
    int st = fkm_gen(&gf, &err);
    CHECK(st == FKM_ERUNTIME, "gen with a bad dataset path: %d '%s'", st, err.msg);
    CHECK(access(gf.output, F_OK) != 0, "failed gen left its output");
    CHECK(no_tmp_files(), "a temporary file was left behind");
}

/* ---------- output writers ---------- */

static void test_output(uint64_t seed)
{
    fkm_error err;
    const char *out = t_path("out.h5.tmp.1");
    const int64_t k = 3, d = 4, n = 11;
    float *cent = t_uniform(k, d, seed);
    int64_t counts[3] = {4, 5, 2};
    int32_t labels[11];
    uint64_t s = seed | 1;
    for (int i = 0; i < 11; i++) labels[i] = (int32_t)(t_xs_next(&s) % 3);
    fkm_out_meta m = {k, d, n, 17, 123.25, 1, seed, "l2", "init.h5:/centroids"};
    CHECK(fkm_out_create(out, &m, cent, counts, n, &err) == FKM_OK, "out_create: %s", err.msg);
    /* two "ranks" one after another, the second may have nothing */
    for (int rk = 0; rk < 3; rk++) {
        int64_t row0, cnt;
        fkm_shard(n, 2, rk < 2 ? rk : 0, &row0, &cnt);
        if (rk == 2) cnt = 0;
        CHECK(fkm_out_write_labels(out, row0, cnt, labels + row0, &err) == FKM_OK, "labels %d: %s",
              rk, err.msg);
    }
    CHECK(fkm_out_write_labels(out, 9, 3, labels, &err) == FKM_ERUNTIME, "labels past the end");

    hid_t fid = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(fid >= 0, "open output");
    float c2[12];
    int64_t k2[3];
    int32_t l2[11];
    hid_t ds = H5Dopen2(fid, "/centroids", H5P_DEFAULT);
    CHECK(ds >= 0 && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, c2) >= 0 &&
              memcmp(c2, cent, sizeof c2) == 0,
          "centroids");
    H5Dclose(ds);
    ds = H5Dopen2(fid, "/counts", H5P_DEFAULT);
    CHECK(ds >= 0 && H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, k2) >= 0 &&
              memcmp(k2, counts, sizeof k2) == 0,
          "counts");
    H5Dclose(ds);
    ds = H5Dopen2(fid, "/labels", H5P_DEFAULT);
    CHECK(ds >= 0 && H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, l2) >= 0 &&
              memcmp(l2, labels, sizeof l2) == 0,
          "labels");
    H5Dclose(ds);

    int64_t iv;
    int32_t i32;
    double dv;
    uint64_t uv;
    const char *names64[] = {"k", "d", "n"};
    const int64_t want64[] = {k, d, n};
    for (int i = 0; i < 3; i++) {
        hid_t a = H5Aopen(fid, names64[i], H5P_DEFAULT);
        CHECK(a >= 0 && H5Aread(a, H5T_NATIVE_INT64, &iv) >= 0 && iv == want64[i], "attr %s",
              names64[i]);
        H5Aclose(a);
    }
    hid_t a = H5Aopen(fid, "iterations", H5P_DEFAULT);
    CHECK(a >= 0 && H5Aread(a, H5T_NATIVE_INT32, &i32) >= 0 && i32 == 17, "attr iterations");
    H5Aclose(a);
    a = H5Aopen(fid, "converged", H5P_DEFAULT);
    CHECK(a >= 0 && H5Aread(a, H5T_NATIVE_INT32, &i32) >= 0 && i32 == 1, "attr converged");
    H5Aclose(a);
    a = H5Aopen(fid, "inertia", H5P_DEFAULT);
    CHECK(a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, &dv) >= 0 && dv == 123.25, "attr inertia");
    H5Aclose(a);
    a = H5Aopen(fid, "seed", H5P_DEFAULT);
    CHECK(a >= 0 && H5Aread(a, H5T_NATIVE_UINT64, &uv) >= 0 && uv == seed, "attr seed");
    H5Aclose(a);
    const char *snames[] = {"metric", "init", "version"};
    const char *swant[] = {"l2", "init.h5:/centroids", FKM_VERSION};
    hid_t vs = H5Tcopy(H5T_C_S1);
    H5Tset_size(vs, H5T_VARIABLE);
    H5Tset_cset(vs, H5T_CSET_UTF8);
    for (int i = 0; i < 3; i++) {
        char *sv = NULL;
        a = H5Aopen(fid, snames[i], H5P_DEFAULT);
        CHECK(a >= 0 && H5Aread(a, vs, &sv) >= 0 && sv && strcmp(sv, swant[i]) == 0,
              "attr %s = '%s'", snames[i], sv ? sv : "(null)");
        if (sv) H5free_memory(sv);
        H5Aclose(a);
    }
    H5Tclose(vs);
    H5Fclose(fid);

    /* no labels requested: no /labels dataset */
    const char *out2 = t_path("out2.h5");
    CHECK(fkm_out_create(out2, &m, cent, counts, 0, &err) == FKM_OK, "out_create: %s", err.msg);
    fid = H5Fopen(out2, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(H5Lexists(fid, "/labels", H5P_DEFAULT) == 0, "/labels exists without labels");
    H5Fclose(fid);
    CHECK(fkm_out_create(t_path("nodir/x.h5"), &m, cent, counts, 0, &err) == FKM_ERUNTIME,
          "out_create in a missing directory");
    free(cent);

    /* fkm_out_check_path */
    CHECK(fkm_out_check_path(t_path("fresh.h5"), &err) == FKM_OK, "check fresh: %s", err.msg);
    CHECK(fkm_out_check_path(out, &err) == FKM_OK, "check existing file: %s", err.msg);
    CHECK(fkm_out_check_path("relative-name.h5", &err) == FKM_OK, "check relative: %s", err.msg);
    const char *nd = t_path("nodir/x.h5");
    CHECK(fkm_out_check_path(nd, &err) == FKM_EINPUT && strstr(err.msg, nd) &&
              strstr(err.msg, "does not exist"),
          "check missing dir: '%s'", err.msg);
    CHECK(fkm_out_check_path(t_dir, &err) == FKM_EINPUT && strstr(err.msg, t_dir) &&
              strstr(err.msg, "is a directory"),
          "check dir: '%s'", err.msg);
    const char *slash = t_path("sub/");
    CHECK(fkm_out_check_path(slash, &err) == FKM_EINPUT && strstr(err.msg, slash),
          "check dir/: '%s'", err.msg);
    const char *under_file = t_path("out2.h5/x.h5");
    CHECK(fkm_out_check_path(under_file, &err) == FKM_EINPUT && strstr(err.msg, under_file),
          "check path under a file: '%s'", err.msg);
    CHECK(fkm_out_check_path("", &err) == FKM_EINPUT, "check empty path");
    if (geteuid() != 0) { /* root may write anywhere */
        const char *ro = t_path("ro");
        mkdir(ro, 0555);
        const char *rof = t_path("ro/x.h5");
        CHECK(fkm_out_check_path(rof, &err) == FKM_EINPUT && strstr(err.msg, "not writable"),
              "check read-only dir: '%s'", err.msg);
        chmod(ro, 0755);
    } else {
        printf("running as root: the read-only directory case is skipped\n");
    }
}

/* ---------- fkm info ---------- */

static void test_info(void)
{
    fkm_error err;
    const char *cap = t_path("info.txt");
    fflush(stdout);
    int saved = dup(fileno(stdout));
    FILE *fp = fopen(cap, "w");
    dup2(fileno(fp), fileno(stdout));
    int st = fkm_info(t_path("read.h5"), &err);
    fflush(stdout);
    dup2(saved, fileno(stdout));
    close(saved);
    fclose(fp);
    CHECK(st == FKM_OK, "info: %s", err.msg);

    char text[4096] = "";
    fp = fopen(cap, "r");
    size_t len = fread(text, 1, sizeof text - 1, fp);
    text[len] = '\0';
    fclose(fp);
    const char *want[] = {
        "/group/sub/emb  shape 1003 x 13  float32  chunked 37 x 5\n",
        "/data  shape 517 x 8  float32  contiguous\n",
        "/a/b/half  shape 777 x 9  float16  chunked 11 x 4\n",
        "/a/b/half_be  shape 777 x 9  float16  contiguous\n",
        "/f64  shape 301 x 5  float64  chunked 3 x 5\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(strstr(text, want[i]) != NULL, "info lacks '%s' in:\n%s", want[i], text);

    /* only 2-D datasets are listed */
    fflush(stdout);
    saved = dup(fileno(stdout));
    fp = fopen(cap, "w");
    dup2(fileno(fp), fileno(stdout));
    st = fkm_info(t_path("bad.h5"), &err);
    fflush(stdout);
    dup2(saved, fileno(stdout));
    close(saved);
    fclose(fp);
    fp = fopen(cap, "r");
    len = fread(text, 1, sizeof text - 1, fp);
    text[len] = '\0';
    fclose(fp);
    CHECK(st == FKM_OK && strstr(text, "/ints  shape 6 x 4  int32") && !strstr(text, "/one") &&
              !strstr(text, "/three"),
          "info of bad.h5:\n%s", text);

    st = fkm_info(t_path("missing.h5"), &err);
    CHECK(st == FKM_EINPUT && strstr(err.msg, "no such file"), "info missing: '%s'", err.msg);
    st = fkm_info(t_path("notes.txt"), &err);
    CHECK(st == FKM_EINPUT && strstr(err.msg, "not an HDF5 file"), "info text: '%s'", err.msg);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

int main(void)
{
    uint64_t seed = t_seed();
    snprintf(t_dir, sizeof t_dir, "/tmp/fkm_test_io.XXXXXX");
    if (!mkdtemp(t_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_half(seed);
    test_reader(seed);
    test_errors();
    test_load_matrix(seed);
    test_gen(seed);
    test_output(seed);
    test_info();
    /* every file, dataset, type, space and property list opened on any path was closed */
    ssize_t open_ids = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    CHECK(open_ids == 0, "%zd HDF5 objects still open", open_ids);
    nftw(t_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return t_finish("test_io");
}
