package dev.lora4j.backend;

import dev.lora4j.tensor.Device;
import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Storage;

/**
 * The argument rules of {@link Backend#gemm} on a CPU backend, checked before any element is
 * touched; each message names the parameter, the rule and the value.
 */
final class GemmArguments {
    private GemmArguments() {
    }

    /** Checks every argument; returns normally when the product may run. */
    static void check(String backend, boolean transA, boolean transB, int m, int n, int k,
                      Storage a, long aOffset, int lda, Storage b, long bOffset, int ldb,
                      Storage c, long cOffset, int ldc) {
        checkDimension("m", m);
        checkDimension("n", n);
        checkDimension("k", k);
        checkLeading("lda", lda, "A", transA, m, k, "m", "k");
        checkLeading("ldb", ldb, "B", transB, k, n, "k", "n");
        checkLeading("ldc", ldc, "C", false, m, n, "m", "n");
        heapFloats(backend, "C", c);
        checkExtent("C", c, cOffset, m, n, ldc, false);
        if (m == 0 || n == 0 || k == 0) {
            return;
        }
        heapFloats(backend, "A", a);
        checkExtent("A", a, aOffset, m, k, lda, transA);
        if (b.device() != Device.CPU) {
            throw new IllegalArgumentException("gemm: B is a " + b.getClass().getSimpleName() + " on " + b.device()
                    + "; the " + backend + " backend reads CPU storages only (copy it to the host or use the "
                    + b.device() + " backend)");
        }
        checkExtent("B", b, bOffset, k, n, ldb, transB);
    }

    static void checkDimension(String name, int value) {
        if (value < 0) {
            throw new IllegalArgumentException("gemm: " + name + " (" + value + ") must be >= 0");
        }
    }

    /** The row stride of a matrix stored [rows, cols] (op transposed or not) must cover a row. */
    static void checkLeading(String ldName, int ld, String matrix, boolean trans, int opRows, int opCols,
                             String rowsName, String colsName) {
        int rowLength = trans ? opRows : opCols;
        if (ld < rowLength) {
            String stored = trans ? "[" + colsName + ", " + rowsName + "] = [" + opCols + ", " + opRows + "]"
                    : "[" + rowsName + ", " + colsName + "] = [" + opRows + ", " + opCols + "]";
            String need = trans ? rowsName + " (" + opRows + ")" : colsName + " (" + opCols + ")";
            throw new IllegalArgumentException("gemm: " + ldName + " (" + ld + ") must be >= " + need
                    + " for " + matrix + (trans ? " (transposed)" : "") + " stored " + stored);
        }
    }

    static void checkExtent(String matrix, Storage s, long offset, int opRows, int opCols, int ld, boolean trans) {
        int rows = trans ? opCols : opRows;
        int cols = trans ? opRows : opCols;
        if (offset < 0) {
            throw new IllegalArgumentException("gemm: " + matrix + " offset (" + offset + ") must be >= 0");
        }
        if (rows == 0 || cols == 0) {
            return;
        }
        long end = offset + (long) (rows - 1) * ld + cols;
        if (end > s.size()) {
            throw new IllegalArgumentException("gemm: " + matrix + " stored [" + rows + ", " + cols + "] with row stride "
                    + ld + " from offset " + offset + " needs " + end + " elements but its storage holds " + s.size());
        }
    }

    static float[] heapFloats(String backend, String matrix, Storage s) {
        if (s instanceof FloatStorage fs) {
            return fs.array();
        }
        throw new IllegalArgumentException("gemm: " + matrix + " must be heap F32 (FloatStorage) on the " + backend
                + " backend, got " + s.getClass().getSimpleName() + " of " + s.dtype() + " on " + s.device()
                + "; only B may be a half-precision or quantized storage (copy " + matrix + " with Tensor.contiguous())");
    }
}
