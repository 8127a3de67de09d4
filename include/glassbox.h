/*
 * glassbox.h: the C API of Glassbox (libglassbox.so).
 *
 * Load a .model (or compile a spec), compile a session for some input shapes, run it on
 * tensors in your own memory and read outputs and explanations (Grad-CAM, attention, ...)
 * back. Every function returns a gbx_status; on failure, gbx_last_error() gives a message
 * for the calling thread (what is wrong, naming the file, input or tap). No Swift type and
 * no exception crosses this boundary. In short (`features` holding 768 x 128 floats; make
 * c-api-test compiles these lines):
 *
 *   gbx_model *model; gbx_session *session; gbx_result *result;
 *   if (gbx_model_load("lid.model", &model) != GBX_OK) { puts(gbx_last_error()); return 1; }
 *   gbx_session_create(model, 2, NULL, NULL, 0, NULL, 0, &session);
 *   int64_t shape[] = {1, 768, 128};
 *   gbx_tensor x = {"mfcc", GBX_F32, 3, shape, features};
 *   gbx_session_run(session, &x, 1, &result);
 *   gbx_output logits; gbx_result_find(result, "logits", &logits);
 *   // logits.data holds logits.shape[0] * logits.shape[1] floats
 *   gbx_result_free(result); gbx_session_free(session); gbx_model_free(model);
 *
 * A call that fails sets its `out` handle (if any) to NULL.
 *
 * Ownership: the caller owns input buffers (read during the call only); the library owns
 * handles (freed with their gbx_*_free) and every string and buffer it hands out, which
 * stay valid until the handle they came from is freed. Handles are never reused, so
 * freeing one twice, or using a freed one, is an error (GBX_ERROR_HANDLE), not a crash.
 *
 * Threads: models are read-only and may be shared. A session runs one call at a time;
 * calls from several threads take turns. Use one session per thread to run in parallel.
 */
#ifndef GLASSBOX_H
#define GLASSBOX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when a declaration here changes incompatibly (not when a function is added);
 * gbx_abi_version() returns the library's, which must equal the header's. */
#define GBX_ABI_VERSION 1

/* The most axes a tensor has here. */
#define GBX_MAX_RANK 8

typedef enum gbx_status {
  GBX_OK = 0,
  GBX_ERROR_FILE = 1,        /* a file is missing, unreadable or cannot be written */
  GBX_ERROR_SPEC = 2,        /* a spec does not parse or check (every diagnostic in the message) */
  GBX_ERROR_MODEL = 3,       /* a .model or weights file is corrupt or does not fit */
  GBX_ERROR_INPUT = 4,       /* a tensor or argument does not fit: name, dtype, rank, shape, tap */
  GBX_ERROR_MEDIA = 5,       /* a media file cannot be decoded */
  GBX_ERROR_UNSUPPORTED = 6, /* the model cannot do what was asked */
  GBX_ERROR_RUNTIME = 7,     /* the runtime failed (OpenBLAS missing, ...) */
  GBX_ERROR_NULL = 8,        /* a required pointer argument is NULL */
  GBX_ERROR_HANDLE = 9       /* a handle that was freed already, or never made */
} gbx_status;

typedef enum gbx_dtype {
  GBX_F32 = 0,
  GBX_F64 = 1,
  GBX_I64 = 2,
  GBX_BOOL = 3 /* one byte per element, non-zero is true */
} gbx_dtype;

typedef struct gbx_model gbx_model;
typedef struct gbx_session gbx_session;
typedef struct gbx_result gbx_result;

/* An input: `rank` sizes in `shape`, row-major contiguous elements of `dtype` at `data`,
 * aligned to the element's size (as malloc'd memory and numpy arrays are). float32 is read as
 * is; float64, int64 and bool are converted for a float32 input. */
typedef struct gbx_tensor {
  const char *name;
  gbx_dtype dtype;
  int32_t rank;
  const int64_t *shape;
  const void *data;
} gbx_tensor;

/* A tensor of a model's signature. A size that depends on an unbound symbol is -1, and
 * `shape_text` spells every axis ("[B, 768, 128]"). */
typedef struct gbx_tensor_info {
  const char *name;
  gbx_dtype dtype;
  int32_t rank;
  int64_t shape[GBX_MAX_RANK];
  const char *shape_text;
} gbx_tensor_info;

/* A tap of a model: its name, kind ("gradcam", "attention", ...) and whether it explains a
 * class (and so takes targets). */
typedef struct gbx_tap_info {
  const char *name;
  const char *kind;
  int32_t needs_class;
} gbx_tap_info;

/* One tensor of a result: float32 (or int64 for "target") row-major, owned by the result. */
typedef struct gbx_output {
  const char *name;
  gbx_dtype dtype;
  int32_t rank;
  int64_t shape[GBX_MAX_RANK];
  const void *data;
  size_t byte_count;
} gbx_output;

