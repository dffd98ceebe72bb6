/* Whole-model GPTQ (see gptq_model.h). Hessians: each forward chunk's XᵀX is formed by one
 * cq_det_ssyrk in float32 (upper triangle, half the flops of sgemm) and added as a float64 leaf
 * of a fixed tree over chunks (below); the per-chunk sum has at most chunk_tokens terms, the
 * sums over chunks are double (docs/algorithms.md has the numbers behind this choice). */
#include "cquant/gptq_model.h"

#include "cquant/checked.h"
#include "cquant/dist.h"
#include "cquant/dtype.h"
#include "linalg/det.h"
#include "quant/gptq_moe.h"
#include "quant/par.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { N_POINTS = 4 };

/* The Linears fed by each hook point, in the reference's true-sequential order (§E.13). */
static const int point_lins[N_POINTS][3] = {
    {CQ_LIN_K, CQ_LIN_V, CQ_LIN_Q},
    {CQ_LIN_O, -1, -1},
    {CQ_LIN_UP, CQ_LIN_GATE, -1},
    {CQ_LIN_DOWN, -1, -1},
};

void cq_gptq_model_opts_defaults(cq_gptq_model_opts *o)
{
    memset(o, 0, sizeof *o);
    o->true_sequential = true;
}

/* ---- one Linear ---- */

/* tr(A·H·Aᵀ) of `rows` rows of A with H given in f32 (row blocks through sgemm; sums in
 * double). p is scratch [blk x cols]. */
static double trace_aha(const float *a, int64_t rows, int64_t cols, const float *hf, float *p,
                        int64_t blk)
{
    double tr = 0.0;
    for (int64_t r0 = 0; r0 < rows; r0 += blk) {
        int64_t nr = rows - r0 < blk ? rows - r0 : blk;
        cq_det_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)cols, (int)cols,
                    1.0f, a + r0 * cols, (int)cols, hf, (int)cols, 0.0f, p, (int)cols);
        const float *ar = a + r0 * cols;
        for (int64_t i = 0; i < nr * cols; i++)
            tr += (double)ar[i] * (double)p[i];
    }
    return tr;
}

static void round_scales_f16(cq_qresult *r)
{
    for (int64_t i = 0; i < r->n_groups * r->rows; i++)
        r->scale[i] = cq_f16_to_f32(cq_f32_to_f16(r->scale[i]));
}

/* The three traces (GPTQ, RTN, W itself) with one f32 copy of H. */
static int measure(const float *w, const float *qg, const float *qr_rtn, int64_t rows,
                   int64_t cols, const double *h, cq_gptq_lin_stats *st, cq_error *err)
{
    enum { BLK = 64 };
    size_t n2 = (size_t)cols * (size_t)cols, nw = (size_t)rows * (size_t)cols;
    float *hf = malloc(n2 * sizeof *hf), *p = malloc((size_t)BLK * (size_t)cols * sizeof *p);
    float *d = malloc(nw * sizeof *d);
    if (!hf || !p || !d) {
        free(hf);
        free(p);
        free(d);
        return cq_errorf(err, CQ_E_NOMEM, "out of memory measuring a %lld x %lld matrix",
                         (long long)rows, (long long)cols);
    }
    for (size_t i = 0; i < n2; i++)
        hf[i] = (float)h[i];
    double sw = 0.0, sd = 0.0;
    for (size_t i = 0; i < nw; i++) {
        d[i] = w[i] - qg[i];
        sw += (double)w[i] * w[i];
        sd += (double)d[i] * d[i];
    }
    st->gptq_loss = trace_aha(d, rows, cols, hf, p, BLK) / 2.0;
    for (size_t i = 0; i < nw; i++)
        d[i] = w[i] - qr_rtn[i];
    st->rtn_loss = trace_aha(d, rows, cols, hf, p, BLK) / 2.0;
    st->out_energy = trace_aha(w, rows, cols, hf, p, BLK) / 2.0;
    st->rel_weight_error = sw > 0 ? sqrt(sd / sw) : 0.0;
    st->rel_output_error = st->out_energy > 0 ? sqrt(st->gptq_loss / st->out_energy) : 0.0;
    st->rtn_rel_output_error = st->out_energy > 0 ? sqrt(st->rtn_loss / st->out_energy) : 0.0;
    free(hf);
    free(p);
    free(d);
    return CQ_OK;
}

