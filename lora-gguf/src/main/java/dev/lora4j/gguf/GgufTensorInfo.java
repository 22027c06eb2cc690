package dev.lora4j.gguf;

import java.util.Arrays;

/**
 * One tensor of a GGUF file: its name, its shape in row-major order (PyTorch's and lora4j's; the
 * file stores the reverse, ggml's {@code ne[]}), its ggml type, and where its bytes are relative to
 * the start of the data section.
 */
public record GgufTensorInfo(String name, int[] shape, GgmlType type, long offset) {
    public GgufTensorInfo {
        shape = shape.clone();
    }

    @Override
    public int[] shape() {
        return shape.clone();
    }

    /** ggml's {@code ne[]}: the shape reversed (ne[0] is the row length). */
    public long[] ne() {
        long[] ne = new long[shape.length];
        for (int i = 0; i < shape.length; i++) {
            ne[i] = shape[shape.length - 1 - i];
        }
        return ne;
    }

    public long numel() {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    public long byteSize() {
        return type.byteSize(numel());
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GgufTensorInfo t && t.name.equals(name) && Arrays.equals(t.shape, shape) && t.type == type
                && t.offset == offset;
    }

    @Override
    public int hashCode() {
        return name.hashCode() * 31 + Arrays.hashCode(shape);
    }

    @Override
    public String toString() {
        return name + " " + Arrays.toString(shape) + " " + type;
    }
}
