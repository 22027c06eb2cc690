package dev.lora4j.cuda;

import org.bytedeco.cuda.global.cublas;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.PointerPointer;

/**
 * Loading of the CUDA driver bindings and conversion of every error code into a
 * {@link CudaException} that names the error and the call.
 */
final class CudaDriver {
    private CudaDriver() {
    }

    /**
     * Loads the JNI bindings of the driver API (they link libcuda.so.1 from the NVIDIA driver and
     * libcudart.so.13) and initializes the driver.
     *
     * @throws UnsupportedOperationException with the reason when no usable driver is installed
     */
    static void load() {
        if (Loaded.FAILURE != null) {
            throw new UnsupportedOperationException(Loaded.FAILURE);
        }
    }

    /**
     * The outcome of the first load, kept: a failed class initialization is reported only once by
     * the JVM (later attempts see a NoClassDefFoundError without the linker's message).
     */
    private static final class Loaded {
        static final String FAILURE = tryLoad();

        private static String tryLoad() {
            try {
                Loader.load(cudart.class);
            } catch (UnsatisfiedLinkError | NoClassDefFoundError | ExceptionInInitializerError e) {
                return "the NVIDIA driver library cannot be loaded (" + rootMessage(e)
                        + "); install the NVIDIA driver (it provides libcuda.so.1) and the CUDA 13 runtime (libcudart.so.13)";
            }
            int r = cudart.cuInit(0);
            if (r != cudart.CUDA_SUCCESS) {
                return "cuInit(0) failed: " + errorName(r) + " (" + r + "): " + errorString(r)
                        + "; check that an NVIDIA GPU is visible (nvidia-smi) and that the driver supports CUDA 13";
            }
            return null;
        }
    }

    /** Loads cuBLAS (libcublas.so.13, libcublasLt.so.13); throws UnsupportedOperationException with the reason. */
    static void loadCublas() {
        if (CublasLoaded.FAILURE != null) {
            throw new UnsupportedOperationException(CublasLoaded.FAILURE);
        }
    }

    private static final class CublasLoaded {
        static final String FAILURE = tryLoad();

        private static String tryLoad() {
            try {
                Loader.load(cublas.class);
                return null;
            } catch (UnsatisfiedLinkError | NoClassDefFoundError | ExceptionInInitializerError e) {
                return "cuBLAS cannot be loaded (" + rootMessage(e)
                        + "); install the CUDA 13 cuBLAS libraries (libcublas.so.13) to enable it";
            }
        }
    }

    static String rootMessage(Throwable e) {
        String best = e.toString();
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t.getMessage() != null) {
                best = t.getClass().getSimpleName() + ": " + t.getMessage();
            }
        }
        return best.replace('\n', ' ').trim();
    }

    /** Throws a {@link CudaException} unless {@code result} is CUDA_SUCCESS. */
    static void check(int result, String call) {
        if (result != cudart.CUDA_SUCCESS) {
            throw new CudaException(call, errorName(result), result, errorString(result));
        }
    }

    /** Throws a {@link CudaException} unless {@code status} is CUBLAS_STATUS_SUCCESS. */
    static void checkCublas(int status, String call) {
        if (status != cublas.CUBLAS_STATUS_SUCCESS) {
            String name;
            try {
                BytePointer p = cublas.cublasGetStatusName(status);
                name = p == null || p.isNull() ? "CUBLAS_STATUS_" + status : p.getString();
            } catch (RuntimeException | LinkageError e) {
                name = "CUBLAS_STATUS_" + status;
            }
            throw new CudaException(call, name, status, null);
        }
    }

    static String errorName(int result) {
        try (PointerPointer<BytePointer> p = new PointerPointer<>(1)) {
            if (cudart.cuGetErrorName(result, p) == cudart.CUDA_SUCCESS && !p.get(0).isNull()) {
                return p.get(BytePointer.class, 0).getString();
            }
        } catch (RuntimeException | LinkageError e) {
            // fall through to the number
        }
        return "CUDA_ERROR_" + result;
    }

    static String errorString(int result) {
        try (PointerPointer<BytePointer> p = new PointerPointer<>(1)) {
            if (cudart.cuGetErrorString(result, p) == cudart.CUDA_SUCCESS && !p.get(0).isNull()) {
                return p.get(BytePointer.class, 0).getString();
            }
        } catch (RuntimeException | LinkageError e) {
            // no description
        }
        return "";
    }
}
