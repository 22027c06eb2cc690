/**
 * Tokenizers: Hugging Face {@code tokenizer.json} BPE tokenizers ({@link dev.lora4j.tokenizer.HfTokenizer}) reproducing
 * the {@code tokenizers} library's ids, with Unicode categories from a committed table so that results do not depend
 * on the JDK, and chat templates rendered for the families lora4j recognises. Datasets and prompt styles that use a
 * {@link dev.lora4j.tokenizer.Tokenizer} live in {@code dev.lora4j.data}.
 */
package dev.lora4j.tokenizer;
