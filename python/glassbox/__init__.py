"""Glassbox from Python: run `.model` files and the explanations compiled into them.

    import glassbox, numpy as np
    m = glassbox.load("lid.model", threads=2)
    m.inputs                                  # [TensorInfo(name='mfcc', dtype=float32, shape=('B', 768, 128))]
    out = m.run({"mfcc": x})                  # {"logits": ndarray, "attention": ndarray, ...}
    cam = m.explain("gradcam", {"frames": v}) # the raw Grad-CAM maps of every example, predicted classes
    both = m.explanations(["gradcam", "hidden"], {"frames": v})  # several taps in one run, by name

A thin layer over libglassbox.so (include/glassbox.h) through ctypes: inputs are read in
place when they are C-contiguous, aligned numpy arrays of a supported type (float32 without
any conversion; float64, int64 and bool converted by the library; an unaligned array is
copied first), and outputs are numpy arrays over the library's result memory (no copy).
Errors are `glassbox.Error` with the library's message and a `kind`; nothing a caller passes
crashes the process. Calls release the GIL: models run in parallel on several threads, and
calls on one model from several threads take turns.
"""

import ctypes
import ctypes.util
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["load", "compile", "Model", "Error", "Explanation", "TensorInfo", "TapInfo", "version", "library_path"]

# gbx_status codes and what they mean (glassbox.h).
_KINDS = {1: "file", 2: "spec", 3: "model", 4: "input", 5: "media", 6: "unsupported", 7: "runtime", 8: "null",
          9: "handle"}
_NP_TYPES = {0: np.dtype(np.float32), 1: np.dtype(np.float64), 2: np.dtype(np.int64), 3: np.dtype(np.bool_)}
_CODES = {dtype: code for code, dtype in _NP_TYPES.items()}
_MAX_RANK = 8


class Error(Exception):
    """A failure reported by Glassbox: `kind` says what kind ("input", "model", "file", ...)."""

    def __init__(self, message: str, status: int = 4):
        super().__init__(message)
        self.status = status
        self.kind = _KINDS.get(status, "runtime")


class TensorInfo(NamedTuple):
    """A tensor of a model's signature; a size still to bind is its symbol ("B")."""
    name: str
    dtype: np.dtype
    shape: Tuple[Union[int, str], ...]


class TapInfo(NamedTuple):
    """A tap compiled into a model: its name, kind ("gradcam", "attention", ...), and whether it
    explains a class (and so takes `target`)."""
    name: str
    kind: str
    needs_class: bool


class Explanation(NamedTuple):
    """What a tap computed for a batch: `maps` by role ("raw", "normalized", "upsampled",
    "relevance"), the class each example's map explains, and the model's outputs."""
    tap: str
    maps: Dict[str, np.ndarray]
    classes: Optional[np.ndarray]
    outputs: Dict[str, np.ndarray]


class _Tensor(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("data", ctypes.c_void_p)]


class _TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("shape", ctypes.c_int64 * _MAX_RANK), ("shape_text", ctypes.c_char_p)]


class _TapInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("kind", ctypes.c_char_p), ("needs_class", ctypes.c_int32)]


class _Output(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("shape", ctypes.c_int64 * _MAX_RANK), ("data", ctypes.c_void_p), ("byte_count", ctypes.c_size_t)]


