"""padellm inside other tools: a spaCy pipeline component (``spacy``) and a Ray Data predictor (``ray``)."""
