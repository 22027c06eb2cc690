package dev.lora4j.train;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The folder layout of training checkpoints under a root: one folder per saved step,
 * {@code step-000200/}, written as {@code step-000200.tmp/}, flushed to disk and renamed into
 * place, so a folder without the {@code .tmp} suffix is always complete and a crash while saving
 * leaves only a {@code .tmp} folder that {@link #complete} ignores.
 */
final class TrainingCheckpoints {
    private static final Logger LOG = LoggerFactory.getLogger(TrainingCheckpoints.class);

    static final String STATE_FILE = "trainer_state.json";
    static final String TRAINABLE_FILE = "trainable.safetensors";
    static final String OPTIMIZER_FILE = "optimizer.safetensors";
    static final String ADAPTER_DIR = "adapter";
    static final String TMP_SUFFIX = ".tmp";
    private static final Pattern NAME = Pattern.compile("step-(\\d+)");

    private TrainingCheckpoints() {
    }

    /** A complete checkpoint folder and the optimizer step it was saved after. */
    record Saved(Path dir, long step) {
    }

    /** Writes the contents of a checkpoint into a (temporary) folder. */
    @FunctionalInterface
    interface Contents {
        void writeInto(Path dir) throws IOException;
    }

    /** Called after each file of a checkpoint is written (tests inject failures here). */
    @FunctionalInterface
    interface WriteHook {
        WriteHook NONE = file -> { };

        void afterFile(Path file) throws IOException;
    }

    static String folderName(long step) {
        return String.format("step-%06d", step);
    }

    /** The complete checkpoints under {@code root}, oldest first; leftovers of interrupted saves are logged. */
    static List<Saved> complete(Path root) {
        List<Saved> out = new ArrayList<>();
        if (!Files.isDirectory(root)) {
            return out;
        }
        try (Stream<Path> children = Files.list(root)) {
            for (Path child : (Iterable<Path>) children.sorted()::iterator) {
                String name = child.getFileName().toString();
                if (!Files.isDirectory(child)) {
                    continue;
                }
                if (name.endsWith(TMP_SUFFIX)) {
                    LOG.warn("ignoring {}: a checkpoint whose save did not finish (interrupted); it can be deleted", child);
                    continue;
                }
                Matcher m = NAME.matcher(name);
                if (!m.matches()) {
                    continue;
                }
                if (!Files.isRegularFile(child.resolve(STATE_FILE))) {
                    LOG.warn("ignoring {}: it has no {} (not written by the trainer, or damaged)", child, STATE_FILE);
                    continue;
                }
                out.add(new Saved(child, Long.parseLong(m.group(1))));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("listing checkpoints in " + root + ": " + e.getMessage(), e);
        }
        out.sort(Comparator.comparingLong(Saved::step));
        return out;
    }

    static Optional<Path> latest(Path root) {
        List<Saved> all = complete(root);
        return all.isEmpty() ? Optional.empty() : Optional.of(all.get(all.size() - 1).dir());
    }

    /** A checkpoint folder itself, or the newest complete one under a root; errors say which it is not. */
    static Path resolve(Path dirOrRoot) {
        if (!Files.isDirectory(dirOrRoot)) {
            throw new IllegalArgumentException("resumeFrom: " + dirOrRoot + " is not a folder; give a checkpoint folder "
                    + "(step-000200) or the checkpointDir that holds them");
        }
        if (dirOrRoot.getFileName() != null && dirOrRoot.getFileName().toString().endsWith(TMP_SUFFIX)) {
            throw new IllegalArgumentException("resumeFrom: " + dirOrRoot + " is an incomplete checkpoint (its save was "
                    + "interrupted); resume from the checkpointDir to pick the newest complete one");
        }
        if (Files.isRegularFile(dirOrRoot.resolve(STATE_FILE))) {
            return dirOrRoot;
        }
        return latest(dirOrRoot).orElseThrow(() -> new IllegalArgumentException("resumeFrom: " + dirOrRoot
                + " holds no complete checkpoint (no step-NNNNNN folder with " + STATE_FILE + "); train without "
                + "resumeFrom to start a new run"));
    }

    /**
     * Writes a checkpoint atomically: into {@code step-N.tmp}, every file and folder flushed to
     * disk, then renamed to {@code step-N}. On failure the temporary folder is removed and
     * whatever was there before is untouched.
     */
    static Path commit(Path root, long step, Contents contents, WriteHook hook) throws IOException {
        Files.createDirectories(root);
        String name = folderName(step);
        Path target = root.resolve(name);
        if (Files.exists(target)) {
            throw new IllegalStateException("checkpoint " + target + " exists already; the trainer never overwrites one");
        }
        Path tmp = root.resolve(name + TMP_SUFFIX);
        if (Files.exists(tmp)) {
            LOG.warn("removing {}, left by an interrupted save of the same step", tmp);
            deleteRecursively(tmp);
        }
        boolean moved = false;
        try {
            Files.createDirectories(tmp);
            contents.writeInto(tmp);
            syncTree(tmp, hook);
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                throw new IOException("the file system of " + root + " cannot rename folders atomically, so a crash could "
                        + "leave a half-written checkpoint; choose a checkpointDir on a local file system", e);
            }
            moved = true;
            syncDirectory(root);
            return target;
        } finally {
            if (!moved) {
                try {
                    deleteRecursively(tmp);
                } catch (IOException | UncheckedIOException e) {
                    LOG.warn("could not remove {} after a failed save ({}); it is ignored when resuming", tmp, e.getMessage());
                }
            }
        }
    }

    /** Deletes all but the newest {@code keep} complete checkpoints. */
    static void prune(Path root, int keep) throws IOException {
        List<Saved> all = complete(root);
        for (int i = 0; i < all.size() - keep; i++) {
            LOG.info("deleting old checkpoint {} (keepLastCheckpoints {})", all.get(i).dir(), keep);
            // renamed first so that a crash half-way leaves a folder that is ignored, never a damaged step-N
            Path doomed = all.get(i).dir().resolveSibling(all.get(i).dir().getFileName() + ".deleting" + TMP_SUFFIX);
            Files.move(all.get(i).dir(), doomed, StandardCopyOption.ATOMIC_MOVE);
            deleteRecursively(doomed);
        }
    }

    private static void syncTree(Path dir, WriteHook hook) throws IOException {
        List<Path> files;
        try (Stream<Path> walk = Files.walk(dir)) {
            files = walk.sorted(Comparator.reverseOrder()).toList(); // children before their folder
        }
        for (Path p : files) {
            if (Files.isDirectory(p)) {
                syncDirectory(p);
            } else {
                try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
                    ch.force(true);
                }
                hook.afterFile(p);
            }
        }
    }

    /** Flushes a folder's entries (the names of new files); not every platform allows it. */
    private static void syncDirectory(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException e) {
            LOG.debug("cannot flush folder {} on this platform: {}", dir, e.getMessage());
        }
    }

    static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) walk.sorted(Comparator.reverseOrder())::iterator) {
                Files.delete(p);
            }
        }
    }
}
