package dev.lora4j.cuda;

/**
 * Memory a kernel reads or writes: a device allocation ({@link CudaBuffer}) or, in the host
 * emulation used by the tests, a host array. {@link Kernels} checks every buffer against the
 * bytes a launch will touch before the launch is issued.
 */
public interface KernelBuffer {

    /** Usable size in bytes. */
    long byteSize();
}
