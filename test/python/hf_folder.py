"""Tiny Hugging Face model folders for tests, built here (nothing is downloaded).

    folder = make_hf_folder(tmp_path / "qwen", family="qwen3", vocab_size=419)

writes what a hub checkpoint holds: config.json + model.safetensors (written
by transformers' `save_pretrained`, so the names and config keys are the ones
real checkpoints carry), tokenizer.json (a byte-level BPE trained here on the
English text below: every byte is a token, so any UTF-8 text encodes, and
non-ASCII characters come out as several byte tokens, which is what
incremental detokenizing has to get right), tokenizer_config.json (a ChatML
template for qwen3, a Llama 3 one for llama) and generation_config.json.

Weights are drawn here, not by transformers' initializer (std 0.02 makes all
logits nearly equal, so greedy tokens would hinge on rounding): matrices of
variance 1/fan_in, norms near 1, so the top logits are well apart.
"""

from __future__ import annotations

import json
from pathlib import Path

# A few kilobytes of plain English to train the BPE merges on (written for these tests).
CORPUS = """\
The river runs past the old mill and under the stone bridge before it turns toward the sea.
In the morning the fishermen check their nets, and in the evening they sit by the water and talk
about the weather, the price of bread, and the boats that did not come back last winter.
A small compiler takes a program and turns it into instructions that a machine can follow.
It reads the text, builds a tree, checks the types, and then lowers every operation step by step
until only simple loads, stores, additions and multiplications remain.
Good tests are short, fast and honest: they fail when something is wrong and pass when it is right.
When the kernel starts, every worker reads its queue, waits for the events it depends on,
runs its task, and signals the next one. Nothing stops until the last token has been written.
My grandmother kept a garden with tomatoes, beans, onions and a row of tall yellow sunflowers.
She said that a garden teaches patience, because nothing you plant today can be eaten tomorrow.
The train was late again, so we walked along the platform, counted the benches and read the posters
about holidays in the mountains, where the air is clean and the nights are quiet and cold.
Numbers are stored as bits; a float has a sign, an exponent and a mantissa, and rounding is everywhere.
Once upon a time there was a little fox who wanted to see the city. He packed a map, an apple
and a warm scarf, and he set off before sunrise while the other animals were still asleep.
The library opens at nine. Students come with laptops and coffee, and the librarian reminds them,
politely but firmly, that coffee is not allowed near the rare books on the second floor.
What is the capital of France? Paris is the capital of France, and it sits on the river Seine.
How many days are in a week? There are seven days in a week, and twelve months in a year.
Please write a short poem about the moon. The moon is round and white tonight, it lights the road,
it lights the hill, and all the town is still.
If you want to go fast, go alone; if you want to go far, go together, as the saying goes.
The quick brown fox jumps over the lazy dog, which is a sentence that uses every letter.
Hello, world! This is a test of the tokenizer, with punctuation: commas, periods; colons and dashes.
We measured the time per step, the memory traffic, and the number of tasks on each processor.
Then we changed one thing at a time and measured again, because guessing is not the same as knowing.
"""

FAMILIES = {
    "qwen3": {"specials": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
              "bos": None, "eos": "<|im_end|>", "extra_eos": ["<|endoftext|>"], "pad": "<|endoftext|>"},
    "llama": {"specials": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                           "<|end_header_id|>", "<|eot_id|>"],
              "bos": "<|begin_of_text|>", "eos": "<|eot_id|>", "extra_eos": ["<|end_of_text|>"], "pad": None},
}

# ChatML, as Qwen checkpoints write it (tools and thinking left out).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

# Llama 3 style: the template writes the BOS token itself.
LLAMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")


def make_tokenizer(family: str, vocab_size: int):
    """A byte-level BPE `tokenizers.Tokenizer` of exactly `vocab_size` tokens, special tokens last."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    spec = FAMILIES[family]
    specials = spec["specials"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(specials):
        raise ValueError(f"vocab_size must be at least {len(alphabet) + len(specials)} "
                         f"(256 bytes + {len(specials)} special tokens), got {vocab_size}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(specials), initial_alphabet=alphabet,
                                  show_progress=False, min_frequency=2)
    tokenizer.train_from_iterator(CORPUS.splitlines(), trainer)
    # Too little text for that many merges: pad with reserved tokens, as Llama 3 does.
    reserved = [f"<|reserved_special_token_{i}|>"
                for i in range(vocab_size - len(specials) - tokenizer.get_vocab_size())]
    tokenizer.add_special_tokens(specials + reserved)
    if tokenizer.get_vocab_size() != vocab_size:
        raise AssertionError(f"tokenizer has {tokenizer.get_vocab_size()} tokens, wanted {vocab_size}")
    if spec["bos"]:
        bos = spec["bos"]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.token_to_id(bos))])
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def _init_weights(model, seed: int) -> None:
    """Matrices of variance 1/fan_in, norm weights 1 + 0.1 N(0, 1), embeddings of std 0.1
    (larger, and a tied model's every token would predict itself)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
            if p.ndim == 1:
                value = 1 + 0.1 * noise
            elif "embed_tokens" in name:
                value = 0.1 * noise
            else:
                value = noise / p.shape[-1] ** 0.5
            p.copy_(value.to(p.dtype))


def make_hf_folder(path, family: str = "qwen3", *, tie_word_embeddings: bool = True,
                   vocab_size: int = 419, hidden_size: int = 64, num_heads: int = 4, num_kv_heads: int = 2,
                   head_dim: int = 16, num_layers: int = 2, intermediate_size: int = 128, seed: int = 0,
                   dtype: str = "float32", chat_template: bool = True, max_position_embeddings: int = 2048,
                   ) -> Path:
    """Write a tiny `family` ("qwen3" or "llama") checkpoint folder at `path` and return it."""
    import torch
    import transformers

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    spec = FAMILIES[family]
    tokenizer = make_tokenizer(family, vocab_size)
    ids = {t: tokenizer.token_to_id(t) for t in spec["specials"]}
    eos_ids = [ids[spec["eos"]]] + [ids[t] for t in spec["extra_eos"]]
    common = dict(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
                  num_hidden_layers=num_layers, num_attention_heads=num_heads,
                  num_key_value_heads=num_kv_heads, head_dim=head_dim,
                  tie_word_embeddings=tie_word_embeddings, max_position_embeddings=max_position_embeddings,
                  eos_token_id=eos_ids[-1], bos_token_id=ids[spec["bos"]] if spec["bos"] else None,
                  pad_token_id=ids[spec["pad"]] if spec["pad"] else None)
    if family == "qwen3":
        config = transformers.Qwen3Config(rope_theta=1e6, rms_norm_eps=1e-6, **common)
        model_class = transformers.Qwen3ForCausalLM
    else:
        config = transformers.LlamaConfig(
            rms_norm_eps=1e-5, rope_theta=500000.0,
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}, **common)
        model_class = transformers.LlamaForCausalLM
    model = model_class(config)
    _init_weights(model, seed)
    model = model.to(getattr(torch, dtype)).eval()
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=common["bos_token_id"], eos_token_id=eos_ids, pad_token_id=common["pad_token_id"])
    model.save_pretrained(path, safe_serialization=True)           # + generation_config.json

    tokenizer.save(str(path / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": spec["eos"],
        "bos_token": spec["bos"],
        "pad_token": spec["pad"],
        "model_max_length": max_position_embeddings,
        "clean_up_tokenization_spaces": False,
    }
    if chat_template:
        tokenizer_config["chat_template"] = CHATML_TEMPLATE if family == "qwen3" else LLAMA3_TEMPLATE
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    return path