int cq_gptq_linear(const cq_qconfig *q, const float *w, int64_t rows, int64_t cols,
                   const double *h, float *q_out, cq_qresult *qr, cq_gptq_lin_stats *st,
                   cq_error *err)
{
    double t0 = cq_par_now();
    size_t nw;
    cq_qresult rq = {0};
    float *rtn_w = NULL;
    memset(st, 0, sizeof *st);
    if (cq_mul_size((size_t)rows, (size_t)cols, &nw) || cq_mul_size(nw, sizeof(float), &nw))
        return cq_errorf(err, CQ_E_USAGE, "matrix %lld x %lld is too large", (long long)rows,
                         (long long)cols);
    memcpy(q_out, w, nw);
    int rc = cq_gptq_quantize(q, q_out, rows, cols, h, qr, err);
    if (rc != CQ_OK)
        return rc;
    st->gptq_loss_ref = qr->loss;
    st->damp_used = qr->damp_used;
    st->damp_tries = qr->damp_tries;
    st->dead_cols = qr->dead_cols;
    /* Measure what the checkpoint holds: F16 scales, as every layout stores them. */
    round_scales_f16(qr);
    cq_qresult_dequant(qr, q_out);
    if ((rc = cq_rtn_quantize(q, w, rows, cols, &rq, err)) == CQ_OK) {
        round_scales_f16(&rq);
        if (!(rtn_w = malloc(nw)))
            rc = cq_errorf(err, CQ_E_NOMEM, "out of memory for the rtn comparison");
    }
    if (rc == CQ_OK) {
        cq_qresult_dequant(&rq, rtn_w);
        rc = measure(w, q_out, rtn_w, rows, cols, h, st, err);
    }
    free(rtn_w);
    cq_qresult_release(&rq);
    if (rc != CQ_OK)
        cq_qresult_release(qr);
    st->seconds = cq_par_now() - t0;
    return rc;
}

/* ---- Hessian accumulation through the layer hook ----
 *
 * The calibration sequences are cut into fixed blocks of chunk_seqs sequences (one forward
 * chunk each). A block's XᵀX is one ssyrk in f32, promoted to f64: a leaf of the fixed binary
 * tree of cq_dist_tree (pairwise sums over block index). The tree depends only on the block
 * count, so one process and N ranks (each forwarding a contiguous run of blocks) produce the
 * same bits. */

typedef struct hacc {
    cq_dist_tree *tree[N_POINTS]; /* upper triangles summed over blocks, [cols x cols] */
    int64_t cols[N_POINTS];
    bool active[N_POINTS];
    int stop_after;        /* hook point after which the chunk is skipped, or -1 */
    int64_t block;         /* global index of the block being forwarded */
    float *tmp;            /* [max cols^2] one chunk's XᵀX */
    int bad_point;         /* non-finite input seen here, or -1 */
    int tree_rc;           /* a failed tree add (out of memory) */
} hacc;

static bool all_finite(const float *x, int64_t n)
{
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++)
        acc += x[i] * 0.0f; /* NaN*0 and Inf*0 are NaN: one branch for the whole chunk */
    return acc == 0.0f;
}

/* Packed upper triangle: row i holds columns i..cols-1; half the memory and bytes of the
 * square (the sums are the same element by element). */
static size_t packed_len(int64_t cols) { return (size_t)(cols * (cols + 1) / 2); }

/* One block's XᵀX (upper triangle, packed) as a leaf of point `which`'s tree. */
static int hacc_leaf(hacc *a, int which, const float *x, int64_t n, int64_t cols)
{
    cq_det_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)n, 1.0f, x, (int)cols,
                 0.0f, a->tmp, (int)cols);
    double *leaf = cq_dist_tree_slot(a->tree[which]);
    if (!leaf)
        return a->tree_rc = CQ_E_NOMEM;
    double *o = leaf;
    for (int64_t i = 0; i < cols; i++)
        for (int64_t j = i; j < cols; j++)
            *o++ = a->tmp[i * cols + j];
    cq_error e = CQ_ERROR_INIT;
    int rc = cq_dist_tree_add(a->tree[which], a->block, leaf, &e);
    return rc != CQ_OK ? (a->tree_rc = rc) : CQ_OK;
}

