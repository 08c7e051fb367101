"""Early exit for sequence labelling (Li et al., ACL 2021, "Accelerating BERT Inference for Sequence Labeling via
Early-Exit"): a token classifier with an off-ramp after every encoder layer, decoded with

- **SENTEE** (sentence-level exit): a sentence leaves at the first layer where the uncertainty of its tokens,
  pooled by max or mean, is at most the threshold; its tags are that off-ramp's;
- **TOKEE** (token-level exit): a token leaves at the first layer where its own uncertainty and that of every
  token within ``window`` positions of it are at most the threshold. Its hidden state is then frozen: copied
  upward, it still serves as key and value to the tokens that go on, and later layers compute only the active
  tokens (gathered, not masked: the saved work is real).

Uncertainty is the normalised entropy of a token's tag distribution (0: certain, 1: uniform). The functions
here work on any BERT-like encoder through ``LayerwiseEncoder``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from padellm.baselines.encoder import LayerwiseEncoder
from padellm.errors import ConfigError, one_of_problem

MODES = ("none", "sentence", "token")


@dataclass(frozen=True)
class TokenExitConfig:
    mode: str = "none"
    """none (every token through every layer), sentence (SENTEE) or token (TOKEE)."""
    threshold: float = 0.0
    """Leave at or below this normalised entropy."""
    window: int = 1
    """TOKEE: a token leaves only when the tokens within this many positions of it are certain too."""
    pooling: str = "max"
    """SENTEE: how token uncertainties pool into the sentence's (max or mean)."""
    min_layer: int = 1
    """No token leaves before this layer (1-based)."""

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(one_of_problem("mode", MODES, self.mode))
        if not 0 <= self.threshold <= 1:
            problems.append(f"threshold must be in [0, 1]; got {self.threshold}")
        if self.window < 0:
            problems.append(f"window must be >= 0; got {self.window}")
        if self.pooling not in ("max", "mean"):
            problems.append(f"pooling must be max or mean; got {self.pooling!r}")
        if self.min_layer < 1:
            problems.append(f"min_layer must be >= 1; got {self.min_layer}")
        if problems:
            raise ConfigError(problems)


def uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """Normalised entropy of each distribution over the last axis, in [0, 1]."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    return -(log_p.exp() * log_p).sum(-1) / math.log(logits.shape[-1])


def window_max(values: torch.Tensor, mask: torch.Tensor, window: int) -> torch.Tensor:
    """For each token, the largest of ``values`` within ``window`` positions (real tokens only): ``[batch, len]``."""
    if window == 0:
        return values
    padded = values.masked_fill(~mask, float("-inf")).unsqueeze(1)
    pooled = torch.nn.functional.max_pool1d(padded, kernel_size=2 * window + 1, stride=1, padding=window)
    return pooled.squeeze(1)


def layer_for_tokens(layer, hidden: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                     key_mask: torch.Tensor) -> torch.Tensor:
    """A BERT layer computed for the tokens ``(rows[i], cols[i])`` only, ``[n, hidden]``; every real token of
    their sentences (``key_mask``) is a key and value, with the state it has in ``hidden`` (frozen or not)."""
    attention = layer.attention.self
    heads, size = attention.num_attention_heads, attention.attention_head_size
    sentences, local = torch.unique(rows, return_inverse=True)  # keys and values of these sentences only
    context_hidden = hidden[sentences]
    keys = attention.key(context_hidden).view(*context_hidden.shape[:2], heads, size)[local]
    values = attention.value(context_hidden).view(*context_hidden.shape[:2], heads, size)[local]
    active = hidden[rows, cols]
    queries = attention.query(active).view(-1, heads, size)
    scores = torch.einsum("nhd,nlhd->nhl", queries, keys) * attention.scaling
    scores = scores.masked_fill(~key_mask[rows][:, None, :], float("-inf"))
    context = torch.einsum("nhl,nlhd->nhd", scores.softmax(-1), values).reshape(len(rows), heads * size)
    attended = layer.attention.output(context, active)
    return layer.output(layer.intermediate(attended), attended)


@dataclass
class ExitResult:
    logits: torch.Tensor
    """``[batch, len, tags]`` each token's tag logits at the off-ramp where it left."""
    exit_layer: torch.Tensor
    """``[batch, len]`` 1-based layer at which each token left (0 on padding)."""
    token_layers: int
    """Sum over real tokens of the layers each went through: what the model computed, in token-layers."""
    layers: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    """With ``keep_layers``: per layer, the off-ramp's word logits ``[batch, words, tags]`` and the words it
    classifies there (those still running at that layer, ``[batch, words]``): what self-sampling trains on."""


