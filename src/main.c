/* The fkm program: a thin command-line layer over libfkm.
 *   fkm gen  --output FILE --n N --d D [...]
 *   fkm info FILE
 *   fkm fit  --input FILE --k K [...]
 *   fkm assign --centroids FILE --input FILE --output FILE [...]
 * Exit status: 0 success, 2 usage error or bad input, 1 runtime failure. */
#include "fkm.h"
#include "io.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: fkm <command> [flags]\n"
    "\n"
    "commands:\n"
    "  gen   --output FILE --n N --d D [--clusters C] [--dtype f32|f16] [--seed S]\n"
    "        [--dataset /data] [--spread 10] [--sigma 1]\n"
    "        write a reproducible Gaussian mixture of C clusters (default 16) as a chunked\n"
    "        HDF5 dataset\n"
    "  info  FILE\n"
    "        list every 2-D dataset of FILE with shape, dtype and chunking\n"
    "  fit   --input FILE --k K [--dataset /data] [--iters 25] [--tol 1e-4]\n"
    "        [--metric l2|cosine|ip] [--weights FILE[:/weights]]\n"
    "        [--init random|kmeans++|kmeans|||FILE.h5:/dataset] [--init-sample M]\n"
    "        [--seed 1234] [--backend auto|cpu|cuda]\n"
    "        [--shift-tol S] [--reassign-tol R] [--max-points-per-centroid M]\n"
    "        [--precision auto|exact|tf32|fp16|bf16] [--empty split|keep]\n"
    "        [--comm auto|nccl|mpi] [--device N]\n"
    "        [--checkpoint FILE [--checkpoint-every 10]] [--resume FILE]\n"
    "        [--residency auto|device|host|file] [--chunk-rows R]\n"
    "        [--output out.h5] [--labels] [--skip-nonfinite] [--log-json FILE] [-q|-v]\n"
    "        [--distances]\n"
    "        k-means of the rows of FILE:DATASET; run under mpirun for several ranks\n"
    "  assign --centroids FILE.h5[:/centroids] --input FILE --output labels.h5\n"
    "        [--dataset /data] [--distances] [--metric l2|cosine|ip] [--backend auto|cpu|cuda]\n"
    "        [--precision auto|exact|tf32|fp16|bf16] [--comm auto|nccl|mpi] [--device N]\n"
    "        [--residency auto|device|host|file] [--chunk-rows R] [--skip-nonfinite] [-q|-v]\n"
    "        label every row of FILE:DATASET with its nearest centroid (/labels, /counts,\n"
    "        and /distances with --distances); run under mpirun for several ranks\n"
    "\n"
    "exit status: 0 success, 2 usage error or bad input, 1 runtime failure,\n"
    "             75 stopped by SIGTERM/SIGUSR1 after writing the --checkpoint\n";

static int g_rank = 0;

static int usage_error(const char *fmt, const char *a, const char *b)
{
    if (g_rank == 0) {
        fprintf(stderr, "fkm: error: ");
        fprintf(stderr, fmt, a, b);
        fprintf(stderr, " (see 'fkm --help')\n");
    }
    return FKM_EINPUT;
}

/* A table of the flags one command accepts; each may be given once. */
typedef struct flag {
    const char *name;
    int takes_value;
    const char *value;
    int seen;
} flag;

static int parse_flags(int argc, char **argv, flag *flags, int nflags, const char **positional)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            if (positional && !*positional) {
                *positional = a;
                continue;
            }
            return usage_error("unexpected argument '%s'%s", a, "");
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        flag *f = NULL;
        for (int j = 0; j < nflags; j++)
            if (strlen(flags[j].name) == len && strncmp(flags[j].name, a, len) == 0) f = &flags[j];
        if (!f) return usage_error("unknown flag '%s'%s", a, "");
        if (f->seen) return usage_error("flag '%s' given twice%s", f->name, "");
        f->seen = 1;
        if (f->takes_value) {
            if (eq)
                f->value = eq + 1;
            else if (i + 1 < argc)
                f->value = argv[++i];
            else
                return usage_error("flag '%s' needs a value%s", f->name, "");
        } else if (eq) {
            return usage_error("flag '%s' takes no value%s", f->name, "");
        }
    }
    return FKM_OK;
}

