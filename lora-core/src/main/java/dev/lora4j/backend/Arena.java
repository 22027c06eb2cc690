package dev.lora4j.backend;

/**
 * A per-step allocation scope ({@link Backend#openArena()}): buffers handed out while it is open
 * return to the backend's pool when it closes. Close it on the thread that opened it.
 */
public interface Arena extends AutoCloseable {

    /** Bytes of buffers this arena has handed out so far. */
    long bytesHandedOut();

    @Override
    void close();
}
