"""Check a decode run against the PyTorch model on the same weights (`mpk run --check`, GPU tests).

The reference is `mpk.models.Decoder` in float64 (on the GPU when torch sees
one) with the run's weights upcast exactly (bf16 -> float64 is lossless), fed
the tokens the run consumed (teacher forcing): where mpk picks another token
at a near-tie, later steps still compare the same computation.

Alongside, the same model run by PyTorch in the bundle's own dtype (bf16:
every operator rounds its output, as mpk's do) shows the error that dtype
alone costs, so a large error can be told from a wrong kernel at a glance.

Per step, two verdicts:

* logits: ||ours - ref|| / ||ref|| (2-norm over the step's [B, V] logits,
  `relative_error`) must stay under `tolerance` (or, given a `slack`, under
  slack times PyTorch-in-the-bundle's-dtype's own error: `logits_ok`), and
  every logit must be finite (the loader poisons per-step outputs with NaN
  before each launch, so a NaN is an unwritten one);
* tokens: mpk's greedy token must be the reference's argmax wherever the
  reference's top-two margin exceeds twice the step's largest absolute logit
  error. Why twice: for ours to rank token j over the reference's i,
  e_j - e_i >= ref_i - ref_j = margin with |e_j - e_i| <= 2 max|e|. So a
  different token at a larger margin cannot be the measured rounding error
  and is a bug; under it the rows are a near-tie and either token is right.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mpk.errors import InputError

TOLERANCE = 2e-2          # relative logit error of a step that always passes


@dataclasses.dataclass
class Step:
    position: int
    error: float          # ||ours - ref|| / ||ref|| over the step's logits
    max_abs: float        # max |ours - ref|
    margin: float         # smallest top-two margin of the reference over the batch rows
    threshold: float      # 2 * max |ours - ref|: the margin above which tokens must agree
    tokens: tuple[int, int] | None   # (mpk, reference) of the first disagreeing row, or row 0; None: prompt
    verdict: str
    torch_error: float | None = None  # PyTorch in the bundle's dtype: its ||. - ref|| / ||ref||


@dataclasses.dataclass
class Report:
    steps: list[Step]
    tolerance: float

    @property
    def ok(self) -> bool:
        return all(s.verdict.startswith("ok") for s in self.steps)

    @property
    def worst(self) -> float:
        return max((s.error for s in self.steps), default=0.0)

    def table(self) -> str:
        head = (f"{'pos':>5} {'rel.err':>9} {'torch':>9} {'max|err|':>9} {'margin':>9} {'2max|err|':>9} "
                f"{'mpk':>7} {'ref':>7}  verdict")
        rows = [head]
        for s in self.steps:
            mpk_token, ref_token = s.tokens if s.tokens else ("-", "-")
            torch_error = "-" if s.torch_error is None else f"{s.torch_error:.2e}"
            rows.append(f"{s.position:>5} {s.error:>9.2e} {torch_error:>9} {s.max_abs:>9.2e} {s.margin:>9.2e} "
                        f"{s.threshold:>9.2e} {mpk_token:>7} {ref_token:>7}  {s.verdict}")
        verdict = "ok" if self.ok else "FAILED"
        near_ties = sum(s.verdict == "ok (near-tie)" for s in self.steps)
        rows.append(f"check {verdict}: worst relative logit error {self.worst:.2e} (tolerance {self.tolerance:g})"
                    f", {near_ties} near-tie token difference(s); 'torch': PyTorch in the bundle's dtype, "
                    f"same error measure")
        return "\n".join(rows)


def reference_logits(config: dict, weights: dict, fed: np.ndarray, max_seq: int,
                     dtype: str = "float64") -> np.ndarray:
    """PyTorch's logits [steps, B, V] (as float64) of the model in `dtype` fed `fed` [steps, B] from position 0."""
    import torch

    from mpk.models import Decoder, ModelConfig, rope_inv_freq
    from mpk.runtime.loader import as_float32

    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = ModelConfig(**config)
    with torch.device("meta"):
        model = Decoder(config)
    state = {name: torch.from_numpy(as_float32(value)).to(device, getattr(torch, dtype))
             for name, value in weights.items()}
    model.load_state_dict(state, strict=True, assign=True)
    model.inv_freq = torch.tensor(rope_inv_freq(config), dtype=torch.float32, device=device)
    batch = fed.shape[1]
    model.setup_caches(batch, max_seq)
    out = []
    with torch.no_grad():
        for position, tokens in enumerate(fed):
            _, logits = model(torch.from_numpy(tokens.astype(np.int64)).to(device),
                              torch.full((batch,), position, device=device))
            out.append(logits.cpu().double().numpy())
    del model, state
    if device == "cuda":
        torch.cuda.empty_cache()   # give the memory back to a Session that runs next
    return np.stack(out)


def relative_error(x: np.ndarray, ref: np.ndarray) -> float:
    """||x - ref|| / ||ref|| (2-norm over all elements); inf where x is not all finite."""
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    if not np.isfinite(x).all():
        return float("inf")
    return float(np.linalg.norm(x - ref) / max(np.linalg.norm(ref), 1e-30))