def library_path() -> str:
    """Where libglassbox.so is loaded from: $GLASSBOX_LIBRARY, the copy installed with this
    package, a source tree's .build/release, or the system's library path."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get("GLASSBOX_LIBRARY"), os.path.join(here, "libglassbox.so"),
                  os.path.join(here, "..", "..", ".build", "release", "libglassbox.so")]
    for path in candidates:
        if path and os.path.isfile(path):
            return os.path.abspath(path)
    found = ctypes.util.find_library("glassbox")
    if found:
        return found
    raise ImportError("glassbox: libglassbox.so not found; run `make lib` and `pip install ./python`, "
                      "or set GLASSBOX_LIBRARY")


# Functions added to the C API without a new ABI number: an older libglassbox.so lacks them.
_ADDED = {"gbx_session_explain_taps"}


def _declare(lib):
    P = ctypes.POINTER
    vp, cp, sz, st = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int
    signatures = {
        "gbx_version": ([], cp), "gbx_abi_version": ([], ctypes.c_int32), "gbx_last_error": ([], cp),
        "gbx_model_load": ([cp, P(vp)], st),
        "gbx_model_load_bytes": ([ctypes.c_char_p, sz, P(vp)], st),
        "gbx_model_compile_spec": ([cp, P(cp), P(ctypes.c_int64), sz, cp, ctypes.c_uint64, P(vp)], st),
        "gbx_model_add_tap": ([vp, cp, P(vp)], st),
        "gbx_model_set_labels": ([vp, P(cp), sz, P(vp)], st),
        "gbx_model_save": ([vp, cp], st), "gbx_model_free": ([vp], st), "gbx_model_name": ([vp, P(cp)], st),
        "gbx_model_input_count": ([vp, P(sz)], st), "gbx_model_input": ([vp, sz, P(_TensorInfo)], st),
        "gbx_model_output_count": ([vp, P(sz)], st), "gbx_model_output": ([vp, sz, P(_TensorInfo)], st),
        "gbx_model_tap_count": ([vp, P(sz)], st), "gbx_model_tap": ([vp, sz, P(_TapInfo)], st),
        "gbx_model_label_count": ([vp, P(sz)], st), "gbx_model_label": ([vp, sz, P(cp)], st),
        "gbx_session_create": ([vp, ctypes.c_int32, P(cp), P(ctypes.c_int64), sz, P(cp), sz, P(vp)], st),
        "gbx_session_free": ([vp], st),
        "gbx_session_run": ([vp, P(_Tensor), sz, P(vp)], st),
        "gbx_session_explain": ([vp, cp, P(_Tensor), sz, P(ctypes.c_int64), sz, cp, P(vp)], st),
        "gbx_session_explain_taps": ([vp, P(cp), sz, P(_Tensor), sz, P(ctypes.c_int64), sz, cp, P(vp)], st),
        "gbx_result_count": ([vp, P(sz)], st), "gbx_result_get": ([vp, sz, P(_Output)], st),
        "gbx_result_find": ([vp, cp, P(_Output)], st), "gbx_result_free": ([vp], st),
    }
    for name, (args, result) in signatures.items():
        if name in _ADDED and not hasattr(lib, name):
            continue  # an older library of the same ABI; the call that needs it says so
        f = getattr(lib, name)
        f.argtypes = args
        f.restype = result


_lib = ctypes.CDLL(library_path())
_declare(_lib)
_ABI = 1
if _lib.gbx_abi_version() != _ABI:
    raise ImportError(f"glassbox: libglassbox.so has ABI {_lib.gbx_abi_version()}, this package speaks {_ABI}")


def version() -> str:
    """The library's version."""
    return _lib.gbx_version().decode()


def _check(status: int) -> None:
    if status != 0:
        raise Error(_lib.gbx_last_error().decode("utf-8", "replace"), status)


def _strings(items: Sequence[str]):
    array = (ctypes.c_char_p * max(len(items), 1))(*[s.encode() for s in items])
    return array if items else None


# The largest size or thread count the library takes (its Int32.max): checked here too, as
# ctypes would silently cut a larger Python int to 32 or 64 bits.
_MAX_SIZE = 2**31 - 1


def _names(items, what: str) -> Optional[List[str]]:
    """A list of strings from None or a sequence of str (a lone string is refused, not split)."""
    if items is None:
        return None
    names = list(items) if not isinstance(items, (str, bytes)) and hasattr(items, "__iter__") else None
    if names is None or not all(isinstance(i, str) for i in names):
        raise Error(f"{what} must be a list of strings, found {items!r}")
    return names


def _threads(threads) -> int:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= _MAX_SIZE:
        raise Error(f"threads must be an integer from 1 to {_MAX_SIZE}, found {threads!r}")
    return int(threads)


def _bindings(bindings: Optional[Dict[str, int]]):
    bindings = dict(bindings or {})
    for name, value in bindings.items():
        if not isinstance(name, str) or isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise Error(f"bindings must map symbol names to integers, found {name!r}: {value!r}")
        if not 1 <= value <= _MAX_SIZE:
            raise Error(f"binding {name} = {value}: sizes must be between 1 and {_MAX_SIZE}")
    names = _strings(list(bindings))
    values = (ctypes.c_int64 * max(len(bindings), 1))(*[int(v) for v in bindings.values()])
    return names, (values if bindings else None), len(bindings)


