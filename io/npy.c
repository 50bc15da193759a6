/* NumPy .npy files (format versions 1.0, 2.0 and 3.0): a 2-D C-order array of '<f4', '<f2',
 * '<f8', '|u1' or '|i1'. The header is a Python dict literal, parsed here strictly:
 *
 *   "\x93NUMPY" major minor HEADER_LEN (uint16 LE in 1.0, uint32 LE in 2.0/3.0)
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 128), }   + spaces + '\n'
 *
 * followed by exactly rows×columns elements. Anything else (Fortran order, big-endian, 1-D
 * or 3-D, object or structured dtypes, a header that does not match the file's size) is an
 * FKM_EINPUT naming the file. */
#include "reader_impl.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* a plain 2-D array needs about 120 bytes; numpy itself refuses more than 10000 by default */
#define NPY_HEADER_MAX (1 << 20)
#define NPY_MAX_DIMS 32

typedef struct {
    const char *s;
    size_t i, n;
    char why[160]; /* what is wrong, when a parse function returns -1 */
} cursor;

static int bad(cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(cursor *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    return -1;
}

static void skip_ws(cursor *c)
{
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' ||
                           c->s[c->i] == '\r'))
        c->i++;
}

static int peek(cursor *c)
{
    skip_ws(c);
    return c->i < c->n ? (unsigned char)c->s[c->i] : -1;
}

static int expect(cursor *c, char ch, const char *what)
{
    if (peek(c) != (unsigned char)ch) return bad(c, "expected %s", what);
    c->i++;
    return 0;
}

/* A Python string literal in single or double quotes, without escapes. */
static int parse_str(cursor *c, char *out, size_t cap)
{
    int q = peek(c);
    if (q != '\'' && q != '"') return bad(c, "expected a quoted string");
    size_t len = 0;
    for (c->i++;; c->i++) {
        if (c->i >= c->n) return bad(c, "unterminated string");
        char ch = c->s[c->i];
        if (ch == q) break;
        if (ch == '\\') return bad(c, "escape sequences in strings are not supported");
        if (ch == '\n') return bad(c, "unterminated string");
        if ((unsigned char)ch < 0x20 || ch == 0x7f) return bad(c, "control character in a string");
        if (len + 1 >= cap) return bad(c, "string longer than %zu characters", cap - 1);
        out[len++] = ch;
    }
    c->i++;
    out[len] = '\0';
    return 0;
}

static int is_word_char(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* True or False */
static int parse_bool(cursor *c, int *v)
{
    skip_ws(c);
    size_t rest = c->n - c->i;
    const char *p = c->s + c->i;
    if (rest >= 4 && memcmp(p, "True", 4) == 0 && (rest == 4 || !is_word_char(p[4]))) {
        c->i += 4;
        *v = 1;
        return 0;
    }
    if (rest >= 5 && memcmp(p, "False", 5) == 0 && (rest == 5 || !is_word_char(p[5]))) {
        c->i += 5;
        *v = 0;
        return 0;
    }
    return bad(c, "'fortran_order' must be True or False");
}

/* A non-negative decimal integer (Python 2 files may add an L suffix). */
static int parse_int(cursor *c, int64_t *v)
{
    int ch = peek(c);
    if (ch < '0' || ch > '9') return bad(c, "expected a non-negative integer in 'shape'");
    int64_t x = 0;
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9') {
        if (__builtin_mul_overflow(x, (int64_t)10, &x) ||
            __builtin_add_overflow(x, (int64_t)(c->s[c->i] - '0'), &x))
            return bad(c, "a 'shape' entry is larger than 2^63");
        c->i++;
    }
    if (c->i < c->n && (c->s[c->i] == 'L' || c->s[c->i] == 'l')) c->i++;
    if (c->i < c->n && is_word_char((unsigned char)c->s[c->i]))
        return bad(c, "expected a non-negative integer in 'shape'");
    *v = x;
    return 0;
}

