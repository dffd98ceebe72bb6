/* Resource planning (see cquant/plan.h). Sizes saturate: a hostile shape must give a clear
 * "exceeds" error, not a wrapped small number. */
#include "cquant/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>

static size_t sat_add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

static size_t sat_mul(size_t a, size_t b)
{
    return (a && b > SIZE_MAX / a) ? SIZE_MAX : a * b;
}

size_t cq_plan_linear_bytes(int64_t rows, int64_t cols, int bits, int group_size, int hessian)
{
    if (rows < 0 || cols < 0)
        return SIZE_MAX;
    size_t r = (size_t)rows, c = (size_t)cols, rc = sat_mul(r, c);
    size_t groups = group_size > 0 ? (c + (size_t)group_size - 1) / (size_t)group_size : 1;
    size_t per_group = sat_mul(groups, r); /* one scale and zero per group and row */
    size_t b = sat_mul(rc, 2 * sizeof(float)); /* weight and its dequantized copy */
    b = sat_add(b, rc);                         /* codes, one byte each */
    b = sat_add(b, sat_mul(per_group, sizeof(float) + 1));
    b = sat_add(b, sat_mul(c, sizeof(int32_t))); /* g_idx */
    /* packed: codes at `bits` (rounded up to whole words), F16 scales, packed zeros, g_idx */
    b = sat_add(b, sat_mul(rc, (size_t)(bits > 0 ? bits : 8)) / 8 + 64);
    b = sat_add(b, sat_mul(per_group, 2 + 4));
    b = sat_add(b, sat_mul(c, sizeof(int32_t)));
    if (hessian)
        b = sat_add(b, sat_mul(sat_mul(c, c), 2 * sizeof(double)));
    return b;
}

void cq_plan_tensor(cq_plan *p, const char *name, size_t heap, size_t mapped)
{
    size_t need = sat_add(sat_add(CQ_PLAN_FIXED_OVERHEAD, heap), mapped);
    if (need > p->peak_bytes) {
        p->peak_bytes = need;
        p->peak_tensor = name;
    }
}

void cq_plan_output(cq_plan *p, size_t bytes) { p->output_bytes = sat_add(p->output_bytes, bytes); }

void cq_format_bytes(size_t bytes, char *buf, size_t n)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 6) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, n, "%zu B", bytes);
    else
        snprintf(buf, n, "%.1f %s", v, unit[u]);
}

int cq_plan_check_memory(const cq_plan *p, size_t limit, cq_error *err)
{
    if (limit == 0 || p->peak_bytes <= limit)
        return CQ_OK;
    char need[32], have[32];
    cq_format_bytes(p->peak_bytes, need, sizeof need);
    cq_format_bytes(limit, have, sizeof have);
    if (p->peak_tensor)
        return cq_errorf(err, CQ_E_NOMEM,
                         "planned peak memory %s (tensor '%s') exceeds --max-memory %s", need,
                         p->peak_tensor, have);
    return cq_errorf(err, CQ_E_NOMEM, "planned peak memory %s exceeds --max-memory %s", need,
                     have);
}

int cq_plan_check_disk(const cq_plan *p, const char *dir, cq_error *err)
{
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0)
        return CQ_OK;
    size_t avail = sat_mul((size_t)sv.f_bavail, (size_t)sv.f_frsize);
    /* test hook (tests/cli/limits.sh): pretend the filesystem has this many bytes free */
    const char *fake = getenv("CQ_TEST_DISK_FREE");
    if (fake && *fake)
        avail = (size_t)strtoull(fake, NULL, 10);
    if (avail >= p->output_bytes)
        return CQ_OK;
    char need[32], have[32];
    cq_format_bytes(p->output_bytes, need, sizeof need);
    cq_format_bytes(avail, have, sizeof have);
    return cq_errorf(err, CQ_E_IO, "'%s': not enough free space: the output needs about %s, "
                     "%s available", dir, need, have);
}
