package dev.lora4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.junit.jupiter.api.Test;

/** The host side of the CUDA plumbing that needs no GPU: kernel parameter slots, the caching allocator, error text. */
class PlumbingTest {

    /** A device buffer stand-in with a fixed address. */
    private record FakeBuffer(long address, long byteSize) implements KernelBuffer {
    }

    @Test
    void eachKernelParameterSlotHoldsAHostCopyOfItsValue() {
        FakeBuffer buf = new FakeBuffer(0x7f00_dead_b000L, 64);
        KernelArgs args = new KernelArgs().ptr(buf).ptr(null).i32(-7).i64(1L << 40).f32(1.5f).f64(-2.25);
        try (KernelParams p = new KernelParams(args, b -> ((FakeBuffer) b).address())) {
            Set<Long> slots = new HashSet<>();
            for (int i = 0; i < args.size(); i++) {
                long entry = p.array().get(i).address();
                assertEquals(p.slotAddress(i), entry, "entry " + i + " points at its slot");
                assertNotEquals(buf.address(), entry, "a device address must never be passed as the slot itself");
                slots.add(entry);
            }
            assertEquals(args.size(), slots.size(), "every argument has its own slot");
            assertEquals(buf.address(), new LongPointer(slot(p, 0)).get(), "the device address is copied into its slot");
            assertEquals(0L, new LongPointer(slot(p, 1)).get(), "a null pointer argument is a zero address");
            assertEquals(-7, new IntPointer(slot(p, 2)).get());
            assertEquals(1L << 40, new LongPointer(slot(p, 3)).get());
            assertEquals(1.5f, new FloatPointer(slot(p, 4)).get());
            assertEquals(-2.25, new DoublePointer(slot(p, 5)).get());
        }
    }

    private static Pointer slot(KernelParams p, int i) {
        return p.array().get(i);
    }

    /** A raw allocator that hands out fake addresses and can run out of memory. */
    private static final class FakeRaw implements CachingAllocator.Raw {
        long next = 0x1000_0000L;
        long capacity;
        long used;
        final List<Long> freed = new ArrayList<>();
        final java.util.Map<Long, Long> sizes = new java.util.HashMap<>();

        FakeRaw(long capacity) {
            this.capacity = capacity;
        }

        @Override
        public long allocate(long bytes) {
            if (used + bytes > capacity) {
                throw new CudaException("cuMemAlloc(" + bytes + " bytes)", "CUDA_ERROR_OUT_OF_MEMORY", 2, "out of memory");
            }
            used += bytes;
            long a = next;
            next += bytes;
            sizes.put(a, bytes);
            return a;
        }

        @Override
        public void free(long address) {
            used -= sizes.remove(address);
            freed.add(address);
        }
    }

    @Test
    void bucketsRoundUpToPowersOfTwoThenTwoMebibytes() {
        assertEquals(512, CachingAllocator.bucket(0));
        assertEquals(512, CachingAllocator.bucket(512));
        assertEquals(1024, CachingAllocator.bucket(513));
        assertEquals(1 << 20, CachingAllocator.bucket((1 << 19) + 1));
        assertEquals(4L << 20, CachingAllocator.bucket((2L << 20) + 1));
        assertEquals(4L << 20, CachingAllocator.bucket(4L << 20));
    }

    @Test
    void freedBuffersAreReusedAndTheHighWaterMarkIsKept() {
        FakeRaw raw = new FakeRaw(1L << 30);
        try (CachingAllocator alloc = new CachingAllocator(raw)) {
            CudaBuffer a = alloc.allocate(1000);
            CudaBuffer b = alloc.allocate(3L << 20);
            long aAddress = a.address();
            assertEquals(1024, a.capacity());
            a.close();
            a.close(); // idempotent
            assertThrows(IllegalStateException.class, a::address);
            CudaBuffer c = alloc.allocate(900); // same bucket: the cached block comes back
            assertEquals(aAddress, c.address());
            CachingAllocator.Stats s = alloc.stats();
            assertEquals(2, s.driverAllocations());
            assertEquals(1, s.reuses());
            assertEquals(900 + (3L << 20), s.bytesInUse());
            assertEquals(1000 + (3L << 20), s.highWaterMark());
            b.close();
            c.close();
            assertEquals(0, alloc.stats().bytesInUse());
            assertEquals(1024 + (4L << 20), alloc.stats().bytesCached());
            alloc.trim();
            assertEquals(0, alloc.stats().bytesCached());
            assertEquals(2, raw.freed.size());
        }
    }

    @Test
    void outOfMemoryEmptiesTheCacheAndRetriesOnce() {
        FakeRaw raw = new FakeRaw(8L << 20);
        try (CachingAllocator alloc = new CachingAllocator(raw)) {
            alloc.allocate(4L << 20).close(); // cached 4 MiB
            CudaBuffer big = alloc.allocate(6L << 20); // needs the cached block freed first
            assertEquals(6L << 20, big.byteSize());
            assertEquals(0, alloc.stats().bytesCached());
            CudaException e = assertThrows(CudaException.class, () -> alloc.allocate(4L << 20));
            assertEquals("CUDA_ERROR_OUT_OF_MEMORY", e.errorName());
            assertTrue(e.getMessage().startsWith("cuMemAlloc(4194304 bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (2)"), e.getMessage());
        }
    }

    @Test
    void launchesCheckBufferSizesAndGeometry() {
        FakeBuffer small = new FakeBuffer(1, 16);
        FakeBuffer big = new FakeBuffer(2, 1 << 20);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Kernels.matmulF32(big, small, big, 8, 8, 8, 8, 8, 8, false, false, 1f, 0f));
        assertTrue(e.getMessage().contains("matmul_f32 A: buffer holds 16 bytes but the launch reads or writes 256"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> Kernels.attentionForward(big, big, big, big, big, 1, 4, 2, 2, 256, 0));
        assertTrue(e.getMessage().contains("head size 256"), e.getMessage());
        Launch l = Kernels.matmulF32(big, big, big, 65, 130, 7, 7, 130, 130, false, false, 1f, 0f);
        assertEquals(3, l.gridX());
        assertEquals(2, l.gridY());
        assertEquals(256, l.threads());
    }
}
