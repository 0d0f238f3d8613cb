"""Generate text from a prompt: a Hugging Face model folder (or a compiled bundle) in, text out.

    mpk generate path/to/Qwen3-0.6B --prompt "The capital of France is"
    mpk generate path/to/Qwen3-0.6B --chat --system "Be brief." --prompt "What is a GPU?"
    mpk generate model.mpk --weights path/to/Qwen3-0.6B --prompt "Once upon a time" --max-new-tokens 128
    echo "Hello" | mpk generate path/to/folder --prompt -

SOURCE is a folder holding config.json, *.safetensors and tokenizer.json
(nothing is downloaded), or a bundle directory written by `mpk compile` /
this command (it records the folder it was compiled from, which gives the
weights and the tokenizer; --weights DIR names another, and a bundle from
`mpk compile` needs it). A folder is compiled once per config and
options into a bundle cached under $XDG_CACHE_HOME/mpk (or ~/.cache/mpk;
--bundle DIR puts it elsewhere), then reused. Text is printed as it is
generated; a line of timings follows on stderr. Decoding is greedy unless
--temperature > 0 (where this build can sample).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from mpk import defaults
from mpk.cli import UserError, failure, interp_progress, resolve_backend

INTERP_SMS = 8          # the task interpreter's time grows with the task count: few, big tasks


def add_arguments(parser) -> None:
    parser.add_argument("source", metavar="SOURCE",
                        help="a Hugging Face model folder (config.json, *.safetensors, tokenizer.json) or a bundle")
    parser.add_argument("--prompt", required=True, help="the prompt text ('-': read it from stdin)")
    parser.add_argument("--chat", action="store_true",
                        help="wrap the prompt in the model's chat template (a user turn, then the assistant's)")
    parser.add_argument("--system", help="a system message before the prompt (with --chat)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens to generate at most (default 64)")
    sampling = parser.add_argument_group("sampling (default: greedy)")
    sampling.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default); > 0: sample")
    sampling.add_argument("--top-k", type=int, help="sample among the k most likely tokens (0: all)")
    sampling.add_argument("--top-p", type=float, help="sample among the most likely tokens of this total probability")
    sampling.add_argument("--min-p", type=float, help="drop tokens below this fraction of the top probability")
    sampling.add_argument("--seed", type=int, help="random seed for sampling")
    parser.add_argument("--backend", choices=("auto", "gpu", "interp"), default="auto",
                        help="gpu: the persistent kernel; interp: the CPU task interpreter; "
                             "auto (default): the GPU if there is one")
    parser.add_argument("--weights", metavar="DIR",
                        help="for a bundle SOURCE: the model folder (weights, tokenizer); default: the folder "
                             "the bundle was compiled from")
    parser.add_argument("--bundle", metavar="DIR",
                        help="for a folder SOURCE: where to write (and later reuse) the compiled bundle; "
                             "default: a cache directory")
    parser.add_argument("--max-seq", type=int,
                        help=f"KV cache length of the compiled bundle (default: the model's "
                             f"max_position_embeddings, at most {defaults.MAX_SEQ})")
    parser.add_argument("--dtype", choices=("auto",) + defaults.DTYPES, default="auto",
                        help="element type to compile for (default auto: the folder's config.json dtype, "
                             "else bfloat16)")
    parser.add_argument("--quiet", action="store_true", help="print the generated text only")


def _validate(args) -> None:
    if args.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be positive, got {args.max_new_tokens}")
    if args.max_seq is not None and args.max_seq < 1:
        raise UserError(f"--max-seq must be positive, got {args.max_seq}")
    if args.temperature < 0:
        raise UserError(f"--temperature must be 0 (greedy) or positive, got {args.temperature}")
    if args.top_k is not None and args.top_k < 0:   # ranges as mpk.sampling takes them
        raise UserError(f"--top-k must be 0 (off) or positive, got {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1] (1: off), got {args.top_p}")
    if args.min_p is not None and not 0 <= args.min_p < 1:
        raise UserError(f"--min-p must be in [0, 1) (0: off), got {args.min_p}")
    if args.temperature == 0 and (args.top_k is not None or args.top_p is not None or args.min_p is not None):
        raise UserError("--top-k/--top-p/--min-p shape sampling: they need --temperature > 0")
    if args.system is not None and not args.chat:
        raise UserError("--system needs --chat (a system message is part of the chat template)")


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mpk"


def bundle_key(config_json: bytes, options: dict) -> str:
    """What the compiled bundle depends on: the model config and the compile options (and mpk)."""
    from importlib import metadata

    from mpk.runtime.bundle import PLAN_FORMAT
    try:
        version = metadata.version("mpk")
    except metadata.PackageNotFoundError:
        version = "unknown"
    text = json.dumps({"config": hashlib.sha256(config_json).hexdigest(), "options": options,
                       "mpk": version, "format": PLAN_FORMAT}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_config(folder: Path) -> tuple[bytes, dict]:
    """config.json's bytes and content. Read here, not by mpk.models (which imports torch):
    a cached bundle runs without it; compiling checks the config."""
    path = folder / "config.json"
    try:
        raw = path.read_bytes()
        hf = json.loads(raw)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read a JSON config: {e}") from None
    if not isinstance(hf, dict):
        raise UserError(f"{path}: expected a JSON object")
    return raw, hf


def _config_dtype(hf: dict) -> str:
    dtype = hf.get("dtype") or hf.get("torch_dtype")
    return dtype if dtype in defaults.DTYPES else defaults.DTYPE


def _read_bundle(path: Path):
    from mpk.runtime import bundle as bundles
    try:
        return bundles.read(path)
    except bundles.BundleError as e:
        raise UserError(str(e)) from None


def _max_seq(args, folder: Path) -> int:
    """--max-seq, else the model's context length up to defaults.MAX_SEQ."""
    _, hf = _read_config(folder)
    return args.max_seq or min(defaults.MAX_SEQ, int(hf.get("max_position_embeddings") or defaults.MAX_SEQ))


