package dev.lora4j.cli;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/**
 * Keeps log lines from tearing the progress bar. The bar redraws one line ending in a carriage
 * return; a log line written in between would be appended to it. {@link #install} wraps standard
 * error (where slf4j-simple writes) in a stream that, while a bar is shown, first clears the bar's
 * line, writes the log line, and redraws the bar below it: log lines scroll above the bar.
 * The bar reports each frame through {@link #frame}. Both hold one lock, so a frame and a log line
 * never interleave.
 */
final class ConsoleLines {
    private static final Object LOCK = new Object();
    private static BarAwareStream installed;

    private ConsoleLines() {
    }

    /** Wraps {@code err} (call once, in main, before any logger writes); returns the stream to use as System.err. */
    static PrintStream install(PrintStream err) {
        synchronized (LOCK) {
            installed = new BarAwareStream(err);
            return installed;
        }
    }

    /** A bar frame is printed by {@code print} (which writes "\r" + frame and flushes). */
    static void frame(String frame, Runnable print) {
        synchronized (LOCK) {
            if (installed == null) {
                print.run();
                return;
            }
            installed.passThrough = true;
            try {
                print.run();
            } finally {
                installed.passThrough = false;
            }
            installed.frame = frame;
            installed.barShown = true;
        }
    }

    /** The bar ended its line: later log lines need no clearing. */
    static void barClosed() {
        synchronized (LOCK) {
            if (installed != null) {
                installed.frame = null;
                installed.barShown = false;
            }
        }
    }

    /** Standard error that clears the bar's line before a log line and redraws the bar after it. */
    static final class BarAwareStream extends PrintStream {
        private final PrintStream target;
        private String frame;
        private boolean barShown;
        private boolean passThrough;

        BarAwareStream(PrintStream target) {
            super(target, true, StandardCharsets.UTF_8);
            this.target = target;
        }

        /** For tests: a stream over {@code out} with this frame on screen. */
        static BarAwareStream over(OutputStream out, String frame) {
            BarAwareStream s = new BarAwareStream(new PrintStream(out, true, StandardCharsets.UTF_8));
            s.frame = frame;
            s.barShown = frame != null;
            return s;
        }

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] buf, int off, int len) {
            synchronized (LOCK) {
                if (passThrough || frame == null) {
                    target.write(buf, off, len);
                    target.flush();
                    return;
                }
                if (barShown) {
                    // blank the bar's line and return to its start, so the log line starts clean
                    target.print("\r" + " ".repeat(frame.length()) + "\r");
                    barShown = false;
                }
                target.write(buf, off, len);
                if (len > 0 && buf[off + len - 1] == '\n') {
                    target.print(frame);
                    barShown = true;
                }
                target.flush();
            }
        }

        @Override
        public void flush() {
            synchronized (LOCK) {
                target.flush();
            }
        }
    }
}
