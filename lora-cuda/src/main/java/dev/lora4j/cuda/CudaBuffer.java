package dev.lora4j.cuda;

/**
 * A device allocation from a {@link CachingAllocator}: {@link #byteSize()} usable bytes at
 * {@link #address()} (the allocation itself may be larger: its size bucket). Closing returns it to
 * the allocator's cache for reuse; using it afterwards is an error. Not thread-safe.
 */
public final class CudaBuffer implements KernelBuffer, AutoCloseable {
    private final CachingAllocator owner;
    private final long address;
    private final long bytes;
    private final long capacity;
    private boolean closed;

    CudaBuffer(CachingAllocator owner, long address, long bytes, long capacity) {
        this.owner = owner;
        this.address = address;
        this.bytes = bytes;
        this.capacity = capacity;
    }

    /** The device address (CUdeviceptr). */
    public long address() {
        if (closed) {
            throw new IllegalStateException("device buffer of " + bytes + " bytes used after close()");
        }
        return address;
    }

    @Override
    public long byteSize() {
        return bytes;
    }

    /** Size of the underlying allocation (the size bucket). */
    public long capacity() {
        return capacity;
    }

    public boolean isClosed() {
        return closed;
    }

    /** Returns the memory to the allocator's cache (idempotent). */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            owner.release(address, capacity, bytes);
        }
    }

    @Override
    public String toString() {
        return "CudaBuffer[" + bytes + " bytes at 0x" + Long.toHexString(address) + (closed ? ", closed" : "") + "]";
    }
}
