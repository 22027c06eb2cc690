package dev.lora4j.autograd;

import dev.lora4j.backend.Parallel;
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
        float[] z = logits.contiguous().toFloatArray();
        float[] lse = new float[rows];
        double total = 0;
        for (int r = 0; r < rows; r++) {
            if (labels[r] == IGNORE_INDEX) {
                continue;
            }
            lse[r] = logSumExp(z, r * v, v);
            total += lse[r] - z[r * v + labels[r]];
        }
        int count = valid;
        Tensor loss = Tensor.scalar(count == 0 ? Float.NaN : (float) (total / count));
        return Autograd.record(loss, "crossEntropy", new Tensor[] {logits}, dOut -> {
            float g = dOut.data()[dOut.intOffset()] / count;
            float[] dz = logits.gradBuffer().data();
            Parallel.forRange(rows, 4, (r0, r1) -> {
                for (int r = r0; r < r1; r++) {
                    if (labels[r] == IGNORE_INDEX) {
                        continue;
                    }
                    int o = r * v;
                    for (int i = 0; i < v; i++) {
                        dz[o + i] += g * (float) Math.exp(z[o + i] - lse[r]);
                    }
                    dz[o + labels[r]] -= g;
                }
            });
        });
    }

    /** Softmax over the last dimension. Backward: dx = y ⊙ (dy − Σ dy ⊙ y). Saves y. */
    public static Tensor softmax(Tensor x) {
        int v = x.dim(-1);
        float[] y = x.contiguous().toFloatArray();
        int rows = y.length / v;
        for (int r = 0; r < rows; r++) {
            float l = logSumExp(y, r * v, v);
            for (int i = 0; i < v; i++) {
                y[r * v + i] = (float) Math.exp(y[r * v + i] - l);
            }
        }
        return Autograd.record(Tensor.of(y, x.shape()), "softmax", new Tensor[] {x}, dOut -> {
            float[] dy = dOut.data();
            float[] dx = x.gradBuffer().data();
            for (int r = 0; r < rows; r++) {
                double dotp = 0;
                for (int i = 0; i < v; i++) {
                    dotp += (double) dy[r * v + i] * y[r * v + i];
                }
                for (int i = 0; i < v; i++) {
                    dx[r * v + i] += y[r * v + i] * (dy[r * v + i] - (float) dotp);
                }
            }
        });
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
