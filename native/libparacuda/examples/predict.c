/* predict.c: loads a checkpoint through libparacuda and prints the logits of images stored as raw bytes.
 *   gcc -I native/libparacuda predict.c -L DIR -lparacuda -Wl,-rpath,DIR -o predict
 *   ./predict CHECKPOINT IMAGES COUNT HEIGHT WIDTH      (IMAGES: COUNT x channels x HEIGHT x WIDTH bytes)
 * One line of logits per image on stdout; the model and the process's peak memory on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "paracuda.h"

static int fail(const char* what)
{
    fprintf(stderr, "%s: %s\n", what, paracuda_last_error());
    return 1;
}

int main(int argc, char** argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s CHECKPOINT IMAGES COUNT HEIGHT WIDTH\n", argv[0]);
        return 2;
    }
    int count = atoi(argv[3]), height = atoi(argv[4]), width = atoi(argv[5]);
    paracuda_model* model = NULL;
    paracuda_model_info info;
    if (paracuda_load(argv[1], "cpu", &model) != PARACUDA_OK) return fail("load");
    if (paracuda_get_info(model, &info) != PARACUDA_OK) return fail("get_info");
    fprintf(stderr, "paracuda %s: %d classes, %d branches, %d channels, %lld parameters\n", paracuda_version(),
            info.classes, info.branches, info.channels, (long long)info.parameters);

    size_t bytes = (size_t)count * info.channels * height * width;
    uint8_t* pixels = malloc(bytes);
    float* logits = malloc(sizeof(float) * count * info.classes);
    FILE* file = fopen(argv[2], "rb");
    if (!file || fread(pixels, 1, bytes, file) != bytes) {
        fprintf(stderr, "cannot read %zu bytes from %s\n", bytes, argv[2]);
        return 1;
    }
    fclose(file);
    if (paracuda_predict_u8(model, pixels, count, height, width, 0, 0, logits, NULL) != PARACUDA_OK) return fail("predict");

    for (int i = 0; i < count; i++)
        for (int c = 0; c < info.classes; c++)
            printf("%.9g%c", logits[i * info.classes + c], c + 1 < info.classes ? ' ' : '\n');

    char line[256];
    FILE* status = fopen("/proc/self/status", "r");
    while (status && fgets(line, sizeof line, status))
        if (strncmp(line, "VmHWM:", 6) == 0) fprintf(stderr, "peak memory:%s", line + 6);
    if (status) fclose(status);
    paracuda_free(model);
    free(pixels);
    free(logits);
    return 0;
}
