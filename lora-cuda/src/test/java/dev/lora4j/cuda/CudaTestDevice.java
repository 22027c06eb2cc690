package dev.lora4j.cuda;

import java.util.ArrayList;
import java.util.List;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;

/**
 * The GPU as a {@link TestDevice}: buffers are device memory from the context's caching
 * allocator, launches go to {@code cuLaunchKernel} at once, {@link #run()} waits for the stream.
 * One context per JVM (the tests tagged "gpu" share it).
 */
final class CudaTestDevice implements TestDevice {
    private static CudaContext shared;

    private final CudaContext context;
    private final List<CudaBuffer> owned = new ArrayList<>();

    private CudaTestDevice(CudaContext context) {
        this.context = context;
    }

    static synchronized CudaTestDevice open() {
        if (shared == null) {
            shared = CudaContext.open(Integer.getInteger("lora4j.cuda.device", 0));
            System.out.println("GPU tests on " + shared);
        }
        return new CudaTestDevice(shared);
    }

    private final class Buf implements TestDevice.Buf {
        final CudaBuffer buffer;

        Buf(CudaBuffer buffer) {
            this.buffer = buffer;
        }

        @Override
        public long byteSize() {
            return buffer.byteSize();
        }

        @Override
        public byte[] raw() {
            byte[] out = new byte[Math.toIntExact(buffer.byteSize())];
            context.makeCurrent();
            try (BytePointer host = new BytePointer(out.length)) {
                CudaDriver.check(cudart.cuMemcpyDtoH(host, buffer.address(), out.length), "cuMemcpyDtoH");
                host.get(out);
            }
            return out;
        }
    }

    @Override
    public TestDevice.Buf bytes(byte[] data) {
        CudaBuffer b = context.upload(data);
        owned.add(b);
        return new Buf(b);
    }

    @Override
    public KernelBuffer allocate(long bytes) {
        CudaBuffer b = context.allocator().allocate(bytes);
        owned.add(b);
        return new Buf(b);
    }

    CudaContext context() {
        return context;
    }

    /** Returns every buffer of this device to the allocator's cache. */
    void release() {
        for (CudaBuffer b : owned) {
            b.close();
        }
        owned.clear();
    }

    @Override
    public void launch(Launch launch) {
        List<KernelArgs.Arg> args = launch.args().list();
        KernelArgs device = new KernelArgs();
        for (KernelArgs.Arg a : args) {
            switch (a.kind()) {
                case POINTER -> device.ptr(a.value() == null ? null
                        : a.value() instanceof BufferSlice sl ? BufferSlice.of(((Buf) sl.base()).buffer, sl.offset(), sl.byteSize())
                        : ((Buf) a.value()).buffer);
                case INT -> device.i32((Integer) a.value());
                case LONG -> device.i64((Long) a.value());
                case FLOAT -> device.f32((Float) a.value());
                case DOUBLE -> device.f64((Double) a.value());
                default -> throw new AssertionError(a.kind());
            }
        }
        context.launch(new Launch(launch.module(), launch.kernel(), launch.gridX(), launch.gridY(), launch.gridZ(), launch.threads(),
                device));
    }

    @Override
    public void run() {
        context.synchronize();
    }

    @Override
    public double slack() {
        return 2e-6; // FMA contraction, expf/rsqrtf intrinsics and tensor-core summation order
    }
}
