"""Make the small random-initialized architecture fixtures in tests/data/arch/ (run on a machine
with torch, transformers and tokenizers; no network needed).

For each architecture: a tokenizer of the architecture's usual layout trained on data/calib-docs.txt,
a model built from a config alone (random weights, norms and biases perturbed so that a forward
that ignores them is caught), saved as bf16 safetensors, and reference.safetensors with the fp32
forward of the saved bf16 weights (eager attention):
  ids        I64 [T]            the first T ids of tests/data/arch/text.txt
  text_ids   I64 [n]            all ids of text.txt
  logits     F32 [T x vocab]
  hidden.<i> F32 [T x hidden]   output_hidden_states, i = 0..L
  router.<i> F32 [T x experts]  router logits per layer (mixture-of-experts models)

usage: python3 make_arch_fixtures.py REPO_ROOT OUTDIR
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file, load_file
from tokenizers import Tokenizer, Regex, decoders, models, normalizers, pre_tokenizers
from tokenizers import processors, trainers

T = 64
SEED = 20261125
QWEN_PAT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
            r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def corpus(root):
    with open(os.path.join(root, "data", "calib-docs.txt"), encoding="utf-8") as f:
        text = f.read()
    return [line for line in text.split("\n") if line.strip()]


def tok_bytelevel(lines, bos_template):
    """GPT-2 style byte-level BPE (OPT): <s> <pad> </s> <unk> first, </s> prepended."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=512, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, tr)
    if bos_template:
        tok.post_processor = processors.TemplateProcessing(
            single="</s> $A", pair="</s> $A </s> $B", special_tokens=[("</s>", 2)])
    return tok, {"bos_token": "</s>", "eos_token": "</s>", "pad_token": "<pad>",
                 "unk_token": "<unk>", "tokenizer_class": "GPT2Tokenizer"}


