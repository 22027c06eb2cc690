package dev.lora4j.tensor;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.autograd.GradFn;
import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * An n-dimensional view over a {@link Storage}: shape, strides (in elements) and an offset.
 * Reshape of a contiguous tensor, transpose and slice are views that share the storage; compute
 * ops read their inputs through {@link #contiguous()}, which copies only when needed.
 *
 * <p>Autograd: a tensor that {@link #requiresGrad()} records the {@link GradFn} that produced it;
 * {@link #backward()} runs reverse-mode differentiation from a scalar. Leaves (parameters) keep
 * their {@link #grad()} between backward passes so that micro-batches accumulate; intermediate
 * gradients and the graph are dropped as soon as they have been used.
 */
public final class Tensor {
    private final Storage storage;
    private final int[] shape;
    private final int[] strides;
    private final long offset;

    private boolean requiresGrad;
    private Tensor grad;
    /** A leaf's gradient buffer kept across {@link #zeroGrad()}, zeroed and reused by {@link #gradBuffer()}. */
    private Tensor spareGrad;
    private GradFn gradFn;
    private String name;

    public Tensor(Storage storage, int[] shape, int[] strides, long offset) {
        this.storage = storage;
        this.shape = shape.clone();
        this.strides = strides.clone();
        this.offset = offset;
        long needed = offset + 1;
        for (int d = 0; d < shape.length; d++) {
            if (shape[d] < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            if (shape[d] == 0) {
                needed = 0;
                break;
            }
            needed += (long) (shape[d] - 1) * strides[d];
        }
        if (needed > storage.size()) {
            throw new IllegalArgumentException("view " + Arrays.toString(shape) + " strides " + Arrays.toString(strides)
                    + " offset " + offset + " needs " + needed + " elements but the storage holds " + storage.size());
        }
    }

    public Tensor(Storage storage, int... shape) {
        this(storage, shape, contiguousStrides(shape), 0);
        if (numel(shape) != storage.size()) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has " + numel(shape)
                    + " elements but the storage holds " + storage.size());
        }
    }

    // ---------------------------------------------------------------- factories

    public static Tensor zeros(int... shape) {
        return new Tensor(new FloatStorage(Math.toIntExact(numel(shape))), shape);
    }

    /** Wraps (does not copy) {@code data} as a contiguous F32 tensor. */
    public static Tensor of(float[] data, int... shape) {
        return new Tensor(new FloatStorage(data), shape);
    }

    public static Tensor scalar(float value) {
        return of(new float[] {value});
    }

    public static Tensor full(float value, int... shape) {
        Tensor t = zeros(shape);
        Arrays.fill(t.data(), value);
        return t;
    }

    /** Uniform in [low, high) from a seeded generator: the same seed gives the same tensor. */
    public static Tensor uniform(SplittableRandom rng, float low, float high, int... shape) {
        Tensor t = zeros(shape);
        float[] d = t.data();
        for (int i = 0; i < d.length; i++) {
            d[i] = (float) (low + (high - low) * rng.nextDouble());
        }
        return t;
    }

    /** Normal(mean, std) from a seeded generator (Box-Muller on doubles). */
    public static Tensor normal(SplittableRandom rng, float mean, float std, int... shape) {
        Tensor t = zeros(shape);
        float[] d = t.data();
        for (int i = 0; i < d.length; i += 2) {
            double u1 = 1.0 - rng.nextDouble();
            double u2 = rng.nextDouble();
            double r = Math.sqrt(-2.0 * Math.log(u1));
            d[i] = (float) (mean + std * r * Math.cos(2 * Math.PI * u2));
            if (i + 1 < d.length) {
                d[i + 1] = (float) (mean + std * r * Math.sin(2 * Math.PI * u2));
            }
        }
        return t;
    }

    // ---------------------------------------------------------------- shape

    public int[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    /** Size of dimension {@code d}; negative d counts from the end. */
    public int dim(int d) {
        return shape[d < 0 ? shape.length + d : d];
    }

    public long numel() {
        return numel(shape);
    }

    public int[] strides() {
        return strides.clone();
    }

    public long offset() {
        return offset;
    }

    public Storage storage() {
        return storage;
    }

    public DType dtype() {
        return storage.dtype();
    }

    /** Where this tensor's storage lives. */
    public Device device() {
        return storage.device();
    }

    /** The backend that computes on this tensor's device ({@link Backends#forDevice}). */
    public Backend backend() {
        return Backends.forDevice(device());
    }

    /**
     * This tensor on {@code target}: itself when it is there already, else a contiguous copy made
     * by the target's backend ({@link Backend#toDevice}: F32, except that a device backend keeps a
     * frozen BF16 or 4-bit weight in that form). Explicit by design: operations never move tensors,
     * and mixing devices in one operation is an error.
     */
    public Tensor to(Device target) {
        if (target == device()) {
            return this;
        }
        if (device() == Device.CPU) {
            return Backends.forDevice(target).toDevice(this).name(name);
        }
        float[] host = new float[Math.toIntExact(numel())];
        backend().toHost(host, 0, this);
        return Backends.forDevice(target).fromHost(host, shape).name(name);
    }

    public boolean isContiguous() {
        long expected = 1;
        for (int d = shape.length - 1; d >= 0; d--) {
            if (shape[d] != 1 && strides[d] != expected) {
                return false;
            }
            expected *= shape[d];
        }
        return true;
    }

    /**
     * The backing float array of a contiguous F32 tensor that starts at offset 0 of its storage.
     * Compute kernels use it with {@link #offset()}; anything else is a programming error.
     */
    public float[] data() {
        if (!(storage instanceof FloatStorage fs)) {
            throw new IllegalStateException("tensor" + nameSuffix() + " is " + storage.dtype() + " in "
                    + storage.getClass().getSimpleName() + ", not heap F32; decode it or use contiguous()");
        }
        return fs.array();
    }

    /** Offset as int, for array indexing (heap storages are at most 2^31 elements). */
    public int intOffset() {
        return Math.toIntExact(offset);
    }

    /** Element at the given index, through strides; for tests and small reads. */
    public float get(int... index) {
        if (index.length != shape.length) {
            throw new IllegalArgumentException("index " + Arrays.toString(index) + " for shape " + Arrays.toString(shape));
        }
        long pos = offset;
        for (int d = 0; d < index.length; d++) {
            if (index[d] < 0 || index[d] >= shape[d]) {
                throw new IndexOutOfBoundsException("index " + Arrays.toString(index) + " outside " + Arrays.toString(shape));
            }
            pos += (long) index[d] * strides[d];
        }
        return storage.getFloat(pos);
    }

    /** A host copy of all elements in row-major order, widened to float. */
    public float[] toFloatArray() {
        float[] out = new float[Math.toIntExact(numel())];
        if (isContiguous()) {
            storage.decode(offset, out.length, out, 0);
            return out;
        }
        backend().toHost(out, 0, this);
        return out;
    }

    /** A contiguous F32 copy that does not take part in autograd. */
    public Tensor copy() {
        return of(toFloatArray(), shape);
    }

    // ---------------------------------------------------------------- views (autograd-aware)

    /** Same elements, new shape; one dimension may be -1. Copies only if this is not contiguous. */
    public Tensor reshape(int... newShape) {
        int[] resolved = resolveShape(newShape);
        Tensor src = contiguous();
        Tensor view = new Tensor(src.storage, resolved, contiguousStrides(resolved), src.offset);
        return Autograd.viewOf(src, view, "reshape", dOut -> dOut.reshape(src.shape));
    }

    /** Swaps two dimensions (a strided view). */
    public Tensor transpose(int d0, int d1) {
        int a = d0 < 0 ? shape.length + d0 : d0;
        int b = d1 < 0 ? shape.length + d1 : d1;
        int[] s = shape.clone();
        int[] st = strides.clone();
        s[a] = shape[b];
        s[b] = shape[a];
        st[a] = strides[b];
        st[b] = strides[a];
        Tensor view = new Tensor(storage, s, st, offset);
        return Autograd.viewOf(this, view, "transpose", dOut -> dOut.transpose(a, b).contiguous());
    }

    /** Elements {@code start <= i < end} along {@code dim} (a strided view). */
    public Tensor slice(int dim, int start, int end) {
        int d = dim < 0 ? shape.length + dim : dim;
        if (start < 0 || end > shape[d] || start > end) {
            throw new IndexOutOfBoundsException("slice [" + start + ", " + end + ") of dimension " + d + " with size "
                    + shape[d] + " (shape " + Arrays.toString(shape) + ")");
        }
        int[] s = shape.clone();
        s[d] = end - start;
        Tensor view = new Tensor(storage, s, strides, offset + (long) start * strides[d]);
        int[] fullShape = shape.clone();
        return Autograd.viewOf(this, view, "slice", dOut -> {
            Tensor full = dOut.backend().zeros(fullShape);
            Tensor window = new Tensor(full.storage, dOut.shape, contiguousStrides(fullShape),
                    full.offset + (long) start * contiguousStrides(fullShape)[d]);
            window.copyFrom(dOut);
            return full;
        });
    }

    /**
     * This tensor if it is contiguous F32 compute storage (heap F32 on the CPU), else a contiguous
     * F32 copy made by its backend (from the step arena when one is open).
     */
    public Tensor contiguous() {
        if (isContiguous() && (storage instanceof FloatStorage || (device() != Device.CPU && dtype() == DType.F32))) {
            return this;
        }
        Backend be = backend();
        Tensor copy = be.empty(shape);
        be.copy(copy, this);
        return Autograd.viewOf(this, copy, "contiguous", dOut -> dOut);
    }

    /** Writes {@code src} (same shape, any layout, same device) into this view. */
    public void copyFrom(Tensor src) {
        if (!Arrays.equals(shape, src.shape)) {
            throw new IllegalArgumentException("copyFrom: shape " + Arrays.toString(src.shape) + " into "
                    + Arrays.toString(shape));
        }
        if (src.device() != device()) {
            throw new IllegalArgumentException("copyFrom: src is on " + src.device() + " but this tensor is on " + device()
                    + "; move it first with Tensor.to(Device." + device() + ")");
        }
        backend().copy(this, src);
    }

    // ---------------------------------------------------------------- autograd

    public boolean requiresGrad() {
        return requiresGrad;
    }

    /** Marks a leaf as trainable (or frozen). Returns this. */
    public Tensor requiresGrad(boolean value) {
        if (value && !storage.dtype().isFloatingPoint()) {
            throw new IllegalArgumentException("only floating-point tensors can require gradients, not " + dtype());
        }
        this.requiresGrad = value;
        return this;
    }

    /** Accumulated gradient (same shape, contiguous F32), or null before the first backward. */
    public Tensor grad() {
        return grad;
    }

    public void setGrad(Tensor grad) {
        this.grad = grad;
        if (grad == null) {
            return;
        }
        spareGrad = null;
    }

    /**
     * The gradient buffer, created as zeros on first use; backward rules accumulate into it. A
     * leaf's buffer is persistent (never from a step arena) and is reused, zeroed, after
     * {@link #zeroGrad()}; an intermediate's comes from its backend (the step arena if one is open).
     */
    public Tensor gradBuffer() {
        if (grad == null) {
            if (!isLeaf()) {
                grad = backend().zeros(shape);
            } else if (spareGrad != null) {
                grad = spareGrad;
                spareGrad = null;
                grad.backend().fill(grad, 0f);
            } else {
                grad = device() == Device.CPU ? zeros(shape) : persistentZeros();
            }
        }
        return grad;
    }

    private Tensor persistentZeros() {
        Tensor t = Backends.forDevice(device()).fromHost(new float[Math.toIntExact(numel())], shape);
        return t;
    }

    /** Drops the gradient (grad() is null again); a leaf keeps the buffer to reuse it. */
    public void zeroGrad() {
        if (isLeaf() && grad != null && grad.isContiguous() && grad.offset == 0 && grad.storage.size() == numel()
                && grad.dtype() == DType.F32) {
            spareGrad = grad;
        }
        grad = null;
    }

    public GradFn gradFn() {
        return gradFn;
    }

    public void setGradFn(GradFn fn) {
        this.gradFn = fn;
        this.requiresGrad = fn != null || requiresGrad;
    }

    public boolean isLeaf() {
        return gradFn == null;
    }

    /** Reverse-mode differentiation from this scalar; see {@link Autograd#backward}. */
    public void backward() {
        Autograd.backward(this);
    }

    /** The same storage without the graph: a constant for autograd. */
    public Tensor detach() {
        return new Tensor(storage, shape, strides, offset);
    }

    public String name() {
        return name;
    }

    public Tensor name(String value) {
        this.name = value;
        return this;
    }

    private String nameSuffix() {
        return name == null ? "" : " '" + name + "'";
    }

    @Override
    public String toString() {
        return "Tensor" + nameSuffix() + Arrays.toString(shape) + " " + dtype() + (requiresGrad ? " requiresGrad" : "");
    }

    // ---------------------------------------------------------------- helpers

    public static long numel(int[] shape) {
        long n = 1;
        for (int s : shape) {
            n *= s;
        }
        return n;
    }

    public static int[] contiguousStrides(int[] shape) {
        int[] st = new int[shape.length];
        int acc = 1;
        for (int d = shape.length - 1; d >= 0; d--) {
            st[d] = acc;
            acc *= Math.max(shape[d], 1);
        }
        return st;
    }

    private int[] resolveShape(int[] newShape) {
        int[] s = newShape.clone();
        int infer = -1;
        long known = 1;
        for (int d = 0; d < s.length; d++) {
            if (s[d] == -1) {
                if (infer >= 0) {
                    throw new IllegalArgumentException("reshape " + Arrays.toString(newShape) + ": only one -1 allowed");
                }
                infer = d;
            } else {
                known *= s[d];
            }
        }
        if (infer >= 0) {
            if (known == 0 || numel() % known != 0) {
                throw new IllegalArgumentException("reshape " + Arrays.toString(shape) + " to " + Arrays.toString(newShape)
                        + ": " + numel() + " elements do not divide");
            }
            s[infer] = (int) (numel() / known);
        }
        if (numel(s) != numel()) {
            throw new IllegalArgumentException("reshape " + Arrays.toString(shape) + " (" + numel() + " elements) to "
                    + Arrays.toString(newShape) + " (" + numel(s) + " elements)");
        }
        return s;
    }
}