static flag *get(flag *flags, int n, const char *name)
{
    for (int j = 0; j < n; j++)
        if (strcmp(flags[j].name, name) == 0) return flags[j].seen ? &flags[j] : NULL;
    return NULL;
}

static int parse_i64(const char *flagname, const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return usage_error("%s '%s' is not a whole number", flagname, s);
    *out = v;
    return FKM_OK;
}

static int parse_u64(const char *flagname, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (s[0] == '-') return usage_error("%s '%s' must not be negative", flagname, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end) return usage_error("%s '%s' is not a whole number", flagname, s);
    *out = v;
    return FKM_OK;
}

static int parse_f64(const char *flagname, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return usage_error("%s '%s' is not a finite number", flagname, s);
    *out = v;
    return FKM_OK;
}

static int report(const fkm_error *err)
{
    if (g_rank == 0) fprintf(stderr, "fkm: error: %s\n", err->msg);
    if (err->status == FKM_EINTERRUPTED) return 75;
    return err->status == FKM_EINPUT ? 2 : 1;
}

static int cmd_gen(int argc, char **argv)
{
    flag f[] = {{"--output", 1}, {"--n", 1},    {"--d", 1},      {"--clusters", 1}, {"--dtype", 1},
                {"--seed", 1},   {"--dataset", 1}, {"--spread", 1}, {"--sigma", 1}};
    const int nf = sizeof f / sizeof f[0];
    if (parse_flags(argc, argv, f, nf, NULL)) return 2;
    fkm_gen_params g = {NULL, "/data", 0, 0, 16, FKM_IO_F32, 1234, 10.0, 1.0};
    flag *v;
    if (!(v = get(f, nf, "--output"))) return usage_error("gen: --output is required%s%s", "", ""), 2;
    g.output = v->value;
    if (!(v = get(f, nf, "--n"))) return usage_error("gen: --n is required%s%s", "", ""), 2;
    if (parse_i64("--n", v->value, &g.n)) return 2;
    if (!(v = get(f, nf, "--d"))) return usage_error("gen: --d is required%s%s", "", ""), 2;
    if (parse_i64("--d", v->value, &g.d)) return 2;
    if ((v = get(f, nf, "--clusters")) && parse_i64("--clusters", v->value, &g.clusters)) return 2;
    if ((v = get(f, nf, "--seed")) && parse_u64("--seed", v->value, &g.seed)) return 2;
    if ((v = get(f, nf, "--spread")) && parse_f64("--spread", v->value, &g.spread)) return 2;
    if ((v = get(f, nf, "--sigma")) && parse_f64("--sigma", v->value, &g.sigma)) return 2;
    if ((v = get(f, nf, "--dataset"))) g.dataset = v->value;
    if ((v = get(f, nf, "--dtype"))) {
        if (strcmp(v->value, "f32") == 0 || strcmp(v->value, "float32") == 0)
            g.dtype = FKM_IO_F32;
        else if (strcmp(v->value, "f16") == 0 || strcmp(v->value, "float16") == 0)
            g.dtype = FKM_IO_F16;
        else
            return usage_error("--dtype '%s' is not one of f32, f16%s", v->value, ""), 2;
    }
    fkm_error err;
    fkm_error_clear(&err);
    if (fkm_gen(&g, &err)) return report(&err);
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    const char *file = NULL;
    if (parse_flags(argc, argv, NULL, 0, &file)) return 2;
    if (!file) return usage_error("info: a FILE is required%s%s", "", ""), 2;
    fkm_error err;
    fkm_error_clear(&err);
    if (fkm_info(file, &err)) return report(&err);
    return 0;
}

static int pick(const char *flagname, const char *value, const char *const *names, int n, int *out)
{
    for (int i = 0; i < n; i++)
        if (strcmp(value, names[i]) == 0) {
            *out = i;
            return FKM_OK;
        }
    return usage_error("%s '%s' is not one of the accepted values", flagname, value);
}

/* FILE[:/dataset] in place: the dataset starts at the last ":/"; without one, *dataset is
 * left as it was. */
