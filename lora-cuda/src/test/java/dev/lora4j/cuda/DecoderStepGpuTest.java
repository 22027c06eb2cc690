package dev.lora4j.cuda;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** {@link DecoderStepTest} on the GPU, with the BF16 base as well. */
@Tag("gpu")
class DecoderStepGpuTest extends DecoderStepTest {
    @Override
    TestDevice device() {
        return CudaTestDevice.open();
    }

    @Test
    void bf16LoraStepsLowerTheLoss() {
        descend(tiny(false));
    }
}
