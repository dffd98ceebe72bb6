/* Distributed runs over MPI (built with -DCQ_MPI=ON, launched by mpirun): a small set of
 * blocking collectives the quantization drivers call unconditionally. Without MPI, or when the
 * process was not started by an MPI launcher, this is rank 0 of 1 and every call is a no-op
 * (a broadcast leaves the buffer, a reduction is the identity), so the single-process binary
 * behaves exactly as before.
 *
 * Determinism: nothing here reduces floating-point data with MPI's own reductions (their order
 * is unspecified); callers combine partial sums in a fixed order with cq_dist_send/recv, see
 * cq_dist_tree_*. Every call counts the bytes this rank sent (cq_dist_bytes_sent). */
#ifndef CQUANT_DIST_H
#define CQUANT_DIST_H

#include "cquant/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Initialize (MPI_Init when launched by mpirun; errors are returned, not fatal) and finish. */
int cq_dist_init(int *argc, char ***argv, cq_error *err);
void cq_dist_finalize(void);
int cq_dist_rank(void);
int cq_dist_size(void);
/* True when this process is one of several. */
bool cq_dist_active(void);
/* Solo mode: rank 0 runs a command that does not split its work (batch, inspect, ...) as rank
 * 0 of 1, so nothing inside it waits for the other ranks; off again before the job's final
 * cq_dist_agree. */
void cq_dist_set_solo(bool solo);

/* Point to point and broadcast of raw bytes (any size: sent in pieces of at most 1 GiB). */
int cq_dist_send(const void *buf, size_t bytes, int dest, cq_error *err);
int cq_dist_recv(void *buf, size_t bytes, int src, cq_error *err);
int cq_dist_bcast(void *buf, size_t bytes, int root, cq_error *err);
/* Exact integer reductions (associative: any order gives the same result). */
int cq_dist_sum_i64(int64_t *v, int n, cq_error *err);
int cq_dist_max_i64(int64_t *v, int n, cq_error *err);

/* Collective error agreement: every rank passes its local status; all return the same status.
 * When some rank failed, the lowest failing rank's code and message (prefixed "rank K: ") are
 * copied into err on every rank. */
int cq_dist_agree(int rc, cq_error *err);

/* This rank's contiguous share [*begin, *end) of n items (the first n % N ranks get one more). */
void cq_dist_share(int64_t n, int64_t *begin, int64_t *end);
/* The rank whose share holds item i (the inverse of cq_dist_share). */
int cq_dist_owner(int64_t n, int64_t i);

/* Bytes this rank has sent so far (point to point and its part of collectives). */
uint64_t cq_dist_bytes_sent(void);

/* ---- fixed-tree summation of float64 arrays, independent of N ----
 *
 * A sum over n_leaves leaves (e.g. per-block partial Hessians) is defined as the perfect
 * binary tree over leaf indices 0..P-1, P = the next power of two >= n_leaves (missing leaves
 * are zero; x + 0 == x exactly): node(lo, hi) = node(lo, mid) + node(mid, hi). Each rank adds
 * the leaves of its cq_dist_share in index order into a stack of partial nodes (at most
 * log2(P)+1 arrays alive), then cq_dist_tree_finish combines the ranks' partial nodes along the
 * same tree with point-to-point messages; the result lands on rank 0. For any N the result is
 * bit-identical to one process doing the same, as long as the leaves are. */
typedef struct cq_dist_tree cq_dist_tree;

int cq_dist_tree_new(cq_dist_tree **t, int64_t n_leaves, size_t len, cq_error *err);
/* An array of len doubles to fill with the next leaf (owned by t; pass it to _add). */
double *cq_dist_tree_slot(cq_dist_tree *t);
/* Add leaf `index` (must be the next leaf of this rank's share): leaf is the slot (taken
 * without a copy) or any other array (copied). */
int cq_dist_tree_add(cq_dist_tree *t, int64_t index, double *leaf, cq_error *err);
/* Combine across ranks; on rank 0 *sum points to the total (owned by t), elsewhere NULL. */
int cq_dist_tree_finish(cq_dist_tree *t, double **sum, cq_error *err);
/* Peak number of len-arrays the tree held at once (memory accounting). */
int cq_dist_tree_peak(const cq_dist_tree *t);
void cq_dist_tree_free(cq_dist_tree *t);
/* Arrays held at most by one rank's tree for these sizes (the memory plan). */
int cq_dist_tree_plan(int64_t n_leaves, int n_ranks);

#endif
