"""``padellm serve``: the HTTP service (its arguments and server live in ``padellm_serve``)."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    from padellm_serve.cli import add_arguments as add_serve_arguments

    serve = commands.add_parser(
        "serve", help="the HTTP service (FastAPI on vLLM's asynchronous engine)",
        description="Serve NER over HTTP: POST /v1/ner, GET /health, /v1/models, /metrics, /docs.")
    add_serve_arguments(serve)
    serve.set_defaults(run=run)



def run(args: argparse.Namespace) -> int:
    from padellm_serve.cli import serve

    return serve(args)
