#!/usr/bin/env python3
"""The numbers of docs/scale-out.md: per decoder layer of `cquant gptq` (true-sequential) over
N MPI ranks, as implemented (src/quant/gptq_model.c, src/core/dist.c):

  bytes  - Hessian tree: each rank but 0 sends its packed partial (c(c+1)/2 doubles) once per
           input group (shares aligned: N a power of two dividing the block count);
         - the summed packed Hessian from rank 0 to each other owner of a Linear of the group;
         - every quantized Linear broadcast as f32 (logical bytes: (N-1) copies);
         - each owner != 0 sends rank 0 its codes (1 B/weight), scales (4 B) and zeros (1 B)
           per group and row, g_idx (4 B/column);
         - resume state: the shares of the activations gathered to rank 0 (not after the last
           layer).
  memory - per rank, the largest of the phases (forward with its share; Hessian tree; GPTQ of
           the largest Linear on its owner), as cq_gptq_model_plan counts them.
  flops  - forward passes of true-sequential GPTQ (4 partial + 1 full), the ssyrk of each
           group's input, GPTQ + metrics per Linear (Cholesky and inverse ~c^3, column loop
           and three traces ~8·rows·c^2).

usage: scaleout_plan.py HIDDEN INTER HEADS KV_HEADS HEAD_DIM N_SEQ SEQLEN CHUNK_TOKENS N... [--layers L]
"""
import math
import sys

MiB = 1 << 20
GiB = 1 << 30


def shapes(H, I, nh, nkv, hd):
    qd, kd = nh * hd, nkv * hd
    lins = {"q": (qd, H), "k": (kd, H), "v": (kd, H), "o": (H, qd), "gate": (I, H),
            "up": (I, H), "down": (H, I)}
    points = [["k", "v", "q"], ["o"], ["up", "gate"], ["down"]]
    return lins, points


def plan(H, I, nh, nkv, hd, n_seq, S, chunk, N, last_layer=False, group=128):
    lins, points = shapes(H, I, nh, nkv, hd)
    chunk = max(S, min(chunk, n_seq * S))
    cs = chunk // S
    blocks = -(-n_seq // cs)
    b = {"tree": 0, "h_owners": 0, "weights": 0, "qresult": 0, "acts": 0}
    turn = 0
    for pt in points:
        c = lins[pt[0]][1]
        packed = c * (c + 1) // 2 * 8
        b["tree"] += (min(N, blocks) - 1) * packed
        owners = []
        for name in pt:
            o = turn % N
            turn += 1
            rows, cols = lins[name]
            b["weights"] += (N - 1) * rows * cols * 4
            if o != 0:
                ng = -(-cols // group)
                b["qresult"] += rows * cols + ng * rows * 5 + cols * 4 + 300
            if o not in owners:
                owners.append(o)
        b["h_owners"] += sum(1 for o in owners if o != 0) * packed
    share0 = min(blocks, -(-blocks // N)) * cs  # rank 0's sequences (the first shares)
    if not last_layer:
        b["acts"] = (n_seq - min(share0, n_seq)) * S * H * 4
    b["total"] = sum(b.values())
    # memory of rank 0 (the largest share), bytes
    per = -(-blocks // N)
    levels = max(0, math.ceil(math.log2(per))) if per > 1 else 0
    arrays = levels + 2 + (levels + 1 if N > 1 and (N & (N - 1)) else 0)
    maxc = max(c for _, c in lins.values())
    lw = sum(r * c for r, c in lins.values()) * 4
    acts = min(per * cs, n_seq) * S * H * 4
    fwd = 4 * (chunk * (3 * H + 2 * I + nh * hd + 2 * nkv * hd) + S * S + cs * S * H)
    hess = maxc * (maxc + 1) // 2 * 8 * arrays + maxc * maxc * (8 + 4)
    worst = 0
    for rows, cols in lins.values():
        g = cols * cols * 8 + cols * cols * 4 + rows * cols * 2 + 4 * cols * 8
        m = cols * cols * 4 + rows * cols * 9 + 64 * cols * 4
        worst = max(worst, max(g, m) + rows * cols * 5)  # as cq_gptq_model_plan
    mem = {"weights": lw, "acts": acts, "hessians": hess, "gptq": worst, "forward": fwd}
    mem["total"] = sum(mem.values())
    # flops per layer
    tok = n_seq * S
    qkv = 2 * H * (nh * hd + 2 * nkv * hd)
    att = 2 * S * nh * hd  # causal QK^T and AV, averaged
    o, gu, dn = 2 * nh * hd * H, 4 * H * I, 2 * I * H
    passes = (qkv + att) + (qkv + att + o) + (qkv + att + o + gu) + (qkv + att + o + gu + dn)
    syrk = 3 * H * H + I * I  # ~c^2 per token and group (qkv, o, gate/up, down inputs)
    fwd_f = tok * (passes + syrk)
    gptq = {n: c ** 3 + 8 * r * c * c for n, (r, c) in lins.items()}
    flops = {"forward": fwd_f, "gptq": sum(gptq.values()), "gptq_max": max(gptq.values()),
             "blocks": blocks}
    return b, mem, flops


def main():
    a = [x for x in sys.argv[1:] if not x.startswith("--")]
    if len(a) < 9:
        sys.exit(__doc__)
    H, I, nh, nkv, hd, n_seq, S, chunk = (int(x) for x in a[:8])
    for N in (int(x) for x in a[8:]):
        b, mem, fl = plan(H, I, nh, nkv, hd, n_seq, S, chunk, N, last_layer="--last" in sys.argv)
        print(f"N={N}: blocks {fl['blocks']}; bytes/layer " +
              ", ".join(f"{k} {v / MiB:.1f} MiB" for k, v in b.items()))
        print("      memory/rank " + ", ".join(f"{k} {v / MiB:.0f} MiB" for k, v in mem.items()))
        t1 = fl["forward"] + fl["gptq"]
        tN = fl["forward"] / min(N, fl["blocks"]) + max(fl["gptq"] / min(N, 7), fl["gptq_max"])
        print(f"      flops/layer forward {fl['forward']:.3g}, gptq {fl['gptq']:.3g} (largest "
              f"Linear {fl['gptq_max']:.3g}); compute speedup vs 1 rank {t1 / tN:.1f}x")


if __name__ == "__main__":
    main()
