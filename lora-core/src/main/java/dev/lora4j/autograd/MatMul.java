package dev.lora4j.autograd;

import dev.lora4j.backend.Backend;
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

    /** C = op(a)·op(b), where op transposes when the flag is set. a, b are 2-D. */
    public static Tensor matmul(Tensor a, boolean transA, Tensor b, boolean transB) {
        if (a.rank() != 2 || b.rank() != 2) {
            throw new IllegalArgumentException("matmul: expects 2-D tensors, got a " + Arrays.toString(a.shape())
                    + " and b " + Arrays.toString(b.shape()));
        }
        Backend be = Autograd.backendFor("matmul", a, b);
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
        Tensor c = be.empty(m, n);
        be.gemm(transA, transB, m, n, k, 1f, ac.storage(), ac.offset(), a.dim(1), bc.storage(), bc.offset(),
                b.dim(1), 0f, c.storage(), c.offset(), n);
        return Autograd.record(c, "matmul", new Tensor[] {a, b}, dC -> {
            if (a.requiresGrad()) {
                // C = op(A)·op(B): d op(A) = dC·op(B)ᵀ; if A is stored transposed, dA = op(B)·dCᵀ.
                Tensor dA = a.gradBuffer();
                if (!transA) {
                    be.gemm(false, !transB, m, k, n, 1f, dC.storage(), dC.offset(), n, bc.storage(), bc.offset(),
                            b.dim(1), 1f, dA.storage(), dA.offset(), k);
                } else {
                    be.gemm(transB, true, k, m, n, 1f, bc.storage(), bc.offset(), b.dim(1), dC.storage(),
                            dC.offset(), n, 1f, dA.storage(), dA.offset(), m);
                }
            }
            if (b.requiresGrad()) {
                Tensor dB = b.gradBuffer();
                if (!transB) {
                    // dB[k, n] = op(A)ᵀ·dC
                    be.gemm(!transA, false, k, n, m, 1f, ac.storage(), ac.offset(), a.dim(1), dC.storage(),
                            dC.offset(), n, 1f, dB.storage(), dB.offset(), n);
                } else {
                    // B stored [n, k]: dB = dCᵀ·op(A)
                    be.gemm(true, transA, n, k, m, 1f, dC.storage(), dC.offset(), n, ac.storage(), ac.offset(),
                            a.dim(1), 1f, dB.storage(), dB.offset(), k);
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
        Backend be = Autograd.backendFor("linear", x, weight, bias);
        Tensor xc = x.contiguous().detach();
        int[] outShape = x.shape();
        outShape[outShape.length - 1] = out;
        Tensor y = be.empty(outShape);
        be.linear(y, xc, weight, bias);
        return Autograd.record(y, "linear", new Tensor[] {x, weight, bias}, dY -> {
            if (x.requiresGrad()) {
                be.linearBackwardInput(x.gradBuffer(), dY, weight);
            }
            if (weight.requiresGrad()) {
                be.linearBackwardWeight(weight.gradBuffer(), bias != null && bias.requiresGrad() ? bias.gradBuffer() : null,
                        dY, xc);
            } else if (bias != null && bias.requiresGrad()) {
                be.sumRows(bias.gradBuffer(), dY);
            }
        });
    }

    /**
     * The fused LoRA linear (Hu et al. 2021) for one or more adapters:
     * y = x·Wᵀ + bias + Σᵢ sᵢ·(xdᵢ·Aᵢᵀ)·Bᵢᵀ, W [out, in] frozen in any storage, xdᵢ the adapter's
     * (dropped-out) input [..., in], Aᵢ [R, in], Bᵢ [out, R]. Forward saves x only if W needs a
     * gradient, and xaᵢ = xdᵢ·Aᵢᵀ [N, R] per adapter; backward: dx += dy·W,
     * dBᵢ += sᵢ·dyᵀ·xaᵢ, dAᵢ += sᵢ·(dy·Bᵢ)ᵀ·xdᵢ, dxdᵢ += sᵢ·(dy·Bᵢ)·Aᵢ, and no gradient is ever
     * formed for a frozen W. With W trainable its gradient is dyᵀ·x as in {@link #linear}.
     */
    public static Tensor loraLinear(Tensor x, Tensor weight, Tensor bias, Tensor[] xd, Tensor[] a, Tensor[] b,
                                    float[] scaling) {
        int out = weight.dim(0);
        int in = weight.dim(1);
        if (x.dim(-1) != in) {
            throw new IllegalArgumentException("loraLinear: x has " + x.dim(-1) + " features but the weight "
                    + describe(weight) + " expects " + in + " (x: " + Arrays.toString(x.shape()) + ", W: "
                    + Arrays.toString(weight.shape()) + ")");
        }
        int adapters = a.length;
        Tensor[] inputs = new Tensor[3 + 3 * adapters];
        inputs[0] = x;
        inputs[1] = weight;
        inputs[2] = bias;
        for (int i = 0; i < adapters; i++) {
            if (a[i].dim(1) != in || b[i].dim(0) != out || b[i].dim(1) != a[i].dim(0)) {
                throw new IllegalArgumentException("loraLinear: adapter " + i + " has A " + Arrays.toString(a[i].shape())
                        + " and B " + Arrays.toString(b[i].shape()) + " for a layer " + in + " -> " + out);
            }
            inputs[3 + 3 * i] = xd[i];
            inputs[4 + 3 * i] = a[i];
            inputs[5 + 3 * i] = b[i];
        }
        Backend be = Autograd.backendFor("loraLinear", inputs);
        Tensor xc = x.contiguous().detach();
        int rows = Math.toIntExact(x.numel() / in);
        int[] outShape = x.shape();
        outShape[outShape.length - 1] = out;
        Tensor y = be.empty(outShape);
        Tensor[] xdc = new Tensor[adapters];
        Tensor[] ac = new Tensor[adapters];
        Tensor[] bc = new Tensor[adapters];
        Tensor[] xa = new Tensor[adapters];
        be.linear(y, xc, weight, bias);
        for (int i = 0; i < adapters; i++) {
            xdc[i] = xd[i] == x ? xc : xd[i].contiguous().detach();
            ac[i] = a[i].contiguous().detach();
            bc[i] = b[i].contiguous().detach();
            xa[i] = be.empty(rows, a[i].dim(0));
            be.loraForward(y, xa[i], xdc[i], ac[i], bc[i], scaling[i]);
        }
        return Autograd.record(y, "loraLinear", inputs, dY -> {
            for (int i = 0; i < adapters; i++) {
                boolean dxd = xd[i].requiresGrad() && xd[i] != x;
                boolean viaX = xd[i] == x && x.requiresGrad();
                if (!dxd && !viaX && !a[i].requiresGrad() && !b[i].requiresGrad()) {
                    continue;
                }
                Tensor u = be.empty(rows, a[i].dim(0));
                Tensor dXd = dxd ? xd[i].gradBuffer() : viaX ? x.gradBuffer() : null;
                be.loraBackward(dXd, a[i].requiresGrad() ? a[i].gradBuffer() : null,
                        b[i].requiresGrad() ? b[i].gradBuffer() : null, u, dY, xdc[i], xa[i], ac[i], bc[i], scaling[i]);
                be.release(u); // scratch of this adapter's backward only
            }
            if (x.requiresGrad()) {
                be.linearBackwardInput(x.gradBuffer(), dY, weight);
            }
            if (weight.requiresGrad()) {
                be.linearBackwardWeight(weight.gradBuffer(), bias != null && bias.requiresGrad() ? bias.gradBuffer() : null,
                        dY, xc);
            } else if (bias != null && bias.requiresGrad()) {
                be.sumRows(bias.gradBuffer(), dY);
            }
        });
    }

    static String describe(Tensor t) {
        return t.name() != null ? "'" + t.name() + "'" : Arrays.toString(t.shape());
    }
}
