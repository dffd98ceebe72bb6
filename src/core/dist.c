/* Distributed runs (see cquant/dist.h). The MPI calls are compiled only with CQ_MPI; the
 * fallback is rank 0 of 1. The fixed-tree summation below is plain C on both paths. */
#include "cquant/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CQ_MPI
#include <mpi.h>
#endif

static int g_world_rank, g_world_size = 1;
static bool g_solo;         /* rank 0 alone for a while (cq_dist_set_solo) */
static uint64_t g_sent;

/* The view every function below uses: the world, or rank 0 of 1 in solo mode. */
#define g_rank (g_solo ? 0 : g_world_rank)
#define g_size (g_solo ? 1 : g_world_size)

#ifdef CQ_MPI
static bool g_mpi;          /* MPI_Init was called by us */

/* Pieces of at most 1 GiB keep every MPI count an int. */
#define PIECE ((size_t)1 << 30)

/* Started by an MPI launcher? (OpenMPI, PMI/PMIx, Hydra.) Without one, no MPI_Init: the
 * binary runs exactly as the non-MPI build. */
static const char *const launcher_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE",
                                            "PMI_RANK", "MPI_LOCALNRANKS"};

static bool launched_by_mpi(void)
{
    for (size_t i = 0; i < sizeof launcher_vars / sizeof *launcher_vars; i++)
        if (getenv(launcher_vars[i]))
            return true;
    return false;
}

static int mpi_fail(cq_error *err, int code, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(code, msg, &n) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "error %d", code);
    return cq_errorf(err, CQ_E_IO, "mpi: %s failed on rank %d: %s (another rank died?)", what,
                     g_rank, msg);
}
#endif

int cq_dist_init(int *argc, char ***argv, cq_error *err)
{
#ifdef CQ_MPI
    if (!launched_by_mpi())
        return CQ_OK;
    int rc = MPI_Init(argc, argv);
    if (rc != MPI_SUCCESS)
        return cq_errorf(err, CQ_E_IO, "mpi: MPI_Init failed (%d)", rc);
    g_mpi = true;
    /* processes we start (batch jobs re-execute cquant) are single processes, not ranks */
    for (size_t i = 0; i < sizeof launcher_vars / sizeof *launcher_vars; i++)
        unsetenv(launcher_vars[i]);
    /* errors come back as return codes: we print one message and exit non-zero, and mpirun
     * ends the other ranks */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world_size);
#else
    (void)argc;
    (void)argv;
    (void)err;
#endif
    return CQ_OK;
}

void cq_dist_finalize(void)
{
#ifdef CQ_MPI
    if (g_mpi)
        MPI_Finalize();
    g_mpi = false;
#endif
}

void cq_dist_set_solo(bool solo) { g_solo = solo; }
int cq_dist_rank(void) { return g_rank; }
int cq_dist_size(void) { return g_size; }
bool cq_dist_active(void) { return g_size > 1; }
uint64_t cq_dist_bytes_sent(void) { return g_sent; }

int cq_dist_send(const void *buf, size_t bytes, int dest, cq_error *err)
{
#ifdef CQ_MPI
    const char *c = buf;
    for (size_t off = 0; off < bytes; off += PIECE) {
        size_t n = bytes - off < PIECE ? bytes - off : PIECE;
        int rc = MPI_Send(c + off, (int)n, MPI_BYTE, dest, 7, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, rc, "send");
        g_sent += n;
    }
    return CQ_OK;
#else
    (void)buf;
    (void)bytes;
    return cq_errorf(err, CQ_E_INTERNAL, "dist: send to rank %d in a single process", dest);
#endif
}

