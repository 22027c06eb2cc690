package dev.lora4j.cuda;

/**
 * A byte range of another buffer, passed to a kernel as the base address plus {@code offset}
 * (e.g. a chunk of rows of a matrix). Slices of slices are flattened by {@link #of}.
 */
public record BufferSlice(KernelBuffer base, long offset, long byteSize) implements KernelBuffer {
    public BufferSlice {
        if (base instanceof BufferSlice) {
            throw new IllegalArgumentException("slice of a slice: use BufferSlice.of");
        }
        if (offset < 0 || byteSize < 0 || offset + byteSize > base.byteSize()) {
            throw new IllegalArgumentException("slice [" + offset + ", " + (offset + byteSize) + ") lies outside its buffer of "
                    + base.byteSize() + " bytes");
        }
    }

    /** Bytes [offset, offset + bytes) of {@code buffer}. */
    public static BufferSlice of(KernelBuffer buffer, long offset, long bytes) {
        if (buffer instanceof BufferSlice s) {
            if (offset < 0 || offset + bytes > s.byteSize()) {
                throw new IllegalArgumentException("slice [" + offset + ", " + (offset + bytes) + ") lies outside its slice of "
                        + s.byteSize() + " bytes");
            }
            return new BufferSlice(s.base(), s.offset() + offset, bytes);
        }
        return new BufferSlice(buffer, offset, bytes);
    }

    /** Floats [from, from + count) of {@code buffer}. */
    public static BufferSlice floats(KernelBuffer buffer, long from, long count) {
        return of(buffer, 4 * from, 4 * count);
    }
}
