"""Scripted generation backends for the format tests: each answers a prompt by the end of its text."""

from padellm.engine.backend import Generation
from padellm.prompts.labels import LabelSet

LABELS = LabelSet.for_labels(["LOC", "PER"], {"LOC": "location", "PER": "person"})


def first_token_scores(first: int, score_ids) -> tuple[float, ...] | None:
    """What one-step counting reads: all the mass on the answer's ``first`` token (None: no scores asked)."""
    return tuple(0.0 if i == first else -30.0 for i in score_ids) if score_ids else None


class ScriptedBackend:
    """Answers each prompt by looking up the text of its last line in a script; records every call."""

    def __init__(self, encoder, answers):
        self.encoder, self.answers, self.calls = encoder, answers, []

    def generate(self, prompts, max_new_tokens, stop_ids=(), score_ids=()):
        self.calls.append((len(prompts), max_new_tokens, stop_ids, score_ids))
        out = []
        for prompt in prompts:
            text = self.encoder.decode(prompt)
            answer, logprob = next(v for k, v in self.answers.items() if text.endswith(k))
            tokens = tuple(self.encoder.encode(answer))
            out.append(Generation(tokens[:max_new_tokens], (logprob,), not score_ids,
                                  first_token_scores(tokens[0], score_ids)))
        return out


class PerTokenScripted:
    """Answers each prompt by the end of its text with ``(answer, finished)``; every token has log-probability
    -0.1 (so a mention's score says how many tokens it took); records every call."""

    def __init__(self, encoder, answers):
        self.encoder, self.answers, self.calls = encoder, answers, []

    def generate(self, prompts, max_new_tokens, stop_ids=(), score_ids=(), logit_bias=None):
        self.calls.append((len(prompts), max_new_tokens, logit_bias))
        out = []
        for prompt in prompts:
            text = self.encoder.decode(prompt)
            answer, finished = next(v for k, v in self.answers.items() if text.endswith(k))
            tokens = tuple(self.encoder.encode(answer))
            out.append(Generation(tokens, (-0.1,) * len(tokens), finished))
        return out
