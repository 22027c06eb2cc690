package dev.lora4j.cuda;

import dev.lora4j.backend.Backend;
import dev.lora4j.backend.BackendProvider;

/**
 * Offers {@link CudaBackend} to {@code dev.lora4j.backend.Backends} (registered in
 * META-INF/services). Without an NVIDIA driver, {@link #create()} throws
 * UnsupportedOperationException with the reason (libcuda.so.1 cannot be loaded), which Backends
 * logs in one line before falling back to the CPU, or reports when {@code -Dlora4j.backend=cuda}
 * was asked for explicitly.
 */
public final class CudaBackendProvider implements BackendProvider {
    /** Above the CPU backends (0 and 10): a usable GPU is chosen automatically. */
    public static final int PRIORITY = 20;

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public int priority() {
        return PRIORITY;
    }

    @Override
    public Backend create() {
        return CudaBackend.create();
    }
}
