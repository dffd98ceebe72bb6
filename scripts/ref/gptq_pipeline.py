#!/usr/bin/env python3
"""Reference sequential GPTQ / RTN pipeline in PyTorch (CPU or GPU), written from the notes (§E, §G)
for comparison with cquant: same calibration ids, same options, then WikiText perplexity.

  gptq_pipeline.py MODEL CALIB_IDS EVAL_IDS --method gptq|rtn --bits 4 --group 128
                   [--sym] [--act-order] [--static-groups] [--no-true-sequential]
                   [--seqlens 1024,2048] [--threads N] [--save-dequant OUT.safetensors]

CALIB_IDS: a safetensors file with input_ids [n, seqlen] (cquant calib.bin) ; EVAL_IDS: raw int32
little-endian ids (.bin) or a safetensors file with input_ids."""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_llama as tl  # noqa: E402


def minmax_params(x, bits, sym):
    """§B.4 per row of x [rows, k] -> scale, zero [rows, 1]."""
    maxq = 2 ** bits - 1
    xmin = torch.clamp(x.min(1).values, max=0)
    xmax = torch.clamp(x.max(1).values, min=0)
    if sym:
        xmax = torch.maximum(xmin.abs(), xmax)
        xmin = torch.where(xmin < 0, -xmax, xmin)
    both0 = (xmin == 0) & (xmax == 0)
    xmin[both0], xmax[both0] = -1, 1
    scale = (xmax - xmin) / maxq
    zero = torch.full_like(scale, (maxq + 1) / 2) if sym else torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1)


def fake_q(x, scale, zero, maxq):
    return scale * (torch.clamp(torch.round(x / scale) + zero, 0, maxq) - zero)


def rtn(W, bits, group, sym):
    maxq = 2 ** bits - 1
    Q = torch.empty_like(W)
    G = W.shape[1] if group < 0 else group
    for c in range(0, W.shape[1], G):
        s, z = minmax_params(W[:, c:c + G], bits, sym)
        Q[:, c:c + G] = fake_q(W[:, c:c + G], s, z, maxq)
    return Q


def gptq(W, H, bits, group, sym, act_order, static_groups, damp=0.01, block=128):
    """§E steps 2-9 in float32; returns the fake-quantized weights."""
    W = W.clone()
    H = H.clone()
    rows, cols = W.shape
    maxq = 2 ** bits - 1
    scale, zero = minmax_params(W, bits, sym)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    groups = []
    if static_groups and group > 0:
        groups = [minmax_params(W[:, g:g + group], bits, sym) for g in range(0, cols, group)]
    perm = None
    if act_order:
        perm = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, perm], H[perm][:, perm]
        invperm = torch.argsort(perm)
    H[range(cols), range(cols)] += damp * torch.mean(torch.diag(H))
    L = torch.linalg.cholesky(H)
    Hinv = torch.cholesky_inverse(L)
    U = torch.linalg.cholesky(Hinv, upper=True)
    Q = torch.zeros_like(W)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        E1 = torch.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            w, d = W1[:, i], U1[i, i]
            if group > 0:
                if static_groups:
                    col = perm[i1 + i].item() if act_order else i1 + i
                    scale, zero = groups[col // group]
                elif (i1 + i) % group == 0:
                    scale, zero = minmax_params(W[:, i1 + i:i1 + i + group], bits, sym)
            q = fake_q(w.unsqueeze(1), scale, zero, maxq).flatten()
            Q1[:, i] = q
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1) @ U1[i, i:].unsqueeze(0)
            E1[:, i] = err
        Q[:, i1:i2] = Q1
        W[:, i2:] -= E1 @ U[i1:i2, i2:]
    return Q[:, invperm] if act_order else Q


SUBGROUPS = [["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"], ["self_attn.o_proj"],
             ["mlp.up_proj", "mlp.gate_proj"], ["mlp.down_proj"]]


def quantize_model(cfg, W, calib, args):
    n, S = calib.shape
    dev = W["model.norm.weight"].device
    calib = calib.to(dev)
    cos, sin = tl.rope(cfg, S, dev)
    xs = [W["model.embed_tokens.weight"][calib[j:j + 1]] for j in range(n)]
    groups = SUBGROUPS if args.true_sequential else [sum(SUBGROUPS, [])]
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        for names in groups:
            H = {nm: None for nm in names}
            cnt = {nm: 0 for nm in names}

            def hook(full, inp):
                nm = full[len(p):]
                if nm not in H:
                    return
                x = inp.reshape(-1, inp.shape[-1]).float()
                t = inp.shape[0]
                if H[nm] is None:
                    H[nm] = torch.zeros(x.shape[1], x.shape[1], device=x.device)
                H[nm] *= cnt[nm] / (cnt[nm] + t)
                cnt[nm] += t
                x = (2 / cnt[nm]) ** 0.5 * x
                H[nm] += x.T @ x
            with torch.no_grad():
                for x in xs:
                    tl.layer_forward(cfg, W, i, x, cos, sin, hook)
            for nm in names:
                key = p + nm + ".weight"
                if args.method == "rtn":
                    W[key] = rtn(W[key], args.bits, args.group, args.sym)
                else:
                    W[key] = gptq(W[key], H[nm], args.bits, args.group, args.sym,
                                  args.act_order, args.static_groups, args.damp)
        with torch.no_grad():
            xs = [tl.layer_forward(cfg, W, i, x, cos, sin) for x in xs]
        print(f"layer {i + 1}/{cfg.layers} done", file=sys.stderr, flush=True)


def load_ids(path):
    """A safetensors file with input_ids (sniffed by its header), else raw little-endian int32."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return tl.st_read(path)["input_ids"].long()
    return torch.from_numpy(np.fromfile(path, dtype="<i4").astype(np.int64))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("calib")
    ap.add_argument("eval_ids")
    ap.add_argument("--method", default="gptq", choices=["gptq", "rtn", "none"])
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group", type=int, default=128)
    ap.add_argument("--sym", action="store_true")
    ap.add_argument("--act-order", action="store_true")
    ap.add_argument("--static-groups", action="store_true")
    ap.add_argument("--no-true-sequential", dest="true_sequential", action="store_false")
    ap.add_argument("--damp", type=float, default=0.01)
    ap.add_argument("--seqlens", default="1024,2048")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    W, d = tl.st_load_model(args.model)
    W = {k: v.to(args.device) for k, v in W.items()}
    cfg = tl.Config(json.load(open(os.path.join(d, "config.json"))))
    t0 = time.time()
    if args.method != "none":
        calib = load_ids(args.calib)
        quantize_model(cfg, W, calib, args)
    tq = time.time() - t0
    ids = load_ids(args.eval_ids)
    res = {"method": args.method, "bits": args.bits, "group": args.group, "sym": args.sym,
           "act_order": args.act_order, "quant_seconds": round(tq, 2)}
    for s in [int(v) for v in args.seqlens.split(",") if v]:
        res[f"ppl@{s}"] = tl.perplexity(cfg, W, ids, s)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
