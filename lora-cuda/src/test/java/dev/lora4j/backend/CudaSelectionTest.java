package dev.lora4j.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import dev.lora4j.cuda.CudaBackendProvider;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ServiceLoader;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Backend selection with lora-cuda on the class path. These tests run on machines without an
 * NVIDIA driver (they skip where libcuda.so.1 exists): the CUDA provider is found through
 * ServiceLoader, refuses with the loader's reason, automatic selection falls back to a CPU backend,
 * and an explicit -Dlora4j.backend=cuda fails naming libcuda.so.1.
 */
class CudaSelectionTest {

    static boolean driverInstalled() {
        return Stream.of("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu")
                .anyMatch(d -> Files.exists(Path.of(d, "libcuda.so.1")));
    }

    @Test
    void providerIsRegisteredForServiceLoader() {
        assertTrue(ServiceLoader.load(BackendProvider.class).stream().anyMatch(p -> p.type() == CudaBackendProvider.class),
                "META-INF/services must list dev.lora4j.cuda.CudaBackendProvider");
    }

    @Test
    void withoutADriverTheProviderRefusesNamingLibcuda() {
        assumeFalse(driverInstalled(), "an NVIDIA driver is installed here");
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> new CudaBackendProvider().create());
        // the dynamic linker's own words, then the fix
        assertTrue(e.getMessage().contains("libcuda.so.1: cannot open shared object file"), e.getMessage());
        assertTrue(e.getMessage().contains("install the NVIDIA driver"), e.getMessage());
        assertEquals(-1, e.getMessage().indexOf('\n'), "one log line: " + e.getMessage());
    }

    @Test
    void automaticSelectionFallsBackToTheCpu() {
        assumeFalse(driverInstalled(), "an NVIDIA driver is installed here");
        Backend chosen = Backends.select(null);
        assertNotEquals("cuda", chosen.name());
    }

    @Test
    void explicitCudaRequestFailsWithTheReason() {
        assumeFalse(driverInstalled(), "an NVIDIA driver is installed here");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Backends.select("cuda"));
        assertTrue(e.getMessage().contains("-Dlora4j.backend=cuda"), e.getMessage());
        assertTrue(e.getMessage().contains("libcuda.so.1: cannot open shared object file"), e.getMessage());
    }
}
