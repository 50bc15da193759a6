/* The iteration log: one line per iteration on rank 0, the same as JSON lines on request. */
#ifndef FKM_LOG_H
#define FKM_LOG_H

#include "fkm.h"
#include <stdio.h>

void fkm_log_iter(FILE *human, FILE *json, const fkm_iter_stats *s);
void fkm_log_summary(FILE *human, FILE *json, const fkm_result *r, double ms_total);

#endif
