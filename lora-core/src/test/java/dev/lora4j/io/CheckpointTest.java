package dev.lora4j.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointTest {

    @TempDir
    Path tmp;

    private static Path goldenModel() {
        return SafetensorsFileTest.fixtures().resolve("golden-tiny-llama/model");
    }

    @Test
    void singleFileFolder() throws IOException {
        try (Checkpoint c = Checkpoint.open(goldenModel());
                SafetensorsFile f = SafetensorsFile.open(goldenModel().resolve("model.safetensors"))) {
            assertFalse(c.isSharded());
            assertEquals(21, c.size());
            assertEquals(List.copyOf(f.names()), List.copyOf(c.names()));
            assertEquals(f.info("model.norm.weight"), c.info("model.norm.weight"));
            assertArrayEquals(f.f32("lm_head.weight").data(), c.tensor("lm_head.weight").toFloatArray());
        }
    }

    @Test
    void singleFileByPath() throws IOException {
        Path file = SafetensorsFileTest.fixtures().resolve("golden-tiny-llama/adapter/adapter_model.safetensors");
        try (Checkpoint c = Checkpoint.open(file)) {
            assertEquals(30, c.size());
            assertEquals(file, c.source());
        }
    }

    @Test
    void shardedFolderActsLikeOneFile() throws IOException {
        Path folder = shard(goldenModel(), tmp.resolve("sharded"), 3);
        try (Checkpoint sharded = Checkpoint.open(folder); Checkpoint single = Checkpoint.open(goldenModel())) {
            assertTrue(sharded.isSharded());
            assertEquals(3, sharded.files().size());
            assertEquals(single.names(), sharded.names());
            for (String name : single.names()) {
                assertEquals(single.info(name).dtype(), sharded.info(name).dtype());
                assertArrayEquals(single.info(name).shape(), sharded.info(name).shape());
                assertArrayEquals(single.f32(name).data(), sharded.f32(name).data(), name);
            }
            assertEquals("model-00003-of-00003.safetensors",
                    sharded.fileOf("model.norm.weight").path().getFileName().toString());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> sharded.tensor("model.norm.wieght"));
            assertTrue(e.getMessage().startsWith(folder.resolve("model.safetensors.index.json")
                    + ": no tensor named 'model.norm.wieght' (it has 21 tensors, e.g. model.norm.weight, "), e.getMessage());
        }
    }

    @Test
    void missingShard() throws IOException {
        Path folder = shard(goldenModel(), tmp.resolve("sharded"), 3);
        Files.delete(folder.resolve("model-00002-of-00003.safetensors"));
        FileNotFoundException e = assertThrows(FileNotFoundException.class, () -> Checkpoint.open(folder));
        assertTrue(e.getMessage().contains("model.safetensors.index.json lists a shard missing from " + folder
                + ": model-00002-of-00003.safetensors (holds 7 tensors, e.g. model.layers.0.self_attn.k_proj.weight)"),
                e.getMessage());
    }

    @Test
    void indexPointsAtTheWrongShard() throws IOException {
        Path folder = shard(goldenModel(), tmp.resolve("sharded"), 2);
        Path index = folder.resolve("model.safetensors.index.json");
        Files.writeString(index, Files.readString(index).replace(
                "\"lm_head.weight\":\"model-00001-of-00002.safetensors\"",
                "\"lm_head.weight\":\"model-00002-of-00002.safetensors\""));
        IOException e = assertThrows(IOException.class, () -> Checkpoint.open(folder));
        assertTrue(e.getMessage().contains("maps 'lm_head.weight' to model-00002-of-00002.safetensors, but"
                + " model-00002-of-00002.safetensors: no tensor named 'lm_head.weight'"), e.getMessage());
    }

    @Test
    void shardNamesMustStayInTheFolder() throws IOException {
        Path folder = Files.createDirectories(tmp.resolve("evil"));
        Files.writeString(folder.resolve("model.safetensors.index.json"),
                "{\"weight_map\": {\"w\": \"../model.safetensors\"}}");
        IOException e = assertThrows(IOException.class, () -> Checkpoint.open(folder));
        assertTrue(e.getMessage().contains("shard '../model.safetensors' is not a file name inside"), e.getMessage());
    }

    @Test
    void malformedIndex() throws IOException {
        Path folder = Files.createDirectories(tmp.resolve("bad"));
        Path index = folder.resolve("model.safetensors.index.json");
        Files.writeString(index, "{\"metadata\": {}}");
        assertTrue(assertThrows(IOException.class, () -> Checkpoint.open(folder)).getMessage()
                .endsWith("no \"weight_map\" object (tensor name -> shard file name)"));
        Files.writeString(index, "{\"weight_map\": {\"w\": 3}}");
        assertTrue(assertThrows(IOException.class, () -> Checkpoint.open(folder)).getMessage()
                .endsWith("weight_map entry 'w' must name a shard file, found 3"));
        Files.writeString(index, "{\"weight_map\": ");
        assertTrue(assertThrows(IOException.class, () -> Checkpoint.open(folder)).getMessage().contains("not valid JSON"));
    }

    @Test
    void missingFolderAndMissingWeights() throws IOException {
        FileNotFoundException e = assertThrows(FileNotFoundException.class, () -> Checkpoint.open(tmp.resolve("nope")));
        assertEquals("checkpoint folder " + tmp.resolve("nope") + " does not exist", e.getMessage());

        Path folder = Files.createDirectories(tmp.resolve("empty"));
        Files.writeString(folder.resolve("config.json"), "{}");
        e = assertThrows(FileNotFoundException.class, () -> Checkpoint.open(folder));
        assertEquals(folder + ": no weights found; looked for model.safetensors and model.safetensors.index.json"
                + " (the folder holds: config.json)", e.getMessage());

        Files.writeString(folder.resolve("pytorch_model.bin"), "pickle");
        e = assertThrows(FileNotFoundException.class, () -> Checkpoint.open(folder));
        assertTrue(e.getMessage().contains("found pytorch_model.bin, a PyTorch pickle checkpoint, which lora4j does not"
                + " read"), e.getMessage());

        e = assertThrows(FileNotFoundException.class, () -> Checkpoint.open(folder, "adapter_model"));
        assertTrue(e.getMessage().contains("looked for adapter_model.safetensors and adapter_model.safetensors.index.json"),
                e.getMessage());
    }

    /** Splits a single-file checkpoint into {@code n} shards plus an index, as save_pretrained does. */
    static Path shard(Path source, Path target, int n) throws IOException {
        Files.createDirectories(target);
        StringBuilder index = new StringBuilder("{\"metadata\":{\"total_size\":0},\"weight_map\":{");
        try (SafetensorsFile f = SafetensorsFile.open(source.resolve("model.safetensors"))) {
            List<String> names = new ArrayList<>(f.names());
            int per = (names.size() + n - 1) / n;
            for (int s = 0; s < n; s++) {
                String shardName = String.format("model-%05d-of-%05d.safetensors", s + 1, n);
                SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
                for (String name : names.subList(s * per, Math.min(names.size(), (s + 1) * per))) {
                    TensorInfo info = f.info(name);
                    w.add(name, info.dtype(), info.shape(), f.bytes(name));
                    index.append(index.charAt(index.length() - 1) == '{' ? "" : ",")
                            .append('"').append(name).append("\":\"").append(shardName).append('"');
                }
                w.write(target.resolve(shardName));
            }
        }
        Files.writeString(target.resolve("model.safetensors.index.json"), index.append("}}").toString());
        return target;
    }
}
