/* Writes kquants-golden.txt: llama.cpp's own bytes for lora4j's KQuantsTest, from ggml_quantize_chunk
 * of the libggml-base.so that the npm package node-llama-cpp 3.21.1 ships (llama.cpp "v0.4.0"),
 * without an importance matrix (so the *_ref quantizers). Build and run (from the worktree root):
 *   B=~/.cache/lora4j-llama-cpp/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
 *   gcc -O1 -o /tmp/kquants_golden lora-gguf/src/test/resources/dev/lora4j/gguf/kquants_golden.c \
 *       $B/libggml-base.so -Wl,-rpath,$B
 *   /tmp/kquants_golden > lora-gguf/src/test/resources/dev/lora4j/gguf/kquants-golden.txt
 * The input is KQuantsTest.input(): 1024 values from an integer hash, exact in float, with a zero
 * block, a constant block, an all-positive block and an outlier. One line per type: NAME HEX. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ggml_type ids */
enum { Q5_0 = 6, Q5_1 = 7, Q4_K = 12, Q5_K = 13, Q6_K = 14 };
extern size_t ggml_quantize_chunk(int type, const float *src, void *dst, int64_t start, int64_t nrows,
                                  int64_t n_per_row, const float *imatrix);
extern void ggml_quantize_init(int type);

#define N 1024

static void input(float *x) {
    for (int i = 0; i < N; i++) {
        uint32_t h = (uint32_t) i * 2654435761u;
        h ^= h >> 15;
        x[i] = (float) ((int) (h % 2001u) - 1000) / 256.0f;
    }
    for (int i = 256; i < 288; i++) x[i] = 0.0f;             /* a zero sub-block (and Q5 block) */
    for (int i = 288; i < 320; i++) x[i] = 1.5f;             /* a constant one */
    for (int i = 512; i < 768; i++) x[i] = x[i] < 0 ? -x[i] : x[i] + 0.25f; /* an all-positive super-block */
    x[900] = 40.0f;                                          /* an outlier */
}

int main(void) {
    static float x[N];
    static unsigned char out[N * 2];
    input(x);
    int types[] = {Q4_K, Q5_K, Q6_K, Q5_0, Q5_1};
    const char *names[] = {"Q4_K", "Q5_K", "Q6_K", "Q5_0", "Q5_1"};
    for (int t = 0; t < 5; t++) {
        ggml_quantize_init(types[t]);
        size_t n = ggml_quantize_chunk(types[t], x, out, 0, 4, 256, NULL);
        printf("%s ", names[t]);
        for (size_t i = 0; i < n; i++) printf("%02x", out[i]);
        printf("\n");
    }
    return 0;
}
