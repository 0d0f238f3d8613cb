"""Text in, text out: the tokenizer of a Hugging Face model folder, and generation on a Session.

    tokenizer = Tokenizer.from_folder("path/to/Qwen3-0.6B")
    with mpk.load(bundle, weights="path/to/Qwen3-0.6B") as session:
        out = generate_text(session, tokenizer, "What is a GPU?", 64, chat=True,
                            on_text=lambda s: print(s, end="", flush=True))
    out.text, out.token_ids, out.seconds_per_token

The tokenizer is tokenizer.json read by the `tokenizers` package (not
transformers: running a model must not need it), with what
tokenizer_config.json (chat template, special token strings, add_bos_token),
chat_template.jinja and generation_config.json (EOS ids) add. Chat templates
are rendered with jinja2 the way transformers renders them, then encoded
without special tokens, so a template that writes the BOS token itself does
not get a second one.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

REPLACEMENT = "\ufffd"   # what decoding an incomplete UTF-8 sequence ends with


class TokenizerError(ValueError):
    """A tokenizer folder that cannot be read or used (missing file, bad JSON, no or bad chat template)."""


def is_hf_folder(path) -> bool:
    """A directory holding config.json and at least one *.safetensors file."""
    path = Path(path)
    return path.is_dir() and (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerError(f"{path}: cannot read it as JSON: {e}") from None
    if not isinstance(value, dict):
        raise TokenizerError(f"{path}: expected a JSON object")
    return value


def _token_string(value) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _ids(value) -> list[int]:
    """generation_config.json's eos_token_id: an int, a list of ints, or null."""
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [int(v) for v in values if isinstance(v, int) and not isinstance(v, bool)]


SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")


