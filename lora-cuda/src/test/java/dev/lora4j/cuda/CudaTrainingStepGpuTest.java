package dev.lora4j.cuda;

import dev.lora4j.backend.Backends;
import dev.lora4j.tensor.Device;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;

/** {@link CudaTrainingStepTest} on a real GPU: LoRA and QLoRA steps of golden-tiny-llama through the Trainer equal the CPU's. */
@Tag("gpu")
class CudaTrainingStepGpuTest extends CudaTrainingStepTest {

    @BeforeAll
    static void setUp() {
        root = Path.of(System.getProperty("lora4j.fixtures", "../../shared/fixtures")).resolve("golden-tiny-llama").normalize();
        Assumptions.assumeTrue(Files.exists(root), "shared fixture " + root + " is absent; skipping");
        gpu = (CudaBackend) Backends.forDevice(Device.CUDA);
    }
}
