package dev.lora4j.cuda;

/**
 * Where a kernel test runs its launches: the g++ host emulation ({@link HostDevice}, every build)
 * or a GPU ({@link CudaTestDevice}, the tests tagged "gpu"). Buffers are filled on creation and
 * read after {@link #run()}.
 */
interface TestDevice extends KernelLauncher, DeviceMemory {

    /** A buffer whose contents can be read back after {@link #run()}. */
    interface Buf extends KernelBuffer {
        byte[] raw();

        default float[] floats() {
            byte[] b = raw();
            float[] out = new float[b.length / 4];
            java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
            return out;
        }
    }

    Buf bytes(byte[] data);

    default Buf floats(float[] data) {
        java.nio.ByteBuffer bb = java.nio.ByteBuffer.allocate(4 * data.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        bb.asFloatBuffer().put(data);
        return bytes(bb.array());
    }

    default Buf zeros(int floats) {
        return bytes(new byte[4 * floats]);
    }

    default Buf ints(int[] data) {
        java.nio.ByteBuffer bb = java.nio.ByteBuffer.allocate(4 * data.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        bb.asIntBuffer().put(data);
        return bytes(bb.array());
    }

    /** BF16 bits of each value (round to nearest even, as __float2bfloat16 and lora4j's DType.BF16). */
    default Buf bf16(float[] data) {
        java.nio.ByteBuffer bb = java.nio.ByteBuffer.allocate(2 * data.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (float f : data) {
            bb.putShort((short) HostDevice.bf16Bits(f));
        }
        return bytes(bb.array());
    }

    @Override
    default KernelBuffer allocate(long bytes) {
        return bytes(new byte[Math.toIntExact(bytes)]);
    }

    @Override
    default KernelBuffer upload(float[] data) {
        return floats(data);
    }

    @Override
    default KernelBuffer upload(int[] data) {
        return ints(data);
    }

    /** Runs (or waits for) every queued launch; afterwards buffers hold the results. */
    void run();

    /** Extra tolerance the device needs over the emulation (FMA contraction and fast intrinsics on a GPU). */
    default double slack() {
        return 0;
    }
}