class _Result:
    """Owns a gbx_result; arrays over its memory keep it alive."""

    __slots__ = ("handle",)

    def __init__(self, handle):
        self.handle = handle

    def __del__(self):
        if self.handle:
            _lib.gbx_result_free(self.handle)
            self.handle = None


def _result_arrays(handle) -> Dict[str, np.ndarray]:
    owner = _Result(handle)
    count = ctypes.c_size_t()
    _check(_lib.gbx_result_count(handle, ctypes.byref(count)))
    arrays = {}
    out = _Output()
    for i in range(count.value):
        _check(_lib.gbx_result_get(handle, i, ctypes.byref(out)))
        dtype = _NP_TYPES[out.dtype]
        shape = tuple(out.shape[:out.rank])
        if out.byte_count:
            memory = (ctypes.c_char * out.byte_count).from_address(out.data)
            memory._owner = owner
            array = np.frombuffer(memory, dtype=dtype).reshape(shape)
        else:
            array = np.zeros(shape, dtype=dtype)
        array.flags.writeable = False
        arrays[out.name.decode()] = array
    return arrays


def _feeds(feeds, what="inputs"):
    """The inputs as gbx_tensor structures over the arrays' own memory, and what must live
    as long as the call."""
    if not isinstance(feeds, dict):
        raise Error(f"{what} must be a dict of input name to numpy array, found {type(feeds).__name__}")
    tensors = (_Tensor * max(len(feeds), 1))()
    keep = []
    for i, (name, value) in enumerate(feeds.items()):
        if not isinstance(name, str):
            raise Error(f"input names must be strings, found {name!r}")
        try:
            array = value if isinstance(value, np.ndarray) else np.asarray(value)
        except (ValueError, TypeError) as e:  # ragged lists and the like
            raise Error(f"input '{name}' is not an array: {e}") from None
        if array.dtype not in _CODES:
            raise Error(f"input '{name}' is {array.dtype}; Glassbox takes float32, float64, int64 or bool arrays "
                        f"(convert with .astype(np.float32))")
        if not array.flags.c_contiguous:
            raise Error(f"input '{name}' is not C-contiguous (strides {array.strides}); "
                        f"pass np.ascontiguousarray(x)")
        if not array.flags.aligned:
            array = array.copy()  # the library reads whole elements (glassbox.h: data aligned)
        if array.ndim > _MAX_RANK:
            raise Error(f"input '{name}' has {array.ndim} axes; at most {_MAX_RANK}")
        shape = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
        key = name.encode()
        keep += [array, shape, key]
        t = tensors[i]
        t.name, t.dtype, t.rank, t.shape = key, _CODES[array.dtype], array.ndim, shape
        t.data = array.ctypes.data if array.size else None
    return tensors, len(feeds), keep


def _targets(target, feeds, keep):
    """`target` as a gbx targets array and its length (NULL and 0 for None); what must live
    as long as the call goes into `keep`."""
    if target is None:
        return None, 0
    classes = np.asarray(target)
    if classes.dtype.kind not in "iu" or classes.ndim > 1:
        raise Error(f"target must be a class index or one per example, found {target!r}")
    if classes.ndim == 0:
        batch = next(iter(feeds.values()), np.zeros(1))
        classes = np.full(np.shape(batch)[0] if np.ndim(batch) else 1, int(classes))
    classes = np.ascontiguousarray(classes, dtype=np.int64)
    keep.append(classes)
    return classes.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)), classes.size


def _explanations(taps: List[str], arrays: Dict[str, np.ndarray], classless=frozenset()) -> Dict[str, Explanation]:
    """A result of explaining `taps` as one Explanation per tap: its maps by role, the classes
    explained (None for the `classless` taps, which explain none), and the model's outputs."""
    roles = {f"{tap}{suffix}": (tap, role) for tap in taps
             for suffix, role in [("", "raw"), (".normalized", "normalized"), (".upsampled", "upsampled"),
                                  (".relevance", "relevance")]}
    outputs = {k: v for k, v in arrays.items() if k not in roles and k != "target"}
    maps = {tap: {} for tap in taps}
    for key, value in arrays.items():
        if key in roles:
            tap, role = roles[key]
            maps[tap][role] = value
    return {tap: Explanation(tap, maps[tap], None if tap in classless else arrays.get("target"), outputs)
            for tap in taps}


