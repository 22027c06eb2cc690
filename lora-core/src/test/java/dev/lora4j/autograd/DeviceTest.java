package dev.lora4j.autograd;

import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Device;
import dev.lora4j.tensor.Storage;
import dev.lora4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/** Tensors know their device; operations refuse to mix devices and name both. */
class DeviceTest {

    /** A storage that claims to live on a GPU (no data: operations must refuse before reading it). */
    private record DeviceOnly(long size) implements Storage {
        @Override
        public DType dtype() {
            return DType.F32;
        }

        @Override
        public Device device() {
            return Device.CUDA;
        }

        @Override
        public void decode(long start, int count, float[] dst, int dstOffset) {
            throw new AssertionError("a device storage was read on the host");
        }

        @Override
        public long byteSize() {
            return 4 * size;
        }
    }

    @Test
    void mixingDevicesNamesBoth() {
        Tensor cpu = Tensor.zeros(2, 3).name("x");
        Tensor gpu = new Tensor(new DeviceOnly(6), 2, 3).name("w");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Elementwise.add(cpu, gpu));
        assertTrue(e.getMessage().contains("add: 'x' [2, 3] is on CPU but 'w' [2, 3] is on CUDA"), e.getMessage());
        assertTrue(e.getMessage().contains("Tensor.to(Device."), e.getMessage());
        IllegalArgumentException m = assertThrows(IllegalArgumentException.class,
                () -> MatMul.linear(Tensor.zeros(4, 3), gpu, null));
        assertTrue(m.getMessage().contains("is on CPU") && m.getMessage().contains("is on CUDA"), m.getMessage());
    }

    @Test
    void movingIsExplicitAndNeedsABackendForTheTarget() {
        Tensor cpu = Tensor.zeros(2);
        assertSame(cpu, cpu.to(Device.CPU));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> cpu.to(Device.CUDA));
        assertTrue(e.getMessage().contains("no backend computes on CUDA") && e.getMessage().contains("lora-cuda"),
                e.getMessage());
    }
}
