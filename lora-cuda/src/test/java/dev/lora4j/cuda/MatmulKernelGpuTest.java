package dev.lora4j.cuda;

import org.junit.jupiter.api.Tag;

/** {@link MatmulKernelTest} on the GPU (tagged "gpu": excluded unless a GPU run asks for it, see the module README). */
@Tag("gpu")
class MatmulKernelGpuTest extends MatmulKernelTest {
    @Override
    TestDevice device() {
        TestDevice d = CudaTestDevice.open();
        slack = d.slack();
        return d;
    }
}
