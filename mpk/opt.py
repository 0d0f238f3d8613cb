"""mpk-opt: parse, verify, transform and print mpk IR, with mlir-opt's conventions.

    mpk-opt input.mlir --pass-pipeline='builtin.module(mpk-verify,canonicalize)' -o out.mlir

Exit code 0 on success, 1 with `file:line:col: error: ...` diagnostics on
malformed input or a failing pass, 2 on bad command-line usage. A bug (an
exception out of a pass) is one `internal error` line, exit code 1; with
MPK_DEBUG=1 its traceback. Imports no torch: a pass that needs it imports it
when it runs.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from mlir import ir

from mpk import dialects, lowering
from mpk.diagnostics import Collector, check_expected, print_diags
from mpk.dialects.verify import verify
from mpk.pipeline import PipelineError, build

SPLIT_MARKER = re.compile(r"^// -----.*$", re.MULTILINE)


def _pass_list() -> str:
    lines = ["registered mpk passes (mix freely with upstream MLIR passes):"]
    for name, cls in lowering.passes().items():
        lines.append(f"  {name:<24} {cls.summary}")
        for f in cls.options():
            lines.append(f"      {cls.option_name(f)}={f.type if isinstance(f.type, str) else f.type.__name__}"
                         f" (default {cls.option_default(f)})")
    return "\n".join(lines)


def _flag(parser, name: str, **kw):
    """mlir-opt takes long options with one dash or two; so do we."""
    parser.add_argument(f"-{name}", f"--{name}", **kw)


class _Parser(argparse.ArgumentParser):
    def format_help(self) -> str:
        self.epilog = _pass_list()      # imports every pass: only for the help (a run imports those it names)
        return super().format_help()


def make_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mpk-opt", description="mpk's mlir-opt: parse, verify, run a pass pipeline, print.",
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", default="-", help="input file ('-' or none: stdin)")
    p.add_argument("-o", dest="output", default="-", help="output file (default stdout)")
    _flag(p, "pass-pipeline", default="", metavar="PIPELINE",
          help="e.g. 'builtin.module(mpk-verify,canonicalize)'")
    p.add_argument("-p", dest="pass_pipeline", help=argparse.SUPPRESS)
    _flag(p, "split-input-file", action="store_true", help="process each '// -----' chunk on its own")
    _flag(p, "verify-diagnostics", action="store_true",
          help="check diagnostics against expected-error/warning/note/remark annotations")
    _flag(p, "allow-unregistered-dialect", action="store_true", help="parse ops of unknown dialects (torch IR)")
    _flag(p, "mlir-print-ir-after-all", action="store_true", help="print the IR after every pass (stderr)")
    _flag(p, "mlir-print-ir-before-all", action="store_true", help="print the IR before every pass (stderr)")
    _flag(p, "mlir-print-ir-before", default="", metavar="PASSES",
          help="print the IR before these top-level passes (comma-separated pipeline names)")
    _flag(p, "mlir-print-ir-after", default="", metavar="PASSES",
          help="print the IR after these top-level passes (comma-separated pipeline names)")
    _flag(p, "mlir-print-op-generic", action="store_true", help="print every op in generic form")
    _flag(p, "mlir-print-debuginfo", action="store_true", help="print locations")
    _flag(p, "no-verify", action="store_true", help="skip mpk's semantic verifier after parsing")
    return p


def _dump(module: ir.Module, header: str, args) -> None:
    print(f"// -----// IR Dump {header} //----- //", file=sys.stderr)
    print(_render(module, args), file=sys.stderr)


def _render(module: ir.Module, args) -> str:
    return module.operation.get_asm(print_generic_op_form=args.mlir_print_op_generic,
                                    enable_debug_info=args.mlir_print_debuginfo)


def _run_pipeline(module: ir.Module, args) -> None:
    """Run --pass-pipeline; raises MLIRError or PipelineError."""
    before = {n.strip() for n in args.mlir_print_ir_before.split(",") if n.strip()}
    after = {n.strip() for n in args.mlir_print_ir_after.split(",") if n.strip()}
    pm, names = build(args.pass_pipeline, module.context)
    unknown = (before | after) - set(names)
    if unknown:
        raise PipelineError(f"--mlir-print-ir-before/after names {', '.join(sorted(unknown))}, "
                            f"not a pass of this pipeline ({', '.join(names)})")
    if args.mlir_print_ir_after_all or args.mlir_print_ir_before_all:
        module.context.enable_multithreading(False)      # MLIR's IR printer requires it
        pm.enable_ir_printing(print_before_all=args.mlir_print_ir_before_all,
                              print_after_all=args.mlir_print_ir_after_all, print_module_scope=True,
                              print_generic_op_form=args.mlir_print_op_generic,
                              enable_debug_info=args.mlir_print_debuginfo)
    if not (before or after):
        pm.run(module.operation)
        return
    # Per-pass printing: run the top-level elements one at a time.
    from mpk.pipeline import parse_elements
    for element, name in zip(parse_elements(args.pass_pipeline), names):
        if name in before:
            _dump(module, f"Before {name}", args)
        build(f"builtin.module({element})", module.context)[0].run(module.operation)
        if name in after:
            _dump(module, f"After {name}", args)


def process_chunk(source: str, display_name: str, args) -> tuple[bool, str | None]:
    """Parse, verify and transform one input; returns (ok, printed output)."""
    ctx = dialects.context()
    ctx.allow_unregistered_dialects = args.allow_unregistered_dialect
    collector = Collector(ctx)
    output = None
    module = None
    with ctx, ir.Location.unknown():
        with collector.catching():
            module = dialects.parse(source)
        if module is not None and not collector.has_errors and not args.no_verify:
            verify(module)
        if module is not None and not collector.has_errors and args.pass_pipeline:
            try:
                with collector.catching():
                    _run_pipeline(module, args)
            except PipelineError as e:
                print(f"mpk-opt: error: {e}", file=sys.stderr)
                collector.detach()
                raise SystemExit(1)
        if module is not None and not collector.has_errors:
            output = _render(module, args)
    collector.detach()
    if args.verify_diagnostics:
        problems = check_expected(collector.diags, source, display_name)
        for line in problems:
            print(line, file=sys.stderr)
        return not problems, output
    print_diags(collector.diags, display_name, source)
    return not collector.has_errors, output


def split_chunks(text: str) -> list[str]:
    """'// -----' chunks, each padded with blank lines so line numbers stay those of the file."""
    chunks, start, offset_lines = [], 0, 0
    for m in SPLIT_MARKER.finditer(text):
        chunks.append("\n" * offset_lines + text[start:m.start()])
        offset_lines += text[start:m.end()].count("\n")
        start = m.end()
    chunks.append("\n" * offset_lines + text[start:])
    return chunks


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    display_name = "<stdin>" if args.input == "-" else args.input
    try:
        data = sys.stdin.buffer.read() if args.input == "-" else open(args.input, "rb").read()
    except OSError as e:
        print(f"mpk-opt: error: cannot read '{args.input}': {e.strerror}", file=sys.stderr)
        return 1
    # Bytes that are not UTF-8 survive decoding; parsing reports the first one, located.
    text = data.decode("utf-8", errors="surrogateescape")
    chunks = split_chunks(text) if args.split_input_file else [text]
    ok, outputs = True, []
    for chunk in chunks:
        try:
            chunk_ok, output = process_chunk(chunk, display_name, args)
        except SystemExit as e:
            return int(e.code or 1)
        except Exception as e:
            if os.environ.get("MPK_DEBUG"):
                raise
            print(f"{display_name}: internal error: {type(e).__name__}: {e} (a bug in mpk-opt or a pass; "
                  "MPK_DEBUG=1 shows the traceback)", file=sys.stderr)
            return 1
        ok &= chunk_ok
        if output is not None:
            outputs.append(output)
    rendered = "// -----\n".join(outputs)
    if args.output == "-":
        sys.stdout.write(rendered)
    else:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(rendered)
        except OSError as e:
            print(f"mpk-opt: error: cannot write '{args.output}': {e.strerror}", file=sys.stderr)
            return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