def _compile_folder(folder: Path, args, backend: str, max_seq: int, force: bool = False) -> tuple[Path, bool]:
    """The bundle for `folder` and whether it is new: the one cached for the same config and
    options, else compiled now (`force`: compiled now in any case)."""
    config_json, hf = _read_config(folder)
    dtype = _config_dtype(hf) if args.dtype == "auto" else args.dtype
    if backend == "gpu":
        from mpk.runtime.loader import device_properties
        gpu = device_properties(0)
        num_sms, arch = gpu["num_sms"], gpu["arch"]
    else:
        num_sms, arch = INTERP_SMS, "sm_90"
    options = {"batch": 1, "max_seq": max_seq, "dtype": dtype, "num_sms": num_sms, "arch": arch}
    key = bundle_key(config_json, options)
    path = Path(args.bundle) if args.bundle else cache_root() / "bundles" / f"{folder.resolve().name}-{key}"
    plan = path / "plan.json"
    if plan.is_file() and not force:
        try:
            if json.loads(plan.read_text()).get("source", {}).get("key") == key:
                return path, False
        except (OSError, ValueError):
            pass                                  # unreadable: compile it again
    elif path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"--bundle {path} exists and is not a bundle; not overwriting it")

    import mpk
    from mpk import driver

    if not args.quiet:
        print(f"[mpk] compiling {folder} ({dtype}, max_seq {max_seq}, {num_sms} SMs {arch}) into {path}",
              file=sys.stderr, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        mpk.compile(folder, max_seq=max_seq, dtype=dtype, num_sms=num_sms, arch=arch, path=scratch)
        _record_source(scratch, folder, key)
        if path.exists():
            shutil.rmtree(path)
        os.replace(scratch, path)
    except driver.CompileError as e:
        raise failure(f"cannot compile {folder}: {e.headline}", e.diagnostics[:e.SHOWN]) from None
    except ValueError as e:
        raise UserError(f"cannot compile {folder}: {e}") from None
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return path, True


def _record_source(bundle: Path, folder: Path, key: str) -> None:
    """plan.json["source"]: the folder a bundle was compiled from (its default --weights) and the cache key."""
    plan_path = bundle / "plan.json"
    plan = json.loads(plan_path.read_text())
    plan["source"] = {**(plan.get("source") or {}), "folder": str(folder.resolve()), "key": key}
    plan_path.write_text(json.dumps(plan, indent=1) + "\n")


def _check_match(bundle, folder: Path) -> None:
    """A bundle compiled for another model than the folder's: say so before binding weights.

    The shapes that matter, from config.json with mpk.models.from_hf_config's renames (not
    called: it imports torch); binding the weights checks every tensor's shape anyway."""
    built = bundle.plan.get("model")
    if not built:
        return                                      # compiled from a graph file: the weights' shapes tell
    _, hf = _read_config(folder)
    heads = hf.get("num_attention_heads")
    theirs = {"family": hf.get("model_type"), "vocab_size": hf.get("vocab_size"),
              "hidden_size": hf.get("hidden_size"), "intermediate_size": hf.get("intermediate_size"),
              "num_layers": hf.get("num_hidden_layers"), "num_heads": heads,
              "num_kv_heads": hf.get("num_key_value_heads") or heads,
              "head_dim": hf.get("head_dim") or (hf["hidden_size"] // heads
                                                 if heads and hf.get("hidden_size") else None),
              "tie_word_embeddings": bool(hf.get("tie_word_embeddings", False))}
    differ = [k for k, v in theirs.items() if k in built and built[k] != v]
    if differ:
        raise UserError(f"the bundle {bundle.path} was compiled for another model than {folder}: "
                        + ", ".join(f"{k} {built[k]} vs {theirs[k]}" for k in differ))


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def stats_line(out, session) -> str:
    """`[mpk] prompt 12 tokens, prefill 0.8 ms (15000 tok/s), 64 new tokens at 3.1 ms/token, gpu (H200)`."""
    parts = [f"prompt {out.prompt_tokens} tokens"]
    if out.prefill_seconds:
        parts.append(f"prefill {_ms(out.prefill_seconds)} ({out.prefill_tokens_per_s:.0f} tok/s)")
    eos = " + EOS" if out.stopped_at_eos else ""
    if out.seconds_per_token:
        parts.append(f"{len(out.token_ids)} new tokens{eos} at {_ms(out.seconds_per_token)}/token")
    else:
        parts.append(f"{len(out.token_ids)} new tokens{eos} in {_ms(out.seconds)} (prompt included)")
    return f"[mpk] {', '.join(parts)}, {session.backend} ({session.device})"


def run(args) -> int:
    _validate(args)
    from mpk import text as texts

    if args.temperature > 0:
        from mpk.api import Session
        if not texts.accepts_keyword(Session.generate, "sampling"):
            raise UserError("sampling is not available in this build (leave out --temperature for greedy "
                            "decoding)")
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    source = Path(args.source)
    if not source.exists():
        raise UserError(f"no such file or directory: {source}")
    is_bundle = (source / "plan.json").is_file()
    if is_bundle:
        if args.bundle or args.max_seq or args.dtype != "auto":
            raise UserError("--bundle, --max-seq and --dtype are for a folder SOURCE: a bundle is compiled already")
        bundle = _read_bundle(source)
        folder = args.weights or (bundle.plan.get("source") or {}).get("folder")
        if not folder:
            raise UserError(f"{source} does not record the folder it was compiled from: give --weights DIR")
        folder = Path(folder)
        is_hf_folder_or_error(folder, "--weights" if args.weights else "the bundle's source folder")
    else:
        if args.weights:
            raise UserError("--weights is for a bundle SOURCE (a model folder holds its own weights)")
        is_hf_folder_or_error(source, "SOURCE")
        folder = source

    from mpk.runtime.loader import LoaderError, PromptError, check_length

    try:   # tokenizer, template and length errors before compiling
        tokenizer = texts.Tokenizer.from_folder(folder)
        prompt_ids = tokenizer.encode_prompt(prompt, chat=args.chat, system=args.system)
    except ValueError as e:
        raise UserError(str(e)) from None
    max_seq = bundle.plan["max_seq"] if is_bundle else _max_seq(args, folder)
    try:
        check_length(len(prompt_ids), args.max_new_tokens, max_seq)
    except PromptError as e:
        raise UserError(str(e) + ("" if is_bundle else ": raise --max-seq")) from None

    import mpk

    backend = resolve_backend(args.backend)
    if is_bundle:
        _check_match(bundle, folder)
        try:
            session = mpk.load(bundle, weights=folder, backend=backend)
        except (LoaderError, ValueError) as e:
            raise UserError(str(e)) from None
    else:
        path, fresh = _compile_folder(folder, args, backend, max_seq)
        try:
            session = mpk.load(_read_bundle(path), weights=folder, backend=backend)
        except (UserError, LoaderError, ValueError) as e:
            if fresh:
                raise UserError(str(e)) from None
            # A cached bundle this mpk cannot run any more (an older bundle format): compile it again.
            path, _ = _compile_folder(folder, args, backend, max_seq, force=True)
            try:
                session = mpk.load(_read_bundle(path), weights=folder, backend=backend)
            except (LoaderError, ValueError) as e:
                raise UserError(str(e)) from None
    with session:
        kwargs = {}
        if args.temperature > 0:
            kwargs["sampling"] = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                      min_p=args.min_p, seed=args.seed)

        # On the interpreter a prompt can take minutes before the first text: a task count
        # on stderr until then (the text takes the terminal over).
        progress = (interp_progress(session.runner, None, args.quiet) if session.backend == "interp"
                    else contextlib.nullcontext())
        with progress as bar:
            def write(piece: str) -> None:
                if bar is not None:
                    bar.close()
                sys.stdout.write(piece)
                sys.stdout.flush()

            try:
                out = texts.generate_text(session, tokenizer, prompt, args.max_new_tokens, chat=args.chat,
                                          system=args.system, on_text=write, **kwargs)
            except (LoaderError, ValueError) as e:
                raise UserError(str(e)) from None
    write("\n")
    if not args.quiet:
        print(stats_line(out, session), file=sys.stderr, flush=True)
    return 0


def is_hf_folder_or_error(folder: Path, what: str) -> bool:
    """A model folder with config.json, *.safetensors and tokenizer.json, or a UserError saying what is missing."""
    if not folder.is_dir():
        raise UserError(f"{what} {folder}: no such folder")
    missing = [name for name, there in (("config.json", (folder / "config.json").is_file()),
                                        ("*.safetensors", any(folder.glob("*.safetensors"))),
                                        ("tokenizer.json", (folder / "tokenizer.json").is_file())) if not there]
    if missing:
        hint = "" if what != "SOURCE" else " (nor is it a bundle: no plan.json)"
        raise UserError(f"{folder} is not a Hugging Face model folder: no {', no '.join(missing)}{hint}")
    return True
