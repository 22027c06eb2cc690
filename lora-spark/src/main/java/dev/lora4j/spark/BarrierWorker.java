package dev.lora4j.spark;

import dev.lora4j.data.Example;
import dev.lora4j.data.InstructionDataset;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.quant.QuantConfig;
import dev.lora4j.quant.QuantizedCheckpoint;
import dev.lora4j.quant.Quantizer;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.train.Trainer;
import dev.lora4j.train.TrainerListener;
import dev.lora4j.train.distributed.TcpRingReducer;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.SparkFiles;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.AbstractFunction1;

/**
 * One barrier task: joins the ring, gathers every row in the Dataset's order, loads the base
 * model, trains with the run's Trainer settings and returns what it did. Rank 0 writes the
 * checkpoints and the adapter.
 */
final class BarrierWorker extends AbstractFunction1<Iterator<Records.Indexed>, Iterator<SparkTrainingResult>>
        implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(BarrierWorker.class);

    /** Everything a worker needs, shipped with the task. */
    record Job(String baseModel, String quantize, dev.lora4j.lora.LoraConfig lora, TrainerSettings settings,
               Records.Kind kind, InstructionSettings instructions, WorkerHook hook, String output, boolean resume,
               long connectTimeoutMillis, long ioTimeoutMillis, int chunkBytes, TcpRingReducer.Order order)
            implements Serializable {
        private static final long serialVersionUID = 1L;

        TcpRingReducer.Options ringOptions() {
            return new TcpRingReducer.Options(java.time.Duration.ofMillis(connectTimeoutMillis),
                    java.time.Duration.ofMillis(ioTimeoutMillis), chunkBytes, order);
        }
    }

    private final Job job;

    BarrierWorker(Job job) {
        this.job = job;
    }

    @Override
    public Iterator<SparkTrainingResult> apply(Iterator<Records.Indexed> rows) {
        BarrierTaskContext ctx = BarrierTaskContext.get();
        int rank = ctx.partitionId();
        int workers = ctx.getTaskInfos().length;
        List<Records.Indexed> mine = new ArrayList<>();
        rows.foreach(r -> mine.add(r));
        String host = host(ctx.getTaskInfos()[rank].address());
        ServerSocketChannel server = TcpRingReducer.listen(new InetSocketAddress(0));
        List<InetSocketAddress> peers = new ArrayList<>();
        try {
            int port = ((InetSocketAddress) server.getLocalAddress()).getPort();
            for (String a : ctx.allGather(host + " " + port)) {
                int space = a.lastIndexOf(' ');
                peers.add(new InetSocketAddress(a.substring(0, space), Integer.parseInt(a.substring(space + 1))));
            }
        } catch (IOException e) {
            closeQuietly(server);
            throw new UncheckedIOException("worker " + rank + ": cannot read the ring's listening address: " + e, e);
        } catch (RuntimeException e) {
            closeQuietly(server);
            throw e;
        }
        LOG.info("worker {} of {} joins the ring at {}", rank, workers, peers.get(rank));
        SparkTrainingResult result;
        try (TcpRingReducer ring = TcpRingReducer.connect(server, peers, rank, job.ringOptions())) {
            List<Records.Indexed> all = exchange(ring, mine);
            result = train(ctx, ring, rank, workers, all);
        } catch (UncheckedIOException e) {
            // A ring error here is usually the echo of another worker's failure (it closed its
            // sockets). Spark reports the first failed task of a barrier stage, so let the worker
            // that failed first report its own error before this one.
            pause(PEER_ERROR_DELAY_MILLIS);
            throw e;
        }
        return CollectionConverters.asScala(List.of(result).iterator());
    }

    /** How long a worker whose ring broke waits before failing, so that the cause reaches the driver first. */
    static final long PEER_ERROR_DELAY_MILLIS = 3000;

    private static void pause(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt(); // Spark is killing the task: fail now
        }
    }

    /** Every worker's rows, in the Dataset's order: two gathers over the ring (lengths, then zero-padded rows). */
    private static List<Records.Indexed> exchange(TcpRingReducer ring, List<Records.Indexed> mine) {
        byte[] packed = Records.pack(mine);
        int longest = 0;
        for (byte[] length : ring.allGather(ByteBuffer.allocate(4).putInt(packed.length).array())) {
            longest = Math.max(longest, ByteBuffer.wrap(length).getInt());
        }
        return Records.unpack(ring.allGather(Arrays.copyOf(packed, longest)));
    }

    private SparkTrainingResult train(BarrierTaskContext ctx, TcpRingReducer ring, int rank, int workers,
                                      List<Records.Indexed> rows) {
        Path folder = modelFolder(job.baseModel());
        HfTokenizer tokenizer = null;
        if (Files.isRegularFile(folder.resolve("tokenizer.json"))) {
            try {
                tokenizer = HfTokenizer.load(folder);
            } catch (IOException e) {
                throw new UncheckedIOException("reading " + folder.resolve("tokenizer.json") + ": " + e.getMessage(), e);
            }
        }
        LlamaModel model = load(folder);
        List<Example> examples;
        if (job.kind() == Records.Kind.TOKENS) {
            examples = Records.examples(rows, model.config().vocabSize());
        } else {
            if (tokenizer == null) {
                throw new IllegalArgumentException("baseModel " + folder + " has no tokenizer.json, which instruction rows "
                        + "need; copy the base model's tokenizer into it, or train on token rows (fitTokens)");
            }
            InstructionDataset.Builder b = InstructionDataset.builder(tokenizer);
            job.instructions().configure(b);
            examples = b.build().encode(Records.instructions(rows)).examples();
        }
        LoraModel lora = LoraModel.wrap(model, job.lora()).baseModel(job.baseModel());
        Path out = Path.of(job.output());
        Path checkpoints = out.resolve(SparkLoraTrainer.CHECKPOINT_DIR);
        Trainer.Builder builder = Trainer.builder(lora.model());
        if (tokenizer != null) {
            builder.padTokenId(tokenizer.padId().orElse(tokenizer.eosId().orElse(0)));
        }
        job.settings().configure(builder);
        builder.gradientReducer(ring).adapterFolders(lora).checkpointDir(checkpoints);
        if (rank != 0) {
            builder.progressLogging(false); // one progress line per run, from rank 0
        }
        if (ctx.stageAttemptNumber() > 0 && !job.resume()) {
            // Spark retries a failed barrier stage (spark.task.maxFailures); without resume the
            // retry would only refuse the first attempt's checkpoints and hide its error
            throw new IllegalStateException("attempt " + (ctx.stageAttemptNumber() + 1) + " of the training stage: an "
                    + "earlier attempt failed (its task error is in the driver's log); Spark's retries continue a run "
                    + "only with resume(true), from the newest checkpoint in " + checkpoints);
        }
        // rank 0 decides where to resume from, so that every worker restores the same checkpoint
        String resumeFrom = "";
        if (rank == 0) {
            try {
                Files.createDirectories(out);
            } catch (IOException e) {
                throw new UncheckedIOException("output " + out + ": cannot create it: " + e.getMessage()
                        + "; give a folder that every executor can write", e);
            }
            if (job.resume()) {
                Optional<Path> latest = Trainer.latestCheckpoint(checkpoints);
                resumeFrom = latest.map(Path::toString).orElse("");
                LOG.info(latest.isPresent() ? "resuming from " + resumeFrom : "no checkpoint in " + checkpoints
                        + " yet: starting a new run");
            }
        }
        resumeFrom = ctx.allGather(resumeFrom)[0];
        if (!resumeFrom.isEmpty()) {
            builder.resumeFrom(Path.of(resumeFrom));
        }
        List<Double> stepSeconds = new ArrayList<>();
        double[] last = {Double.NaN};
        builder.listener(TrainerListener.onEachStep(m -> {
            if (!Double.isNaN(last[0])) {
                stepSeconds.add(m.elapsedSeconds() - last[0]);
            }
            last[0] = m.elapsedSeconds();
        }));
        if (job.hook() != null) {
            job.hook().beforeTraining(rank, workers, lora, builder);
        }
        long started = System.nanoTime();
        TrainerListener.TrainingResult r = builder.build().fit(examples);
        String adapterDir = null;
        if (r.completed()) {
            Path dir = out.resolve(SparkLoraTrainer.ADAPTER_DIR);
            if (rank == 0) {
                lora.saveAdapter(dir);
            }
            adapterDir = dir.toString();
        }
        LOG.info("worker {} of {}: {} steps in {} s", rank, workers, r.steps(), (System.nanoTime() - started) / 1e9);
        return new SparkTrainingResult(workers, examples.size(), r.steps(), r.totalSteps(), r.lossPerStep(),
                r.tokensSeen(), r.seconds(), stepSeconds.stream().mapToDouble(Double::doubleValue).toArray(), adapterDir);
    }

    private LlamaModel load(Path folder) {
        boolean quantizedFolder = QuantizedCheckpoint.isQuantized(folder);
        LlamaModel model = quantizedFolder ? QuantizedCheckpoint.load(folder)
                : ModelLoader.load(folder, ModelLoader.Options.defaults());
        if (job.quantize() != null) {
            if (quantizedFolder) {
                throw new IllegalArgumentException("baseModel " + folder + " is quantized already (its config.json has a "
                        + "quantization_config); drop quantize(...)");
            }
            Quantizer.quantize(model, QuantConfig.parse(job.quantize()));
        }
        return model;
    }

    /** The base model folder: the path as given when this executor sees it, else a file shipped with SparkFiles. */
    static Path modelFolder(String baseModel) {
        Path p = Path.of(baseModel);
        if (Files.isDirectory(p)) {
            return p;
        }
        String shipped = null;
        try {
            shipped = SparkFiles.get(p.getFileName().toString());
        } catch (RuntimeException e) {
            // no SparkEnv (not in a task): only the path as given can work
        }
        if (shipped != null && Files.isDirectory(Path.of(shipped))) {
            return Path.of(shipped);
        }
        throw new IllegalArgumentException("baseModel " + baseModel + " is not a folder on this executor"
                + (shipped == null ? "" : " (nor is " + shipped + " among the files shipped with SparkContext.addFile)")
                + "; give a path every executor can read (a shared file system), or ship the folder with "
                + "spark.sparkContext().addFile(folder, true) and give its name");
    }

    /** The host of a task address ("host:port" or "host"). */
    static String host(String address) {
        int colon = address.lastIndexOf(':');
        if (colon > 0 && address.indexOf(':') == colon && address.substring(colon + 1).chars().allMatch(Character::isDigit)) {
            return address.substring(0, colon);
        }
        return address;
    }

    private static void closeQuietly(ServerSocketChannel server) {
        try {
            server.close();
        } catch (IOException e) {
            // already failing
        }
    }
}
