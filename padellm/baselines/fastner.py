"""FastNER (Zhang, Gao, Zhu and Wang, ADMA 2023): a BERT biaffine span model with an exit after every encoder
layer, each exit's head fed through a convolutional bypass, and early exiting per sentence.

Every layer l has an exit: ``bypass_l`` (``h + conv(h)``, a small 1-D convolution over the layer's hidden states
added back to them; the next layer still receives ``h`` itself) and a biaffine scorer (Yu et al., ACL 2020) over
the first-subword states of the words, giving every span (i, j) a distribution over "no entity" and the labels.
At inference the encoder runs layer by layer; after each exit the criterion (``ExitConfig``) decides which
sentences leave, and the rest of the batch goes on without them. A model may also carry learned exit gates
(``exit_gates``), fitted after training, that decide from the hidden states before any head runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from padellm.baselines.encoder import LayerwiseEncoder
from padellm.baselines.exit_criteria import GATED, ExitConfig, Patience, StableLabels, leave_now
from padellm.baselines.exit_gates import ExitGates
from padellm.baselines.spans import decode_spans, span_mask
from padellm.errors import ConfigError, bound_problems

CONFIG_FILE = "fastner.json"
WEIGHTS_FILE = "heads.safetensors"


@dataclass(frozen=True)
class SpanModelConfig:
    """The architecture and decoding settings of a FastNER model (the ``model`` section of its training config)."""

    max_width: int = 10
    """Longest span in words."""
    nested: bool = False
    """Decode nested entities (crossing spans rejected) instead of flat ones (no overlaps)."""
    bypass: bool = True
    """Feed each exit head through its convolutional bypass (False: the hidden states directly, the ablation)."""
    kernel_size: int = 3
    """Width of the bypass convolution, in subwords (odd)."""
    bypass_size: int = 0
    """Channels of the bypass convolution: 0 convolves the encoder's hidden states themselves (FastNER's); a
    smaller size projects them down first and back up after, a bottleneck that makes the exit cheaper."""
    biaffine_size: int = 150
    """Size of the start and end projections the biaffine scorer multiplies."""
    dropout: float = 0.2
    max_subwords: int = 256
    """Subwords per sentence, [CLS] and [SEP] included; longer sentences are truncated (their tail words get no
    spans)."""

    def problems(self) -> list[str]:
        out = bound_problems(self, at_least_one=("max_width", "biaffine_size"))
        if self.bypass_size < 0:
            out.append(f"bypass_size must be >= 0 (0: as wide as the encoder); got {self.bypass_size}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            out.append(f"kernel_size must be odd and >= 1; got {self.kernel_size}")
        if not 0 <= self.dropout < 1:
            out.append(f"dropout must be in [0, 1); got {self.dropout}")
        if self.max_subwords < 3:
            out.append(f"max_subwords must be >= 3; got {self.max_subwords}")
        return out


@dataclass(frozen=True)
class FastNERConfig(SpanModelConfig):
    labels: tuple[str, ...] = ()
    """Entity labels; index 0 of every distribution is "no entity"."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if not self.labels or len(set(self.labels)) != len(self.labels):
            problems.append(f"labels must be a non-empty list without repeats; got {list(self.labels)}")
        if problems:
            raise ConfigError(problems)


