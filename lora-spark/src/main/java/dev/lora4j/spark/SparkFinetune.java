package dev.lora4j.spark;

import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.Target;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * The {@code spark-submit} entry point: trains a LoRA adapter with {@link SparkLoraTrainer} on a
 * JSON Lines or Parquet file of instruction rows ({@code instruction}, {@code input}, {@code output})
 * or token rows ({@code input_ids}, {@code labels}); run it without arguments for the options.
 *
 * <pre>
 * spark-submit --class dev.lora4j.spark.SparkFinetune --master spark://head:7077 \
 *     --num-executors 4 --executor-cores 2 --conf spark.task.cpus=2 --executor-memory 6g \
 *     lora-spark/target/lora4j-spark.jar \
 *     --model /mnt/models/SmolLM2-135M --data /mnt/data/alpaca.jsonl --output /mnt/runs/smollm2 \
 *     --workers 4 --global-batch 16 --micro-batch 2 --epochs 1 --checkpoint-every 100 --resume
 * </pre>
 */
public final class SparkFinetune {
    private static final Map<String, String> HELP = new LinkedHashMap<>();

    static {
        HELP.put("--model", "PATH  base model folder, the same path on every executor (required)");
        HELP.put("--data", "PATH  .jsonl/.json or .parquet file (or folder) of instruction or token rows (required)");
        HELP.put("--output", "PATH  run folder every executor can write: checkpoints/, adapter/ (required)");
        HELP.put("--workers", "N  barrier tasks, each with a whole model (default: Spark's default parallelism)");
        HELP.put("--quantize", "TYPE  QLoRA: nf4, nf4-dq, fp4, fp4-dq, optionally @BLOCKSIZE");
        HELP.put("--rank", "R  LoRA rank (default 8)");
        HELP.put("--alpha", "A  LoRA alpha (default 2 x rank)");
        HELP.put("--dropout", "P  LoRA dropout (default 0)");
        HELP.put("--targets", "LIST  all-linear (default), all, or module names such as q_proj,v_proj");
        HELP.put("--lr", "X  learning rate (default: the Trainer's)");
        HELP.put("--global-batch", "N  sequences per optimizer step (default: the Trainer's)");
        HELP.put("--micro-batch", "N  sequences per forward pass (default: the Trainer's)");
        HELP.put("--epochs", "N  passes over the data (default: the Trainer's)");
        HELP.put("--max-steps", "N  optimizer steps, instead of epochs");
        HELP.put("--warmup", "N  warm-up steps");
        HELP.put("--seed", "N  data order, dropout and adapter initialisation");
        HELP.put("--checkpoint-every", "N  checkpoint every N steps (and after the last)");
        HELP.put("--max-length", "N  instruction rows: longest sequence in tokens");
        HELP.put("--resume", "continue from the newest checkpoint in --output, if any");
    }

    private SparkFinetune() {
    }

    public static void main(String[] args) {
        if (args.length == 0) {
            System.err.println("usage: spark-submit --class " + SparkFinetune.class.getName() + " lora4j-spark.jar OPTIONS");
            HELP.forEach((k, v) -> System.err.println("  " + k + " " + v));
            return;
        }
        SparkSession spark = SparkSession.builder().appName("lora4j finetune").getOrCreate();
        SparkTrainingResult r = run(spark, args);
        System.out.println(r);
    }

