package dev.lora4j.backend;

import dev.lora4j.tensor.Device;
import dev.lora4j.tensor.Storage;
import dev.lora4j.tensor.Tensor;

/**
 * The compute SPI between tensors and hardware, in the manner of candle's {@code BackendStorage}:
 * a backend owns the storages of its {@link #device()} (allocates, recycles, copies to and from the
 * host) and implements every operation a training or inference step needs, forward and backward.
 * Autograd ({@code dev.lora4j.autograd}) records operations and calls these methods; it never
 * reads a storage's elements itself. The CPU backends ({@link ScalarBackend}, the reference, and
 * the Vector API backend when {@code jdk.incubator.vector} is present) implement them over heap
 * arrays; a device backend (lora-cuda) plugs in through {@link BackendProvider} and
 * {@link java.util.ServiceLoader} and implements the same methods over device memory, so no
 * method below needs a host copy of a tensor (integer index arrays, token ids and labels, are
 * host data and stay {@code int[]}).
 *
 * <p>Conventions: operands are {@link Tensor}s whose storages belong to this backend's device;
 * unless a method says otherwise they are contiguous ({@link Tensor#isContiguous()}; any offset)
 * and the shapes are the ones given in the method's comment. Arguments are outputs first, then
 * inputs, then sizes (llm.c's order). An output named {@code dX} that a backward method
 * "accumulates" is added to ({@code +=}); a nullable gradient output is skipped when null.
 * Outputs may not alias inputs unless the method says so.
 *
 * <p>Dimension letters used across the code base: B batch, T time (sequence), S key positions,
 * C channels (hidden size), V vocabulary, H query heads, G key/value heads (grouped-query), D head
 * size, R LoRA rank, N rows (B·T), M/N/K the sizes of a matrix product.
 */
public interface Backend {

    /** A short name for logs: "scalar", "vector", "cuda". */
    String name();

    /** Where the storages this backend allocates live. */
    default Device device() {
        return Device.CPU;
    }

    // ---------------------------------------------------------------- storage

    /**
     * A contiguous F32 tensor of this device whose contents are unspecified (it may be a recycled
     * buffer). While an {@link #openArena() arena} is open on the calling thread the buffer comes
     * from this backend's pool and returns to it when the arena closes.
     */
    Tensor empty(int... shape);

    /** {@link #empty} filled with zeros. */
    Tensor zeros(int... shape);

    /**
     * Opens a per-step arena on the calling thread: every {@link #empty}/{@link #zeros} until it is
     * closed is served from a size-bucketed pool of this backend and given back on close, so that
     * a steady-state training step allocates (and faults in) no new buffers. Tensors created
     * inside must not be used after the arena closes. Arenas nest; closing an inner one returns
     * only its own buffers.
     */
    Arena openArena();

    /**
     * Declares t's buffer dead: if the arena open on this thread handed it out, it may be handed
     * out again at once (before the arena closes), which lowers a step's peak memory. Only for
     * buffers nothing else references (no view, no saved tensor); releasing twice is harmless.
     */
    default void release(Tensor t) {
    }

    /** Copies host floats into a new tensor of this device (not from an arena: it persists). */
    Tensor fromHost(float[] values, int... shape);

    /**
     * {@code t} on this backend's device, persistent (not from an arena), with its name and
     * requiresGrad flag: {@code t} itself when it is there already, else a copy. A device backend
     * keeps the storage kinds its kernels read (a BF16 or 4-bit frozen weight stays BF16 or 4-bit);
     * this default copies F32 values through the host. {@link Tensor#to} and model placement use it.
     */
    default Tensor toDevice(Tensor t) {
        if (t.device() == device()) {
            return t;
        }
        float[] host = new float[Math.toIntExact(t.numel())];
        t.backend().toHost(host, 0, t);
        return fromHost(host, t.shape()).name(t.name()).requiresGrad(t.requiresGrad());
    }

    /** Copies {@code src} (any layout, any storage of this device) to {@code dst[dstOffset ..]}, row-major. */
    void toHost(float[] dst, int dstOffset, Tensor src);

    /**
     * dst = src element by element, both views of the same shape with any strides (materializing
     * a transpose or slice, writing into a slice). src may be any storage of this device, widened
     * to F32; dst is F32.
     */
    void copy(Tensor dst, Tensor src);

    /** Every element of dst (any strides) set to {@code value}. */
    void fill(Tensor dst, float value);

    // ---------------------------------------------------------------- matrix products

