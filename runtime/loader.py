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

import numpy as np

from mpk.runtime import tables as layout
from mpk.runtime.build import KERNEL_NAME
from mpk.runtime.bundle import Bundle

DEFAULT_TIMEOUT_S = 2.0
MPK_OK, MPK_ERROR_TIMEOUT, MPK_ERROR_STAGE_TIMEOUT = 0, 1, 2


class LoaderError(RuntimeError):
    """The bundle cannot run here, or a CUDA call failed."""


class RuntimeTimeout(LoaderError):
    """The persistent kernel gave up waiting on an event (a broken dependency table)."""


def shared_memory_plan(kernel: dict, queue_offsets: np.ndarray, max_smem: int) -> tuple[int, int]:
    """(MpkLaunch::task_cache, dynamic shared memory bytes) of a launch
    (mpk_runtime.cu: [task cache][stage 0][stage 1][task scratch]). The tasks'
    scratch and the weight stages are required; each worker also keeps its
    queue's task descriptors there when they fit (else it reads them from
    global memory)."""
    required = int(kernel.get("smem_bytes", 0)) + 2 * int(kernel.get("stage_bytes", 0))
    if required > max_smem:
        raise LoaderError(f"the bundle needs {required} B of shared memory per CTA "
                          f"({kernel.get('smem_bytes', 0)} B for tasks, two weight stages of "
                          f"{kernel.get('stage_bytes', 0)} B), the GPU allows {max_smem}: recompile "
                          f"with a smaller --stage-bytes")
    longest = int(np.diff(queue_offsets).max(initial=0))
    cache = -(-longest * 4 * len(layout.TASK_FIELDS) // 128) * 128   # int32 MpkTask records
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
                ("stage_bytes", ctypes.c_int), ("task_cache", ctypes.c_int)]


# -------------------------------------------------------------- dtypes

NUMPY_DTYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "i32": np.int32,
                "i64": np.int64, "i8": np.int8, "bf16": np.uint16}  # bf16 travels as raw bits


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float -> bf16 bit patterns (round to nearest even)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype(np.uint16)