class Tokenizer:
    """tokenizer.json (+ tokenizer_config.json, chat_template.jinja, generation_config.json) of a folder."""

    def __init__(self, backend, *, config: dict | None = None, generation_config: dict | None = None,
                 chat_template: str | None = None, template_file: str = "tokenizer_config.json",
                 folder: Path | None = None):
        self.backend = backend                                   # a tokenizers.Tokenizer
        self.folder = folder
        self.template_file = template_file                       # where the chat template came from
        self.config = config or {}
        self.generation_config = generation_config or {}
        self.chat_template = chat_template
        self.special_tokens = {k: s for k in SPECIAL_TOKEN_KEYS if (s := _token_string(self.config.get(k)))}
        self.bos_token_id = self._id(self.special_tokens.get("bos_token"))
        if self.bos_token_id is None:
            bos = _ids(self.generation_config.get("bos_token_id"))
            self.bos_token_id = bos[0] if bos else None
        # generation_config first: its first id is what a single-EOS API gets.
        eos = _ids(self.generation_config.get("eos_token_id"))
        own = self._id(self.special_tokens.get("eos_token"))
        self.eos_token_id_list = list(dict.fromkeys(eos + ([own] if own is not None else [])))
        self._template = None

    @classmethod
    def from_folder(cls, path) -> "Tokenizer":
        from tokenizers import Tokenizer as Backend

        folder = Path(path)
        file = folder / "tokenizer.json"
        if not file.is_file():
            raise TokenizerError(f"{folder}: no tokenizer.json (text generation needs the model's tokenizer)"
                                 if folder.is_dir() else f"no such folder: {folder}")
        try:
            backend = Backend.from_file(str(file))
        except Exception as e:   # tokenizers raises plain Exceptions for malformed files
            raise TokenizerError(f"{file}: cannot read the tokenizer: {e}") from None
        config = _read_json(folder / "tokenizer_config.json")
        generation = _read_json(folder / "generation_config.json")
        if not generation:   # transformers derives the generation config from the model's then
            model = _read_json(folder / "config.json")
            generation = {k: model[k] for k in ("eos_token_id", "bos_token_id") if k in model}
        # As transformers: a chat_template.jinja file wins over tokenizer_config.json's entry.
        template, template_file = config.get("chat_template"), "tokenizer_config.json"
        if (folder / "chat_template.jinja").is_file():
            template_file = "chat_template.jinja"
            template = (folder / template_file).read_text(encoding="utf-8")
        elif isinstance(template, list):   # [{"name": ..., "template": ...}]: the default one
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default")
        return cls(backend, config=config, generation_config=generation,
                   chat_template=template if isinstance(template, str) else None, template_file=template_file,
                   folder=folder)

    @classmethod
    def for_bundle(cls, bundle) -> "Tokenizer":
        """The tokenizer a bundle compiled from a Hugging Face folder carries (or its folder's)."""
        source = bundle.plan.get("source") or {}
        for folder in (bundle.path / source["tokenizer"] if source.get("tokenizer") else None,
                       Path(source["folder"]) if source.get("folder") else None):
            if folder is not None and (folder / "tokenizer.json").is_file():
                return cls.from_folder(folder)
        raise TokenizerError(f"{bundle.path} was not compiled from a Hugging Face folder with a "
                             "tokenizer.json: pass tokenizer=mpk.text.Tokenizer.from_folder(DIR)")

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self.backend.token_to_id(token)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    @property
    def eos_token_ids(self) -> set[int]:
        """generation_config.json's eos_token_id(s) and tokenizer_config.json's eos_token."""
        return set(self.eos_token_id_list)

    def _where(self, name: str) -> str:
        return str(self.folder / name) if self.folder else name

    def encode(self, text: str, chat: bool = False, system: str | None = None) -> list[int]:
        """Token ids of `text`; with `chat`, of the chat template rendered for one user message
        (after `system`'s, if given) and the assistant's turn to answer."""
        if chat:
            rendered = self.render_chat(text, system=system)
            return self.backend.encode(rendered, add_special_tokens=False).ids
        if system is not None:
            raise ValueError("a system prompt needs chat=True")
        # tokenizer.json's post-processor adds BOS where the model wants it (transformers 5
        # ignores add_bos_token then); without one, add_bos_token says (as transformers 4 did).
        ids = self.backend.encode(text, add_special_tokens=True).ids
        if (self.backend.post_processor is None and self.config.get("add_bos_token")
                and self.bos_token_id is not None and ids[:1] != [self.bos_token_id]):
            ids = [self.bos_token_id] + ids
        return ids

    def encode_prompt(self, text: str, chat: bool = False, system: str | None = None) -> list[int]:
        """`encode`, for a prompt to generate from: one that encodes to no tokens is a TokenizerError."""
        ids = self.encode(text, chat=chat, system=system)
        if not ids:
            raise TokenizerError("the prompt is empty (it encodes to no tokens)")
        return ids

    def render_chat(self, text: str, system: str | None = None) -> str:
        """The chat template applied to [system,] user `text`, add_generation_prompt=True."""
        messages = ([{"role": "system", "content": system}] if system is not None else [])
        messages.append({"role": "user", "content": text})
        template = self._compiled_template()
        try:
            return template.render(messages=messages, add_generation_prompt=True, **self.special_tokens)
        except Exception as e:   # the folder's code: raise_exception(), or a TypeError of its own
            raise TokenizerError(f"{self._where(self.template_file)}: the chat template failed: "
                                 f"{e if str(e) else type(e).__name__}") from None

    def _compiled_template(self):
        """Compiled as transformers does: sandboxed, trim_blocks/lstrip_blocks, loop controls,
        `raise_exception`, `strftime_now`, and a `tojson` that leaves non-ASCII as it is."""
        if self._template is not None:
            return self._template
        if not self.chat_template:
            raise TokenizerError(f"{self._where('tokenizer_config.json')} has no chat_template "
                                 f"(nor is there a chat_template.jinja): the model has no chat format; "
                                 f"prompt it without chat")
        import datetime

        import jinja2
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message):
            raise jinja2.TemplateError(message)

        def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
            return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                              sort_keys=sort_keys)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=[jinja2.ext.loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
        try:
            self._template = env.from_string(self.chat_template)
        except jinja2.TemplateError as e:
            raise TokenizerError(f"{self._where(self.template_file)}: the chat template does not "
                                 f"parse: {e}") from None
        return self._template

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def stream(self, skip_special_tokens: bool = False) -> "TextStream":
        return TextStream(self, skip_special_tokens)


class TextStream:
    """Incremental detokenizer: `push(ids)` returns the text those ids completed.

    A token may end inside a multi-byte character (byte-level BPE, byte
    fallback), when decoding ends in U+FFFD that later bytes replace: such a
    tail is held back until it decodes cleanly (or until `flush`). The text
    is decode(window) minus decode(window before the new ids), over a window
    that starts at the previous emitted boundary: the same prefix on both
    sides, so decoders that treat the first token specially (a stripped
    leading space) agree, and the cost per token stays bounded.
    """

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = False):
        self.tokenizer, self.skip = tokenizer, skip_special_tokens
        self.ids: list[int] = []
        self.prefix = 0      # the window's start
        self.read = 0        # ids up to here have been emitted as text

    def _decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip)

    def push(self, ids) -> str:
        self.ids.extend(int(i) for i in np.asarray(ids).reshape(-1))
        return self._emit(final=False)

    def flush(self) -> str:
        """The text held back (an incomplete character at the end decodes as U+FFFD)."""
        return self._emit(final=True)

    def _emit(self, final: bool) -> str:
        if len(self.ids) == self.read:
            return ""
        before = self._decode(self.ids[self.prefix:self.read])
        after = self._decode(self.ids[self.prefix:])
        if not final and (len(after) <= len(before) or after.endswith(REPLACEMENT)):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return after[len(before):]


