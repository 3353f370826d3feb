"""What `diagnose` checks of an image classifier's data, and the settings it suggests."""

import hashlib
import math

import numpy as np

from tfsuite.data.augment import augments
from tfsuite.diagnosis.verdict import Verdict

TINY_SPLIT = 100  # validation/test images below which one image moves accuracy by > 1 point
FEW_PER_CLASS = 10  # training images per class below which a class is barely learnable


def chance_loss(run):
    """ln C: the cross-entropy of a model that gives every class the same probability."""
    classes = run.value("data", "num_classes")
    return math.log(classes) if classes and classes > 1 else None


def data_verdict(config):
    """Class balance, skipped files, images shared between splits, tiny splits."""
    from tfsuite.data.sources import load_images

    raw = load_images(config.data, config.runtime.seed)
    names = list(raw.class_names)
    splits = {"train": raw.train, "val": raw.val, "test": raw.test}
    sizes = {name: len(split) for name, split in splits.items()}
    counts = np.bincount(np.asarray(raw.train.labels, np.int64), minlength=len(names))
    evidence = {"split_sizes": sizes, "skipped_files": len(raw.skipped),
                "train_per_class_min": int(counts.min()) if len(counts) else 0,
                "train_per_class_max": int(counts.max()) if len(counts) else 0}
    problems, warnings, fixes = [], [], []
    if len(counts) and counts.min() == 0:
        empty = [names[i] for i in np.flatnonzero(counts == 0)][:5]
        problems.append(f"class(es) {', '.join(map(str, empty))} have no training image")
    elif len(counts) and counts.max() / counts.min() >= 3:
        imbalance = counts.max() / counts.min()
        evidence["imbalance"] = round(float(imbalance), 2)
        (problems if imbalance >= 10 else warnings).append(
            f"classes are imbalanced {imbalance:.3g}:1 in the training split "
            f"({names[int(counts.argmax())]}: {counts.max()}, {names[int(counts.argmin())]}: "
            f"{counts.min()})")
    if len(counts) and 0 < counts.min() < FEW_PER_CLASS:
        warnings.append(f"a class has only {counts.min()} training images")
    total = sum(sizes.values()) + len(raw.skipped)
    if raw.skipped:
        share = len(raw.skipped) / max(total, 1)
        (problems if share >= 0.1 else warnings).append(
            f"{len(raw.skipped)} file(s) could not be read and were skipped ({share:.1%})")
    shared = _shared_with_train(splits)
    if shared is not None:
        evidence["duplicates_of_train"] = shared
        for name, count in shared.items():
            if count:
                share = count / max(sizes[name], 1)
                (problems if share >= 0.05 else warnings).append(
                    f"{count} {name} image(s) ({share:.1%}) are byte-identical to training "
                    "images: they inflate the scores")
    for name, key in (("val", "validation_split"), ("test", "test_split")):
        if 0 < sizes[name] < TINY_SPLIT:
            warnings.append(f"the {name} split has {sizes[name]} images: one image moves its "
                            f"accuracy by {100 / sizes[name]:.1f} points")
            fixes.append(f"--set data.{key}=" + str(round(min(
                0.3, getattr(config.data, key) * TINY_SPLIT / sizes[name] + 0.01), 2)))
    found = problems + warnings
    severity = "problem" if problems else "warning" if warnings else "info"
    text = ("; ".join(found) if found else
            f"{len(names)} classes, {sizes['train']}/{sizes['val']}/{sizes['test']} "
            "train/val/test images, balanced within 3:1, no file skipped, no image shared "
            "between splits") + "."
    return Verdict("data", severity, text[0].upper() + text[1:], evidence, fixes,
                   ["Remove the duplicates, or split by source (one folder per split)."]
                   if shared and any(shared.values()) else [])


def _shared_with_train(splits):
    """{split: images byte-identical to a training image} (None for TFDS splits)."""
    hashes = {name: _hashes(split) for name, split in splits.items()}
    if any(h is None for h in hashes.values()):
        return None
    train = set(hashes["train"])
    return {name: sum(h in train for h in hashes[name]) for name in ("val", "test")}


def _hashes(split):
    if split.images is not None:
        return [hashlib.blake2b(image.tobytes(), digest_size=16).digest()
                for image in split.images]
    if split.paths is not None:
        return [_file_hash(path) for path in split.paths]
    return None


def _file_hash(path):
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


def fixes(name, config):
    """The image classifier's own `--set` lines for verdict `name`."""
    data, model, aug = config.data, config.model, config.data.augment
    if name == "overfitting":
        lines = []
        if not (aug.width_shift_range or aug.height_shift_range or aug.rotation_range):
            lines.append("--set data.augment.width_shift_range=0.1 --set "
                         "data.augment.height_shift_range=0.1 --set "
                         "data.augment.rotation_range=10")
        if not aug.zoom_range:
            lines.append("--set data.augment.zoom_range=0.1")
        if model.dropout < 0.3:
            lines.append("--set model.dropout=0.3")
        if not model.l2:
            lines.append("--set model.l2=0.0001")
        return lines
    if name == "underfitting":
        lines = [f"--set model.width={2 * model.width}"] if model.name in ("cnn", "resnet") \
            else []
        if model.dropout:
            lines.append("--set model.dropout=0")
        return lines
    if name == "input_bound":
        lines = []
        if not data.cache:
            lines.append("--set data.cache=true")
        if data.augment_on != "device" and augments(aug):
            lines.append("--set data.augment_on=device")
        if data.source == "folder" and data.workers == 0:
            lines.append("--set data.workers=null")
        return lines
    return []

