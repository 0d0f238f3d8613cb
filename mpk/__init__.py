"""mpk: compile the decode step of a PyTorch LLM into one persistent GPU kernel.

    import mpk
    bundle = mpk.compile("qwen3-demo")                  # needs MLIR, no GPU
    session = mpk.load(bundle, weights=0)               # the GPU if there is one, else the CPU interpreter
    print(session.generate([1, 2, 3], max_new_tokens=16).tokens)

The API lives in mpk.api; `import mpk` itself imports nothing heavy (no
torch, no MLIR): the names below load on first use.
"""

__all__ = ["compile", "load", "Session", "Generation"]


def __getattr__(name: str):
    if name in __all__:
        from mpk import api
        return getattr(api, name)
    raise AttributeError(f"module 'mpk' has no attribute {name!r}")
