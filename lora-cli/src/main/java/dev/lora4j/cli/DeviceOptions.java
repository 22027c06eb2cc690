package dev.lora4j.cli;

import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.tensor.Device;
import java.util.Locale;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Where a command computes ({@code @Mixin DeviceOptions device;}): {@code --device cpu|cuda|auto}.
 * {@code cpu} keeps the model and every operation on the CPU backends; {@code cuda} places the model
 * on the GPU (lora-cuda's backend) and fails with the reason when no usable GPU is there;
 * {@code auto} (the default) takes the GPU when one is usable and otherwise the CPU, saying so in one
 * log line.
 */
public final class DeviceOptions {
    private static final Logger LOG = LoggerFactory.getLogger(DeviceOptions.class);

    @Option(names = "--device", paramLabel = "DEVICE", defaultValue = "auto",
            description = "Where to compute: cpu, cuda (an NVIDIA GPU through lora-cuda; fails with the reason when none "
                    + "is usable) or auto (the GPU when usable, else the CPU). Default: ${DEFAULT-VALUE}.")
    String device = "auto";

    /**
     * Resolves --device to the device the model goes to, selecting the process backend accordingly.
     *
     * @throws picocli.CommandLine.ParameterException (exit code 2) for an unknown value, or for cuda
     *     when no CUDA backend can start, with its reason
     */
    Device resolve(CommandSpec spec) {
        String value = device == null ? "auto" : device.trim().toLowerCase(Locale.ROOT);
        switch (value) {
            case "cpu" -> {
                String requested = System.getProperty(Backends.PROPERTY);
                if (requested == null || !(requested.equalsIgnoreCase("scalar") || requested.equalsIgnoreCase("vector"))) {
                    System.setProperty(Backends.PROPERTY, Backends.vector().isPresent() ? "vector" : "scalar");
                }
                Backend chosen = Backends.get();
                if (chosen.device() != Device.CPU) {
                    throw OptionErrors.invalid(spec, "--device", device, "this process computes on " + chosen.device()
                            + " already (backend " + chosen.name() + "); run a new process with --device cpu");
                }
                LOG.info("computing on the CPU (backend {})", chosen.name());
                return Device.CPU;
            }
            case "cuda" -> {
                try {
                    Backend b = Backends.forDevice(Device.CUDA);
                    LOG.info("computing on {}", b);
                    return Device.CUDA;
                } catch (IllegalStateException e) {
                    throw OptionErrors.invalid(spec, "--device", device, "no usable CUDA device: " + e.getMessage()
                            + "; use --device cpu or auto");
                }
            }
            case "auto" -> {
                try {
                    Backend b = Backends.forDevice(Device.CUDA);
                    LOG.info("--device auto: computing on {}", b);
                    return Device.CUDA;
                } catch (IllegalStateException e) {
                    LOG.info("--device auto: no usable CUDA device, computing on the CPU (backend {})",
                            Backends.forDevice(Device.CPU).name());
                    return Device.CPU;
                }
            }
            default -> throw OptionErrors.invalid(spec, "--device", device, "expected cpu, cuda or auto");
        }
    }
}