def word_owners(word_index: torch.Tensor, word_mask: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[batch, len]``: the word each subword belongs to (a word runs from its first subword to the next word's),
    or -1 for positions of no word: before the first word ([CLS]) and the sentence's last real position when no
    word starts there ([SEP])."""
    batch, length = mask.shape
    owners = torch.full((batch, length), -1, dtype=torch.long)
    for row in range(batch):
        starts = word_index[row][word_mask[row]].tolist()
        last = int(mask[row].sum()) - 1
        for word, begin in enumerate(starts):
            end = starts[word + 1] if word + 1 < len(starts) else (last if last not in starts else last + 1)
            owners[row, begin:end] = word
    return owners


def run_with_exits(encoder: LayerwiseEncoder, heads, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   config: TokenExitConfig, word_index: torch.Tensor | None = None,
                   word_mask: torch.Tensor | None = None, thresholds: torch.Tensor | None = None,
                   keep_layers: bool = False) -> ExitResult:
    """Run the encoder layer by layer with an off-ramp (``heads[i]``: hidden -> tag logits) after each layer,
    letting sentences (SENTEE) or tokens (TOKEE) leave as ``config`` says. The off-ramps classify the words whose
    first subwords are ``word_index`` ``[batch, words]`` (default: every subword is a word); in TOKEE a word's
    subwords leave with it, and positions of no word ([CLS], [SEP]) go on while their sentence has a word
    running.

    ``thresholds`` ``[batch]`` replaces ``config.threshold`` with one threshold per sentence (self-sampling draws
    them); ``keep_layers`` records every off-ramp's logits and the words it classifies (``ExitResult.layers``).
    Nothing here stops gradients: under autograd the same pass trains the model as it will run."""
    mask = attention_mask.bool()
    batch, length = input_ids.shape
    if word_index is None:
        word_index, word_mask = torch.arange(length).expand(batch, length), mask
    word_mask = word_mask.bool()
    owners = word_owners(word_index, word_mask, mask) if config.mode == "token" else None
    hidden = encoder.embed(input_ids)
    gather = word_index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
    logits = None
    exit_layer = torch.zeros(word_index.shape, dtype=torch.long)
    active = word_mask.clone()  # words not yet left
    token_layers = 0
    limit = (torch.full((batch,), config.threshold) if thresholds is None else thresholds.float()).unsqueeze(1)
    kept = []
    for index in range(len(heads)):
        if config.mode == "token":
            running = active.any(1, keepdim=True)
            owned = active.gather(1, owners.clamp(min=0)) & (owners >= 0)
            rows, cols = (mask & (owned | ((owners < 0) & running))).nonzero(as_tuple=True)
            if len(rows):
                hidden = hidden.clone()
                hidden[rows, cols] = layer_for_tokens(encoder.model.encoder.layer[index], hidden, rows, cols, mask)
            token_layers += len(rows)
        else:
            rows = active.any(1).nonzero(as_tuple=True)[0]  # sentences still running
            hidden = hidden.clone()
            hidden[rows] = encoder.layer(index, hidden[rows], encoder.attention(hidden[rows], attention_mask[rows]))
            token_layers += int(mask[rows].sum())
        layer_logits = heads[index](hidden.gather(1, gather))
        # Words still running take this layer's logits; words that left keep theirs.
        logits = layer_logits if logits is None else torch.where(active.unsqueeze(-1), layer_logits, logits)
        if keep_layers:
            kept.append((layer_logits, active))
        if index == len(heads) - 1:
            leaving = active
        elif config.mode == "none" or index + 1 < config.min_layer:
            leaving = torch.zeros_like(active)
        else:
            certain = uncertainty(layer_logits.detach())
            if config.mode == "sentence":
                pooled = (certain.masked_fill(~word_mask, 0.0).amax(1) if config.pooling == "max"
                          else (certain * word_mask).sum(1) / word_mask.sum(1).clamp(min=1))
                leaving = active & (pooled.unsqueeze(1) <= limit)
            else:
                leaving = active & (window_max(certain, word_mask, config.window) <= limit)
        exit_layer = torch.where(leaving, index + 1, exit_layer)
        active = active & ~leaving
        if not active.any():
            break
    return ExitResult(logits, exit_layer * word_mask, token_layers, kept)
