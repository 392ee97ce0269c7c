"""Image decoding shared by every reader: one function, and errors that name the image that failed."""
import io
import os

from PIL import Image, ImageOps, UnidentifiedImageError


class ImageReadError(OSError):
    """An image that cannot be opened or decoded; the message names it (file path or record)."""


def image_name(source):
    """How an error message names an image source: a path, a record reference, or in-memory bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} encoded bytes>"
    return str(source)


def read_image(source):
    """Decode `source` to an RGB PIL image, applying the EXIF orientation as the original did.

    `source` is a file path, encoded image bytes (a `.bin` entry), or an object with `read_bytes()` (a RecordIO
    record). Grayscale and palette images become 3-channel RGB.
    """
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        elif hasattr(source, "read_bytes") and not isinstance(source, (str, os.PathLike)):
            data = source.read_bytes()
        else:
            with open(source, "rb") as f:
                data = f.read()
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError as err:
        raise ImageReadError(f"cannot read image {image_name(source)}: not a known image format") from err
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"cannot read image {image_name(source)}: {err}") from err
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block must not lose an otherwise good image (the original ignores it too)
        pass
    return image.convert("RGB")
