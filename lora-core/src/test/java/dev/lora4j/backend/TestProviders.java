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
            return new ScalarBackend() {
                @Override
                public String name() {
                    return "test-delegating";
                }
            };
        }
    }
}
