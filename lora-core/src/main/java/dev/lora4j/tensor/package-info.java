/**
 * Tensors: shapes, strides and views over a {@link dev.lora4j.tensor.Storage}. Compute is F32 on
 * heap storages; frozen weights may stay BF16/F16 (possibly memory-mapped) or 4-bit and are
 * widened on the fly.
 */
package dev.lora4j.tensor;
