#!/usr/bin/env python3
"""PyTorch-CPU GPTQ reference (notes §E), written for cquant's benchmark and cross-check.

Same algorithm and float32 arithmetic as the reference fasterquant (IST-DASLab/gptq gptq.py,
AutoGPTQ quantization/gptq.py): dead columns, optional static groups / act-order, damping
percdamp * mean(diag H), U = chol(cholesky_inverse(chol(H)), upper), blocked lazy updates.
Written from the notes, not copied.

Usage: gptq_ref.py DIR ROWS COLS NTOK THREADS [bits group sym act static block]
DIR holds x.f32 ([NTOK, COLS] activations) and w.f32 ([ROWS, COLS] weights) written by
scripts/bench/gptq_bench.c. Prints key=value lines.
"""
import sys
import time

import numpy as np
import torch


def find_params(x, maxq, sym):
    zero_t = torch.zeros(x.shape[0])
    xmin = torch.minimum(x.min(1)[0], zero_t)
    xmax = torch.maximum(x.max(1)[0], zero_t)
    if sym:
        xmax = torch.maximum(torch.abs(xmin), xmax)
        neg = xmin < 0
        if torch.any(neg):
            xmin[neg] = -xmax[neg]
    both = (xmin == 0) & (xmax == 0)
    xmin[both] = -1
    xmax[both] = +1
    scale = (xmax - xmin) / maxq
    zero = torch.full_like(scale, (maxq + 1) / 2) if sym else torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1)


def quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def gptq(W, H, bits=4, group=128, sym=True, act=False, static=False, block=128, percdamp=0.01):
    W = W.clone().float()
    H = H.clone()
    rows, cols = W.shape
    maxq = float(2 ** bits - 1)
    t0 = time.perf_counter()
    scale, zero = find_params(W, maxq, sym)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    groups = []
    if static and group > 0:
        groups = [find_params(W[:, g:g + group], maxq, sym) for g in range(0, cols, group)]
    if act:
        perm = torch.argsort(torch.diag(H), descending=True)
        W = W[:, perm]
        H = H[perm][:, perm]
        invperm = torch.argsort(perm)
    Losses = torch.zeros_like(W)
    Q = torch.zeros_like(W)
    damp = percdamp * torch.mean(torch.diag(H))
    idx = torch.arange(cols)
    H[idx, idx] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H
    t1 = time.perf_counter()
    t_update = 0.0
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Losses1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if group > 0:
                if not static:
                    if (i1 + i) % group == 0:
                        scale, zero = find_params(W[:, i1 + i:i1 + i + group], maxq, sym)
                else:
                    col = perm[i1 + i].item() if act else i1 + i
                    scale, zero = groups[col // group]
            q = quantize(w.unsqueeze(1), scale, zero, maxq).flatten()
            Q1[:, i] = q
            Losses1[:, i] = (w - q) ** 2 / d ** 2
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        Q[:, i1:i2] = Q1
        Losses[:, i1:i2] = Losses1 / 2
        tu = time.perf_counter()
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
        t_update += time.perf_counter() - tu
    if act:
        Q = Q[:, invperm]
    t2 = time.perf_counter()
    return Q, torch.sum(Losses).item(), t1 - t0, t2 - t1, t_update


def main():
    d, rows, cols, ntok, threads = sys.argv[1], *map(int, sys.argv[2:6])
    opt = [int(v) for v in sys.argv[6:12]] if len(sys.argv) >= 12 else [4, 128, 1, 0, 0, 128]
    torch.set_num_threads(threads)
    x = torch.from_numpy(np.fromfile(f"{d}/x.f32", dtype=np.float32).reshape(ntok, cols))
    W = torch.from_numpy(np.fromfile(f"{d}/w.f32", dtype=np.float32).reshape(rows, cols))
    # H = (2/n) X^T X in float32, as add_batch accumulates it (one batch of n tokens).
    H = (x * (2.0 / ntok) ** 0.5).t().matmul(x * (2.0 / ntok) ** 0.5)
    t = time.perf_counter()
    Q, loss, t_inv, t_loop, t_upd = gptq(W, H, bits=opt[0], group=opt[1], sym=bool(opt[2]),
                                         act=bool(opt[3]), static=bool(opt[4]), block=opt[5])
    total = time.perf_counter() - t
    print(f"torch_threads={torch.get_num_threads()}")
    print(f"ref_total_s={total:.3f}")
    print(f"ref_inverse_s={t_inv:.3f}")
    print(f"ref_loop_s={t_loop:.3f}")
    print(f"ref_update_s={t_upd:.3f}")
    print(f"ref_loss={loss:.6g}")


if __name__ == "__main__":
    main()