def tok_qwen(lines):
    """Qwen2 layout: NFC, regex split then byte-level, specials appended after the BPE vocab."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PAT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=512, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, tr)
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    return tok, {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                 "bos_token": None, "tokenizer_class": "Qwen2Tokenizer"}


def tok_sentencepiece(lines, path):
    """Mistral v0.1 layout: legacy Prepend/Replace normalizer, no pre-tokenizer, BPE with byte
    fallback, <unk> <s> </s> then <0x00>..<0xFF>, <s> prepended."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tr = trainers.BpeTrainer(vocab_size=512, special_tokens=["<unk>", "<s>", "</s>"],
                             limit_alphabet=120)
    tok.train_from_iterator(lines, tr)
    j = json.loads(tok.to_str())
    old = j["model"]["vocab"]
    vocab = {}
    for piece, idx in old.items():
        vocab[piece] = idx if idx < 3 else idx + 256
    for b in range(256):
        vocab["<0x%02X>" % b] = 3 + b
    j["model"]["vocab"] = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    j["model"]["byte_fallback"] = True
    j["model"]["fuse_unk"] = True
    j["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    j["pre_tokenizer"] = None
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    j["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
    tok = Tokenizer.from_file(path)
    return tok, {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                 "tokenizer_class": "LlamaTokenizer", "legacy": True}


def pad64(n):
    return (n + 63) // 64 * 64


def perturb(model):
    """Random init leaves norms at 1 and biases at 0: perturb them so a forward that skips a
    norm weight or a bias disagrees with the reference."""
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or "layer_norm" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def build(name, cfg, tok, tok_cfg, outdir, text):
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(SEED)
    try:
        model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    except TypeError:
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    perturb(model)
    model = model.to(torch.bfloat16)
    model.save_pretrained(outdir, safe_serialization=True)
    tok.save(os.path.join(outdir, "tokenizer.json"))
    tc = {k: v for k, v in tok_cfg.items() if v is not None}
    tc["model_max_length"] = 4096
    with open(os.path.join(outdir, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f, indent=2)

    kw = {"attn_implementation": "eager"}
    try:
        m = transformers.AutoModelForCausalLM.from_pretrained(outdir, dtype=torch.float32, **kw)
    except TypeError:
        m = transformers.AutoModelForCausalLM.from_pretrained(outdir, torch_dtype=torch.float32, **kw)
    m.eval()
    text_ids = tok.encode(text).ids
    ids = torch.tensor(text_ids[:T], dtype=torch.int64)
    extra = {}
    if hasattr(cfg, "num_local_experts") or hasattr(cfg, "num_experts"):
        extra["output_router_logits"] = True
    with torch.no_grad():
        out = m(ids[None], output_hidden_states=True, **extra)
    ref = {"ids": ids, "text_ids": torch.tensor(text_ids, dtype=torch.int64),
           "logits": out.logits[0].float().contiguous()}
    for i, h in enumerate(out.hidden_states):
        ref["hidden.%d" % i] = h[0].float().contiguous()
    rl = getattr(out, "router_logits", None)
    if rl:
        for i, r in enumerate(rl):
            r = r.reshape(-1, r.shape[-1])[-T:]
            ref["router.%d" % i] = r.float().contiguous()
    save_file(ref, os.path.join(outdir, "reference.safetensors"))

    names = sorted(load_file(os.path.join(outdir, "model.safetensors")).keys()) \
        if os.path.exists(os.path.join(outdir, "model.safetensors")) else os.listdir(outdir)
    info = {"name": name, "n_text_ids": len(text_ids), "vocab_tok": tok.get_vocab_size(),
            "tensors": names[:40], "n_tensors": len(names),
            "logits_absmax": float(out.logits.abs().max())}
    if name == "mistral":
        # show the sliding window matters at T tokens
        m.config.sliding_window = None
        try:
            m.config._attn_implementation = "eager"
        except Exception:
            pass
        with torch.no_grad():
            full = m(ids[None]).logits[0]
        info["nowindow_max_abs_diff"] = float((full - out.logits[0]).abs().max())
    print(json.dumps(info))
    return info


def main():
    root, out = sys.argv[1], sys.argv[2]
    lines = corpus(root)
    with open(os.path.join(root, "tests", "data", "arch", "text.txt"), encoding="utf-8") as f:
        text = f.read()
    print("transformers", transformers.__version__, "torch", torch.__version__)
    C = transformers
    infos = []

    tok, tc = tok_bytelevel(lines, True)
    V = pad64(tok.get_vocab_size())
    common_opt = dict(vocab_size=V, hidden_size=128, num_hidden_layers=2, ffn_dim=256,
                      num_attention_heads=4, max_position_embeddings=256, pad_token_id=1,
                      bos_token_id=2, eos_token_id=2, dropout=0.0, attention_dropout=0.0,
                      activation_function="relu", enable_bias=True, tie_word_embeddings=True)
    infos.append(build("opt", C.OPTConfig(do_layer_norm_before=True, word_embed_proj_dim=128,
                                          **common_opt), tok, tc, os.path.join(out, "opt"), text))
    infos.append(build("opt350", C.OPTConfig(do_layer_norm_before=False, word_embed_proj_dim=64,
                                             **common_opt), tok, tc,
                       os.path.join(out, "opt350"), text))

    tok, tc = tok_qwen(lines)
    V = pad64(tok.get_vocab_size())
    infos.append(build("qwen2", C.Qwen2Config(
        vocab_size=V, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
        use_sliding_window=False, bos_token_id=None, eos_token_id=V - 1),
        tok, tc, os.path.join(out, "qwen2"), text))
    infos.append(build("qwen3", C.Qwen3Config(
        vocab_size=V, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=256,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
        attention_bias=False, use_sliding_window=False),
        tok, tc, os.path.join(out, "qwen3"), text))
    infos.append(build("qwen2moe", C.Qwen2MoeConfig(
        vocab_size=V, hidden_size=128, intermediate_size=256, moe_intermediate_size=64,
        shared_expert_intermediate_size=128, num_experts=4, num_experts_per_tok=2,
        norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[], num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rope_theta=1000000.0, tie_word_embeddings=False, use_sliding_window=False),
        tok, tc, os.path.join(out, "qwen2moe"), text))
    infos.append(build("qwen3moe", C.Qwen3MoeConfig(
        vocab_size=V, hidden_size=128, intermediate_size=256, moe_intermediate_size=64,
        num_experts=4, num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1,
        mlp_only_layers=[], num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=32, max_position_embeddings=256, rope_theta=1000000.0,
        tie_word_embeddings=False, use_sliding_window=False),
        tok, tc, os.path.join(out, "qwen3moe"), text))

    os.makedirs(os.path.join(out, "_tmp"), exist_ok=True)
    tok, tc = tok_sentencepiece(lines, os.path.join(out, "_tmp", "sp.json"))
    V = tok.get_vocab_size()
    infos.append(build("mistral", C.MistralConfig(
        vocab_size=V, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        sliding_window=16, rope_theta=10000.0, tie_word_embeddings=False),
        tok, tc, os.path.join(out, "mistral"), text))
    infos.append(build("mixtral", C.MixtralConfig(
        vocab_size=V, hidden_size=128, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        num_local_experts=4, num_experts_per_tok=2, sliding_window=None, rope_theta=1000000.0,
        router_jitter_noise=0.0, tie_word_embeddings=False),
        tok, tc, os.path.join(out, "mixtral"), text))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__,
                   "fixtures": infos}, f, indent=1)


if __name__ == "__main__":
    main()
