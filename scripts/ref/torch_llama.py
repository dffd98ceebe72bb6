"""A small, independent Llama forward pass in PyTorch (works with Debian's torch 1.13 and with
torch 2.x), reading safetensors without the safetensors package. Reference code for cquant's
checks and benchmarks: nothing here is shared with the C implementation."""
import json
import math
import os

import numpy as np
import torch

_NP = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I32": np.int32,
       "I64": np.int64, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.uint8}


def st_read(path):
    """Read every tensor of one safetensors file into float32/int torch tensors."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        buf = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = buf[b:e]
        if info["dtype"] == "BF16":
            a = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            t = torch.from_numpy(a.view(np.float32).copy())
        else:
            t = torch.from_numpy(np.frombuffer(raw, dtype=_NP[info["dtype"]]).copy())
            if t.dtype in (torch.float16, torch.float64):
                t = t.float()
        out[name] = t.reshape(info["shape"])
    return out


def st_load_model(path):
    """A .safetensors file or a folder (sharded with an index, or one file)."""
    if os.path.isfile(path):
        return st_read(path), os.path.dirname(path)
    idx = os.path.join(path, "model.safetensors.index.json")
    files = (sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx)
             else [f for f in sorted(os.listdir(path)) if f.endswith(".safetensors")])
    w = {}
    for f in files:
        w.update(st_read(os.path.join(path, f)))
    return w, path


class Config:
    def __init__(self, d):
        self.hidden = d["hidden_size"]
        self.layers = d["num_hidden_layers"]
        self.heads = d["num_attention_heads"]
        self.kv_heads = d.get("num_key_value_heads", self.heads)
        self.head_dim = d.get("head_dim") or self.hidden // self.heads
        self.eps = d.get("rms_norm_eps", 1e-6)
        rp = d.get("rope_parameters") or {}
        self.theta = d.get("rope_theta", rp.get("rope_theta", 10000.0))
        self.tied = d.get("tie_word_embeddings", False)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(cfg, seqlen, device="cpu"):
    inv = 1.0 / (cfg.theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.int64).float()
                               / cfg.head_dim))
    t = torch.arange(seqlen).float()
    f = torch.outer(t, inv)
    emb = torch.cat([f, f], dim=-1)
    return emb.cos().to(device), emb.sin().to(device)


def rot_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def layer_forward(cfg, W, i, x, cos, sin, hook=None):
    """x: [batch, seq, hidden]. W: name -> tensor. hook(name, input) sees each Linear's input."""
    p = f"model.layers.{i}."

    def lin(name, inp):
        if hook:
            hook(p + name, inp)
        y = inp @ W[p + name + ".weight"].T
        b = W.get(p + name + ".bias")
        return y + b if b is not None else y

    B, S, _ = x.shape
    h = rmsnorm(x, W[p + "input_layernorm.weight"], cfg.eps)
    q = lin("self_attn.q_proj", h).view(B, S, cfg.heads, cfg.head_dim).transpose(1, 2)
    k = lin("self_attn.k_proj", h).view(B, S, cfg.kv_heads, cfg.head_dim).transpose(1, 2)
    v = lin("self_attn.v_proj", h).view(B, S, cfg.kv_heads, cfg.head_dim).transpose(1, 2)
    q = q * cos + rot_half(q) * sin
    k = k * cos + rot_half(k) * sin
    rep = cfg.heads // cfg.kv_heads
    k = k.repeat_interleave(rep, dim=1)
    v = v.repeat_interleave(rep, dim=1)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(cfg.head_dim)
    mask = torch.full((S, S), float("-inf"), device=x.device).triu(1)
    a = torch.softmax(s + mask, dim=-1) @ v
    a = a.transpose(1, 2).reshape(B, S, cfg.heads * cfg.head_dim)
    x = x + lin("self_attn.o_proj", a)
    h = rmsnorm(x, W[p + "post_attention_layernorm.weight"], cfg.eps)
    g = lin("mlp.gate_proj", h)
    u = lin("mlp.up_proj", h)
    return x + lin("mlp.down_proj", torch.nn.functional.silu(g) * u)


def head_nll(cfg, W, x, ids):
    """Sum of NLL of predictions 1..S-1 of each row, and their count."""
    h = rmsnorm(x, W["model.norm.weight"], cfg.eps)
    lm = W["model.embed_tokens.weight"] if cfg.tied else W["lm_head.weight"]
    logits = h[:, :-1, :] @ lm.T
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(),
                                            ids[:, 1:].reshape(-1), reduction="sum")
    return float(nll), ids[:, 1:].numel()


def perplexity(cfg, W, ids, seqlen, batch=8):
    """WikiText protocol: non-overlapping windows, tail dropped, exp(mean NLL)."""
    n = ids.numel() // seqlen
    dev = W["model.norm.weight"].device
    win = ids[: n * seqlen].view(n, seqlen).long().to(dev)
    cos, sin = rope(cfg, seqlen, dev)
    tot, cnt = 0.0, 0
    with torch.no_grad():
        for b in range(0, n, batch):
            x = W["model.embed_tokens.weight"][win[b:b + batch]]
            for i in range(cfg.layers):
                x = layer_forward(cfg, W, i, x, cos, sin)
            s, c = head_nll(cfg, W, x, win[b:b + batch])
            tot, cnt = tot + s, cnt + c
    return math.exp(tot / cnt)


def st_write_ids(path, ids, meta=None):
    """Write input_ids I32 [n, seqlen] as a safetensors file (cquant's calib.bin layout)."""
    a = np.ascontiguousarray(np.asarray(ids, dtype="<i4"))
    hdr = {"__metadata__": {"format": "pt", **(meta or {})},
           "input_ids": {"dtype": "I32", "shape": list(a.shape), "data_offsets": [0, a.nbytes]}}
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + a.tobytes())
