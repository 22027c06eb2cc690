package dev.lora4j.spark;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.lora4j.data.Example;
import dev.lora4j.io.SafetensorsFile;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.quant.QuantConfig;
import dev.lora4j.quant.Quantizer;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.train.Trainer;
import dev.lora4j.train.TrainerListener;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeSet;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/** The fixture model, data, settings and the one-process reference shared by the Spark tests. */
final class SparkRuns {
    static final int STEPS = 4;

    private SparkRuns() {
    }

    /**
     * Skips the test class unless Spark can run on this JDK and the stories260K fixture (a 260K-parameter
     * Llama with its tokenizer) is present.
     */
    static Path model() {
        String root = System.getProperty("lora4j.fixtures");
        assumeTrue(root != null && Files.isDirectory(Path.of(root)),
                "shared fixtures folder (system property lora4j.fixtures = " + root + ") absent; skipping");
        Path path = Path.of(root).resolve("stories260K/hf");
        assumeTrue(Files.isRegularFile(path.resolve("model.safetensors")), path + " absent; skipping");
        return path;
    }

    /** A local SparkSession without UI, bound to the loopback interface. */
    static SparkSession session(String master) {
        return SparkSession.builder().master(master).appName("lora4j-spark-test")
                .config("spark.ui.enabled", "false")
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.sql.shuffle.partitions", "4")
                .config("spark.sql.codegen.wholeStage", "false") // less code generation: a faster start on small data
                .getOrCreate();
    }

    static LoraConfig lora() {
        return LoraConfig.rank(4).alpha(8).dropout(0.1).targets(Target.QUERY, Target.VALUE, Target.MLP).seed(7);
    }

    /** AdamW with warm-up and clipping, STEPS steps of global batches of micro-batches of 1; checksums every step. */
    static TrainerSettings settings(int globalBatch) {
        return b -> b.learningRate(5e-3).warmupSteps(1).maxSteps(STEPS).globalBatchSize(globalBatch).microBatchSize(1)
                .maxGradNorm(1.0).seed(11).checksumEvery(1).progressLogging(false);
    }

    /** Sequences of 6 to 15 random ids below 512 (the fixture's vocabulary), the first two unscored. */
    static List<Example> examples(int count) {
        SplittableRandom rng = new SplittableRandom(3);
        List<Example> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            out.add(Example.promptMasked(rng.ints(6 + rng.nextInt(10), 3, 512).toArray(), 2));
        }
        return out;
    }

    static StructType tokenSchema() {
        return new StructType()
                .add("input_ids", DataTypes.createArrayType(DataTypes.IntegerType))
                .add("labels", DataTypes.createArrayType(DataTypes.IntegerType))
                .add("source", DataTypes.StringType); // ignored
    }

    static Row row(Example e) {
        return RowFactory.create(e.inputIds(), e.labels(), "fixture");
    }

    static Dataset<Row> tokenRows(SparkSession spark, List<Example> examples) {
        List<Row> rows = new ArrayList<>();
        for (Example e : examples) {
            rows.add(row(e));
        }
        // three input partitions, in order: the rows are numbered before the shuffle to the workers
        return spark.createDataFrame(new JavaSparkContext(spark.sparkContext()).parallelize(rows, 3), tokenSchema());
    }

    /** One process's run: losses and the saved adapter. */
    record Reference(double[] losses, long tokens, float[] adapter) {
    }

    /** What one process does with the same model, LoRA config, Trainer settings and examples. */
    static Reference single(Path model, TrainerSettings settings, List<Example> examples, Path adapterDir) {
        return single(model, null, settings, examples, adapterDir);
    }

    /** The same, QLoRA: the base quantized to {@code quantize} (e.g. "nf4") at load time. */
    static Reference single(Path model, String quantize, TrainerSettings settings, List<Example> examples, Path adapterDir) {
        LlamaModel base = ModelLoader.load(model, ModelLoader.Options.defaults());
        if (quantize != null) {
            Quantizer.quantize(base, QuantConfig.parse(quantize));
        }
        LoraModel lora = LoraModel.wrap(base, lora());
        Trainer.Builder b = Trainer.builder(lora.model());
        try {
            HfTokenizer tokenizer = HfTokenizer.load(model);
            b.padTokenId(tokenizer.padId().orElse(tokenizer.eosId().orElse(0)));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        settings.configure(b);
        TrainerListener.TrainingResult r = b.build().fit(examples);
        lora.saveAdapter(adapterDir);
        return new Reference(r.lossPerStep(), r.tokensSeen(), adapter(adapterDir));
    }

    /** Every tensor of adapter_model.safetensors, in name order, as one array. */
    static float[] adapter(Path adapterDir) {
        try (SafetensorsFile f = SafetensorsFile.open(adapterDir.resolve("adapter_model.safetensors"))) {
            List<float[]> parts = new ArrayList<>();
            int n = 0;
            for (String name : new TreeSet<>(f.names())) {
                float[] v = f.tensor(name).toFloatArray();
                parts.add(v);
                n += v.length;
            }
            float[] out = new float[n];
            int at = 0;
            for (float[] p : parts) {
                System.arraycopy(p, 0, out, at, p.length);
                at += p.length;
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static double maxAbsDiff(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }

    static double maxRelDiff(double[] a, double[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]) / Math.abs(a[i]));
        }
        return m;
    }
}
