package dev.lora4j.cuda;

import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.backend.CpuBackend;
import dev.lora4j.quant.QuantizedStorage;
import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Storage;
import java.util.Collections;
import java.util.Map;
import java.util.WeakHashMap;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.global.cudart;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The CUDA backend behind today's {@link Backend} interface, whose operands are host storages:
 * a large product uploads its operands, runs on the GPU and downloads C; a frozen 4-bit weight
 * ({@link QuantizedStorage}) is uploaded once, kept on the device for the life of the backend and
 * multiplied by the fused 4-bit kernel, so it is never widened. Products below
 * {@value #DEVICE_MIN_MACS} multiply-adds, and dot/axpy/sumOfSquares (vectors on the Java heap,
 * cheaper to compute than to copy), run on the CPU backend. The F32 product runs on lora4j's
 * tiled kernel or cuBLAS ({@code cublasGemmEx}), whichever was faster in a measurement at start-up.
 *
 * <p>Its storages live on the host ({@link #device()} is the CPU): it extends {@link CpuBackend},
 * whose reference operations call {@link #gemm} for every product, so the large products of a step
 * (linear layers forward and backward) run on the GPU and everything else on the CPU. Implementing
 * the op-level SPI with device-resident storages replaces the copies: {@link Kernels} already
 * describes every forward and backward operation of a training step as device launches.
 */
public final class CudaBackend extends CpuBackend implements AutoCloseable {
    /** Products smaller than this (m·n·k) stay on the CPU: the copies would cost more than the math. */
    public static final long DEVICE_MIN_MACS = 1L << 22;
    private static final Logger LOG = LoggerFactory.getLogger(CudaBackend.class);

    private final CudaContext context;
    private final Backend cpu;
    private final CublasGemm cublas;
    private final boolean useCublas;
    private final Map<QuantizedStorage, FrozenWeight.Quant4> frozen = Collections.synchronizedMap(new WeakHashMap<>());

    private CudaBackend(CudaContext context, Backend cpu, CublasGemm cublas, boolean useCublas) {
        this.context = context;
        this.cpu = cpu;
        this.cublas = cublas;
        this.useCublas = useCublas;
    }

    /**
     * Opens device {@code lora4j.cuda.device} (default 0). {@code lora4j.cuda.cublas}: auto (measure),
     * on, off. Throws UnsupportedOperationException with the reason when no usable GPU is present.
     */
    public static CudaBackend create() {
        int ordinal = Integer.getInteger("lora4j.cuda.device", 0);
        CudaContext context = CudaContext.open(ordinal);
        String mode = System.getProperty("lora4j.cuda.cublas", "auto");
        CublasGemm cublas = null;
        boolean use = false;
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
        Backend cpu = Backends.vector().orElse(Backends.scalar());
        CudaBackend backend = new CudaBackend(context, cpu, cublas, false);
        if (cublas != null) {
            use = mode.equals("on") || backend.cublasFaster();
        }
        CudaBackend chosen = new CudaBackend(context, cpu, cublas, use);
        LOG.info("lora4j cuda backend on {}: F32 products on {}", context, use ? "cuBLAS" : "lora4j's tiled kernel");
        return chosen;
    }

    /** Times lora4j's matmul_f32 and cublasGemmEx on a 1024³ product (after a warm-up) with CUDA events. */
    private boolean cublasFaster() {
        int s = 1024;
        try (CudaBuffer a = context.allocator().allocate(4L * s * s); CudaBuffer b = context.allocator().allocate(4L * s * s);
             CudaBuffer c = context.allocator().allocate(4L * s * s)) {
            float own = time(() -> context.launch(Kernels.matmulF32(c, a, b, s, s, s, s, s, s, false, true, 1f, 0f)));
            float lib = time(() -> cublas.gemm(false, true, s, s, s, 1f, a, CublasGemm.F32, s, b, CublasGemm.F32, s, 0f, c, s));
            LOG.info("lora4j cuda: 1024³ F32 product: lora4j kernel {} ms, cuBLAS {} ms", own, lib);
            return lib < own;
        }
    }

    private float time(Runnable work) {
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

    public CudaContext context() {
        return context;
    }

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, Storage a, long aOffset, int lda,
                     Storage b, long bOffset, int ldb, float beta, Storage c, long cOffset, int ldc) {
        if ((long) m * n * k < DEVICE_MIN_MACS || !(a instanceof FloatStorage fa) || !(c instanceof FloatStorage fc)) {
            cpu.gemm(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);
            return;
        }
        int aRows = transA ? k : m;
        int aCols = transA ? m : k;
        int bRows = transB ? n : k;
        int bCols = transB ? k : n;
        try (CudaBuffer da = context.upload(compact(fa.array(), aOffset, lda, aRows, aCols), 0, aRows * aCols);
             CudaBuffer dc = beta == 0f ? context.allocator().allocate(4L * m * n)
                     : context.upload(compact(fc.array(), cOffset, ldc, m, n), 0, m * n)) {
            if (b instanceof QuantizedStorage q && bOffset == 0 && q.size() == (long) n * k && ldb == bCols) {
                context.launch(Kernels.gemm4(dc, da, frozen(q), m, n, k, transB, alpha, beta));
            } else {
                float[] bh = new float[bRows * bCols];
                for (int r = 0; r < bRows; r++) {
                    b.decode(bOffset + (long) r * ldb, bCols, bh, r * bCols);
                }
                try (CudaBuffer db = context.upload(bh, 0, bh.length)) {
                    if (useCublas) {
                        cublas.gemm(transA, transB, m, n, k, alpha, da, CublasGemm.F32, aCols, db, CublasGemm.F32, bCols, beta, dc, n);
                    } else {
                        context.launch(Kernels.matmulF32(dc, da, db, m, n, k, aCols, bCols, n, transA, transB, alpha, beta));
                    }
                }
            }
            float[] out = new float[m * n];
            context.download(dc, out, 0, m * n);
            float[] ch = fc.array();
            for (int r = 0; r < m; r++) {
                System.arraycopy(out, r * n, ch, Math.toIntExact(cOffset + (long) r * ldc), n);
            }
        }
    }

    /** rows × cols of a strided host matrix, packed densely. */
    private static float[] compact(float[] src, long offset, int ld, int rows, int cols) {
        float[] out = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(src, Math.toIntExact(offset + (long) r * ld), out, r * cols, cols);
        }
        return out;
    }

    /** The device copy of a frozen 4-bit weight, uploaded on first use. */
    private FrozenWeight.Quant4 frozen(QuantizedStorage q) {
        return frozen.computeIfAbsent(q, w -> {
            CudaBuffer code = context.upload(w.type().code(), 0, 16);
            if (!w.isDoubleQuant()) {
                return new FrozenWeight.Quant4(context.upload(w.packed()), context.upload(w.absmax(), 0, w.absmax().length), null,
                        null, null, 0f, code, w.blocksize(), 0, w.size());
            }
            QuantizedStorage.NestedAbsmax n = w.nested();
            return new FrozenWeight.Quant4(context.upload(w.packed()), null, context.upload(n.codes()),
                    context.upload(n.absmax(), 0, n.absmax().length), context.upload(n.map(), 0, 256), (float) n.offset(), code,
                    w.blocksize(), n.blocksize(), w.size());
        });
    }

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

    /** Device memory counters of the allocator (the high-water mark is the peak of a run). */
    public CachingAllocator.Stats memory() {
        return context.allocator().stats();
    }

    @Override
    public void close() {
        if (cublas != null) {
            cublas.close();
        }
        context.close();
    }

    @Override
    public String toString() {
        return "cuda(" + context + (useCublas ? ", cuBLAS" : "") + ")";
    }
}
