package dev.lora4j.backend;

import dev.lora4j.tensor.Storage;

/** ServiceLoader providers registered for the tests only (src/test/resources/META-INF/services). */
public final class TestProviders {
    private TestProviders() {
    }

    /** A device that is never there: highest priority, always refuses. */
    public static final class Refusing implements BackendProvider {
        @Override
        public String name() {
            return "test-refusing";
        }

        @Override
        public int priority() {
            return 1000;
        }

        @Override
        public Backend create() {
            throw new UnsupportedOperationException("no test device is attached");
        }
    }

    /** Ranks between the vector (10) and scalar (0) backends; computes with the scalar kernels. */
    public static final class Delegating implements BackendProvider {
        @Override
        public String name() {
            return "test-delegating";
        }

        @Override
        public int priority() {
            return 5;
        }

        @Override
        public Backend create() {
            Backend scalar = Backends.scalar();
            return new Backend() {
                @Override
                public String name() {
                    return "test-delegating";
                }

                @Override
                public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, Storage a,
                                 long aOffset, int lda, Storage b, long bOffset, int ldb, float beta, Storage c,
                                 long cOffset, int ldc) {
                    scalar.gemm(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);
                }

                @Override
                public float dot(float[] x, int xOffset, float[] y, int yOffset, int n) {
                    return scalar.dot(x, xOffset, y, yOffset, n);
                }

                @Override
                public void axpy(float alpha, float[] x, int xOffset, float[] y, int yOffset, int n) {
                    scalar.axpy(alpha, x, xOffset, y, yOffset, n);
                }

                @Override
                public double sumOfSquares(float[] x, int offset, int n) {
                    return scalar.sumOfSquares(x, offset, n);
                }
            };
        }
    }
}
