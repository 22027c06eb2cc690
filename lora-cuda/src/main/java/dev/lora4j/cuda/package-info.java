/**
 * Home of the CUDA backend (hand-written kernels for matmul, NF4 dequantization and the fused LoRA
 * forward, through JavaCPP and the bytedeco CUDA presets), which will plug into
 * {@link dev.lora4j.backend.Backend} through {@link dev.lora4j.backend.BackendProvider} and
 * {@code META-INF/services}. Not implemented yet: the module only declares its dependencies, and
 * lora-core runs on its CPU backends.
 */
package dev.lora4j.cuda;