/* The library's version ("0.2.0") and ABI number (GBX_ABI_VERSION of its header). */
const char *gbx_version(void);
int32_t gbx_abi_version(void);

/* The message of the calling thread's last failed call ("" if none); valid until its next
 * failed call. */
const char *gbx_last_error(void);

/* Models. */
gbx_status gbx_model_load(const char *path, gbx_model **out);
gbx_status gbx_model_load_bytes(const void *bytes, size_t byte_count, gbx_model **out);
/* A spec file compiled with bindings; weights from a safetensors file by PyTorch name, or
 * (weights_path NULL) initialised as PyTorch does from `seed`. */
gbx_status gbx_model_compile_spec(const char *spec_path, const char *const *binding_names, const int64_t *binding_values,
                                  size_t binding_count, const char *weights_path, uint64_t seed, gbx_model **out);
/* A new model with one more tap, written as the CLI's --tap: "gradcam:layer4",
 * "cam:layer4,fc.weight", "gradcam:cnn.layer4:scope=frame:name=frames". */
gbx_status gbx_model_add_tap(const gbx_model *model, const char *tap, gbx_model **out);
/* A new model with these class names (one per class score). */
gbx_status gbx_model_set_labels(const gbx_model *model, const char *const *labels, size_t label_count, gbx_model **out);
/* Writes the model as a .model file (replaced atomically). */
gbx_status gbx_model_save(const gbx_model *model, const char *path);
gbx_status gbx_model_free(gbx_model *model);

gbx_status gbx_model_name(const gbx_model *model, const char **name);
gbx_status gbx_model_input_count(const gbx_model *model, size_t *count);
gbx_status gbx_model_input(const gbx_model *model, size_t index, gbx_tensor_info *info);
gbx_status gbx_model_output_count(const gbx_model *model, size_t *count);
gbx_status gbx_model_output(const gbx_model *model, size_t index, gbx_tensor_info *info);
gbx_status gbx_model_tap_count(const gbx_model *model, size_t *count);
gbx_status gbx_model_tap(const gbx_model *model, size_t index, gbx_tap_info *info);
gbx_status gbx_model_label_count(const gbx_model *model, size_t *count);
gbx_status gbx_model_label(const gbx_model *model, size_t index, const char **label);

/* Sessions. `threads` cores (>= 1); bindings size symbols (others come from each run's
 * inputs); `taps` names the taps gbx_session_run returns besides the outputs (NULL: every
 * tap that is a value of the forward pass, such as attention; tap_count 0 with a non-NULL
 * `taps`: none). */
gbx_status gbx_session_create(const gbx_model *model, int32_t threads, const char *const *binding_names,
                              const int64_t *binding_values, size_t binding_count, const char *const *taps,
                              size_t tap_count, gbx_session **out);
gbx_status gbx_session_free(gbx_session *session);

/* Runs the model on `inputs`; the result holds the outputs and the session's taps. */
gbx_status gbx_session_run(gbx_session *session, const gbx_tensor *inputs, size_t input_count, gbx_result **out);

/* Explains `inputs` with a tap, every example of the batch at once. `targets` holds one
 * class per example (-1: its predicted class), or is NULL for the predicted classes;
 * `scope` is "frame", "clip" or NULL (the tap's own). The result holds the tap's maps
 * (TAP, TAP.normalized, TAP.upsampled, TAP.relevance where they apply), the model's
 * outputs, and "target": the class each example's map explains (int64). */
gbx_status gbx_session_explain(gbx_session *session, const char *tap, const gbx_tensor *inputs, size_t input_count,
                               const int64_t *targets, size_t target_count, const char *scope, gbx_result **out);

/* Explains `inputs` with several taps in one program run (one forward pass, each tap's
 * backward pass), every tap that explains a class for the same `targets` (as
 * gbx_session_explain takes them). The result holds the model's outputs once, then each
 * tap's maps in `taps` order (TAP, TAP.normalized, TAP.upsampled, TAP.relevance where they
 * apply), then "target" when a tap explains a class. At least one tap; none twice. Added
 * without changing GBX_ABI_VERSION (an addition keeps every existing caller working); a
 * program that must also run on an older library looks it up with dlsym first. */
gbx_status gbx_session_explain_taps(gbx_session *session, const char *const *taps, size_t tap_count,
                                    const gbx_tensor *inputs, size_t input_count, const int64_t *targets,
                                    size_t target_count, const char *scope, gbx_result **out);

/* Results. */
gbx_status gbx_result_count(const gbx_result *result, size_t *count);
gbx_status gbx_result_get(const gbx_result *result, size_t index, gbx_output *output);
gbx_status gbx_result_find(const gbx_result *result, const char *name, gbx_output *output);
gbx_status gbx_result_free(gbx_result *result);

#ifdef __cplusplus
}
#endif

#endif /* GLASSBOX_H */