static int hacc_hook(void *ctx, int which, const float *x, int64_t n, int64_t cols)
{
    hacc *a = ctx;
    if (which < 0 || which >= N_POINTS)
        return CQ_E_INTERNAL;
    if (a->active[which]) {
        if (cols != a->cols[which] || n > INT32_MAX)
            return CQ_E_INTERNAL;
        if (!all_finite(x, n * cols)) {
            a->bad_point = which;
            return CQ_E_NUMERIC;
        }
        int rc = hacc_leaf(a, which, x, n, cols);
        if (rc != CQ_OK)
            return rc;
    }
    return which == a->stop_after ? CQ_HOOK_SKIP : CQ_OK;
}

/* Unpack the summed upper triangle into the square H, mirrored and scaled by 2/n_seq (§E.1). */
static void hacc_finish(const double *packed, double *h, int64_t cols, int64_t n_seq)
{
    double s = 2.0 / (double)n_seq;
    for (int64_t i = 0; i < cols; i++)
        for (int64_t j = i; j < cols; j++) {
            double v = *packed++ * s;
            h[i * cols + j] = v;
            h[j * cols + i] = v;
        }
}

/* ---- the driver ---- */

typedef struct drv {
    const cq_model_config *cfg;
    const cq_st_model *st;
    const cq_qconfig *q;
    const cq_gptq_model_opts *o;
    const cq_gptq_hooks *hk;
    cq_llama *m;
    float *hidden, *scratch;   /* this rank's activations; one chunk of pass output */
    int64_t n_seq, seqlen, chunk_seqs;
    int64_t n_blocks, block0;  /* all blocks; this rank's first block */
    int64_t local_seq;         /* sequences held here */
    unsigned wanted;           /* the layer's Linears to quantize (bit per cq_lin), rank 0's */
    int64_t next_owner;        /* round-robin owner of the next Linear */
    cq_layer_weights w;
    float *wq;                 /* a received quantized Linear (largest size) */
    hacc acc;
    gptq_moe *moe;             /* the experts' accumulators (configs with experts) */
} drv;

static const char *point_name(const drv *d, int p)
{
    if (d->cfg->arch == CQ_ARCH_OPT) {
        static const char *const opt[N_POINTS] = {"self_attn.q_proj/k_proj/v_proj",
                                                  "self_attn.out_proj", "fc1", "fc2"};
        return opt[p];
    }
    static const char *const names[N_POINTS] = {
        "self_attn.q_proj/k_proj/v_proj", "self_attn.o_proj", "mlp.gate_proj/up_proj",
        "mlp.down_proj"};
    return names[p];
}

static bool wants(const drv *d, int lin) { return (d->wanted >> lin) & 1u; }

static bool point_wanted(const drv *d, int p)
{
    if (d->w.sparse && p >= CQ_HOOK_GATEUP_IN) /* the MoE block: gptq_moe_layer */
        return false;
    for (int k = 0; k < 3 && point_lins[p][k] >= 0; k++)
        if (wants(d, point_lins[p][k]))
            return true;
    return false;
}

/* The dense points go to hacc; a sparse layer's MLP input and expert points to gptq_moe. */
static int pass_hook(void *ctx, int which, const float *x, int64_t n, int64_t cols)
{
    drv *d = ctx;
    if (d->moe && (which >= CQ_HOOK_MOE_BASE || (which == CQ_HOOK_GATEUP_IN && d->w.sparse)))
        return gptq_moe_hook(d->moe, which, x, n, cols);
    return hacc_hook(&d->acc, which, x, n, cols);
}

/* The hook decides on rank 0 (it owns the output plan); every rank gets the same mask. */
static int layer_wants(drv *d, int64_t layer, cq_error *err)
{
    uint32_t mask = 0;
    for (int l = 0; l < CQ_LIN_COUNT; l++)
        if (cq_linear_present(d->cfg, l) && /* OPT has no gate */
            (!d->hk->wants || d->hk->wants(d->hk->ctx, layer, l)))
            mask |= 1u << l;
    int rc = cq_dist_bcast(&mask, sizeof mask, 0, err);
    d->wanted = mask;
    return rc;
}

/* One pass of the layer over this rank's sequences; output to scratch (Hessian passes, each
 * chunk one block of the tree) or in place. */