def from_bf16_bits(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def as_device_array(value, dtype: str, shape) -> np.ndarray:
    """A numpy array in the bundle's storage format for a buffer of `dtype`."""
    if hasattr(value, "detach"):  # a torch tensor: bf16 has no numpy twin, go through its bits
        import torch
        t = value.detach().cpu().contiguous()
        if dtype == "bf16":
            value = t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        else:
            value = t.numpy()
    array = np.asarray(value)
    if dtype == "bf16" and array.dtype != np.uint16:
        array = to_bf16_bits(array.astype(np.float32))
    else:
        array = array.astype(NUMPY_DTYPES[dtype], copy=False)
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


def _upload_new(array: np.ndarray, what: str) -> DeviceBuffer:
    buffer = DeviceBuffer(array.nbytes, what)
    buffer.upload(array)
    return buffer


# ------------------------------------------------------------ the session

class Session:
    """A bundle loaded on one GPU: memory allocated, tables uploaded, ready to launch."""

    def __init__(self, bundle: Bundle, device: int = 0, timeout_s: float = DEFAULT_TIMEOUT_S,
                 profile: bool = False):
        self.bundle, self.plan, self.kernel = bundle, bundle.plan, bundle.kernel
        self.timeout_s = timeout_s
        self.steps_per_launch = int(self.kernel.get("steps", 1))
        driver = _driver()
        self._check_device(device_properties(device))
        self.context = _check(driver.cuDevicePrimaryCtxRetain(self.device), "cuDevicePrimaryCtxRetain")
        self._device_ordinal = self.device
        _check(driver.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
        self._load_kernel()
        self._allocate()
        self._upload_tables()
        self.profile = (DeviceBuffer(self.steps_per_launch * self.num_tasks * 16, "profile")
                        if profile else None)

    # -- checks and setup

    @property
    def stage_bytes(self) -> int:
        return int(self.kernel.get("stage_bytes", 0))

    def _check_device(self, props: dict) -> None:
        self.device, self.device_name = props["device"], props["name"]
        arch, sms = self.kernel["arch"], int(self.kernel["num_sms"])
        if props["arch"] != arch:
            raise LoaderError(f"{self.bundle.path} was compiled for {arch}, but GPU 0 ({props['name']}) "
                              f"is {props['arch']}: recompile with `mpk compile --arch {props['arch']}`")
        if props["num_sms"] != sms:
            raise LoaderError(f"{self.bundle.path} was scheduled for {sms} SMs, but {props['name']} has "
                              f"{props['num_sms']}: recompile with `mpk compile --num-sms {props['num_sms']}`")
        self.task_cache, self.smem_bytes = shared_memory_plan(
            self.kernel, self.bundle.tables["queue_offsets"], props["max_smem_per_block"])

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

    def _allocate(self) -> None:
        """Workspace, then one allocation per io/state/weight name (shared names share memory)."""
        buffers = self.plan["buffers"]
        workspace = max([b["offset"] + b["nbytes"] for b in buffers if b["space"] == "workspace"], default=0)
        self.workspace = DeviceBuffer(workspace, "workspace")
        self.storage: dict[str, DeviceBuffer] = {}   # weight/state/io name -> memory
        self.addresses = []
        for b in buffers:
            if b["space"] == "workspace":
                self.addresses.append(self.workspace.ptr + b["offset"])
                continue
            key = b.get("weight_name") or b["name"]
            copies = self.steps_per_launch if b.get("per_step") else 1
            if key not in self.storage:
                self.storage[key] = DeviceBuffer(b["nbytes"] * copies, f"{b['space']} '{key}'")
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
        addresses = np.asarray(self.addresses, np.uint64)
        self.d_tasks = _upload_new(t["tasks"].astype(np.int32), "tasks")
        self.d_queue_offsets = _upload_new(t["queue_offsets"].astype(np.int32), "queue offsets")
        self.d_queue_tasks = _upload_new(t["queue_tasks"].astype(np.int32), "queues")
        self.d_buffer_ptrs = _upload_new(addresses[t["group_buffers"]], "buffer pointers")
        self.d_prefetch = _upload_new(t["prefetch"].astype(np.int32), "prefetch table")
        self.d_counters = DeviceBuffer(t["event_initial"].nbytes, "event counters")
        self.d_error = DeviceBuffer(ctypes.sizeof(MpkError), "error record")

    # -- memory by name

    def _storage(self, name: str) -> tuple[DeviceBuffer, dict]:
        try:
            b = self.bundle.buffer(name)
        except ValueError as e:
            raise LoaderError(str(e)) from None
        if b["space"] == "workspace":
            raise LoaderError(f"'{name}' is a workspace buffer")
        return self.storage[b.get("weight_name") or b["name"]], b

    def write(self, name: str, value) -> None:
        memory, b = self._storage(name)
        if getattr(value, "is_cuda", False):   # a torch tensor on this GPU: copied on the device
            if list(value.shape) != list(b["shape"]) or value.numel() * value.element_size() != b["nbytes"]:
                raise LoaderError(f"'{name}': a {list(value.shape)} tensor of {value.dtype} given where "
                                  f"the bundle needs {list(b['shape'])} {b['dtype']}")
            value = value.contiguous()
            memory.copy_from_device(value.data_ptr(), value.numel() * value.element_size())
            return
        memory.upload(as_device_array(value, b["dtype"], b["shape"]))

    def read(self, name: str, as_float: bool = True) -> np.ndarray:
        """A buffer's contents ([steps, ...] for per-step buffers); bf16 as float32 unless as_float=False."""
        memory, b = self._storage(name)
        shape = ([self.steps_per_launch] if b.get("per_step") else []) + b["shape"]
        array = memory.download(NUMPY_DTYPES[b["dtype"]], shape)
        return from_bf16_bits(array) if b["dtype"] == "bf16" and as_float else array

    def bind_weights(self, weights: dict, strict: bool = True) -> None:
        """Upload weights by name; with strict, every weight of the bundle must be given."""
        needed = self.bundle.weights()
        for name, value in weights.items():
            if name in needed:
                self.write(name, value)
                self.bound_weights.add(name)
        missing = sorted(set(needed) - self.bound_weights)
        if strict and missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise LoaderError(f"no value for weight(s) {', '.join(missing[:3])}{more}")

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
        driver = _driver()
        steps = self.steps_per_launch if steps is None else steps
        if not 1 <= steps <= self.steps_per_launch:
            raise LoaderError(f"a launch runs 1..{self.steps_per_launch} steps, not {steps}")
        self.d_counters.upload(self.bundle.tables["event_initial"].astype(np.uint32))
        _check(driver.cuMemsetD8(self.d_error.ptr, 0, ctypes.sizeof(MpkError)), "cuMemsetD8(error)")
        # Poison what the launch must write (all-ones bits: NaN floats, -1 ints): an unwritten output shows.
        for b in self.plan["buffers"]:
            if b["space"] == "io" and b.get("per_step"):
                memory = self.storage[b.get("weight_name") or b["name"]]
                _check(driver.cuMemsetD8(memory.ptr, 0xFF, memory.nbytes), f"cuMemsetD8(poison {b['name']})")
        params = MpkLaunch(self.d_tasks.ptr, self.d_queue_offsets.ptr, self.d_queue_tasks.ptr,
                           self.d_counters.ptr, self.d_buffer_ptrs.ptr, self.d_error.ptr,
                           self.profile.ptr if self.profile else 0, int(self.timeout_s * 1e9),
                           self.num_tasks, steps, self.d_prefetch.ptr, self.stage_bytes, self.task_cache)
        args = (ctypes.c_void_p * 1)(ctypes.addressof(params))
        if timed:
            begin, end = self._timing_events()
            _check(driver.cuEventRecord(begin, 0), "cuEventRecord")
        _check(driver.cuLaunchKernel(self.function, self.num_workers, 1, 1, self.threads, 1, 1,
                                     self.smem_bytes, 0, ctypes.addressof(args), 0), "cuLaunchKernel")
        if timed:
            _check(driver.cuEventRecord(end, 0), "cuEventRecord")
        self._wait(steps)
        self.launched_steps = steps
        error = MpkError.from_buffer_copy(self.d_error.download(np.uint8, ctypes.sizeof(MpkError)).tobytes())
        if error.code != MPK_OK:
            raise RuntimeTimeout(self.describe_error(error))
        if timed:
            return _check(driver.cuEventElapsedTime(begin, end), "cuEventElapsedTime") / 1e3
        return None

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
            err, = driver.cuStreamQuery(0)
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
        if error.code == MPK_ERROR_STAGE_TIMEOUT:
            return (f"mpk runtime timeout: the weights of {where} on worker {error.worker} (SM {error.smid}) "
                    f"did not arrive in its shared-memory stage within {self.timeout_s:g} s at step "
                    f"{error.step} (the worker's staged task {error.observed} of the launch). "
                    f"The prefetch table is inconsistent.")
        waited = (f"event '{event['name']}'[{error.slot - event['first_slot']}] (counter slot {error.slot})"
                  if event else f"counter slot {error.slot}")
        return (f"mpk runtime timeout: {where} on worker {error.worker} (SM {error.smid}) waited "
                f"{self.timeout_s:g} s at step {error.step} for {waited}: counter is {error.observed}, "
                f"needs {error.expected}. The dependency tables are inconsistent (a producer is missing "
                f"or its trigger count is wrong).")

    def profile_ns(self, steps: int | None = None) -> np.ndarray:
        """[steps, num_tasks, 2] start/end globaltimer ns of the last launch (profile=True);
        `steps` defaults to the steps that launch ran (mpk.runtime.trace draws them)."""
        if self.profile is None:
            raise LoaderError("profiling is off: create the Session with profile=True")
        steps = getattr(self, "launched_steps", self.steps_per_launch) if steps is None else steps
        return self.profile.download(np.uint64, (self.steps_per_launch, self.num_tasks, 2))[:steps]

    def close(self) -> None:
        driver = _driver()
        for event in getattr(self, "_events", None) or ():
            driver.cuEventDestroy(event)
        self._events = None
        if getattr(self, "module", None) is not None:
            driver.cuModuleUnload(self.module)
            self.module = None
        for name in ("workspace", "d_tasks", "d_queue_offsets", "d_queue_tasks", "d_buffer_ptrs", "d_prefetch",
                     "d_counters", "d_error", "profile"):
            b = getattr(self, name, None)
            if b is not None:
                driver.cuMemFree(b.ptr)
                setattr(self, name, None)
        for b in getattr(self, "storage", {}).values():
            driver.cuMemFree(b.ptr)
        self.storage = {}
        if getattr(self, "context", None) is not None:
            driver.cuDevicePrimaryCtxRelease(self._device_ordinal)
            self.context = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------ decoding

def split_rows(prompt_ids) -> list[np.ndarray]:
    """The rows of a prompt, unchecked: of a [n] or [B, n] array, or of B sequences
    of any lengths (anything else comes back as one row to be refused)."""
    try:
        array = np.asarray(prompt_ids)
        ragged = array.dtype == object
    except ValueError:                                   # numpy refuses ragged nesting
        ragged = True
    if ragged:
        return [np.asarray(row) for row in prompt_ids]
    return list(np.atleast_2d(array)) if array.ndim in (1, 2) and array.size else [array]


def prompt_rows(prompt_ids, batch: int) -> list[np.ndarray]:
    """One int64 array per sequence: `prompt_ids` is [n] or [1, n] (the same
    prompt for every sequence), [batch, n], or `batch` sequences of any lengths."""
    rows = split_rows(prompt_ids)
    rows = rows * batch if len(rows) == 1 else rows
    if len(rows) != batch or any(r.ndim != 1 or r.size < 1 or not np.issubdtype(r.dtype, np.integer)
                                 for r in rows):
        raise LoaderError(f"the prompt must be {batch} sequences of n >= 1 token ids (or one for all)")
    return [r.astype(np.int64) for r in rows]


def generate(backend, prompt_ids, steps: int, eos_token_id: int | None = None) -> dict[str, np.ndarray]:
    """Feed each sequence's prompt one token per step, then decode `steps` tokens greedily.

    Prompts may differ in length (`prompt_rows`): every sequence is at the
    same position each step, a sequence whose prompt has ended feeds its own
    last token, and launches run one step until the longest prompt has been
    fed (the host chooses every sequence's token), then `steps_per_launch`
    steps (the kernel feeds each step's tokens to the next).

    With `eos_token_id`, decoding stops after the launch in which every row
    has produced it; a row's tokens after its EOS read EOS, and the result
    ends at the step where the last row finished.

    `backend` is a Session or anything with its `bundle`, `steps_per_launch`,
    `write`, `read` and `launch(steps)` (the CPU task interpreter's runner).
    io buffers by name: `tokens` and `positions` (written by the host before
    a launch; later steps of a launch feed themselves), `next_tokens` and
    `logits` (one copy per step). Returns {"tokens": [steps, B] (row i's new
    tokens, whatever its prompt length), "logits": [steps, B, V] (the logits
    that chose them), "prompt_logits": [n - 1, B, V] (the positions before
    the longest prompt's last token, n its length)}.
    """
    bundle = backend.bundle
    try:
        batch = bundle.buffer("tokens")["shape"][0]
        bundle.buffer("positions")
    except ValueError as e:
        raise LoaderError(f"{e}: not a decoder bundle") from None
    rows = prompt_rows(prompt_ids, batch)
    lengths = np.array([len(r) for r in rows])
    longest = int(lengths.max())
    max_seq = int(bundle.plan.get("max_seq", 1 << 30))
    if longest + steps > max_seq:
        raise LoaderError(f"{longest} prompt + {steps} new tokens exceed the KV cache ({max_seq})")
    names = {b["name"] for b in bundle.plan["buffers"]} | {b.get("weight_name") for b in bundle.plan["buffers"]}
    outputs = [n for n in ("next_tokens", "logits") if n in names and bundle.buffer(n).get("per_step")]
    if "next_tokens" not in outputs:
        raise LoaderError("the bundle has no per-step 'next_tokens' io buffer to read generated tokens from")
    prompt = np.zeros((batch, longest), np.int64)
    for i, r in enumerate(rows):
        prompt[i, :len(r)] = r
    first = lengths - 1                  # the position whose output is a row's first new token
    end = longest - 1 + steps            # positions 0..end-1 run
    columns = np.arange(batch)

    def run(tokens, position, n):
        backend.write("tokens", tokens)
        backend.write("positions", np.full(batch, position))
        backend.launch(n)
        return {name: backend.read(name)[:n] for name in outputs}

    per_position = {name: [] for name in outputs}
    position, last = 0, prompt[:, 0]
    while position < end:
        # A launch feeds its later steps from its own outputs: right once every row generates.
        n = 1 if position < longest - 1 else min(backend.steps_per_launch, end - position)
        tokens = np.where(position < lengths, prompt[:, min(position, longest - 1)], last)
        step = run(tokens, position, n)
        for name in outputs:
            per_position[name].append(step[name])
        last, position = step["next_tokens"][-1], position + n
        if eos_token_id is not None:
            produced = np.concatenate(per_position["next_tokens"])
            new = np.arange(position)[:, None] >= first[None, :]
            if ((produced == eos_token_id) & new).any(axis=0).all():
                break
    produced = {name: np.concatenate(chunks) for name, chunks in per_position.items()}
    ran = len(produced["next_tokens"])
    index = first[None, :] + np.arange(steps)[:, None]    # [steps, B]: the position of row i's new token
    tokens = produced["next_tokens"][np.minimum(index, ran - 1), columns]
    if eos_token_id is not None:
        tokens = np.where(index < ran, tokens, eos_token_id)   # past the early stop every row has ended
        finished = np.maximum.accumulate(tokens == eos_token_id, axis=0)
        tokens = np.where(finished, eos_token_id, tokens)
        if finished[-1].all():
            tokens = tokens[:int(np.argmax(finished.all(axis=1))) + 1]
    result = {"tokens": tokens}
    if "logits" in produced:
        logits = produced["logits"]
        result["logits"] = logits[np.minimum(index, ran - 1), columns][:len(tokens)]
        result["prompt_logits"] = logits[:longest - 1]
    return result
