"""padellm inside other tools: a spaCy pipeline component (``spacy``)."""
