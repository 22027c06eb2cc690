package dev.lora4j.train;

import dev.lora4j.tensor.Tensor;
import java.util.List;

/** The bookkeeping every optimizer shares: its parameters, the current learning rate, the step count. */
abstract class BaseOptimizer implements Optimizer {
    protected final List<Tensor> params;
    protected double lr;
    private long steps;

    BaseOptimizer(List<Tensor> params, double lr, String lrExample) {
        Checks.positive("lr", lr, lrExample);
        this.params = List.copyOf(params);
        this.lr = lr;
    }

    @Override
    public final void step() {
        steps++;
        update();
    }

    /** Applies one update to every parameter that has a gradient. */
    protected abstract void update();

    @Override
    public List<Tensor> parameters() {
        return params;
    }

    @Override
    public double learningRate() {
        return lr;
    }

    @Override
    public void setLearningRate(double lr) {
        Checks.nonNegative("lr", lr); // a schedule may decay to exactly 0
        this.lr = lr;
    }

    @Override
    public long stepCount() {
        return steps;
    }
}