static int layer_pass(drv *d, int64_t layer, bool in_place, cq_error *err)
{
    int64_t H = d->cfg->hidden, S = d->seqlen;
    int rc = CQ_OK;
    d->acc.bad_point = -1;
    d->acc.tree_rc = CQ_OK;
    for (int64_t s0 = 0; s0 < d->local_seq && rc == CQ_OK; s0 += d->chunk_seqs) {
        int64_t ns = d->local_seq - s0 < d->chunk_seqs ? d->local_seq - s0 : d->chunk_seqs;
        float *x = d->hidden + s0 * S * H;
        d->acc.block = d->block0 + s0 / d->chunk_seqs;
        rc = cq_layer_forward(d->m, &d->w, x, in_place ? x : d->scratch, ns, S,
                              in_place ? NULL : pass_hook, d, err);
    }
    if (rc != CQ_OK && d->acc.bad_point >= 0) {
        *err = (cq_error)CQ_ERROR_INIT; /* replace the forward's generic hook message */
        return cq_errorf(err, CQ_E_NUMERIC,
                         "layer %lld: non-finite calibration activations at the input of %s",
                         (long long)layer, point_name(d, d->acc.bad_point));
    }
    if (rc != CQ_OK && d->acc.tree_rc != CQ_OK) {
        *err = (cq_error)CQ_ERROR_INIT;
        return cq_errorf(err, d->acc.tree_rc, "layer %lld: out of memory for Hessian sums",
                         (long long)layer);
    }
    if (rc != CQ_OK)
        cq_error_prefix(err, "layer %lld", (long long)layer);
    return rc;
}

/* One Linear with a square H in this process (the MoE experts: refused under mpirun, see
 * cq_gptq_model_run); tag: the MoE fields of the stats. */
static int quantize_lin(drv *d, int64_t layer, int lin, const double *h,
                        const cq_gptq_lin_stats *tag, cq_error *err)
{
    int64_t rows, cols;
    cq_linear_shape(d->cfg, lin, &rows, &cols);
    cq_qresult qr = {0};
    cq_gptq_lin_stats st;
    float *w = cq_layer_linear(&d->w, lin);
    int rc = cq_gptq_linear(d->q, w, rows, cols, h, d->wq, &qr, &st, err);
    st.expert = tag ? tag->expert : -1;
    st.routed_tokens = tag ? tag->routed_tokens : 0;
    st.hessian_tokens = tag ? tag->hessian_tokens : d->n_seq * d->seqlen;
    st.moe_fallback = tag && tag->moe_fallback;
    if (rc == CQ_OK && d->hk->linear_done)
        rc = d->hk->linear_done(d->hk->ctx, layer, lin, w, &qr, &st, err);
    if (rc == CQ_OK) /* later passes see the quantized Linear (§E.13) */
        memcpy(w, d->wq, (size_t)(rows * cols) * sizeof(float));
    cq_qresult_release(&qr);
    char mod[160];
    if (rc != CQ_OK)
        cq_error_prefix(err, "layer %lld %s", (long long)layer,
                        cq_linear_module(d->cfg, lin, mod, sizeof mod));
    return rc;
}

/* A quantized Linear on its owner rank. */
typedef struct lin_res {
    int lin, owner;
    float *q;              /* dequantized checkpoint weights (owner) */
    cq_qresult qr;         /* owner and rank 0 */
    cq_gptq_lin_stats st;
} lin_res;

/* Rank 0 holds the summed, packed Hessian; each owner of one of the point's Linears gets a
 * copy (packed) and unpacks it into the square H it quantizes with. */
static int send_hessian(drv *d, int p, const lin_res *r, int n, const double *packed,
                        double **mine, cq_error *err)
{
    int me = cq_dist_rank(), rc = CQ_OK;
    int64_t cols = d->acc.cols[p];
    size_t pb = packed_len(cols) * sizeof(double);
    double *buf = NULL;
    *mine = NULL;
    for (int k = 0; k < n && rc == CQ_OK; k++) {
        bool seen = false;
        for (int j = 0; j < k; j++)
            seen = seen || r[j].owner == r[k].owner;
        if (seen || (me != 0 && me != r[k].owner))
            continue;
        if (me == 0 && r[k].owner != 0) {
            rc = cq_dist_send(packed, pb, r[k].owner, err);
            continue;
        }
        /* this rank quantizes with it */
        if (!(*mine = malloc((size_t)(cols * cols) * sizeof(double))) ||
            (me != 0 && !(buf = malloc(pb)))) {
            rc = cq_errorf(err, CQ_E_NOMEM, "out of memory for a Hessian copy");
            break;
        }
        if (me != 0)
            rc = cq_dist_recv(buf, pb, 0, err);
        if (rc == CQ_OK)
            hacc_finish(me == 0 ? packed : buf, *mine, cols, d->n_seq);
    }
    free(buf);
    return rc;
}

