package dev.lora4j.cuda;

import static dev.lora4j.cuda.CudaDriver.checkCublas;

import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.cuda.global.cublas;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

/**
 * {@code cublasGemmEx} on row-major storage with F32 accumulation (CUBLAS_COMPUTE_32F): operands F32
 * or BF16, result F32. cuBLAS is column-major, so C[m,n] = op(A)·op(B) row-major is computed as the
 * column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: the operands swap places and each keeps its transpose flag.
 */
final class CublasGemm implements AutoCloseable {
    /** Operand types. */
    static final int F32 = cudart.CUDA_R_32F;
    static final int BF16 = cudart.CUDA_R_16BF;

    private final CudaContext context;
    private final cublasContext handle = new cublasContext();
    private boolean closed;

    CublasGemm(CudaContext context) {
        CudaDriver.loadCublas();
        this.context = context;
        context.makeCurrent();
        checkCublas(cublas.cublasCreate_v2(handle), "cublasCreate");
        checkCublas(cublas.cublasSetStream_v2(handle, context.stream()), "cublasSetStream");
    }

    /** A device address as the Pointer argument cuBLAS takes (never dereferenced on the host). */
    private static final class DevicePointer extends Pointer {
        DevicePointer(long address) {
            this.address = address;
        }
    }

    void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, KernelBuffer a, int aType, int lda,
              KernelBuffer b, int bType, int ldb, float beta, KernelBuffer c, int ldc) {
        context.makeCurrent();
        try (FloatPointer al = new FloatPointer(1).put(0, alpha); FloatPointer be = new FloatPointer(1).put(0, beta)) {
            int status = cublas.cublasGemmEx(handle, transB ? cublas.CUBLAS_OP_T : cublas.CUBLAS_OP_N,
                    transA ? cublas.CUBLAS_OP_T : cublas.CUBLAS_OP_N, n, m, k, al, new DevicePointer(DeviceRuntime.addressOf(b)), bType, ldb,
                    new DevicePointer(DeviceRuntime.addressOf(a)), aType, lda, be, new DevicePointer(DeviceRuntime.addressOf(c)), cudart.CUDA_R_32F, ldc,
                    cublas.CUBLAS_COMPUTE_32F, cublas.CUBLAS_GEMM_DEFAULT);
            checkCublas(status, "cublasGemmEx(m=" + m + ", n=" + n + ", k=" + k + (transA ? ", Aᵀ" : "") + (transB ? ", Bᵀ" : "") + ")");
        }
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            context.makeCurrent();
            checkCublas(cublas.cublasDestroy_v2(handle), "cublasDestroy");
        }
    }
}
