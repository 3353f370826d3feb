"""The core schema's sections: data, model, train, runtime, export, compress (frozen
dataclasses, documented key by key), and the values their keys accept."""

import re
from dataclasses import dataclass, field
from typing import List, Optional, Union

PATH = {"path": True}  # field metadata: a path made absolute, so config.yaml works anywhere
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


# The keras.applications backbones (tfsuite.models.vision.APPLICATIONS builds them).
APPLICATION_MODELS = ("resnet50", "efficientnetv2b0", "mobilenetv3large", "mobilenetv3small")


@dataclass(frozen=True)
class AugmentConfig:
    """ImageDataGenerator-style augmentation; keys and units as in Keras 2."""

    rotation_range: float = 0.0  # degrees, uniform in [-r, r]
    width_shift_range: float = 0.0  # fraction of width (< 1) or pixels (>= 1)
    height_shift_range: float = 0.0  # fraction of height (< 1) or pixels (>= 1)
    shear_range: float = 0.0  # shear angle in degrees, counter-clockwise
    zoom_range: Union[float, List[float]] = 0.0  # z -> [1 - z, 1 + z], or [lo, hi]
    horizontal_flip: bool = False
    vertical_flip: bool = False
    fill_mode: str = "nearest"  # nearest, reflect, wrap, constant
    cval: float = 0.0  # fill value for fill_mode=constant
    interpolation: str = "bilinear"  # bilinear (legacy default) or nearest (faster)
    brightness_range: Optional[List[float]] = None  # [lo, hi] multiplicative factor
    channel_shift_range: float = 0.0  # intensity added to all channels, in [-r, r]
    rescale: Optional[float] = None  # multiply inputs by this (inside the model)
    featurewise_center: bool = False  # subtract the training-set mean (inside the model)
    featurewise_std_normalization: bool = False  # divide by the training-set std


