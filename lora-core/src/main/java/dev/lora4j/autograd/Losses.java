package dev.lora4j.autograd;

import dev.lora4j.backend.Backend;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;

/** Softmax and cross-entropy with their backward rules. */
public final class Losses {
    /** Label value that excludes a position from the loss (PyTorch's default ignore_index). */
    public static final int IGNORE_INDEX = -100;

    private Losses() {
    }

    /**
     * Mean cross-entropy of logits [..., V] against integer labels (one per row), skipping rows
     * whose label is {@link #IGNORE_INDEX}: loss = Σ_valid (logsumexp(zᵣ) − zᵣ[yᵣ]) / n_valid, as
     * torch.nn.functional.cross_entropy(reduction="mean"). Backward: dz = (softmax(z) − onehot(y)) / n_valid
     * on valid rows, 0 elsewhere. Saves the logits' log-sum-exp per row.
     * If every label is ignored the loss is NaN, as in PyTorch; callers should not train on such batches.
     */
    public static Tensor crossEntropy(Tensor logits, int[] labels) {
        int v = logits.dim(-1);
        int rows = Math.toIntExact(logits.numel() / v);
        if (labels.length != rows) {
            throw new IllegalArgumentException("crossEntropy: " + labels.length + " labels for " + rows + " rows of logits "
                    + Arrays.toString(logits.shape()));
        }
        int valid = 0;
        for (int r = 0; r < rows; r++) {
            int y = labels[r];
            if (y == IGNORE_INDEX) {
                continue;
            }
            if (y < 0 || y >= v) {
                throw new IllegalArgumentException("crossEntropy: label " + y + " at row " + r + " is outside the vocabulary [0, "
                        + v + ") and is not the ignore index " + IGNORE_INDEX);
            }
            valid++;
        }
        Backend be = Autograd.backendFor("crossEntropy", logits);
        Tensor z = logits.contiguous().detach();
        Tensor lse = be.empty(rows);
        double total = be.crossEntropy(lse, z, labels, IGNORE_INDEX);
        int count = valid;
        Tensor loss = be.fromHost(new float[] {count == 0 ? Float.NaN : (float) (total / count)});
        return Autograd.record(loss, "crossEntropy", new Tensor[] {logits}, dOut -> {
            float g = Elementwise.scalarOf(dOut) / count;
            be.crossEntropyBackward(logits.gradBuffer(), z, lse, labels, IGNORE_INDEX, g);
        });
    }

    /** Softmax over the last dimension. Backward: dx = y ⊙ (dy − Σ dy ⊙ y). Saves y. */
    public static Tensor softmax(Tensor x) {
        Backend be = Autograd.backendFor("softmax", x);
        Tensor y = be.empty(x.shape());
        be.softmax(y, x.contiguous().detach());
        return Autograd.record(y, "softmax", new Tensor[] {x}, dOut -> be.softmaxBackward(x.gradBuffer(), dOut, y));
    }

    /** log Σ exp(x[o..o+n)) computed stably in double. */
    public static float logSumExp(float[] x, int o, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x[o + i]);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += Math.exp(x[o + i] - max);
        }
        return (float) (max + Math.log(sum));
    }
}
