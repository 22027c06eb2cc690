package dev.lora4j.cuda;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * Builds, once per JVM, the host-emulation driver: every .cu file of src/main/cuda compiled
 * unchanged by g++ against src/test/cuda-host/cuda_host.h, into target/cuda-host/driver. Tests
 * that need it call {@link #driver()}, which skips them (with the reason) when g++ is missing.
 */
final class HostEmulation {
    static final Path MODULE = locateModule();
    static final Path SOURCES = MODULE.resolve("src/main/cuda");
    static final Path HEADERS = MODULE.resolve("src/test/cuda-host");
    static final Path WORK = MODULE.resolve("target/cuda-host");

    private HostEmulation() {
    }

    private static final class Built {
        static final Path DRIVER;
        static final String PROBLEM;

        static {
            Path driver = null;
            String problem = null;
            try {
                driver = build();
            } catch (IOException | InterruptedException e) {
                problem = e.getMessage();
            }
            DRIVER = driver;
            PROBLEM = problem;
        }
    }

    /** The driver executable; skips the calling test when it cannot be built because g++ is absent. */
    static Path driver() {
        Assumptions.assumeTrue(Built.DRIVER != null, () -> "host emulation of the CUDA kernels skipped: " + Built.PROBLEM);
        return Built.DRIVER;
    }

    /** The driver, or null when it cannot be built (see {@link #problem()}). */
    static Path driverOrNull() {
        return Built.DRIVER;
    }

    static String problem() {
        return Built.PROBLEM;
    }

    private static Path locateModule() {
        Path here = Paths.get("").toAbsolutePath();
        if (Files.isDirectory(here.resolve("src/main/cuda"))) {
            return here;
        }
        return here.resolve("lora-cuda");
    }

    private static Path build() throws IOException, InterruptedException {
        String gxx = System.getProperty("lora4j.cxx", "g++");
        if (!onPath(gxx)) {
            throw new IOException(gxx + " is not on the PATH (set -Dlora4j.cxx to a C++20 compiler)");
        }
        Files.createDirectories(WORK);
        List<String> cmd = new ArrayList<>(List.of(gxx, "-std=c++20", "-O1", "-pthread", "-Wall", "-Wno-unknown-pragmas",
                "-I" + HEADERS, "-I" + SOURCES, HEADERS.resolve("driver.cpp").toString(), "-o"));
        Path out = WORK.resolve("driver-" + fingerprint(cmd));
        if (Files.isExecutable(out)) {
            return out; // built earlier from the same sources and command
        }
        cmd.add(out.toString());
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(WORK.resolve("build.log").toFile()).start();
        if (!p.waitFor(10, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new IllegalStateException("g++ did not finish building the CUDA host emulation in 10 minutes");
        }
        if (p.exitValue() != 0) {
            // a compiler that is present but rejects the kernels is a failure, not a skip
            throw new IllegalStateException("g++ failed to compile the kernels for host emulation:\n"
                    + Files.readString(WORK.resolve("build.log")));
        }
        return out;
    }

    /** A hash of the compile command and every source and header, naming the executable they make. */
    private static String fingerprint(List<String> cmd) throws IOException {
        try {
            java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
            md.update(String.join(" ", cmd).getBytes(java.nio.charset.StandardCharsets.UTF_8));
            List<Path> files = new ArrayList<>();
            for (Path dir : List.of(SOURCES, HEADERS)) {
                try (var s = Files.list(dir)) {
                    s.sorted().forEach(files::add);
                }
            }
            for (Path f : files) {
                md.update(f.getFileName().toString().getBytes(java.nio.charset.StandardCharsets.UTF_8));
                md.update(Files.readAllBytes(f));
            }
            return java.util.HexFormat.of().formatHex(md.digest(), 0, 8);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static boolean onPath(String exe) {
        if (exe.contains("/")) {
            return Files.isExecutable(Paths.get(exe));
        }
        String path = System.getenv("PATH");
        if (path == null) {
            return false;
        }
        for (String dir : path.split(java.io.File.pathSeparator)) {
            if (Files.isExecutable(Paths.get(dir, exe))) {
                return true;
            }
        }
        return false;
    }
}
