"""``padellm serve``: the HTTP service on uvicorn. SIGTERM / SIGINT stop accepting connections, let in-flight
requests finish (up to --graceful-shutdown-s), then stop the engines."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from padellm.configargs import add_dataclass_arguments, dataclass_from_args, given_fields
from padellm.engine.decoding import DecodeConfig
from padellm.engine.vllm_backend import VLLMConfig
from padellm.errors import MissingPackageError, PadellmError
from padellm.terminal.stdio import data_stdout, quiet_libraries
from padellm_serve.config import ServerConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", action="append", metavar="DIR",
                        help="an adapter folder; repeat it to serve a parallel and an autoregressive adapter side by "
                             "side (default: the shipped CoNLL-2003 parallel adapter)")
    keys = parser.add_argument_group("API keys", "With a key, every route but /health (and the static pages / and "
                                     "/docs) answers 401 without Authorization: Bearer KEY. Keys come from these "
                                     "and from $PADELLM_API_KEY, all accepted at once.")
    keys.add_argument("--api-key-file", metavar="FILE",
                      help="a file of keys, one a line (# comments and blank lines skipped): add a line to rotate "
                           "keys, remove the old one when its clients have moved")
    keys.add_argument("--api-key", metavar="KEY",
                      help="a key on the command line; every user of this machine can read it in `ps`: prefer "
                           "--api-key-file or $PADELLM_API_KEY")
    add_dataclass_arguments(parser, ServerConfig)
    add_dataclass_arguments(parser, DecodeConfig, default_from="each adapter's decode.yaml")
    add_dataclass_arguments(parser, VLLMConfig)


def serve(args: argparse.Namespace) -> int:
    """Run the server until it is told to stop; 1 if its engines failed to load."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise MissingPackageError(err.name, "pip install -e .[serve]", "padellm serve") from err

    from padellm.adapters import shipped_adapter
    from padellm.client import server_keys
    from padellm_serve.app import create_app
    from padellm_serve.auth import KeyCheck
    from padellm_serve.http_server import build_server
    from padellm_serve.service import NERService

    config = dataclass_from_args(ServerConfig, args)
    keys = server_keys(args.api_key_file, args.api_key)
    adapters = [Path(a) for a in args.adapter] if args.adapter else [shipped_adapter("parallel")]
    for adapter in adapters:
        if not adapter.is_dir():
            raise PadellmError(f"--adapter {adapter}: no such folder")
    logging.getLogger("padellm").setLevel(config.log_level.upper())
    service = NERService(adapters, config, given_fields(DecodeConfig, args),
                         dataclass_from_args(VLLMConfig, args))
    failed = []
    server: uvicorn.Server | None = None

    def stop_on_failure() -> None:
        failed.append(True)
        if server is not None:
            server.should_exit = True

    app = create_app(service, on_load_failure=stop_on_failure, keys=KeyCheck(keys))
    logging.getLogger("padellm.serve").info("API keys: %s", f"{len(keys)} accepted" if keys else
                                            "none (anyone who reaches the port may use the server)")
    server = build_server(app, service, config)
    server.run()
    if failed:
        print(f"padellm serve: error: {service.detail}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="padellm serve", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="let vLLM, transformers and other libraries log their INFO lines and warnings (stderr)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    quiet_libraries(args.verbose)
    with data_stdout():  # the server prints no data: every log line, uvicorn's access log included, to stderr
        try:
            return serve(args)
        except PadellmError as err:
            print(f"padellm serve: error: {err}", file=sys.stderr)
            return 2
