package dev.lora4j.train;

import dev.lora4j.io.SafetensorsWriter;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * AdamW exactly as torch.optim.AdamW (Loshchilov and Hutter; decoupled weight decay), per element
 * at step t: p ← p·(1 − lr·λ); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
 * p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε), with t counted per parameter as torch does.
 * Defaults as PyTorch: β = (0.9, 0.999), ε = 1e-8, λ = 0.01. State: m and v, 8 bytes per parameter.
 */
public final class AdamW extends BaseOptimizer {
    private final float[][] m;
    private final float[][] v;
    /** Updates applied to each parameter; torch keeps this per parameter (state["step"]) for the bias correction. */
    private final long[] steps;
    private final double beta1;
    private final double beta2;
    private final double eps;
    private final double weightDecay;

    public AdamW(List<Tensor> params, double lr, double beta1, double beta2, double eps, double weightDecay) {
        super(params, lr, "a learning rate such as 3e-4");
        Checks.inRange("beta1", beta1, 0, 1);
        Checks.inRange("beta2", beta2, 0, 1);
        Checks.positive("eps", eps, "1e-8");
        Checks.nonNegative("weightDecay", weightDecay);
        this.m = new float[params.size()][];
        this.v = new float[params.size()][];
        this.steps = new long[params.size()];
        for (int i = 0; i < params.size(); i++) {
            int n = Math.toIntExact(params.get(i).numel());
            m[i] = new float[n];
            v[i] = new float[n];
        }
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
    }

    public AdamW(List<Tensor> params, double lr, double weightDecay) {
        this(params, lr, 0.9, 0.999, 1e-8, weightDecay);
    }

    @Override
    protected void update() {
        float decay = (float) (1 - lr * weightDecay);
        float b1 = (float) beta1;
        float b2 = (float) beta2;
        // 1 − β in double, as torch passes it: 1 − (float) 0.999 would be off by 1.3e-5 relative
        float c1 = (float) (1 - beta1);
        float c2 = (float) (1 - beta2);
        for (int i = 0; i < params.size(); i++) {
            Tensor p = params.get(i);
            if (p.grad() == null) {
                continue;
            }
            long ti = ++steps[i];
            double bias1 = 1 - Math.pow(beta1, ti);
            double bias2Sqrt = Math.sqrt(1 - Math.pow(beta2, ti));
            float stepSize = (float) (lr / bias1);
            float[] w = p.data();
            float[] g = p.grad().data();
            float[] mi = m[i];
            float[] vi = v[i];
            for (int j = 0; j < w.length; j++) {
                w[j] *= decay;
                mi[j] = b1 * mi[j] + c1 * g[j];
                vi[j] = b2 * vi[j] + c2 * g[j] * g[j];
                float denom = (float) (Math.sqrt(vi[j]) / bias2Sqrt + eps);
                w[j] -= stepSize * mi[j] / denom;
            }
        }
    }

    @Override
    public long stateBytes() {
        long n = 0;
        for (float[] a : m) {
            n += 8L * a.length;
        }
        return n;
    }

    /** First and second moment buffers of parameter i (for checkpoints and tests). */
    public float[][] moments(int i) {
        return new float[][] {m[i], v[i]};
    }

    @Override
    String kind() {
        return "AdamW";
    }

    @Override
    Map<String, String> hyperParameters() {
        Map<String, String> hp = new LinkedHashMap<>();
        hp.put("beta1", Double.toString(beta1));
        hp.put("beta2", Double.toString(beta2));
        hp.put("eps", Double.toString(eps));
        hp.put("weight_decay", Double.toString(weightDecay));
        return hp;
    }

    @Override
    void exportState(int i, String prefix, SafetensorsWriter out) {
        int[] shape = params.get(i).shape();
        out.add(prefix + "exp_avg", Tensor.of(m[i], shape));
        out.add(prefix + "exp_avg_sq", Tensor.of(v[i], shape));
        out.addLongs(prefix + "step", DType.I64, new int[0], new long[] {steps[i]});
    }

    @Override
    Runnable importState(int i, String prefix, StateFile in, Set<String> used) {
        Tensor p = params.get(i);
        float[] expAvg = in.floats(prefix + "exp_avg", p);
        float[] expAvgSq = in.floats(prefix + "exp_avg_sq", p);
        long step = in.count(prefix + "step");
        used.addAll(List.of(prefix + "exp_avg", prefix + "exp_avg_sq", prefix + "step"));
        return () -> {
            System.arraycopy(expAvg, 0, m[i], 0, expAvg.length);
            System.arraycopy(expAvgSq, 0, v[i], 0, expAvgSq.length);
            steps[i] = step;
        };
    }

    @Override
    public String toString() {
        return "AdamW(lr=" + lr + ", betas=(" + beta1 + ", " + beta2 + "), eps=" + eps + ", weightDecay=" + weightDecay + ")";
    }
}
