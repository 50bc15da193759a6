#include "log.h"

#include <math.h>

static void json_num(FILE *f, const char *key, double v)
{ /* JSON has no NaN: the first iteration's relative change is null */
    if (isfinite(v))
        fprintf(f, ",\"%s\":%.17g", key, v);
    else
        fprintf(f, ",\"%s\":null", key);
}

void fkm_log_iter(FILE *human, FILE *json, const fkm_iter_stats *s)
{
    if (human) {
        fprintf(human,
                "iter %4d  inertia %.9e  rel_change %-10.3e  max_shift %-10.3e  empty %lld  ",
                s->iter, s->inertia, s->rel_change, s->max_shift, (long long)s->empty);
        if (isfinite(s->reassigned)) fprintf(human, "reassigned %-10.3e  ", s->reassigned);
        fprintf(human, "ms %.2f (assign %.2f update %.2f comm %.2f)\n", s->ms_total, s->ms_assign,
                s->ms_update, s->ms_comm);
        fflush(human);
    }
    if (json) {
        fprintf(json, "{\"iter\":%d", s->iter);
        json_num(json, "inertia", s->inertia);
        json_num(json, "rel_change", s->rel_change);
        json_num(json, "max_shift", s->max_shift);
        fprintf(json, ",\"empty\":%lld", (long long)s->empty);
        if (isfinite(s->reassigned)) json_num(json, "reassigned", s->reassigned);
        json_num(json, "ms", s->ms_total);
        json_num(json, "ms_assign", s->ms_assign);
        json_num(json, "ms_update", s->ms_update);
        json_num(json, "ms_comm", s->ms_comm);
        fprintf(json, "}\n");
        fflush(json);
    }
}

void fkm_log_summary(FILE *human, FILE *json, const fkm_result *r, double ms_total)
{
    if (human) {
        fprintf(human, "done: %s; %d iterations, final inertia %.9e, %.1f ms\n", r->stop_reason,
                r->iterations, r->inertia, ms_total);
        fflush(human);
    }
    if (json) {
        fprintf(json, "{\"done\":true,\"iterations\":%d,\"converged\":%s", r->iterations,
                r->converged ? "true" : "false");
        json_num(json, "inertia", r->inertia);
        json_num(json, "ms", ms_total);
        fprintf(json, ",\"reason\":\"%s\"}\n", r->stop_reason);
        fflush(json);
    }
}