static void split_file_dataset(char *buf, const char **dataset)
{
    char *colon = strstr(buf, ":/"), *next;
    while (colon && (next = strstr(colon + 1, ":/"))) colon = next;
    if (colon) {
        *colon = '\0';
        *dataset = colon + 1;
    }
}

/* The flags fit and assign share: input, metric, backend, arithmetic, communicator, residency,
 * non-finite rows, verbosity. 0, or 2 after printing a usage error. */
static int parse_run_flags(flag *f, int nf, fkm_params *p)
{
    flag *v;
    int64_t i64;
    int choice;
    if ((v = get(f, nf, "--input"))) p->input = v->value;
    if ((v = get(f, nf, "--dataset"))) p->dataset = v->value;
    if (get(f, nf, "--skip-nonfinite")) p->skip_nonfinite = 1;
    if ((v = get(f, nf, "--backend"))) {
        static const char *const names[] = {"auto", "cpu", "cuda"};
        if (pick("--backend", v->value, names, 3, &choice)) return 2;
        p->backend = (fkm_backend_kind)choice;
    }
    if ((v = get(f, nf, "--precision"))) {
        static const char *const names[] = {"auto", "exact", "tf32", "fp16", "bf16"};
        if (pick("--precision", v->value, names, 5, &choice)) return 2;
        p->precision = (fkm_precision)choice;
    }
    if ((v = get(f, nf, "--residency"))) {
        static const char *const names[] = {"auto", "device", "host", "file"};
        if (pick("--residency", v->value, names, 4, &choice)) return 2;
        p->residency = (fkm_residency)choice;
    }
    if ((v = get(f, nf, "--metric"))) {
        static const char *const names[] = {"l2", "cosine", "ip"};
        if (pick("--metric", v->value, names, 3, &choice)) return 2;
        p->metric = (fkm_metric)choice;
    }
    if ((v = get(f, nf, "--comm"))) {
        static const char *const names[] = {"auto", "nccl", "mpi"};
        if (pick("--comm", v->value, names, 3, &choice)) return 2;
        p->comm = (fkm_comm_kind)choice;
    }
    if ((v = get(f, nf, "--device"))) {
        if (parse_i64("--device", v->value, &i64)) return 2;
        if (i64 < 0 || i64 > 1024)
            return usage_error("--device '%s' must be a CUDA device number%s", v->value, ""), 2;
        p->device = (int)i64;
    }
    if ((v = get(f, nf, "--chunk-rows"))) {
        if (parse_i64("--chunk-rows", v->value, &p->chunk_rows)) return 2;
        if (p->chunk_rows < 1) return usage_error("--chunk-rows '%s' must be ≥ 1%s", v->value, ""), 2;
    }
    if (get(f, nf, "-q") && get(f, nf, "-v")) return usage_error("-q and -v exclude each other%s%s", "", ""), 2;
    if (get(f, nf, "-q")) p->verbose = 0;
    if (get(f, nf, "-v")) p->verbose = 2;
    return 0;
}

