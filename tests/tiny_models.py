"""Tiny random models for tests, built at test time from fixed seeds (no weights are committed).

The tokenizers are trained on a small built-in corpus, so the builders need neither a hub nor the packaged
models. The Llama has head_dim 64 because vLLM's CPU attention rejects smaller heads.
"""

from __future__ import annotations

from pathlib import Path

# Covers the characters the tests feed the models: English NER sentences, the prompt markers, digits, and
# the Chinese characters of a few Resume-style sentences.
_CORPUS = [
    "EU rejects German call to boycott British lamb .",
    "Peter Blackburn BRUSSELS 1996-08-22",
    "The European Commission said on Thursday it disagreed with German advice .",
    "Germany 's representative to the European Union 's veterinary committee Werner Zwingmann said",
    "Japan began the defence of their Asian Cup title with a lucky 2-1 win against Syria .",
    "text:\nentity type:\nperson\norganization\nlocation\nmiscellaneous\n\n<num>\n<mention 1><mention 2>",
    "0 1 2 3 4 5 6 7 8 9 10 PER ORG LOC MISC none person: location: organization: miscellaneous:",
    "高勇：男，中国国籍，无境外居留权，大学本科学历，高级经济师。",
    "现任北京市海淀区人民政府副区长，曾任清华大学教授。",
    "实体类型：人名 地名 组织 职位 学历 专业 民族 国籍",
]
SPECIAL_LLAMA = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SPECIAL_BERT = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _train_bpe(vocab_size: int, special_tokens: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tokenizer


SPECIAL_GEMMA = ["<pad>", "<eos>", "<bos>", "<unk>"]
ARCHITECTURES = ("llama", "qwen2", "gemma3")


def build_tiny_causal_lm(
    path: str | Path,
    architecture: str = "llama",
    seed: int = 0,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    num_kv_heads: int = 1,
    vocab_size: int = 512,
    max_positions: int = 512,
    dtype: str = "float32",
) -> Path:
    """A random causal LM of ``architecture`` (llama, qwen2 or gemma3: one of each padellm model family) with
    head_dim ``hidden_size // num_heads`` (64 by default) and a byte-level BPE tokenizer that, like the converted
    packaged models', adds no special token of its own. The Gemma has Gemma's special tokens (``<bos>`` = 2,
    ``<eos>`` = 1, ``<pad>`` = 0); the others SmolLM2's. Saved as a plain Hugging Face folder. Same arguments,
    same files."""
    import torch
    import transformers
    from transformers import PreTrainedTokenizerFast

    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}; got {architecture!r}")
    if hidden_size // num_heads < 64:
        raise ValueError(f"head_dim must be >= 64 for vLLM on CPU; got hidden_size={hidden_size}, num_heads={num_heads}")
    path = Path(path)
    if architecture == "gemma3":
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=_train_bpe(vocab_size, SPECIAL_GEMMA), pad_token="<pad>",
                                            eos_token="<eos>", bos_token="<bos>", unk_token="<unk>")
    else:
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=_train_bpe(vocab_size, SPECIAL_LLAMA),
                                            bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>",
                                            unk_token="<|endoftext|>")
    config_class, model_class = {"llama": ("LlamaConfig", "LlamaForCausalLM"),
                                 "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
                                 "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM")}[architecture]
    config = getattr(transformers, config_class)(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(config).to(getattr(torch, dtype))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_llama(path: str | Path, seed: int = 0, **kwargs) -> Path:
    """A random Llama (SmolLM2's architecture): ``build_tiny_causal_lm`` with ``architecture="llama"``."""
    return build_tiny_causal_lm(path, "llama", seed=seed, **kwargs)


def build_tiny_bert(
    path: str | Path,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    vocab_size: int = 400,
    max_positions: int = 128,
) -> Path:
    """A random uncased BERT encoder with a WordPiece tokenizer, saved as a plain Hugging Face folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = Path(path)
    # WordPiece training orders ties differently from run to run; a vocabulary built by hand does not.
    words = sorted({w for line in _CORPUS for w, _ in pre_tokenizers.BertPreTokenizer().pre_tokenize_str(line.lower())})
    chars = sorted({c for w in words for c in w})
    vocab_list = SPECIAL_BERT + chars + [f"##{c}" for c in chars] + [w for w in words if len(w) > 1]
    vocab_list = list(dict.fromkeys(vocab_list))[:vocab_size]
    backend = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab_list)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", do_lower_case=True,
    )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
