import io
import logging
import os
import subprocess
import sys
import textwrap
import warnings

from padellm.terminal.stdio import QUIET_ENVIRONMENT, data_stdout, quiet_libraries

# A command in miniature: its data, and noise from every source a real run has (print, the logging module, a C
# library writing to descriptor 1, a child process that inherits it, a spawned Python process).
SCRIPT = textwrap.dedent("""
    import logging, multiprocessing, os, subprocess, sys
    from padellm.terminal.stdio import data_stdout

    def child():
        print("noise from a spawned process")

    if __name__ == "__main__":
        logging.basicConfig(stream=sys.stdout, level=logging.INFO)  # a library that logs to stdout
        with data_stdout() as out:
            print("noise from print")
            logging.getLogger("somelib").info("noise from a logger")
            os.write(1, b"noise from descriptor 1\\n")
            subprocess.run(["echo", "noise from a child process"], check=True)
            process = multiprocessing.get_context("spawn").Process(target=child)
            process.start(); process.join()
            print('{"data": 1}', file=out)
            print('{"data": 2}', file=out)
        print("after the block, stdout is stdout again")
""")


def test_data_stdout_keeps_stdout_for_data_in_every_process(tmp_path):
    script = tmp_path / "command.py"
    script.write_text(SCRIPT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['{"data": 1}', '{"data": 2}', "after the block, stdout is stdout again"]
    for source in ("print", "a logger", "descriptor 1", "a child process", "a spawned process"):
        assert f"noise from {source}" in result.stderr


def test_data_stdout_with_a_replaced_stdout_keeps_that_object_for_data(monkeypatch):
    captured, errors = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", captured)
    monkeypatch.setattr(sys, "stderr", errors)
    with data_stdout() as out:
        print("noise")
        print("data", file=out)
    assert sys.stdout is captured
    assert captured.getvalue() == "data\n" and errors.getvalue() == "noise\n"


def test_quiet_libraries_by_default_and_verbose_on_request(monkeypatch):
    for name in [*QUIET_ENVIRONMENT, "VLLM_LOGGING_STREAM"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(warnings, "filters", list(warnings.filters))
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "warning")  # the user's own setting stands
    quiet_libraries(verbose=False)
    assert os.environ["VLLM_LOGGING_LEVEL"] == "ERROR" and os.environ["VLLM_LOGGING_STREAM"] == "ext://sys.stderr"
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "warning" and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert logging.getLogger("vllm").level == logging.ERROR
    assert logging.getLogger("padellm").getEffectiveLevel() == logging.INFO
    quiet_libraries(verbose=True)
    assert os.environ["VLLM_LOGGING_LEVEL"] == "INFO" and os.environ["TRANSFORMERS_VERBOSITY"] == "info"
    assert logging.getLogger("vllm").level == logging.NOTSET


def test_a_library_modules_own_progress_bars_are_quiet_unless_verbose(monkeypatch):
    """transformers' GGUF conversion draws a bar per tensor with its own tqdm, which its switch does not reach."""
    import io
    import types

    from tqdm.auto import tqdm

    from padellm.terminal.stdio import own_progress_bars_quiet

    library = types.SimpleNamespace(tqdm=tqdm)

    def drawn() -> str:
        stream = io.StringIO()
        with own_progress_bars_quiet(library):
            list(library.tqdm(range(3), desc="converting", file=stream))
        return stream.getvalue()

    monkeypatch.setenv("PADELLM_QUIET", "1")
    assert drawn() == "" and library.tqdm is tqdm
    monkeypatch.setenv("PADELLM_QUIET", "0")  # padellm -v
    assert "converting" in drawn()
