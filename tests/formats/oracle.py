"""A backend that writes the gold answer: built from a format's ``gold_calls`` for some examples, it answers every
prompt those calls hold with the gold generation, so that decoding must give back exactly the gold entities."""

from padellm.engine.backend import Generation
from padellm.formats import format_of
from padellm.prompts.encoding import mentions_by_label
from scripted import first_token_scores

LOGPROB = -0.1
"""Every generated token's log-probability (a mention's score then says how many tokens it took)."""


class GoldBackend:
    def __init__(self, examples, encoder):
        self.encoder, self.answers, self.calls = encoder, {}, []
        decoding_format = format_of(encoder.template)
        for example in examples:
            for prompts, generations in decoding_format.gold_calls(example, encoder):
                self.answers.update(zip(map(tuple, prompts), map(tuple, generations)))
            if decoding_format.count_stage:  # gold_calls gives the count stage's cost only: answer the gold count
                for label, mentions in mentions_by_label(example, encoder.label_set.labels).items():
                    prompt = tuple(encoder.count_prompt(example.text, label))
                    self.answers[prompt] = tuple(encoder.count_target(len(mentions)))

    def generate(self, prompts, max_new_tokens, stop_ids=(), score_ids=(), logit_bias=None):
        self.calls.append(len(prompts))
        stops = {self.encoder.eos_id, *stop_ids}
        out = []
        for prompt in prompts:
            gold = self.answers.get(tuple(prompt))
            if gold is None:
                raise AssertionError(f"a prompt no gold call holds: {self.encoder.decode(prompt)!r}")
            end = next((i for i, token in enumerate(gold) if token in stops), None)
            tokens = gold[: end if end is not None else len(gold)][:max_new_tokens]
            finished = end is not None and end <= max_new_tokens
            first = tokens[0] if tokens else self.encoder.eos_id
            out.append(Generation(tokens, (LOGPROB,) * len(tokens), finished, first_token_scores(first, score_ids)))
        return out