def logits_ok(error: float, torch_error: float | None = None, tolerance: float = TOLERANCE,
              slack: float | None = None) -> bool:
    """The logit verdict of a step: its relative error (`relative_error`) is at most
    `tolerance`, or, with a `slack`, at most slack times the error of PyTorch itself in
    the bundle's dtype on the same step (`torch_error`): random weights give deep
    models a bf16 error of a few percent even in PyTorch (bench/)."""
    if not np.isfinite(error):
        return False
    return error <= tolerance or (slack is not None and torch_error is not None and error <= slack * torch_error)


def compare(ours: np.ndarray, reference: np.ndarray, tokens: np.ndarray, prompt_len: int,
            tolerance: float = TOLERANCE, torch_same_dtype: np.ndarray | None = None,
            first_position: int = 0, slack: float | None = None) -> Report:
    """`ours`, `reference`: logits [steps, B, V] from position `first_position`;
    `tokens`: mpk's greedy tokens [steps - prompt_len + 1, B] of the steps from the
    last prompt token on (prompt_len counted from first_position);
    `torch_same_dtype`: PyTorch's logits in the bundle's dtype (shown; judged only
    with a `slack`: `logits_ok`)."""
    steps = []
    for step, (o, r) in enumerate(zip(ours.astype(np.float64), reference.astype(np.float64))):
        position = step + first_position
        diff = o - r
        finite = bool(np.isfinite(o).all())
        error = relative_error(o, r)
        max_abs = np.abs(diff).max(axis=-1) if finite else np.full(len(r), np.inf)   # per row
        top2 = np.sort(r, axis=-1)[:, -2:]
        margins = top2[:, 1] - top2[:, 0]
        thresholds = 2 * max_abs
        torch_error = None if torch_same_dtype is None else relative_error(torch_same_dtype[step], r)
        verdict = ("FAIL: NaN/inf logits" if not finite else
                   "ok" if logits_ok(error, torch_error, tolerance, slack) else "FAIL: logit error")
        pair = None
        generated = step - (prompt_len - 1)
        if generated >= 0:
            mine, theirs = tokens[generated].astype(np.int64), r.argmax(axis=-1)
            differ = np.flatnonzero(mine != theirs)
            row = int(differ[0]) if len(differ) else 0
            pair = (int(mine[row]), int(theirs[row]))
            if not np.all((0 <= mine) & (mine < r.shape[-1])):     # poisoned (-1): never written
                verdict = "FAIL: token not written"
            elif any(margins[b] > thresholds[b] for b in differ):
                verdict = "FAIL: token at a clear margin"
            elif len(differ) and verdict == "ok":
                verdict = "ok (near-tie)"
        steps.append(Step(position, error, float(max_abs.max()), float(margins.min()),
                          float(thresholds.max()), pair, verdict, torch_error))
    return Report(steps, tolerance)


def _torch_dtype(weights: dict) -> str:
    """The dtype the weights come in (numpy's and torch's names agree): that of the bundle."""
    value = next(iter(weights.values()))
    name = str(getattr(value, "dtype", np.float32)).removeprefix("torch.")
    return name if name in ("bfloat16", "float16") else "float32"


def check_run(config: dict, weights: dict, prompt: np.ndarray, result: dict, max_seq: int,
              tolerance: float = TOLERANCE, slack: float | None = None) -> Report:
    """Compare `generate()`'s result (prompt [B, n] or [n]) with the float64
    reference, and PyTorch in the weights' dtype as a yardstick (`slack`: a step also
    passes within slack times PyTorch's own error, `logits_ok`)."""
    tokens = result["tokens"]
    batch = tokens.shape[1]
    prompt = np.broadcast_to(np.atleast_2d(np.asarray(prompt)), (batch, np.shape(prompt)[-1]))
    fed = np.concatenate([prompt.T, tokens[:-1]])          # the token each step consumed
    reference = reference_logits(config, weights, fed, max_seq)
    same_dtype = reference_logits(config, weights, fed, max_seq, _torch_dtype(weights))
    if result.get("prompt_logits") is not None:
        ours = np.concatenate([result["prompt_logits"], result["logits"]])
        return compare(ours, reference, tokens, prompt.shape[1], tolerance, same_dtype, slack=slack)
    # A prefill kernel returns the logits of the last prompt row only: from there on.
    skip = prompt.shape[1] - 1
    return compare(result["logits"], reference[skip:], tokens, 1, tolerance, same_dtype[skip:], skip, slack)


def check_generation(bundle, weights: dict, prompt, out, tolerance: float = TOLERANCE,
                     what: str = "the check against PyTorch") -> Report:
    """`check_run` of `out`, an mpk.api.Generation of `prompt` ([n], or [B, n]) on `bundle`
    with `weights` (`mpk run --check`, `mpk demo`). A bundle it cannot check (no per-step
    logits, compiled from a graph file) or no torch is an InputError: "`what` needs ..."."""
    if out.logits is None:
        raise InputError(f"{what} needs a per-step 'logits' io buffer in the bundle")
    if not bundle.plan.get("model"):
        raise InputError(f"{what} needs the model config; this bundle was compiled from a graph file")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise InputError(f"{what} needs PyTorch") from None
    result = {"tokens": out.tokens.T, "logits": out.logits, "prompt_logits": out.prompt_logits}
    return check_run(bundle.plan["model"], weights, np.asarray(prompt), result, int(bundle.plan["max_seq"]),
                     tolerance)
