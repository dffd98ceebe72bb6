#!/usr/bin/env python3
"""Load a cquant output (GPTQ v1/v2, AWQ GEMM or compressed-tensors pack-quantized) into a
transformers Llama by decoding every packed Linear with the published layouts (notes §B, §C, §D),
written here independently of cquant's C code, then measure WikiText perplexity with the HF model.

  load_quantized.py QDIR EVAL_IDS [--seqlens 1024] [--device cuda] [--save-f32 OUT.safetensors]

EVAL_IDS: raw little-endian int32 ids (the WikiText text tokenized without BOS)."""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_llama as tl  # noqa: E402


def unpack_stream(words, n, b):
    """Dense LSB-first bit stream along the last axis: [.., W] int32 -> [.., n] codes."""
    w = words.to(torch.int64) & 0xFFFFFFFF
    bits = ((w.unsqueeze(-1) >> torch.arange(32)) & 1).reshape(*w.shape[:-1], -1)
    bits = bits[..., : n * b].reshape(*w.shape[:-1], n, b)
    return (bits * (1 << torch.arange(b))).sum(-1)


def dec_gptq(T, p, qc):
    b = qc["bits"]
    v2 = qc.get("checkpoint_format", qc.get("format")) == "gptq_v2"
    qw, qz = T[p + ".qweight"], T[p + ".qzeros"]
    sc, gi = T[p + ".scales"].float(), T[p + ".g_idx"].long()
    out = qw.shape[1]
    cin = gi.numel()
    q = unpack_stream(qw.T.contiguous(), cin, b)            # [out, in]
    z = unpack_stream(qz, out, b)                            # [ng, out]
    if not v2:
        z = z + 1
    return sc[gi].T * (q - z[gi].T)                          # [out, in]


AWQ_REV = [0, 4, 1, 5, 2, 6, 3, 7]


def dec_awq(T, p, qc):
    G = qc.get("group_size", qc.get("q_group_size"))
    qw, qz, sc = T[p + ".qweight"], T[p + ".qzeros"], T[p + ".scales"].float()

    def nib(x):
        x = x.to(torch.int64) & 0xFFFFFFFF
        v = (x.unsqueeze(-1) >> (4 * torch.arange(8))) & 15   # nibble i -> column ORDER[i]
        v = v[..., AWQ_REV]
        return v.reshape(x.shape[0], -1)
    q, z = nib(qw), nib(qz)                                  # [in, out], [ng, out]
    g = torch.arange(q.shape[0]) // G
    return ((q - z[g]) * sc[g]).T


def dec_ct(T, p, qc):
    w = next(iter(qc["config_groups"].values()))["weights"]
    b = w["num_bits"]
    out, cin = [int(v) for v in T[p + ".weight_shape"]]
    q = unpack_stream(T[p + ".weight_packed"], cin, b) - (1 << (b - 1))
    sc = T[p + ".weight_scale"].float()                     # [out, ng]
    G = w.get("group_size") or cin
    gi = T[p + ".weight_g_idx"].long() if p + ".weight_g_idx" in T else torch.arange(cin) // G
    zp = 0
    if p + ".weight_zero_point" in T:
        zp = unpack_stream(T[p + ".weight_zero_point"].T.contiguous(), out, b).T - (1 << (b - 1))
        zp = zp[:, gi]
    return (q - zp) * sc[:, gi]


def load(qdir):
    cfg = json.load(open(os.path.join(qdir, "config.json")))
    qc = cfg.pop("quantization_config")
    T, _ = tl.st_load_model(qdir)
    kind = qc["quant_method"]
    dec, key = {"gptq": (dec_gptq, ".qweight"), "awq": (dec_awq, ".qweight"),
                "compressed-tensors": (dec_ct, ".weight_packed")}[kind]
    W = {}
    for name, t in T.items():
        if name.endswith(key):
            p = name[: -len(key)]
            W[p + ".weight"] = dec(T, p, qc).float()
    for name, t in T.items():
        base = name.rsplit(".", 1)[0]
        if base + ".weight" in W and name != base + ".bias":
            continue
        if t.is_floating_point():
            W[name] = t.float()
    return cfg, W, kind


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("qdir")
    ap.add_argument("eval_ids")
    ap.add_argument("--seqlens", default="1024")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--save-f32")
    args = ap.parse_args()
    cfg, W, kind = load(args.qdir)
    if args.save_f32:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in W.items()}, args.save_f32)
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.backends.cuda.matmul.allow_tf32 = False
    model = LlamaForCausalLM(LlamaConfig(**cfg)).float()
    missing, unexpected = model.load_state_dict(W, strict=False)
    missing = [m for m in missing if m != "lm_head.weight"]
    if missing or unexpected:
        sys.exit(f"state dict mismatch: missing {missing[:5]} unexpected {unexpected[:5]}")
    model.tie_weights()
    model = model.to(args.device).eval()
    ids = torch.from_numpy(np.fromfile(args.eval_ids, dtype="<i4").astype(np.int64))
    res = {"dir": args.qdir, "format": kind}
    for s in [int(v) for v in args.seqlens.split(",")]:
        n = ids.numel() // s
        win = ids[: n * s].view(n, s).to(args.device)
        tot = 0.0
        with torch.no_grad():
            for i in range(0, n, 16):
                logits = model(win[i:i + 16]).logits.float()
                tot += torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]), win[i:i + 16, 1:].reshape(-1),
                    reduction="sum").item()
        res[f"ppl@{s}"] = math.exp(tot / (n * (s - 1)))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