int cq_dist_recv(void *buf, size_t bytes, int src, cq_error *err)
{
#ifdef CQ_MPI
    char *c = buf;
    for (size_t off = 0; off < bytes; off += PIECE) {
        size_t n = bytes - off < PIECE ? bytes - off : PIECE;
        int rc = MPI_Recv(c + off, (int)n, MPI_BYTE, src, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, rc, "receive");
    }
    return CQ_OK;
#else
    (void)buf;
    (void)bytes;
    return cq_errorf(err, CQ_E_INTERNAL, "dist: receive from rank %d in a single process", src);
#endif
}

int cq_dist_bcast(void *buf, size_t bytes, int root, cq_error *err)
{
    if (g_size == 1)
        return CQ_OK;
#ifdef CQ_MPI
    char *c = buf;
    for (size_t off = 0; off < bytes; off += PIECE) {
        size_t n = bytes - off < PIECE ? bytes - off : PIECE;
        int rc = MPI_Bcast(c + off, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, rc, "broadcast");
    }
    if (g_rank == root) /* logical bytes: the payload reaching every other rank */
        g_sent += bytes * (uint64_t)(g_size - 1);
    return CQ_OK;
#else
    (void)buf;
    (void)bytes;
    (void)root;
    (void)err;
    return CQ_OK;
#endif
}

static int reduce_i64(int64_t *v, int n, bool max, cq_error *err)
{
    if (g_size == 1 || n <= 0)
        return CQ_OK;
#ifdef CQ_MPI
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_INT64_T, max ? MPI_MAX : MPI_SUM,
                           MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS)
        return mpi_fail(err, rc, "allreduce");
    g_sent += (uint64_t)n * sizeof *v;
    return CQ_OK;
#else
    (void)v;
    (void)max;
    (void)err;
    return CQ_OK;
#endif
}

int cq_dist_sum_i64(int64_t *v, int n, cq_error *err) { return reduce_i64(v, n, false, err); }
int cq_dist_max_i64(int64_t *v, int n, cq_error *err) { return reduce_i64(v, n, true, err); }

int cq_dist_agree(int rc, cq_error *err)
{
    if (g_size == 1)
        return rc;
    /* the lowest failing rank (or g_size: none) */
    int64_t first = rc != CQ_OK ? g_rank : g_size;
    int64_t neg = -first;
    cq_error local = CQ_ERROR_INIT;
    if (reduce_i64(&neg, 1, true, &local) != CQ_OK) {
        *err = local;
        return local.code;
    }
    first = -neg;
    if (first == g_size)
        return CQ_OK;
    cq_error msg = *err;
    if (g_rank == first && msg.code == CQ_OK)
        msg.code = rc;
    if (cq_dist_bcast(&msg, sizeof msg, (int)first, &local) != CQ_OK) {
        *err = local;
        return local.code;
    }
    msg.msg[sizeof msg.msg - 1] = '\0';
    if (g_rank != first) {
        *err = (cq_error)CQ_ERROR_INIT;
        cq_errorf(err, msg.code, "%s", msg.msg);
        if (first != 0)
            cq_error_prefix(err, "rank %d", (int)first);
    } else if (first != 0) {
        cq_error_prefix(err, "rank %d", (int)first);
    }
    return msg.code;
}

void cq_dist_share(int64_t n, int64_t *begin, int64_t *end)
{
    int64_t q = n / g_size, r = n % g_size, k = g_rank;
    *begin = k * q + (k < r ? k : r);
    *end = *begin + q + (k < r ? 1 : 0);
}

int cq_dist_owner(int64_t n, int64_t i)
{
    int64_t q = n / g_size, r = n % g_size;
    /* the first r ranks hold q+1 items, the rest q */
    if (i < r * (q + 1))
        return (int)(i / (q + 1));
    return q > 0 ? (int)(r + (i - r * (q + 1)) / q) : g_size - 1;
}

/* ---- fixed-tree summation ---- */

typedef struct node {
    int level;
    int64_t index;   /* covers leaves [index << level, (index + 1) << level) */
    double *data;
} node;

