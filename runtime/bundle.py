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

from mpk.runtime import tables as layout

PLAN_FORMAT = "mpk-bundle/1"
CUBIN, PTX, TASK_IR, TABLES, PLAN = "kernel.cubin", "tasks.ptx", "tasks.mlir", "tables.npz", "plan.json"
RUNTIME_DIR = "runtime"


class BundleError(ValueError):
    """A bundle is missing, incomplete or of another format."""


@dataclasses.dataclass
class Bundle:
    path: Path
    plan: dict
    tables: dict[str, np.ndarray]
    cubin: bytes

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
        """Weight name -> {shape, dtype}: what a checkpoint must provide."""
        return {b["weight_name"]: {"shape": b["shape"], "dtype": b["dtype"]}
                for b in self.plan["buffers"] if b["space"] == "weight"}

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
    if path.exists():
        if not (path / PLAN).exists():
            raise BundleError(f"{path} exists and is not a bundle; not overwriting it")
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
    path = Path(path)
    if not (path / PLAN).is_file():
        raise BundleError(f"{path} is not an mpk bundle (no {PLAN}); make one with `mpk compile`")
    plan = json.loads((path / PLAN).read_text())
    if plan.get("format") != PLAN_FORMAT:
        raise BundleError(f"{path}: bundle format {plan.get('format')!r}, this mpk reads {PLAN_FORMAT!r}")
    for name in (CUBIN, TABLES):
        if not (path / name).is_file():
            raise BundleError(f"{path}: bundle lacks {name}")
    return Bundle(path, plan, layout.load(path / TABLES), (path / CUBIN).read_bytes())