@dataclass(frozen=True)
class DataConfig:
    """Where images come from and how they are split and batched."""

    source: str = "digits"  # digits, folder, npz, tfds, synthetic; translation: numbers,
    # parallel (a TSV, or paired files with translation.target_path)
    path: Optional[str] = field(default=None, metadata=PATH)  # image folder, .npz file, or
    # parallel corpus
    tfds_name: Optional[str] = None  # TFDS dataset name, e.g. "mnist"
    data_dir: Optional[str] = None  # TFDS data_dir (prepared locally)
    image_size: List[int] = field(default_factory=lambda: [32, 32])  # [height, width]
    color_mode: str = "rgb"  # grayscale, rgb, rgba
    validation_split: float = 0.1
    test_split: float = 0.2
    cache: bool = True  # cache decoded images in memory
    on_device: Optional[bool] = None  # JAX: array data kept on the accelerator; null = synthetic
    # data on a GPU/TPU when it fills under a quarter of its memory
    workers: Optional[int] = None  # image folders on JAX/PyTorch: Grain decoding processes;
    # null = one per core, 0 = decode in the training process
    augment_on: str = "auto"  # host (the input pipeline), device (inside the compiled training
    # step), auto (device on a JAX GPU/TPU, and wherever tf.data does not feed the batches)
    num_classes: int = 10  # synthetic data only
    num_examples: int = 512  # synthetic data only
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class ModelConfig:
    """Which network to build; preprocessing is added to match it."""

    name: str = "cnn"  # mlp, cnn, resnet; keras.applications: resnet50, efficientnetv2b0,
    # mobilenetv3large, mobilenetv3small
    weights: Optional[str] = None  # None, "imagenet" (Keras cache, else downloaded) or a file
    width: int = 32  # base number of filters (cnn, resnet)
    dropout: float = 0.0
    l2: float = 0.0  # L2 penalty on kernels
    freeze_base: bool = False  # train only the head first (transfer learning)
    fine_tune_layers: int = 0  # after train.epochs, unfreeze the top N base layers
    lora_rank: Optional[int] = None  # language_model with a preset: train only LoRA weights
    # of this rank (KerasHub enable_lora)


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer, schedule, regularization and run control."""

    epochs: int = 10
    batch_size: int = 64  # global batch size, split over replicas
    optimizer: str = "adam"  # sgd, momentum, nesterov, adam, adamw, rmsprop, lion
    learning_rate: float = 1e-3
    momentum: float = 0.9  # sgd/momentum/nesterov/rmsprop
    weight_decay: float = 0.0  # decoupled weight decay (adamw, lion, sgd, ...)
    schedule: str = "constant"  # constant, step, cosine, warmup_cosine
    warmup_epochs: float = 0.0  # linear warm-up of warmup_cosine; fractions of an epoch allowed
    step_epochs: int = 10  # step schedule: decay every N epochs
    step_gamma: float = 0.1  # step schedule: multiply the rate by this
    label_smoothing: float = 0.0
    clipnorm: Optional[float] = None  # global gradient-norm clipping
    gradient_accumulation_steps: Optional[int] = None
    ema: bool = False  # keep an exponential moving average of the weights
    ema_momentum: float = 0.99
    early_stopping_patience: int = 0  # 0 disables early stopping
    # model.keras holds the best epoch's weights (by `monitor`) instead of the last epoch's;
    # null: with early stopping only. summary.json says which (model_epoch).
    restore_best: Optional[bool] = None
    monitor: str = "val_accuracy"
    fine_tune_epochs: int = 0  # epochs after unfreezing model.fine_tune_layers
    fine_tune_learning_rate: float = 1e-5
    steps_per_execution: int = 1
    jit_compile: Optional[bool] = None  # XLA; null = on for JAX and TF GPUs, off for TF on CPU
    remat: bool = False  # language models: recompute each decoder layer in the backward pass
    optimizer_state: str = "float32"  # language models with runtime.precision=bfloat16: the
    # dtype of Adam's moments (float32 or bfloat16); the update itself runs in float32
    log_every_steps: int = 100  # TensorBoard scalars every N steps too (0: once an epoch)


@dataclass(frozen=True)
class RuntimeConfig:
    """Backend, devices, distribution, precision and reproducibility."""

    backend: str = "auto"  # auto (KERAS_BACKEND or tensorflow), tensorflow, jax, torch
    strategy: str = "auto"  # auto, none, mirrored, multi_worker (TensorFlow);
    # data_parallel, model_parallel (JAX keras.distribution)
    cpu_devices: int = 0  # > 1 splits the CPU into logical devices (TF) / host devices (JAX)
    mesh_shape: Optional[List[int]] = None  # model_parallel: [batch, model]; null: [1, devices]
    model_parallel_layers: List[str] = field(default_factory=list)  # names or regexes of the
    # layers whose kernels are sharded; empty: every Dense, EinsumDense and Embedding layer
    model_parallel_min_params: int = 4096  # smaller kernels stay replicated
    precision: str = "float32"  # float32, mixed_float16, mixed_bfloat16, auto (half on a GPU)
    seed: int = 42
    deterministic: bool = False  # op determinism, at some speed cost
    gpu_memory_growth: bool = True


@dataclass(frozen=True)
class ExportConfig:
    """Deployment artifacts written by the export stage, each verified against the model."""

    formats: List[str] = field(default_factory=list)  # exported after training; "all" = every
    # format this machine can produce: saved_model, onnx, litert, tensorrt, keras
    name: Optional[str] = None  # model name under `out` (default: the experiment name)
    out: str = "saved_models"  # TF Serving base folder: OUT/NAME/VERSION/
    onnx_opset: int = 17
    tensorrt_precision: str = "fp16"  # fp32, fp16, int8 (engine built from the ONNX file)
    max_batch_size: int = 64  # largest batch of the TensorRT optimization profile
    verify_samples: int = 256  # test-split images each artifact is checked on
    batch_size: int = 32  # batch size for the latency measurement
    atol: float = 1e-4  # largest |difference| from the Keras model a float32 artifact may show


@dataclass(frozen=True)
class CompressConfig:
    """Model compression: pruning, quantization, low-rank factorization, distillation."""

    methods: List[str] = field(default_factory=list)  # run after training, in order, each on
    # the previous one's model: prune, quantize, low_rank, distill
    fine_tune_epochs: int = 12  # training after pruning / factorizing, and for QAT
    learning_rate: Optional[float] = None  # fine-tuning rate; null: train.learning_rate / 10
    # pruning (schedule semantics as TFMOT's PolynomialDecay / ConstantSparsity)
    pruning_backend: str = "native"  # native (Keras 3, any backend) or tfmot (tf_keras bridge)
    sparsity: float = 0.8  # final fraction of zeros in each pruned kernel
    initial_sparsity: float = 0.0  # polynomial_decay: sparsity at begin_step
    pruning_schedule: str = "polynomial_decay"  # polynomial_decay or constant
    begin_step: int = 0  # fine-tuning step at which pruning starts
    end_step: Optional[int] = None  # step of the final sparsity; null: half of fine-tuning
    pruning_frequency: Optional[int] = None  # steps between mask updates; null: 10 updates
    pruning_power: float = 3.0  # exponent of polynomial_decay
    pruning_structure: str = "unstructured"  # unstructured or 2:4 (2 zeros in 4 inputs)
    pruning_layers: List[str] = field(default_factory=list)  # names or regexes; empty:
    # every Conv2D, DepthwiseConv2D and Dense kernel
    # quantization
    quantization: str = "int8"  # int8 (LiteRT full integer), dynamic_range, float16, qat,
    # keras_int8, keras_float8, keras_int4 (Keras' model.quantize: Dense/Embedding only)
    int8_io: bool = False  # int8: the .tflite takes and returns int8 instead of float32
    representative_samples: int = 256  # training images that calibrate int8 ranges
    # low-rank factorization (truncated SVD); the first of these that is set is used
    rank: Optional[int] = None  # one rank for every factorized layer
    energy: Optional[float] = None  # keep this fraction of each kernel's squared singular values
    param_reduction: float = 0.5  # fewer parameters in each factorized layer by this fraction
    low_rank_layers: List[str] = field(default_factory=list)  # names or regexes; empty: every
    # Conv2D / Dense layer with at least low_rank_min_params weights
    low_rank_min_params: int = 4096
    # distillation: the run's model teaches a smaller student
    student: ModelConfig = field(default_factory=lambda: ModelConfig(name="cnn", width=8))
    temperature: float = 4.0  # softens teacher and student probabilities
    alpha: float = 0.1  # weight of the hard-label loss; 1 - alpha weighs the teacher's
    distill_epochs: Optional[int] = None  # null: train.epochs
    latency_batch_size: int = 32  # images per call when timing the models


IMAGE_SOURCES = ("digits", "folder", "npz", "tfds", "synthetic")
FILL_MODES = ("nearest", "reflect", "wrap", "constant")
INTERPOLATIONS = ("nearest", "bilinear")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "lion")
BFLOAT16_OPTIMIZERS = ("adam", "adamw")  # those with a float32 update of bfloat16 weights
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "auto")
SCHEDULES = ("constant", "step", "cosine", "warmup_cosine")
EXPORT_FORMATS = []  # filled by `register_export_format` (tfsuite.export.formats)
TENSORRT_PRECISIONS = ("fp32", "fp16", "int8")
COMPRESS_METHODS = ("prune", "quantize", "low_rank", "distill")
STRATEGIES = ("auto", "none", "mirrored", "multi_worker", "data_parallel", "model_parallel")
QUANTIZATIONS = ("int8", "dynamic_range", "float16", "qat", "keras_int8", "keras_float8",
                 "keras_int4")

CHOICES = {
    "data.color_mode": ("grayscale", "rgb", "rgba"),
    "data.augment_on": ("auto", "host", "device"),
    "data.augment.fill_mode": FILL_MODES,
    "data.augment.interpolation": INTERPOLATIONS,
    "model.name": ("mlp", "cnn", "resnet", *APPLICATION_MODELS),
    "train.optimizer": OPTIMIZERS,
    "train.schedule": SCHEDULES,
    "runtime.backend": ("auto", "tensorflow", "jax", "torch"),
    "runtime.strategy": STRATEGIES,
    "train.optimizer_state": ("float32", "bfloat16"),
    "runtime.precision": PRECISIONS,
    "export.tensorrt_precision": TENSORRT_PRECISIONS,
    "compress.pruning_backend": ("native", "tfmot"),
    "compress.pruning_schedule": ("polynomial_decay", "constant"),
    "compress.pruning_structure": ("unstructured", "2:4"),
    "compress.quantization": QUANTIZATIONS,
    "compress.student.name": ("mlp", "cnn", "resnet"),
}


MONITORS = ("val_accuracy", "val_loss", "val_top5_accuracy", "accuracy", "loss",
            "top5_accuracy")


def register_export_format(name):
    """Makes `name` a valid `export.formats` value (each export format registers itself)."""
    if name not in EXPORT_FORMATS:
        EXPORT_FORMATS.append(name)