static int quantize_mine(drv *d, int64_t layer, lin_res *r, const double *h, cq_error *err)
{
    int64_t rows, cols;
    cq_linear_shape(d->cfg, r->lin, &rows, &cols);
    char mod[160];
    cq_linear_module(d->cfg, r->lin, mod, sizeof mod);
    if (!(r->q = malloc((size_t)(rows * cols) * sizeof(float))))
        return cq_errorf(err, CQ_E_NOMEM, "layer %lld %s: out of memory", (long long)layer, mod);
    int rc = cq_gptq_linear(d->q, d->w.lin[r->lin], rows, cols, h, r->q, &r->qr, &r->st, err);
    r->st.expert = -1; /* dense: no MoE fields */
    r->st.routed_tokens = 0;
    r->st.hessian_tokens = d->n_seq * d->seqlen;
    r->st.moe_fallback = false;
    if (rc != CQ_OK)
        cq_error_prefix(err, "layer %lld %s", (long long)layer, mod);
    return rc;
}

/* The owner's result to every rank (weights) and to rank 0 (codes, scales, numbers). */
static int share_result(drv *d, lin_res *r, cq_error *err)
{
    int me = cq_dist_rank();
    int64_t rows, cols;
    cq_linear_shape(d->cfg, r->lin, &rows, &cols);
    size_t nw = (size_t)(rows * cols);
    float *q = me == r->owner ? r->q : d->wq;
    int rc = cq_dist_bcast(q, nw * sizeof(float), r->owner, err);
    if (rc != CQ_OK || r->owner == 0 || (me != 0 && me != r->owner))
        return rc;
    cq_qresult *x = &r->qr;
    if (me == 0 && (rc = cq_qresult_alloc(x, rows, cols, d->q, err)) != CQ_OK)
        return rc;
    size_t ng = (size_t)(x->n_groups * rows);
    struct { void *p; size_t n; } parts[] = {
        {x->q, nw}, {x->scale, ng * sizeof(float)}, {x->zero, ng},
        {x->g_idx, (size_t)cols * sizeof(int32_t)}, {&r->st, sizeof r->st}};
    cq_qresult head = *x;
    for (size_t i = 0; i < sizeof parts / sizeof *parts && rc == CQ_OK; i++)
        rc = me == 0 ? cq_dist_recv(parts[i].p, parts[i].n, r->owner, err)
                     : cq_dist_send(parts[i].p, parts[i].n, 0, err);
    if (rc == CQ_OK)
        rc = me == 0 ? cq_dist_recv(&head, sizeof head, r->owner, err)
                     : cq_dist_send(&head, sizeof head, 0, err);
    if (rc == CQ_OK && me == 0) { /* the diagnostics; the arrays are ours */
        x->loss = head.loss;
        x->damp_used = head.damp_used;
        x->damp_tries = head.damp_tries;
        x->dead_cols = head.dead_cols;
        x->secs_inverse = head.secs_inverse;
        x->secs_columns = head.secs_columns;
        x->secs_update = head.secs_update;
    }
    return rc;
}

/* Quantize the wanted Linears of point p with H (finished, on rank 0): round-robin over the
 * ranks, then in the fixed Linear order the results are shared, rank 0 reports each one, and
 * every rank puts the quantized weights into its layer (later passes see them, §E.13). */
static int quantize_point(drv *d, int64_t layer, int p, const double *h, cq_error *err)
{
    lin_res r[3];
    int n = 0, me = cq_dist_rank();
    memset(r, 0, sizeof r);
    for (int k = 0; k < 3 && point_lins[p][k] >= 0; k++)
        if (wants(d, point_lins[p][k])) {
            r[n].lin = point_lins[p][k];
            r[n++].owner = (int)(d->next_owner++ % cq_dist_size());
        }
    double *hm = NULL;
    int rc = send_hessian(d, p, r, n, h, &hm, err);
    cq_dist_tree_free(d->acc.tree[p]); /* the packed sum (h) is not needed any more */
    d->acc.tree[p] = NULL;
    for (int k = 0; k < n && rc == CQ_OK; k++)
        if (r[k].owner == me)
            rc = quantize_mine(d, layer, &r[k], hm, err);
    free(hm);
    rc = cq_dist_agree(rc, err);
    for (int k = 0; k < n && rc == CQ_OK; k++) {
        int64_t rows, cols;
        cq_linear_shape(d->cfg, r[k].lin, &rows, &cols);
        rc = share_result(d, &r[k], err);
        if (rc == CQ_OK && me == 0 && d->hk->linear_done)
            rc = d->hk->linear_done(d->hk->ctx, layer, r[k].lin, d->w.lin[r[k].lin], &r[k].qr,
                                    &r[k].st, err);
        if (rc == CQ_OK)
            memcpy(d->w.lin[r[k].lin], r[k].owner == me ? r[k].q : d->wq,
                   (size_t)(rows * cols) * sizeof(float));
        char mod[160];
        if (rc != CQ_OK)
            cq_error_prefix(err, "layer %lld %s", (long long)layer,
                            cq_linear_module(d->cfg, r[k].lin, mod, sizeof mod));
        rc = cq_dist_agree(rc, err);
    }
    for (int k = 0; k < n; k++) {
        free(r[k].q);
        cq_qresult_release(&r[k].qr);
    }
    return rc;
}