class ConvBypass(nn.Module):
    """``h + W * gelu(conv(D h))``: a residual convolution over the subword axis (zero-initialised output
    projection ``W``, so that a new bypass starts as the identity), computed only where a head reads it: at the
    words' first subwords. ``D`` projects the states down to ``size`` channels first (a bottleneck; ``size`` 0:
    no projection, the convolution is as wide as the states). Each output position sees its ``kernel_size``
    neighbouring subwords, so this equals convolving the whole sentence and gathering afterwards, at fewer
    positions (CoNLL-2003: about half the subwords; measured a quarter cheaper at batch 1, no faster at batch 32)."""

    def __init__(self, hidden: int, kernel_size: int, size: int = 0):
        super().__init__()
        width = size or hidden
        self.down = nn.Linear(hidden, size) if size else None
        self.conv = nn.Conv1d(width, width, kernel_size, padding=kernel_size // 2)
        self.out = nn.Linear(width, hidden)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The bypassed states ``[batch, positions, hidden]`` at subword ``positions`` ``[batch, positions]`` of
        ``hidden`` ``[batch, subwords, hidden]`` (padding subwords, ``mask`` 0, count as zeros)."""
        reach = self.conv.kernel_size[0] // 2
        inner = hidden if self.down is None else self.down(hidden)
        masked = nn.functional.pad(inner * mask[..., None].to(inner.dtype), (0, 0, reach, reach))
        # [batch, subwords, channels, kernel] as a view; the rows at ``positions`` are their conv windows, laid
        # out as the conv weight [out, in, kernel] flattens.
        windows = masked.unfold(1, 2 * reach + 1, 1)[torch.arange(hidden.shape[0])[:, None], positions]
        convolved = nn.functional.linear(windows.flatten(2), self.conv.weight.flatten(1), self.conv.bias)
        here = torch.gather(hidden, 1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
        return here + self.out(nn.functional.gelu(convolved))


class Biaffine(nn.Module):
    """``score(i, j, c) = [s_i; 1]^T U_c [e_j; 1]`` with ``s = MLP_start(x)``, ``e = MLP_end(x)``."""

    def __init__(self, hidden: int, size: int, classes: int, dropout: float):
        super().__init__()
        self.start = nn.Sequential(nn.Linear(hidden, size), nn.GELU(), nn.Dropout(dropout))
        self.end = nn.Sequential(nn.Linear(hidden, size), nn.GELU(), nn.Dropout(dropout))
        self.weight = nn.Parameter(torch.empty(size + 1, classes, size + 1))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        ones = words.new_ones(words.shape[:-1] + (1,))
        start = torch.cat([self.start(words), ones], -1)
        end = torch.cat([self.end(words), ones], -1)
        return torch.einsum("bxi,icj,byj->bxyc", start, self.weight, end)


class ExitHead(nn.Module):
    def __init__(self, hidden: int, config: FastNERConfig):
        super().__init__()
        self.bypass = ConvBypass(hidden, config.kernel_size, config.bypass_size) if config.bypass else None
        self.dropout = nn.Dropout(config.dropout)
        self.scorer = Biaffine(hidden, config.biaffine_size, 1 + len(config.labels), config.dropout)

    def forward(self, hidden: torch.Tensor, subword_mask: torch.Tensor, word_index: torch.Tensor) -> torch.Tensor:
        """Span logits ``[batch, words, words, 1 + labels]`` from a layer's hidden states."""
        if self.bypass is not None:
            words = self.bypass(hidden, subword_mask, word_index)
        else:
            words = torch.gather(hidden, 1, word_index[..., None].expand(-1, -1, hidden.shape[-1]))
        return self.scorer(self.dropout(words))


@dataclass
class Batch:
    input_ids: torch.Tensor
    """``[batch, subwords]``."""
    attention_mask: torch.Tensor
    word_index: torch.Tensor
    """``[batch, words]``: the first subword of each word (0 for padding words)."""
    num_words: torch.Tensor
    """``[batch]``: words the encoder kept per sentence."""
    gold: torch.Tensor | None = None
    """``[batch, words, words]`` label indices (0: no entity), for training."""


@dataclass(frozen=True)
class Prediction:
    spans: list[tuple[int, int, int, float]]
    """(first word, last word, label index, probability) of each entity."""
    exit_layer: int
    """The exit (1-based) the sentence left at."""


class FastNER(nn.Module):
    def __init__(self, encoder: nn.Module, config: FastNERConfig):
        super().__init__()
        self.encoder = encoder
        self.layers = LayerwiseEncoder(encoder)
        self.config = config
        hidden = encoder.config.hidden_size
        self.heads = nn.ModuleList(ExitHead(hidden, config) for _ in range(self.num_layers))
        self.gates: ExitGates | None = None
        """Learned exit gates (the ``gate`` criterion), fitted after training; None until then."""

    @property
    def num_layers(self) -> int:
        return self.layers.num_layers

    @classmethod
    def from_encoder(cls, encoder_dir: str | Path, config: FastNERConfig) -> FastNER:
        from transformers import AutoModel

        return cls(AutoModel.from_pretrained(encoder_dir, add_pooling_layer=False), config)

    # ----------------------------------------------------------------------------------------- training
    def forward(self, batch: Batch) -> list[torch.Tensor]:
        """Span logits of every exit, shallowest first."""
        hidden = self.layers.embed(batch.input_ids)
        attention = self.layers.attention(hidden, batch.attention_mask)
        logits = []
        for index, head in enumerate(self.heads):
            hidden = self.layers.layer(index, hidden, attention)
            logits.append(head(hidden, batch.attention_mask, batch.word_index))
        return logits

    def loss(self, batch: Batch, layer_weights: list[float]) -> tuple[torch.Tensor, list[float]]:
        """Weighted sum of the exits' cross-entropies over candidate spans; also each exit's loss."""
        mask = span_mask(batch.num_words, batch.word_index.shape[1], self.config.max_width)
        losses = [nn.functional.cross_entropy(logits[mask], batch.gold[mask]) for logits in self(batch)]
        total = sum(w * loss for w, loss in zip(layer_weights, losses)) / sum(layer_weights)
        return total, [loss.item() for loss in losses]

    # ---------------------------------------------------------------------------------------- inference
    def exit_probabilities(self, index: int, hidden: torch.Tensor, attention_mask: torch.Tensor,
                           word_index: torch.Tensor, num_words: torch.Tensor) -> torch.Tensor:
        """Span label distributions ``[batch, words, words, 1 + labels]`` of exit ``index`` (0-based), over the
        longest sentence's words."""
        width = int(num_words.max())
        return self.heads[index](hidden, attention_mask, word_index[:, :width]).softmax(-1).float()

    @torch.no_grad()
    def predict(self, batch: Batch, exit_config: ExitConfig = ExitConfig(), layers: int | None = None) -> list[Prediction]:
        """Entities of each sentence, leaving at the first exit ``exit_config`` allows (``layers``: stop at this
        exit at the latest). Sentences that leave are removed from the batch; the encoder goes on with the rest,
        its padding trimmed to the longest remaining sentence."""
        last = (layers or self.num_layers) - 1
        if not 0 <= last < self.num_layers:
            raise ConfigError(f"layers must be in 1..{self.num_layers}; got {layers}")
        gated = exit_config.criterion in GATED
        if gated and self.gates is None:
            raise ConfigError(f"the {exit_config.criterion} exit criterion needs a FastNER model with fitted exit "
                              "gates, and this one has none: `python eval/fit_exit_gates.py --model MODEL_DIR` fits "
                              "them on the dev split (padellm finetune does it at the end of training)")
        gate_thresholds = self.gates.thresholds(exit_config) if gated else ()
        results: list[Prediction | None] = [None] * batch.input_ids.shape[0]
        active = torch.arange(batch.input_ids.shape[0])
        attention_mask, word_index, num_words = batch.attention_mask, batch.word_index, batch.num_words
        hidden = self.layers.embed(batch.input_ids)
        attention = self.layers.attention(hidden, attention_mask)
        patience = Patience(len(results), exit_config.patience) if exit_config.criterion == "patience" else None
        stable = StableLabels(exit_config.patience) if exit_config.criterion == "stable" else None
        for index in range(last + 1):
            hidden = self.layers.layer(index, hidden, attention)
            # Without a criterion (the full model) only the last exit's head runs: the baseline speed-ups are
            # measured against pays for no head it does not use.
            if index < last and (index + 1 < exit_config.min_layer or exit_config.criterion == "none"):
                continue
            if gated and index < last:
                # The gate decides first; the head runs for the sentences that leave, and only for them.
                leaving_rows = self.gates.probability(index, hidden, attention_mask) >= gate_thresholds[index]
                if not leaving_rows.any():
                    continue
                probabilities = self.exit_probabilities(index, hidden[leaving_rows], attention_mask[leaving_rows],
                                                        word_index[leaving_rows], num_words[leaving_rows])
                for row, (sentence, words) in enumerate(zip(active[leaving_rows].tolist(),
                                                            num_words[leaving_rows].tolist())):
                    spans = decode_spans(probabilities[row], words, self.config.max_width, self.config.nested)
                    results[sentence] = Prediction(spans, index + 1)
                leaving = leaving_rows.tolist()
            else:
                probabilities = self.exit_probabilities(index, hidden, attention_mask, word_index, num_words)
                mask = span_mask(num_words, probabilities.shape[1], self.config.max_width)
                if index == last:
                    leaving = torch.ones(len(active), dtype=torch.bool).tolist()
                elif stable is not None:
                    leaving = stable.update(probabilities, mask).tolist()
                else:
                    leaving = leave_now(exit_config, probabilities, mask).tolist()
                words, ids = num_words.tolist(), active.tolist()
                for row in range(len(ids)):
                    if patience is None and not leaving[row]:
                        continue
                    spans = decode_spans(probabilities[row], words[row], self.config.max_width, self.config.nested)
                    if patience is not None and index < last:
                        leaving[row] = patience.update(ids[row], [span[:3] for span in spans])
                    if leaving[row]:
                        results[ids[row]] = Prediction(spans, index + 1)
            keep = ~torch.tensor(leaving)
            if not keep.any():
                break
            if keep.all():
                continue
            active, hidden = active[keep], hidden[keep]
            attention_mask, word_index, num_words = attention_mask[keep], word_index[keep], num_words[keep]
            if stable is not None:
                stable.keep(keep)
            length = int(attention_mask.sum(1).max())
            hidden, attention_mask = hidden[:, :length], attention_mask[:, :length]
            attention = self.layers.attention(hidden, attention_mask)
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------------------------------ saving
    def save(self, folder: str | Path) -> Path:
        """The encoder (a Hugging Face folder, tokenizer copied by the caller) plus the heads and config."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(folder / "encoder")
        save_file({k: v.contiguous() for k, v in self.heads.state_dict().items()}, folder / WEIGHTS_FILE)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))
        if self.gates is not None:
            self.gates.save(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> FastNER:
        from safetensors.torch import load_file
        from transformers import AutoModel

        folder = Path(folder)
        if not (folder / CONFIG_FILE).is_file():
            raise ConfigError(f"{folder} is not a FastNER model folder (no {CONFIG_FILE})")
        raw = json.loads((folder / CONFIG_FILE).read_text())
        config = FastNERConfig(**{**raw, "labels": tuple(raw["labels"])})
        model = cls(AutoModel.from_pretrained(folder / "encoder", add_pooling_layer=False), config)
        model.heads.load_state_dict(load_file(folder / WEIGHTS_FILE))
        model.gates = ExitGates.load(folder)
        return model.eval()
