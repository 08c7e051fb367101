"""Scripted generation backends for the format tests: each answers a prompt by the end of its text."""

from padellm.engine.backend import Generation
from padellm.prompts.labels import LabelSet

LABELS = LabelSet.for_labels(["LOC", "PER"], {"LOC": "location", "PER": "person"})


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
            # One-step counting reads a distribution: all mass on the scripted answer's first token.
            scores = tuple(0.0 if i == tokens[0] else -30.0 for i in score_ids) if score_ids else None
            out.append(Generation(tokens[:max_new_tokens], (logprob,), not score_ids, scores))
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