/* gptq_moe_env callbacks */
static int env_pass(void *ctx, int64_t layer, cq_error *err)
{
    drv *d = ctx;
    memset(d->acc.active, 0, sizeof d->acc.active); /* only the MoE accumulators listen */
    d->acc.stop_after = -1;
    return layer_pass(d, layer, false, err);
}

static int env_quantize(void *ctx, int64_t layer, int lin, const double *h,
                        const cq_gptq_lin_stats *tag, cq_error *err)
{
    return quantize_lin(ctx, layer, lin, h, tag, err);
}

static bool env_wants(void *ctx, int64_t layer, int lin)
{
    const drv *d = ctx;
    return !d->hk->wants || d->hk->wants(d->hk->ctx, layer, lin);
}

/* Collect the Hessians of the points in `mask` in one pass, then quantize their Linears. */
static int do_points(drv *d, int64_t layer, unsigned mask, cq_error *err)
{
    int last = -1, rc = CQ_OK;
    for (int p = 0; p < N_POINTS; p++) {
        d->acc.active[p] = (mask >> p) & 1u;
        if (d->acc.active[p] && rc == CQ_OK) {
            rc = cq_dist_tree_new(&d->acc.tree[p], d->n_blocks, packed_len(d->acc.cols[p]),
                                  err);
            last = p;
        }
    }
    d->acc.stop_after = last;
    if (rc == CQ_OK)
        rc = layer_pass(d, layer, false, err);
    rc = cq_dist_agree(rc, err);
    for (int p = 0; p < N_POINTS && rc == CQ_OK; p++) {
        if (!d->acc.active[p])
            continue;
        double *h = NULL;
        rc = cq_dist_tree_finish(d->acc.tree[p], &h, err);
        if (rc == CQ_OK)
            rc = quantize_point(d, layer, p, h, err);
    }
    for (int p = 0; p < N_POINTS; p++) {
        cq_dist_tree_free(d->acc.tree[p]);
        d->acc.tree[p] = NULL;
    }
    return rc;
}

static int run_layer(drv *d, int64_t layer, cq_error *err)
{
    double t0 = cq_par_now();
    int rc = cq_layer_load(&d->w, d->cfg, d->st, layer, err);
    if (rc == CQ_OK && d->hk->layer_loaded)
        rc = d->hk->layer_loaded(d->hk->ctx, layer, &d->w, err);
    rc = cq_dist_agree(rc, err);
    if (rc == CQ_OK)
        rc = layer_wants(d, layer, err);
    d->next_owner = 0;
    if (d->o->true_sequential) {
        for (int p = 0; p < N_POINTS && rc == CQ_OK; p++)
            if (point_wanted(d, p))
                rc = do_points(d, layer, 1u << p, err);
    } else if (rc == CQ_OK) {
        unsigned mask = 0;
        for (int p = 0; p < N_POINTS; p++)
            mask |= point_wanted(d, p) ? 1u << p : 0u;
        if (mask)
            rc = do_points(d, layer, mask, err);
    }
    gptq_moe_env env = {.ctx = d, .m = d->m, .pass = env_pass, .quantize = env_quantize,
                        .wants = env_wants};
    if (rc == CQ_OK && d->w.sparse)
        rc = gptq_moe_layer(d->moe, &env, layer, err);
    if (rc == CQ_OK)
        rc = layer_pass(d, layer, true, err);
    if (rc == CQ_OK && !all_finite(d->hidden, d->local_seq * d->seqlen * d->cfg->hidden))
        rc = cq_errorf(err, CQ_E_NUMERIC, "layer %lld: non-finite activations at its output",
                       (long long)layer);
    rc = cq_dist_agree(rc, err);
    /* collective on every rank (the resume state gathers the activations) */
    if (rc == CQ_OK && d->hk->layer_done)
        rc = d->hk->layer_done(d->hk->ctx, layer, d->hidden, cq_par_now() - t0, err);
    return cq_dist_agree(rc, err);
}

