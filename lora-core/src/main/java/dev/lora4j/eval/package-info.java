/**
 * Evaluation: validation loss and perplexity, generated arithmetic tasks, multiple-choice
 * scoring by log-likelihood, and results written as JSON.
 */
package dev.lora4j.eval;
