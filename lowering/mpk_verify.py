"""`mpk-verify`: the semantic verifier (mpk.dialects.verify) as a pass."""

from __future__ import annotations

import dataclasses

from mpk.dialects.verify import verify
from mpk.lowering import ModulePass


@dataclasses.dataclass
class MpkVerify(ModulePass):
    name = "mpk-verify"
    summary = "check shapes, tiles, events and the event graph of mpk IR"
    preserves_analyses = True

    def run(self, module) -> None:
        if not verify(module):
            self.failed = True