static int cmd_fit(int argc, char **argv)
{
    flag f[] = {{"--input", 1},   {"--dataset", 1}, {"--k", 1},          {"--iters", 1},
                {"--tol", 1},     {"--init", 1},    {"--seed", 1},       {"--backend", 1},
                {"--precision", 1}, {"--empty", 1}, {"--chunk-rows", 1}, {"--output", 1},
                {"--labels", 0},  {"--log-json", 1}, {"-q", 0},          {"-v", 0},
                {"--comm", 1},    {"--device", 1},  {"--checkpoint", 1}, {"--checkpoint-every", 1},
                {"--resume", 1},  {"--residency", 1}, {"--skip-nonfinite", 0},
                {"--init-sample", 1}, {"--shift-tol", 1}, {"--reassign-tol", 1},
                {"--distances", 0}, {"--max-points-per-centroid", 1}, {"--metric", 1},
                {"--weights", 1}};
    const int nf = sizeof f / sizeof f[0];
    if (parse_flags(argc, argv, f, nf, NULL)) return 2;
    fkm_params p;
    fkm_params_default(&p);
    flag *v;
    int64_t i64;
    if (!get(f, nf, "--k")) return usage_error("fit: --k is required%s%s", "", ""), 2;
    if (parse_i64("--k", get(f, nf, "--k")->value, &p.k)) return 2;
    if ((v = get(f, nf, "--iters"))) {
        if (parse_i64("--iters", v->value, &i64)) return 2;
        if (i64 < 0 || i64 > 1000000000) return usage_error("--iters '%s' must be between 0 and 1e9%s", v->value, ""), 2;
        p.max_iter = (int)i64;
    }
    if ((v = get(f, nf, "--tol")) && parse_f64("--tol", v->value, &p.tol)) return 2;
    if ((v = get(f, nf, "--seed")) && parse_u64("--seed", v->value, &p.seed)) return 2;
    char *initbuf = NULL, *wbuf = NULL;
    if ((v = get(f, nf, "--init")) && strcmp(v->value, "kmeans++") == 0) {
        p.init = FKM_INIT_KMEANSPP;
    } else if (v && strcmp(v->value, "kmeans||") == 0) {
        p.init = FKM_INIT_KMEANS_PAR;
    } else if (v && strcmp(v->value, "random") != 0) {
        /* FILE.h5:/dataset — the dataset starts at the last ":/"; without one, /centroids. */
        initbuf = strdup(v->value);
        split_file_dataset(initbuf, &p.init_dataset);
        p.init = FKM_INIT_FILE;
        p.init_file = initbuf;
    }
    int choice;
    if ((v = get(f, nf, "--weights"))) { /* FILE[:/dataset], /weights by default */
        wbuf = strdup(v->value);
        split_file_dataset(wbuf, &p.weights_dataset);
        p.weights = wbuf;
    }
    if (parse_run_flags(f, nf, &p)) return free(initbuf), free(wbuf), 2;
    if ((v = get(f, nf, "--empty"))) {
        static const char *const names[] = {"split", "keep"};
        if (pick("--empty", v->value, names, 2, &choice)) return free(initbuf), free(wbuf), 2;
        p.empty = (fkm_empty)choice;
    }
    if ((v = get(f, nf, "--output"))) p.output = v->value;
    if (get(f, nf, "--labels")) p.write_labels = 1;
    if (get(f, nf, "--distances")) {
        if (!p.write_labels) return free(initbuf), free(wbuf), usage_error("--distances needs --labels%s%s", "", ""), 2;
        p.write_distances = 1;
    }
    if ((v = get(f, nf, "--checkpoint"))) p.checkpoint = v->value;
    if ((v = get(f, nf, "--resume"))) p.resume = v->value;
    if ((v = get(f, nf, "--checkpoint-every"))) {
        if (parse_i64("--checkpoint-every", v->value, &i64)) return free(initbuf), free(wbuf), 2;
        if (i64 < 1 || i64 > 1000000000) return free(initbuf), free(wbuf), usage_error("--checkpoint-every '%s' must be ≥ 1%s", v->value, ""), 2;
        p.checkpoint_every = (int)i64;
    }
    if ((v = get(f, nf, "--init-sample"))) {
        if (parse_i64("--init-sample", v->value, &p.init_sample)) return free(initbuf), free(wbuf), 2;
        if (p.init_sample < 1) return free(initbuf), free(wbuf), usage_error("--init-sample '%s' must be ≥ 1%s", v->value, ""), 2;
        if (p.init != FKM_INIT_KMEANSPP)
            return free(initbuf), free(wbuf), usage_error("--init-sample needs --init kmeans++%s%s", "", ""), 2;
    }
    if ((v = get(f, nf, "--max-points-per-centroid"))) {
        if (parse_i64("--max-points-per-centroid", v->value, &p.max_points_per_centroid)) return free(initbuf), free(wbuf), 2;
        if (p.max_points_per_centroid < 1)
            return free(initbuf), free(wbuf), usage_error("--max-points-per-centroid '%s' must be ≥ 1%s", v->value, ""), 2;
    }
    if ((v = get(f, nf, "--shift-tol"))) {
        if (parse_f64("--shift-tol", v->value, &p.shift_tol)) return free(initbuf), free(wbuf), 2;
        if (p.shift_tol < 0) return free(initbuf), free(wbuf), usage_error("--shift-tol '%s' must be ≥ 0%s", v->value, ""), 2;
    }
    if ((v = get(f, nf, "--reassign-tol"))) {
        if (parse_f64("--reassign-tol", v->value, &p.reassign_tol)) return free(initbuf), free(wbuf), 2;
        if (p.reassign_tol < 0 || p.reassign_tol > 1)
            return free(initbuf), free(wbuf), usage_error("--reassign-tol '%s' must lie in [0, 1]%s", v->value, ""), 2;
    }
    if ((v = get(f, nf, "--log-json"))) p.log_json = v->value;

    fkm_error err;
    fkm_result res;
    int st = fkm_fit(&p, &res, &err);
    free(initbuf);
    free(wbuf);
    if (st) return report(&err);
    fkm_result_free(&res);
    return 0;
}

