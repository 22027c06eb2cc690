/* Quantizes a GGUF model with llama.cpp's own llama_model_quantize (from the libllama.so that the
 * npm package node-llama-cpp ships), for lora4j's tests: every tensor to one type ("pure"), or with
 * PURE = 0 llama.cpp's own type mix for FTYPE (e.g. 15 = MOSTLY_Q4_K_M), as llama-quantize does.
 *   llama_quantize IN.gguf OUT.gguf FTYPE [PURE, default 1]
 * The parameter struct is taken from llama_model_quantize_default_params() into an oversized
 * buffer; only its leading fields are set (llama.h of the pinned release, llama.cpp "v0.4.0"):
 *   int32 nthread @0, enum llama_ftype ftype @4, enum output_tensor_type @8,
 *   enum token_embedding_type @12, bool allow_requantize @16, quantize_output_tensor @17,
 *   only_copy @18, pure @19. The test checks the output's tensor types, so a layout change fails loudly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { _Alignas(16) unsigned char bytes[1024]; } params_t;
extern params_t llama_model_quantize_default_params(void);
extern uint32_t llama_model_quantize(const char *in, const char *out, const params_t *params);
extern void llama_backend_init(void);

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s IN.gguf OUT.gguf FTYPE [PURE]\n", argv[0]);
        return 2;
    }
    llama_backend_init();
    params_t p = llama_model_quantize_default_params();
    int32_t nthread = 1;
    int32_t ftype = atoi(argv[3]);
    memcpy(p.bytes + 0, &nthread, 4);
    memcpy(p.bytes + 4, &ftype, 4);
    p.bytes[19] = argc == 5 ? (unsigned char) atoi(argv[4]) : 1; /* pure */
    uint32_t rc = llama_model_quantize(argv[1], argv[2], &p);
    if (rc != 0) {
        fprintf(stderr, "llama_model_quantize failed (%u)\n", rc);
        return 1;
    }
    return 0;
}
