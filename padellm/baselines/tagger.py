"""BIO token taggers on a BERT-like encoder: the model of two seed baselines.

- **Early exit** (Li et al., ACL 2021): an off-ramp (a linear tag classifier) after every layer, trained on all of
  them; decoded with SENTEE or TOKEE (``padellm.baselines.token_exit``).
- **CRF tagger** (the teacher and student of Zhou et al., NAACL 2021): a CRF over the last layer's emissions; a
  student keeps only the encoder's first ``layers`` layers.

Words are tagged at their first subword (``fastner_data.word_positions``, shared with FastNER); tags are IOB2 over
the model's labels (``crf.bio_tags``), and decoded tags become entities leniently (an ``I-`` that opens a chunk
reads as ``B-``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from padellm.baselines.crf import CRF, bio_tags
from padellm.baselines.encoder import LayerwiseEncoder
from padellm.baselines.fastner_data import word_positions
from padellm.baselines.token_exit import TokenExitConfig, run_with_exits
from padellm.data.bio import entities_to_token_spans, spans_to_tags, tags_to_spans, tokens_to_entities
from padellm.errors import ConfigError, CorpusError
from padellm.types import Entity, Example

CONFIG_FILE = "tagger.json"
WEIGHTS_FILE = "tagger.safetensors"


def settings_problems(layers: int, dropout: float, max_subwords: int) -> list[str]:
    """What is wrong with a tagger's size settings (shared by the model config and the training config)."""
    problems = []
    if layers < 0:
        problems.append(f"layers must be >= 0 (0: all); got {layers}")
    if not 0 <= dropout < 1:
        problems.append(f"dropout must be in [0, 1); got {dropout}")
    if max_subwords < 3:
        problems.append(f"max_subwords must be >= 3; got {max_subwords}")
    return problems


@dataclass(frozen=True)
class TaggerConfig:
    labels: tuple[str, ...] = ()
    """Entity labels; the tags are O, then B-/I- of each."""
    layers: int = 0
    """Encoder layers kept (0: all); a distillation student keeps the first few."""
    crf: bool = False
    """A CRF over the last layer's emissions (the distillation teacher and student) instead of off-ramps decoded
    token by token (the early-exit model)."""
    dropout: float = 0.1
    max_subwords: int = 256
    """Subwords per sentence, [CLS] and [SEP] included; longer sentences are truncated (their tail words get O)."""

    def __post_init__(self) -> None:
        problems = []
        if not self.labels or len(set(self.labels)) != len(self.labels):
            problems.append(f"labels must be a non-empty list without repeats; got {list(self.labels)}")
        problems += settings_problems(self.layers, self.dropout, self.max_subwords)
        if problems:
            raise ConfigError(problems)

    @property
    def tags(self) -> tuple[str, ...]:
        return bio_tags(self.labels)


@dataclass
class TaggerBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    word_index: torch.Tensor
    """``[batch, words]`` first subword of each kept word (0 for padding words)."""
    word_mask: torch.Tensor
    tags: torch.Tensor | None = None
    """``[batch, words]`` gold tag ids (0 = O on padding), for training."""


def encode(examples: list[Example], tokenizer, config: TaggerConfig, with_tags: bool = True) -> TaggerBatch:
    """A padded batch of ``examples``; gold tags from their entities (flat: nested entities are refused)."""
    index = {tag: i for i, tag in enumerate(config.tags)}
    rows = []
    for example in examples:
        input_ids, positions = word_positions(example, tokenizer, config.max_subwords)
        tags = None
        if with_tags:
            known = [e for e in example.entities if f"B-{e.label}" in index]
            try:
                spans = [(start, end, label) for start, end, label in
                         entities_to_token_spans(example.token_spans, known) if end <= len(positions)]
                tags = [index[t] for t in spans_to_tags(len(positions), spans)]
            except ValueError as err:
                raise CorpusError(example.id or "example", None, f"{err}: a BIO tagger needs flat, "
                                                                 f"token-aligned entities") from None
        rows.append((input_ids, positions, tags))
    subwords = max(len(r[0]) for r in rows)
    words = max(1, max(len(r[1]) for r in rows))
    batch = TaggerBatch(torch.full((len(rows), subwords), tokenizer.pad_token_id, dtype=torch.long),
                        torch.zeros(len(rows), subwords, dtype=torch.long),
                        torch.zeros(len(rows), words, dtype=torch.long), torch.zeros(len(rows), words, dtype=torch.bool),
                        torch.zeros(len(rows), words, dtype=torch.long) if with_tags else None)
    for row, (input_ids, positions, tags) in enumerate(rows):
        batch.input_ids[row, : len(input_ids)] = torch.tensor(input_ids)
        batch.attention_mask[row, : len(input_ids)] = 1
        batch.word_index[row, : len(positions)] = torch.tensor(positions, dtype=torch.long)
        batch.word_mask[row, : len(positions)] = True
        if tags is not None and tags:
            batch.tags[row, : len(tags)] = torch.tensor(tags)
    return batch