/* fkm assign: one assignment pass of the rows to trained centroids (fkm_fit with the
 * centroids as a FILE init, k their count, no iteration), /labels always written. */
static int cmd_assign(int argc, char **argv)
{
    flag f[] = {{"--centroids", 1}, {"--input", 1},     {"--dataset", 1},   {"--output", 1},
                {"--distances", 0}, {"--backend", 1},   {"--precision", 1}, {"--comm", 1},
                {"--device", 1},    {"--residency", 1}, {"--chunk-rows", 1}, {"--skip-nonfinite", 0},
                {"-q", 0},          {"-v", 0},          {"--metric", 1}};
    const int nf = sizeof f / sizeof f[0];
    if (parse_flags(argc, argv, f, nf, NULL)) return 2;
    fkm_params p;
    fkm_params_default(&p);
    flag *v;
    if (!(v = get(f, nf, "--centroids"))) return usage_error("assign: --centroids is required%s%s", "", ""), 2;
    if (!get(f, nf, "--output")) return usage_error("assign: --output is required%s%s", "", ""), 2;
    char *cbuf = strdup(v->value);
    split_file_dataset(cbuf, &p.init_dataset); /* without ":/dataset", /centroids */
    p.init = FKM_INIT_FILE;
    p.init_file = cbuf;
    p.max_iter = 0;
    p.empty = FKM_EMPTY_KEEP;
    p.write_labels = 1;
    p.output = get(f, nf, "--output")->value;
    if (get(f, nf, "--distances")) p.write_distances = 1;
    if (parse_run_flags(f, nf, &p)) return free(cbuf), 2;
    /* k: the number of centroids in the file (every rank reads the same header) */
    fkm_error err;
    fkm_error_clear(&err);
    fkm_reader *r = NULL;
    fkm_dsinfo info;
    if (fkm_reader_open(p.init_file, p.init_dataset, &r, &info, &err)) {
        char msg[900];
        snprintf(msg, sizeof msg, "%.880s", err.msg);
        snprintf(err.msg, sizeof err.msg, "--centroids: %s", msg);
        free(cbuf);
        return report(&err);
    }
    fkm_reader_close(r);
    p.k = info.n;
    fkm_result res;
    int st = fkm_fit(&p, &res, &err);
    free(cbuf);
    if (st) return report(&err);
    fkm_result_free(&res);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("fkm %s\n", FKM_VERSION);
        return 0;
    }
    const char *cmd = argv[1];
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
    if (strcmp(cmd, "gen") == 0) return cmd_gen(argc - 2, argv + 2);
    if (strcmp(cmd, "info") == 0) return cmd_info(argc - 2, argv + 2);
    if (strcmp(cmd, "fit") == 0 || strcmp(cmd, "assign") == 0) {
        /* MPI first, so that only rank 0 prints a usage error and every rank exits alike. */
        int provided;
        if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            fprintf(stderr, "fkm: error: MPI_Init failed\n");
            return 1;
        }
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        int rc = strcmp(cmd, "fit") == 0 ? cmd_fit(argc - 2, argv + 2) : cmd_assign(argc - 2, argv + 2);
        MPI_Finalize();
        return rc;
    }
    usage_error("unknown command '%s'%s", cmd, "");
    return 2;
}
