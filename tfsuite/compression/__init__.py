"""Model compression: pruning (native Keras 3 and TFMOT through the tf_keras bridge),
quantization (LiteRT converter, QAT, Keras' own), low-rank factorization and
distillation, each measured against the model it started from."""
