package dev.lora4j.cuda;

/**
 * Runs {@link Launch}es in order on one stream: {@link CudaContext} on a GPU, the g++-built host
 * emulation in tests. {@link Kernels} describes each operation as launches, so the same launch
 * geometry and argument lists run in both.
 */
public interface KernelLauncher {

    void launch(Launch launch);

    default void launchAll(Iterable<Launch> launches) {
        for (Launch l : launches) {
            launch(l);
        }
    }
}
