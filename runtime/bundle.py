"""The bundle: everything needed to run a compiled model, in one directory.

    kernel.cubin      runtime + task code, linked for `kernel.arch`
    tasks.ptx         the MLIR task code (for a re-link with a local toolkit)
    tasks.mlir        the scheduled task IR it came from (CPU interpreter, debugging)
    runtime/          the runtime's CUDA sources (idem)
    tables.npz        the runtime's tables (mpk.runtime.tables)
    plan.json         what the loader needs to know (PLAN_FORMAT below)
    prefill/          the prefill program (plan "programs"), a bundle of the same
                      layout whose weights and KV caches are the decode program's

Reading a bundle needs only numpy and the standard library.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np

from mpk.errors import InputError
from mpk.runtime import tables as layout

PLAN_FORMAT = "mpk-bundle/1"
CUBIN, PTX, TASK_IR, TABLES, PLAN = "kernel.cubin", "tasks.ptx", "tasks.mlir", "tables.npz", "plan.json"
RUNTIME_DIR = "runtime"


class BundleError(InputError):
    """A bundle is missing, incomplete, damaged or of another format."""


@dataclasses.dataclass(repr=False)
class Bundle:
    path: Path
    plan: dict
    tables: dict[str, np.ndarray]
    cubin: bytes

    def __repr__(self) -> str:   # the plan and tables run to megabytes: what the bundle is, in a line
        model = self.plan.get("model") or {}
        what = (f"{model.get('family')} {model.get('num_layers')} layers, hidden {model.get('hidden_size')}, "
                f"vocab {model.get('vocab_size')}; " if model else "")
        dtype = next(iter(self.weights().values()), {}).get("dtype", "?")
        k = self.kernel
        prefill = f", prefill chunk {self.prefill_chunk}" if self.prefill_chunk else ""
        return (f"Bundle('{self.path}': {what}{dtype}, batch {self.plan.get('batch')}, max_seq "
                f"{self.plan.get('max_seq')}; {k['num_tasks']} tasks on {k['num_workers']} workers, {k['arch']}, "
                f"{k['steps']} steps per launch{prefill})")

    @property
    def kernel(self) -> dict:
        return self.plan["kernel"]

    def buffer(self, name: str) -> dict:
        """A buffer by symbol or by its `name` attribute (io buffers: tokens, positions, logits)."""
        for b in self.plan["buffers"]:
            if name in (b["name"], b.get("weight_name")):
                return b
        raise BundleError(f"{self.path}: the bundle has no buffer named '{name}'")

    def weights(self) -> dict[str, dict]:
        """Weight name -> {shape, dtype}: what a checkpoint must provide (whole: a
        tensor-parallel rank cuts its slice at load time)."""
        if "weights" in self.plan:
            return {w["name"]: {"shape": w["shape"], "dtype": w["dtype"]} for w in self.plan["weights"]}
        return {b["weight_name"]: {"shape": b["shape"], "dtype": b["dtype"]}
                for b in self.plan["buffers"] if b["space"] == "weight"}

    @property
    def tp(self) -> int:
        """Tensor-parallel ranks the program is for (mpk-shard), 1 without."""
        return int(self.plan.get("tp", 1))

    @property
    def prefill(self) -> "Bundle | None":
        """The prefill program (mpk-prefill), a bundle of its own in a subfolder, or None."""
        info = self.plan.get("programs", {}).get("prefill")
        if info is None:
            return None
        if "_prefill" not in self.__dict__:
            self.__dict__["_prefill"] = read(self.path / "prefill")
        return self.__dict__["_prefill"]

    @property
    def prefill_chunk(self) -> int:
        """Prompt rows per sequence of one prefill launch (0 without a prefill program)."""
        return int(self.plan.get("programs", {}).get("prefill", {}).get("chunk", 0))


def write(path: Path, *, plan: dict, tables: dict[str, np.ndarray], cubin: bytes, ptx: str,
          task_ir: str, runtime_sources: dict[str, str]) -> Path:
    """Write a bundle directory (replacing one that is there)."""
    path = Path(path)
    check_output(path)
    if path.exists():
        shutil.rmtree(path)
    (path / RUNTIME_DIR).mkdir(parents=True)
    (path / CUBIN).write_bytes(cubin)
    (path / PTX).write_text(ptx)
    (path / TASK_IR).write_text(task_ir)
    for name, text in runtime_sources.items():
        (path / RUNTIME_DIR / name).write_text(text)
    layout.save(path / TABLES, tables)
    plan = dict(plan, format=PLAN_FORMAT,
                files={"cubin": CUBIN, "ptx": PTX, "task_ir": TASK_IR, "tables": TABLES,
                       "runtime": [f"{RUNTIME_DIR}/{n}" for n in runtime_sources]},
                tables={n: {"dtype": str(tables[n].dtype), "shape": list(tables[n].shape)} for n in layout.TABLES})
    (path / PLAN).write_text(json.dumps(plan, indent=1) + "\n")
    return path


def check_output(path: Path) -> None:
    """A bundle may be written to `path`: nothing is there, or a bundle (which it replaces).
    Compiles call this before they start, not only when they are done."""
    path = Path(path)
    if path.exists() and not (path / PLAN).is_file():
        raise BundleError(f"{path} exists and is not a bundle; not overwriting it")


# What a Hugging Face folder holds besides its weights that text in / text out needs.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "chat_template.jinja",
                   "special_tokens_map.json")
TOKENIZER_DIR = "tokenizer"


def record_source(path: Path, folder: Path) -> None:
    """Note in plan.json the Hugging Face folder a bundle was compiled from (its weights)
    and copy the folder's tokenizer files into the bundle, so it tokenizes on its own."""
    path, folder = Path(path), Path(folder)
    copied = [name for name in TOKENIZER_FILES if (folder / name).is_file()]
    if copied:
        (path / TOKENIZER_DIR).mkdir(exist_ok=True)
        for name in copied:
            shutil.copyfile(folder / name, path / TOKENIZER_DIR / name)
    plan = json.loads((path / PLAN).read_text())
    plan["source"] = {**(plan.get("source") or {}), "folder": str(folder.resolve()),
                      "tokenizer": TOKENIZER_DIR if copied else None}
    (path / PLAN).write_text(json.dumps(plan, indent=1) + "\n")