/* A tuple of integers: (), (n,), (n, m), ... — "(n)" is an integer, not a tuple. */
static int parse_shape(cursor *c, int64_t *dims, int *ndims)
{
    if (peek(c) != '(') return bad(c, "'shape' must be a tuple");
    c->i++;
    *ndims = 0;
    int trailing_comma = 0;
    while (peek(c) != ')') {
        if (*ndims == NPY_MAX_DIMS) return bad(c, "'shape' has more than %d entries", NPY_MAX_DIMS);
        if (parse_int(c, &dims[*ndims])) return -1;
        (*ndims)++;
        trailing_comma = 0;
        if (peek(c) == ',') {
            c->i++;
            trailing_comma = 1;
        } else if (peek(c) != ')') {
            return bad(c, "expected ',' or ')' in 'shape'");
        }
    }
    c->i++;
    if (*ndims == 1 && !trailing_comma) return bad(c, "'shape' must be a tuple, not (n)");
    return 0;
}

typedef struct {
    char descr[64];
    int fortran;
    int64_t dims[NPY_MAX_DIMS];
    int ndims;
    int descr_is_list; /* a structured dtype */
} npy_header;

/* The header dict: exactly the keys descr, fortran_order and shape, each once. */
static int parse_header(cursor *c, npy_header *h)
{
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    if (expect(c, '{', "'{' at the start of the header")) return -1;
    while (peek(c) != '}') {
        char key[64];
        if (parse_str(c, key, sizeof key)) return -1;
        if (expect(c, ':', "':' after a key")) return -1;
        if (strcmp(key, "descr") == 0) {
            if (seen_descr++) return bad(c, "key 'descr' given twice");
            if (peek(c) == '[') { /* a list of fields: structured; nothing more to learn */
                h->descr_is_list = 1;
                return 0;
            }
            if (parse_str(c, h->descr, sizeof h->descr)) return -1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (seen_fortran++) return bad(c, "key 'fortran_order' given twice");
            if (parse_bool(c, &h->fortran)) return -1;
        } else if (strcmp(key, "shape") == 0) {
            if (seen_shape++) return bad(c, "key 'shape' given twice");
            if (parse_shape(c, h->dims, &h->ndims)) return -1;
        } else {
            return bad(c, "unexpected key '%s'", key);
        }
        if (peek(c) == ',') c->i++;
        else if (peek(c) != '}') return bad(c, "expected ',' or '}' after a value");
    }
    c->i++;
    if (peek(c) != -1) return bad(c, "unexpected text after the closing '}'");
    if (!seen_descr) return bad(c, "key '%s' missing", "descr");
    if (!seen_fortran) return bad(c, "key '%s' missing", "fortran_order");
    if (!seen_shape) return bad(c, "key '%s' missing", "shape");
    return 0;
}

/* descr -> element type; 0 when supported, else a message in why. */
static int descr_elem(const char *descr, fkm_elem *e, char *why, size_t len)
{
    static const struct {
        const char *descr;
        fkm_elem elem;
    } ok[] = {{"<f4", FKM_EL_F32}, {"<f2", FKM_EL_F16}, {"<f8", FKM_EL_F64}, {"|u1", FKM_EL_U8},
              {"<u1", FKM_EL_U8},  {">u1", FKM_EL_U8},  {"|i1", FKM_EL_I8},  {"<i1", FKM_EL_I8},
              {">i1", FKM_EL_I8}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (strcmp(descr, ok[i].descr) == 0) {
            *e = ok[i].elem;
            return 0;
        }
    }
    if (strchr(descr, 'O'))
        snprintf(why, len, "object arrays are not supported (dtype '%s')", descr);
    else if (descr[0] == '>')
        snprintf(why, len,
                 "big-endian arrays are not supported (dtype '%s'); save a little-endian copy "
                 "(arr.astype(arr.dtype.newbyteorder('<')))",
                 descr);
    else
        snprintf(why, len, "dtype '%s' is not supported; expected '<f4', '<f2', '<f8', '|u1' or "
                           "'|i1'",
                 descr);
    return -1;
}

