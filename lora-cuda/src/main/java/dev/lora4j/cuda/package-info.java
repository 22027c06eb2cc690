/**
 * The CUDA backend: hand-written kernels (src/main/cuda, shipped as PTX) described as launches by
 * {@link dev.lora4j.cuda.Kernels}, run through the JavaCPP driver API by
 * {@link dev.lora4j.cuda.CudaContext}, and offered to lora-core as
 * {@link dev.lora4j.cuda.CudaBackend} through {@link dev.lora4j.backend.BackendProvider} and
 * {@code META-INF/services}. Without an NVIDIA driver the provider refuses with the reason and
 * lora4j runs on its CPU backends.
 */
package dev.lora4j.cuda;
