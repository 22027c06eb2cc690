package dev.lora4j.cuda;

/**
 * The few things {@link CudaBackend} asks of a device: raw allocation (under its
 * {@link CachingAllocator}), copies between host and device and within the device, kernel launches
 * in order on one stream, and a barrier. {@link CudaContext} implements it with the CUDA driver
 * API on a GPU; the tests implement it with the g++ host emulation of the kernels running as a
 * long-lived child process, so that buffers stay resident between operations exactly as on a GPU.
 * Addresses are device addresses ({@link CudaBuffer#address()}); copies of host memory wait for
 * the launches before them.
 */
public interface DeviceRuntime extends KernelLauncher, CachingAllocator.Raw, AutoCloseable {

    /** One line naming the device, for logs. */
    String describe();

    /** bytes [offset, offset + count) of {@code src} to device memory at {@code address}. */
    void upload(long address, byte[] src, int offset, int count);

    /** {@code count} bytes at device {@code address} into {@code dst[offset ..]}. */
    void download(long address, byte[] dst, int offset, int count);

    /** Device-to-device copy of {@code bytes} (regions do not overlap). */
    void copy(long dstAddress, long srcAddress, long bytes);

    /** Waits until every launch and copy issued so far has finished (and reports an error any of them raised). */
    void synchronize();

    /** Device address of a kernel buffer: a {@link CudaBuffer}, or a {@link BufferSlice} of one. */
    static long addressOf(KernelBuffer b) {
        if (b instanceof BufferSlice s) {
            return addressOf(s.base()) + s.offset();
        }
        if (!(b instanceof CudaBuffer cb)) {
            throw new IllegalArgumentException("kernel argument " + b + " is not device memory of this runtime");
        }
        return cb.address();
    }

    @Override
    void close();
}
