"""mpk's Python API: compile a model into a bundle, load the bundle, generate.

    import mpk
    bundle = mpk.compile("qwen3-demo", batch=2, max_seq=512)   # a preset, config.json, ModelConfig or Decoder
    with mpk.load(bundle, weights=0) as session:                # a seed, a state dict or a safetensors folder
        out = session.generate([[1, 2, 3], [4, 5]], max_new_tokens=32, eos_token_id=2)
    out.tokens                                                  # [2, T <= 32]: greedy, EOS after a row's EOS

Compiling needs the MLIR bindings and PyTorch but no GPU. Running needs the
bundle and numpy, plus cuda-python and a GPU for backend="gpu" (the
persistent kernel), or MLIR for backend="interp" (the CPU task interpreter
over the bundle's task IR); "auto" takes the GPU when the driver sees one.
Decoding is mpk.runtime.loader.generate: the prompts (one per sequence, of
any lengths) go through the bundle's prefill kernel in chunks of rows on the
matrix units (or, in a bundle without one, through the decode kernel one
token per launch), then each launch decodes `steps_per_launch` tokens,
greedily or sampled (`sampling=dict(temperature=..., top_k=..., top_p=...,
min_p=..., seed=...)`, mpk.sampling).
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import tempfile
import time
import weakref
from pathlib import Path
from typing import Mapping

import numpy as np

from mpk import defaults
from mpk.errors import InputError
from mpk.runtime import bundle as bundles
from mpk.runtime.bundle import Bundle

BACKENDS = ("auto", "gpu", "interp")


def compile(model, *, batch: int = defaults.BATCH, max_seq: int = defaults.MAX_SEQ, dtype: str = defaults.DTYPE,
            steps_per_launch: int | None = None, num_sms: int | None = None, arch: str | None = None,
            path: str | Path | None = None, prefill_chunk: int | None = None,
            prefill_logits: str = "last") -> Bundle:
    """Compile `model`'s decode step into a bundle and return it (read back from disk).

    `model`: a preset name (`mpk import --list-models`), a Hugging Face
    config.json or the folder holding it, a `mpk.models.ModelConfig`, or a
    module with a `.config` ModelConfig (`mpk.models.Decoder`); weights are
    bound later, by `load`. `steps_per_launch` defaults to `mpk compile`'s;
    `num_sms`/`arch` to this machine's GPU, or to an H100 (132 SMs, sm_90)
    without one. `path` is the bundle directory to write (default: a new
    temporary directory, removed when the returned Bundle is garbage-collected).
    `prefill_chunk`: prompt tokens per sequence in one launch of the prefill
    kernel (default defaults.PREFILL_CHUNK, at most max_seq; 0: no prefill
    kernel); `prefill_logits`: "last" (each prompt's last token) or "all" (every
    prompt token's logits come back, as `Generation.prompt_logits`). A Hugging
    Face folder's tokenizer is copied into the bundle (`Session.generate_text`).
    Raises ValueError (mpk.errors.InputError) for bad arguments, before compiling
    anything, and mpk.driver.CompileError when a stage fails.
    """
    from mpk import driver

    config = _model_config(model)
    if dtype not in defaults.DTYPES:
        raise InputError(f"dtype must be one of {', '.join(defaults.DTYPES)}, got {dtype!r}")
    steps_per_launch = defaults.STEPS if steps_per_launch is None else steps_per_launch
    for name, value in (("batch", batch), ("max_seq", max_seq), ("steps_per_launch", steps_per_launch),
                        ("num_sms", 1 if num_sms is None else num_sms)):
        if not _is_int(value) or value < 1:
            raise InputError(f"{name} must be a positive int, got {value!r}")
    if num_sms is None or arch is None:
        gpu = _local_gpu() or {"num_sms": defaults.NUM_SMS, "arch": defaults.ARCH}
        num_sms, arch = num_sms or gpu["num_sms"], arch or gpu["arch"]
    check_arch(arch)
    prefill_chunk = defaults.PREFILL_CHUNK if prefill_chunk is None else prefill_chunk
    if not _is_int(prefill_chunk) or prefill_chunk < 0:
        raise InputError(f"prefill_chunk must be 0 (none) or a positive int, got {prefill_chunk!r}")
    if prefill_logits not in ("last", "all"):
        raise InputError(f"prefill_logits must be 'last' or 'all', got {prefill_logits!r}")
    if path is not None:
        bundles.check_output(path)
    options = driver.Options(batch=batch, dtype=dtype, max_seq=max_seq, arch=arch, num_sms=num_sms,
                             steps=steps_per_launch, prefill_chunk=prefill_chunk,
                             prefill_all_logits=prefill_logits == "all")
    module, config_dict = driver.import_graph(config, "model", options)
    source = _hf_folder(model)
    if path is not None:
        return bundles.read(driver.compile_task_module(module, options, Path(path), model_config=config_dict,
                                                       source=source))
    scratch = Path(tempfile.mkdtemp(prefix="mpk-"))
    bundle = bundles.read(driver.compile_task_module(module, options, scratch / "model.mpk",
                                                     model_config=config_dict, source=source))
    weakref.finalize(bundle, shutil.rmtree, scratch, ignore_errors=True)   # as long as the Bundle lives
    return bundle


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)   # True is an int to Python


def check_arch(arch: str) -> None:
    """A GPU architecture mpk has kernels and a cost model for (else the compile would fail
    only after importing the model)."""
    from mpk.lowering.tiling import ARCHS
    if arch not in ARCHS:
        raise InputError(f"unknown GPU architecture {arch!r} (mpk compiles for {', '.join(ARCHS)})")


def _hf_folder(model) -> Path | None:
    """The Hugging Face folder `model` names (config.json and *.safetensors), if it is one."""
    if isinstance(model, (str, Path)) and Path(model).is_dir() and any(Path(model).glob("*.safetensors")):
        return Path(model)
    return None


def _model_config(model):
    from mpk import models
    if isinstance(model, models.ModelConfig):
        return model
    if isinstance(getattr(model, "config", None), models.ModelConfig):
        return model.config
    if isinstance(model, (str, Path)):
        if str(model) in models.PRESETS:
            return models.PRESETS[str(model)]
        if Path(model).is_file() or (Path(model) / "config.json").is_file():
            return models.from_hf_config(model)            # ConfigError is a ValueError
        raise InputError(f"{model!r} is neither a preset ({', '.join(models.PRESETS)}) nor a config.json")
    raise TypeError(f"compile() takes a preset name, a config.json path, a ModelConfig or a Decoder, "
                    f"not {type(model).__name__}")


def _local_gpu() -> dict | None:
    from mpk.runtime import loader
    return loader.device_properties(0) if loader.gpu_count() else None


def load(bundle: Bundle | str | Path, weights=0, backend: str = "auto", tp: int | None = None,
         **options) -> "Session":
    """Load a bundle on a backend and bind its weights.

    `weights`: an int (seeded random weights, `mpk.runtime.weights.random_weights`),
    a state dict (names as in the Hugging Face checkpoint; torch tensors or
    numpy arrays), a module with `.state_dict()`, or a folder of `*.safetensors`.
    `backend`: "gpu", "interp" or "auto". `options` go to the GPU session
    (`device`, `timeout_s`, `profile`). A tensor-parallel bundle (`mpk compile --tp N`)
    loads its N ranks together (mpk.runtime.ranks: a GPU each, or emulated side by side
    on one GPU; the interpreter runs them all); `tp`, if given, must be the bundle's.
    """
    from mpk.backends import open_backend
    from mpk.runtime.loader import LoaderError, gpu_count

    if not isinstance(bundle, Bundle):
        bundle = bundles.read(bundle)                     # BundleError is a ValueError
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if tp is not None and tp != bundle.tp:
        raise InputError(f"{bundle.path} was compiled for tp={bundle.tp}, not tp={tp} "
                         f"(`mpk compile --tp {tp}` makes a bundle for {tp} ranks)")
    chosen = backend == "auto"
    if chosen:
        backend = "gpu" if gpu_count() else "interp"
    if backend == "interp":
        try:
            import mlir.ir  # noqa: F401
        except ImportError as e:
            raise LoaderError(("no GPU here, and " if chosen else "") +
                              f"the CPU task interpreter needs the MLIR bindings ({e})") from None
    weights = resolve_weights(bundle, weights)
    runner = open_backend(bundle, backend, **(options if backend == "gpu" else {}))
    try:
        runner.bind_weights(weights)
    except BaseException:
        runner.close()
        raise
    return Session(bundle, runner, backend)


def resolve_weights(bundle: Bundle, weights) -> Mapping:
    """`load`'s `weights` as a state dict: a seed (random weights), a folder of
    `*.safetensors`, a module (its state dict) or a state dict."""
    from mpk.runtime.weights import load_safetensors, random_weights

    if _is_int(weights):
        if weights < 0:
            raise InputError(f"the seed of random weights must be 0 or positive, got {weights}")
        return random_weights(bundle.weights(), weights)
    if isinstance(weights, (str, Path)):
        return load_safetensors(weights, bundle.weights())
    if hasattr(weights, "state_dict"):
        return weights.state_dict()
    if isinstance(weights, Mapping):
        return weights
    raise TypeError(f"weights must be a seed, a state dict, a module or a safetensors folder, "
                    f"not {type(weights).__name__}")


@dataclasses.dataclass
class Generation:
    tokens: np.ndarray                  # [B, T] int64 new tokens; EOS from a row's first EOS on
    logits: np.ndarray | None           # [T, B, V] float32 of the generated steps (None if not kept)
    prompt_logits: np.ndarray | None    # [n - 1, B, V]: positions before the longest prompt's last token
    seconds: float                      # wall time of the whole call, prompt steps included
    prefill_seconds: float | None = None   # until the first new token (the prompt's time)

    @property
    def decode_seconds(self) -> float | None:
        """Wall time after the first new token."""
        return None if self.prefill_seconds is None else self.seconds - self.prefill_seconds


class Session:
    """A bundle ready to run on one backend.

    Wraps the backend's runner: `mpk.runtime.loader.Session` (the persistent
    kernel on a GPU) or `mpk.backends.InterpRunner` (the CPU task
    interpreter), both driven by `mpk.runtime.loader.generate`.
    """

    def __init__(self, bundle: Bundle, runner, backend: str):
        self.bundle, self.runner, self.backend = bundle, runner, backend
        self.batch = int(bundle.buffer("tokens")["shape"][0])
        self.max_seq = int(bundle.plan["max_seq"])
        self.steps_per_launch = runner.steps_per_launch
        model = bundle.plan.get("model") or {}
        self.vocab_size = model.get("vocab_size")
        self.device = getattr(runner, "device_name", "CPU")
        self.closed = False

    def __repr__(self) -> str:
        return f"Session({self.backend} on {self.device}, {self.bundle!r}{', closed' if self.closed else ''})"

    def _check_open(self) -> None:
        if self.closed:     # the interpreter would run on; the GPU's memory is freed
            raise InputError("the session is closed (mpk.load opens a new one)")

    def generate(self, prompt_ids, max_new_tokens: int, eos_token_id=None, sampling: dict | None = None,
                 on_tokens=None) -> Generation:
        """Decode `max_new_tokens` tokens after the prompt (stops early at EOS).

        `prompt_ids`: [B, n] token ids (B = the bundle's batch), B rows of
        different lengths (a list of lists), or one row (a list, or [1, n])
        for every sequence. Every row gets `max_new_tokens` new tokens.
        `eos_token_id`: an id or a list of ids. `sampling`: temperature,
        top_k, top_p, min_p and seed (each one value, or one per sequence;
        greedy by default: mpk.sampling). `on_tokens(tokens)` receives the
        new tokens ([B] or [n, B]) as they arrive.
        """
        from mpk.runtime.loader import LoaderError, check_length, generate, prompt_rows

        self._check_open()
        prompt = prompt_rows(prompt_ids, self.batch, self.vocab_size)
        if not _is_int(max_new_tokens) or max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        check_length(max(len(row) for row in prompt), max_new_tokens, self.max_seq)
        eos = [eos_token_id] if isinstance(eos_token_id, int) else eos_token_id
        if eos is not None and not (len(eos) > 0 and all(_is_int(i) and (self.vocab_size is None or
                                                                          0 <= i < self.vocab_size) for i in eos)):
            raise InputError(f"eos_token_id must be a token id in [0, {self.vocab_size}) or a list of them, "
                             f"got {eos_token_id!r}")
        start = time.perf_counter()
        try:
            out = generate(self.runner, prompt, max_new_tokens, eos_token_id=eos, sampling=sampling,
                           on_tokens=on_tokens)
        except LoaderError as e:
            if str(e).startswith("sampling") or "sampling parameter" in str(e):
                raise InputError(str(e)) from None
            raise
        seconds = time.perf_counter() - start
        return Generation(out["tokens"].T.astype(np.int64), out.get("logits"), out.get("prompt_logits"), seconds,
                          out.get("prefill_seconds"))

    def generate_text(self, prompt: str, max_new_tokens: int = 64, chat: bool = False, on_text=None,
                      tokenizer=None, **options):
        """Text in, text out (mpk.text.generate_text): `prompt` tokenized with the
        tokenizer of the folder the bundle was compiled from (or `tokenizer`, an
        mpk.text.Tokenizer), with its chat template when `chat`; `on_text(piece)`
        streams the text; `options` go to `generate` (sampling, ...)."""
        from mpk import text
        tokenizer = tokenizer or text.Tokenizer.for_bundle(self.bundle)
        return text.generate_text(self, tokenizer, prompt, max_new_tokens, chat=chat, on_text=on_text, **options)

    def benchmark(self, launches: int = 5, position: int = 0) -> float:
        """Median seconds per decode step over `launches` launches of `steps_per_launch`
        steps from KV position `position`. On the GPU: CUDA events around the
        kernel alone, after a warm-up launch; on the interpreter: wall time."""
        self._check_open()
        steps = self.steps_per_launch
        if not _is_int(launches) or launches < 1:
            raise InputError(f"launches must be a positive int, got {launches!r}")
        if not _is_int(position) or position < 0:
            raise InputError(f"position must be an int >= 0, got {position!r}")
        if position + steps > self.max_seq:
            raise InputError(f"position {position} + {steps} steps exceed max_seq ({self.max_seq})")
        tokens, positions = np.ones(self.batch, np.int64), np.full(self.batch, position, np.int64)
        if self.backend == "gpu":
            return self.runner.seconds_per_step(tokens, positions, steps, repeat=launches, warmup=1)
        times = []
        for _ in range(launches):
            self.runner.write("tokens", tokens)
            self.runner.write("positions", positions)
            start = time.perf_counter()
            self.runner.launch(steps)
            times.append((time.perf_counter() - start) / steps)
        return statistics.median(times)

    def close(self) -> None:
        self.runner.close()
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
