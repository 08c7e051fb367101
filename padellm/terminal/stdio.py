"""stdout is data: a command's results go to standard output, every other byte to standard error.

``data_stdout()`` keeps the process's real standard output for the command's data and points everything else at
stderr: Python's ``sys.stdout``, file descriptor 1 (which C libraries write to and the processes vLLM spawns
inherit) and vLLM's logger. ``quiet_libraries()`` sets how much the third-party libraries say: their errors only,
unless ``verbose``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from typing import TextIO

# Read by vLLM (in this process and in every process it spawns), transformers and huggingface_hub at import.
QUIET_ENVIRONMENT = {"VLLM_LOGGING_LEVEL": "ERROR", "TRANSFORMERS_VERBOSITY": "error", "TORCH_CPP_LOG_LEVEL": "ERROR",
                     "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
                     "PYTHONWARNINGS": "ignore", "PADELLM_QUIET": "1"}
VERBOSE_ENVIRONMENT = {"VLLM_LOGGING_LEVEL": "INFO", "TRANSFORMERS_VERBOSITY": "info", "TORCH_CPP_LOG_LEVEL": "INFO",
                       "HF_HUB_DISABLE_PROGRESS_BARS": "0", "HF_DATASETS_DISABLE_PROGRESS_BARS": "0", "PADELLM_QUIET": "0"}
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
THIRD_PARTY_LOGGERS = ("vllm", "transformers", "torch", "httpx", "huggingface_hub", "datasets")


def _quiet_loggers(level: int = logging.ERROR) -> None:
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(level)


# vLLM's engine processes are spawned: each imports the entry point's module (``padellm.cli``, which imports this
# one) before vLLM, whose first import-time warnings come before it reads VLLM_LOGGING_LEVEL.
if os.environ.get("PADELLM_QUIET") == "1":
    _quiet_loggers()


def logs_to_stderr() -> None:
    """vLLM logs to stdout unless told otherwise; tell it (the setting reaches the processes it spawns)."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")


def quiet_libraries(verbose: bool = False) -> None:
    """padellm's own INFO lines on stderr; third-party libraries only their errors (``verbose``: their INFO).

    A variable the user has set is left alone, unless ``verbose`` asks for more than it allows."""
    logs_to_stderr()
    for name, value in (VERBOSE_ENVIRONMENT if verbose else QUIET_ENVIRONMENT).items():
        if verbose:
            os.environ[name] = value
        else:
            os.environ.setdefault(name, value)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("padellm").setLevel(logging.INFO)
    _quiet_loggers(logging.NOTSET if verbose else logging.ERROR)
    if not verbose:
        warnings.filterwarnings("ignore")
    if "datasets" in sys.modules:  # imported before the variables were set: tell it directly
        from datasets.utils import logging as datasets_logging

        (datasets_logging.enable_progress_bar if verbose else datasets_logging.disable_progress_bar)()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        if verbose:
            transformers_logging.set_verbosity_info()
            transformers_logging.enable_progress_bar()
        else:
            transformers_logging.set_verbosity_error()
            transformers_logging.disable_progress_bar()


@contextlib.contextmanager
def own_progress_bars_quiet(module) -> Iterator[None]:
    """Silence the bars of a library ``module`` that draws them with its own ``tqdm`` (transformers' GGUF
    conversion does; its progress-bar switch does not reach it) while quiet; as they are after
    ``quiet_libraries(verbose=True)`` or outside a padellm command."""
    if os.environ.get("PADELLM_QUIET") != "1":
        yield
        return
    import functools

    original = module.tqdm
    module.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        module.tqdm = original


def _real_stdout_fd() -> int | None:
    try:
        return sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a notebook or a test's capture
        return None


@contextlib.contextmanager
def data_stdout() -> Iterator[TextIO]:
    """A stream on the real standard output for the command's data; within the block everything else written to
    stdout (``print``, C libraries, child processes, loggers) lands on stderr."""
    logs_to_stderr()
    previous = sys.stdout
    if _real_stdout_fd() != 1:  # stdout is not the process's descriptor 1: keep the object for data
        sys.stdout = sys.stderr
        try:
            yield previous
        finally:
            sys.stdout = previous
        return
    previous.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    data = open(saved, "w", encoding="utf-8", buffering=1, closefd=False)  # line-buffered: a pipe sees each record
    sys.stdout = sys.stderr
    try:
        yield data
    finally:
        sys.stdout = previous
        try:
            data.close()  # flushes; closefd=False keeps the descriptor for the restore below
        except BrokenPipeError:  # the reader went away (``| head``): nothing more to deliver
            pass
        os.dup2(saved, 1)
        os.close(saved)
