"""Benchmark pictures in the object store: bytes embedded in gold files, and images behind URLs, cached by content.

Gold files carry pictures in two ways: as bytes in a row (a Hugging Face `Image` column is stored in parquet as a
struct `{bytes, path}`) or as a URL to fetch. Both end up as one object under a cache prefix, so that every
sample's `Example.image` is an object-store URI that any replica can read:

    cache = PictureCache(store, "s3://bucket/pixsearch/cache/images")
    uri = cache.put_bytes(row["image"]["bytes"])          # <cache>/sha256/<hex>.<ext>  (written once)
    uri = cache.fetch("https://example.org/photo.jpg")    # <cache>/url/<sha256 of the URL>  (downloaded once)

`fetch` retries (exponential backoff) and has a timeout per try; when every try fails it raises
`PictureUnavailable` naming the URL and the last reason, which the eval runner turns into that sample's error
record. A downloaded body that is not a decodable image is a failure too (an HTML error page is not a picture).
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)

USER_AGENT = "pixsearch-picture-cache/1 (+https://github.com/pixsearch)"
_EXTS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif", "MPO": "jpg"}


class PictureUnavailable(RuntimeError):
    """A picture that could not be fetched or decoded; the message names the URL (or object) and why."""


def is_url(ref: str | None) -> bool:
    return bool(ref) and ref.split("://", 1)[0].lower() in ("http", "https")


def picture_format(data: bytes, source: str) -> str:
    """The file extension of an image's bytes; PictureUnavailable when PIL cannot identify them."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
            return _EXTS.get(img.format or "", (img.format or "img").lower())
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise PictureUnavailable(f"{source}: not a decodable image ({len(data)} bytes: {e})") from None


@dataclass
class FetchPolicy:
    timeout_s: float = 20.0
    retries: int = 3  # tries after the first
    backoff_s: float = 1.0  # wait before retry i: backoff_s * 2**i


class PictureCache:
    def __init__(self, store: ObjectStore, root: str, policy: FetchPolicy | None = None):
        self.store, self.root, self.policy = store, root.rstrip("/"), policy or FetchPolicy()

    def put_bytes(self, data: bytes, source: str = "embedded picture") -> str:
        """Store `data` once under its sha256; returns the object URI. Bytes PIL cannot identify are stored too
        (as .bin, with a warning), so that the sample fails with an error record when it is run, not the load."""
        try:
            ext = picture_format(data, source)
        except PictureUnavailable as e:
            log.warning("%s", e)
            ext = "bin"
        uri = join(self.root, "sha256", f"{hashlib.sha256(data).hexdigest()}.{ext}")
        if not self.store.exists(uri):
            self.store.put_bytes(uri, data)
        return uri

    def url_key(self, url: str) -> str:
        return join(self.root, "url", hashlib.sha256(url.encode()).hexdigest())

    def _download(self, url: str) -> bytes:
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
        with urllib.request.urlopen(req, timeout=self.policy.timeout_s) as resp:
            return resp.read()

    def fetch(self, url: str) -> str:
        """The cached object for `url`, downloading it (with retries) the first time."""
        uri = self.url_key(url)
        if self.store.exists(uri):
            return uri
        last = ""
        for attempt in range(self.policy.retries + 1):
            if attempt:
                time.sleep(self.policy.backoff_s * 2 ** (attempt - 1))
            try:
                data = self._download(url)
                picture_format(data, url)
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code} {e.reason}"
                if 400 <= e.code < 500 and e.code not in (408, 429):
                    break  # a client error will not go away by asking again
            except (urllib.error.URLError, OSError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            except PictureUnavailable as e:
                last = str(e)
            else:
                self.store.put_bytes(uri, data)
                log.info("fetched %s (%d bytes) -> %s", url, len(data), uri)
                return uri
            log.warning("fetching %s failed (try %d of %d): %s", url, attempt + 1, self.policy.retries + 1, last)
        raise PictureUnavailable(f"image_url {url} could not be fetched after {attempt + 1} tries: {last}")

    def resolve(self, ref: str) -> str:
        """An object URI for a picture reference: a URL is fetched through the cache; anything else is already one."""
        return self.fetch(ref) if is_url(ref) else ref
