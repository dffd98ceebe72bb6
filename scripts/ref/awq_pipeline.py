#!/usr/bin/env python3
"""Reference whole-model AWQ (AutoAWQ-style, notes §F) in PyTorch, written from the notes and
independent of the C code, for comparison with `cquant awq` (and `--then-gptq`): the same
calibration ids, then WikiText perplexity.

  awq_pipeline.py MODEL CALIB_IDS EVAL_IDS [--group 128] [--grid 20] [--no-clip] [--no-duo]
                  [--then-gptq [--act-order] [--damp 0.01]] [--seqlens 1024]
                  [--device cuda] [--threads N] [--max-windows N] [--save OUT.safetensors]

CALIB_IDS: safetensors input_ids [n, seqlen] (a `cquant calib` file: --mode split or concat);
all blocks run as one batch, as AutoAWQ. EVAL_IDS: safetensors input_ids or raw int32.
Per layer: the unmodified FP layer records each Linear's input and gives the next layer's input
(full precision); scale search per group (q/k/v -> whole attention, o after v only when shapes
match, gate/up -> whole MLP, down alone; n_grid ratios, duo scaling, normalisation, mean squared
output error, strict <); all scales folded; recorded inputs divided by s; clipping (not q/k);
then the AWQ group quantizer (codes from f32 scales, scales rounded to f16 as the checkpoint
holds them). --then-gptq: the scaling and clipping of every layer first, then
gptq_pipeline.py's sequential GPTQ (asym) on the scaled model with the same ids.
Prints one JSON line per layer (ratios, losses) and a final JSON line with the perplexities."""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_llama as tl  # noqa: E402
import awq_ref as ar  # noqa: E402  (pseudo_quantize, attn, mlp)
import gptq_pipeline as gp  # noqa: E402


def awq_quantize(w, group, bits=4, f16_scales=True):
    """§C.3 with the scale stored as f16: codes from the f32 scale, dequant with f16."""
    shape = w.shape
    w = w.reshape(-1, group)
    mx, mn = w.amax(dim=1, keepdim=True), w.amin(dim=1, keepdim=True)
    maxq = 2 ** bits - 1
    s = (mx - mn).clamp(min=1e-5) / maxq
    z = (-torch.round(mn / s)).clamp(0, maxq)
    q = torch.clamp(torch.round(w / s) + z, 0, maxq)
    if f16_scales:
        s = s.half().float()
    return ((q - z) * s).reshape(shape)


def ratio_scales(x_mean, w_mean, ratio, duo):
    s = (x_mean.pow(ratio) / (w_mean.pow(1 - ratio) + 1e-4) if duo else x_mean.pow(ratio))
    s = s.clamp(min=1e-4)
    s = s / (s.max() * s.min()).sqrt()
    s[torch.isinf(s)] = 1
    s[torch.isnan(s)] = 1
    return s


def search(x, weights, forward, group, n_grid, duo):
    """§F.3-F.4: returns (scales, ratio, loss_before, loss_after)."""
    x_mean = x.abs().reshape(-1, x.shape[-1]).float().mean(0)
    w = torch.cat(weights, dim=0)
    ws = w.reshape(-1, group).abs()
    w_mean = (ws / (ws.amax(dim=1, keepdim=True) + 1e-6)).reshape(w.shape).mean(0)
    with torch.no_grad():
        fp = forward(weights)
        loss0 = (fp - forward([ar.pseudo_quantize(t, group) for t in weights])).pow(2).mean().item()
        best, best_s, best_r = float("inf"), None, -1.0
        for i in range(n_grid):
            r = i / n_grid
            s = ratio_scales(x_mean, w_mean, r, duo)
            sv = s.view(1, -1)
            out = forward([ar.pseudo_quantize(t * sv, group) / sv for t in weights])
            loss = (fp - out).pow(2).sum().item() / fp.numel()
            if loss < best:
                best, best_s, best_r = loss, s.clone(), r
    if best_s is None:
        raise RuntimeError("every scale ratio gave a NaN loss")
    return best_s, best_r, loss0, best


