"""The one table of a compile's defaults: the CLI, the API, the driver's
`Options` and the passes' options all read it. Plain Python: the CLI reads
it before it imports torch or MLIR."""

BATCH = 1                      # sequences decoded together
MAX_SEQ = 4096                 # KV cache rows
DTYPES = ("bfloat16", "float16", "float32")   # of weights, activations and KV caches
DTYPE = "bfloat16"
ARCH = "sm_90"
NUM_SMS = 132                  # an H100 SXM's and an H200's
THREADS = 512                  # per worker CTA
TASK_SMEM_BYTES = 96 * 1024    # shared memory of a decode task (mpk-lower-tasks' scratch)
STEPS = 16                     # decode steps per launch
PREFILL_CHUNK = 256            # prompt rows per sequence and prefill launch
DATA_FLAG_ROWS = 8             # mpk-data-flags{max-rows}: activations of at most this many rows carry flags