    /**
     * General matrix product, BLAS semantics on row-major storage:
     * {@code C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C[m,n]}.
     * op(A) is A stored [m, k] with row stride {@code lda}, or with {@code transA} A stored
     * [k, m]; likewise op(B) is B stored [k, n] or, with {@code transB}, [n, k] (the usual
     * layout of a weight: y = x·Wᵀ is {@code gemm(false, true, ...)} with B = W).
     *
     * <p>On CPU backends A and C are heap F32 ({@link dev.lora4j.tensor.FloatStorage}); B may be
     * any storage (BF16, F16, memory-mapped, 4-bit) and is widened panel by panel, so that a
     * frozen weight never exists in F32 as a whole. With beta == 0, C is overwritten (its old
     * contents, even NaN, are ignored).
     */
    void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
              Storage a, long aOffset, int lda,
              Storage b, long bOffset, int ldb,
              float beta, Storage c, long cOffset, int ldc);

    /**
     * {@code count} independent products {@code C_i = alpha·op(A_i)·op(B_i) + beta·C_i}, operand i
     * starting {@code i·stride} elements after the first (a stride of 0 shares the operand).
     */
    default void gemmBatched(int count, boolean transA, boolean transB, int m, int n, int k, float alpha,
                             Storage a, long aOffset, int lda, long strideA,
                             Storage b, long bOffset, int ldb, long strideB,
                             float beta, Storage c, long cOffset, int ldc, long strideC) {
        for (int i = 0; i < count; i++) {
            gemm(transA, transB, m, n, k, alpha, a, aOffset + i * strideA, lda, b, bOffset + i * strideB, ldb, beta, c,
                    cOffset + i * strideC, ldc);
        }
    }

    /**
     * y[N, out] = x[N, in]·Wᵀ + bias, W [out, in] in any storage (F32, BF16, F16, 4-bit: decoded
     * inside the kernel), bias [out] or null. y is overwritten.
     */
    void linear(Tensor y, Tensor x, Tensor w, Tensor bias);

    /** dX[N, in] += dY[N, out]·W (the input gradient of {@link #linear}; W in any storage). */
    void linearBackwardInput(Tensor dX, Tensor dY, Tensor w);

    /** dW[out, in] += dYᵀ·x, and dBias[out] += Σ_rows dY when dBias is not null. */
    void linearBackwardWeight(Tensor dW, Tensor dBias, Tensor dY, Tensor x);

    /**
     * The LoRA branch of a fused LoRA linear, added to an existing output:
     * xa[N, R] = xd·Aᵀ (saved for backward), y[N, out] += scaling·xa·Bᵀ; xd [N, in] is the
     * (dropped-out) input, A [R, in], B [out, R].
     */
    void loraForward(Tensor y, Tensor xa, Tensor xd, Tensor a, Tensor b, float scaling);

    /**
     * Backward of {@link #loraForward}, with u[N, R] = dY·B as scratch (overwritten):
     * dB += scaling·dYᵀ·xa, dA += scaling·uᵀ·xd, dXd += scaling·u·A. Each gradient may be null.
     */
    void loraBackward(Tensor dXd, Tensor dA, Tensor dB, Tensor u, Tensor dY, Tensor xd, Tensor xa, Tensor a, Tensor b,
                      float scaling);

    /**
     * The fused LoRA linear y = x·Wᵀ + bias + scaling·(xd·Aᵀ)·Bᵀ with xa = xd·Aᵀ saved; W frozen in
     * any storage. Its backward is {@link #linearBackwardInput} for x plus {@link #loraBackward}: no
     * gradient is ever formed for W.
     */
    default void loraLinear(Tensor y, Tensor xa, Tensor x, Tensor w, Tensor bias, Tensor xd, Tensor a, Tensor b,
                            float scaling) {
        linear(y, x, w, bias);
        loraForward(y, xa, xd, a, b, scaling);
    }

    // ---------------------------------------------------------------- elementwise

    /** out = a + b (same numel); out may be a or b. */
    void add(Tensor out, Tensor a, Tensor b);

    /** out[r, c] = x[r, c] + bias[c], x [N, C]; out may be x. */
    void addRowVector(Tensor out, Tensor x, Tensor bias);

    /** dst += alpha·src (same numel). */
    void addScaled(Tensor dst, Tensor src, float alpha);

    /** out = a ⊙ b; out may be a or b. */
    void mul(Tensor out, Tensor a, Tensor b);

    /** dst += a ⊙ b. */
    void addProduct(Tensor dst, Tensor a, Tensor b);

    /** out = s·a; out may be a. */
    void scale(Tensor out, Tensor a, float s);

    /** dst[c] += Σ_r x[r, c] for x [N, C] (the gradient of a broadcast row vector), rows in order. */
    void sumRows(Tensor dst, Tensor x);

    /** Σ x in double, in index order. */
    double sum(Tensor x);

    /** Σ x ⊙ w in double (w a host constant of x's numel). */
    double weightedSum(Tensor x, float[] w);

    /** Σ x² in double (norms, gradient clipping). */
    double sumOfSquares(Tensor x);

    /** out = silu(x) = x·σ(x); out may be x. */
    void silu(Tensor out, Tensor x);

    /** dX += dY ⊙ σ(x)·(1 + x·(1 − σ(x))). */
    void siluBackward(Tensor dX, Tensor dY, Tensor x);

    /** h = silu(gate) ⊙ up (the Llama MLP gate). */
    void swiglu(Tensor h, Tensor gate, Tensor up);

    /** dGate += dH ⊙ up ⊙ silu'(gate), dUp += dH ⊙ silu(gate); either may be null. */
    void swigluBackward(Tensor dGate, Tensor dUp, Tensor dH, Tensor gate, Tensor up);

    /** out = gelu(x) in the given form (see {@link Gelu}); out may be x. */
    void gelu(Tensor out, Tensor x, Gelu kind);

    /** dX += dY ⊙ gelu'(x). */
    void geluBackward(Tensor dX, Tensor dY, Tensor x, Gelu kind);

    /**
     * h = gelu(gate) ⊙ up (GeGLU, Shazeer 2020); Gemma's is the tanh form
     * ({@code gelu_pytorch_tanh}).
     */
    void geglu(Tensor h, Tensor gate, Tensor up, Gelu kind);

    /** dGate += dH ⊙ up ⊙ gelu'(gate), dUp += dH ⊙ gelu(gate); either may be null. */
    void gegluBackward(Tensor dGate, Tensor dUp, Tensor dH, Tensor gate, Tensor up, Gelu kind);

    /**
     * Soft-capping (Gemma 2's final logits): y = cap·tanh(x/cap), cap a finite number &gt; 0; y may
     * be x.
     */
    void softCap(Tensor y, Tensor x, float cap);

    /** dX += dY ⊙ (1 − (y/cap)²), from the saved output y of {@link #softCap}. */
    void softCapBackward(Tensor dX, Tensor dY, Tensor y, float cap);

    /**
     * Inverted dropout with a counter-based mask: element i is kept when
     * {@code mix(seed, i)} (a SplitMix64 finalizer of the seed and the index) maps to a uniform
     * value {@code >= p}, and then scaled by 1/(1 − p); dropped elements are 0. The mask is a pure
     * function of (seed, i), so backward applies the same call to the gradient instead of saving a
     * mask, and the result does not depend on threads or device.
     */
    void dropout(Tensor out, Tensor x, float p, long seed);

    // ---------------------------------------------------------------- normalization

    /**
     * RMSNorm over the last dimension: y = x·r·(w + weightOffset), r = 1/√(mean(x²) + eps) per
     * row, saved in rstd [N]. x, y [N, C], w [C]. The offset is 0 for Llama and 1 for Gemma's
     * x·(1 + w): added inside the kernel, so no (1 + w) tensor is formed per forward and a trained
     * w is always read as it is now.
     */
    void rmsNorm(Tensor y, Tensor rstd, Tensor x, Tensor w, float weightOffset, float eps);

    /** {@link #rmsNorm(Tensor, Tensor, Tensor, Tensor, float, float)} with weight offset 0: y = x·r·w. */
    default void rmsNorm(Tensor y, Tensor rstd, Tensor x, Tensor w, float eps) {
        rmsNorm(y, rstd, x, w, 0f, eps);
    }

    /**
     * Backward of {@link #rmsNorm}, with w' = w + weightOffset and g = dY ⊙ w' per row:
     * dX += r·g − x·r³·mean(g ⊙ x), dW += Σ_rows dY ⊙ x·r (the offset's derivative is 1). dX or
     * dW may be null.
     */
    void rmsNormBackward(Tensor dX, Tensor dW, Tensor dY, Tensor x, Tensor w, float weightOffset, Tensor rstd);

    /** {@link #rmsNormBackward(Tensor, Tensor, Tensor, Tensor, Tensor, float, Tensor)} with weight offset 0. */
    default void rmsNormBackward(Tensor dX, Tensor dW, Tensor dY, Tensor x, Tensor w, Tensor rstd) {
        rmsNormBackward(dX, dW, dY, x, w, 0f, rstd);
    }

    /**
     * LayerNorm over the last dimension: y = (x − μ)·r·w + b, r = 1/√(var(x) + eps) (biased
     * variance, as torch.nn.LayerNorm); μ and r saved in mean [N] and rstd [N]; b may be null.
     */
    void layerNorm(Tensor y, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps);

    /**
     * Backward of {@link #layerNorm}, with x̂ = (x − μ)·r and g = dY ⊙ w:
     * dX += r·(g − mean(g) − x̂·mean(g ⊙ x̂)), dW += Σ_rows dY ⊙ x̂, dB += Σ_rows dY. Each may be null.
     */
    void layerNormBackward(Tensor dX, Tensor dW, Tensor dB, Tensor dY, Tensor x, Tensor w, Tensor mean, Tensor rstd);

    // ---------------------------------------------------------------- position and attention

    /**
     * Rotary position embedding, Hugging Face's rotate-half layout, on the first {@code rotary}
     * dimensions of each head (the rest are copied): for i &lt; rotary/2,
     * out[i] = x[i]·cos − x[i + rotary/2]·sin, out[i + rotary/2] = x[i + rotary/2]·cos + x[i]·sin,
     * with cos/sin of position {@code positionOffset + t} from tables [P, rotary/2] and the sine's
     * sign flipped when {@code inverse} (the backward, a rotation by −θ). x, out [B, T, H, D].
     */
    void rope(Tensor out, Tensor x, Tensor cos, Tensor sin, int rotary, int positionOffset, boolean inverse);

    /**
     * Scaled-dot-product attention with grouped-query heads (query head h reads kv head
     * h / (H/G)): S = scale·Q·Kᵀ (soft-capped when the mask says so), masked per {@code mask},
     * P = softmax(S), O = P·V; the per-row log-sum-exp of the masked S is saved in lse [B, H, T].
     * q, out [B, T, H, D] contiguous; k, v [B, S, G, D] with S = queryOffset + T, rows of a
     * position may be {@code k.strides()[1]} apart and batches {@code k.strides()[0]} (a KV cache).
     */
    void attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, AttentionMask mask);

    /**
     * Backward of {@link #attention}, recomputing P from the saved lse: dV = Pᵀ·dO,
     * dS = P ⊙ (dO·Vᵀ − rowsum(dO ⊙ O)), dQ = scale·dS·K, dK = scale·dSᵀ·Q (dS through the
     * soft-cap's derivative when one is set). dQ, dK, dV are overwritten and contiguous.
     */
    void attentionBackward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out,
                           Tensor lse, AttentionMask mask);

    // ---------------------------------------------------------------- embedding

    /** out[n] = table[ids[n]] for out [N, C], table [V, C] in any storage. Ids are checked by the caller. */
    void gather(Tensor out, Tensor table, int[] ids);

    /** dTable[ids[n]] += dOut[n], n in order (deterministic for repeated ids). */
    void scatterAdd(Tensor dTable, Tensor dOut, int[] ids);

    // ---------------------------------------------------------------- softmax and loss

    /** Softmax over the last dimension, y, x [N, V]; y may be x. */
    void softmax(Tensor y, Tensor x);

    /** dX += y ⊙ (dY − Σ dY ⊙ y) per row. */
    void softmaxBackward(Tensor dX, Tensor dY, Tensor y);

    /**
     * Softmax cross-entropy of logits [N, V] against labels (one per row; rows whose label is
     * {@code ignoreIndex} are skipped): writes each valid row's log-sum-exp into lse [N] (computed
     * in one pass over the vocabulary in chunks, with a running maximum) and returns
     * Σ_valid (lse_r − z_r[y_r]) in double, rows in order. Labels are checked by the caller.
     */
    double crossEntropy(Tensor lse, Tensor logits, int[] labels, int ignoreIndex);

    /**
     * dLogits += scale·(softmax(z) − onehot(y)) on valid rows, from the saved lse. dLogits may be
     * the logits tensor itself (then it is overwritten with the gradient instead of added to).
     */
    void crossEntropyBackward(Tensor dLogits, Tensor logits, Tensor lse, int[] labels, int ignoreIndex, float scale);

    // ---------------------------------------------------------------- optimizers

    /**
     * One AdamW step (torch.optim.AdamW) on w, g, m, v of equal numel: w ← w·decay;
     * m ← β₁m + c₁g; v ← β₂v + c₂g²; w ← w − stepSize·m / (√v / bias2Sqrt + eps).
     */
    void adamW(Tensor w, Tensor g, Tensor m, Tensor v, AdamWStep step);

    /**
     * One SGD step (torch.optim.SGD): d = g + weightDecay·w; with a momentum buffer
     * (buf may be null for none): buf ← d when {@code firstStep}, else μ·buf + dampening'·d;
     * d ← d + μ·buf (Nesterov) or buf; w ← w − lr·d.
     */
    void sgd(Tensor w, Tensor g, Tensor buf, float lr, float momentum, float dampeningComplement, float weightDecay,
             boolean nesterov, boolean firstStep);

    // ---------------------------------------------------------------- host-array primitives

    /** sum_i x[xOff+i] * y[yOff+i]. */
    float dot(float[] x, int xOffset, float[] y, int yOffset, int n);

    /** y[yOff+i] += alpha * x[xOff+i]. */
    void axpy(float alpha, float[] x, int xOffset, float[] y, int yOffset, int n);

    /** sum_i x[off+i]^2, accumulated in double (used for norms and gradient clipping). */
    double sumOfSquares(float[] x, int offset, int n);
}
