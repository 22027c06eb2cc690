package dev.lora4j.train;

import dev.lora4j.io.SafetensorsFile;
import dev.lora4j.io.SafetensorsWriter;
import dev.lora4j.io.TensorInfo;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** The bookkeeping every optimizer shares: its parameters, the current learning rate, the step count. */
abstract class BaseOptimizer implements Optimizer {
    /** Metadata keys of a state file; hyper-parameters are stored under their own names beside these. */
    static final String FORMAT_KEY = "format";
    static final String FORMAT = "lora4j-optimizer-state";
    static final String KIND_KEY = "optimizer";
    static final String STEP_COUNT_KEY = "step_count";

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

    /** A persistent zero buffer of p's shape on p's device, for optimizer state. */
    static Tensor stateBuffer(Tensor p) {
        int[] shape = p.shape();
        if (p.device() == dev.lora4j.tensor.Device.CPU) {
            return Tensor.zeros(shape);
        }
        return p.backend().fromHost(new float[Math.toIntExact(p.numel())], shape);
    }

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

    // ---------------------------------------------------------------- state

    /** The kind written into a state file, e.g. "AdamW"; a file of another kind does not load. */
    abstract String kind();

    /** Settings a restored state must have been made with, by name, as {@link Double#toString} etc. */
    abstract Map<String, String> hyperParameters();

    /** Adds the state of parameter {@code i} to {@code out}, each entry named {@code prefix + buffer}. */
    abstract void exportState(int i, String prefix, SafetensorsWriter out);

    /**
     * Reads the state of parameter {@code i} from entries named {@code prefix + buffer}, checking
     * them, and returns the action that installs it (run only once every parameter has been read).
     * Adds the entry names it used to {@code used}.
     */
    abstract Runnable importState(int i, String prefix, StateFile in, Set<String> used);

    @Override
    public final void saveState(Path file, List<String> parameterNames) throws IOException {
        checkNames(parameterNames);
        SafetensorsWriter out = new SafetensorsWriter();
        out.metadata(FORMAT_KEY, FORMAT).metadata(KIND_KEY, kind()).metadata(STEP_COUNT_KEY, Long.toString(steps));
        out.metadata(hyperParameters());
        for (int i = 0; i < params.size(); i++) {
            exportState(i, parameterNames.get(i) + ".", out);
        }
        out.write(file);
    }

    @Override
    public final void loadState(Path file, List<String> parameterNames) throws IOException {
        checkNames(parameterNames);
        try (SafetensorsFile in = SafetensorsFile.open(file)) {
            Map<String, String> meta = in.metadata();
            if (!FORMAT.equals(meta.get(FORMAT_KEY))) {
                throw new IllegalArgumentException(file + ": not an optimizer state file (metadata " + FORMAT_KEY + " is "
                        + meta.get(FORMAT_KEY) + ", expected " + FORMAT + "); write one with Optimizer.saveState");
            }
            if (!kind().equals(meta.get(KIND_KEY))) {
                throw new IllegalArgumentException(file + ": the state is of optimizer " + meta.get(KIND_KEY)
                        + " but this optimizer is " + this + "; resume with the same optimizer");
            }
            List<String> differences = new ArrayList<>();
            for (Map.Entry<String, String> hp : hyperParameters().entrySet()) {
                String saved = meta.get(hp.getKey());
                if (!hp.getValue().equals(saved)) {
                    differences.add(hp.getKey() + " (file " + saved + ", this optimizer " + hp.getValue() + ")");
                }
            }
            if (!differences.isEmpty()) {
                throw new IllegalArgumentException(file + ": " + kind() + " hyper-parameters differ: "
                        + String.join(", ", differences) + "; resume with the settings the state was saved with");
            }
            long savedSteps = parseCount(file, meta.get(STEP_COUNT_KEY));
            StateFile state = new StateFile(in, file);
            Set<String> used = new HashSet<>();
            List<Runnable> installs = new ArrayList<>();
            for (int i = 0; i < params.size(); i++) {
                installs.add(importState(i, parameterNames.get(i) + ".", state, used));
            }
            Set<String> unused = new LinkedHashSet<>(in.names());
            unused.removeAll(used);
            if (!unused.isEmpty()) {
                throw new IllegalArgumentException(file + ": " + unused.size() + " entr" + (unused.size() == 1 ? "y" : "ies")
                        + " belong to no parameter of this optimizer, e.g. '" + unused.iterator().next()
                        + "' (parameters: " + abbreviate(parameterNames) + "); the state was saved for other trainable "
                        + "tensors (other LoRA targets or adapters)");
            }
            installs.forEach(Runnable::run);
            steps = savedSteps;
        }
    }

    private void checkNames(List<String> names) {
        if (names == null || names.size() != params.size()) {
            throw new IllegalArgumentException("parameterNames must name each of the " + params.size()
                    + " parameters, got " + (names == null ? "null" : names.size() + " names"));
        }
        Set<String> seen = new HashSet<>();
        for (String n : names) {
            if (n == null || n.isEmpty() || !seen.add(n)) {
                throw new IllegalArgumentException("parameterNames must be unique and non-empty, found '" + n + "' in "
                        + abbreviate(names));
            }
        }
    }

    private static long parseCount(Path file, String value) {
        try {
            long v = Long.parseLong(value);
            if (v >= 0) {
                return v;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(file + ": metadata " + STEP_COUNT_KEY + " must be a non-negative integer, was "
                + value);
    }

    private static String abbreviate(List<String> names) {
        return names.size() <= 4 ? names.toString() : names.subList(0, 4) + " and " + (names.size() - 4) + " more";
    }

    /** Typed, checked reads of a state file's entries. */
    static final class StateFile {
        private final SafetensorsFile in;
        private final Path path;
        private final Map<String, TensorInfo> infos = new HashMap<>();

        StateFile(SafetensorsFile in, Path path) {
            this.in = in;
            this.path = path;
            for (TensorInfo info : in.infos()) {
                infos.put(info.name(), info);
            }
        }

        boolean contains(String name) {
            return infos.containsKey(name);
        }

        /** An F32 buffer with the shape of {@code param}. */
        float[] floats(String name, Tensor param) {
            TensorInfo info = require(name);
            if (info.dtype() != DType.F32 || !Arrays.equals(info.shape(), param.shape())) {
                throw new IllegalArgumentException(path + ": '" + name + "' is " + info.dtype() + " "
                        + Arrays.toString(info.shape()) + " but the parameter is F32 " + Arrays.toString(param.shape())
                        + "; the state was saved for a different model or LoRA rank");
            }
            return in.f32(name).data();
        }

        /** An I64 scalar that must be >= 0. */
        long count(String name) {
            TensorInfo info = require(name);
            long[] v = info.dtype() == DType.I64 && info.shape().length == 0 ? in.longs(name) : null;
            if (v == null || v[0] < 0) {
                throw new IllegalArgumentException(path + ": '" + name + "' must be a non-negative I64 scalar, is "
                        + info.dtype() + " " + Arrays.toString(info.shape()) + (v == null ? "" : " = " + v[0]));
            }
            return v[0];
        }

        private TensorInfo require(String name) {
            TensorInfo info = infos.get(name);
            if (info == null) {
                throw new IllegalArgumentException(path + ": '" + name + "' is missing; the state was saved for other "
                        + "trainable tensors or by another optimizer configuration");
            }
            return info;
        }
    }
}
