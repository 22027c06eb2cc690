package dev.lora4j.cuda;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * A caching device allocator: requests are rounded up to a size bucket (powers of two from 512 B
 * to 1 MiB, then multiples of 2 MiB), freed buffers wait in a free list per bucket and serve the
 * next request of that bucket, so a training step that repeats the previous step's sizes
 * allocates nothing from the driver. When the driver reports out-of-memory, the cache is emptied
 * and the allocation retried once. {@link #stats()} reports bytes in use, cached, and the
 * high-water mark of bytes in use (what a step needed at its peak). Thread-safe.
 */
public final class CachingAllocator implements AutoCloseable {
    static final long MIN_BUCKET = 512;
    static final long SMALL_LIMIT = 1L << 20;
    static final long LARGE_STEP = 2L << 20;

    /** The raw allocator underneath (cuMemAlloc/cuMemFree on a GPU; a fake in tests). */
    public interface Raw {
        /** @return the device address; throws {@link CudaException} (CUDA_ERROR_OUT_OF_MEMORY when full) */
        long allocate(long bytes);

        void free(long address);
    }

    /** Counters: bytes held by live buffers (requested sizes), cached free bytes, peak in-use bytes, driver calls. */
    public record Stats(long bytesInUse, long bytesCached, long highWaterMark, long driverAllocations, long reuses) {
        @Override
        public String toString() {
            return String.format("device memory: %.1f MiB in use, %.1f MiB cached, peak %.1f MiB; %d driver allocations, %d reuses",
                    bytesInUse / 1048576.0, bytesCached / 1048576.0, highWaterMark / 1048576.0, driverAllocations, reuses);
        }
    }

    private final Raw raw;
    private final Map<Long, ArrayDeque<Long>> free = new HashMap<>();
    private long inUse;
    private long cached;
    private long highWater;
    private long driverAllocations;
    private long reuses;
    private boolean closed;

    public CachingAllocator(Raw raw) {
        this.raw = raw;
    }

    /** The bucket a request of {@code bytes} is served from. */
    static long bucket(long bytes) {
        if (bytes <= MIN_BUCKET) {
            return MIN_BUCKET;
        }
        if (bytes <= SMALL_LIMIT) {
            return Long.highestOneBit(bytes - 1) << 1;
        }
        return Math.addExact(bytes, LARGE_STEP - 1) / LARGE_STEP * LARGE_STEP;
    }

    /** A buffer of at least {@code bytes} (≥ 0; 0 still gets a distinct minimal allocation). */
    public synchronized CudaBuffer allocate(long bytes) {
        if (closed) {
            throw new IllegalStateException("the device allocator is closed");
        }
        if (bytes < 0) {
            throw new IllegalArgumentException("device allocation size must be ≥ 0, was " + bytes);
        }
        long size = bucket(bytes);
        ArrayDeque<Long> list = free.get(size);
        long address;
        if (list != null && !list.isEmpty()) {
            address = list.pop();
            cached -= size;
            reuses++;
        } else {
            address = allocateFromDriver(size);
        }
        inUse += bytes;
        highWater = Math.max(highWater, inUse);
        return new CudaBuffer(this, address, bytes, size);
    }

    private long allocateFromDriver(long size) {
        try {
            long a = raw.allocate(size);
            driverAllocations++;
            return a;
        } catch (CudaException e) {
            if (!"CUDA_ERROR_OUT_OF_MEMORY".equals(e.errorName()) || cached == 0) {
                throw e;
            }
            trim();
            long a = raw.allocate(size);
            driverAllocations++;
            return a;
        }
    }

    synchronized void release(long address, long capacity, long bytes) {
        inUse -= bytes;
        if (closed) {
            raw.free(address);
            return;
        }
        free.computeIfAbsent(capacity, k -> new ArrayDeque<>()).push(address);
        cached += capacity;
    }

    /** Frees every cached (unused) allocation back to the driver. */
    public synchronized void trim() {
        for (ArrayDeque<Long> list : free.values()) {
            while (!list.isEmpty()) {
                raw.free(list.pop());
            }
        }
        free.clear();
        cached = 0;
    }

    /** Starts a new measurement of the high-water mark from the bytes in use now. */
    public synchronized void resetHighWaterMark() {
        highWater = inUse;
    }

    public synchronized Stats stats() {
        return new Stats(inUse, cached, highWater, driverAllocations, reuses);
    }

    /** Frees the cache; buffers still open are freed when they are closed. */
    @Override
    public synchronized void close() {
        trim();
        closed = true;
    }
}
