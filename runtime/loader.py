"""Load a bundle onto a GPU and run decode steps: cuda-python's driver API only.

    session = Session(bundle.read("model.mpk"))
    session.bind_weights(random_weights(session.bundle.weights(), seed=0))  # or a state dict,
    out = generate(session, prompt_ids=[1, 2, 3], steps=16)                # or load_safetensors(dir)

Runs without torch (numpy arrays everywhere; torch tensors are accepted as
inputs). Every driver call is checked; a wait that times out inside the
kernel comes back as `RuntimeTimeout` naming the stuck task.
"""

from __future__ import annotations

import ctypes
import re
import time

import ml_dtypes
import numpy as np

from mpk.errors import InputError
from mpk.runtime import tables as layout
from mpk.runtime.build import KERNEL_NAME
from mpk.runtime.bundle import Bundle

DEFAULT_TIMEOUT_S = 2.0
MPK_OK, MPK_ERROR_TIMEOUT, MPK_ERROR_STAGE_TIMEOUT, MPK_ERROR_POLL_TIMEOUT = 0, 1, 2, 3


class LoaderError(RuntimeError):
    """The bundle cannot run here, or a CUDA call failed."""


class RuntimeTimeout(LoaderError):
    """The persistent kernel gave up waiting on an event (a broken dependency table)."""


