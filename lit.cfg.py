# lit configuration: `lit test/` runs every test/**/*.mlir with RUN lines.
import os
import shutil
import sys

import lit.formats

from mpk.lowering import FUSIONS

config.name = "mpk"
config.test_format = lit.formats.ShTest()
config.suffixes = [".mlir"]
# Only test/ holds tests: `lit test` (or `lit .`).
config.excludes = ["Inputs", "dialects", "lowering", "runtime", "mpk", "bench", "cmake", "build", ".bundles"]

# The tools of this checkout's environment, whatever is on PATH.
bindir = os.path.dirname(sys.executable)


def tool(name):
    path = os.path.join(bindir, name)
    return path if os.path.exists(path) else (shutil.which(name) or name)


# The graph fusions that the driver runs before mpk-partition.
config.substitutions.append(("%fusions", ",".join(FUSIONS)))
config.substitutions.append(("%python", sys.executable))
config.substitutions.append(("mpk-opt", tool("mpk-opt")))
config.substitutions.append(("filecheck", tool("filecheck")))
config.environment["PYTHONDONTWRITEBYTECODE"] = "1"
for var in ("HOME", "PATH", "TMPDIR"):
    if var in os.environ:
        config.environment[var] = os.environ[var]
