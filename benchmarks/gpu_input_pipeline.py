"""Real JPEGs at GPU speed: tfsuite's image-folder pipeline against PyTorch's DataLoader.

    python benchmarks/gpu_input_pipeline.py [--images 20000] [--classes 100] [--epochs 3]
        [--parts loaders folder cached arrays synthetic torch] [--data DIR]

1. Writes an ImageNet-like folder (500x375 JPEGs, quality 90, smooth shapes, gradients
   and grain that compress like photographs), one process per core; kept in --data.
2. Loaders alone (no model), images/s: tfsuite's `ImageFileBatches` (Grain, one decoding
   process per core) and torchvision's `ImageFolder` + `DataLoader` (one worker per core).
3. ResNet-50 training, bf16, batch 256, augmentation rotation 15, shifts 0.1, zoom 0.1,
   horizontal flip, one run of each (figure: median images/s of the epochs after the
   first, which compiles):
   - folder: `train` on the folder, decoding every epoch (`data.cache=false`);
   - cached: the same with the default `data.cache=true` (decoded once, then from memory);
   - arrays: the same images as host arrays (an .npz, `data.on_device=false`);
   - synthetic: synthetic images kept on the device (the headline set-up), same augmentation;
   - torch: the PyTorch peer as its users write it: `ImageFolder` + `transforms.v2`
     (RandomAffine, RandomHorizontalFlip, ToDtype, Normalize on the CPU workers),
     `DataLoader(num_workers=cores, pin_memory=True, persistent_workers=True)`,
     `non_blocking` copies, channels_last, autocast bf16, `torch.compile`.
Prints a table with the ratios last.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
BATCH = 256
SIZE = (224, 224)
AUGMENT = ["data.augment.rotation_range=15", "data.augment.width_shift_range=0.1",
           "data.augment.height_shift_range=0.1", "data.augment.zoom_range=0.1",
           "data.augment.horizontal_flip=true", "data.augment.fill_mode=nearest"]


def cores():
    return len(os.sched_getaffinity(0))


def _write_images(job):
    """Photo-like 500x375 JPEGs: a smooth colour field, a few soft shapes, sensor grain."""
    from PIL import Image, ImageDraw, ImageFilter

    folder, start, count, seed = job
    rng = np.random.default_rng(seed)
    for index in range(start, start + count):
        low = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
        image = Image.fromarray(low).resize((500, 375), Image.BICUBIC)
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x, y = rng.integers(0, 500), rng.integers(0, 375)
            r = int(rng.integers(15, 90))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.integers(0, 256, 3)))
        image = image.filter(ImageFilter.GaussianBlur(2))
        pixels = np.asarray(image, np.int16) + rng.normal(0, 6, (375, 500, 3)).astype(np.int16)
        label = index % int(folder[1])
        path = os.path.join(folder[0], f"class_{label:03d}", f"{index:06d}.jpg")
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)


def make_folder(root, images, classes):
    marker = os.path.join(root, f".complete-{images}-{classes}")
    if os.path.exists(marker):
        return root
    for label in range(classes):
        os.makedirs(os.path.join(root, f"class_{label:03d}"), exist_ok=True)
    per_job = 250
    jobs = [((root, classes), start, min(per_job, images - start), start)
            for start in range(0, images, per_job)]
    with ProcessPoolExecutor(cores()) as pool:
        list(pool.map(_write_images, jobs))
    open(marker, "w").close()
    return root


def folder_bytes(root):
    total = count = 0
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".jpg"):
                total += os.path.getsize(os.path.join(folder, name))
                count += 1
    return total / max(count, 1)


def tfsuite_loader_rate(root, batches):
    from tfsuite.data.file_batches import ImageFileBatches
    from tfsuite.data.folder import scan_image_folder

    scan = scan_image_folder(root)
    loader = ImageFileBatches(scan.paths, scan.labels, SIZE, 3, BATCH, shuffle=True)
    loader[0]  # workers started
    started, seen = time.perf_counter(), 0
    for index in range(1, min(batches + 1, len(loader))):
        seen += len(loader[index][0])
    rate = seen / (time.perf_counter() - started)
    loader.close()
    return rate


def torch_loader(root, train=True):
    import torch
    from torchvision import datasets
    from torchvision.transforms import v2

    transform = v2.Compose([
        v2.PILToTensor(), v2.Resize(SIZE, antialias=True),
        v2.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.9, 1.1)),
        v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    dataset = datasets.ImageFolder(root, transform=transform)
    return torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True,
                                       num_workers=cores(), pin_memory=True, drop_last=True,
                                       persistent_workers=True, prefetch_factor=4)


def torch_loader_rate(root, batches):
    loader = torch_loader(root)
    iterator = iter(loader)
    next(iterator)
    started, seen = time.perf_counter(), 0
    for _ in range(min(batches, len(loader) - 1)):
        seen += len(next(iterator)[0])
    return seen / (time.perf_counter() - started)


def torch_train_rate(root, epochs, classes):
    import torch
    import torchvision

    torch.backends.cudnn.benchmark = True
    model = torchvision.models.resnet50(num_classes=classes).cuda().to(
        memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)

    def step(images, labels):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()

    step = torch.compile(step)
    loader = torch_loader(root)
    rates = []
    for _ in range(epochs):
        started, seen = time.perf_counter(), 0
        for images, labels in loader:
            images = images.cuda(non_blocking=True).to(memory_format=torch.channels_last)
            step(images, labels.cuda(non_blocking=True))
            seen += len(labels)
        torch.cuda.synchronize()
        rates.append(seen / (time.perf_counter() - started))
    return statistics.median(rates[1:]), rates


def tfsuite_train_rate(source_sets, epochs, classes, work):
    """`python -m tfsuite.run train resnet50` with these data settings; median epoch rate."""
    run_dir = os.path.join(work, "run-" + str(abs(hash(tuple(source_sets)))))
    command = [sys.executable, "-m", "tfsuite.run", "train", "resnet50", "--run-dir", run_dir,
               "--quiet", "--set", "data.validation_split=0", "--set", "data.test_split=0.01",
               "--set", f"train.batch_size={BATCH}", "--set", f"train.epochs={epochs}",
               "--set", "runtime.precision=mixed_bfloat16", "--set", "compress.methods=[]",
               "--set", "export.formats=[]", "--set", "train.early_stopping_patience=0",
               *[a for o in AUGMENT + source_sets for a in ("--set", o)]]
    result = subprocess.run(command, capture_output=True, text=True, cwd=work,
                            env={**os.environ, "KERAS_BACKEND": "jax",
                                 "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH",
                                                                                 "")})
    if result.returncode:
        raise RuntimeError(f"tfsuite failed ({source_sets}):\n{result.stdout[-2000:]}"
                           f"{result.stderr[-4000:]}")
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    rates = summary["epoch_images_per_second"]
    return statistics.median(rates[1:]), rates, summary["data"].get("augmented_on")


def write_npz(root, path):
    from tfsuite.data.folder import scan_image_folder

    scan = scan_image_folder(root)
    with ProcessPoolExecutor(cores()) as pool:
        images = np.stack(list(pool.map(_decode_224, scan.paths, chunksize=64)))
    np.savez(path, x=images, y=np.asarray(scan.labels, np.int32))


def _decode_224(path):
    from tfsuite.data.decode import decode_with_pil

    return decode_with_pil(path, 3, SIZE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--parts", nargs="+", default=["loaders", "folder", "cached", "arrays",
                                                        "synthetic", "torch"])
    parser.add_argument("--data", default="/tmp/tfsuite_jpegs")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    started = time.perf_counter()
    root = make_folder(args.data, args.images, args.classes)
    print(f"folder: {args.images} JPEGs, {args.classes} classes, mean "
          f"{folder_bytes(root) / 1e3:.0f} kB ({time.perf_counter() - started:.0f} s); "
          f"{cores()} cores", flush=True)
    rows, results = [], {}

    def add(name, rate, note=""):
        results[name] = rate
        rows.append((name, rate, note))
        print(f"  {name}: {rate:,.0f} images/s {note}", flush=True)

    if "loaders" in args.parts:
        add("loader only: tfsuite (Grain, PIL)", tfsuite_loader_rate(root, 60))
        add("loader only: torchvision ImageFolder + DataLoader", torch_loader_rate(root, 60))
    with tempfile.TemporaryDirectory() as work:
        common = [f"data.num_classes={args.classes}"]
        if "folder" in args.parts:
            rate, rates, where = tfsuite_train_rate(
                ["data.source=folder", f"data.path={root}", "data.cache=false"], args.epochs,
                args.classes, work)
            add("tfsuite, JPEG folder, decoded every epoch", rate, f"(augmented on {where})")
        if "cached" in args.parts:
            rate, rates, where = tfsuite_train_rate(
                ["data.source=folder", f"data.path={root}"], args.epochs, args.classes, work)
            add("tfsuite, JPEG folder, data.cache=true (default)", rate, f"epochs {rates}")
        if "arrays" in args.parts:
            npz = os.path.join(work, "images.npz")
            write_npz(root, npz)
            rate, rates, where = tfsuite_train_rate(
                ["data.source=npz", f"data.path={npz}", "data.on_device=false"], args.epochs,
                args.classes, work)
            add("tfsuite, the same images as host arrays", rate)
        if "synthetic" in args.parts:
            rate, rates, where = tfsuite_train_rate(
                ["data.source=synthetic", f"data.num_examples={args.images}",
                 "data.on_device=true", *common], args.epochs, args.classes, work)
            add("tfsuite, synthetic images on the device", rate)
    if "torch" in args.parts:
        rate, rates = torch_train_rate(root, args.epochs, args.classes)
        add("PyTorch peer, torch.compile, same folder", rate, f"epochs {[round(r) for r in rates]}")
    print(f"\n{'run':<56}{'images/s':>10}")
    for name, rate, _ in rows:
        print(f"{name:<56}{rate:>10,.0f}")
    ratios = {}
    for name in ("tfsuite, JPEG folder, decoded every epoch",
                 "tfsuite, JPEG folder, data.cache=true (default)",
                 "tfsuite, the same images as host arrays"):
        if name in results:
            for base in ("tfsuite, synthetic images on the device",
                         "PyTorch peer, torch.compile, same folder"):
                if base in results:
                    ratios[f"{name} / {base}"] = round(results[name] / results[base], 3)
    for key, value in ratios.items():
        print(f"{value:.3f}x  {key}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "ratios": ratios}, f, indent=1)


if __name__ == "__main__":
    main()
