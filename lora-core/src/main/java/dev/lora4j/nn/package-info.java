/** Layers shared by the models: the linear layer (frozen or trainable weight) and the KV cache. */
package dev.lora4j.nn;