def to_entities(tag_ids: list[int], tags: tuple[str, ...], example: Example) -> list[Entity]:
    """Decoded tags of an example's (kept) words -> character-offset entities."""
    decoded = tags_to_spans([tags[i] for i in tag_ids], "iob2", strict=False)
    return tokens_to_entities(example.token_spans[: len(tag_ids)], decoded.spans)


class Tagger(nn.Module):
    def __init__(self, encoder: nn.Module, config: TaggerConfig):
        super().__init__()
        if config.layers:
            if config.layers > len(encoder.encoder.layer):
                raise ConfigError(f"layers: the encoder has {len(encoder.encoder.layer)} layers; got {config.layers}")
            encoder.encoder.layer = encoder.encoder.layer[: config.layers]
            encoder.config.num_hidden_layers = config.layers
        self.encoder = encoder
        self.layers = LayerwiseEncoder(encoder)
        self.config = config
        hidden, size = encoder.config.hidden_size, len(config.tags)
        self.heads = nn.ModuleList(nn.Sequential(nn.Dropout(config.dropout), nn.Linear(hidden, size))
                                   for _ in range(self.num_layers))
        self.crf = CRF(config.tags) if config.crf else None

    @property
    def num_layers(self) -> int:
        return self.layers.num_layers

    @classmethod
    def from_encoder(cls, encoder_dir: str | Path, config: TaggerConfig) -> Tagger:
        from transformers import AutoModel

        return cls(AutoModel.from_pretrained(encoder_dir, add_pooling_layer=False), config)

    def forward(self, batch: TaggerBatch) -> list[torch.Tensor]:
        """Tag emissions ``[batch, words, tags]`` after every layer, shallowest first."""
        hidden = self.layers.embed(batch.input_ids)
        attention = self.layers.attention(hidden, batch.attention_mask)
        gather = batch.word_index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        emissions = []
        for index, head in enumerate(self.heads):
            hidden = self.layers.layer(index, hidden, attention)
            emissions.append(head(hidden.gather(1, gather)))
        return emissions

    def loss(self, batch: TaggerBatch, exit_weights: list[float] | None = None) -> tuple[torch.Tensor, list[float]]:
        """The training loss and each off-ramp's share: the CRF's negative log-likelihood of the gold tags (CRF
        tagger), or the off-ramps' token cross-entropies weighted by ``exit_weights`` (early exit; default:
        all 1)."""
        emissions = self(batch)
        if self.crf is not None:
            loss = self.crf.nll(emissions[-1], batch.tags, batch.word_mask).mean()
            return loss, [loss.item()]
        weights = exit_weights or [1.0] * len(emissions)
        mask = batch.word_mask
        per_exit = [nn.functional.cross_entropy(e[mask], batch.tags[mask]) for e in emissions]
        total = sum(w * loss for w, loss in zip(weights, per_exit)) / sum(weights)
        return total, [loss.item() for loss in per_exit]

    def self_sampling_loss(self, batch: TaggerBatch, max_threshold: float, window: int,
                           exit_weights: list[float] | None = None, generator: torch.Generator | None = None
                           ) -> tuple[torch.Tensor, dict]:
        """Self-sampling fine-tuning (Li et al. 2021, the stage that closes TOKEE's train/inference gap): the
        batch runs as TOKEE runs it, each sentence at a threshold drawn uniformly from ``[0, max_threshold]``, so
        that its tokens leave where the model's own uncertainty lets them; a token that left is frozen and still
        a key and value for the others, exactly as at inference. Each off-ramp is trained on the words it
        classifies there (those still running), weighted by ``exit_weights``: the upper layers learn to work
        with copied states. Returns the loss and what to log (mean exit layer, share of token-layers
        computed)."""
        if self.crf is not None:
            raise ConfigError("self-sampling fine-tunes the off-ramp tagger; a CRF tagger has no early exit")
        thresholds = torch.rand(len(batch.input_ids), generator=generator) * max_threshold
        config = TokenExitConfig(mode="token", threshold=max_threshold, window=window)
        result = run_with_exits(self.layers, self.heads, batch.input_ids, batch.attention_mask, config,
                                batch.word_index, batch.word_mask, thresholds=thresholds, keep_layers=True)
        weights = exit_weights or [1.0] * len(self.heads)
        total, weight = 0.0, 0.0
        for (logits, active), w in zip(result.layers, weights):
            if active.any():
                total = total + w * nn.functional.cross_entropy(logits[active], batch.tags[active])
                weight += w
        words = batch.word_mask
        log = {"mean_exit": round(float(result.exit_layer[words].float().mean()), 3),
               "computed": round(result.token_layers / (self.num_layers * int(batch.attention_mask.sum())), 3)}
        return total / weight, log

    @torch.no_grad()
    def predict(self, batch: TaggerBatch, exit_config: TokenExitConfig = TokenExitConfig()
                ) -> tuple[list[list[int]], torch.Tensor, int]:
        """Tag ids per sentence (its kept words), the exit layer of each word, and the token-layers computed."""
        if self.crf is not None:
            if exit_config.mode != "none":
                raise ConfigError(f"exit mode {exit_config.mode!r}: a CRF tagger decodes whole sentences; early exit "
                                  f"is the off-ramp tagger's")
            emissions = self(batch)[-1]
            exits = batch.word_mask.long() * self.num_layers
            return self.crf.decode(emissions, batch.word_mask), exits, self.num_layers * int(batch.attention_mask.sum())
        result = run_with_exits(self.layers, self.heads, batch.input_ids, batch.attention_mask, exit_config,
                                batch.word_index, batch.word_mask)
        best = result.logits.argmax(-1)
        tags = [best[row][batch.word_mask[row]].tolist() for row in range(len(best))]
        return tags, result.exit_layer, result.token_layers

    def save(self, folder: str | Path) -> Path:
        """The encoder (a Hugging Face folder; the caller copies the tokenizer), the heads and CRF, the config."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(folder / "encoder")
        weights = {f"heads.{k}": v for k, v in self.heads.state_dict().items()}
        if self.crf is not None:
            weights |= {f"crf.{k}": v for k, v in self.crf.state_dict().items()}
        save_file({k: v.contiguous() for k, v in weights.items()}, folder / WEIGHTS_FILE)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Tagger:
        from safetensors.torch import load_file
        from transformers import AutoModel

        folder = Path(folder)
        if not (folder / CONFIG_FILE).is_file():
            raise ConfigError(f"{folder} is not a tagger model folder (no {CONFIG_FILE})")
        raw = json.loads((folder / CONFIG_FILE).read_text())
        config = TaggerConfig(**{**raw, "labels": tuple(raw["labels"]), "layers": 0})  # the saved encoder is cut
        model = cls(AutoModel.from_pretrained(folder / "encoder", add_pooling_layer=False), config)
        weights = load_file(folder / WEIGHTS_FILE)
        model.heads.load_state_dict({k[6:]: v for k, v in weights.items() if k.startswith("heads.")})
        if model.crf is not None:
            model.crf.load_state_dict({k[4:]: v for k, v in weights.items() if k.startswith("crf.")})
        model.config = TaggerConfig(**{**raw, "labels": tuple(raw["labels"])})
        return model.eval()


@torch.no_grad()
def layer_entities(model: Tagger, tokenizer, examples: list[Example], batch_size: int = 32) -> list[list[list[Entity]]]:
    """Entities of each example by each off-ramp without early exit (the CRF tagger: its one decoder), shallowest
    first: ``[layer][example]``."""
    per_layer = [[] for _ in range(1 if model.crf is not None else model.num_layers)]
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = encode(chunk, tokenizer, model.config, with_tags=False)
        emissions = model(batch)
        if model.crf is not None:
            decoded = [model.crf.decode(emissions[-1], batch.word_mask)]
        else:
            decoded = [[e.argmax(-1)[row][batch.word_mask[row]].tolist() for row in range(len(chunk))]
                       for e in emissions]
        for layer, tags in enumerate(decoded):
            per_layer[layer] += [to_entities(t, model.config.tags, ex) for t, ex in zip(tags, chunk)]
    return per_layer
