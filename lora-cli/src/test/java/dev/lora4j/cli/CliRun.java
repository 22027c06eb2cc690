package dev.lora4j.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import picocli.CommandLine;

/** Runs the lora4j command line in-process, capturing standard output and error. */
record CliRun(int exitCode, String out, String err) {

    /** The shipped tiny model, relative to the lora-cli module (the tests' working directory). */
    static final Path ARITH_TINY = Path.of("../lora-examples/models/arith-tiny");

    static CliRun of(String... args) {
        CommandLine cl = Lora4j.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute(args);
        return new CliRun(code, out.toString(), err.toString());
    }

    @Override
    public String toString() {
        return "exit " + exitCode + "\n--- stdout\n" + out + "--- stderr\n" + err;
    }
}