/* Tokens per forward chunk: the option (default 4096), at least one sequence, at most all of
 * them (the scratch is sized by the chunk: a small calibration set gets a small one). */
static int64_t effective_chunk(const cq_gptq_model_opts *o, int64_t n_seq, int64_t seqlen)
{
    int64_t chunk = o->chunk_tokens > 0 ? o->chunk_tokens : 4096;
    if (chunk > n_seq * seqlen)
        chunk = n_seq * seqlen;
    return chunk < seqlen ? seqlen : chunk;
}

void cq_gptq_model_share(const cq_gptq_model_opts *o, int64_t n_seq, int64_t seqlen,
                         int64_t *seq_begin, int64_t *seq_end)
{
    int64_t cs = effective_chunk(o, n_seq, seqlen) / seqlen;
    int64_t nb = (n_seq + cs - 1) / cs, b0, b1;
    cq_dist_share(nb, &b0, &b1);
    *seq_begin = b0 * cs < n_seq ? b0 * cs : n_seq;
    *seq_end = b1 * cs < n_seq ? b1 * cs : n_seq;
}

static void *xmalloc(size_t a, size_t b, bool *fail)
{
    size_t n;
    void *p = NULL;
    if (cq_mul_size(a, b, &n) == 0)
        p = malloc(n ? n : 1);
    if (!p)
        *fail = true;
    return p;
}

/* Does some layer use the dense MLP points? (Mixtral's layers are all sparse: their MLP
 * inputs go to gptq_moe.) */
static bool dense_mlp(const cq_model_config *c)
{
    for (int64_t l = 0; l < c->n_layers; l++)
        if (!cq_layer_is_moe(c, l))
            return true;
    return false;
}

/* Input width of hook point p, 0 when no layer uses it. */
static int64_t point_cols(const cq_model_config *c, int p)
{
    int64_t rows, cols;
    if (p >= CQ_HOOK_GATEUP_IN && !dense_mlp(c))
        return 0;
    cq_linear_shape(c, point_lins[p][0], &rows, &cols);
    return cols;
}

static int drv_setup(drv *d, cq_error *err)
{
    const cq_model_config *c = d->cfg;
    int64_t maxc = 0, maxw = 0, rows, cols, s0, s1;
    for (int l = 0; l < cq_linear_end(c); l++) {
        if (l >= CQ_LIN_COUNT && l < CQ_LIN_MOE_BASE)
            continue; /* no such index */
        cq_linear_shape(c, l, &rows, &cols);
        maxw = rows * cols > maxw ? rows * cols : maxw;
    }
    for (int p = 0; p < N_POINTS; p++) {
        d->acc.cols[p] = point_cols(c, p);
        maxc = d->acc.cols[p] > maxc ? d->acc.cols[p] : maxc;
    }
    int64_t chunk = effective_chunk(d->o, d->n_seq, d->seqlen);
    d->chunk_seqs = chunk / d->seqlen;
    d->n_blocks = (d->n_seq + d->chunk_seqs - 1) / d->chunk_seqs;
    cq_gptq_model_share(d->o, d->n_seq, d->seqlen, &s0, &s1);
    d->block0 = s0 / d->chunk_seqs;
    d->local_seq = s1 - s0;
    int rc = cq_llama_create(&d->m, c, d->seqlen, chunk, err);
    if (rc == CQ_OK)
        rc = cq_layer_alloc(&d->w, c, err);
    if (rc == CQ_OK && c->n_experts > 0)
        rc = gptq_moe_new(&d->moe, c, d->o, d->n_seq, d->seqlen, err);
    if (rc != CQ_OK)
        return rc;
    bool fail = false;
    d->scratch = xmalloc((size_t)(d->chunk_seqs * d->seqlen * c->hidden), sizeof(float), &fail);
    d->wq = xmalloc((size_t)maxw, sizeof(float), &fail);
    d->acc.tmp = xmalloc((size_t)(maxc * maxc), sizeof(float), &fail);
    if (fail)
        return cq_errorf(err, CQ_E_NOMEM, "out of memory for the gptq work arrays");
    return CQ_OK;
}

