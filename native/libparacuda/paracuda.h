/* paracuda.h: the C ABI of libparacuda.so, ParaCuda's engine compiled ahead of time (no .NET runtime needed).
 *
 * Every function that can fail returns a paracuda_status; on failure paracuda_last_error() says why, in one
 * line. No function aborts the process on bad input: a NULL pointer, a wrong size or a corrupt checkpoint is a
 * status and a message. Pointers passed in are only read during the call; nothing keeps them afterwards.
 *
 * Thread safety, function by function:
 *   paracuda_version, paracuda_last_error   any thread, any time; the last error is per thread.
 *   paracuda_set_threads                    any thread; predictions that start afterwards use the new count.
 *   paracuda_load, paracuda_get_info        any thread, concurrently.
 *   paracuda_predict_u8, paracuda_predict_f32
 *                                           any thread; calls on one model run one at a time (each waits for the
 *                                           one before), calls on different models run concurrently.
 *   paracuda_free                           once per model, when no other call is using it.
 */
#ifndef PARACUDA_H
#define PARACUDA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum paracuda_status {
    PARACUDA_OK = 0,
    PARACUDA_INVALID_ARGUMENT = 1, /* a NULL pointer, a size that does not fit the model, a prefix out of range */
    PARACUDA_NOT_FOUND = 2,        /* the checkpoint file does not exist */
    PARACUDA_BAD_FORMAT = 3,       /* the file is not a ParaCuda checkpoint, or is corrupt or truncated */
    PARACUDA_OUT_OF_MEMORY = 4,    /* host or device memory ran out */
    PARACUDA_DEVICE_ERROR = 5,     /* the device asked for is missing or failed */
    PARACUDA_IO_ERROR = 6,         /* the file could not be read */
    PARACUDA_INTERNAL = 7          /* a bug in ParaCuda: please report the message */
} paracuda_status;

/* A loaded model; opaque. */
typedef struct paracuda_model paracuda_model;

typedef struct paracuda_model_info {
    int32_t classes;    /* logits per image */
    int32_t branches;   /* prefixes the model can run: a ParaFormer's branches, 1 for a ViT */
    int32_t channels;   /* image channels */
    int32_t image_size; /* float32 input is [N, channels, image_size, image_size] */
    int64_t parameters;
} paracuda_model_info;

/* The library's version, e.g. "0.3.0". Never NULL; owned by the library. */
const char* paracuda_version(void);

/* Why the last failed call on this thread failed ("" if none has). Valid until this thread's next failure. */
const char* paracuda_last_error(void);

/* How many CPU threads the engine may use (default: one per core). */
paracuda_status paracuda_set_threads(int32_t threads);

/* Loads a checkpoint written by `paracuda train`, `compress` or `expand` (or the .NET API).
 * device: NULL or "auto" (a GPU when there is one, else the CPU), "cpu", "cuda", "cuda:N", or "emu" (the
 * emulated CUDA device: the CUDA code run on the CPU, slowly, for checks). A CUDA device may end in "+fp32"
 * (strict float32 GEMMs, as the CPU) or "+tf32" (tensor cores; the default where the GPU has them). */
paracuda_status paracuda_load(const char* path, const char* device, paracuda_model** model);

paracuda_status paracuda_get_info(const paracuda_model* model, paracuda_model_info* info);

/* Predicts stored images: count images of channels x height x width bytes each, channel planes one after
 * another (NCHW), resized to the model's input and normalised as in training's evaluation.
 * prefix: branches to use (the first k), 0 for all. batch_size: images per batch, 0 for 256; memory grows
 * with it, not with count. Writes count x classes logits (row-major) and/or count class ids (the largest
 * logit); either output may be NULL, not both. */
paracuda_status paracuda_predict_u8(paracuda_model* model, const uint8_t* pixels, int32_t count, int32_t height,
                                    int32_t width, int32_t prefix, int32_t batch_size, float* logits, int32_t* labels);

/* Predicts model input as it is: count x channels x image_size x image_size floats, already normalised (what a
 * PyTorch model with the same weights is given). Otherwise as paracuda_predict_u8. */
paracuda_status paracuda_predict_f32(paracuda_model* model, const float* images, int32_t count, int32_t prefix,
                                     int32_t batch_size, float* logits, int32_t* labels);

/* Frees a model and everything it holds. NULL is allowed. */
void paracuda_free(paracuda_model* model);

#ifdef __cplusplus
}
#endif

#endif
