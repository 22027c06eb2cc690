package dev.lora4j.gguf;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Split GGUF models, llama.cpp's {@code gguf-split} format: shards named
 * {@code PREFIX-00001-of-00003.gguf}, ..., each a complete GGUF file holding some of the tensors;
 * the first holds all the metadata, and every shard has {@code split.no} (u16, 0-based),
 * {@code split.count} (u16) and {@code split.tensors.count} (i32, the tensors of all shards).
 * llama.cpp loads a split model from its first file and finds the others by name.
 */
public final class GgufSplit {
    public static final String NO = "split.no";
    public static final String COUNT = "split.count";
    public static final String TENSORS_COUNT = "split.tensors.count";
    private static final Pattern NAME = Pattern.compile("(.+)-(\\d{5})-of-(\\d{5})\\.gguf");

    private GgufSplit() {
    }

    /** llama.cpp's shard name: {@code PREFIX-%05d-of-%05d.gguf} with 1-based {@code no}. */
    public static Path shardPath(Path prefix, int no, int count) {
        return prefix.resolveSibling(String.format("%s-%05d-of-%05d.gguf", prefix.getFileName(), no, count));
    }

    /**
     * Opens a GGUF model that may be split: a plain file as {@link GgufFile#open}, a shard (the
     * first or any other) as all its shards together, with the first shard's metadata. Every shard
     * is found by llama.cpp's naming and checked: present, its split.no and split.count as its name
     * says, no tensor in two shards, and as many tensors in all as split.tensors.count.
     *
     * @throws IOException naming the file at fault when a shard is missing or inconsistent
     */
    public static GgufFile open(Path path) throws IOException {
        GgufFile given = GgufFile.open(path);
        long count;
        long no;
        try {
            count = given.integer(COUNT, 0);
            no = given.integer(NO, 0);
        } catch (IllegalArgumentException e) {
            given.close();
            throw new IOException(e.getMessage(), e);
        }
        if (count <= 1) {
            return given;
        }
        List<GgufFile> shards = new ArrayList<>();
        try {
            String file = path.getFileName().toString();
            Matcher m = NAME.matcher(file);
            if (!m.matches()) {
                throw new IOException(path + ": a shard of a split GGUF (split.count " + count + "), but its name does not "
                        + "follow llama.cpp's PREFIX-NNNNN-of-NNNNN.gguf, by which the other shards are found; rename the "
                        + "shards as gguf-split wrote them");
            }
            if (Integer.parseInt(m.group(3)) != count || Integer.parseInt(m.group(2)) != no + 1) {
                throw new IOException(path + ": its name says shard " + Integer.parseInt(m.group(2)) + " of "
                        + Integer.parseInt(m.group(3)) + ", but its metadata says split.no " + no + " (shard " + (no + 1)
                        + ") of split.count " + count + "; the shards are mixed up or renamed");
            }
            Path prefix = path.resolveSibling(m.group(1));
            for (int i = 0; i < count; i++) {
                Path p = shardPath(prefix, i + 1, (int) count);
                if (i == no) {
                    shards.add(given);
                    continue;
                }
                if (!Files.isRegularFile(p)) {
                    throw new NoSuchFileException(p.toString(), null, "shard " + (i + 1) + " of " + count + " of the split "
                            + "GGUF " + path.getFileName() + " is missing; all shards must lie in the same folder");
                }
                shards.add(GgufFile.open(p));
            }
            Map<String, GgufTensorInfo> tensors = new LinkedHashMap<>();
            Map<String, GgufFile> shardOf = new LinkedHashMap<>();
            for (int i = 0; i < count; i++) {
                GgufFile s = shards.get(i);
                long sNo = integer(s, NO);
                long sCount = integer(s, COUNT);
                if (sNo != i || sCount != count) {
                    throw new IOException(s.path() + ": split.no " + sNo + " and split.count " + sCount + ", but as shard "
                            + (i + 1) + " of " + count + " it must have split.no " + i + " and split.count " + count
                            + "; the shards come from different splits");
                }
                for (GgufTensorInfo info : s.tensors().values()) {
                    GgufFile other = shardOf.putIfAbsent(info.name(), s);
                    if (other != null) {
                        throw new IOException(s.path() + ": tensor " + info.name() + " is also in " + other.path()
                                + "; a tensor must be in one shard only");
                    }
                    tensors.put(info.name(), info);
                }
            }
            GgufFile first = shards.get(0);
            long expected = integer(first, TENSORS_COUNT);
            if (expected != tensors.size()) {
                throw new IOException(first.path() + ": split.tensors.count is " + expected + ", but the " + count
                        + " shards hold " + tensors.size() + " tensors; a shard is truncated or from another split");
            }
            return new GgufFile(first, shards, tensors, shardOf);
        } catch (IOException | RuntimeException e) {
            for (GgufFile s : shards) {
                s.close();
            }
            if (!shards.contains(given)) {
                given.close();
            }
            throw e;
        }
    }

    private static long integer(GgufFile f, String key) throws IOException {
        if (!f.has(key)) {
            throw new IOException(f.path() + ": metadata " + key + " is missing; not a shard of a split GGUF");
        }
        try {
            return f.integer(key);
        } catch (IllegalArgumentException e) {
            throw new IOException(e.getMessage(), e);
        }
    }
}
