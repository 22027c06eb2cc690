package dev.lora4j.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.tensor.Tensor;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The weights of a Hugging Face model folder, looked up by tensor name whether they sit in one
 * {@code model.safetensors} or in shards listed by {@code model.safetensors.index.json}
 * ({@code {"metadata": {...}, "weight_map": {tensor name: shard file name}}}). As in
 * {@code transformers}, the single file wins when both exist, and the index's weight map is the
 * list of tensors. Every shard is opened (header validated, nothing mapped) up front, so a missing
 * shard or a tensor missing from its shard fails at {@link #open}, not halfway through loading.
 */
public final class Checkpoint implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Checkpoint.class);
    /** Largest *.safetensors.index.json read (a 405B model's is about 200 kB). */
    public static final long MAX_INDEX_BYTES = 64L << 20;
    private static final ObjectMapper JSON = JsonLimits.mapper();

    private final Path folder;
    private final Path source;
    private final List<SafetensorsFile> files;
    private final Map<String, SafetensorsFile> byName;

    private Checkpoint(Path folder, Path source, List<SafetensorsFile> files, Map<String, SafetensorsFile> byName) {
        this.folder = folder;
        this.source = source;
        this.files = files;
        this.byName = byName;
    }

    /** Opens the model weights ({@code model.safetensors[.index.json]}) of a folder, or one .safetensors file. */
    public static Checkpoint open(Path folderOrFile) throws IOException {
        if (Files.isRegularFile(folderOrFile) && folderOrFile.getFileName().toString().endsWith(".safetensors")) {
            SafetensorsFile file = SafetensorsFile.open(folderOrFile);
            return new Checkpoint(folderOrFile.toAbsolutePath().getParent(), folderOrFile, List.of(file), byName(file));
        }
        return open(folderOrFile, "model");
    }

    /**
     * Opens {@code <baseName>.safetensors} or the shards of {@code <baseName>.safetensors.index.json}
     * in {@code folder}, e.g. base name "model" or "adapter_model".
     *
     * @throws FileNotFoundException if the folder, the weights or a shard is missing; the message
     *     lists what was looked for
     * @throws IOException if a file cannot be read or is malformed
     */
    public static Checkpoint open(Path folder, String baseName) throws IOException {
        if (!Files.exists(folder)) {
            throw new FileNotFoundException("checkpoint folder " + folder + " does not exist");
        }
        if (!Files.isDirectory(folder)) {
            throw new FileNotFoundException("checkpoint folder " + folder + " is not a folder");
        }
        Path single = folder.resolve(baseName + ".safetensors");
        Path index = folder.resolve(baseName + ".safetensors.index.json");
        if (Files.isRegularFile(single)) {
            if (Files.exists(index)) {
                LOG.debug("{} has both {} and {}; using the single file as transformers does", folder,
                        single.getFileName(), index.getFileName());
            }
            SafetensorsFile file = SafetensorsFile.open(single);
            return new Checkpoint(folder, single, List.of(file), byName(file));
        }
        if (Files.isRegularFile(index)) {
            return openSharded(folder, index);
        }
        throw new FileNotFoundException(folder + ": no weights found; looked for " + single.getFileName() + " and "
                + index.getFileName() + pickleHint(folder, baseName) + " (the folder holds: " + listing(folder) + ")");
    }

    private static Checkpoint openSharded(Path folder, Path index) throws IOException {
        Map<String, String> weightMap = readWeightMap(index);
        Map<String, List<String>> tensorsByShard = new LinkedHashMap<>();
        weightMap.forEach((tensor, shard) -> tensorsByShard.computeIfAbsent(shard, s -> new ArrayList<>()).add(tensor));
        List<String> missing = new ArrayList<>();
        Path root = folder.toAbsolutePath().normalize();
        for (String shard : tensorsByShard.keySet()) {
            Path shardPath = isPlainFileName(shard) ? root.resolve(shard).normalize() : null;
            if (shardPath == null || !root.equals(shardPath.getParent())) {
                throw new IOException(index + ": shard '" + shard + "' is not a file name inside " + folder
                        + "; weight_map values must be plain file names");
            }
            if (!Files.isRegularFile(shardPath)) {
                List<String> tensors = tensorsByShard.get(shard);
                missing.add(shard + " (holds " + tensors.size() + " tensors, e.g. " + tensors.get(0) + ")");
            }
        }
        if (!missing.isEmpty()) {
            throw new FileNotFoundException(index + " lists " + (missing.size() == 1 ? "a shard" : missing.size() + " shards")
                    + " missing from " + folder + ": " + String.join(", ", missing)
                    + "; download the complete checkpoint");
        }
        List<SafetensorsFile> files = new ArrayList<>();
        Map<String, SafetensorsFile> byName = new LinkedHashMap<>();
        try {
            Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
            for (String shard : tensorsByShard.keySet()) {
                SafetensorsFile file = SafetensorsFile.open(root.resolve(shard));
                files.add(file);
                shards.put(shard, file);
            }
            for (Map.Entry<String, String> e : weightMap.entrySet()) {
                SafetensorsFile file = shards.get(e.getValue());
                if (!file.contains(e.getKey())) {
                    throw new IOException(index + " maps '" + e.getKey() + "' to " + e.getValue() + ", but "
                            + SafetensorsFile.missingTensorMessage(e.getValue(), e.getKey(), file.names()));
                }
                byName.put(e.getKey(), file);
            }
            for (SafetensorsFile file : files) {
                long unlisted = file.names().stream().filter(n -> !byName.containsKey(n)).count();
                if (unlisted > 0) {
                    LOG.debug("{}: {} tensors are not in {} and are ignored", file.path(), unlisted, index.getFileName());
                }
            }
        } catch (IOException | RuntimeException e) {
            for (SafetensorsFile file : files) {
                file.close();
            }
            throw e;
        }
        LOG.debug("opened {}: {} tensors in {} shards", index, byName.size(), files.size());
        return new Checkpoint(folder, index, List.copyOf(files), Collections.unmodifiableMap(byName));
    }

    private static Map<String, String> readWeightMap(Path index) throws IOException {
        JsonNode root;
        try {
            root = JSON.readTree(JsonLimits.readSmallFile(index, MAX_INDEX_BYTES, "safetensors index"));
        } catch (JsonProcessingException e) {
            throw new IOException(index + ": not valid JSON " + JsonLimits.describe(e), e);
        }
        JsonNode weightMap = root == null ? null : root.get("weight_map");
        if (weightMap == null || !weightMap.isObject()) {
            throw new IOException(index + ": no \"weight_map\" object (tensor name -> shard file name)");
        }
        Map<String, String> result = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : weightMap.properties()) {
            if (!e.getValue().isTextual()) {
                throw new IOException(index + ": weight_map entry '" + e.getKey() + "' must name a shard file, found "
                        + e.getValue());
            }
            result.put(e.getKey(), e.getValue().textValue());
        }
        if (result.isEmpty()) {
            throw new IOException(index + ": weight_map is empty");
        }
        return result;
    }

    /**
     * Whether a weight_map value is a file name with no directory part: not empty, not "." or
     * "..", no separator of either platform, no NUL. (A value such as "/" would otherwise resolve
     * to the file-system root, which has no parent.)
     */
    private static boolean isPlainFileName(String shard) {
        return !shard.isEmpty() && !shard.equals(".") && !shard.equals("..") && shard.indexOf('/') < 0
                && shard.indexOf('\\') < 0 && shard.indexOf('\0') < 0 && shard.indexOf(':') < 0;
    }

    private static Map<String, SafetensorsFile> byName(SafetensorsFile file) {
        Map<String, SafetensorsFile> map = new LinkedHashMap<>();
        for (String name : file.names()) {
            map.put(name, file);
        }
        return Collections.unmodifiableMap(map);
    }

    private static String pickleHint(Path folder, String baseName) {
        String pickle = baseName.equals("model") ? "pytorch_model.bin" : baseName + ".bin";
        for (String candidate : List.of(pickle, pickle + ".index.json")) {
            if (Files.exists(folder.resolve(candidate))) {
                return "; found " + candidate + ", a PyTorch pickle checkpoint, which lora4j does not read: convert it"
                        + " with transformers' save_pretrained(..., safe_serialization=True)";
            }
        }
        return "";
    }

    private static String listing(Path folder) {
        try (Stream<Path> entries = Files.list(folder)) {
            List<String> names = entries.map(p -> p.getFileName().toString()).sorted().collect(Collectors.toList());
            if (names.isEmpty()) {
                return "nothing";
            }
            return names.size() <= 12 ? String.join(", ", names)
                    : String.join(", ", names.subList(0, 12)) + ", ... " + (names.size() - 12) + " more";
        } catch (IOException e) {
            return "unreadable: " + e.getMessage();
        }
    }

    // ---------------------------------------------------------------- lookup

    public Path folder() {
        return folder;
    }

    /** The single .safetensors file or the index file the checkpoint was opened from. */
    public Path source() {
        return source;
    }

    public boolean isSharded() {
        return !source.getFileName().toString().endsWith(".safetensors");
    }

    /** The opened files (one, or the shards in index order). */
    public List<SafetensorsFile> files() {
        return files;
    }

    /** Tensor names, in file order or weight-map order. */
    public Set<String> names() {
        return byName.keySet();
    }

    public int size() {
        return byName.size();
    }

    public boolean contains(String name) {
        return byName.containsKey(name);
    }

    /** The file holding {@code name}. */
    public SafetensorsFile fileOf(String name) {
        SafetensorsFile file = byName.get(name);
        if (file == null) {
            throw new IllegalArgumentException(SafetensorsFile.missingTensorMessage(source.toString(), name, byName.keySet()));
        }
        return file;
    }

    public TensorInfo info(String name) {
        return fileOf(name).info(name);
    }

    public ByteBuffer bytes(String name) {
        return fileOf(name).bytes(name);
    }

    /** @see SafetensorsFile#tensor */
    public Tensor tensor(String name) {
        return fileOf(name).tensor(name);
    }

    /** @see SafetensorsFile#f32 */
    public Tensor f32(String name) {
        return fileOf(name).f32(name);
    }

    /** @see SafetensorsFile#longs */
    public long[] longs(String name) {
        return fileOf(name).longs(name);
    }

    @Override
    public void close() throws IOException {
        IOException first = null;
        for (SafetensorsFile file : files) {
            try {
                file.close();
            } catch (IOException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    @Override
    public String toString() {
        return "Checkpoint[" + source + ", " + byName.size() + " tensors in " + files.size() + " file(s)]";
    }
}
