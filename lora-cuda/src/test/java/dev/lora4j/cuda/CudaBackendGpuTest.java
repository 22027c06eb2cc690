package dev.lora4j.cuda;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;

/** {@link CudaBackendOpsTest} on a real GPU (the first usable device): every backend operation against the CPU. */
@Tag("gpu")
class CudaBackendGpuTest extends CudaBackendOpsTest {

    @BeforeAll
    static void device() {
        gpu = CudaBackend.create();
    }
}