struct cq_dist_tree {
    int64_t n_leaves, begin, end, next;
    int levels;      /* log2 of the padded leaf count */
    size_t len;
    node *held;      /* sorted by start; at most levels + 2 */
    int n_held;
    double **pool;   /* free arrays */
    int n_pool, n_arrays, peak, cap;
    double *fresh;   /* the array handed out by cq_dist_tree_slot */
};

static int tree_levels(int64_t n)
{
    int l = 0;
    while (((int64_t)1 << l) < n)
        l++;
    return l;
}

static double *take(cq_dist_tree *t)
{
    if (t->n_pool > 0)
        return t->pool[--t->n_pool];
    double *p = malloc(t->len ? t->len * sizeof *p : 1);
    if (p) {
        t->n_arrays++;
        t->peak = t->n_arrays > t->peak ? t->n_arrays : t->peak;
    }
    return p;
}

static void give(cq_dist_tree *t, double *p) { t->pool[t->n_pool++] = p; }

int cq_dist_tree_new(cq_dist_tree **out, int64_t n_leaves, size_t len, cq_error *err)
{
    cq_dist_tree *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!t || n_leaves < 1) {
        free(t);
        return cq_errorf(err, t ? CQ_E_INTERNAL : CQ_E_NOMEM, "dist: cannot make a sum tree");
    }
    t->n_leaves = n_leaves;
    t->len = len;
    t->levels = tree_levels(n_leaves);
    cq_dist_share(n_leaves, &t->begin, &t->end);
    t->next = t->begin;
    /* a share's maximal aligned nodes (two per level at most), the fresh leaf, a receive */
    int cap = t->cap = 2 * t->levels + 6;
    t->held = calloc((size_t)cap, sizeof *t->held);
    t->pool = calloc((size_t)cap, sizeof *t->pool);
    if (!t->held || !t->pool) {
        cq_dist_tree_free(t);
        return cq_errorf(err, CQ_E_NOMEM, "dist: out of memory for a sum tree");
    }
    *out = t;
    return CQ_OK;
}

static bool present(const cq_dist_tree *t, int level, int64_t index)
{
    return (index << level) < t->n_leaves;
}

static void add_into(double *a, const double *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] += b[i];
}

/* Merge the top of the stack while it completes a node: a right child whose left sibling is
 * below it, or a left child with no right sibling (promoted as is). */
static void settle(cq_dist_tree *t)
{
    while (t->n_held > 0) {
        node *top = &t->held[t->n_held - 1];
        if (top->level >= t->levels)
            return;
        if (top->index & 1) {
            node *left = t->n_held > 1 ? top - 1 : NULL;
            if (!left || left->level != top->level || left->index != top->index - 1)
                return;
            add_into(left->data, top->data, t->len);
            give(t, top->data);
            t->n_held--;
            left->level++;
            left->index >>= 1;
        } else if (!present(t, top->level, top->index + 1)) {
            top->level++;
            top->index >>= 1;
        } else {
            return;
        }
    }
}

double *cq_dist_tree_slot(cq_dist_tree *t)
{
    if (!t->fresh)
        t->fresh = take(t);
    return t->fresh;
}

int cq_dist_tree_add(cq_dist_tree *t, int64_t index, double *leaf, cq_error *err)
{
    if (index != t->next || index >= t->end || t->n_held >= t->cap - 2)
        return cq_errorf(err, CQ_E_INTERNAL, "dist: leaf %lld out of order (expected %lld)",
                         (long long)index, (long long)t->next);
    double *d = leaf;
    if (leaf != t->fresh) {
        if (!(d = take(t)))
            return cq_errorf(err, CQ_E_NOMEM, "dist: out of memory for a partial sum");
        memcpy(d, leaf, t->len * sizeof *d);
    }
    if (leaf == t->fresh)
        t->fresh = NULL;
    t->held[t->n_held++] = (node){.level = 0, .index = index, .data = d};
    t->next++;
    settle(t);
    return CQ_OK;
}