@dataclasses.dataclass
class TextGeneration:
    text: str                          # the new text, up to (without) the first EOS
    token_ids: list[int]               # its token ids (no EOS)
    prompt_ids: list[int]              # the prompt as the model saw it (chat template applied)
    stopped_at_eos: bool
    seconds: float                     # the whole generate call
    # Time to the first new token (the prompt steps and, where a launch decodes several
    # steps, that launch's), then the time for `decode_tokens` more; None where the
    # session reports no tokens until the end (no streaming).
    prefill_seconds: float | None = None
    decode_seconds: float | None = None
    decode_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def prefill_tokens_per_s(self) -> float | None:
        return self.prompt_tokens / self.prefill_seconds if self.prefill_seconds else None

    @property
    def seconds_per_token(self) -> float | None:
        """Decode time per token after the first; None when that cannot be told apart."""
        return self.decode_seconds / self.decode_tokens if self.decode_seconds and self.decode_tokens else None

    @property
    def tokens_per_s(self) -> float | None:
        return 1 / self.seconds_per_token if self.seconds_per_token else None


def _step_rows(new_tokens) -> np.ndarray:
    """Sequence 0's tokens from an on_tokens array: [B] (one step) or [steps, B]."""
    array = np.asarray(new_tokens)
    if array.ndim == 0:
        array = array.reshape(1, 1)
    elif array.ndim == 1:
        array = array[None, :]
    return array.reshape(array.shape[0], -1)[:, 0]


def accepts_keyword(function, name: str) -> bool:
    """Whether `function` takes keyword `name` (the Session API grows: on_tokens, sampling)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def generate_text(session, tokenizer: Tokenizer, prompt: str, max_new_tokens: int, chat: bool = False,
                  on_text: Callable[[str], None] | None = None, *, system: str | None = None,
                  **generate_kwargs) -> TextGeneration:
    """Tokenize `prompt`, generate up to `max_new_tokens` tokens with `session.generate`, decode.

    Text stops before the first EOS (any of `tokenizer.eos_token_ids`).
    `on_text` gets the text as it is completed: token by token when
    `session.generate` takes an `on_tokens` callback, else once at the end.
    `generate_kwargs` go to `session.generate` as they are (e.g. `sampling`).
    """
    prompt_ids = tokenizer.encode_prompt(prompt, chat=chat, system=system)
    vocab = getattr(session, "vocab_size", None)
    eos = [i for i in tokenizer.eos_token_id_list if vocab is None or i < vocab]
    stop = set(eos)
    streaming = accepts_keyword(session.generate, "on_tokens")
    # A list of EOS ids comes with the on_tokens API; before it, one id (the others stop the text here).
    eos_arg = (eos if len(eos) > 1 else eos[0]) if streaming and eos else (eos[0] if eos else None)

    stream = tokenizer.stream()
    state = {"tokens": [], "eos": False, "first": None, "first_count": 0, "last": None}
    pieces: list[str] = []

    def emit(text: str) -> None:
        if text:
            pieces.append(text)
            if on_text is not None:
                on_text(text)

    def on_tokens(new_tokens) -> None:
        now = time.perf_counter()
        if state["eos"]:
            return
        for token in _step_rows(new_tokens).tolist():
            if token in stop:
                state["eos"] = True
                break
            state["tokens"].append(int(token))
            emit(stream.push([token]))
        if state["first"] is None:
            state["first"], state["first_count"] = now, len(state["tokens"]) + state["eos"]
        state["last"] = now

    kwargs = dict(generate_kwargs, eos_token_id=eos_arg)
    if streaming:
        kwargs["on_tokens"] = on_tokens
    start = time.perf_counter()
    out = session.generate(prompt_ids, max_new_tokens, **kwargs)
    seconds = time.perf_counter() - start

    tokens, stopped = [], False
    for token in _first_row(out.tokens):
        if token in stop:
            stopped = True
            break
        tokens.append(int(token))
    text = tokenizer.decode(tokens)
    if state["tokens"] == tokens:
        emit(stream.flush())
    streamed = "".join(pieces)
    if text.startswith(streamed):   # the rest (all of it without streaming), unless on_tokens lied
        emit(text[len(streamed):])

    prefill = getattr(out, "prefill_seconds", None)
    decode = getattr(out, "decode_seconds", None)
    decode_tokens = max(len(tokens) + stopped - 1, 0) if decode is not None else 0
    if prefill is None and state["first"] is not None:
        prefill = state["first"] - start
        decode_tokens = len(tokens) + stopped - state["first_count"]
        decode = state["last"] - state["first"] if decode_tokens else None
    return TextGeneration(text=text, token_ids=tokens, prompt_ids=list(prompt_ids), stopped_at_eos=stopped,
                          seconds=seconds, prefill_seconds=prefill, decode_seconds=decode,
                          decode_tokens=decode_tokens if decode else 0)


def _first_row(tokens) -> list[int]:
    """The first sequence's new tokens from Generation.tokens ([B, T], or [T])."""
    array = np.asarray(tokens)
    return (array if array.ndim == 1 else array[0]).astype(np.int64).tolist()