def search_clip(w, x, group, n_grid=20, max_shrink=0.5, n_tokens=512):
    """§F.6 (AutoAWQ _compute_best_clip): best max_val [out, n_groups]."""
    rows = w.shape[0]
    x = x.reshape(-1, x.shape[-1])
    x = x.reshape(1, x.shape[0], -1, group)
    x = x[:, ::max(1, x.shape[1] // n_tokens)]
    w = w.reshape(rows, 1, -1, group)
    ob = 256 if rows % 256 == 0 else 64
    out = []
    for b in range(rows // ob):
        wb = w[b * ob:(b + 1) * ob]
        org_max = wb.abs().amax(dim=-1, keepdim=True)
        best_max = org_max.clone()
        min_err = torch.ones_like(org_max) * 1e9
        org_out = (x * wb).sum(dim=-1)
        for i in range(int(max_shrink * n_grid)):
            mv = org_max * (1 - i / n_grid)
            qw = ar.pseudo_quantize(torch.clamp(wb, -mv, mv), group)
            err = ((x * qw).sum(dim=-1) - org_out).pow(2).mean(dim=1).view(min_err.shape)
            better = err < min_err
            min_err[better] = err[better]
            best_max[better] = mv[better]
        out.append(best_max)
    return torch.cat(out, dim=0).squeeze(1).squeeze(-1)  # [rows, n_groups]


def apply_clip(w, max_val, group):
    shape = w.shape
    w = w.reshape(shape[0], -1, group)
    mv = max_val.unsqueeze(-1)
    return torch.clamp(w, -mv, mv).reshape(shape)


def awq_layer(cfg, W, i, x, cos, sin, args, clip):
    """Scale (and clip) layer i of W in place; returns the FP output and the report."""
    p = f"model.layers.{i}."
    rec = {}
    with torch.no_grad():
        y = tl.layer_forward(cfg, W, i, x, cos, sin,
                             hook=lambda n, inp: rec.setdefault(n[len(p):], inp))
    L = {n: W[p + n + ".weight"] for n in tl.LINEARS}
    G = args.group
    o_lin = L["self_attn.o_proj"]
    groups = [
        ("self_attn.q_k_v", "self_attn.q_proj",
         ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
         lambda w, xx=rec["self_attn.q_proj"]: ar.attn(cfg, xx, w[0], w[1], w[2], o_lin, cos, sin)),
        ("mlp.gate_up", "mlp.gate_proj", ["mlp.gate_proj", "mlp.up_proj"],
         lambda w, xx=rec["mlp.gate_proj"]: ar.mlp(xx, w[0], w[1], L["mlp.down_proj"])),
        ("mlp.down_proj", "mlp.down_proj", ["mlp.down_proj"],
         lambda w, xx=rec["mlp.down_proj"]: xx @ w[0].T),
    ]
    vo = L["self_attn.v_proj"].shape == L["self_attn.o_proj"].shape
    if vo:
        groups.insert(1, ("self_attn.o_proj", "self_attn.o_proj", ["self_attn.o_proj"],
                          lambda w, xx=rec["self_attn.o_proj"]: xx @ w[0].T))
    rep = {"layer": i, "groups": []}
    scales = {}
    for name, inp, lins, fwd in groups:  # all searches on the unmodified layer
        t0 = time.time()
        s, r, l0, l1 = search(rec[inp], [L[n] for n in lins], fwd, G, args.grid, args.duo)
        scales[name] = s
        rep["groups"].append({"group": name, "ratio": r, "loss_before": l0, "loss_after": l1,
                              "seconds": round(time.time() - t0, 3)})
    # §F.5 folding
    s = scales["self_attn.q_k_v"]
    W[p + "input_layernorm.weight"] = W[p + "input_layernorm.weight"] / s
    for n in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]:
        W[p + n + ".weight"] = W[p + n + ".weight"] * s.view(1, -1)
    if vo:
        s = scales["self_attn.o_proj"]
        W[p + "self_attn.v_proj.weight"] = W[p + "self_attn.v_proj.weight"] / s.view(-1, 1)
        if p + "self_attn.v_proj.bias" in W:
            W[p + "self_attn.v_proj.bias"] = W[p + "self_attn.v_proj.bias"] / s
        W[p + "self_attn.o_proj.weight"] = W[p + "self_attn.o_proj.weight"] * s.view(1, -1)
    s = scales["mlp.gate_up"]
    W[p + "post_attention_layernorm.weight"] = W[p + "post_attention_layernorm.weight"] / s
    for n in ["mlp.gate_proj", "mlp.up_proj"]:
        W[p + n + ".weight"] = W[p + n + ".weight"] * s.view(1, -1)
    s = scales["mlp.down_proj"]
    W[p + "mlp.up_proj.weight"] = W[p + "mlp.up_proj.weight"] / s.view(-1, 1)
    if p + "mlp.up_proj.bias" in W:
        W[p + "mlp.up_proj.bias"] = W[p + "mlp.up_proj.bias"] / s
    W[p + "mlp.down_proj.weight"] = W[p + "mlp.down_proj.weight"] * s.view(1, -1)
    # §F.1 step 4: the inputs as the scaled Linears see them
    xin = {"self_attn.v_proj": rec["self_attn.q_proj"] / scales["self_attn.q_k_v"],
           "self_attn.o_proj": rec["self_attn.o_proj"] / scales["self_attn.o_proj"] if vo
           else rec["self_attn.o_proj"],
           "mlp.gate_proj": rec["mlp.gate_proj"] / scales["mlp.gate_up"],
           "mlp.up_proj": rec["mlp.gate_proj"] / scales["mlp.gate_up"],
           "mlp.down_proj": rec["mlp.down_proj"] / scales["mlp.down_proj"]}
    if clip:
        rep["clip_mean_shrink"] = {}
        with torch.no_grad():
            for n, xx in xin.items():
                w = W[p + n + ".weight"]
                mv = search_clip(w, xx, G)
                org = w.reshape(w.shape[0], -1, G).abs().amax(dim=-1)
                rep["clip_mean_shrink"][n] = (mv / org).mean().item()
                W[p + n + ".weight"] = apply_clip(w, mv, G)
    return y, rep


def save_f32(path, tensors):
    """Write name -> tensor as F32 safetensors (for comparison with `cquant dequant`)."""
    import numpy as np
    hdr, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k].detach().cpu().float().numpy(), dtype="<f4")
        hdr[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("calib")
    ap.add_argument("eval_ids")
    ap.add_argument("--group", type=int, default=128)
    ap.add_argument("--grid", type=int, default=20)
    ap.add_argument("--no-clip", dest="clip_flag", action="store_false")
    ap.add_argument("--no-duo", dest="duo", action="store_false")
    ap.add_argument("--then-gptq", action="store_true")
    ap.add_argument("--act-order", action="store_true")
    ap.add_argument("--damp", type=float, default=0.01)
    ap.add_argument("--f32-scales", action="store_true", help="dequantize with f32 scales")
    ap.add_argument("--seqlens", default="1024")
    ap.add_argument("--max-windows", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--save", help="write the final decoder weights (F32 safetensors) here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    W, d = tl.st_load_model(args.model)
    W = {k: v.to(args.device) for k, v in W.items()}
    cfg = tl.Config(json.load(open(os.path.join(d, "config.json"))))
    calib = gp.load_ids(args.calib).to(args.device)
    clip = args.clip_flag  # also before GPTQ, as cquant awq --then-gptq
    t0 = time.time()
    cos, sin = tl.rope(cfg, calib.shape[1], args.device)
    with torch.no_grad():
        x = W["model.embed_tokens.weight"][calib]
    for i in range(cfg.layers):
        x, rep = awq_layer(cfg, W, i, x, cos, sin, args, clip)
        if not args.then_gptq:
            for n in tl.LINEARS:
                k = f"model.layers.{i}.{n}.weight"
                W[k] = awq_quantize(W[k], args.group, f16_scales=not args.f32_scales)
        print(json.dumps(rep), flush=True)
    if args.then_gptq:
        g = argparse.Namespace(method="gptq", bits=4, group=args.group, sym=False,
                               act_order=args.act_order, static_groups=False,
                               true_sequential=True, damp=args.damp)
        gp.quantize_model(cfg, W, calib, g)
    tq = time.time() - t0
    if args.save:
        save_f32(args.save, {k: v for k, v in W.items() if k.startswith("model.layers.")})
    ids = gp.load_ids(args.eval_ids).reshape(-1)
    res = {"method": "awq+gptq" if args.then_gptq else "awq", "group": args.group,
           "grid": args.grid, "clip": clip, "duo": args.duo, "calib_blocks": calib.shape[0],
           "calib_seqlen": calib.shape[1], "quant_seconds": round(tq, 2)}
    for s in [int(v) for v in args.seqlens.split(",") if v]:
        e = ids[: args.max_windows * s] if args.max_windows else ids
        res[f"ppl@{s}"] = tl.perplexity(cfg, W, e.to(args.device), s)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