static void drv_free(drv *d)
{
    cq_llama_free(d->m);
    cq_layer_release(&d->w);
    gptq_moe_free(d->moe);
    free(d->scratch);
    free(d->wq);
    free(d->acc.tmp);
    for (int p = 0; p < N_POINTS; p++)
        cq_dist_tree_free(d->acc.tree[p]);
}

int cq_gptq_model_run(const cq_model_config *cfg, const cq_st_model *st, float *hidden,
                      int64_t n_seq, int64_t seqlen, int64_t first_layer, const cq_qconfig *q,
                      const cq_gptq_model_opts *o, const cq_gptq_hooks *hk, cq_error *err)
{
    if (n_seq < 1 || seqlen < 1 || first_layer < 0 || first_layer > cfg->n_layers)
        return cq_errorf(err, CQ_E_USAGE, "gptq: bad calibration shape %lld x %lld or layer %lld",
                         (long long)n_seq, (long long)seqlen, (long long)first_layer);
    drv d = {.cfg = cfg, .st = st, .q = q, .o = o, .hk = hk, .hidden = hidden, .n_seq = n_seq,
             .seqlen = seqlen};
    int rc = cq_qconfig_check(q, err);
    if (rc == CQ_OK)
        rc = drv_setup(&d, err);
    rc = cq_dist_agree(rc, err);
    for (int64_t l = first_layer; l < cfg->n_layers && rc == CQ_OK; l++)
        rc = run_layer(&d, l, err);
    drv_free(&d);
    return rc;
}

/* ---- memory plan ---- */

void cq_gptq_model_plan(const cq_model_config *c, int64_t n_seq, int64_t seqlen,
                        const cq_gptq_model_opts *o, cq_gptq_plan *p)
{
    memset(p, 0, sizeof *p);
    int64_t rows, cols, maxc = 0, sumh = 0, lw = 0, worst = 0;
    for (int l = 0; l < cq_linear_end(c); l++) {
        if (l < CQ_LIN_COUNT ? !cq_linear_present(c, l) : l < CQ_LIN_MOE_BASE)
            continue;
        cq_linear_shape(c, l, &rows, &cols);
        lw += rows * cols;
        maxc = cols > maxc ? cols : maxc;
        /* cq_gptq_quantize: damped copy (f64) + U (f32) + row buffers; then the metrics:
         * H in f32, the difference matrix, the RTN copy and its codes */
        int64_t g = cols * cols * 8 + cols * cols * 4 + rows * cols * 2 + 4 * cols * 8;
        int64_t m = cols * cols * 4 + rows * cols * (4 + 4 + 1) + 64 * cols * 4;
        int64_t lin = (g > m ? g : m) + rows * cols * (4 + 1); /* + wq, qresult codes */
        worst = lin > worst ? lin : worst;
    }
    maxc = 0;
    for (int pt = 0; pt < N_POINTS; pt++) {
        cols = point_cols(c, pt);
        sumh += cols * cols;
        maxc = cols > maxc ? cols : maxc;
    }
    int64_t chunk = effective_chunk(o, n_seq, seqlen);
    int64_t qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    int64_t fwd = chunk * (3 * c->hidden + 2 * c->intermediate + qd + 2 * kd) + seqlen * seqlen;
    fwd += (chunk / seqlen) * seqlen * c->hidden; /* pass output scratch */
    int64_t s0, s1; /* this rank's share of the sequences */
    cq_gptq_model_share(o, n_seq, seqlen, &s0, &s1);
    p->activations = (size_t)((s1 - s0) * seqlen * c->hidden) * sizeof(float);
    p->layer_weights = (size_t)(lw + 2 * c->hidden) * sizeof(float);
    /* each point's sum tree holds a stack of partial sums (cq_dist_tree_plan) */
    int64_t blocks = (n_seq + chunk / seqlen - 1) / (chunk / seqlen);
    int64_t arrays = cq_dist_tree_plan(blocks, cq_dist_size());
    /* packed partial sums (half a square each), the square H, the f32 ssyrk output */
    p->hessians = (size_t)((o->true_sequential ? maxc * maxc : sumh) * 4 * arrays +
                           maxc * maxc * (8 + 4));
    p->hessians += gptq_moe_plan_bytes(c);
    p->gptq_work = (size_t)worst;
    p->forward = (size_t)fwd * sizeof(float);
    p->total = p->activations + p->layer_weights + p->hessians + p->gptq_work + p->forward;
}
