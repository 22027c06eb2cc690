package dev.lora4j.cuda;

/**
 * A CUDA driver or cuBLAS call that failed: carries the call (with its arguments), the error's
 * name (e.g. {@code CUDA_ERROR_OUT_OF_MEMORY}, {@code CUBLAS_STATUS_NOT_SUPPORTED}) and its code.
 */
public final class CudaException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String call;
    private final String errorName;
    private final int code;

    public CudaException(String call, String errorName, int code, String description) {
        super(call + " failed: " + errorName + " (" + code + ")" + (description == null || description.isEmpty() ? "" : ": " + description));
        this.call = call;
        this.errorName = errorName;
        this.code = code;
    }

    /** The failing call, e.g. {@code cuMemAlloc(1073741824 bytes)}. */
    public String call() {
        return call;
    }

    /** The error's symbolic name, e.g. {@code CUDA_ERROR_OUT_OF_MEMORY}. */
    public String errorName() {
        return errorName;
    }

    public int code() {
        return code;
    }
}
