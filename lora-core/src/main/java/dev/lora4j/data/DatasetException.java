package dev.lora4j.data;

/**
 * A dataset file that cannot be used as it is: missing, not UTF-8, malformed, a record without a
 * required field, or no records at all. The message names the file and, where it applies, the
 * line and record (both counted from 1), the problem and how to fix it.
 */
public final class DatasetException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public DatasetException(String message) {
        super(message);
    }

    public DatasetException(String message, Throwable cause) {
        super(message, cause);
    }
}
