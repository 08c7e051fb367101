"""A BERT-like Hugging Face encoder run one layer at a time: what every early-exit model needs (FastNER's span
exits, token- and sentence-level exits), so that a model can look at the hidden states after each layer, drop the
sentences that leave, and go on with the rest.

``LayerwiseEncoder`` is a view over the ``transformers`` model, not a module of its own: the weights stay in the
model that owns it (and in its state dict, under the names they always had).
"""

from __future__ import annotations

import torch


class LayerwiseEncoder:
    def __init__(self, model):
        self.model = model
        """A BERT-like ``transformers`` encoder (``AutoModel``): ``embeddings``, then ``encoder.layer[i]``."""

    @property
    def num_layers(self) -> int:
        return len(self.model.encoder.layer)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The input of layer 0: token, position and (all-zero) token-type embeddings."""
        return self.model.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))

    def attention(self, hidden: torch.Tensor, attention_mask: torch.Tensor):
        """The attention mask every layer takes for ``attention_mask`` ([batch, tokens], 1 = real token), in the
        form the model's attention implementation wants; rebuild it when the batch or its length changes."""
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(config=self.model.config, inputs_embeds=hidden, attention_mask=attention_mask)

    def layer(self, index: int, hidden: torch.Tensor, attention) -> torch.Tensor:
        """Layer ``index`` (0-based) applied to ``hidden``."""
        output = self.model.encoder.layer[index](hidden, attention)
        return output[0] if isinstance(output, tuple) else output
