#!/usr/bin/env python3
"""Build, offline, a small word-level Hugging Face tokenizer into a directory.

    $NIXL_VLLM_VENV/bin/python make_tokenizer.py OUT_DIR [--vocab-size 4096]

One token = one whitespace-separated word, so the emulator (which counts words)
and the real `vllm bench serve` client (which counts this tokenizer's ids) agree
exactly on every prompt's length:
  * model WordLevel, pre-tokenizer WhitespaceSplit (split on whitespace only),
    no normalizer, no post-processor (no BOS/EOS added: num_special_tokens_to_add
    is 0, so --random-input-len N gives N-word prompts), no decoder (decode joins
    tokens with single spaces);
  * vocabulary: 4 special tokens (<unk> <s> </s> <pad>, written without spaces)
    then words "w0", "w1", ... (alphanumeric, never split, never merged);
  * clean_up_tokenization_spaces false, so decode(encode(text)) == text for
    single-spaced text.
Writes tokenizer.json, tokenizer_config.json, special_tokens_map.json and a
minimal config.json; `transformers.AutoTokenizer.from_pretrained(OUT_DIR)` and
vLLM's get_tokenizer(OUT_DIR) load it without network access.
"""
import argparse
import json
import os

from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


def build(out, vocab_size):
    os.makedirs(out, exist_ok=True)
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for i in range(vocab_size - len(SPECIALS)):
        vocab[f"w{i}"] = len(vocab)
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = WhitespaceSplit()
    tok.add_special_tokens(SPECIALS)  # already in the vocab: keeps their ids
    tok.save(os.path.join(out, "tokenizer.json"))
    added = {
        str(vocab[s]): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                        "single_word": False, "special": True}
        for s in SPECIALS
    }
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1000000,
        "add_bos_token": False, "add_eos_token": False,
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump({"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}, f,
                  indent=2)
    # not a model, only enough for tools that read the directory's config
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "vocab_size": vocab_size, "bos_token_id": 1, "eos_token_id": 2,
                   "pad_token_id": 3, "max_position_embeddings": 32768}, f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--vocab-size", type=int, default=4096)
    a = ap.parse_args()
    build(a.out, a.vocab_size)
    from transformers import AutoTokenizer
    t = AutoTokenizer.from_pretrained(a.out)
    text = "w1 w2 w3 <unk> w4095"
    ids = t.encode(text, add_special_tokens=True)
    assert len(ids) == len(text.split()), ids
    assert t.decode(t.encode("w5 w6 w7", add_special_tokens=False)) == "w5 w6 w7"
    assert t.num_special_tokens_to_add() == 0
    print(f"tokenizer: {a.out} (vocab {t.vocab_size})")


if __name__ == "__main__":
    main()