/* One level of the cross-rank combination: each held node at `level` either sends itself to
 * its left sibling's owner, receives its right sibling, merges with a local sibling, or is
 * promoted (no right sibling). Nodes are visited by start, so every rank sends (downwards)
 * before it receives (from above): no cycle, no deadlock. */
static int finish_level(cq_dist_tree *t, int level, cq_error *err)
{
    int me = cq_dist_rank();
    for (int i = 0; i < t->n_held; i++) {
        node *nd = &t->held[i];
        if (nd->level != level)
            continue;
        int rc = CQ_OK;
        if (nd->index & 1) {
            int64_t lstart = (nd->index - 1) << level;
            int owner = cq_dist_owner(t->n_leaves, lstart);
            if (owner == me)
                return cq_errorf(err, CQ_E_INTERNAL, "dist: unmerged local sibling");
            rc = cq_dist_send(nd->data, t->len * sizeof(double), owner, err);
            give(t, nd->data);
            memmove(nd, nd + 1, (size_t)(t->n_held - i - 1) * sizeof *nd);
            t->n_held--;
            i--;
        } else if (!present(t, level, nd->index + 1)) {
            nd->level++;
            nd->index >>= 1;
        } else {
            int64_t rstart = (nd->index + 1) << level;
            int owner = cq_dist_owner(t->n_leaves, rstart);
            if (owner == me) { /* the right sibling arrived here in an earlier level */
                node *r = i + 1 < t->n_held ? nd + 1 : NULL;
                if (!r || r->level != level || r->index != nd->index + 1)
                    return cq_errorf(err, CQ_E_INTERNAL, "dist: missing local sibling");
                add_into(nd->data, r->data, t->len);
                give(t, r->data);
                memmove(r, r + 1, (size_t)(t->n_held - i - 2) * sizeof *r);
                t->n_held--;
            } else {
                double *buf = take(t);
                if (!buf)
                    return cq_errorf(err, CQ_E_NOMEM, "dist: out of memory for a partial sum");
                rc = cq_dist_recv(buf, t->len * sizeof(double), owner, err);
                if (rc == CQ_OK)
                    add_into(nd->data, buf, t->len);
                give(t, buf);
            }
            nd->level++;
            nd->index >>= 1;
        }
        if (rc != CQ_OK)
            return rc;
    }
    return CQ_OK;
}

int cq_dist_tree_finish(cq_dist_tree *t, double **sum, cq_error *err)
{
    *sum = NULL;
    if (t->next != t->end)
        return cq_errorf(err, CQ_E_INTERNAL, "dist: %lld leaves missing",
                         (long long)(t->end - t->next));
    for (int level = 0; level < t->levels; level++) {
        int rc = finish_level(t, level, err);
        if (rc != CQ_OK)
            return rc;
    }
    if (cq_dist_rank() == 0) {
        if (t->n_held != 1 || t->held[0].level != t->levels)
            return cq_errorf(err, CQ_E_INTERNAL, "dist: the sum tree did not close");
        *sum = t->held[0].data;
    }
    return CQ_OK;
}

int cq_dist_tree_peak(const cq_dist_tree *t) { return t->peak; }

void cq_dist_tree_free(cq_dist_tree *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n_held; i++)
        free(t->held[i].data);
    for (int i = 0; i < t->n_pool; i++)
        free(t->pool[i]);
    free(t->fresh);
    free(t->held);
    free(t->pool);
    free(t);
}

int cq_dist_tree_plan(int64_t n_leaves, int n_ranks)
{
    int64_t per = (n_leaves + n_ranks - 1) / n_ranks;
    /* a share starting off a subtree boundary keeps up to one unmerged node per level on its
     * left edge besides the binary-counter stack of the rest (fresh leaf included); one
     * receive buffer. An aligned share (N a power of two) needs only the second part. */
    int l = tree_levels(per > 0 ? per : 1);
    return (n_ranks > 1 ? l + 1 : 0) + l + 2;
}
