package dev.lora4j.autograd;

import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;

/**
 * Matrix products with their backward rules.
 *
 * <ul>
 *   <li>{@link #matmul}: C = op(A)·op(B) for 2-D A, B in the NN, NT and TN forms.</li>
 *   <li>{@link #linear}: y = x·Wᵀ + b over the last dimension of x, PyTorch's nn.Linear. W may be a
 *       frozen weight in any storage (BF16, memory-mapped, 4-bit): it is only ever read through
 *       the backend's gemm, which widens it panel by panel.</li>
 * </ul>
 * Backward of C = A·B: dA += dC·Bᵀ, dB += Aᵀ·dC (transposed accordingly for the NT/TN forms).
 */
public final class MatMul {
    private MatMul() {
    }

    private static Backend backend() {
        return Backends.get();
    }

    /** C = op(a)·op(b), where op transposes when the flag is set. a, b are 2-D. */
    public static Tensor matmul(Tensor a, boolean transA, Tensor b, boolean transB) {
        if (a.rank() != 2 || b.rank() != 2) {
            throw new IllegalArgumentException("matmul: expects 2-D tensors, got a " + Arrays.toString(a.shape())
                    + " and b " + Arrays.toString(b.shape()));
        }
        Tensor ac = a.contiguous().detach();
        Tensor bc = b.isContiguous() ? b.detach() : b.contiguous().detach();
        int m = transA ? a.dim(1) : a.dim(0);
        int k = transA ? a.dim(0) : a.dim(1);
        int kb = transB ? b.dim(1) : b.dim(0);
        int n = transB ? b.dim(0) : b.dim(1);
        if (k != kb) {
            throw new IllegalArgumentException("matmul: op(a) has " + k + " columns but op(b) has " + kb + " rows (a: "
                    + Arrays.toString(a.shape()) + (transA ? "ᵀ" : "") + ", b: " + Arrays.toString(b.shape())
                    + (transB ? "ᵀ" : "") + ")");
        }
        Tensor c = Tensor.zeros(m, n);
        backend().gemm(transA, transB, m, n, k, 1f, ac.storage(), ac.offset(), a.dim(1), bc.storage(), bc.offset(),
                b.dim(1), 0f, c.storage(), 0, n);
        return Autograd.record(c, "matmul", new Tensor[] {a, b}, dC -> {
            if (a.requiresGrad()) {
                // C = op(A)·op(B): d op(A) = dC·op(B)ᵀ; if A is stored transposed, dA = op(B)·dCᵀ.
                Tensor dA = a.gradBuffer();
                if (!transA) {
                    backend().gemm(false, !transB, m, k, n, 1f, dC.storage(), dC.offset(), n, bc.storage(), bc.offset(),
                            b.dim(1), 1f, dA.storage(), 0, k);
                } else {
                    backend().gemm(transB, true, k, m, n, 1f, bc.storage(), bc.offset(), b.dim(1), dC.storage(),
                            dC.offset(), n, 1f, dA.storage(), 0, m);
                }
            }
            if (b.requiresGrad()) {
                Tensor dB = b.gradBuffer();
                if (!transB) {
                    // dB[k, n] = op(A)ᵀ·dC
                    backend().gemm(!transA, false, k, n, m, 1f, ac.storage(), ac.offset(), a.dim(1), dC.storage(),
                            dC.offset(), n, 1f, dB.storage(), 0, n);
                } else {
                    // B stored [n, k]: dB = dCᵀ·op(A)
                    backend().gemm(true, transA, n, k, m, 1f, dC.storage(), dC.offset(), n, ac.storage(), ac.offset(),
                            a.dim(1), 1f, dB.storage(), 0, k);
                }
            }
        });
    }

    /**
     * y[..., out] = x[..., in]·Wᵀ + bias, W stored [out, in] (nn.Linear layout). Backward:
     * dx += dy·W, dW += dyᵀ·x, dbias += Σ_rows dy. Forward saves x (for dW) only when W needs a
     * gradient; a frozen W saves nothing.
     */
    public static Tensor linear(Tensor x, Tensor weight, Tensor bias) {
        if (weight.rank() != 2) {
            throw new IllegalArgumentException("linear: weight must be 2-D [out, in], got " + Arrays.toString(weight.shape()));
        }
        int out = weight.dim(0);
        int in = weight.dim(1);
        if (x.dim(-1) != in) {
            throw new IllegalArgumentException("linear: x has " + x.dim(-1) + " features but the weight " + describe(weight)
                    + " expects " + in + " (x: " + Arrays.toString(x.shape()) + ", W: " + Arrays.toString(weight.shape()) + ")");
        }
        if (bias != null && (bias.rank() != 1 || bias.dim(0) != out)) {
            throw new IllegalArgumentException("linear: bias must be [" + out + "], got " + Arrays.toString(bias.shape()));
        }
        if (!weight.isContiguous()) {
            throw new IllegalArgumentException("linear: weight " + describe(weight) + " must be contiguous");
        }
        Tensor xc = x.contiguous().detach();
        int rows = Math.toIntExact(x.numel() / in);
        int[] outShape = x.shape();
        outShape[outShape.length - 1] = out;
        Tensor y = Tensor.zeros(outShape);
        backend().gemm(false, true, rows, out, in, 1f, xc.storage(), xc.offset(), in, weight.storage(), weight.offset(), in,
                0f, y.storage(), 0, out);
        if (bias != null) {
            float[] yd = y.data();
            float[] bd = bias.contiguous().toFloatArray();
            for (int r = 0; r < rows; r++) {
                backend().axpy(1f, bd, 0, yd, r * out, out);
            }
        }
        return Autograd.record(y, "linear", new Tensor[] {x, weight, bias}, dY -> {
            if (x.requiresGrad()) {
                Tensor dX = x.gradBuffer();
                backend().gemm(false, false, rows, in, out, 1f, dY.storage(), dY.offset(), out, weight.storage(),
                        weight.offset(), in, 1f, dX.storage(), 0, in);
            }
            if (weight.requiresGrad()) {
                Tensor dW = weight.gradBuffer();
                backend().gemm(true, false, out, in, rows, 1f, dY.storage(), dY.offset(), out, xc.storage(), xc.offset(), in,
                        1f, dW.storage(), 0, in);
            }
            if (bias != null && bias.requiresGrad()) {
                float[] db = bias.gradBuffer().data();
                float[] dy = dY.data();
                for (int r = 0; r < rows; r++) {
                    backend().axpy(1f, dy, dY.intOffset() + r * out, db, 0, out);
                }
            }
        });
    }

    static String describe(Tensor t) {
        return t.name() != null ? "'" + t.name() + "'" : Arrays.toString(t.shape());
    }
}
