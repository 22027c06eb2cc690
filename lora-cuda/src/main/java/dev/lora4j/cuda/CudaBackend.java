package dev.lora4j.cuda;

import dev.lora4j.backend.AdamWStep;
import dev.lora4j.backend.Arena;
import dev.lora4j.backend.AttentionMask;
import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.backend.Gelu;
import dev.lora4j.quant.QuantizedStorage;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Device;
import dev.lora4j.tensor.Storage;
import dev.lora4j.tensor.Tensor;
import java.lang.ref.Cleaner;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.global.cudart;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The device-resident backend of lora4j's op-level SPI: every {@link Tensor} it makes lives in
 * device memory ({@link CudaStorage}, {@link Device#CUDA}), and every operation is a sequence of
 * kernel launches ({@link Kernels}) on device storages. The only copies between host and device are
 * {@link #fromHost}, {@link #toHost}, {@link #toDevice} (model weights, once), {@link CudaStorage#decode}
 * (explicit reads), the small host inputs of an operation (token ids, labels, the weights of
 * {@link #weightedSum}), and the one double that {@link #sum}, {@link #sumOfSquares} and
 * {@link #crossEntropy} return. {@link #transfers()} counts them.
 *
 * <p>Memory comes from a {@link CachingAllocator} (size buckets, reuse across steps, high-water
 * mark in {@link #memory()}); while an {@link #openArena() arena} is open on a thread, buffers it
 * hands out return to the cache when it closes, as the CPU backends' heap pool does; other buffers
 * return when their tensor becomes unreachable.
 *
 * <p>The device is a {@link DeviceRuntime}: a GPU through {@link CudaContext} ({@link #create()},
 * found by {@code Backends} through {@link CudaBackendProvider}), or, in the tests, the host
 * emulation of the same kernels. Operations without a kernel throw UnsupportedOperationException
 * naming the operation: nothing falls back to host copies.
 */
public final class CudaBackend implements Backend, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(CudaBackend.class);
    private static final Cleaner CLEANER = Cleaner.create();
    /** Bytes of one host-device copy at most (Java arrays). */
    private static final int CHUNK = 1 << 26;

    private final DeviceRuntime runtime;
    private final CachingAllocator allocator;
    private final Backend cpu;
    private final CublasGemm cublas;
    private final ThreadLocal<ArrayDeque<DeviceArena>> arenas = ThreadLocal.withInitial(ArrayDeque::new);
    private final AtomicLong uploads = new AtomicLong();
    private final AtomicLong uploadBytes = new AtomicLong();
    private final AtomicLong downloads = new AtomicLong();
    private final AtomicLong downloadBytes = new AtomicLong();
    private final AtomicLong largestDownload = new AtomicLong();

    /** A backend over {@code runtime} (a GPU's {@link CudaContext}, or an emulation); F32 products on lora4j's kernel. */
    public CudaBackend(DeviceRuntime runtime) {
        this(runtime, null);
    }

    private CudaBackend(DeviceRuntime runtime, CublasGemm cublas) {
        this.runtime = runtime;
        this.allocator = runtime instanceof CudaContext c ? c.allocator() : new CachingAllocator(runtime);
        this.cpu = Backends.vector().orElse(Backends.scalar());
        this.cublas = cublas;
    }

    /**
     * Opens GPU {@code lora4j.cuda.device} (default 0). {@code lora4j.cuda.cublas}: auto (measure),
     * on, off. Throws UnsupportedOperationException with the reason when no usable GPU is present.
     */
    public static CudaBackend create() {
        int ordinal = Integer.getInteger("lora4j.cuda.device", 0);
        CudaContext context = CudaContext.open(ordinal);
        String mode = System.getProperty("lora4j.cuda.cublas", "auto");
        CublasGemm cublas = null;
        if (!mode.equals("off")) {
            try {
                cublas = new CublasGemm(context);
            } catch (UnsupportedOperationException | CudaException e) {
                if (mode.equals("on")) {
                    context.close();
                    throw new UnsupportedOperationException("-Dlora4j.cuda.cublas=on: " + e.getMessage(), e);
                }
                LOG.info("lora4j cuda: cuBLAS unavailable, using lora4j's kernels only: {}", e.getMessage());
            }
        }
        boolean use = cublas != null && (mode.equals("on") || cublasFaster(context, cublas));
        CudaBackend chosen = new CudaBackend(context, use ? cublas : null);
        LOG.info("lora4j cuda backend on {}: F32 products on {}", context, use ? "cuBLAS" : "lora4j's tiled kernel");
        return chosen;
    }

    /** Times lora4j's matmul_f32 and cublasGemmEx on a 1024³ product (after a warm-up) with CUDA events. */
    private static boolean cublasFaster(CudaContext context, CublasGemm cublas) {
        int s = 1024;
        try (CudaBuffer a = context.allocator().allocate(4L * s * s); CudaBuffer b = context.allocator().allocate(4L * s * s);
             CudaBuffer c = context.allocator().allocate(4L * s * s)) {
            float own = time(context, () -> context.launch(Kernels.matmulF32(c, a, b, s, s, s, s, s, s, false, true, 1f, 0f)));
            float lib = time(context, () -> cublas.gemm(false, true, s, s, s, 1f, a, CublasGemm.F32, s, b, CublasGemm.F32, s, 0f,
                    c, s));
            LOG.info("lora4j cuda: 1024³ F32 product: lora4j kernel {} ms, cuBLAS {} ms", own, lib);
            return lib < own;
        }
    }

    private static float time(CudaContext context, Runnable work) {
        CUevent_st start = new CUevent_st();
        CUevent_st stop = new CUevent_st();
        CudaDriver.check(cudart.cuEventCreate(start, cudart.CU_EVENT_DEFAULT), "cuEventCreate");
        CudaDriver.check(cudart.cuEventCreate(stop, cudart.CU_EVENT_DEFAULT), "cuEventCreate");
        try {
            work.run(); // warm-up: module load, JIT
            CudaDriver.check(cudart.cuEventRecord(start, context.stream()), "cuEventRecord");
            for (int i = 0; i < 5; i++) {
                work.run();
            }
            CudaDriver.check(cudart.cuEventRecord(stop, context.stream()), "cuEventRecord");
            CudaDriver.check(cudart.cuEventSynchronize(stop), "cuEventSynchronize");
            float[] ms = new float[1];
            CudaDriver.check(cudart.cuEventElapsedTime(ms, start, stop), "cuEventElapsedTime");
            return ms[0] / 5;
        } finally {
            cudart.cuEventDestroy(start);
            cudart.cuEventDestroy(stop);
        }
    }

    public DeviceRuntime runtime() {
        return runtime;
    }

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public Device device() {
        return Device.CUDA;
    }

    // ================================================================ transfers

    /** Host-device copies made by this backend so far (bytes and counts; the largest single download). */
    public record Transfers(long uploads, long uploadBytes, long downloads, long downloadBytes, long largestDownload) {
        @Override
        public String toString() {
            return uploads + " uploads (" + uploadBytes + " B), " + downloads + " downloads (" + downloadBytes
                    + " B, largest " + largestDownload + " B)";
        }
    }

    public Transfers transfers() {
        return new Transfers(uploads.get(), uploadBytes.get(), downloads.get(), downloadBytes.get(), largestDownload.get());
    }

    /** Starts counting {@link #transfers()} from zero. */
    public void resetTransfers() {
        uploads.set(0);
        uploadBytes.set(0);
        downloads.set(0);
        downloadBytes.set(0);
        largestDownload.set(0);
    }

    private void put(CudaBuffer dst, long byteOffset, byte[] bytes) {
        uploads.incrementAndGet();
        uploadBytes.addAndGet(bytes.length);
        for (int at = 0; at < bytes.length; at += CHUNK) {
            int n = Math.min(CHUNK, bytes.length - at);
            runtime.upload(dst.address() + byteOffset + at, bytes, at, n);
        }
    }

    private byte[] get(KernelBuffer src, long bytes) {
        downloads.incrementAndGet();
        downloadBytes.addAndGet(bytes);
        largestDownload.accumulateAndGet(bytes, Math::max);
        byte[] out = new byte[Math.toIntExact(bytes)];
        long address = DeviceRuntime.addressOf(src);
        for (int at = 0; at < out.length; at += CHUNK) {
            runtime.download(address + at, out, at, Math.min(CHUNK, out.length - at));
        }
        return out;
    }

    private static byte[] bytes(float[] v, int offset, int count) {
        ByteBuffer b = ByteBuffer.allocate(4 * count).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(v, offset, count);
        return b.array();
    }

    private static byte[] bytes(int[] v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asIntBuffer().put(v);
        return b.array();
    }

    /** A small host input (token ids, labels) on the device, for one operation (from the arena if one is open). */
    private CudaBuffer ints(int[] values) {
        CudaBuffer b = scratch(4L * values.length);
        if (values.length > 0) {
            put(b, 0, bytes(values));
        }
        return b;
    }

    /** Called by {@link CudaStorage#decode}: count elements from start, widened to F32. */
    void download(CudaStorage s, long start, int count, float[] dst, int dstOffset) {
        if (count == 0) {
            return;
        }
        if (s.quant() != null) {
            CudaBuffer wide = scratch(4 * s.size());
            try {
                runtime.launch(Kernels.dequant4(wide, s.quant(), false));
                readFloats(BufferSlice.floats(wide, start, count), count, dst, dstOffset);
            } finally {
                wide.close();
            }
            return;
        }
        if (s.dtype() == DType.BF16) {
            CudaBuffer wide = scratch(4L * count);
            try {
                runtime.launch(Kernels.strided(wide, new int[] {1}, BufferSlice.of(s.buffer(), 2 * start, 2L * count), true,
                        new int[] {1}, 0f, new int[] {count}));
                readFloats(wide, count, dst, dstOffset);
            } finally {
                wide.close();
            }
            return;
        }
        readFloats(BufferSlice.floats(s.buffer(), start, count), count, dst, dstOffset);
    }

    private void readFloats(KernelBuffer src, int count, float[] dst, int dstOffset) {
        ByteBuffer.wrap(get(src, 4L * count)).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(dst, dstOffset, count);
    }

    // ================================================================ storage

    private final class DeviceArena implements Arena {
        final Set<CudaBuffer> handedOut = new HashSet<>();
        long bytes;
        boolean closed;

        @Override
        public long bytesHandedOut() {
            return bytes;
        }

        @Override
        public void close() {
            if (closed) {
                return;
            }
            closed = true;
            ArrayDeque<DeviceArena> stack = arenas.get();
            stack.remove(this);
            for (CudaBuffer b : handedOut) {
                b.close();
            }
            handedOut.clear();
        }
    }

    @Override
    public Arena openArena() {
        DeviceArena a = new DeviceArena();
        arenas.get().push(a);
        return a;
    }

    /** A buffer for an intermediate: from the open arena, or returned to the cache when unreachable (or closed). */
    private CudaBuffer scratch(long bytes) {
        CudaBuffer b = allocator.allocate(bytes);
        DeviceArena arena = arenas.get().peek();
        if (arena != null) {
            arena.handedOut.add(b);
            arena.bytes += bytes;
        }
        return b;
    }

    private Tensor wrap(CudaBuffer buffer, DType dtype, long size, FrozenWeight.Quant4 quant, boolean fromArena, int... shape) {
        CudaStorage s = new CudaStorage(this, buffer, dtype, size, quant);
        if (!fromArena) {
            CLEANER.register(s, buffer::close);
        }
        return new Tensor(s, shape);
    }

    @Override
    public Tensor empty(int... shape) {
        long n = Tensor.numel(shape);
        DeviceArena arena = arenas.get().peek();
        if (arena != null) {
            return wrap(scratch(4 * n), DType.F32, n, null, true, shape);
        }
        return wrap(allocator.allocate(4 * n), DType.F32, n, null, false, shape);
    }

    @Override
    public Tensor zeros(int... shape) {
        Tensor t = empty(shape);
        if (t.numel() > 0) {
            runtime.launch(Kernels.fill(buf(t), 0f, t.numel()));
        }
        return t;
    }

    @Override
    public void release(Tensor t) {
        if (!(t.storage() instanceof CudaStorage s)) {
            return;
        }
        DeviceArena arena = arenas.get().peek();
        if (arena != null && arena.handedOut.remove(s.buffer())) {
            s.buffer().close();
        }
    }

    @Override
    public Tensor fromHost(float[] values, int... shape) {
        if (Tensor.numel(shape) != values.length) {
            throw new IllegalArgumentException("fromHost: " + values.length + " values for shape " + Arrays.toString(shape));
        }
        CudaBuffer b = allocator.allocate(4L * values.length);
        Tensor t = wrap(b, DType.F32, values.length, null, false, shape);
        if (values.length > 0) {
            put(b, 0, bytes(values, 0, values.length));
        }
        return t;
    }

    /**
     * A host tensor on this device in the storage the kernels read it from: F32 stays F32, a BF16
     * weight stays BF16 (2 bytes per element), a bitsandbytes 4-bit weight ({@link QuantizedStorage})
     * stays 4-bit with its absmax (double-quantized or not), anything else (F16, a view) becomes F32.
     * Frozen weights are moved once with this; the result keeps the name.
     */
    @Override
    public Tensor toDevice(Tensor host) {
        if (host.device() == Device.CUDA) {
            return host;
        }
        Storage st = host.storage();
        int[] shape = host.shape();
        Tensor out;
        if (st instanceof QuantizedStorage q && host.isContiguous() && host.offset() == 0 && q.size() == host.numel()) {
            out = quantized(q, shape);
        } else if (st instanceof BufferStorage bs && bs.dtype() == DType.BF16 && host.isContiguous() && host.offset() == 0
                && bs.size() == host.numel()) {
            byte[] raw = new byte[Math.toIntExact(bs.byteSize())];
            bs.bytes().get(raw);
            CudaBuffer b = allocator.allocate(raw.length);
            out = wrap(b, DType.BF16, bs.size(), null, false, shape);
            put(b, 0, raw);
        } else {
            out = fromHost(host.toFloatArray(), shape);
        }
        return out.name(host.name()).requiresGrad(host.requiresGrad());
    }

    private Tensor quantized(QuantizedStorage q, int[] shape) {
        CudaBuffer code = codeBuffer(q);
        CudaBuffer packed = upload(q.packed());
        FrozenWeight.Quant4 w;
        if (!q.isDoubleQuant()) {
            w = new FrozenWeight.Quant4(packed, upload(bytes(q.absmax(), 0, q.absmax().length)), null, null, null, 0f, code,
                    q.blocksize(), 0, q.size());
        } else {
            QuantizedStorage.NestedAbsmax n = q.nested();
            w = new FrozenWeight.Quant4(packed, null, upload(n.codes()), upload(bytes(n.absmax(), 0, n.absmax().length)),
                    upload(bytes(n.map(), 0, n.map().length)), (float) n.offset(), code, q.blocksize(), n.blocksize(), q.size());
        }
        CudaStorage s = new CudaStorage(this, packed, DType.U8, q.size(), w);
        FrozenWeight.Quant4 held = w;
        CLEANER.register(s, () -> {
            for (KernelBuffer k : new KernelBuffer[] {held.packed(), held.absmax(), held.absmaxCodes(), held.nestedAbsmax(),
                    held.nestedMap()}) {
                if (k instanceof CudaBuffer cb) {
                    cb.close();
                }
            }
        });
        return new Tensor(s, shape);
    }

    private CudaBuffer codeBuffer(QuantizedStorage q) {
        // one table per 4-bit type; tables are 16 floats, so each weight may simply get its own
        return upload(bytes(q.type().code(), 0, 16));
    }

    private CudaBuffer upload(byte[] raw) {
        CudaBuffer b = allocator.allocate(raw.length);
        put(b, 0, raw);
        return b;
    }

    @Override
    public void toHost(float[] dst, int dstOffset, Tensor src) {
        CudaStorage s = storage(src, "toHost");
        int n = Math.toIntExact(src.numel());
        if (n == 0) {
            return;
        }
        if (src.isContiguous() && s.quant() == null) {
            download(s, src.offset(), n, dst, dstOffset);
            return;
        }
        CudaBuffer tmp = scratch(4L * n);
        try {
            copyInto(tmp, Tensor.contiguousStrides(src.shape()), src);
            readFloats(tmp, n, dst, dstOffset);
        } finally {
            tmp.close();
        }
    }

    @Override
    public void copy(Tensor dst, Tensor src) {
        if (!Arrays.equals(dst.shape(), src.shape())) {
            throw new IllegalArgumentException("copy: shapes " + Arrays.toString(dst.shape()) + " and "
                    + Arrays.toString(src.shape()));
        }
        CudaStorage d = storage(dst, "copy");
        f32(dst, "copy");
        if (dst.numel() == 0) {
            return;
        }
        copyInto(BufferSlice.floats(d.buffer(), dst.offset(), d.size() - dst.offset()), dst.strides(), src);
    }

    /** dst (a buffer at the view's first element, with strides) = src (any storage of this device, any view). */
    private void copyInto(KernelBuffer dst, int[] dstStrides, Tensor src) {
        CudaStorage s = storage(src, "copy");
        int[] shape = src.shape();
        int[] srcStrides = src.strides();
        CudaBuffer wide = null;
        KernelBuffer from;
        boolean bf16 = false;
        try {
            if (s.quant() != null) {
                wide = scratch(4 * s.size());
                runtime.launch(Kernels.dequant4(wide, s.quant(), false));
                from = BufferSlice.floats(wide, src.offset(), s.size() - src.offset());
            } else if (s.dtype() == DType.BF16) {
                bf16 = true;
                from = BufferSlice.of(s.buffer(), 2 * src.offset(), 2 * (s.size() - src.offset()));
            } else {
                f32(src, "copy");
                from = BufferSlice.floats(s.buffer(), src.offset(), s.size() - src.offset());
            }
            int[][] squeezed = squeeze(shape, dstStrides, srcStrides);
            runtime.launch(Kernels.strided(dst, squeezed[1], from, bf16, squeezed[2], 0f, squeezed[0]));
        } finally {
            if (wide != null) {
                wide.close();
            }
        }
    }

    /** Drops dimensions of size 1 and merges dimensions contiguous in both views (at most MAX_STRIDED_RANK remain). */
    private static int[][] squeeze(int[] shape, int[] a, int[] b) {
        int[] s = new int[shape.length];
        int[] sa = new int[shape.length];
        int[] sb = new int[shape.length];
        int r = 0;
        for (int d = 0; d < shape.length; d++) {
            if (shape[d] == 1) {
                continue;
            }
            if (r > 0 && sa[r - 1] == (long) a[d] * shape[d] && sb[r - 1] == (long) b[d] * shape[d]) {
                s[r - 1] *= shape[d];
                sa[r - 1] = a[d];
                sb[r - 1] = b[d];
                continue;
            }
            s[r] = shape[d];
            sa[r] = a[d];
            sb[r] = b[d];
            r++;
        }
        if (r == 0) {
            return new int[][] {{1}, {1}, {1}};
        }
        if (r > Kernels.MAX_STRIDED_RANK) {
            throw new UnsupportedOperationException("copy of a view of shape " + Arrays.toString(shape) + " with "
                    + r + " non-mergeable dimensions on the CUDA device: the strided kernel handles "
                    + Kernels.MAX_STRIDED_RANK);
        }
        return new int[][] {Arrays.copyOf(s, r), Arrays.copyOf(sa, r), Arrays.copyOf(sb, r)};
    }

    @Override
    public void fill(Tensor dst, float value) {
        CudaStorage d = storage(dst, "fill");
        f32(dst, "fill");
        if (dst.numel() == 0) {
            return;
        }
        if (dst.isContiguous()) {
            runtime.launch(Kernels.fill(buf(dst), value, dst.numel()));
            return;
        }
        int[][] sq = squeeze(dst.shape(), dst.strides(), dst.strides());
        runtime.launch(Kernels.strided(BufferSlice.floats(d.buffer(), dst.offset(), d.size() - dst.offset()), sq[1], null, false,
                null, value, sq[0]));
    }

    // ================================================================ operand checks

    private CudaStorage storage(Tensor t, String op) {
        if (!(t.storage() instanceof CudaStorage s)) {
            throw new IllegalArgumentException(op + ": " + describe(t) + " is on " + t.device()
                    + " but this backend computes on CUDA; move it with Tensor.to(Device.CUDA) or CudaBackend.toDevice");
        }
        if (s.backend() != this) {
            throw new IllegalArgumentException(op + ": " + describe(t) + " belongs to another CUDA backend (device)");
        }
        return s;
    }

    private static String describe(Tensor t) {
        return (t.name() != null ? "'" + t.name() + "' " : "a tensor ") + Arrays.toString(t.shape());
    }

    private void f32(Tensor t, String op) {
        if (t.dtype() != DType.F32) {
            throw new IllegalArgumentException(op + ": " + describe(t) + " is " + t.dtype() + "; this operand must be F32");
        }
    }

    /** The contiguous F32 tensor t as a kernel buffer starting at its first element. */
    private KernelBuffer buf(Tensor t) {
        CudaStorage s = storage(t, "kernel operand");
        if (s.dtype() != DType.F32 || !t.isContiguous()) {
            throw new IllegalArgumentException(describe(t) + " must be contiguous F32 on the device for this operation, is "
                    + s.dtype() + (t.isContiguous() ? "" : " (strided view)") + "; make it with contiguous()");
        }
        return BufferSlice.floats(s.buffer(), t.offset(), t.numel());
    }

    private KernelBuffer bufOrNull(Tensor t) {
        return t == null ? null : buf(t);
    }

    /** A storage of this device from offset on, for gemm operands addressed by leading dimensions. */
    private KernelBuffer from(Storage st, long offset, String op) {
        if (!(st instanceof CudaStorage s) || s.backend() != this) {
            throw new IllegalArgumentException(op + ": an operand is " + st + ", not device memory of this CUDA backend");
        }
        if (s.dtype() != DType.F32) {
            throw new IllegalArgumentException(op + ": an operand is " + s.dtype() + " where F32 is needed");
        }
        return BufferSlice.floats(s.buffer(), offset, s.size() - offset);
    }

    private static int sameNumel(String op, Tensor... ts) {
        long n = ts[0].numel();
        for (Tensor t : ts) {
            if (t != null && t.numel() != n) {
                throw new IllegalArgumentException(op + ": operands of " + n + " and " + t.numel() + " elements");
            }
        }
        return Math.toIntExact(n);
    }

    private static UnsupportedOperationException unsupported(String op, String what) {
        return new UnsupportedOperationException(op + " " + what + " has no kernel on the CUDA device yet (lora-cuda); "
                + "run this model on the CPU backend");
    }

    private void launch(List<Launch> launches) {
        runtime.launchAll(launches);
    }

    // ================================================================ matrix products

    @Override
    public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, Storage a, long aOffset, int lda,
                     Storage b, long bOffset, int ldb, float beta, Storage c, long cOffset, int ldc) {
        if (m == 0 || n == 0) {
            return;
        }
        KernelBuffer cb = from(c, cOffset, "gemm C");
        if (k == 0) {
            runtime.launch(Kernels.elementwise(Kernels.Ew.SCALE, cb, cb, null, (long) m * ldc - ldc + n, beta, 0));
            return;
        }
        KernelBuffer ab = from(a, aOffset, "gemm A");
        CudaStorage bs = (CudaStorage) checkDevice(b, "gemm B");
        if (bs.dtype() == DType.F32) {
            KernelBuffer bb = from(b, bOffset, "gemm B");
            if (cublas != null && (long) m * n * k >= (1L << 22)) {
                cublas.gemm(transA, transB, m, n, k, alpha, ab, CublasGemm.F32, lda, bb, CublasGemm.F32, ldb, beta, cb, ldc);
            } else {
                runtime.launch(Kernels.matmulF32(cb, ab, bb, m, n, k, lda, ldb, ldc, transA, transB, alpha, beta));
            }
            return;
        }
        // a frozen BF16 or 4-bit B: widened on the device into a scratch F32 copy, then the F32 product
        long elements = bs.size() - bOffset;
        CudaBuffer wide = scratch(4 * bs.size());
        try {
            if (bs.quant() != null) {
                runtime.launch(Kernels.dequant4(wide, bs.quant(), false));
            } else {
                runtime.launch(Kernels.strided(wide, new int[] {1}, bs.buffer(), true, new int[] {1}, 0f,
                        new int[] {Math.toIntExact(bs.size())}));
            }
            runtime.launch(Kernels.matmulF32(cb, ab, BufferSlice.floats(wide, bOffset, elements), m, n, k, lda, ldb, ldc, transA,
                    transB, alpha, beta));
        } finally {
            wide.close();
        }
    }

    private Storage checkDevice(Storage st, String op) {
        if (!(st instanceof CudaStorage s) || s.backend() != this) {
            throw new IllegalArgumentException(op + ": the operand is " + st + ", not device memory of this CUDA backend; "
                    + "move the weight with CudaBackend.toDevice");
        }
        return st;
    }

    /** The frozen weight as the LoRA kernels read it (BF16 or 4-bit), or null when it is F32. */
    private FrozenWeight frozen(Tensor w, String op) {
        CudaStorage s = storage(w, op);
        if (s.quant() != null) {
            if (w.offset() != 0 || !w.isContiguous()) {
                throw new IllegalArgumentException(op + ": a 4-bit weight must be used whole, not as a view");
            }
            return s.quant();
        }
        if (s.dtype() == DType.BF16) {
            if (!w.isContiguous()) {
                throw new IllegalArgumentException(op + ": a BF16 weight must be contiguous");
            }
            return new FrozenWeight.Bf16(BufferSlice.of(s.buffer(), 2 * w.offset(), 2 * w.numel()), w.numel());
        }
        return null;
    }

    @Override
    public void linear(Tensor y, Tensor x, Tensor w, Tensor bias) {
        int out = w.dim(0);
        int in = w.dim(1);
        int rows = Math.toIntExact(x.numel() / in);
        if (rows == 0) {
            return;
        }
        FrozenWeight fw = frozen(w, "linear");
        if (fw != null) {
            runtime.launch(Kernels.frozenLinear(buf(y), buf(x), fw, rows, out, in, true, 0f));
        } else {
            runtime.launch(Kernels.matmulF32(buf(y), buf(x), buf(w), rows, out, in, in, in, out, false, true, 1f, 0f));
        }
        if (bias != null) {
            runtime.launch(Kernels.addRow(buf(y), buf(y), buf(bias), rows, out));
        }
    }

    @Override
    public void linearBackwardInput(Tensor dX, Tensor dY, Tensor w) {
        int out = w.dim(0);
        int in = w.dim(1);
        int rows = Math.toIntExact(dY.numel() / out);
        if (rows == 0) {
            return;
        }
        FrozenWeight fw = frozen(w, "linearBackwardInput");
        if (fw != null) {
            runtime.launch(Kernels.frozenLinear(buf(dX), buf(dY), fw, rows, in, out, false, 1f));
        } else {
            runtime.launch(Kernels.matmulF32(buf(dX), buf(dY), buf(w), rows, in, out, out, in, in, false, false, 1f, 1f));
        }
    }

    @Override
    public void linearBackwardWeight(Tensor dW, Tensor dBias, Tensor dY, Tensor x) {
        int out = dY.dim(-1);
        int in = x.dim(-1);
        int rows = Math.toIntExact(dY.numel() / out);
        if (rows == 0) {
            return;
        }
        if (dW != null) {
            runtime.launch(Kernels.matmulF32(buf(dW), buf(dY), buf(x), out, in, rows, out, in, in, true, false, 1f, 1f));
        }
        if (dBias != null) {
            runtime.launch(Kernels.sumRows(buf(dBias), buf(dY), rows, out));
        }
    }

    @Override
    public void loraForward(Tensor y, Tensor xa, Tensor xd, Tensor a, Tensor b, float scaling) {
        int r = a.dim(0);
        int in = a.dim(1);
        int out = b.dim(0);
        int rows = Math.toIntExact(xd.numel() / in);
        if (rows == 0) {
            return;
        }
        runtime.launch(Kernels.matmulF32(buf(xa), buf(xd), buf(a), rows, r, in, in, in, r, false, true, 1f, 0f));
        runtime.launch(Kernels.matmulF32(buf(y), buf(xa), buf(b), rows, out, r, r, r, out, false, true, scaling, 1f));
    }

    @Override
    public void loraBackward(Tensor dXd, Tensor dA, Tensor dB, Tensor u, Tensor dY, Tensor xd, Tensor xa, Tensor a, Tensor b,
                             float scaling) {
        int r = a.dim(0);
        int in = a.dim(1);
        int out = b.dim(0);
        int rows = Math.toIntExact(xd.numel() / in);
        if (rows == 0) {
            return;
        }
        KernelBuffer ub = buf(u);
        runtime.launch(Kernels.matmulF32(ub, buf(dY), buf(b), rows, r, out, out, r, r, false, false, 1f, 0f));
        if (dB != null) {
            runtime.launch(Kernels.matmulF32(buf(dB), buf(dY), buf(xa), out, r, rows, out, r, r, true, false, scaling, 1f));
        }
        if (dA != null) {
            runtime.launch(Kernels.matmulF32(buf(dA), ub, buf(xd), r, in, rows, r, in, in, true, false, scaling, 1f));
        }
        if (dXd != null) {
            runtime.launch(Kernels.matmulF32(buf(dXd), ub, buf(a), rows, in, r, r, in, in, false, false, scaling, 1f));
        }
    }

    // ================================================================ element-wise

    private void ew(Kernels.Ew op, Tensor out, Tensor a, Tensor b, float alpha, long aux, String name) {
        int n = sameNumel(name, out, a, b);
        if (n == 0) {
            return;
        }
        runtime.launch(Kernels.elementwise(op, buf(out), buf(a), bufOrNull(b), n, alpha, aux));
    }

    @Override
    public void add(Tensor out, Tensor a, Tensor b) {
        ew(Kernels.Ew.ADD, out, a, b, 0f, 0, "add");
    }

    @Override
    public void addRowVector(Tensor out, Tensor x, Tensor bias) {
        int cols = bias.dim(-1);
        long rows = x.numel() / cols;
        if (rows > 0) {
            runtime.launch(Kernels.addRow(buf(out), buf(x), buf(bias), rows, cols));
        }
    }

    @Override
    public void addScaled(Tensor dst, Tensor src, float alpha) {
        ew(Kernels.Ew.ADD_SCALED, dst, src, null, alpha, 0, "addScaled");
    }

    @Override
    public void mul(Tensor out, Tensor a, Tensor b) {
        ew(Kernels.Ew.MUL, out, a, b, 0f, 0, "mul");
    }

    @Override
    public void addProduct(Tensor dst, Tensor a, Tensor b) {
        ew(Kernels.Ew.ADD_PRODUCT, dst, a, b, 0f, 0, "addProduct");
    }

    @Override
    public void scale(Tensor out, Tensor a, float s) {
        ew(Kernels.Ew.SCALE, out, a, null, s, 0, "scale");
    }

    @Override
    public void sumRows(Tensor dst, Tensor x) {
        int cols = dst.dim(-1);
        int rows = Math.toIntExact(x.numel() / cols);
        if (rows > 0) {
            runtime.launch(Kernels.sumRows(buf(dst), buf(x), rows, cols));
        }
    }

    private double reduce(Tensor x, KernelBuffer w, Kernels.Reduction op) {
        long n = x.numel();
        if (n == 0) {
            return 0;
        }
        CudaBuffer partial = scratch(8L * Kernels.REDUCE_BLOCKS);
        CudaBuffer out = scratch(8);
        try {
            launch(Kernels.reduce(out, partial, buf(x), w, n, op));
            return ByteBuffer.wrap(get(out, 8)).order(ByteOrder.LITTLE_ENDIAN).getDouble();
        } finally {
            partial.close();
            out.close();
        }
    }

    @Override
    public double sum(Tensor x) {
        return reduce(x, null, Kernels.Reduction.SUM);
    }

    @Override
    public double weightedSum(Tensor x, float[] w) {
        if (w.length != x.numel()) {
            throw new IllegalArgumentException("weightedSum: " + w.length + " weights for " + x.numel() + " elements");
        }
        if (w.length == 0) {
            return 0;
        }
        CudaBuffer wb = scratch(4L * w.length);
        try {
            put(wb, 0, bytes(w, 0, w.length));
            return reduce(x, wb, Kernels.Reduction.WEIGHTED_SUM);
        } finally {
            wb.close();
        }
    }

    @Override
    public double sumOfSquares(Tensor x) {
        return reduce(x, null, Kernels.Reduction.SUM_OF_SQUARES);
    }

    @Override
    public void silu(Tensor out, Tensor x) {
        ew(Kernels.Ew.SILU, out, x, null, 0f, 0, "silu");
    }

    @Override
    public void siluBackward(Tensor dX, Tensor dY, Tensor x) {
        ew(Kernels.Ew.SILU_BACKWARD, dX, x, dY, 0f, 0, "siluBackward");
    }

    @Override
    public void swiglu(Tensor h, Tensor gate, Tensor up) {
        ew(Kernels.Ew.SWIGLU, h, gate, up, 0f, 0, "swiglu");
    }

    @Override
    public void swigluBackward(Tensor dGate, Tensor dUp, Tensor dH, Tensor gate, Tensor up) {
        int n = sameNumel("swigluBackward", dH, gate, up, dGate, dUp);
        if (n > 0 && (dGate != null || dUp != null)) {
            runtime.launch(Kernels.gluBackward(bufOrNull(dGate), bufOrNull(dUp), buf(dH), buf(gate), buf(up), n, 0));
        }
    }

    private static int erf(Gelu kind) {
        return kind == Gelu.ERF ? 1 : 0;
    }

    @Override
    public void gelu(Tensor out, Tensor x, Gelu kind) {
        ew(Kernels.Ew.GELU, out, x, null, 0f, erf(kind), "gelu");
    }

    @Override
    public void geluBackward(Tensor dX, Tensor dY, Tensor x, Gelu kind) {
        ew(Kernels.Ew.GELU_BACKWARD, dX, x, dY, 0f, erf(kind), "geluBackward");
    }

    @Override
    public void geglu(Tensor h, Tensor gate, Tensor up, Gelu kind) {
        ew(Kernels.Ew.GEGLU, h, gate, up, 0f, erf(kind), "geglu");
    }

    @Override
    public void gegluBackward(Tensor dGate, Tensor dUp, Tensor dH, Tensor gate, Tensor up, Gelu kind) {
        int n = sameNumel("gegluBackward", dH, gate, up, dGate, dUp);
        if (n > 0 && (dGate != null || dUp != null)) {
            runtime.launch(Kernels.gluBackward(bufOrNull(dGate), bufOrNull(dUp), buf(dH), buf(gate), buf(up), n,
                    1 + erf(kind)));
        }
    }

    @Override
    public void softCap(Tensor y, Tensor x, float cap) {
        ew(Kernels.Ew.SOFT_CAP, y, x, null, cap, 0, "softCap");
    }

    @Override
    public void softCapBackward(Tensor dX, Tensor dY, Tensor y, float cap) {
        ew(Kernels.Ew.SOFT_CAP_BACKWARD, dX, dY, y, cap, 0, "softCapBackward");
    }

    @Override
    public void dropout(Tensor out, Tensor x, float p, long seed) {
        ew(Kernels.Ew.DROPOUT, out, x, null, p, seed, "dropout");
    }

    // ================================================================ normalization

    @Override
    public void rmsNorm(Tensor y, Tensor rstd, Tensor x, Tensor w, float weightOffset, float eps) {
        int c = w.dim(-1);
        int rows = Math.toIntExact(x.numel() / c);
        if (rows > 0) {
            runtime.launch(Kernels.rmsNormForward(buf(y), buf(rstd), buf(x), buf(w), rows, c, eps, weightOffset));
        }
    }

    @Override
    public void rmsNormBackward(Tensor dX, Tensor dW, Tensor dY, Tensor x, Tensor w, float weightOffset, Tensor rstd) {
        int c = w.dim(-1);
        int rows = Math.toIntExact(x.numel() / c);
        if (rows > 0 && (dX != null || dW != null)) {
            launch(Kernels.rmsNormBackward(bufOrNull(dX), bufOrNull(dW), buf(dY), buf(x), buf(w), weightOffset, buf(rstd), rows,
                    c));
        }
    }

    @Override
    public void layerNorm(Tensor y, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
        int c = w.dim(-1);
        int rows = Math.toIntExact(x.numel() / c);
        if (rows > 0) {
            runtime.launch(Kernels.layerNormForward(buf(y), buf(mean), buf(rstd), buf(x), buf(w), bufOrNull(b), rows, c, eps));
        }
    }

    @Override
    public void layerNormBackward(Tensor dX, Tensor dW, Tensor dB, Tensor dY, Tensor x, Tensor w, Tensor mean, Tensor rstd) {
        int c = w.dim(-1);
        int rows = Math.toIntExact(x.numel() / c);
        if (rows > 0) {
            launch(Kernels.layerNormBackward(bufOrNull(dX), bufOrNull(dW), bufOrNull(dB), buf(dY), buf(x), buf(w), buf(mean),
                    buf(rstd), rows, c));
        }
    }

    // ================================================================ position and attention

    @Override
    public void rope(Tensor out, Tensor x, Tensor cos, Tensor sin, int rotary, int positionOffset, boolean inverse) {
        if (x.rank() != 4) {
            throw new IllegalArgumentException("rope: x must be [B, T, H, D], is " + Arrays.toString(x.shape()));
        }
        if (x.numel() == 0) {
            return;
        }
        runtime.launch(Kernels.ropePartial(buf(out), buf(x), buf(cos), buf(sin), x.dim(0), x.dim(1), x.dim(2), x.dim(3), rotary,
                positionOffset, inverse));
    }

    /** The kernels are causal (with or without a window, key lengths and a soft-cap); a non-causal mask is refused. */
    private static void checkMask(AttentionMask mask, String op) {
        if (!mask.causal()) {
            throw unsupported(op, "without a causal mask");
        }
    }

    /** The mask's key lengths on the device (one int per batch row), or null. */
    private CudaBuffer keyLengths(AttentionMask mask, int b) {
        int[] lengths = mask.keyLengths();
        if (lengths == null) {
            return null;
        }
        if (lengths.length < b) {
            throw new IllegalArgumentException("attention: " + lengths.length + " key lengths for a batch of " + b);
        }
        return ints(Arrays.copyOf(lengths, b));
    }

    /** k or v [B, S', G, D] as a contiguous [B, S, G, D] kernel buffer (S = queryOffset + T), copying a cache view. */
    private KernelBuffer keys(Tensor k, int s, CudaBuffer[] owned, int slot) {
        Tensor view = k.dim(1) == s ? k : new Tensor(k.storage(), new int[] {k.dim(0), s, k.dim(2), k.dim(3)}, k.strides(),
                k.offset());
        if (view.isContiguous() && view.dtype() == DType.F32) {
            return buf(view);
        }
        CudaBuffer tmp = scratch(4 * view.numel());
        owned[slot] = tmp;
        copyInto(tmp, Tensor.contiguousStrides(view.shape()), view);
        return tmp;
    }

    @Override
    public void attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, AttentionMask mask) {
        checkMask(mask, "attention");
        int b = q.dim(0), t = q.dim(1), h = q.dim(2), d = q.dim(3), g = k.dim(2);
        int s = mask.queryOffset() + t;
        if (q.numel() == 0) {
            return;
        }
        CudaBuffer[] owned = new CudaBuffer[3];
        try {
            owned[2] = keyLengths(mask, b);
            runtime.launch(Kernels.attentionForward(buf(out), buf(lse), buf(q), keys(k, s, owned, 0), keys(v, s, owned, 1), b, t, h,
                    g, d, mask.queryOffset(), mask.scale(), mask.window(), owned[2], mask.softCap()));
        } finally {
            close(owned);
        }
    }

    @Override
    public void attentionBackward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out,
                                  Tensor lse, AttentionMask mask) {
        checkMask(mask, "attentionBackward");
        int b = q.dim(0), t = q.dim(1), h = q.dim(2), d = q.dim(3), g = k.dim(2);
        int s = mask.queryOffset() + t;
        if (q.numel() == 0) {
            return;
        }
        CudaBuffer[] owned = new CudaBuffer[4];
        try {
            KernelBuffer dq = buf(dQ), dk = buf(dK), dv = buf(dV);
            runtime.launch(Kernels.fill(dq, 0f, dQ.numel()));
            runtime.launch(Kernels.fill(dk, 0f, dK.numel()));
            runtime.launch(Kernels.fill(dv, 0f, dV.numel()));
            owned[2] = scratch(4L * b * h * t);
            owned[3] = keyLengths(mask, b);
            launch(Kernels.attentionBackward(dq, dk, dv, owned[2], buf(q), keys(k, s, owned, 0), keys(v, s, owned, 1), buf(out),
                    buf(dOut), buf(lse), b, t, h, g, d, mask.queryOffset(), mask.scale(), mask.window(), owned[3],
                    mask.softCap()));
        } finally {
            close(owned);
        }
    }

    private static void close(CudaBuffer[] owned) {
        for (CudaBuffer c : owned) {
            if (c != null) {
                c.close();
            }
        }
    }

    // ================================================================ embedding

    @Override
    public void gather(Tensor out, Tensor table, int[] ids) {
        int c = table.dim(-1);
        int vocab = table.dim(0);
        if (ids.length == 0) {
            return;
        }
        CudaStorage ts = storage(table, "gather");
        if (ts.quant() != null || !table.isContiguous()) {
            throw unsupported("gather", "from a " + (ts.quant() != null ? "4-bit" : "strided") + " table");
        }
        KernelBuffer tb = ts.dtype() == DType.BF16 ? BufferSlice.of(ts.buffer(), 2 * table.offset(), 2 * table.numel())
                : buf(table);
        CudaBuffer idb = ints(ids);
        try {
            runtime.launch(Kernels.embedding(buf(out), tb, ts.dtype() == DType.BF16, idb, ids.length, c, vocab));
        } finally {
            idb.close();
        }
    }

    @Override
    public void scatterAdd(Tensor dTable, Tensor dOut, int[] ids) {
        if (ids.length == 0) {
            return;
        }
        CudaBuffer idb = ints(ids);
        try {
            runtime.launch(Kernels.embeddingBackward(buf(dTable), buf(dOut), idb, ids.length, dTable.dim(-1), dTable.dim(0)));
        } finally {
            idb.close();
        }
    }

    // ================================================================ softmax and loss

    @Override
    public void softmax(Tensor y, Tensor x) {
        int v = x.dim(-1);
        int rows = Math.toIntExact(x.numel() / v);
        if (rows > 0) {
            runtime.launch(Kernels.softmax(buf(y), buf(x), rows, v));
        }
    }

    @Override
    public void softmaxBackward(Tensor dX, Tensor dY, Tensor y) {
        int v = y.dim(-1);
        int rows = Math.toIntExact(y.numel() / v);
        if (rows > 0) {
            runtime.launch(Kernels.softmaxBackward(buf(dX), buf(dY), buf(y), rows, v));
        }
    }

    @Override
    public double crossEntropy(Tensor lse, Tensor logits, int[] labels, int ignoreIndex) {
        int v = logits.dim(-1);
        int rows = Math.toIntExact(logits.numel() / v);
        if (rows == 0) {
            return 0;
        }
        CudaBuffer lab = ints(labels);
        CudaBuffer lossRow = scratch(4L * rows);
        try {
            runtime.launch(Kernels.crossEntropyRows(lossRow, buf(lse), buf(logits), lab, rows, v, ignoreIndex));
            Tensor rowsView = new Tensor(new CudaStorage(this, lossRow, DType.F32, rows, null), rows);
            return reduce(rowsView, null, Kernels.Reduction.SUM);
        } finally {
            lab.close();
            lossRow.close();
        }
    }

    @Override
    public void crossEntropyBackward(Tensor dLogits, Tensor logits, Tensor lse, int[] labels, int ignoreIndex, float scale) {
        int v = logits.dim(-1);
        int rows = Math.toIntExact(logits.numel() / v);
        if (rows == 0) {
            return;
        }
        boolean overwrite = dLogits.storage() == logits.storage() && dLogits.offset() == logits.offset();
        CudaBuffer lab = ints(labels);
        try {
            runtime.launch(Kernels.crossEntropyBackward(buf(dLogits), buf(logits), buf(lse), lab, rows, v, ignoreIndex, scale,
                    overwrite));
        } finally {
            lab.close();
        }
    }

    // ================================================================ optimizers

    @Override
    public void adamW(Tensor w, Tensor g, Tensor m, Tensor v, AdamWStep s) {
        int n = sameNumel("adamW", w, g, m, v);
        if (n > 0) {
            runtime.launch(Kernels.adamW(buf(w), buf(m), buf(v), buf(g), n, s.decay(), s.beta1(), s.beta2(), s.c1(), s.c2(),
                    s.stepSize(), s.bias2Sqrt(), s.eps()));
        }
    }

    @Override
    public void sgd(Tensor w, Tensor g, Tensor buf, float lr, float momentum, float dampeningComplement, float weightDecay,
                    boolean nesterov, boolean firstStep) {
        int n = sameNumel("sgd", w, g, buf);
        if (n > 0) {
            runtime.launch(Kernels.sgd(buf(w), buf(g), bufOrNull(buf), n, lr, momentum, dampeningComplement, weightDecay,
                    nesterov, firstStep));
        }
    }

    // ================================================================ host-array primitives (host data by definition)

    @Override
    public float dot(float[] x, int xOffset, float[] y, int yOffset, int n) {
        return cpu.dot(x, xOffset, y, yOffset, n);
    }

    @Override
    public void axpy(float alpha, float[] x, int xOffset, float[] y, int yOffset, int n) {
        cpu.axpy(alpha, x, xOffset, y, yOffset, n);
    }

    @Override
    public double sumOfSquares(float[] x, int offset, int n) {
        return cpu.sumOfSquares(x, offset, n);
    }

    // ================================================================ lifecycle

    /** Device memory counters of the allocator (the high-water mark is the peak of a run). */
    public CachingAllocator.Stats memory() {
        return allocator.stats();
    }

    /** Waits for every launch issued so far. */
    public void synchronize() {
        runtime.synchronize();
    }

    @Override
    public void close() {
        if (cublas != null) {
            cublas.close();
        }
        runtime.close();
    }

    @Override
    public String toString() {
        return "cuda(" + runtime.describe() + (cublas != null ? ", cuBLAS" : "") + ")";
    }
}
