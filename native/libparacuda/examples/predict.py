"""predict.py: loads a checkpoint through libparacuda with ctypes and prints the logits of raw-byte images.

    python3 predict.py LIBPARACUDA CHECKPOINT IMAGES COUNT HEIGHT WIDTH
"""
import ctypes
import sys


class ModelInfo(ctypes.Structure):
    _fields_ = [("classes", ctypes.c_int32), ("branches", ctypes.c_int32), ("channels", ctypes.c_int32),
                ("image_size", ctypes.c_int32), ("parameters", ctypes.c_int64)]


def main(library, checkpoint, images, count, height, width):
    lib = ctypes.CDLL(library)
    lib.paracuda_version.restype = ctypes.c_char_p
    lib.paracuda_last_error.restype = ctypes.c_char_p

    def check(status, what):
        if status != 0:
            sys.exit(f"{what}: {lib.paracuda_last_error().decode()}")

    model = ctypes.c_void_p()
    check(lib.paracuda_load(checkpoint.encode(), b"cpu", ctypes.byref(model)), "load")
    info = ModelInfo()
    check(lib.paracuda_get_info(model, ctypes.byref(info)), "get_info")
    with open(images, "rb") as f:
        pixels = f.read()
    logits = (ctypes.c_float * (count * info.classes))()
    check(lib.paracuda_predict_u8(model, pixels, count, height, width, 0, 0, logits, None), "predict")
    for i in range(count):
        print(" ".join(repr(logits[i * info.classes + c]) for c in range(info.classes)))
    lib.paracuda_free(model)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7]))
