package dev.lora4j.cuda;

/** Allocation and upload of device buffers (a {@link CudaContext}, or the host emulation in tests). */
public interface DeviceMemory {

    /** A buffer of {@code bytes} whose contents are undefined until a kernel or upload writes them. */
    KernelBuffer allocate(long bytes);

    KernelBuffer upload(float[] data);

    KernelBuffer upload(int[] data);
}
