"""Image folders in the `flow_from_directory` layout, scanned robustly.

`root/<class>/.../<image>`: one sub-folder per class, nested folders allowed,
png/jpg/jpeg/bmp/gif in any letter case. Every candidate is opened with PIL
before training, so empty, truncated and non-image files are skipped with a
warning and counted instead of failing an epoch halfway.
"""

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from PIL import Image

from tfsuite.errors import user_error
from tfsuite.io import printable

logger = logging.getLogger("tfsuite")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# Larger images are skipped: decoding one takes gigabytes. (PIL refuses them too, as
# decompression bombs; 200-megapixel photos and scans still load.)
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
# What TensorFlow's decoders read correctly, by file format and PIL mode. Other
# files (CMYK JPEG, 16-bit PNG, palette or 1-bit BMP, a TIFF named .png, ...) are
# decoded through PIL instead.
TF_DECODABLE = {"JPEG": ("L", "RGB"), "PNG": ("1", "L", "LA", "P", "RGB", "RGBA"),
                "GIF": ("L", "P", "RGB", "RGBA"), "BMP": ("RGB", "RGBA")}


@dataclass
class FolderScan:
    """What was found under an image folder."""

    paths: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    needs_pil: list = field(default_factory=list)  # True where TF cannot decode the file
    class_names: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (path, reason)


def check_image(path):
    """Decodes a file with PIL; returns (ok, needs_pil, reason)."""
    try:
        if os.path.getsize(path) == 0:
            return False, False, "empty file"
        with Image.open(path) as image:
            image_format, mode = image.format, image.mode
            width, height = image.size
            if width * height > MAX_PIXELS:
                return False, False, f"{width}x{height} pixels, more than {MAX_PIXELS:,}"
            # TensorFlow decodes every frame of an animation to keep the first: a
            # 1000-frame GIF took 74 s and 9.7 GB. PIL reads the first frame alone.
            animated = getattr(image, "is_animated", False)
            image.draft("RGB", (64, 64))  # JPEG: decode at reduced scale, still reads all data
            image.load()
        return True, animated or mode not in TF_DECODABLE.get(image_format, ()), ""
    except Exception as e:  # PIL raises many types for broken files
        return False, False, f"{type(e).__name__}: {e}"


def image_files(folder, skipped, seen_folders=None, seen_files=None):
    """Yields the image files under `folder` (by extension, any case), folders and files
    sorted, hidden ones left out; what else is left out goes to `skipped` as (path, reason).

    Symbolic links are followed, but every folder and file is visited once (across calls
    that share `seen_folders` and `seen_files`): a link loop, or a second link to a folder,
    would repeat images, across splits, or never end.
    """
    seen_folders = set() if seen_folders is None else seen_folders
    seen_files = {} if seen_files is None else seen_files
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_folders:
            dirnames[:] = []
            skipped.append((dirpath, f"a link to a folder already read ({real})"))
            continue
        seen_folders.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            path = os.path.join(dirpath, filename)
            if filename.startswith("."):
                continue
            if not filename.lower().endswith(IMAGE_EXTENSIONS):
                skipped.append((path, "not an image file extension"))
                continue
            real = os.path.realpath(path)
            if real in seen_files:
                skipped.append((path, f"the same file as {seen_files[real]}"))
                continue
            seen_files[real] = path
            yield path


def scan_image_folder(root, num_threads=8, class_names=None, name="data.path"):
    """Lists the images of an image folder, checking each one.

    Args:
        root: folder with one sub-folder per class.
        num_threads: threads used to check the files. Defaults to `8`.
        class_names: the classes, in label order, that the sub-folders must be among
            (a trained model's, to evaluate it on another folder); some may be absent.
            Defaults to the sub-folders, sorted.
        name: what messages call `root`. Defaults to `"data.path"`.

    Returns:
        A `FolderScan`.
    """
    if os.path.isfile(root):
        raise user_error(f"{name} is a file", "a folder with one sub-folder per class",
                         f"{name}={root!r}", "Point it at the folder above the class "
                         "folders.")
    if not os.path.isdir(root):
        raise user_error("Image folder not found", "a folder with one sub-folder per class",
                         f"{name}={root!r}", "Check the path (relative paths start "
                         f"from {os.getcwd()!r}).")
    folders = sorted(d for d in os.listdir(root)
                     if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if class_names is not None:
        unknown = [d for d in folders if d not in class_names]
        if unknown or not folders:
            raise user_error("The folder's classes are not the model's",
                             f"class sub-folders among the model's classes {class_names}",
                             f"{name}={root!r} with "
                             + (f"unknown class folders {unknown}" if unknown
                                else "no class folders"),
                             "Rename or leave out those folders: the model has no output "
                             "for them." if unknown else "Put each class's images in a "
                             "sub-folder named after the class.")
        folders = [c for c in class_names if c in folders]
    elif len(folders) < 2:
        raise user_error("An image folder needs at least two class sub-folders",
                         "root/<class_name>/<images>", f"{name}={root!r} with class "
                         f"folders {folders}", "Put each class's images in its own folder.")
    given = class_names is not None
    class_names = list(class_names) if given else folders
    scan = FolderScan(class_names=class_names)
    candidates = []
    seen_folders, seen_files = set(), {}  # shared by the classes: each file in one class
    for class_name in folders:
        label = class_names.index(class_name)
        candidates += [(path, label) for path in image_files(
            os.path.join(root, class_name), scan.skipped, seen_folders, seen_files)]
    with ThreadPoolExecutor(num_threads) as pool:
        checks = list(pool.map(lambda c: check_image(c[0]), candidates))
    for (path, label), (ok, needs_pil, reason) in zip(candidates, checks):
        if ok:
            scan.paths.append(path)
            scan.labels.append(label)
            scan.needs_pil.append(needs_pil)
        else:
            scan.skipped.append((path, reason))
    for path, reason in scan.skipped:
        logger.warning("Skipped %s (%s)", printable(path), printable(reason))
    present = set(scan.labels)
    for class_name in folders:
        if class_names.index(class_name) not in present:
            logger.warning("Class folder %r has no readable images%s.", class_name,
                           "" if given else "; the model will still have an output for it")
    if not scan.paths:
        raise user_error("No readable images in the image folder",
                         f"files ending in {', '.join(IMAGE_EXTENSIONS)} (any case)",
                         f"{name}={root!r} ({len(scan.skipped)} files skipped)")
    return scan