def read(path: Path) -> Bundle:
    """The bundle at `path`; a missing, damaged or edited one is a BundleError naming the file."""
    path = Path(path)
    if not (path / PLAN).is_file():
        raise BundleError(f"{path} is not an mpk bundle (no {PLAN}); make one with `mpk compile`")
    try:
        plan = json.loads((path / PLAN).read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{path / PLAN}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise BundleError(f"{path / PLAN}: not UTF-8 text (byte {e.start})") from None
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        found = plan.get("format") if isinstance(plan, dict) else None
        raise BundleError(f"{path}: bundle format {found!r}, this mpk reads {PLAN_FORMAT!r}")
    _check_plan(path / PLAN, plan)
    for name in (CUBIN, TABLES):
        if not (path / name).is_file():
            raise BundleError(f"{path}: bundle lacks {name}")
    return Bundle(path, plan, _read_tables(path / TABLES, plan), (path / CUBIN).read_bytes())


# What the loader and the interpreter take from plan.json without looking twice.
PLAN_FIELDS = {"kernel": dict, "buffers": list, "events": list, "groups": list, "tables": dict,
               "batch": int, "max_seq": int}
KERNEL_FIELDS = {"arch": str, "num_sms": int, "threads": int, "steps": int, "num_tasks": int,
                 "num_workers": int}
BUFFER_FIELDS = {"name": str, "space": str, "shape": list, "dtype": str}


def _check_plan(file: Path, plan: dict) -> None:
    def check(record, fields: dict, where: str) -> None:
        if not isinstance(record, dict):
            raise BundleError(f"{file}: {where} is not a JSON object")
        for key, kind in fields.items():
            if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
                raise BundleError(f"{file}: {where} needs {key!r} ({kind.__name__}), found "
                                  f"{record.get(key)!r}: the file was edited or is damaged")
    check(plan, PLAN_FIELDS, "the plan")
    check(plan["kernel"], KERNEL_FIELDS, '"kernel"')
    for i, buffer in enumerate(plan["buffers"]):
        check(buffer, BUFFER_FIELDS, f'"buffers"[{i}]')
        if buffer["space"] == "weight":
            check(buffer, {"weight_name": str}, f'"buffers"[{i}]')


def _read_tables(file: Path, plan: dict) -> dict[str, np.ndarray]:
    """tables.npz, checked against the shapes plan.json records and against its kernel."""
    try:
        tables = layout.load(file)
    except Exception as e:   # not an npz, truncated, a table missing: zipfile, numpy and OS errors alike
        raise BundleError(f"{file}: cannot read the tables: {str(e).removeprefix(f'{file}: ')}") from None
    for name, record in plan["tables"].items():
        found = (list(tables[name].shape), str(tables[name].dtype)) if name in tables else None
        if isinstance(record, dict) and found and found != (record.get("shape"), record.get("dtype")):
            raise BundleError(f"{file}: table '{name}' is {found[0]} {found[1]}, plan.json records "
                              f"{record.get('shape')} {record.get('dtype')}")
    kernel = plan["kernel"]
    for name, shape in (("tasks", [kernel["num_tasks"], len(layout.TASK_FIELDS)]),
                        ("queue_offsets", [kernel["num_workers"] + 1])):
        if list(tables[name].shape) != shape:
            raise BundleError(f"{file}: table '{name}' is {list(tables[name].shape)}, the kernel in "
                              f"plan.json needs {shape}")
    return tables
