#!/usr/bin/env python3
"""PyTorch-CPU reference of AWQ's scale search (AutoAWQ `_search_best_scale` /
`_compute_best_scale`, notes §F.3-§F.4) for scripts/bench_awq.sh: f32, the same pseudo-random
calibration ids as scripts/bench_awq.c, the FP layers before LAYER run unquantized, then the
searches of LAYER are timed: q/k/v with the whole attention as module2inspect, o_proj (only
when v/o shapes match), gate/up with the whole MLP, down_proj alone.
Prints one line per group: group=<name> ratio=<r> loss_before=<l0> loss_after=<l1> seconds=<t>
usage: awq_ref.py MODEL_DIR N_SEQ SEQLEN LAYER THREADS [GROUP_SIZE]
"""
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_llama as tl  # noqa: E402


def lcg_ids(n, vocab):
    x, out = 0, []
    for _ in range(n):
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        out.append((x >> 8) % vocab)
    return torch.tensor(out, dtype=torch.int64)


def pseudo_quantize(w, group, bits=4):
    """AutoAWQ pseudo_quantize_tensor, zero_point=True."""
    shape = w.shape
    w = w.reshape(-1, group)
    mx = w.amax(dim=1, keepdim=True)
    mn = w.amin(dim=1, keepdim=True)
    max_int = 2 ** bits - 1
    scales = (mx - mn).clamp(min=1e-5) / max_int
    zeros = (-torch.round(mn / scales)).clamp_(0, max_int)
    w = (torch.clamp(torch.round(w / scales) + zeros, 0, max_int) - zeros) * scales
    return w.reshape(shape)


def attn(cfg, x, Wq, Wk, Wv, Wo, cos, sin):
    B, S, _ = x.shape
    q = (x @ Wq.T).view(B, S, cfg.heads, cfg.head_dim).transpose(1, 2)
    k = (x @ Wk.T).view(B, S, cfg.kv_heads, cfg.head_dim).transpose(1, 2)
    v = (x @ Wv.T).view(B, S, cfg.kv_heads, cfg.head_dim).transpose(1, 2)
    q = q * cos + tl.rot_half(q) * sin
    k = k * cos + tl.rot_half(k) * sin
    rep = cfg.heads // cfg.kv_heads
    k = k.repeat_interleave(rep, dim=1)
    v = v.repeat_interleave(rep, dim=1)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(cfg.head_dim)
    mask = torch.full((S, S), float("-inf"), device=q.device).triu(1)
    a = torch.softmax(s + mask, dim=-1) @ v
    return a.transpose(1, 2).reshape(B, S, cfg.heads * cfg.head_dim) @ Wo.T


def mlp(x, Wg, Wu, Wd):
    return (torch.nn.functional.silu(x @ Wg.T) * (x @ Wu.T)) @ Wd.T


def search(x, weights, forward, group, n_grid=20):
    """AutoAWQ _search_best_scale + _compute_best_scale (duo scaling). weights: list of the
    group's Linear weights; forward(list of weights) -> module output on x."""
    x_mean = x.abs().view(-1, x.shape[-1]).float().mean(0)
    w = torch.cat(weights, dim=0)
    ws = w.view(-1, group)
    ws = ws.abs() / (ws.abs().amax(dim=1, keepdim=True) + 1e-6)
    w_mean = ws.view(w.shape).mean(0)
    fp = forward(weights)
    loss_before = (fp - forward([pseudo_quantize(t, group) for t in weights])).float().pow(2).mean().item()
    best, best_ratio = float("inf"), -1
    for i in range(n_grid):
        ratio = i / n_grid
        s = (x_mean.pow(ratio) / (w_mean.pow(1 - ratio) + 1e-4)).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        s[torch.isinf(s)] = 1
        s[torch.isnan(s)] = 1
        sv = s.view(1, -1)
        trial = [pseudo_quantize(t * sv, group) / sv for t in weights]
        loss = (fp - forward(trial)).float().pow(2).sum().item() / fp.numel()
        if loss < best:
            best, best_ratio = loss, ratio
    return best_ratio, loss_before, best


def main():
    model, n_seq, seqlen, layer, threads = sys.argv[1], *map(int, sys.argv[2:6])
    group = int(sys.argv[6]) if len(sys.argv) > 6 else 128
    torch.set_num_threads(threads)
    cfg = tl.Config(json.load(open(os.path.join(model, "config.json"))))
    W, _ = tl.st_load_model(model)
    vocab = W["model.embed_tokens.weight"].shape[0]
    ids = lcg_ids(n_seq * seqlen, vocab).view(n_seq, seqlen)
    cos, sin = tl.rope(cfg, seqlen)
    rec = {}
    with torch.no_grad():
        x = W["model.embed_tokens.weight"][ids]
        for i in range(layer):
            x = tl.layer_forward(cfg, W, i, x, cos, sin)
        tl.layer_forward(cfg, W, layer, x, cos, sin,
                         hook=lambda n, inp: rec.setdefault(n.split(".", 3)[3], inp))
        p = f"model.layers.{layer}."
        L = {n: W[p + n + ".weight"] for n in tl.LINEARS}
        groups = [
            ("self_attn.q_k_v", rec["self_attn.q_proj"],
             [L["self_attn.q_proj"], L["self_attn.k_proj"], L["self_attn.v_proj"]],
             lambda w, xx=rec["self_attn.q_proj"]: attn(cfg, xx, w[0], w[1], w[2],
                                                        L["self_attn.o_proj"], cos, sin)),
            ("mlp.gate_up", rec["mlp.gate_proj"], [L["mlp.gate_proj"], L["mlp.up_proj"]],
             lambda w, xx=rec["mlp.gate_proj"]: mlp(xx, w[0], w[1], L["mlp.down_proj"])),
            ("mlp.down_proj", rec["mlp.down_proj"], [L["mlp.down_proj"]],
             lambda w, xx=rec["mlp.down_proj"]: xx @ w[0].T),
        ]
        if L["self_attn.v_proj"].shape == L["self_attn.o_proj"].shape:
            groups.insert(1, ("self_attn.o_proj", rec["self_attn.o_proj"],
                              [L["self_attn.o_proj"]],
                              lambda w, xx=rec["self_attn.o_proj"]: xx @ w[0].T))
        for name, xin, ws, fwd in groups:
            t0 = time.perf_counter()
            r, l0, l1 = search(xin, ws, fwd, group)
            dt = time.perf_counter() - t0
            print(f"group={name} ratio={r:.2f} loss_before={l0:.6g} loss_after={l1:.6g} "
                  f"seconds={dt:.3f}", flush=True)


if __name__ == "__main__":
    main()
