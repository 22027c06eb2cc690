package dev.lora4j.spark;

import dev.lora4j.lora.LoraModel;
import dev.lora4j.train.Trainer;
import java.io.Serializable;

/**
 * Called on every worker after the model is loaded and wrapped and the Trainer settings are
 * applied, just before training: e.g. to add a {@link dev.lora4j.train.TrainerListener} on rank 0
 * only ({@code if (rank == 0) trainer.listener(...)}). Serializable for Spark. It must not change
 * the adapter, the data or the settings of one worker only: the workers would diverge, which the
 * adapter checksum ({@code Trainer.Builder.checksumEvery}) detects and stops.
 */
@FunctionalInterface
public interface WorkerHook extends Serializable {

    /**
     * @param rank    this worker's rank, 0 to {@code workers - 1}
     * @param workers the number of workers
     * @param lora    this worker's model with its fresh (or resumed-to-be) adapter
     * @param trainer the Trainer builder, settings applied
     */
    void beforeTraining(int rank, int workers, LoraModel lora, Trainer.Builder trainer);
}
