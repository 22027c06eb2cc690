package dev.lora4j.tensor;

/** Where a storage's bytes live. Backends other than the CPU ones own device-resident storages. */
public enum Device {
    CPU,
    CUDA
}
