package dev.lora4j.backend;

/**
 * Service interface through which other modules (lora-cuda) offer a backend. Providers are
 * found with {@link java.util.ServiceLoader}; {@link #create()} throws
 * {@link UnsupportedOperationException} with the reason when the hardware or driver is missing.
 */
public interface BackendProvider {

    /** The name users ask for with {@code -Dlora4j.backend=NAME}. */
    String name();

    /** Higher runs first when no backend is requested explicitly; CPU backends use 0 and 10. */
    int priority();

    Backend create();
}