def shared_memory_plan(kernel: dict, queue_offsets: np.ndarray, max_smem: int,
                       stuck_bytes: int = 0) -> tuple[int, int]:
    """(MpkLaunch::task_cache, dynamic shared memory bytes) of a launch
    (mpk_runtime.cu: [task cache][weight records][weight ring][`stuck_bytes`][task scratch]). The
    tasks' scratch is required; so is a record per queue position of the task's
    weights (where the worker copies or prefetches them from), and the ring if the
    bundle has one. Each worker also keeps its queue's task descriptors there when
    they fit (else it reads them from global memory)."""
    scratch, ring = int(kernel.get("smem_bytes", 0)), int(kernel.get("ring_bytes", 0))
    depth = int(kernel.get("ring_depth", 0))
    if ring and not 1 <= depth <= layout.RING_MAX_DEPTH:
        raise LoaderError(f"the bundle's weight ring holds {depth} tasks, the runtime 1 to {layout.RING_MAX_DEPTH}")
    longest = int(np.diff(queue_offsets).max(initial=0))
    lines = lambda n: -(-n // 128) * 128
    records = lines(longest * layout.TASK_WEIGHTS_BYTES)
    required = scratch + ring + records + stuck_bytes
    if required > max_smem:
        raise LoaderError(f"the bundle needs {required} B of shared memory per CTA "
                          f"({scratch} B for tasks, a weight ring of {ring} B and {records} B to "
                          f"record its tasks' weights), the GPU allows {max_smem}: " +
                          ("recompile with a smaller --ring-bytes" if ring else
                           f"its longest queue holds {longest} tasks, too many for one worker"))
    cache = lines(longest * 4 * len(layout.TASK_FIELDS))   # int32 MpkTask records
    return (longest, required + cache) if required + cache <= max_smem else (0, required)


# ----------------------------------------------------------- the C structs

class MpkError(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("task", ctypes.c_int), ("worker", ctypes.c_int),
                ("smid", ctypes.c_int), ("slot", ctypes.c_int), ("step", ctypes.c_int),
                ("observed", ctypes.c_uint), ("expected", ctypes.c_uint)]


class MpkLaunch(ctypes.Structure):
    _fields_ = [("tasks", ctypes.c_uint64), ("queue_offsets", ctypes.c_uint64),
                ("queue_tasks", ctypes.c_uint64), ("event_counters", ctypes.c_uint64),
                ("buffer_ptrs", ctypes.c_uint64), ("error", ctypes.c_uint64),
                ("profile", ctypes.c_uint64), ("timeout_ns", ctypes.c_uint64),
                ("num_tasks", ctypes.c_int), ("steps", ctypes.c_int), ("prefetch", ctypes.c_uint64),
                ("ring_bytes", ctypes.c_int), ("ring_depth", ctypes.c_int), ("task_cache", ctypes.c_int),
                ("rank_distances", ctypes.c_uint64), ("ranks", ctypes.c_int), ("poll_stuck_bytes", ctypes.c_int)]


# -------------------------------------------------------------- dtypes

# numpy has no bfloat16: ml_dtypes' (the one JAX and TensorFlow use) is a numpy
# dtype whose casts round to nearest even, and whose bytes are the device's.
BF16 = np.dtype(ml_dtypes.bfloat16)

# The one table: a bundle's element type (plan.json "dtype") -> its numpy dtype.
NUMPY_DTYPES = {"bf16": BF16, "f16": np.dtype(np.float16), "f32": np.dtype(np.float32),
                "f64": np.dtype(np.float64), "i8": np.dtype(np.int8), "i32": np.dtype(np.int32),
                "i64": np.dtype(np.int64)}


def is_float(dtype) -> bool:
    """A floating-point numpy dtype, bf16 included (ml_dtypes' types are not numpy's kind 'f')."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or dtype == BF16


def host_array(value) -> np.ndarray:
    """`value` as a numpy array on the host: a torch tensor (on any device) is copied
    there, bf16 as BF16 (torch's .numpy() has no bf16: its bytes are viewed as it)."""
    if hasattr(value, "detach"):
        import torch
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            return tensor.contiguous().view(torch.int16).numpy().view(BF16)
        return tensor.numpy()
    return np.asarray(value)


def as_float32(value) -> np.ndarray:
    """A float32 copy of `value` (an array, a torch tensor): bf16 and f16 widened exactly."""
    return host_array(value).astype(np.float32)


def as_device_array(value, dtype: str, shape) -> np.ndarray:
    """A numpy array in the bundle's storage format for a buffer of `dtype` (floats cast
    with rounding to nearest even), C-contiguous: its bytes are what the device holds."""
    array = host_array(value).astype(NUMPY_DTYPES[dtype], copy=False)
    if list(array.shape) != list(shape):
        raise LoaderError(f"shape {list(array.shape)} given where the bundle needs {list(shape)}")
    return np.ascontiguousarray(array)


# ------------------------------------------------------------- the driver

def _driver():
    try:
        from cuda.bindings import driver
    except ImportError as e:
        raise LoaderError(f"cuda-python is not installed ({e})") from None
    return driver


def _check(result, what: str):
    """Unwrap a driver call's (err, *values); raise LoaderError on failure."""
    driver = _driver()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != driver.CUresult.CUDA_SUCCESS:
        _, name = driver.cuGetErrorName(err)
        _, text = driver.cuGetErrorString(err)
        decode = lambda s: s.decode() if isinstance(s, bytes) else str(s)
        raise LoaderError(f"{what} failed: {decode(name)} ({decode(text)})")
    return values[0] if len(values) == 1 else tuple(values) if values else None


def gpu_count() -> int:
    """Number of CUDA devices, 0 when there is no driver or no device."""
    try:
        driver = _driver()
        if driver.cuInit(0)[0] != driver.CUresult.CUDA_SUCCESS:
            return 0
        err, count = driver.cuDeviceGetCount()
        return count if err == driver.CUresult.CUDA_SUCCESS else 0
    except Exception:  # no libcuda: the driver library itself is missing
        return 0


def device_properties(ordinal: int = 0) -> dict:
    count = gpu_count()
    if ordinal >= count:
        raise LoaderError("no CUDA GPU here (no NVIDIA driver, or no device)" if count == 0 else
                          f"GPU {ordinal} does not exist ({count} found)")
    driver = _driver()
    device = _check(driver.cuDeviceGet(ordinal), f"cuDeviceGet({ordinal})")
    attr = lambda a: _check(driver.cuDeviceGetAttribute(a, device), f"cuDeviceGetAttribute({a.name})")
    A = driver.CUdevice_attribute
    name = _check(driver.cuDeviceGetName(64, device), "cuDeviceGetName")
    return {"device": device, "name": name.split(b"\0")[0].decode(),
            "arch": f"sm_{attr(A.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)}"
                    f"{attr(A.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)}",
            "num_sms": attr(A.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
            "max_smem_per_block": attr(A.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)}


TENSOR_MAP_BYTES = 128      # CUtensorMap, 64-byte aligned in device memory


def encode_tensor_map(address: int, buffer: dict, box: tuple[int, int]) -> bytes:
    """The TMA descriptor of a 2-D bf16 buffer at `address`, copied in boxes of
    `box` (rows, columns), 128-byte swizzled, zeros where a box passes the end
    (cuTensorMapEncodeTiled; kernels/gemm.py reads it)."""
    driver = _driver()
    rows, cols = buffer["shape"]
    if buffer["dtype"] != "bf16":
        raise LoaderError(f"a tensor map of '{buffer['name']}' ({buffer['dtype']}): only bf16 is supported")
    u64, u32 = driver.cuuint64_t, driver.cuuint32_t
    tmap = _check(driver.cuTensorMapEncodeTiled(
        driver.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, address,
        [u64(cols), u64(rows)], [u64(cols * 2)], [u32(box[1]), u32(box[0])], [u32(1), u32(1)],
        driver.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
        driver.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_128B,
        driver.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
        driver.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
        f"cuTensorMapEncodeTiled('{buffer['name']}' {rows}x{cols}, box {box[0]}x{box[1]})")
    raw = ctypes.string_at(int(tmap.getPtr()), TENSOR_MAP_BYTES)
    return raw


class DeviceBuffer:
    """One cuMemAlloc'd block; freed with the session."""

    def __init__(self, nbytes: int, what: str):
        driver = _driver()
        self.nbytes = max(int(nbytes), 1)
        self.ptr = int(_check(driver.cuMemAlloc(self.nbytes), f"cuMemAlloc({self.nbytes} B for {what})"))
        _check(driver.cuMemsetD8(self.ptr, 0, self.nbytes), f"cuMemsetD8({what})")

    def upload(self, array: np.ndarray, offset: int = 0) -> None:
        array = np.ascontiguousarray(array)
        if offset + array.nbytes > self.nbytes:
            raise LoaderError(f"{array.nbytes} B do not fit a {self.nbytes} B buffer at {offset}")
        if array.nbytes:
            _check(_driver().cuMemcpyHtoD(self.ptr + offset, array.ctypes.data, array.nbytes), "cuMemcpyHtoD")

    def copy_from_device(self, address: int, nbytes: int) -> None:
        """Device-to-device copy into this buffer (from a CUDA torch tensor, say)."""
        if nbytes > self.nbytes:
            raise LoaderError(f"{nbytes} B do not fit a {self.nbytes} B buffer")
        if nbytes:
            _check(_driver().cuMemcpyDtoD(self.ptr, address, nbytes), "cuMemcpyDtoD")

    def download(self, dtype, shape, offset: int = 0) -> np.ndarray:
        out = np.empty(shape, dtype)
        if out.nbytes:
            _check(_driver().cuMemcpyDtoH(out.ctypes.data, self.ptr + offset, out.nbytes), "cuMemcpyDtoH")
        return out


class DeviceView(DeviceBuffer):
    """Part of another allocation (a peer buffer in its rank's peer memory); not freed itself."""

    def __init__(self, ptr: int, nbytes: int):
        self.ptr, self.nbytes = ptr, max(int(nbytes), 1)


PEER_ALIGNMENT = 256


def peer_layout(plan: dict, steps: int) -> tuple[dict[str, int], int, int]:
    """Where each `peer` buffer lies in a rank's peer memory (the same on every rank: the
    other ranks store into it), then the event counters: (offsets by name, counters'
    offset, bytes in all)."""
    offsets, end = {}, 0
    for b in plan["buffers"]:
        if b["space"] == "peer":
            offsets[b["name"]] = end
            end += -(-b["nbytes"] * (steps if b.get("per_step") else 1) // PEER_ALIGNMENT) * PEER_ALIGNMENT
    slots = sum(e["size"] for e in plan["events"])
    return offsets, end, end + 4 * slots


def _storage_key(b: dict) -> str:
    """Buffers share memory by name; a rank's slice of a weight (mpk.shard) is its own."""
    key = b.get("weight_name") or b["name"]
    return f"{key}[shard]" if "shard" in b else key


def _upload_new(array: np.ndarray, what: str) -> DeviceBuffer:
    buffer = DeviceBuffer(array.nbytes, what)
    buffer.upload(array)
    return buffer


# ------------------------------------------------------------ the session

class Session:
    """A bundle loaded on one GPU: memory allocated, tables uploaded, ready to launch.

    A bundle with a prefill program gets a second Session, `prefill`: its own
    kernel, tables, workspace and io buffers, and the weights and KV caches of
    this one (`shared`, by name), so a prompt it processes is in the caches the
    decode kernel reads."""

    def __init__(self, bundle: Bundle, device: int = 0, timeout_s: float = DEFAULT_TIMEOUT_S,
                 profile: bool = False, shared: "Session | None" = None, rank: int = 0, sms: int | None = None):
        self.bundle, self.plan, self.kernel = bundle, bundle.plan, bundle.kernel
        self.rank, self.ranks = rank, bundle.tp       # a tensor-parallel rank: mpk.runtime.ranks
        self.sms = sms                                # the SMs this rank may use (default: all)
        self.timeout_s = timeout_s
        self.steps_per_launch = int(self.kernel.get("steps", 1))
        # mpk-data-flags: the range of the flagged buffers' workspace bytes (zeroed before each
        # launch), and the stuck word their pollers report through.
        flagged = [(b["offset"], b["offset"] + b["nbytes"]) for b in self.plan["buffers"]
                   if b["space"] == "workspace" and b.get("flagged")]
        self.flagged_bytes = (min(lo for lo, _ in flagged), max(hi for _, hi in flagged)) if flagged else None
        self.poll_stuck_bytes = layout.POLL_STUCK_BYTES if flagged else 0
        driver = _driver()
        self._check_device(device_properties(device))
        self._owner = shared is None              # retains the context and owns weights and states
        self.context = (_check(driver.cuDevicePrimaryCtxRetain(self.device), "cuDevicePrimaryCtxRetain")
                        if self._owner else shared.context)
        self._device_ordinal = self.device
        _check(driver.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
        self.prefill = None
        try:
            self._load_kernel()
            self._allocate(shared.storage if shared is not None else None)
            self._upload_tables()
            self.profile = (DeviceBuffer(self.steps_per_launch * self.num_tasks * 16, "profile")
                            if profile else None)
            if self._owner and bundle.prefill is not None:
                self.prefill = Session(bundle.prefill, device, timeout_s, profile=profile, shared=self)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"<loader.Session of {self.bundle!r} on {getattr(self, 'device_name', '?')}" + \
            (", closed>" if self.closed else ">")

    # -- checks and setup

    @property
    def closed(self) -> bool:
        return getattr(self, "context", None) is None

    def _check_open(self) -> None:
        if self.closed:
            raise InputError("the session is closed: its GPU memory is freed (load the bundle again)")

    @property
    def ring(self) -> tuple[int, int]:
        """The weight ring's bytes and depth (mpk-stage-weights on mpk.kernel); 0 bytes: none."""
        return int(self.kernel.get("ring_bytes", 0)), int(self.kernel.get("ring_depth", 0))

    def _check_device(self, props: dict) -> None:
        self.device, self.device_name = props["device"], props["name"]
        arch, sms = self.kernel["arch"], int(self.kernel["num_sms"])
        if props["arch"] != arch:
            raise LoaderError(f"{self.bundle.path} was compiled for {arch}, but GPU 0 ({props['name']}) "
                              f"is {props['arch']}: recompile with `mpk compile --arch {props['arch']}`")
        have = self.sms or props["num_sms"]
        if have != sms:
            share = f" of its {props['num_sms']} for each of {props['num_sms'] // have} ranks" if self.sms else ""
            raise LoaderError(f"{self.bundle.path} was scheduled for {sms} SMs, but {props['name']} has "
                              f"{have}{share}: recompile with `mpk compile --num-sms {have}`")
        self.task_cache, self.smem_bytes = shared_memory_plan(
            self.kernel, self.bundle.tables["queue_offsets"], props["max_smem_per_block"], self.poll_stuck_bytes)

    def _load_kernel(self) -> None:
        driver = _driver()
        image = np.frombuffer(self.bundle.cubin, np.uint8)
        err, module = driver.cuModuleLoadData(image.ctypes.data)
        if err != driver.CUresult.CUDA_SUCCESS:
            _, name = driver.cuGetErrorName(err)
            raise LoaderError(f"the driver refused {self.bundle.path}/kernel.cubin ({name.decode()}); it was "
                              f"linked with {self.plan.get('toolkit', 'an unknown toolkit')}: re-link it from "
                              f"the bundle's tasks.ptx and runtime/ with this machine's toolkit")
        self.module = module
        self.function = _check(driver.cuModuleGetFunction(module, KERNEL_NAME.encode()),
                               f"cuModuleGetFunction({KERNEL_NAME})")
        self.threads = int(self.kernel["threads"])
        F = driver.CUfunction_attribute
        _check(driver.cuFuncSetAttribute(self.function, F.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                         self.smem_bytes), "cuFuncSetAttribute(max dynamic shared memory)")
        # Spin-waits are only safe if every worker is resident at once.
        per_sm = _check(driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(
            self.function, self.threads, self.smem_bytes), "cuOccupancyMaxActiveBlocksPerMultiprocessor")
        if per_sm < 1:
            regs = _check(driver.cuFuncGetAttribute(F.CU_FUNC_ATTRIBUTE_NUM_REGS, self.function), "cuFuncGetAttribute")
            raise LoaderError(f"a worker of {self.threads} threads, {regs} registers/thread and "
                              f"{self.smem_bytes} B shared memory does not fit one SM: the persistent "
                              f"kernel cannot run (compile with fewer threads or less shared memory)")

    def _allocate(self, shared: dict | None = None) -> None:
        """Workspace, then one allocation per io/state/weight name (shared names share
        memory); weights and states in `shared` (another program's) are used, not allocated."""
        buffers = self.plan["buffers"]
        workspace = max([b["offset"] + b["nbytes"] for b in buffers if b["space"] == "workspace"], default=0)
        self.workspace = DeviceBuffer(workspace, "workspace")
        self.storage: dict[str, DeviceBuffer] = {}   # weight/state/io/peer name -> memory
        self.owned: set[str] = set()
        self.addresses = []
        # Peer memory: the buffers other ranks store into, then the event counters (which they bump).
        peer_offsets, counters, size = peer_layout(self.plan, self.steps_per_launch)
        self.peer_memory = DeviceBuffer(size, "peer memory and event counters")
        self.d_counters = DeviceView(self.peer_memory.ptr + counters, size - counters)
        for name, offset in peer_offsets.items():
            b = self.bundle.buffer(name)
            self.storage[name] = DeviceView(self.peer_memory.ptr + offset,
                                            b["nbytes"] * (self.steps_per_launch if b.get("per_step") else 1))
        for b in buffers:
            if b["space"] == "workspace":
                self.addresses.append(self.workspace.ptr + b["offset"])
                continue
            key = _storage_key(b)
            copies = self.steps_per_launch if b.get("per_step") else 1
            if key not in self.storage and shared is not None and b["space"] in ("weight", "state") \
                    and key in shared:
                self.storage[key] = shared[key]
            if key not in self.storage:
                self.storage[key] = DeviceBuffer(b["nbytes"] * copies, f"{b['space']} '{key}'")
                self.owned.add(key)
            elif self.storage[key].nbytes < b["nbytes"] * copies:
                raise LoaderError(f"buffers named '{key}' disagree on size")
            self.addresses.append(self.storage[key].ptr)
        self.bound_weights: set[str] = set()

    def _upload_tables(self) -> None:
        t = self.bundle.tables
        self.num_tasks = int(t["tasks"].shape[0])
        self.num_workers = int(t["queue_offsets"].shape[0] - 1)
        if self.num_workers != int(self.kernel["num_sms"]):
            raise LoaderError(f"tables have {self.num_workers} queues for {self.kernel['num_sms']} SMs")
        if t["tasks"].shape[1] != len(layout.TASK_FIELDS):
            raise LoaderError("tasks table has the wrong width for this runtime")
        addresses = np.asarray(self.addresses + self._tensor_maps(t["tensor_maps"]), np.uint64)
        self.d_tasks = _upload_new(t["tasks"].astype(np.int32), "tasks")
        self.d_queue_offsets = _upload_new(t["queue_offsets"].astype(np.int32), "queue offsets")
        self.d_queue_tasks = _upload_new(t["queue_tasks"].astype(np.int32), "queues")
        lists = np.diff(t["group_buffer_offsets"])
        if lists.size and lists.max() > layout.GROUP_BUFFERS_MAX:
            raise LoaderError(f"a group lists {lists.max()} buffers and tensor maps, this runtime "
                              f"passes at most {layout.GROUP_BUFFERS_MAX}")
        # Padded: a worker copies GROUP_BUFFERS_MAX entries of a task's list, whatever its length.
        padding = np.zeros(layout.GROUP_BUFFERS_MAX, np.uint64)
        self.d_buffer_ptrs = _upload_new(np.concatenate([addresses[t["group_buffers"]], padding]),
                                         "buffer pointers")
        self.d_prefetch = _upload_new(t["prefetch"].astype(np.int32), "prefetch table")
        self.d_error = DeviceBuffer(ctypes.sizeof(MpkError), "error record")

    def _tensor_maps(self, maps: np.ndarray) -> list[int]:
        """Encode the TMA descriptors the tables ask for (mpk-materialize), in one
        allocation, 128 bytes each; their device addresses follow the buffers'."""
        self.d_tensor_maps = None
        if len(maps) == 0:
            return []
        encoded = b"".join(encode_tensor_map(self.addresses[buffer], self.plan["buffers"][buffer], (rows, cols))
                           for buffer, rows, cols in maps.tolist())
        self.d_tensor_maps = _upload_new(np.frombuffer(encoded, np.uint8), "tensor maps")
        return [self.d_tensor_maps.ptr + TENSOR_MAP_BYTES * i for i in range(len(maps))]

    # -- memory by name

    def _storage(self, name: str) -> tuple[DeviceBuffer, dict]:
        try:
            b = self.bundle.buffer(name)
        except ValueError as e:
            raise LoaderError(str(e)) from None
        if b["space"] == "workspace":
            raise LoaderError(f"'{name}' is a workspace buffer")
        return self.storage[_storage_key(b)], b

    def write(self, name: str, value) -> None:
        """Write a weight, state or io buffer by name. A weight or KV cache of a
        tensor-parallel program is given whole: each buffer of it gets its rank's slice."""
        self._check_open()
        memory, b = self._storage(name)
        if b["space"] in ("weight", "state") and self.ranks > 1:
            for b in self.plan["buffers"]:
                if b.get("weight_name") == name:
                    self._write_buffer(self.storage[_storage_key(b)], b, self._rank_slice(b, value))
            return
        self._write_buffer(memory, b, value)

    def _rank_slice(self, b: dict, value):
        if "shard" not in b:
            return value
        from mpk.runtime.weights import slice_of
        full = self.bundle.weights()[b["weight_name"]]["shape"] if b["space"] == "weight" else None
        if full is not None and list(getattr(value, "shape", ())) != list(full):
            from mpk.runtime.weights import check_weight
            check_weight(b["weight_name"], value, {"shape": full, "dtype": b["dtype"]})
        return slice_of(b["shard"], value if hasattr(value, "shape") else np.asarray(value), self.rank)

    def _write_buffer(self, memory: DeviceBuffer, b: dict, value) -> None:
        if b["space"] == "weight":             # checked and cast to the bundle's dtype first
            from mpk.runtime.weights import weight_array
            value = weight_array(b["weight_name"], value, b)
        if getattr(value, "is_cuda", False):   # a torch tensor on this GPU: copied on the device
            if list(value.shape) != list(b["shape"]) or value.numel() * value.element_size() != b["nbytes"]:
                raise LoaderError(f"'{b['name']}': a {list(value.shape)} tensor of {value.dtype} given where "
                                  f"the bundle needs {list(b['shape'])} {b['dtype']}")
            value = value.contiguous()
            memory.copy_from_device(value.data_ptr(), value.numel() * value.element_size())
            return
        memory.upload(as_device_array(value, b["dtype"], b["shape"]))

    def read(self, name: str, as_float: bool = True) -> np.ndarray:
        """A buffer's contents ([steps, ...] for per-step buffers); bf16 as float32 unless as_float=False."""
        self._check_open()
        memory, b = self._storage(name)
        shape = ([self.steps_per_launch] if b.get("per_step") else []) + b["shape"]
        array = memory.download(NUMPY_DTYPES[b["dtype"]], shape)
        return as_float32(array) if b["dtype"] == "bf16" and as_float else array

    def bind_weights(self, weights: dict, strict: bool = True) -> None:
        """Upload weights by name, each checked by name, shape and dtype before any is
        uploaded (mpk.runtime.weights.check_weights: a WeightError); with strict, every
        weight of the bundle must be given (now or by an earlier call)."""
        from mpk.runtime.weights import check_weights
        for name in check_weights(weights, self.bundle.weights(), strict, self.bound_weights):
            self.write(name, weights[name])
            self.bound_weights.add(name)

    # -- launching

    def seconds_per_step(self, tokens, positions, steps: int, repeat: int = 5, warmup: int = 0) -> float:
        """Median seconds per step over `repeat` timed launches of `steps` steps, each
        from the same `tokens` and `positions` (after `warmup` untimed launches)."""
        times = []
        for attempt in range(warmup + repeat):
            self.write("tokens", tokens)
            self.write("positions", positions)
            seconds = self.launch(steps, timed=True)
            if attempt >= warmup:
                times.append(seconds / steps)
        return float(np.median(times))

    def launch(self, steps: int | None = None, timed: bool = False) -> float | None:
        """Run `steps` decode steps (default: the bundle's steps per launch) in one launch.

        With `timed`, returns the kernel's time in seconds between CUDA events
        recorded around the launch alone (no table upload, no host wait)."""
        steps = self.start(steps, timed=timed)
        return self.finish(steps, timed=timed)

    def prepare(self, steps: int | None = None) -> int:
        """Counters to their launch values, the error record cleared, the outputs poisoned;
        the steps the launch will run. The ranks of a tensor-parallel step all prepare
        before any starts: a started rank bumps the others' counters and fills their
        peer buffers (mpk.runtime.ranks)."""
        self._check_open()
        driver = _driver()
        steps = self.steps_per_launch if steps is None else steps
        if not 1 <= steps <= self.steps_per_launch:
            raise LoaderError(f"a launch runs 1..{self.steps_per_launch} steps, not {steps}")
        self.d_counters.upload(self.bundle.tables["event_initial"].astype(np.uint32))
        _check(driver.cuMemsetD8(self.d_error.ptr, 0, ctypes.sizeof(MpkError)), "cuMemsetD8(error)")
        if self.flagged_bytes:     # no flag of the last launch may pass for one of this launch
            lo, hi = self.flagged_bytes
            _check(driver.cuMemsetD8(self.workspace.ptr + lo, 0, hi - lo), "cuMemsetD8(flagged buffers)")
        # Poison what the launch must write (all-ones bits: NaN floats, -1 ints): an unwritten output shows.
        for b in self.plan["buffers"]:
            if b["space"] in ("io", "peer") and b.get("per_step"):
                memory = self.storage[b.get("weight_name") or b["name"]]
                _check(driver.cuMemsetD8(memory.ptr, 0xFF, memory.nbytes), f"cuMemsetD8(poison {b['name']})")
        return steps

    def start(self, steps: int | None = None, stream: int = 0, timed: bool = False,
              prepared: bool = False) -> int:
        """Launch the kernel on `stream` without waiting (`finish` waits), after `prepare`
        unless `prepared`; the steps it runs."""
        driver = _driver()
        steps = (self.steps_per_launch if steps is None else steps) if prepared else self.prepare(steps)
        distances = self.storage["peers"].ptr + 8 if self.ranks > 1 else 0     # peers: [rank, distances...]
        self._params = MpkLaunch(self.d_tasks.ptr, self.d_queue_offsets.ptr, self.d_queue_tasks.ptr,
                                 self.d_counters.ptr, self.d_buffer_ptrs.ptr, self.d_error.ptr,
                                 self.profile.ptr if self.profile else 0, int(self.timeout_s * 1e9),
                                 self.num_tasks, steps, self.d_prefetch.ptr, *self.ring, self.task_cache,
                                 distances, self.ranks, self.poll_stuck_bytes)
        args = (ctypes.c_void_p * 1)(ctypes.addressof(self._params))
        if timed:
            begin, end = self._timing_events()
            _check(driver.cuEventRecord(begin, stream), "cuEventRecord")
        _check(driver.cuLaunchKernel(self.function, self.num_workers, 1, 1, self.threads, 1, 1,
                                     self.smem_bytes, stream, ctypes.addressof(args), 0), "cuLaunchKernel")
        if timed:
            _check(driver.cuEventRecord(end, stream), "cuEventRecord")
        self._stream = stream
        return steps

    def finish(self, steps: int, timed: bool = False, wait: bool = True) -> float | None:
        """Wait for the launch `start` made (unless `wait` is False: the caller waited),
        then raise RuntimeTimeout if a worker gave up; with `timed`, its seconds."""
        driver = _driver()
        if wait:
            self._wait(steps)
        self.launched_steps = steps
        error = self.error()
        if error.code != MPK_OK:
            # Tasks that stopped midway leave their counters mid-count: zero them for the next launch.
            for b in self.plan["buffers"]:
                if b["space"] == "counters":
                    memory = self.storage[b["name"]]
                    _check(driver.cuMemsetD8(memory.ptr, 0, memory.nbytes), f"cuMemsetD8({b['name']})")
            raise RuntimeTimeout(self.describe_error(error))
        if timed:
            begin, end = self._timing_events()
            return _check(driver.cuEventElapsedTime(begin, end), "cuEventElapsedTime") / 1e3
        return None

    def error(self) -> MpkError:
        """The error record of the last launch (code MPK_OK: none)."""
        return MpkError.from_buffer_copy(self.d_error.download(np.uint8, ctypes.sizeof(MpkError)).tobytes())

    def _timing_events(self):
        if getattr(self, "_events", None) is None:
            driver = _driver()
            self._events = tuple(_check(driver.cuEventCreate(driver.CUevent_flags.CU_EVENT_DEFAULT),
                                        "cuEventCreate") for _ in range(2))
        return self._events

    def _wait(self, steps: int) -> None:
        """Synchronize, but never forever: the kernel's own timeouts should end it long before."""
        driver = _driver()
        deadline = time.monotonic() + 30.0 + 4 * self.timeout_s * steps
        while True:
            err, = driver.cuStreamQuery(getattr(self, "_stream", 0))
            if err == driver.CUresult.CUDA_SUCCESS:
                return
            if err != driver.CUresult.CUDA_ERROR_NOT_READY:
                _check((err,), "the persistent kernel")
            if time.monotonic() > deadline:
                raise LoaderError("the persistent kernel did not finish and did not report a timeout; "
                                  "the GPU context is unusable now")
            time.sleep(1e-4)

    def describe_error(self, error: MpkError) -> str:
        """The timeout record in the terms of the IR: group, task, layer, event."""
        groups = self.plan["groups"]
        group = max((g for g in groups if g["first_task"] <= error.task), key=lambda g: g["first_task"],
                    default=None)
        event = max((e for e in self.plan["events"] if e["first_slot"] <= error.slot),
                    key=lambda e: e["first_slot"], default=None)
        where = f"global task {error.task}"
        if group is not None:
            index = error.task - group["first_task"]
            layer = re.search(r"layers?[._](\d+)", group["name"])
            where = (f"task {index} of group '{group['name']}' (kind {group['kind']}"
                     f"{f', layer {layer.group(1)}' if layer else ''}, global task {error.task})")
        if error.code == MPK_ERROR_POLL_TIMEOUT:
            return (f"mpk runtime timeout: {where} on worker {error.worker} (SM {error.smid}) polled its "
                    f"flagged inputs (mpk-data-flags) {layout.POLL_LIMIT} times at step {error.step} without "
                    f"finding this step's flag: a producer of them did not run. The dependency tables "
                    f"are inconsistent.")
        if error.code == MPK_ERROR_STAGE_TIMEOUT:
            return (f"mpk runtime timeout: the weights of {where} on worker {error.worker} (SM {error.smid}) "
                    f"did not arrive in its weight ring within {self.timeout_s:g} s at step "
                    f"{error.step} (the worker's staged task {error.observed} of the launch). "
                    f"The prefetch table is inconsistent.")
        waited = (f"event '{event['name']}'[{error.slot - event['first_slot']}] (counter slot {error.slot})"
                  if event else f"counter slot {error.slot}")
        rank = f"rank {self.rank} of {self.ranks}: " if self.ranks > 1 else ""
        why = ("The dependency tables are inconsistent (a producer is missing or its trigger count is wrong)."
               if self.ranks == 1 else "Its producer did not run (in a tensor-parallel step, usually because "
               "another rank stalled).")
        if event is not None and event.get("ranks", 1) > 1:
            why = (f"Every rank's tasks trigger it ({error.observed} of the {error.expected} triggers "
                   f"arrived): a peer rank died, stopped or never started.")
        return (f"mpk runtime timeout: {rank}{where} on worker {error.worker} (SM {error.smid}) waited "
                f"{self.timeout_s:g} s at step {error.step} for {waited}: counter is {error.observed}, "
                f"needs {error.expected}. {why}")

    def profile_ns(self, steps: int | None = None) -> np.ndarray:
        """[steps, num_tasks, 2] start/end globaltimer ns of the last launch (profile=True);
        `steps` defaults to the steps that launch ran (mpk.runtime.trace draws them)."""
        if self.profile is None:
            raise LoaderError("profiling is off: create the Session with profile=True")
        steps = getattr(self, "launched_steps", self.steps_per_launch) if steps is None else steps
        return self.profile.download(np.uint64, (self.steps_per_launch, self.num_tasks, 2))[:steps]

    def close(self) -> None:
        driver = _driver()
        if getattr(self, "prefill", None) is not None:
            self.prefill.close()
            self.prefill = None
        for event in getattr(self, "_events", None) or ():
            driver.cuEventDestroy(event)
        self._events = None
        if getattr(self, "module", None) is not None:
            driver.cuModuleUnload(self.module)
            self.module = None
        for name in ("workspace", "d_tasks", "d_queue_offsets", "d_queue_tasks", "d_buffer_ptrs", "d_prefetch",
                     "peer_memory", "d_error", "profile", "d_tensor_maps"):
            b = getattr(self, name, None)
            if b is not None:
                driver.cuMemFree(b.ptr)
                setattr(self, name, None)
        for key, b in getattr(self, "storage", {}).items():
            if key in getattr(self, "owned", ()):
                driver.cuMemFree(b.ptr)
        self.storage = {}
        if getattr(self, "context", None) is not None and getattr(self, "_owner", False):
            driver.cuDevicePrimaryCtxRelease(self._device_ordinal)
        self.context = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------ decoding

class PromptError(LoaderError, ValueError):
    """A prompt the bundle cannot take (rows, token ids, length); the message says why."""


def _split_rows(prompt_ids) -> list[np.ndarray]:
    """The rows of a prompt, unchecked: of a [n] or [B, n] array (or torch tensor), or of
    B sequences of any lengths (anything else comes back as one row to be refused)."""
    try:
        array = host_array(prompt_ids)
        ragged = array.dtype == object
    except ValueError:                                   # numpy refuses ragged nesting
        ragged = True
    if ragged:
        return [np.asarray(row) for row in prompt_ids]
    return list(np.atleast_2d(array)) if array.ndim in (1, 2) and array.size else [array]


def prompt_rows(prompt_ids, batch: int, vocab_size: int | None = None) -> list[np.ndarray]:
    """The prompt checked, as one int64 row of token ids per sequence: `prompt_ids` is
    [n] or [1, n] (the same prompt for every sequence), [batch, n], or `batch`
    sequences of any lengths (lists, arrays, a torch tensor), of ids in
    [0, vocab_size) where that is known. Anything else is a PromptError."""
    rows = _split_rows(prompt_ids)
    if len(rows) not in (1, batch):
        raise PromptError(f"prompt_ids has {len(rows)} rows; the bundle decodes {batch} sequences "
                          f"(give {batch} rows, or one for all)")
    for row in rows:
        if row.ndim != 1 or row.size == 0 or not np.issubdtype(row.dtype, np.integer):
            raise PromptError(f"prompt_ids must be a non-empty row, or one row per sequence, of int token "
                              f"ids; got a row of shape {list(row.shape)} of {row.dtype}")
        if vocab_size is not None and not ((0 <= row) & (row < vocab_size)).all():
            raise PromptError(f"prompt_ids must be token ids in [0, {vocab_size})")
    return [row.astype(np.int64) for row in rows] * (batch // len(rows))


def check_length(prompt_len: int, new_tokens: int, max_seq: int) -> None:
    """A prompt of `prompt_len` tokens and `new_tokens` more fit the KV cache, or a PromptError."""
    if prompt_len + new_tokens > max_seq:
        raise PromptError(f"{prompt_len} prompt + {new_tokens} new tokens exceed the bundle's max_seq ({max_seq})")


def sampling_arrays(batch: int, sampling: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """The `sample_params` [B, 4] and `sample_seeds` [B] io buffers for `sampling`
    (temperature, top_k, top_p, min_p, seed: each a value for all sequences or one
    per sequence; None or missing: greedy, seed 0). Bad values raise LoaderError."""
    from mpk import sampling as spec
    sampling = {k: v for k, v in (sampling or {}).items() if v is not None}
    unknown = set(sampling) - set(spec.PARAMS) - {"seed"}
    if unknown:
        raise LoaderError(f"unknown sampling parameter(s) {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(spec.PARAMS)}, seed)")
    try:
        params = spec.pack_params(**{k: v for k, v in sampling.items() if k != "seed"}, batch=batch)
        seeds = np.broadcast_to(np.asarray(sampling.get("seed", 0), np.int64), (batch,))
    except ValueError as e:
        raise LoaderError(f"sampling: {e}") from None
    if params.shape[0] != batch:
        raise LoaderError(f"sampling parameters for {params.shape[0]} sequences, the bundle decodes {batch}")
    if ((seeds < 0) | (seeds >= 2**32)).any():
        raise LoaderError("a sampling seed must be in [0, 2**32)")
    return params, (seeds.astype(np.uint64) & 0xFFFFFFFF).astype(np.uint32).view(np.int32)


def _has(bundle, name: str) -> bool:
    return any(name in (b["name"], b.get("weight_name")) for b in bundle.plan["buffers"])


def generate(backend, prompt_ids, steps: int, eos_token_id=None, sampling: dict | None = None,
             on_tokens=None) -> dict[str, np.ndarray]:
    """Run each sequence's prompt, then decode `steps` tokens (greedy, or sampled).

    Prompts may differ in length (`prompt_rows`). With a prefill program
    (`backend.prefill`, the bundle's `prefill/`) and a prompt of more than one
    token, the prompts go through it in chunks of `prefill_chunk` rows per
    sequence (`_prefill`), which gives every sequence its first new token;
    decoding then starts at each sequence's own position. Without one, the
    prompts go through the decode kernel one token per launch, every sequence
    at the same position (a sequence whose prompt has ended feeds its own last
    token), then `steps_per_launch` steps a launch.

    `sampling`: mpk.sampling's parameters (`sampling_arrays`); the draws depend
    on (seed, position), so both paths sample the same tokens from the same
    logits. With `eos_token_id` (an id or a list of ids), decoding stops after
    the launch in which every row has produced one; a row's tokens after its
    EOS read that EOS, and the result ends at the step where the last row
    finished. `on_tokens(tokens)` is called with each batch of new tokens as
    they arrive ([B] or [n, B] int64; the raw tokens, EOS handling is the caller's).

    `backend` is a Session or anything with its `bundle`, `steps_per_launch`,
    `write`, `read`, `launch(steps)` and `prefill` (the CPU task interpreter's
    runner). io buffers by name: `tokens` and `positions` (written by the
    host before a launch; later steps of a launch feed themselves),
    `next_tokens` and `logits` (one copy per step). Returns {"tokens": [steps,
    B] (row i's new tokens, whatever its prompt length), "logits": [steps, B,
    V] (the logits that chose them), "prompt_logits": [n - 1, B, V] (the
    positions before the longest prompt's last token, n its length; only from
    the token-by-token path or an all-logits prefill), "prefill_seconds"}.
    """
    bundle = backend.bundle
    try:
        batch = bundle.buffer("tokens")["shape"][0]
        bundle.buffer("positions")
    except ValueError as e:
        raise LoaderError(f"{e}: not a decoder bundle") from None
    rows = prompt_rows(prompt_ids, batch, (bundle.plan.get("model") or {}).get("vocab_size"))
    lengths = np.array([len(r) for r in rows])
    longest = int(lengths.max())
    max_seq = int(bundle.plan.get("max_seq", 1 << 30))
    check_length(longest, steps, max_seq)
    names = {b["name"] for b in bundle.plan["buffers"]} | {b.get("weight_name") for b in bundle.plan["buffers"]}
    outputs = [n for n in ("next_tokens", "logits") if n in names and bundle.buffer(n).get("per_step")]
    if "next_tokens" not in outputs:
        raise LoaderError("the bundle has no per-step 'next_tokens' io buffer to read generated tokens from")
    eos = None if eos_token_id is None else np.atleast_1d(np.asarray(eos_token_id, np.int64))
    params, seeds = sampling_arrays(batch, sampling)
    if _has(bundle, "sample_params"):
        backend.write("sample_params", params)
        backend.write("sample_seeds", seeds)
    elif sampling and np.any(params[:, 0] > 0):
        raise LoaderError("this bundle decodes greedily (compiled without mpk-sample): recompile it to sample")
    notify = on_tokens or (lambda tokens: None)
    prefill = getattr(backend, "prefill", None)
    columns = np.arange(batch)
    start = time.perf_counter()

    if prefill is not None and longest > 1:
        first, first_logits, prompt_logits = _prefill(prefill, rows, lengths, params, seeds, max_seq)
        prefill_seconds = time.perf_counter() - start
        notify(first.astype(np.int64))
        produced = {"next_tokens": [first[None]]}
        if "logits" in outputs and first_logits is not None:
            produced["logits"] = [first_logits[None]]
        position, tokens = lengths.copy(), first
        made = 1
        while made < steps and not _all_ended(produced["next_tokens"], eos, np.zeros(batch, np.int64)):
            n = min(backend.steps_per_launch, steps - made)
            backend.write("tokens", tokens)
            backend.write("positions", position)
            backend.launch(n)
            for name in outputs:
                if name in produced:
                    produced[name].append(backend.read(name)[:n])
            new = produced["next_tokens"][-1]
            notify(new.astype(np.int64))
            tokens, position, made = new[-1], position + n, made + n
        result = {name: np.concatenate(chunks)[:steps] for name, chunks in produced.items()}
        out = {"tokens": _end_at_eos(result["next_tokens"], eos, steps)}
        if "logits" in result:
            out["logits"] = result["logits"][:len(out["tokens"])]
            if prompt_logits is not None:
                out["prompt_logits"] = prompt_logits
        out["prefill_seconds"] = prefill_seconds
        return out

    prompt = np.zeros((batch, longest), np.int64)
    for i, r in enumerate(rows):
        prompt[i, :len(r)] = r
    first = lengths - 1                  # the position whose output is a row's first new token
    end = longest - 1 + steps            # positions 0..end-1 run

    def run(tokens, position, n):
        backend.write("tokens", tokens)
        backend.write("positions", np.full(batch, position))
        backend.launch(n)
        return {name: backend.read(name)[:n] for name in outputs}

    per_position = {name: [] for name in outputs}
    position, last = 0, prompt[:, 0]
    prefill_seconds = None
    streaming = bool((lengths == longest).all())   # else rows start generating at different steps
    while position < end:
        # A launch feeds its later steps from its own outputs: right once every row generates.
        n = 1 if position < longest - 1 else min(backend.steps_per_launch, end - position)
        tokens = np.where(position < lengths, prompt[:, min(position, longest - 1)], last)
        step = run(tokens, position, n)
        for name in outputs:
            per_position[name].append(step[name])
        if position + n > longest - 1:
            if prefill_seconds is None:
                prefill_seconds = time.perf_counter() - start
            if streaming:
                notify(step["next_tokens"][max(longest - 1 - position, 0):].astype(np.int64))
        last, position = step["next_tokens"][-1], position + n
        if _all_ended(per_position["next_tokens"], eos, first):
            break
    produced = {name: np.concatenate(chunks) for name, chunks in per_position.items()}
    ran = len(produced["next_tokens"])
    index = first[None, :] + np.arange(steps)[:, None]    # [steps, B]: the position of row i's new token
    tokens = produced["next_tokens"][np.minimum(index, ran - 1), columns]
    if eos is not None:
        tokens = np.where(index < ran, tokens, eos[0])   # past the early stop every row has ended
    result = {"tokens": _end_at_eos(tokens, eos, steps)}
    if not streaming:
        notify(result["tokens"].astype(np.int64))
    if "logits" in produced:
        logits = produced["logits"]
        result["logits"] = logits[np.minimum(index, ran - 1), columns][:len(result["tokens"])]
        result["prompt_logits"] = logits[:longest - 1]
    result["prefill_seconds"] = prefill_seconds
    return result


def _all_ended(chunks, eos, first) -> bool:
    """Has every row produced an EOS at or after its first new position?"""
    if eos is None:
        return False
    produced = np.concatenate(chunks)
    new = np.arange(len(produced))[:, None] >= first[None, :]
    return bool((np.isin(produced, eos) & new).any(axis=0).all())


def _end_at_eos(tokens: np.ndarray, eos, steps: int) -> np.ndarray:
    """Tokens after a row's first EOS read that EOS; the result ends where every row has ended."""
    if eos is None:
        return tokens
    hit = np.isin(tokens, eos)
    finished = np.maximum.accumulate(hit, axis=0)
    first_eos = np.where(hit.any(axis=0), tokens[np.argmax(hit, axis=0), np.arange(tokens.shape[1])], eos[0])
    tokens = np.where(finished, first_eos[None, :], tokens)
    if finished[-1].all():
        tokens = tokens[:int(np.argmax(finished.all(axis=1))) + 1]
    return tokens


def chunk_starts(longest: int, chunk: int, max_seq: int) -> list[int]:
    """First positions of the prefill chunks covering positions 0..longest-1: every
    `chunk` rows, the last one moved back to end at the cache's end if it would
    pass it (its first rows are then recomputed: the same tokens at the same
    positions, the same keys written again)."""
    return [min(start, max_seq - chunk) for start in range(0, longest, chunk)]


def _prefill(runner, rows, lengths, params, seeds, max_seq: int):
    """The prompts through the prefill program, chunk by chunk (mpk-prefill): row
    b * C + i of a chunk starting at s is sequence b's prompt token s + i at
    position s + i, or, past its prompt, padding (its last token again, the
    positions going on: keys written beyond the prompt, where decoding writes
    before it reads). Returns (first new token [B], its logits [B, V] or None,
    prompt logits [n - 1, B, V] (all-logits bundles) or None)."""
    bundle = runner.bundle
    C = int(bundle.buffer("tokens")["shape"][0]) // len(rows)
    batch = len(rows)
    all_logits = _has(bundle, "logits") and bundle.buffer("logits")["shape"][0] == batch * C
    longest = int(lengths.max())
    last = lengths - 1
    first = np.zeros(batch, np.int64)
    first_logits, prompt = None, [] if all_logits else None
    if _has(bundle, "sample_params"):
        runner.write("sample_params", params)
        runner.write("sample_seeds", seeds)
    for s in chunk_starts(longest, C, max_seq):
        positions = s + np.arange(C)
        tokens = np.stack([r[np.minimum(positions, len(r) - 1)] for r in rows])     # [B, C]
        here = (s <= last) & (last < s + C)
        last_rows = np.arange(batch) * C + np.where(here, last - s, 0)
        runner.write("tokens", tokens.reshape(-1))
        runner.write("positions", np.tile(positions, batch))
        runner.write("last_rows", last_rows)
        if _has(bundle, "last_positions"):
            runner.write("last_positions", np.where(here, last, s))
        if _has(bundle, "row_counts"):          # the rest of a sequence's rows is padding
            runner.write("row_counts", np.clip(lengths - s, 0, C))
        runner.launch(1)
        token = runner.read("next_tokens")[0]
        first = np.where(here, token, first)
        # A chunk holding no sequence's last row has no logits anyone reads (bar all-logits):
        # their download and conversion cost milliseconds at a large vocabulary and batch.
        if _has(bundle, "logits") and (all_logits or here.any()):
            logits = runner.read("logits")[0]
            chosen = logits.reshape(batch, C, -1)[np.arange(batch), last_rows - np.arange(batch) * C] \
                if all_logits else logits
            first_logits = chosen if first_logits is None else np.where(here[:, None], chosen, first_logits)
            if all_logits:
                prompt.append((s, logits.reshape(batch, C, -1)))
    if prompt is not None:           # positions 0..longest-2, each from the last chunk that ran it
        V = prompt[0][1].shape[-1]
        out = np.zeros((max(longest - 1, 0), batch, V), np.float32)
        for s, chunk in prompt:
            upto = min(longest - 1, s + C)
            if upto > s:
                out[s:upto] = chunk[:, :upto - s].transpose(1, 0, 2)
        prompt = out
    return first, first_logits, prompt
