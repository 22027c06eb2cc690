package dev.lora4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * {@code --device cpu|cuda|auto} on the commands that compute, on a machine without an NVIDIA
 * driver (the tests skip where libcuda.so.1 exists): cpu and auto compute (the same greedy text),
 * cuda fails with exit code 2 and the reason the CUDA backend gave, and a misspelt device is named.
 */
class DeviceOptionTest {
    private static final String[] GENERATE = {"generate", CliRun.ARITH_TINY.toString(), "--prompt", "we know that 5 plus 3 is",
        "--temperature", "0", "--max-new-tokens", "6"};

    private static boolean driverInstalled() {
        return Stream.of("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu")
                .anyMatch(d -> Files.exists(Path.of(d, "libcuda.so.1")));
    }

    private static CliRun generate(String device) {
        String[] args = java.util.Arrays.copyOf(GENERATE, GENERATE.length + 2);
        args[GENERATE.length] = "--device";
        args[GENERATE.length + 1] = device;
        return CliRun.of(args);
    }

    @Test
    void cpuAndAutoComputeTheSameTextWithoutAGpu() {
        assumeFalse(driverInstalled(), "an NVIDIA driver is installed here");
        CliRun cpu = generate("cpu");
        assertEquals(0, cpu.exitCode(), cpu::toString);
        CliRun auto = generate("auto");
        assertEquals(0, auto.exitCode(), auto::toString);
        assertEquals(cpu.out(), auto.out());
        assertTrue(cpu.out().strip().length() > 0, cpu::toString);
        CliRun byDefault = CliRun.of(GENERATE);
        assertEquals(cpu.out(), byDefault.out(), "auto is the default");
    }

    @Test
    void cudaFailsWithTheReasonWhenNoGpuIsUsable() {
        assumeFalse(driverInstalled(), "an NVIDIA driver is installed here");
        String model = CliRun.ARITH_TINY.toString();
        String out = System.getProperty("java.io.tmpdir") + "/lora4j-device-option-test";
        for (String[] args : new String[][] {{"generate", model, "--prompt", "1"}, {"evaluate", model, "--tasks", "arithmetic"},
            {"finetune", model, "--out", out}, {"chat", model}}) {
            String[] withDevice = java.util.Arrays.copyOf(args, args.length + 2);
            withDevice[args.length] = "--device";
            withDevice[args.length + 1] = "cuda";
            CliRun run = CliRun.of(withDevice);
            assertEquals(2, run.exitCode(), run::toString);
            assertTrue(run.err().contains("--device") && run.err().contains("no usable CUDA device"), run::toString);
            assertTrue(run.err().contains("libcuda.so.1"), "the loader's reason is passed on: " + run);
        }
    }

    @Test
    void anUnknownDeviceIsNamed() {
        CliRun run = generate("tpu");
        assertEquals(2, run.exitCode(), run::toString);
        assertTrue(run.err().contains("tpu") && run.err().contains("cpu, cuda or auto"), run::toString);
    }
}
