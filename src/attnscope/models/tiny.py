"""``tiny:<family>``: small randomly initialised models built from a config, for tests and demos.

They need no download: the tokenizer is a byte-level BPE built in code (256 byte symbols, a few
merges, the usual special tokens), so every text, Chinese and emoji included, tokenizes offline.
Weights come from a fixed seed, so the same spec always gives the same model.
"""

from __future__ import annotations

from typing import Any

from attnscope.errors import ModelNotFoundError

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>", "[CLS]", "[SEP]", "[MASK]")
_MERGES = (("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("e", "r"), ("Ġ", "a"), ("o", "n"))

# family -> (kind, post-processor template, whether to build a chat template)
_FAMILIES: dict[str, tuple[str, str, bool]] = {
    "gpt2": ("causal", "$A", True),
    "llama": ("causal", "<bos> $A", True),
    "qwen2": ("causal", "$A", True),
    "mistral": ("causal", "<bos> $A", True),
    "gemma3": ("causal", "<bos> $A", True),
    "gemma2": ("causal", "<bos> $A", True),
    "bert": ("masked", "[CLS] $A [SEP]", False),
    "t5": ("seq2seq", "$A <eos>", False),
    "bart": ("seq2seq", "<bos> $A <eos>", False),
}

TINY_FAMILIES: tuple[str, ...] = tuple(_FAMILIES)


def tiny_kind(family: str) -> str:
    return _FAMILIES[family][0]


_CHAT_TEMPLATE = (
    "{% for m in messages %}<bos>{{ m['role'] }}\n{{ m['content'] }}<eos>\n{% endfor %}"
    "{% if add_generation_prompt %}<bos>assistant\n{% endif %}"
)

_SEED = 0


def build_tokenizer(family: str) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    _, template, with_chat = _FAMILIES[family]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: index for index, symbol in enumerate(alphabet)}
    for left, right in _MERGES:
        vocab[left + right] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=list(_MERGES)))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(list(SPECIALS))
    special_ids = {token: backend.token_to_id(token) for token in SPECIALS}
    used = [t for t in SPECIALS if t in template.split()]
    backend.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(t, special_ids[t]) for t in used]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=256,
    )
    if with_chat:
        tokenizer.chat_template = _CHAT_TEMPLATE
    return tokenizer


def _config(family: str, vocab_size: int, ids: dict[str, int]) -> Any:
    import transformers as tf

    common_decoder: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "initializer_range": 0.2,
        "pad_token_id": ids["<pad>"],
        "bos_token_id": ids["<bos>"],
        "eos_token_id": ids["<eos>"],
        "tie_word_embeddings": False,
    }
    if family == "gpt2":
        return tf.GPT2Config(
            vocab_size=vocab_size,
            n_embd=64,
            n_layer=3,
            n_head=4,
            n_positions=256,
            initializer_range=0.2,
            bos_token_id=ids["<bos>"],
            eos_token_id=ids["<eos>"],
            pad_token_id=ids["<pad>"],
        )
    if family == "llama":
        return tf.LlamaConfig(**common_decoder)
    if family == "qwen2":
        return tf.Qwen2Config(**common_decoder, use_sliding_window=False)
    if family == "mistral":
        return tf.MistralConfig(**common_decoder, sliding_window=5)
    if family == "gemma3":
        return tf.Gemma3TextConfig(
            **{**common_decoder, "num_key_value_heads": 1},
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=4,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        )
    if family == "gemma2":
        return tf.Gemma2Config(
            **common_decoder,
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=4,
            attn_logit_softcapping=5.0,
            final_logit_softcapping=10.0,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        )
    if family == "bert":
        return tf.BertConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=128,
            max_position_embeddings=256,
            initializer_range=0.2,
            pad_token_id=ids["<pad>"],
        )
    if family == "t5":
        t5 = tf.T5Config(
            vocab_size=vocab_size,
            d_model=64,
            d_kv=16,
            d_ff=128,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            initializer_factor=1.0,
            pad_token_id=ids["<pad>"],
            eos_token_id=ids["<eos>"],
        )
        t5.decoder_start_token_id = ids["<pad>"]
        return t5
    if family == "bart":
        return tf.BartConfig(
            vocab_size=vocab_size,
            d_model=64,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=128,
            decoder_ffn_dim=128,
            max_position_embeddings=256,
            init_std=0.2,
            pad_token_id=ids["<pad>"],
            bos_token_id=ids["<bos>"],
            eos_token_id=ids["<eos>"],
            decoder_start_token_id=ids["<eos>"],
            forced_eos_token_id=None,
        )
    raise AssertionError(family)


def build_tiny(family: str, *, attn_implementation: str) -> tuple[Any, Any, str]:
    """(model, tokenizer, kind) for ``tiny:<family>``; weights from a fixed seed, in eval mode."""
    import torch
    import transformers as tf

    if family not in _FAMILIES:
        raise ModelNotFoundError(
            f"unknown tiny family {family!r}; available: {', '.join('tiny:' + f for f in TINY_FAMILIES)}"
        )
    kind = _FAMILIES[family][0]
    tokenizer = build_tokenizer(family)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIALS}
    config = _config(family, len(tokenizer), ids)
    config._attn_implementation = attn_implementation
    model_class = {
        "causal": tf.AutoModelForCausalLM,
        "masked": tf.AutoModelForMaskedLM,
        "seq2seq": tf.AutoModelForSeq2SeqLM,
    }[kind]
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(_SEED)
        try:
            model = model_class.from_config(config, attn_implementation=attn_implementation)
        except ValueError:  # no SDPA support in this architecture (Gemma 2): eager
            torch.manual_seed(_SEED)
            model = model_class.from_config(config, attn_implementation="eager")
    finally:
        torch.random.set_rng_state(state)
    model.eval()
    return model, tokenizer, kind