static int parse_and_check(fkm_reader *r, const char *text, size_t len, fkm_error *err)
{
    npy_header h;
    memset(&h, 0, sizeof h);
    cursor c = {text, 0, len, ""};
    if (parse_header(&c, &h))
        return fkm_fail(err, FKM_EINPUT, "%s '%s': malformed .npy header: %s (at byte %zu of it)",
                        r->role, r->file, c.why, c.i);
    if (h.descr_is_list)
        return fkm_fail(err, FKM_EINPUT,
                        "%s '%s': structured (record) arrays are not supported; expected a plain "
                        "2-D numeric array",
                        r->role, r->file);
    char why[256];
    if (descr_elem(h.descr, &r->elem, why, sizeof why))
        return fkm_fail(err, FKM_EINPUT, "%s '%s': %s", r->role, r->file, why);
    if (h.fortran)
        return fkm_fail(err, FKM_EINPUT,
                        "%s '%s': Fortran-order arrays are not supported; save a C-order copy "
                        "(np.ascontiguousarray)",
                        r->role, r->file);
    if (h.ndims == 1 && r->vector) { /* a vector: n values as n×1 */
        h.ndims = 2;
        h.dims[1] = 1;
    }
    if (h.ndims != 2) {
        char shape[128] = "(";
        size_t at = 1;
        for (int i = 0; i < h.ndims && i < 4 && at < sizeof shape; i++)
            at += (size_t)snprintf(shape + at, sizeof shape - at, "%s%lld", i ? ", " : "",
                                   (long long)h.dims[i]);
        if (at < sizeof shape)
            snprintf(shape + at, sizeof shape - at, "%s)",
                     h.ndims > 4 ? ", ..." : h.ndims == 1 ? "," : "");
        return fkm_fail(err, FKM_EINPUT, "%s '%s': array is %d-D (shape %s), expected 2-D (rows, "
                        "columns)",
                        r->role, r->file, h.ndims, shape);
    }
    r->n = h.dims[0];
    r->d = h.dims[1];
    if (r->n == 0 || r->d == 0)
        return fkm_fail(err, FKM_EINPUT, "%s '%s': has 0 %s (shape (%lld, %lld))", r->role,
                        r->file, r->n == 0 ? "rows" : "columns", (long long)r->n,
                        (long long)r->d);
    return FKM_OK;
}

int fkm_npy_open(fkm_reader *r, fkm_error *err)
{
    int fd;
    int64_t size;
    unsigned char pre[12];
    char *text = NULL;

    int st = fkm_raw_open_file(r, &fd, &size, err);
    if (st) return st;
    if (size < 10) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': file is %lld bytes, too short for a .npy header",
                      r->role, r->file, (long long)size);
        goto fail;
    }
    if ((st = fkm_raw_pread(r, fd, pre, 10, 0, 1, err))) goto fail;
    if (memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': not a NumPy .npy file (no \\x93NUMPY magic)",
                      r->role, r->file);
        goto fail;
    }
    const int major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0) {
        st = fkm_fail(err, FKM_EINPUT,
                      "%s '%s': .npy format version %d.%d is not supported (1.0, 2.0, 3.0 are)",
                      r->role, r->file, major, minor);
        goto fail;
    }
    int64_t prefix, hlen;
    if (major == 1) {
        prefix = 10;
        hlen = (int64_t)pre[8] | (int64_t)pre[9] << 8;
    } else {
        prefix = 12;
        if ((st = fkm_raw_pread(r, fd, pre, 12, 0, 1, err))) goto fail;
        hlen = (int64_t)pre[8] | (int64_t)pre[9] << 8 | (int64_t)pre[10] << 16 |
               (int64_t)pre[11] << 24;
    }
    if (hlen > NPY_HEADER_MAX) {
        st = fkm_fail(err, FKM_EINPUT,
                      "%s '%s': .npy header length %lld is over the %d-byte limit (a corrupt "
                      "header?)",
                      r->role, r->file, (long long)hlen, NPY_HEADER_MAX);
        goto fail;
    }
    if (prefix + hlen > size) {
        st = fkm_fail(err, FKM_EINPUT,
                      "%s '%s': file is %lld bytes, but its .npy header says it is %lld + %lld "
                      "bytes long before the data (truncated?)",
                      r->role, r->file, (long long)size, (long long)prefix, (long long)hlen);
        goto fail;
    }
    text = fkm_malloc((size_t)hlen + 1, ".npy header", err);
    if (!text) {
        st = FKM_ENOMEM;
        goto fail;
    }
    if ((st = fkm_raw_pread(r, fd, text, (size_t)hlen, prefix, 1, err))) goto fail;
    text[hlen] = '\0';
    snprintf(r->format, sizeof r->format, "npy v%d.0", major);
    if ((st = parse_and_check(r, text, (size_t)hlen, err))) goto fail;
    if ((st = fkm_raw_check_size(r, prefix + hlen, size, err))) goto fail;
    free(text);
    return fkm_raw_attach(r, fd, prefix + hlen, err);

fail:
    free(text);
    close(fd);
    return st;
}
