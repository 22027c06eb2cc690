package dev.lora4j.cuda;

/**
 * One kernel launch: the kernel {@code kernel} of the PTX module {@code module} (the .cu file's
 * name) over a grid of {@code gridX × gridY × gridZ} blocks of {@code threads} threads (all lora4j
 * kernels use one-dimensional blocks and static shared memory).
 */
public record Launch(String module, String kernel, int gridX, int gridY, int gridZ, int threads, KernelArgs args) {
    public Launch {
        if (gridX < 1 || gridY < 1 || gridZ < 1 || gridY > 65535 || gridZ > 65535) {
            throw new IllegalArgumentException(kernel + ": grid " + gridX + " × " + gridY + " × " + gridZ
                    + " is outside CUDA's limits (x ≥ 1, y and z in [1, 65535]); the sizes passed to Kernels are too large");
        }
        if (threads < 1 || threads > 1024) {
            throw new IllegalArgumentException(kernel + ": " + threads + " threads per block; CUDA allows 1 to 1024");
        }
    }

    @Override
    public String toString() {
        return module + "." + kernel + "<<<(" + gridX + ", " + gridY + ", " + gridZ + "), " + threads + ">>>" + args;
    }
}
