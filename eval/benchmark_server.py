"""Load benchmark of ``padellm serve``: N concurrent clients for T seconds per mode (parallel, then
autoregressive, on the same server), on loopback, sending seeded CoNLL-2003 test sentences one per request.

    python eval/benchmark_server.py --clients 8 --duration 60 --out runs/load.json --plot docs/load-cpu.png
    python eval/benchmark_server.py --rate 6 --duration 60 --request-timeout-s 10 --out runs/overload.json

With --rate, requests arrive on a fixed schedule (open loop) instead of from N waiting clients: offered at
twice what the server sustains, every request must be answered or refused at once (503), none lost or timed out.

Starts the server itself (a child process with both shipped adapters, so the peak memory of the server and
its engine processes is measured) unless --url names a running one. Reports requests/s, latency percentiles,
errors and lost requests per mode; then stops the server and spot-checks the answers against offline extraction
of the same sentences (a vLLM engine in this process, same settings), and checks that sentences answered several
times under load got the same entities each time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import time
from pathlib import Path

MODES = ("parallel", "autoregressive")


def offline_entities(adapters: dict[str, Path], sentences: dict[int, str], decode_config, vllm_config) -> dict:
    """mode -> {sentence index -> entities}, one sentence per call as the server was sent them."""
    from padellm.engine.vllm_backend import vllm_backends
    from padellm.ner import load

    backends = vllm_backends(list(adapters.values()), vllm_config)
    found = {}
    for (mode, adapter), backend in zip(adapters.items(), backends):
        ner = load(adapter, backend, decode_config=decode_config)
        found[mode] = {i: tuple((e.start, e.end, e.label) for e in ner(text)) for i, text in sentences.items()}
    for engine in {id(b.engine): b.engine for b in backends}.values():
        engine.close()
    return found


def format_table(results: dict) -> str:
    rows = [("mode", "requests", "ok", "errors", "503", "504", "lost", "req/s", "mean ms", "p50", "p95", "p99",
             "max", "503 max ms", "peak MiB", "spot-check")]
    for mode, r in results.items():
        check = r.get("spot_check") or {}
        rows.append((mode, r["requests"], r["ok"], sum(r["errors"].values()), r["errors"].get("503", 0),
                     r["errors"].get("504", 0), r["lost"], f"{r['requests_per_s']:.2f}",
                     f"{r['mean_ms']:.0f}", f"{r['p50_ms']:.0f}", f"{r['p95_ms']:.0f}", f"{r['p99_ms']:.0f}",
                     f"{r['max_ms']:.0f}", f"{r['refused_max_ms']:.0f}",
                     r.get("peak_server_mib", "-"),
                     f"{check['agree']}/{check['responses_checked']}" if check else "-"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(v).rjust(w) for v, w in zip(row, widths)) for row in rows)


def main(argv: list[str] | None = None) -> int:
    from padellm.adapters import shipped_adapter
    from padellm.client import NERClient, client_key
    from padellm.configargs import add_dataclass_arguments, dataclass_from_args, dataclass_to_argv, given_fields
    from padellm.data.datasets import load_dataset
    from padellm.engine.decoding import DecodeConfig
    from padellm.engine.vllm_backend import VLLMConfig
    from padellm.errors import ConfigError, PadellmError
    from padellm.evaluation.environment import environment
    from padellm_serve.loadgen import consistency, run_load, run_open_loop, spot_check, summarize_load
    from padellm_serve.process import PeakMemory, ServerProcess

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server (default: start one; peak memory is only measured then)")
    parser.add_argument("--parallel", help="parallel adapter (default: the shipped CoNLL-2003 one)")
    parser.add_argument("--autoregressive", help="autoregressive adapter (default: the shipped CoNLL-2003 one)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, measured in this order")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (requests in flight)")
    parser.add_argument("--rate", type=float, help="open loop: send this many requests per second whatever the "
                        "server does (instead of --clients)")
    parser.add_argument("--request-timeout-s", type=float,
                        help="the started server's request time-out (padellm serve --request-timeout-s)")
    parser.add_argument("--api-key-file", help="with --url: the server's API key (first line of the file)")
    parser.add_argument("--duration", type=float, default=45.0, help="seconds of load per mode")
    parser.add_argument("--warmup", type=int, default=4, help="requests per mode before measuring")
    parser.add_argument("--dataset", default="conll2003")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sample", type=int, default=200, help="seeded sample of sentences the clients cycle over")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spot-check", type=int, default=40,
                        help="sentences to re-extract offline and compare (0: skip)")
    parser.add_argument("--out", help="write the JSON result here")
    parser.add_argument("--plot", help="write a PNG of the latency distributions here")
    parser.add_argument("--log", default="runs/benchmark-server.log", help="the started server's log")
    parser.add_argument("--no-progress", action="store_true")
    add_dataclass_arguments(parser, DecodeConfig, default_from="each adapter's decode.yaml")
    add_dataclass_arguments(parser, VLLMConfig)
    args = parser.parse_args(argv)
    server = None
    try:
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        unknown = [m for m in modes if m not in MODES]
        if unknown or not modes:
            raise ConfigError(f"--modes {args.modes!r}: each must be one of {', '.join(MODES)}")
        if args.rate is not None and args.rate <= 0:
            raise ConfigError(f"--rate must be > 0; got {args.rate}")
        if args.api_key_file and not args.url:
            raise ConfigError("--api-key-file is for --url: a server this script starts has no key")
        for name in ("clients", "sample"):
            if getattr(args, name) < 1:
                raise ConfigError(f"--{name} must be >= 1; got {getattr(args, name)}")
        if args.duration <= 0:
            raise ConfigError(f"--duration must be > 0; got {args.duration}")
        adapters = {mode: Path(getattr(args, mode)) if getattr(args, mode) else shipped_adapter(mode, args.dataset)
                    for mode in modes}
        decode_config, vllm_config = given_fields(DecodeConfig, args), dataclass_from_args(VLLMConfig, args)
        examples = load_dataset(args.dataset, [args.split]).split(args.split)
        order = list(range(len(examples)))
        random.Random(args.seed).shuffle(order)
        texts = [examples[i].text for i in order[: args.sample]]

        url, startup_s, exit_status = args.url, None, None
        if url is None:
            server_args = [a for adapter in adapters.values() for a in ("--adapter", str(adapter))]
            server_args += [a for name, value in decode_config.items() for a in (f"--{name.replace('_', '-')}", str(value))]
            server_args += dataclass_to_argv(vllm_config) + ["--log-level", "warning"]
            if args.request_timeout_s:
                server_args += ["--request-timeout-s", str(args.request_timeout_s)]
            started = time.perf_counter()
            print(f"starting the server ({' '.join(server_args)}); log: {args.log}", file=sys.stderr)
            server = ServerProcess(server_args, args.log).start()
            startup_s = round(time.perf_counter() - started, 1)
            url = server.url
        api_key = client_key(args.api_key_file) if args.api_key_file else None
        results = {}
        for mode in modes:
            warm = NERClient(url, api_key=api_key)
            for text in texts[: args.warmup]:
                warm.request(text, mode=mode)
            memory = PeakMemory(server) if server else contextlib.nullcontext()
            with memory:
                if args.rate:
                    outcomes, wall = run_open_loop(url, texts, args.rate, args.duration, mode,
                                                   progress=not args.no_progress, api_key=api_key)
                else:
                    outcomes, wall = run_load(url, texts, args.clients, args.duration, mode,
                                              progress=not args.no_progress, api_key=api_key)
            results[mode] = {**summarize_load(outcomes, wall), **consistency(outcomes)}
            if server:
                results[mode]["peak_server_mib"] = round(memory.peak_bytes / 2**20)
            results[mode]["outcomes"] = outcomes
        if server:
            exit_status, server = server.stop(), None
        if args.spot_check:
            sent = sorted({o.index for r in results.values() for o in r["outcomes"]})[: args.spot_check]
            offline = offline_entities(adapters, {i: texts[i] for i in sent}, decode_config, vllm_config)
            for mode, result in results.items():
                result["spot_check"] = spot_check(result["outcomes"], offline[mode])
    except PadellmError as err:
        print(f"benchmark_server: error: {err}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.kill()

    print(format_table(results))
    latencies = {mode: [1000 * o.seconds for o in r["outcomes"] if o.status == 200] for mode, r in results.items()}
    if args.plot:
        from padellm.evaluation.plots import plot_latencies

        path = plot_latencies(latencies, args.plot, paired=False,
                              title=f"padellm serve under load, {args.dataset} {args.split} sentences\n"
                                    f"{args.clients} concurrent clients, {args.duration:.0f} s per mode, "
                                    f"{os.cpu_count()} CPUs")
        print(f"wrote {path}", file=sys.stderr)
    if args.out:
        for mode, result in results.items():
            result["latencies_ms"] = [round(v, 2) for v in latencies[mode]]
            del result["outcomes"]
        record = {"command": " ".join(sys.argv), "settings": {k: v for k, v in vars(args).items()},
                  "environment": environment(),
                  "server": {"url": url, "startup_s": startup_s,
                             "exit_status": exit_status}, "results": results}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=2, default=str))
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # vLLM starts its engine processes with spawn, which re-imports this module
    sys.exit(main())
