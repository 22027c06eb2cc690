package dev.lora4j.train;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.backend.AdamWStep;
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
    /** First and second moments per parameter, on the parameter's device. */
    private final Tensor[] m;
    private final Tensor[] v;
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
        this.m = new Tensor[params.size()];
        this.v = new Tensor[params.size()];
        this.steps = new long[params.size()];
        for (int i = 0; i < params.size(); i++) {
            m[i] = stateBuffer(params.get(i));
            v[i] = stateBuffer(params.get(i));
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
            Autograd.backendFor("AdamW", p, p.grad()).adamW(p, p.grad().contiguous(), m[i], v[i],
                    new AdamWStep(decay, b1, b2, c1, c2, stepSize, bias2Sqrt, eps));
        }
    }

    @Override
    public long stateBytes() {
        long n = 0;
        for (Tensor a : m) {
            n += 8L * a.numel();
        }
        return n;
    }

    /** First and second moment buffers of parameter i (for checkpoints and tests). */
    public float[][] moments(int i) {
        return new float[][] {m[i].toFloatArray(), v[i].toFloatArray()};
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
        out.add(prefix + "exp_avg", Tensor.of(m[i].toFloatArray(), shape));
        out.add(prefix + "exp_avg_sq", Tensor.of(v[i].toFloatArray(), shape));
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
            m[i].copyFrom(m[i].backend().fromHost(expAvg, m[i].shape()));
            v[i].copyFrom(v[i].backend().fromHost(expAvgSq, v[i].shape()));
            steps[i] = step;
        };
    }

    @Override
    public String toString() {
        return "AdamW(lr=" + lr + ", betas=(" + beta1 + ", " + beta2 + "), eps=" + eps + ", weightDecay=" + weightDecay + ")";
    }
}
