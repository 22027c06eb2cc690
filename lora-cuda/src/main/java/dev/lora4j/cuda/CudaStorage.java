package dev.lora4j.cuda;

import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Device;
import dev.lora4j.tensor.Storage;

/**
 * A storage in device memory of a {@link CudaBackend}: F32 (activations, gradients, LoRA
 * parameters, optimizer state), BF16 (frozen weights, as loaded) or a frozen bitsandbytes 4-bit
 * weight ({@link #quant()}, dtype U8 as lora-quant's QuantizedStorage). {@link #decode} copies the
 * requested elements to the host through the backend (a counted transfer, see
 * {@link CudaBackend#transfers()}): tests and logging may read a tensor that way, compute never does.
 */
public final class CudaStorage implements Storage {
    private final CudaBackend owner;
    private final CudaBuffer buffer;
    private final DType dtype;
    private final long size;
    private final FrozenWeight.Quant4 quant;

    CudaStorage(CudaBackend owner, CudaBuffer buffer, DType dtype, long size, FrozenWeight.Quant4 quant) {
        this.owner = owner;
        this.buffer = buffer;
        this.dtype = dtype;
        this.size = size;
        this.quant = quant;
    }

    /** The backend whose device holds this storage. */
    public CudaBackend backend() {
        return owner;
    }

    /** The device buffer (for a 4-bit weight: its packed codes). */
    public CudaBuffer buffer() {
        return buffer;
    }

    /** The 4-bit weight's buffers, or null for F32/BF16 storage. */
    public FrozenWeight.Quant4 quant() {
        return quant;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public Device device() {
        return Device.CUDA;
    }

    @Override
    public void decode(long start, int count, float[] dst, int dstOffset) {
        owner.download(this, start, count, dst, dstOffset);
    }

    @Override
    public long byteSize() {
        if (quant != null) {
            long blocks = (size + quant.blocksize() - 1) / quant.blocksize();
            return (size + 1) / 2 + (quant.absmax() != null ? 4 * blocks : blocks) + 64;
        }
        return size * dtype.byteSize();
    }

    @Override
    public String toString() {
        return "CudaStorage[" + dtype + (quant != null ? " 4-bit" : "") + ", " + size + " elements]";
    }
}
