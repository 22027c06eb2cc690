package dev.lora4j.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;

/** Locates the shared fixtures (system property lora4j.fixtures); tests skip when they are absent. */
final class TestFixtures {
    private TestFixtures() {
    }

    static Path require(String relative) {
        String root = System.getProperty("lora4j.fixtures", "../../shared/fixtures");
        Path path = Path.of(root).resolve(relative).normalize();
        Assumptions.assumeTrue(Files.exists(path), "shared fixture " + path + " is absent; skipping (it ships in ../shared/fixtures)");
        return path;
    }

    static JsonNode nf4Reference() throws IOException {
        return new ObjectMapper().readTree(Files.readString(require("nf4/bitsandbytes_nf4_reference.json")));
    }
}
