package dev.lora4j.cuda;

import dev.lora4j.backend.Backend;
import dev.lora4j.backend.BackendProvider;

/**
 * Test-only provider (src/test/resources/META-INF/services): {@link CudaBackend} over the host
 * emulation ({@link EmulatedRuntime}), so that {@code Backends.forDevice(Device.CUDA)} and
 * {@code Tensor.to(Device.CUDA)} work in tests on machines without a GPU. Its priority is below the
 * CPU backends', so automatic selection never picks it; it serves only requests for the CUDA device
 * after the real provider has refused. One emulated device per JVM.
 */
public final class EmulatedCudaProvider implements BackendProvider {
    private static CudaBackend instance;

    @Override
    public String name() {
        return "cuda-emulated";
    }

    @Override
    public int priority() {
        return -100;
    }

    @Override
    public Backend create() {
        return shared();
    }

    /** The JVM's emulated CUDA backend (started on first use); UnsupportedOperationException without g++. */
    static synchronized CudaBackend shared() {
        if (instance == null) {
            java.nio.file.Path driver = HostEmulation.driverOrNull();
            if (driver == null) {
                throw new UnsupportedOperationException("the CUDA host emulation cannot be built: " + HostEmulation.problem());
            }
            instance = new CudaBackend(new EmulatedRuntime(driver));
        }
        return instance;
    }
}
