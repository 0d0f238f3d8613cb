"""The one prompt check (mpk.runtime.loader.prompt_rows, check_length), the one
prompt-to-ids step of text generation (Tokenizer.encode_prompt) and the one
progress bar of the commands (mpk.cli.Progress), without a model or a GPU."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from mpk import cli
from mpk.runtime.loader import LoaderError, PromptError, check_length, prompt_rows


def test_prompt_rows_one_for_all_or_one_per_sequence():
    rows = prompt_rows([3, 1, 4], batch=2)
    assert len(rows) == 2 and all(r.dtype == np.int64 and r.tolist() == [3, 1, 4] for r in rows)
    assert [r.tolist() for r in prompt_rows([[1, 2], [3]], batch=2, vocab_size=4)] == [[1, 2], [3]]
    assert [r.tolist() for r in prompt_rows(np.array([[5, 6]], np.int32), batch=3)] == [[5, 6]] * 3


def test_prompt_rows_takes_a_torch_tensor():
    torch = pytest.importorskip("torch")
    assert [r.tolist() for r in prompt_rows(torch.tensor([[1, 2], [3, 4]]), batch=2)] == [[1, 2], [3, 4]]


@pytest.mark.parametrize("prompt, message", [
    ([[1, 2], [3], [4]], r"prompt_ids has 3 rows; the bundle decodes 2 sequences \(give 2 rows, or one for all\)"),
    ([], "must be a non-empty row"),
    ([1.5, 2.0], r"of int token ids; got a row of shape \[2\] of float64"),
    ([[[1]]], "int token ids"),
    ([1, 50], r"prompt_ids must be token ids in \[0, 50\)"),
    ([-1], r"token ids in \[0, 50\)"),
])
def test_bad_prompts_are_prompt_errors(prompt, message):
    with pytest.raises(PromptError, match=message) as error:
        prompt_rows(prompt, batch=2, vocab_size=50)
    assert isinstance(error.value, ValueError) and isinstance(error.value, LoaderError)   # input, from the loader


def test_check_length():
    check_length(4, 4, 8)
    with pytest.raises(PromptError, match=r"^5 prompt \+ 4 new tokens exceed the bundle's max_seq \(8\)$"):
        check_length(5, 4, 8)


def test_an_empty_prompt_is_a_tokenizer_error():
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer as Backend
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    from mpk.text import Tokenizer, TokenizerError
    backend = Backend(WordLevel({"hello": 0, "[UNK]": 1}, unk_token="[UNK]"))
    backend.pre_tokenizer = Whitespace()
    tokenizer = Tokenizer(backend)
    assert tokenizer.encode_prompt("hello") == [0]
    with pytest.raises(TokenizerError, match=r"^the prompt is empty \(it encodes to no tokens\)$"):
        tokenizer.encode_prompt("")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_over_named_stages(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    with cli.Progress(quiet=False, stages=("a", "b"), timings=True, leave=True, done="done",
                      bar_format="{desc}|{n}/{total}") as progress:
        with progress.stage("a"):
            with progress.stage("a.sub"):            # not a stage of the bar: relabels it only
                pass
        with progress.stage("b"):
            pass
    text = sys.stderr.getvalue()
    assert progress.n == 2 and "a.sub|0/2" in text and "done|2/2" in text
    assert "a: 0.0 s" in text and "b: 0.0 s" in text and "a.sub: 0.0 s" in text


def test_progress_is_silent_when_quiet_or_off_a_terminal(monkeypatch):
    for quiet, stream in ((True, Terminal()), (False, io.StringIO())):
        monkeypatch.setattr(sys, "stderr", stream)
        with cli.Progress(quiet=quiet, stages=("a",), terminal_only=True) as progress:
            with progress.stage("a"):
                pass
        assert sys.stderr.getvalue() == ""          # no bar with --quiet, nor into a log (terminal_only)


def test_progress_leaves_no_bar_above_an_error(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    with pytest.raises(KeyError):
        with cli.Progress(stages=("a", "b"), leave=True, done="done") as progress:
            with progress.stage("a"):
                raise KeyError("a bug")
    assert progress.bar.leave is False and "done" not in sys.stderr.getvalue()
