/**
 * Tensors: shapes, strides and views over a {@link dev.lora4j.tensor.Storage} on a
 * {@link dev.lora4j.tensor.Device}. Compute is F32 in the storages of the device's backend (heap
 * arrays on the CPU); frozen weights may stay BF16/F16 (possibly memory-mapped) or 4-bit and are
 * widened inside the kernels. Moving a tensor between devices is explicit ({@code to(device)}).
 */
package dev.lora4j.tensor;
