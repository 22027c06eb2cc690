/**
 * Data-parallel training: a {@link dev.lora4j.train.distributed.GradientReducer} sums the trainable
 * gradients of N workers once per optimizer step; {@link dev.lora4j.train.distributed.TcpRingReducer}
 * does it over TCP between processes bootstrapped from a list of peer addresses.
 */
package dev.lora4j.train.distributed;