class Model:
    """A model compiled into a session: `run` its outputs, `explain` with its taps."""

    def __init__(self, model_handle, session_handle):
        self._model = model_handle
        self._session = session_handle
        name = ctypes.c_char_p()
        _check(_lib.gbx_model_name(model_handle, ctypes.byref(name)))
        self.name: str = name.value.decode()
        self.inputs: List[TensorInfo] = self._infos(_lib.gbx_model_input_count, _lib.gbx_model_input)
        self.outputs: List[TensorInfo] = self._infos(_lib.gbx_model_output_count, _lib.gbx_model_output)
        count = ctypes.c_size_t()
        _check(_lib.gbx_model_tap_count(model_handle, ctypes.byref(count)))
        taps = []
        for i in range(count.value):
            info = _TapInfo()
            _check(_lib.gbx_model_tap(model_handle, i, ctypes.byref(info)))
            taps.append(TapInfo(info.name.decode(), info.kind.decode(), bool(info.needs_class)))
        self.taps: List[TapInfo] = taps
        _check(_lib.gbx_model_label_count(model_handle, ctypes.byref(count)))
        labels = []
        for i in range(count.value):
            label = ctypes.c_char_p()
            _check(_lib.gbx_model_label(model_handle, i, ctypes.byref(label)))
            labels.append(label.value.decode())
        self.labels: List[str] = labels

    def _infos(self, count_function, get_function) -> List[TensorInfo]:
        count = ctypes.c_size_t()
        _check(count_function(self._model, ctypes.byref(count)))
        infos = []
        for i in range(count.value):
            info = _TensorInfo()
            _check(get_function(self._model, i, ctypes.byref(info)))
            text = info.shape_text.decode().strip("[]")
            symbols = [s.strip() for s in text.split(",")] if text else []
            shape = tuple(int(info.shape[a]) if info.shape[a] >= 0 else symbols[a] for a in range(info.rank))
            infos.append(TensorInfo(info.name.decode(), _NP_TYPES[info.dtype], shape))
        return infos

    def _live(self):
        if not self._session:
            raise Error(f"the model {self.name} was closed; load it again to use it", 6)
        return self._session

    def run(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """The model's outputs (and the session's taps) for `feeds`, by name."""
        tensors, count, keep = _feeds(feeds)
        result = ctypes.c_void_p()
        _check(_lib.gbx_session_run(self._live(), tensors, count, ctypes.byref(result)))
        del keep
        return _result_arrays(result)

    def explanation(self, tap: str, feeds: Dict[str, np.ndarray], target=None,
                    scope: Optional[str] = None) -> Explanation:
        """Everything `tap` computes for the batch in `feeds`: raw, normalised and upsampled
        maps (and per-frame relevance), the classes explained, and the model's outputs.
        `target` is None (each example's predicted class), a class for every example, or
        one class per example (-1: that example's predicted class)."""
        if not isinstance(tap, str):
            raise Error(f"tap must be a tap name, found {tap!r}")
        tensors, count, keep = _feeds(feeds)
        targets, target_count = _targets(target, feeds, keep)
        result = ctypes.c_void_p()
        _check(_lib.gbx_session_explain(self._live(), tap.encode(), tensors, count, targets, target_count,
                                        scope.encode() if scope else None, ctypes.byref(result)))
        del keep
        return _explanations([tap], _result_arrays(result))[tap]

    def explanations(self, taps: Sequence[str], feeds: Dict[str, np.ndarray], target=None,
                     scope: Optional[str] = None) -> Dict[str, Explanation]:
        """Several taps' explanations of the batch in `feeds` from one run (one forward pass,
        each tap's backward pass), by tap name in `taps` order; each as `explanation` gives it,
        every tap that explains a class explaining the same `target` classes."""
        names = _names(taps, "taps")
        if not hasattr(_lib, "gbx_session_explain_taps"):
            raise Error(f"{library_path()} has no gbx_session_explain_taps (an older library); "
                        "explain one tap at a time, or update it", 6)
        tensors, count, keep = _feeds(feeds)
        targets, target_count = _targets(target, feeds, keep)
        result = ctypes.c_void_p()
        _check(_lib.gbx_session_explain_taps(self._live(), _strings(names), len(names), tensors, count, targets,
                                             target_count, scope.encode() if scope else None, ctypes.byref(result)))
        del keep
        classless = {t.name for t in self.taps if not t.needs_class}
        return _explanations(names, _result_arrays(result), classless)

    def explain(self, tap: str, feeds: Dict[str, np.ndarray], target=None, scope: Optional[str] = None) -> np.ndarray:
        """The raw map of `tap` for every example in `feeds` (see `explanation`)."""
        return self.explanation(tap, feeds, target=target, scope=scope).maps["raw"]

    def save(self, path: str) -> None:
        """Writes the model as a .model file (replaced atomically)."""
        self._live()
        _check(_lib.gbx_model_save(self._model, os.fspath(path).encode()))

    def close(self) -> None:
        """Frees the session and the model now (otherwise when the object goes)."""
        if self._session:
            _lib.gbx_session_free(self._session)
            self._session = None
        if self._model:
            _lib.gbx_model_free(self._model)
            self._model = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def __repr__(self):
        return f"<glassbox.Model {self.name}: {', '.join(str(i.name) for i in self.inputs)} -> " \
               f"{', '.join(o.name for o in self.outputs)}; taps {', '.join(t.name for t in self.taps) or 'none'}>"


def _session(model_handle, bindings, threads: int, taps: Optional[List[str]]) -> Model:
    """A Model over `model_handle` with a new session; the handle is freed if that fails."""
    try:
        names, values, count = _bindings(bindings)
        session = ctypes.c_void_p()
        # taps None: the library's default; an empty list: a non-NULL array of none.
        tap_array = _strings(taps) if taps else (None if taps is None else (ctypes.c_char_p * 1)())
        _check(_lib.gbx_session_create(model_handle, threads, names, values, count, tap_array, len(taps or []),
                                       ctypes.byref(session)))
    except BaseException:
        _lib.gbx_model_free(model_handle)
        raise
    return Model(model_handle, session)


def load(path, bindings: Optional[Dict[str, int]] = None, threads: int = 2,
         taps: Optional[Sequence[str]] = None) -> Model:
    """Loads a .model file (memory-mapped) and compiles a session: `bindings` size symbols
    (others follow each run's inputs), `taps` are returned by `run` besides the outputs
    (None: those that are values of the forward pass, such as attention)."""
    threads, taps = _threads(threads), _names(taps, "taps")
    handle = ctypes.c_void_p()
    _check(_lib.gbx_model_load(os.fspath(path).encode(), ctypes.byref(handle)))
    return _session(handle, bindings, threads, taps)


def compile(spec, output=None, bindings: Optional[Dict[str, int]] = None, weights=None, seed: int = 0,
            taps: Sequence[str] = (), labels: Optional[Sequence[str]] = None, threads: int = 2) -> Model:
    """Compiles a spec (`graphs/NAME.graph`) with `bindings`, weights from a safetensors file by
    PyTorch name (or initialised from `seed`), extra `taps` ("gradcam:layer4", as the CLI's
    --tap) and class `labels`; writes it to `output` (a .model) when given, and returns it
    ready to run."""
    threads, taps, labels = _threads(threads), _names(taps, "taps") or [], _names(labels, "labels")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 1 << 64:
        raise Error(f"seed must be an integer from 0 to 2**64 - 1, found {seed!r}")
    names, values, count = _bindings(bindings)
    handle = ctypes.c_void_p()
    _check(_lib.gbx_model_compile_spec(os.fspath(spec).encode(), names, values, count,
                                       os.fspath(weights).encode() if weights is not None else None,
                                       int(seed), ctypes.byref(handle)))
    try:
        for tap in taps:
            extended = ctypes.c_void_p()
            _check(_lib.gbx_model_add_tap(handle, str(tap).encode(), ctypes.byref(extended)))
            _lib.gbx_model_free(handle)
            handle = extended
        if labels is not None:
            relabelled = ctypes.c_void_p()
            _check(_lib.gbx_model_set_labels(handle, _strings(list(labels)), len(labels), ctypes.byref(relabelled)))
            _lib.gbx_model_free(handle)
            handle = relabelled
        if output is not None:
            _check(_lib.gbx_model_save(handle, os.fspath(output).encode()))
    except Exception:
        _lib.gbx_model_free(handle)
        raise
    return _session(handle, {}, threads, None)