    /** Parses {@code args} and trains; the session is the caller's. */
    static SparkTrainingResult run(SparkSession spark, String[] args) {
        Map<String, String> o = parse(args);
        SparkLoraTrainer.Builder b = SparkLoraTrainer.builder().baseModel(required(o, "--model"))
                .output(required(o, "--output")).resume(o.containsKey("--resume"));
        if (o.containsKey("--workers")) {
            b.workers(integer(o, "--workers"));
        }
        if (o.containsKey("--quantize")) {
            b.quantize(o.get("--quantize"));
        }
        LoraConfig lora = LoraConfig.rank(o.containsKey("--rank") ? integer(o, "--rank") : LoraConfig.DEFAULT_RANK);
        if (o.containsKey("--alpha")) {
            lora = lora.alpha(number(o, "--alpha"));
        }
        if (o.containsKey("--dropout")) {
            lora = lora.dropout(number(o, "--dropout"));
        }
        String targets = o.getOrDefault("--targets", "all-linear");
        lora = switch (targets) {
            case "all-linear" -> lora.targets(Target.ALL_LINEAR);
            case "all" -> lora.targets(Target.ALL);
            default -> lora.targetModules(Arrays.asList(targets.split(",")));
        };
        if (o.containsKey("--seed")) {
            lora = lora.seed(integer(o, "--seed"));
        }
        b.lora(lora);
        // the values are checked here, then captured as plain numbers by the serializable settings
        Double lr = o.containsKey("--lr") ? number(o, "--lr") : null;
        Integer global = o.containsKey("--global-batch") ? integer(o, "--global-batch") : null;
        Integer micro = o.containsKey("--micro-batch") ? integer(o, "--micro-batch") : null;
        Integer epochs = o.containsKey("--epochs") ? integer(o, "--epochs") : null;
        Integer maxSteps = o.containsKey("--max-steps") ? integer(o, "--max-steps") : null;
        Integer warmup = o.containsKey("--warmup") ? integer(o, "--warmup") : null;
        Integer seed = o.containsKey("--seed") ? integer(o, "--seed") : null;
        Integer every = o.containsKey("--checkpoint-every") ? integer(o, "--checkpoint-every") : null;
        b.trainer(t -> {
            if (lr != null) {
                t.learningRate(lr);
            }
            if (global != null) {
                t.globalBatchSize(global);
            }
            if (micro != null) {
                t.microBatchSize(micro);
            }
            if (epochs != null) {
                t.epochs(epochs);
            }
            if (maxSteps != null) {
                t.maxSteps(maxSteps);
            }
            if (warmup != null) {
                t.warmupSteps(warmup);
            }
            if (seed != null) {
                t.seed(seed);
            }
            if (every != null) {
                t.checkpointEvery(every);
            }
        });
        if (o.containsKey("--max-length")) {
            int maxLength = integer(o, "--max-length");
            b.instructions(i -> i.maxLength(maxLength));
        }
        SparkLoraTrainer trainer = b.build();
        String data = required(o, "--data");
        String lower = data.toLowerCase(Locale.ROOT);
        Dataset<Row> rows = lower.endsWith(".parquet") ? spark.read().parquet(data) : spark.read().json(data);
        boolean tokens = Arrays.asList(rows.columns()).contains(Records.INPUT_IDS);
        return tokens ? trainer.fitTokens(rows) : trainer.fitInstructions(rows);
    }

    private static Map<String, String> parse(String[] args) {
        Map<String, String> o = new LinkedHashMap<>();
        List<String> rest = new ArrayList<>(Arrays.asList(args));
        while (!rest.isEmpty()) {
            String name = rest.remove(0);
            if (!HELP.containsKey(name)) {
                throw new IllegalArgumentException("unknown option " + name + "; options: " + HELP.keySet());
            }
            if (name.equals("--resume")) {
                o.put(name, "true");
                continue;
            }
            if (rest.isEmpty()) {
                throw new IllegalArgumentException(name + " needs a value: " + name + " " + HELP.get(name));
            }
            o.put(name, rest.remove(0));
        }
        return o;
    }

    private static String required(Map<String, String> o, String name) {
        String v = o.get(name);
        if (v == null) {
            throw new IllegalArgumentException(name + " is required: " + name + " " + HELP.get(name));
        }
        return v;
    }

    private static int integer(Map<String, String> o, String name) {
        try {
            return Integer.parseInt(o.get(name));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be a whole number, was \"" + o.get(name) + "\"", e);
        }
    }

    private static double number(Map<String, String> o, String name) {
        try {
            return Double.parseDouble(o.get(name));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be a number, was \"" + o.get(name) + "\"", e);
        }
    }
}
